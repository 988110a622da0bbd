// spanprof: counters and the one path every error takes (`report_error`).
//
// A profiler never throws into, or aborts, the program it observes: every failure becomes a
// counter plus one call of the configured callback (default: a rate-limited stderr line).
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>

#include "../core/clock.hpp"
#include "../core/config.hpp"

namespace spanprof::detail {

// The live counters behind spanprof::stats(). Relaxed increments: they are statistics, and
// none of them orders anything. None is touched per span on the hot path.
struct live_stats {
#define SPANPROF_DETAIL_STATS(X)                                                                 \
  X(transactions_started) X(transactions_finished) X(transactions_not_sampled)                   \
  X(transactions_collected) X(transactions_written) X(transactions_dropped) X(transactions_aborted) X(spans_started)        \
  X(spans_dropped) X(spans_auto_closed) X(spans_closed_out_of_order) X(cross_context_ends)       \
  X(nested_transactions) X(strings_truncated) X(invalid_utf8_repaired) X(files_written) X(errors) \
  X(api_misuse) X(samples_orphaned) X(aggregate_stacks_over_cap) X(aggregate_names_over_cap)     \
  X(profiles_omitted) X(profile_samples_dropped)
#define SPANPROF_DETAIL_DECLARE(name) std::atomic<std::uint64_t> name{0};
  SPANPROF_DETAIL_STATS(SPANPROF_DETAIL_DECLARE)
#undef SPANPROF_DETAIL_DECLARE

  [[nodiscard]] spanprof::counters snapshot() const noexcept {
    spanprof::counters s;
#define SPANPROF_DETAIL_COPY(name) s.name = name.load(std::memory_order_relaxed);
    SPANPROF_DETAIL_STATS(SPANPROF_DETAIL_COPY)
#undef SPANPROF_DETAIL_COPY
    return s;
  }

  void reset() noexcept {
#define SPANPROF_DETAIL_ZERO(name) name.store(0, std::memory_order_relaxed);
    SPANPROF_DETAIL_STATS(SPANPROF_DETAIL_ZERO)
#undef SPANPROF_DETAIL_ZERO
  }
};

inline void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1) noexcept {
  counter.fetch_add(by, std::memory_order_relaxed);
}

// NOT ASYNC-SIGNAL-SAFE: takes a lock and may write to stderr.
class error_reporter {
 public:
  void set_callback(std::function<void(const spanprof::error&)> callback, bool to_stderr) {
    std::lock_guard lock(mutex_);
    callback_ = std::move(callback);
    to_stderr_ = to_stderr;
  }

  void report(live_stats& stats, error_kind kind, std::string message) noexcept {
    bump(stats.errors);
    if (kind == error_kind::api_misuse) bump(stats.api_misuse);
    try {
      std::function<void(const spanprof::error&)> callback;
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
  std::function<void(const spanprof::error&)> callback_;
  bool to_stderr_ = true;
  std::int64_t last_stderr_ns_[8] = {};
};

}  // namespace spanprof::detail
