// spanprof: the clock's calibration: which tick source, and how ticks become nanoseconds.
//
// The hot path reads raw ticks (ticks.hpp); the collector converts them with the ratio measured
// here. Engine only: application threads never include this file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "ticks.hpp"

namespace spanprof::detail {

// Why we trust the TSC only when the kernel does: an invariant TSC (CPUID 0x80000007 EDX[8])
// can still be unsynchronised across sockets or unstable under some hypervisors; the kernel
// checks that at boot and demotes its clocksource when it finds trouble.
inline bool tsc_is_trustworthy() noexcept {
#if defined(__x86_64__)
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  // The cast: gcc's <cpuid.h> returns unsigned, clang's returns int (-Wsign-compare).
  if (static_cast<unsigned>(__get_cpuid_max(0x80000000u, nullptr)) < 0x80000007u) return false;
  __cpuid(0x80000007u, eax, ebx, ecx, edx);
  if ((edx & (1u << 8)) == 0) return false;
  std::FILE* f = std::fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
  if (f == nullptr) return false;
  char name[32] = {};
  const bool ok = std::fgets(name, sizeof name, f) != nullptr && std::strncmp(name, "tsc", 3) == 0;
  std::fclose(f);
  return ok;
#else
  return false;
#endif
}

// Converts ticks to monotonic nanoseconds: ns = base_ns + (ticks - base_ticks) * ns_per_tick.
// The collector re-anchors the ratio over an ever longer baseline (`refine`), so its error
// shrinks the longer the process runs. Not used on the hot path.
struct tick_converter {
  std::int64_t base_ticks = 0;
  std::int64_t base_ns = 0;
  double ns_per_tick = 1.0;

  [[nodiscard]] std::int64_t to_ns(std::int64_t ticks) const noexcept {
    return base_ns + static_cast<std::int64_t>(static_cast<double>(ticks - base_ticks) * ns_per_tick);
  }
};

// Reads ticks and monotonic ns as close together as possible (the pair with the smallest
// bracketing window out of a few tries), so the calibration error is one clock read.
inline void read_tick_ns_pair(std::int64_t& ticks, std::int64_t& ns) noexcept {
  std::int64_t best_window = INT64_MAX;
  for (int attempt = 0; attempt < 5; ++attempt) {
    const std::int64_t t0 = now_ticks();
    const std::int64_t n = monotonic_ns();
    const std::int64_t t1 = now_ticks();
    if (t1 - t0 < best_window) {
      best_window = t1 - t0;
      ticks = t0 + (t1 - t0) / 2;
      ns = n;
    }
  }
}

class clock_calibration {
 public:
  // Decides the tick source and measures an initial ratio over `window_ns`. Called by init().
  void calibrate(std::int64_t window_ns = 2'000'000) noexcept {
    const bool use_tsc = tsc_is_trustworthy();
    g_use_tsc.store(use_tsc, std::memory_order_relaxed);
    tick_converter c;
    read_tick_ns_pair(c.base_ticks, c.base_ns);
    if (use_tsc) {
      std::int64_t ticks = 0, ns = 0;
      do { read_tick_ns_pair(ticks, ns); } while (ns - c.base_ns < window_ns);
      c.ns_per_tick = static_cast<double>(ns - c.base_ns) / static_cast<double>(ticks - c.base_ticks);
    }
    origin_ = c;
    current_ = c;
    wall_anchor_realtime_ns_ = realtime_ns();
    wall_anchor_monotonic_ns_ = monotonic_ns();
  }

  // Longer baseline, smaller error: re-derive the ratio from the origin to now.
  void refine() noexcept {
    if (!g_use_tsc.load(std::memory_order_relaxed)) return;
    std::int64_t ticks = 0, ns = 0;
    read_tick_ns_pair(ticks, ns);
    if (ticks <= origin_.base_ticks || ns - origin_.base_ns < 50'000'000) return;
    current_.base_ticks = origin_.base_ticks;
    current_.base_ns = origin_.base_ns;
    current_.ns_per_tick =
        static_cast<double>(ns - origin_.base_ns) / static_cast<double>(ticks - origin_.base_ticks);
  }

  [[nodiscard]] const tick_converter& converter() const noexcept { return current_; }
  [[nodiscard]] bool uses_tsc() const noexcept { return g_use_tsc.load(std::memory_order_relaxed); }

  // The one wall-clock anchor: formats that need epoch time add it to monotonic ns.
  [[nodiscard]] std::int64_t monotonic_to_epoch_ns(std::int64_t mono_ns) const noexcept {
    return wall_anchor_realtime_ns_ + (mono_ns - wall_anchor_monotonic_ns_);
  }

 private:
  tick_converter origin_{};
  tick_converter current_{};
  std::int64_t wall_anchor_realtime_ns_ = 0;
  std::int64_t wall_anchor_monotonic_ns_ = 0;
};

}  // namespace spanprof::detail
