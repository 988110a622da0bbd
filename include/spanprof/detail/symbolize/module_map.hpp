// spanprof: module_map — every object dl_iterate_phdr ever reported, with the refresh times
// between which it was seen loaded, and which module held an address at a sample's time.
//
// NOT ASYNC-SIGNAL-SAFE, and not thread-safe: collector thread only (refresh() reads the loader,
// loader.hpp). A refresh costs one callback when nothing was loaded or unloaded since the last
// one (dlpi_adds/dlpi_subs). An address goes to a module only when that module certainly, or
// alone possibly, occupied it at the sample's time; otherwise it is reported as "unknown module
// (changed)", never under a guessed name.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "build_id.hpp"
#include "loader.hpp"

namespace spanprof::detail {

inline constexpr std::int64_t time_before_everything_ns = std::numeric_limits<std::int64_t>::min();
inline constexpr std::int64_t time_after_everything_ns = std::numeric_limits<std::int64_t>::max();

struct module_info : observed_module {
  std::uint32_t id = 0;       // index in module_map::modules()
  std::string build_id_hex;   // Sentry's code_id; "" without a build id
  std::uintptr_t image_addr = 0;
  bool in_app = false;        // the main executable, or its path contains a configured substring
  // Seen loaded at every refresh in [first_seen_ns, last_seen_ns]; not seen at absent_before_ns
  // (the refresh before; time_before_everything_ns if it was there at the first refresh), nor
  // at gone_ns (time_after_everything_ns while it is loaded).
  std::int64_t absent_before_ns = time_before_everything_ns, first_seen_ns = 0, last_seen_ns = 0;
  std::int64_t gone_ns = time_after_everything_ns;

  [[nodiscard]] bool loaded() const noexcept { return gone_ns == time_after_everything_ns; }
  [[nodiscard]] bool certainly_loaded_at(std::int64_t time_ns) const noexcept {
    return time_ns >= first_seen_ns && time_ns <= last_seen_ns;
  }
  [[nodiscard]] bool contains(std::uintptr_t address) const noexcept {
    return std::any_of(executable_ranges.begin(), executable_ranges.end(),
                       [&](const address_range& range) { return range.contains(address); });
  }
  [[nodiscard]] std::string_view file_name() const noexcept {
    const std::string_view full_path = path;
    const auto slash = full_path.rfind('/');
    return slash == std::string_view::npos ? full_path : full_path.substr(slash + 1);
  }
};

enum class module_lookup_status : std::uint8_t { found, no_module, changed };

struct module_lookup {
  const module_info* module = nullptr;
  module_lookup_status status = module_lookup_status::no_module;
};

class module_map {
 public:
  explicit module_map(std::vector<std::string> in_app_substrings = {}) : in_app_substrings_(std::move(in_app_substrings)) {}

  // Reads the loader's list when its counters moved since the last refresh; otherwise only
  // extends every loaded module's interval to now_ns. Returns true when modules came or went.
  bool refresh(std::int64_t now_ns) {
    std::uint64_t loads = 0, unloads = 0;
    if (!read_loader_counters(loads, unloads)) return false;
    if (refreshed_ && loads == loads_ && unloads == unloads_) {
      now_ns = std::max(now_ns, last_refresh_ns_);
      for (auto& known : modules_) {
        if (known->loaded()) known->last_seen_ns = now_ns;
      }
      last_refresh_ns_ = now_ns;
      return false;
    }
    loader_snapshot snapshot;
    if (!read_loaded_modules(snapshot)) return false;
    for (observed_module& reported : snapshot.modules) {
      // realpath and readlink only for modules not already known: a refresh stays cheap.
      if (loaded_match(reported) == nullptr) reported.path = resolve_module_path(reported);
    }
    return apply(snapshot, now_ns);
  }

