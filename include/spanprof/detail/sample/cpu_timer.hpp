// spanprof: CPU mode's per-thread timers (CLOCK_THREAD_CPUTIME_ID, SIGEV_THREAD_ID).
//
// Each registered thread owns a timer delivering SIGPROF to itself, armed while a context with a
// transaction runs on it. The kernel checks CPU timers once per tick (HZ=250 here), so above
// ~250 Hz expirations merge: each sample weighs 1 + si_overrun and totals stay exact.
// NOT ASYNC-SIGNAL-SAFE, except where the handler disarms (timer_settime is).
#pragma once

#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

#include "handler.hpp"

namespace spanprof::detail {

inline void create_cpu_timer(thread_sampler& ts) noexcept {
  if (ts.has_cpu_timer) return;
  sigevent event{};
  event.sigev_notify = SIGEV_THREAD_ID;
  event.sigev_signo = SIGPROF;
  event._sigev_un._tid = ts.thread_id;  // glibc 2.36 has no sigev_notify_thread_id macro
  // CLOCK_THREAD_CPUTIME_ID names the *calling* thread's clock: registration runs on the
  // thread itself, and start() only reaches threads that registered before sampling began,
  // for which pthread_getcpuclockid gives the right clock.
  clockid_t clock = CLOCK_THREAD_CPUTIME_ID;
  if (ts.thread_id != static_cast<int>(::syscall(SYS_gettid))) {
    // Linux's per-thread CPU clock id: see CPUCLOCK_* in the kernel's posix-timers.h.
    clock = static_cast<clockid_t>((~static_cast<unsigned>(ts.thread_id) << 3) | 6u);
  }
  if (timer_create(clock, &event, &ts.cpu_timer) == 0) {
    ts.cpu_timer_armed.store(false, std::memory_order_relaxed);  // a new timer starts disarmed
    ts.has_cpu_timer = true;
  }
}

// Deletes the thread's timer, if it has one.
inline void delete_cpu_timer(thread_sampler& ts) noexcept {
  if (!ts.has_cpu_timer) return;
  ts.cpu_timer_armed.store(false, std::memory_order_relaxed);
  timer_delete(ts.cpu_timer);
  ts.has_cpu_timer = false;
}

// CPU mode: a context with a transaction starts running on the calling thread (armed), or
// the thread left its outermost transaction (disarmed). One syscall when the state changes,
// none otherwise; a thread outside transactions has its timer disarmed and costs nothing.
inline void arm_cpu_timer(thread_sampler* ts, bool armed) noexcept {
  if (ts == nullptr || !ts->has_cpu_timer) return;
  // An RMW, then the syscall: the handler (which may disarm) sees a consistent flag wherever
  // it interrupts this.
  if (ts->cpu_timer_armed.exchange(armed, std::memory_order_relaxed) == armed) return;
  itimerspec spec{};
  if (armed) {
    const std::int64_t period = g_sampler_settings.period_ns.load(std::memory_order_relaxed);
    spec.it_value.tv_sec = period / 1'000'000'000;
    spec.it_value.tv_nsec = period % 1'000'000'000;
    spec.it_interval = spec.it_value;
  }
  timer_settime(ts->cpu_timer, 0, &spec, nullptr);
}

}  // namespace spanprof::detail
