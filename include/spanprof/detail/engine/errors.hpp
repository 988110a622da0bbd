// spanprof: the one path every error takes (error_reporter::report).
//
// A profiler never throws into, or aborts, the program it observes: every failure becomes a
// counter plus one call of the configured callback (default: a rate-limited stderr line).
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

#include "../core/clock.hpp"
#include "../core/config.hpp"
#include "../core/counters.hpp"

namespace spanprof::detail {

// NOT ASYNC-SIGNAL-SAFE: takes a lock and may write to stderr.
class error_reporter {
 public:
  void set_callback(callback<void(const spanprof::error&)> callback, bool to_stderr) {
    std::lock_guard lock(mutex_);
    callback_ = std::move(callback);
    to_stderr_ = to_stderr;
  }

  void report(live_counters& stats, error_kind kind, std::string message) noexcept {
    bump(stats.errors);
    if (kind == error_kind::api_misuse) bump(stats.api_misuse);
    try {
      callback<void(const spanprof::error&)> callback;
      bool print = false;
      {
        std::lock_guard lock(mutex_);
        callback = callback_;
        // One stderr line per kind per second, so a failing disk cannot flood the logs.
        const std::int64_t now = monotonic_ns();
        auto& last = last_stderr_ns_[static_cast<int>(kind)];
        print = to_stderr_ && (last == 0 || now - last >= 1'000'000'000);
        if (print) last = now;
      }
      if (print) {
        const std::string line = message + '\n';
        // write(2), not stdio: no locale, no buffering, no interleaving with the host's FILE*.
        const ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
        (void)ignored;
      }
      // Called without our lock held, so a callback that uses spanprof cannot deadlock.
      if (callback) callback(spanprof::error{kind, std::move(message)});
    } catch (...) {
      // A throwing callback must not escape into the host; it is counted as one more error.
      bump(stats.errors);
    }
  }

 private:
  std::mutex mutex_;
  callback<void(const spanprof::error&)> callback_;
  bool to_stderr_ = true;
  std::int64_t last_stderr_ns_[8] = {};
};

}  // namespace spanprof::detail
