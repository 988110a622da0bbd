// spanprof gapfill, phase 1: the frame table — function identities and what each frame is.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gap_filler.hpp"
#include "names.hpp"

namespace spanprof::detail::gapfill {

// Function identities, and what each frame is (spanprof's own, a trampoline, a blocking call).
inline void gap_filler::prepare_frames() {
  using namespace scratch;
  const auto frames = in_->frames;
  frame_infos_.assign(frames.size(), frame_info{});
  functions_.clear();
  std::size_t capacity = 16;
  while (capacity < frames.size() * 2) capacity <<= 1;
  function_slots_.assign(capacity, no_index);
  const std::size_t mask = capacity - 1;
  const std::hash<std::string_view> hash;
  for (std::uint32_t f = 0; f < frames.size(); ++f) {
    const frame& fr = frames[f];
    const std::string_view display = names::display_name(fr.function);
    // A frame without a name is a function of its own: unnamed code in one module must not
    // look like one function (and be collapsed as recursion).
    const std::uint64_t h = display.empty() ? mix64(f) : mix64(hash(display) ^ (hash(fr.file) * 31) ^ (hash(fr.module) * 131));
    std::uint32_t fkey = no_index;
    for (std::size_t slot = h & mask;; slot = (slot + 1) & mask) {
      const std::uint32_t existing = function_slots_[slot];
      if (existing == no_index) {
        fkey = static_cast<std::uint32_t>(functions_.size());
        function_slots_[slot] = fkey;
        function_info info;
        info.display = display;
        info.match = names::match_name(display);
        info.file = fr.file;
        info.module = fr.module;
        info.blocking = names::is_system_library(fr.module) ? names::blocking_call(display) : std::string_view{};
        info.last_hash = hash(names::last_component(info.match));
        info.first_frame = f;
        functions_.push_back(info);
        break;
      }
      const function_info& e = functions_[existing];
      if (!display.empty() && e.display == display && e.file == fr.file && e.module == fr.module) {
        fkey = existing;
        break;
      }
    }
    std::uint8_t bits = 0;
    if (fr.spanprof_internal || names::is_spanprof_frame(display) || names::is_signal_trampoline(display)) {
      bits |= frame_internal;
    }
    if (!functions_[fkey].blocking.empty()) bits |= frame_blocking;
    if (fr.inlined) bits |= frame_inlined;
    frame_infos_[f] = frame_info{fkey, fr.line, bits};
  }
  functions_by_last_.clear();
  for (std::uint32_t k = 0; k < functions_.size(); ++k) functions_by_last_.emplace_back(functions_[k].last_hash, k);
  std::sort(functions_by_last_.begin(), functions_by_last_.end());
}

}  // namespace spanprof::detail::gapfill