  // Records what the loader reported at now_ns (refresh() reads it; tests pass synthetic lists).
  // A module is the same as a loaded one when its loader name, bias and build id are.
  bool apply(const loader_snapshot& snapshot, std::int64_t now_ns) {
    if (refreshed_) now_ns = std::max(now_ns, last_refresh_ns_);
    const std::size_t known_before = modules_.size();
    std::vector<bool> seen(known_before, false);
    std::size_t new_modules = 0, gone_modules = 0;
    for (const observed_module& reported : snapshot.modules) {
      if (module_info* known = loaded_match(reported)) {
        known->last_seen_ns = now_ns;
        seen[known->id] = true;
        continue;
      }
      auto added = std::make_unique<module_info>();
      static_cast<observed_module&>(*added) = reported;
      if (added->path.empty()) added->path = reported.loader_name;
      added->id = static_cast<std::uint32_t>(modules_.size());
      added->build_id_hex = bytes_to_hex(added->build_id);
      added->image_addr = added->bias + added->image_vmaddr;
      added->in_app = added->is_main_executable ||
                  std::any_of(in_app_substrings_.begin(), in_app_substrings_.end(), [&](const std::string& substring) {
                    return !substring.empty() && added->path.find(substring) != std::string::npos;
                  });
      added->absent_before_ns = refreshed_ ? last_refresh_ns_ : time_before_everything_ns;
      added->first_seen_ns = added->last_seen_ns = now_ns;
      modules_.push_back(std::move(added));
      ++new_modules;
    }
    for (std::size_t id = 0; id < known_before; ++id) {
      if (modules_[id]->loaded() && !seen[id]) {
        modules_[id]->gone_ns = now_ns;
        ++gone_modules;
      }
    }
    // More loads (or unloads) than modules that appeared (or went) means an object came and
    // went between these two refreshes without either seeing it: any address this gap cannot
    // pin to a module seen on both sides of it might have been that object's.
    if (refreshed_ && (snapshot.loads - loads_ > new_modules || snapshot.unloads - unloads_ > gone_modules)) {
      unseen_churn_refresh_ns_.push_back(now_ns);
    }
    loads_ = snapshot.loads;
    unloads_ = snapshot.unloads;
    last_refresh_ns_ = now_ns;
    refreshed_ = true;
    return new_modules != 0 || gone_modules != 0;
  }

  // The module that held `address` at time_ns: one seen loaded at refreshes on both sides of
  // time_ns; else the only one that may have been (seen on one side only) when its gap had no
  // unseen loads or unloads; `changed` when more than one may have been, or that gap had
  // unseen churn; `no_module` when none.
  [[nodiscard]] module_lookup find(std::uintptr_t address, std::int64_t time_ns) const noexcept {
    const module_info* possible = nullptr;
    std::size_t possible_count = 0;
    bool churn = false;
    for (const auto& known : modules_) {
      if (!known->contains(address)) continue;
      if (known->certainly_loaded_at(time_ns)) return {known.get(), module_lookup_status::found};
      if (time_ns > known->absent_before_ns && time_ns < known->first_seen_ns) {
        churn = churn || had_unseen_churn(known->first_seen_ns);
      } else if (time_ns > known->last_seen_ns && time_ns < known->gone_ns) {
        churn = churn || (!known->loaded() && had_unseen_churn(known->gone_ns));
      } else {
        continue;
      }
      possible = known.get();
      ++possible_count;
    }
    if (possible_count == 1 && !churn) return {possible, module_lookup_status::found};
    if (possible_count != 0) return {nullptr, module_lookup_status::changed};
    return {};
  }

  // Every module ever seen, by id; the objects never move while the map lives.
  [[nodiscard]] std::span<const std::unique_ptr<module_info>> modules() const noexcept { return modules_; }

 private:
  [[nodiscard]] module_info* loaded_match(const observed_module& reported) const noexcept {
    for (const auto& known : modules_) {
      if (known->loaded() && known->bias == reported.bias && known->loader_name == reported.loader_name && known->build_id == reported.build_id) return known.get();
    }
    return nullptr;
  }
  [[nodiscard]] bool had_unseen_churn(std::int64_t refresh_ns) const noexcept {
    return std::binary_search(unseen_churn_refresh_ns_.begin(), unseen_churn_refresh_ns_.end(), refresh_ns);
  }

  std::vector<std::string> in_app_substrings_;
  std::vector<std::unique_ptr<module_info>> modules_;
  std::vector<std::int64_t> unseen_churn_refresh_ns_;  // refreshes whose preceding gap had unseen churn
  std::uint64_t loads_ = 0, unloads_ = 0;
  std::int64_t last_refresh_ns_ = time_before_everything_ns;
  bool refreshed_ = false;
};

}  // namespace spanprof::detail
