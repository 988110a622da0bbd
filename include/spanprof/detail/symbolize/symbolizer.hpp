// spanprof: symbolization — sampled addresses to module, function, file:line and inlined frames,
// plus the build ids a server needs to symbolicate them again. symbolizer composes the parts:
//
// - module_map (module_map.hpp, from loader.hpp's reads): which module held an address at a
//   sample's time; "unknown module (changed)" when that cannot be told, never a guessed name.
// - module_session (module_session.hpp): one libdwfl session per module, opened when the module
//   is first seen and kept open, so a library dlclose'd (or replaced on disk) before its samples
//   are symbolized still resolves from the file that was loaded, checked against the build id
//   read from memory; separate debug files are found locally (debug_files.hpp).
// - per address: DWARF (function, file, line, inlined chain; dwarf_index.hpp) → ELF symbol →
//   module+offset (module_frames.hpp), names demangled and interned (names.hpp). The results are
//   cached in a flat hash map keyed by address, cleared when full (address_cache.hpp).
// - debug_meta images for the modules used (debug_images.hpp).
//
// NOT ASYNC-SIGNAL-SAFE, and not thread-safe: collector thread only. It takes the dynamic
// loader's lock (dl_iterate_phdr), opens files, allocates, and drives elfutils' libdw, which is
// none of those things. One symbolizer belongs to one thread.
#pragma once

#include <libelf.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <vector>

#include "address_cache.hpp"
#include "debug_images.hpp"
#include "frames.hpp"
#include "loader.hpp"
#include "module_frames.hpp"
#include "module_map.hpp"
#include "module_session.hpp"
#include "names.hpp"

namespace spanprof::detail {

struct symbolizer_options {
  std::size_t max_cached_addresses = 65536;   // the address cache is cleared when it reaches this
  std::vector<std::string> in_app_modules;    // a module whose path contains one of these is in_app
  // dwfl_standard_find_debuginfo ends with a debuginfod download when DEBUGINFOD_URLS is set
  // (Debian's libdebuginfod-common offers to set it in every login shell): network I/O of
  // unbounded length inside the profiled service. Off unless asked for; local debug files are
  // found either way.
  bool use_debuginfod = false;
};

class symbolizer {
 public:
  explicit symbolizer(symbolizer_options options = {})
      : options_(std::move(options)), map_(options_.in_app_modules) {
    elf_version(EV_CURRENT);  // libelf refuses elf_begin until a version is set
  }

  // Refreshes the module map (see module_map::refresh) and opens every module seen for the first
  // time, so its file stays open after an unload. Call it before resolving a batch whose samples
  // are older than now_ns.
  bool refresh(std::int64_t now_ns) {
    const bool changed = map_.refresh(now_ns);
    open_new_modules();
    return changed;
  }
  // For tests: the same with a synthetic loader list.
  bool apply(const loader_snapshot& snapshot, std::int64_t now_ns) {
    const bool changed = map_.apply(snapshot, now_ns);
    open_new_modules();
    return changed;
  }

  // The frames at `pc` as sampled at sample_time_ns (same clock as refresh). Return addresses
  // (every frame but the leaf) are looked up at pc - 1, inside the call, so the line is the
  // call's. Never fails: unknown addresses give one `unknown` frame. The frames and their
  // strings stay valid until the cache is cleared: clear_cache(), or a miss when
  // max_cached_addresses are cached; cache_generation() counts the clears.
  resolved_address resolve(std::uintptr_t pc, std::int64_t sample_time_ns, bool is_return_address) noexcept {
    resolved_address out;
    out.instruction_addr = pc;
    const std::uintptr_t lookup = is_return_address && pc != 0 ? pc - 1 : pc;
    if (lookup == 0) {
      out.frames = unknown_module_frame_;
      return out;
    }
    const address_cache::entry* hit = cache_.find(lookup);
    if (hit != nullptr) {
      const module_info& info = *map_.modules()[hit->module_id];
      if (info.certainly_loaded_at(sample_time_ns)) return from_cache(out, info, *hit);
    }
    try {
      const module_lookup where = map_.find(lookup, sample_time_ns);
      if (where.status != module_lookup_status::found) {
        out.frames = where.status == module_lookup_status::changed ? changed_module_frame_ : unknown_module_frame_;
        return out;
      }
      const module_info& info = *where.module;
      if (hit != nullptr && hit->module_id == info.id) return from_cache(out, info, *hit);
      ++misses_;
      if (cache_.size() >= std::max<std::size_t>(options_.max_cached_addresses, 1)) clear_cache();
      scratch_.clear();
      symbolize_in_module(info, sessions_[info.id], lookup, scratch_, names_);
      const address_cache::entry added{lookup, frames_.store(scratch_), info.id, static_cast<std::uint32_t>(scratch_.size())};
      cache_.insert_or_assign(added);
      return from_cache(out, info, added);
    } catch (...) {  // out of memory: report the address as unknown rather than fail the collector
      out = resolved_address{pc, 0, nullptr, unknown_module_frame_};
      return out;
    }
  }

  // The debug_meta.images of the modules these addresses fell in, each once, in first-use order.
  [[nodiscard]] std::vector<debug_image> images_for(std::span<const resolved_address> addresses) const {
    std::vector<debug_image> images;
    std::vector<bool> added(map_.modules().size(), false);
    for (const resolved_address& resolved : addresses) {
      if (resolved.module == nullptr || added[resolved.module->id]) continue;
      added[resolved.module->id] = true;
      images.push_back(debug_image_of(*resolved.module));
    }
    return images;
  }

  void clear_cache() noexcept {
    ++cache_generation_;
    cache_.clear();
    frames_.clear();
    names_.clear();
  }

  [[nodiscard]] const module_map& modules() const noexcept { return map_; }
  [[nodiscard]] std::size_t cached_addresses() const noexcept { return cache_.size(); }
  [[nodiscard]] std::uint64_t misses() const noexcept { return misses_; }  // addresses symbolized, not served from cache
  [[nodiscard]] std::uint64_t cache_generation() const noexcept { return cache_generation_; }

 private:
  resolved_address& from_cache(resolved_address& out, const module_info& info, const address_cache::entry& cached) const noexcept {
    out.module = &info;
    out.relative_addr = out.instruction_addr - info.bias;
    out.frames = {cached.frames, cached.frame_count};
    return out;
  }

  void open_new_modules() {
    const auto all = map_.modules();
    while (sessions_.size() < all.size()) {
      sessions_.emplace_back();
      open_module(*all[sessions_.size() - 1], sessions_.back(), options_.use_debuginfod);
    }
  }

  static constexpr symbolized_frame unknown_module_frame_[1] = {{"unknown module", {}, 0, 0, frame_quality::unknown, false}};
  static constexpr symbolized_frame changed_module_frame_[1] = {
      {"unknown module (changed)", {}, 0, 0, frame_quality::unknown, false}};

  symbolizer_options options_;
  module_map map_;
  std::deque<module_session> sessions_;  // by module id
  address_cache cache_;
  frame_store frames_;
  std::vector<symbolized_frame> scratch_;
  name_store names_;
  std::uint64_t misses_ = 0, cache_generation_ = 0;
};

}  // namespace spanprof::detail
