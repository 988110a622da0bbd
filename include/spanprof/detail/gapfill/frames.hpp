// spanprof gapfill, phase 1: the frame table — function identities and what each frame is.
//
// Consumes: the input's frames. Produces: a frame_table, read (const) by every later phase.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "id_table.hpp"
#include "input.hpp"
#include "names.hpp"

namespace spanprof::detail::gapfill {

namespace scratch {

enum frame_bits : std::uint8_t {
  frame_internal = 1u << 0,    // spanprof or signal delivery: stripped from the leaf side
  frame_blocking = 1u << 1,    // a blocking libc entry
  frame_inlined = 1u << 2,
};

struct frame_info {
  std::uint32_t fkey = 0;  // function key: index of its function_info, identity (module, file, display name)
  std::uint32_t line = 0;
  std::uint8_t bits = 0;
};

struct function_info {
  std::string_view display;
  std::string_view match;
  std::string_view file;
  std::string_view module;
  std::string_view blocking;  // blocking_call(display)
  std::uint64_t last_hash = 0;
  std::uint32_t first_frame = 0;
};

// Phase 1's output: one frame_info per input frame, one function_info per distinct function.
struct frame_table {
  std::vector<frame_info> frames;        // parallel to transaction_input::frames
  std::vector<function_info> functions;  // indexed by fkey
  // (hash of the last component of the match name, fkey), sorted: how a span's call site finds
  // its functions (span_tree.hpp).
  std::vector<std::pair<std::uint64_t, std::uint32_t>> functions_by_last_component;
  // Scratch: the open-addressing slots of the function lookup, kept for their capacity.
  std::vector<std::uint32_t> function_slots;

  [[nodiscard]] const function_info& function_of_frame(std::uint32_t frame) const noexcept {
    return functions[frames[frame].fkey];
  }
};

// The function a frame belongs to: an existing fkey, or a new function_info appended.
inline std::uint32_t find_or_add_function(frame_table& table, const frame& input_frame, std::uint32_t frame_index,
                                          std::string_view display) {
  const std::size_t mask = table.function_slots.size() - 1;
  const std::hash<std::string_view> hash;
  // A frame without a name is a function of its own: unnamed code in one module must not
  // look like one function (and be collapsed as recursion).
  const std::uint64_t function_hash =
      display.empty() ? mix64(frame_index)
                      : mix64(hash(display) ^ (hash(input_frame.file) * 31) ^ (hash(input_frame.module) * 131));
  for (std::size_t slot = function_hash & mask;; slot = (slot + 1) & mask) {
    const std::uint32_t existing = table.function_slots[slot];
    if (existing == no_index) {
      const auto fkey = static_cast<std::uint32_t>(table.functions.size());
      table.function_slots[slot] = fkey;
      function_info info;
      info.display = display;
      info.match = names::match_name(display);
      info.file = input_frame.file;
      info.module = input_frame.module;
      info.blocking = names::is_system_library(input_frame.module) ? names::blocking_call(display) : std::string_view{};
      info.last_hash = hash(names::last_component(info.match));
      info.first_frame = frame_index;
      table.functions.push_back(info);
      return fkey;
    }
    const function_info& known = table.functions[existing];
    if (!display.empty() && known.display == display && known.file == input_frame.file &&
        known.module == input_frame.module) {
      return existing;
    }
  }
}

}  // namespace scratch

// Function identities, and what each frame is (spanprof's own, a trampoline, a blocking call).
inline void build_frame_table(std::span<const frame> input_frames, scratch::frame_table& table) {
  using namespace scratch;
  table.frames.assign(input_frames.size(), frame_info{});
  table.functions.clear();
  std::size_t capacity = 16;
  while (capacity < input_frames.size() * 2) capacity <<= 1;
  table.function_slots.assign(capacity, no_index);
  for (std::uint32_t f = 0; f < input_frames.size(); ++f) {
    const frame& input_frame = input_frames[f];
    const std::string_view display = names::display_name(input_frame.function);
    const std::uint32_t fkey = find_or_add_function(table, input_frame, f, display);
    std::uint8_t bits = 0;
    if (input_frame.spanprof_internal || names::is_spanprof_frame(display) || names::is_signal_trampoline(display)) {
      bits |= frame_internal;
    }
    if (!table.functions[fkey].blocking.empty()) bits |= frame_blocking;
    if (input_frame.inlined) bits |= frame_inlined;
    table.frames[f] = frame_info{fkey, input_frame.line, bits};
  }
  table.functions_by_last_component.clear();
  for (std::uint32_t fkey = 0; fkey < table.functions.size(); ++fkey) {
    table.functions_by_last_component.emplace_back(table.functions[fkey].last_hash, fkey);
  }
  std::sort(table.functions_by_last_component.begin(), table.functions_by_last_component.end());
}

}  // namespace spanprof::detail::gapfill
