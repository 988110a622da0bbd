// spanprof: wall mode's ticker — a thread that wakes at f Hz and tgkill()s every registered
// thread whose running context has a transaction, running or blocked.
//
// NOT ASYNC-SIGNAL-SAFE; runs on its own thread, with SIGPROF blocked.
#pragma once

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <vector>

#include "handler.hpp"

namespace spanprof::detail {

// The ticker's loop, until `stop`. `collect_targets(std::vector<int>&)` appends the tids to
// signal this tick (the sampler does it under its lock).
template <class CollectTargets>
void run_wall_ticks(const std::atomic<bool>& stop, CollectTargets&& collect_targets) noexcept {
  pthread_setname_np(pthread_self(), "spanprof-sample");
  // The ticker itself must never be sampled or interrupted by our own signal.
  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGPROF);
  pthread_sigmask(SIG_BLOCK, &block, nullptr);
  const pid_t pid = ::getpid();
  timespec next{};
  clock_gettime(CLOCK_MONOTONIC, &next);
  std::vector<int> targets;
  targets.reserve(64);
  const std::int64_t period = g_sampler_settings.period_ns.load(std::memory_order_relaxed);
  while (!stop.load(std::memory_order_acquire)) {
    next.tv_nsec += period;
    while (next.tv_nsec >= 1'000'000'000) {
      next.tv_nsec -= 1'000'000'000;
      ++next.tv_sec;
    }
    // Absolute deadlines: a late wake-up does not shift every later tick.
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr) == EINTR) {
    }
    targets.clear();
    collect_targets(targets);
    // Outside the lock: a thread exiting now gets a signal its handler counts as unregistered.
    for (const int tid : targets) ::syscall(SYS_tgkill, pid, tid, SIGPROF);
  }
}

}  // namespace spanprof::detail
