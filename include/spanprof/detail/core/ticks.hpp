// spanprof: the one clock shared by spans and samples, as the hot path reads it.
//
// The hot path (span begin/end, the SIGPROF handler) reads raw *ticks* and never converts them:
// conversion to nanoseconds is a multiply the collector does off the hot path (clock.hpp).
// Ticks are the invariant TSC where the CPU has one and the kernel trusts it (its clocksource
// is `tsc`), otherwise CLOCK_MONOTONIC nanoseconds (then one tick is one nanosecond).
// Part of the light public header: <time.h> and a compiler builtin, not <x86intrin.h> (which
// alone preprocesses to ~30,000 lines).
#pragma once

#include <time.h>

#include <atomic>
#include <cstdint>

namespace spanprof::detail {

// ASYNC-SIGNAL-SAFE. clock_gettime is on POSIX's async-signal-safe list; here it is the vDSO.
inline std::int64_t monotonic_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

inline std::int64_t realtime_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Set once by `clock::calibrate()` (at init, before any span can be recorded) and only read
// afterwards, so the hot path reads a plain bool. Relaxed atomic keeps TSan quiet if a
// stray span races init.
inline std::atomic<bool> g_use_tsc{false};
static_assert(std::atomic<bool>::is_always_lock_free);

// ASYNC-SIGNAL-SAFE. One raw timestamp. No fences: like Tracy, we accept that rdtsc may
// execute a few instructions early; spans are far longer than that window.
inline std::int64_t now_ticks() noexcept {
#if defined(__x86_64__)
  if (g_use_tsc.load(std::memory_order_relaxed)) return static_cast<std::int64_t>(__builtin_ia32_rdtsc());
#endif
  return monotonic_ns();
}

}  // namespace spanprof::detail
