// spanprof: the SIGPROF sampler — handler, per-thread registration, wall and CPU modes.
//
// Only threads inside a transaction are sampled:
// - wall mode: a sampler thread wakes at f Hz and tgkill()s every registered thread whose
//   current context has an active transaction, running or blocked;
// - cpu mode: each registered thread owns a CLOCK_THREAD_CPUTIME_ID timer delivering SIGPROF
//   to itself (SIGEV_THREAD_ID), armed while it is inside a transaction. The kernel checks CPU
//   timers once per tick (HZ=250 here), so above ~250 Hz expirations merge: each sample weighs
//   1 + si_overrun and totals stay exact.
//
// Everything the handler touches is allocated at registration: the thread's ring, scratch
// arrays for the unwinder. The handler reads two initial-exec TLS pointers: the thread's
// sampler and the execution context running on it (the thread's own, or a fiber's).
#pragma once

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../core/clock.hpp"
#include "../core/counters.hpp"
#include "../record/active_state.hpp"
#include "../core/config.hpp"
#include "ring.hpp"
#include "unwind.hpp"

namespace spanprof::detail {

// One per registered thread. Owned by the sampler; freed only after the thread unregistered
// and the collector drained its ring.
struct thread_sampler {
  int thread_id = 0;
  // This thread's t_running_context, for the ticker: which context runs there now. Valid until
  // the thread unregisters (its TLS outlives its thread_local destructors).
  const std::atomic<active_state*>* running = nullptr;
  std::unique_ptr<sample_ring> ring;
  std::unique_ptr<std::uintptr_t[]> scratch_pcs;
  std::unique_ptr<std::uintptr_t[]> scratch_frames;
  std::size_t max_depth = 0;
  timer_t cpu_timer{};
  bool has_cpu_timer = false;
  // CPU mode: whether cpu_timer is armed. Changed by the thread (arm_cpu_timer) and by its own
  // handler (which disarms it when it fires while no transaction runs), so an RMW: the handler
  // interrupts the thread between instructions, never inside one.
  std::atomic<bool> cpu_timer_armed{false};
  std::atomic<bool> exited{false};     // the thread is gone; drain, then recycle the ring
  volatile sig_atomic_t in_handler = 0;  // re-entrancy guard (a nested SIGPROF is dropped)
};

// What the handler needs of the configuration. Atomics: a re-init rewrites them while threads
// of the previous session may be taking a sample.
struct sampler_settings {
  std::atomic<unwind_method> method{unwind_method::frame_pointers};
  std::atomic<std::size_t> max_stack_copy_bytes{16 * 1024};
  std::atomic<std::int64_t> period_ns{9'900'990};
  std::atomic<std::uint8_t> mode_tag{0};  // as stored in sample_record::mode: 0 wall, 1 cpu
};

inline constinit sampler_settings g_sampler_settings{};
inline constinit struct sigaction g_previous_sigprof{};
inline constinit std::atomic<bool> g_chain_previous{false};

inline thread_local thread_sampler* t_sampler __attribute__((tls_model("initial-exec"))) = nullptr;

// ASYNC-SIGNAL-SAFE. The SIGPROF handler.
inline void sigprof_handler(int signal_number, siginfo_t* info, void* raw_context) noexcept {
  const int saved_errno = errno;
  thread_sampler* ts = t_sampler;
  if (ts == nullptr) {
    g_counters.samples_unregistered.fetch_add(1, std::memory_order_relaxed);
  } else if (ts->in_handler != 0) {
    g_counters.samples_reentrant.fetch_add(1, std::memory_order_relaxed);
  } else {
    ts->in_handler = 1;
    std::atomic_signal_fence(std::memory_order_seq_cst);
    // One load: everything below comes from the context it names, so a fiber switch (a single
    // store to t_running_context) can never give a sample one fiber's ids and another's stack.
    active_state* ctx = t_running_context.load(std::memory_order_relaxed);
    const std::uint64_t txn_id = ctx != nullptr ? ctx->txn_id.load(std::memory_order_relaxed) : 0;
    if (txn_id == 0) {
      g_counters.samples_outside_transaction.fetch_add(1, std::memory_order_relaxed);
      // CPU mode: the running context has no transaction (a fiber without one took over, and
      // switches do not disarm, to keep syscalls off the switch path): stop the timer until a
      // context with a transaction runs again. timer_settime is async-signal-safe (POSIX).
      if (info != nullptr && info->si_code == SI_TIMER && ts->cpu_timer_armed.exchange(false, std::memory_order_relaxed)) {
        const itimerspec disarmed{};
        timer_settime(ts->cpu_timer, 0, &disarmed, nullptr);
      }
    } else {
      sample_record header{};
      header.t_ticks = now_ticks();
      header.ctx_id = ctx->ctx_id;
      header.txn_id = txn_id;
      header.span_id = ctx->span_id.load(std::memory_order_relaxed);
      header.tid = static_cast<std::uint32_t>(ts->thread_id);
      header.mode = g_sampler_settings.mode_tag.load(std::memory_order_relaxed);
      // A CPU timer's overruns are expirations the kernel merged into this one signal.
      header.weight = 1;
      if (info != nullptr && info->si_code == SI_TIMER && info->si_overrun > 0) {
        header.weight += static_cast<std::uint32_t>(info->si_overrun);
      }
      auto& uc = *static_cast<ucontext_t*>(raw_context);
      // The unwinders read only inside `bounds`, so they must be the bounds of the stack the
      // thread is on. If the interrupted sp is not on the running context's stack, the thread
      // is between the store that switched contexts and the jump that switches stacks (or runs
      // on a stack spanprof was not told about): the sample is flagged in_switch (gapfill.md
      // §1: it goes to no span) and keeps only its pc. Reading nothing then also matters for
      // safety: a fiber library may be unmapping the previous fiber's stack in that window.
      stack_bounds bounds = ctx->stack;
#if defined(__x86_64__)
      const auto sp = static_cast<std::uintptr_t>(uc.uc_mcontext.gregs[REG_RSP]);
      if (!bounds.contains(sp, 1)) {
        if (bounds.highest != 0) header.flags |= sample_flag_in_switch;
        bounds = {};
      }
#endif
      bool pushed = false;
      if (g_sampler_settings.method.load(std::memory_order_relaxed) == unwind_method::dwarf) {
        std::uintptr_t prefix[raw_stack_layout::prefix_words];
        const std::uintptr_t* stack_words = nullptr;
        std::size_t stack_word_count = 0;
        capture_raw_stack(uc, bounds, ctx->anchor_fp.load(std::memory_order_relaxed),
                          g_sampler_settings.max_stack_copy_bytes.load(std::memory_order_relaxed), prefix,
                          stack_words, stack_word_count);
        header.flags |= sample_flag_raw_stack;
        if (stack_words != nullptr &&
            bounds.highest - reinterpret_cast<std::uintptr_t>(stack_words + stack_word_count) < sizeof(std::uintptr_t)) {
          header.flags |= sample_flag_stack_top;
        }
        header.anchor_idx = anchor_unknown;  // located by the collector once it has unwound
        pushed = ts->ring->try_push_parts(header, prefix, raw_stack_layout::prefix_words, stack_words, stack_word_count);
      } else {
        const captured_stack stack =
            unwind_frame_pointers(uc, bounds, ts->scratch_pcs.get(), ts->scratch_frames.get(), ts->max_depth);
        header.anchor_idx = find_anchor(ts->scratch_frames.get(), stack.depth,
                                        ctx->anchor_fp.load(std::memory_order_relaxed));
        if (stack.truncated) {
          header.flags |= sample_flag_truncated;
          g_counters.samples_truncated.fetch_add(1, std::memory_order_relaxed);
        }
        pushed = ts->ring->try_push(header, ts->scratch_pcs.get(), stack.depth);
      }
      if (pushed) {
        g_counters.samples_taken.fetch_add(1, std::memory_order_relaxed);
      } else {
        g_counters.samples_dropped.fetch_add(1, std::memory_order_relaxed);
      }
    }
    std::atomic_signal_fence(std::memory_order_seq_cst);
    ts->in_handler = 0;
  }
  if (g_chain_previous.load(std::memory_order_relaxed)) {
    const auto& previous = g_previous_sigprof;
    if ((previous.sa_flags & SA_SIGINFO) != 0 && previous.sa_sigaction != nullptr) {
      previous.sa_sigaction(signal_number, info, raw_context);
    } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN && previous.sa_handler != nullptr) {
      previous.sa_handler(signal_number);
    }
  }
  errno = saved_errno;
}

// The thread's stack: [lowest, highest). NOT ASYNC-SIGNAL-SAFE (pthread_getattr_np allocates).
inline stack_bounds current_thread_stack() noexcept {
  stack_bounds bounds;
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return bounds;
  void* address = nullptr;
  std::size_t size = 0;
  if (pthread_attr_getstack(&attr, &address, &size) == 0) {
    bounds.lowest = reinterpret_cast<std::uintptr_t>(address);
    bounds.highest = bounds.lowest + size;
  }
  pthread_attr_destroy(&attr);
  return bounds;
}

// NOT ASYNC-SIGNAL-SAFE. Owns the registered threads, the handler installation and the wall
// mode's ticking thread. Methods are called from application threads (registration, CPU timer
// arming), init/shutdown, and the collector (draining).
class sampler {
 public:
  struct settings {
    sampling_mode mode = sampling_mode::wall;
    unsigned rate_hz = 101;
    unwind_method method = unwind_method::frame_pointers;
    std::size_t max_depth = 128;
    std::size_t max_stack_copy_bytes = 16 * 1024;  // dwarf: bytes of stack copied per sample
    std::size_t ring_bytes = 256 * 1024;
    bool chain_existing_handler = false;
  };

  // Installs the handler (once per process) and, in wall mode, starts the ticking thread.
  // Returns an empty string, or why sampling stays off (spans keep working).
  std::string start(const settings& s) {
    std::lock_guard lock(mutex_);
    settings_ = s;
    g_sampler_settings.method.store(s.method, std::memory_order_relaxed);
    g_sampler_settings.max_stack_copy_bytes.store(s.max_stack_copy_bytes, std::memory_order_relaxed);
    g_sampler_settings.period_ns.store(1'000'000'000 / static_cast<std::int64_t>(s.rate_hz), std::memory_order_relaxed);
    g_sampler_settings.mode_tag.store(s.mode == sampling_mode::cpu ? 1 : 0, std::memory_order_relaxed);
    if (std::string problem = install_handler(s.chain_existing_handler); !problem.empty()) return problem;
    active_.store(true, std::memory_order_release);
    for (auto& ts : threads_) {
      if (!ts->exited.load(std::memory_order_relaxed) && s.mode == sampling_mode::cpu) create_cpu_timer(*ts);
    }
    if (s.mode == sampling_mode::wall) {
      stop_ticking_.store(false, std::memory_order_relaxed);
      ticker_ = std::thread([this] { tick_loop(); });
    }
    return {};
  }

  // Stops signalling. The handler stays installed: a SIGPROF already on its way must never
  // meet SIG_DFL, whose action is to kill the process.
  void stop() noexcept {
    active_.store(false, std::memory_order_release);
    stop_ticking_.store(true, std::memory_order_release);
    if (ticker_.joinable()) ticker_.join();
    std::lock_guard lock(mutex_);
    for (auto& ts : threads_) {
      if (ts->has_cpu_timer) {
        ts->cpu_timer_armed.store(false, std::memory_order_relaxed);
        timer_delete(ts->cpu_timer);
        ts->has_cpu_timer = false;
      }
    }
  }

  [[nodiscard]] bool active() const noexcept { return active_.load(std::memory_order_acquire); }

  // In a child of fork(): only the forking thread exists. The ticker is gone and the mutex may
  // have been held by a parent thread (so may the thread list: it is not touched here).
  void forget_parent_after_fork() noexcept {
    active_.store(false, std::memory_order_relaxed);
    new (&ticker_) std::thread();
    new (&mutex_) std::mutex();
  }

  // Registers the calling thread: its stack bounds (into `thread_context`, the thread's own
  // execution context; fibers carry theirs), ring, scratch space, CPU timer. Called at its first
  // transaction (or the first switch to a fiber with one), never from the handler. Returns
  // nullptr on allocation failure.
  thread_sampler* register_current_thread(active_state& thread_context, int thread_id) noexcept {
    if (t_sampler != nullptr) return t_sampler;
    try {
      auto ts = std::make_unique<thread_sampler>();
      ts->thread_id = thread_id;
      ts->running = &t_running_context;
      // Before t_sampler is published below: no handler reads it earlier.
      if (thread_context.stack.highest == 0) thread_context.stack = current_thread_stack();
      ts->max_depth = settings_.max_depth;
      ts->scratch_pcs.reset(new std::uintptr_t[ts->max_depth]);
      ts->scratch_frames.reset(new std::uintptr_t[ts->max_depth]);
      std::lock_guard lock(mutex_);
      if (!free_rings_.empty() && free_rings_.back()->capacity_bytes() >= settings_.ring_bytes) {
        ts->ring = std::move(free_rings_.back());
        free_rings_.pop_back();
      } else {
        ts->ring = std::make_unique<sample_ring>(settings_.ring_bytes);
      }
      if (active() && settings_.mode == sampling_mode::cpu) create_cpu_timer(*ts);
      thread_sampler* raw = ts.get();
      threads_.push_back(std::move(ts));
      std::atomic_signal_fence(std::memory_order_seq_cst);
      t_sampler = raw;  // from here on, the handler records this thread's samples
      return raw;
    } catch (...) {
      return nullptr;
    }
  }

  // At thread exit. SIGPROF is blocked while the thread detaches itself, so no handler can run
  // half-way through; the ring stays until the collector has drained it.
  void unregister_current_thread() noexcept {
    thread_sampler* ts = t_sampler;
    if (ts == nullptr) return;
    sigset_t block, previous;
    sigemptyset(&block);
    sigaddset(&block, SIGPROF);
    pthread_sigmask(SIG_BLOCK, &block, &previous);
    t_sampler = nullptr;
    {
      std::lock_guard lock(mutex_);
      if (ts->has_cpu_timer) {
        ts->cpu_timer_armed.store(false, std::memory_order_relaxed);
        timer_delete(ts->cpu_timer);
        ts->has_cpu_timer = false;
      }
      ts->exited.store(true, std::memory_order_release);
    }
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }

  // CPU mode: a context with a transaction starts running on the calling thread (armed), or
  // the thread left its outermost transaction (disarmed). One syscall when the state changes,
  // none otherwise; a thread outside transactions has its timer disarmed and costs nothing.
  void arm_cpu_timer(bool armed) noexcept {
    thread_sampler* ts = t_sampler;
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

  // Collector: visits every sample in every ring, then recycles the rings of exited threads.
  template <class Visit>
  std::size_t drain(Visit&& visit) {
    std::lock_guard lock(mutex_);
    std::size_t total = 0;
    for (auto& ts : threads_) total += ts->ring->drain(visit);
    for (auto it = threads_.begin(); it != threads_.end();) {
      if ((*it)->exited.load(std::memory_order_acquire)) {
        total += (*it)->ring->drain(visit);  // anything pushed before it exited
        if (free_rings_.size() < 64) free_rings_.push_back(std::move((*it)->ring));
        it = threads_.erase(it);
      } else {
        ++it;
      }
    }
    return total;
  }

  // Collector: the drop logs of every ring (drops are rare; this is for the profile metadata).
  template <class Visit>
  void visit_drops(Visit&& visit) {
    std::lock_guard lock(mutex_);
    for (auto& ts : threads_) ts->ring->visit_drop_log(visit);
  }

 private:
  std::string install_handler(bool chain) {
    if (handler_installed_) return {};
    struct sigaction existing {};
    sigaction(SIGPROF, nullptr, &existing);
    const bool has_handler = (existing.sa_flags & SA_SIGINFO) != 0
                                 ? existing.sa_sigaction != nullptr
                                 : existing.sa_handler != SIG_DFL && existing.sa_handler != SIG_IGN;
    if (has_handler && !chain) {
      return "spanprof: the program already has a SIGPROF handler (another profiler?); sampling stays off. "
             "Set config.chain_sigprof = true to sample and call that handler after ours";
    }
    g_previous_sigprof = existing;
    g_chain_previous.store(has_handler, std::memory_order_relaxed);
    struct sigaction action {};
    action.sa_sigaction = [](int sig, siginfo_t* info, void* uc) { sigprof_handler(sig, info, uc); };
    // SA_RESTART: most interrupted syscalls resume by themselves; the ones the kernel never
    // restarts (poll, epoll_wait, nanosleep, …) can see EINTR in wall mode (README).
    action.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGPROF, &action, nullptr) != 0) {
      return std::string("spanprof: installing the SIGPROF handler failed: ") + std::strerror(errno);
    }
    handler_installed_ = true;
    return {};
  }

  void create_cpu_timer(thread_sampler& ts) noexcept {
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

  void tick_loop() noexcept {
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
    while (!stop_ticking_.load(std::memory_order_acquire)) {
      next.tv_nsec += period;
      while (next.tv_nsec >= 1'000'000'000) {
        next.tv_nsec -= 1'000'000'000;
        ++next.tv_sec;
      }
      // Absolute deadlines: a late wake-up does not shift every later tick.
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, nullptr) == EINTR) {
      }
      targets.clear();
      {
        std::lock_guard lock(mutex_);
        for (auto& ts : threads_) {
          if (ts->exited.load(std::memory_order_relaxed)) continue;
          // Fiber contexts are recycled, never freed (record/fiber_registry.hpp), and a thread's own context is
          // freed only after it unregistered (under mutex_): `current` is safe to read even if
          // the thread switches away from it right now, which at worst costs one signal that
          // its handler counts as outside a transaction.
          const active_state* current = ts->running->load(std::memory_order_relaxed);
          if (current != nullptr && current->txn_id.load(std::memory_order_relaxed) != 0) targets.push_back(ts->thread_id);
        }
      }
      // Outside the lock: a thread exiting now gets a signal its handler counts as unregistered.
      for (const int tid : targets) ::syscall(SYS_tgkill, pid, tid, SIGPROF);
    }
  }

  std::mutex mutex_;
  settings settings_;
  std::vector<std::unique_ptr<thread_sampler>> threads_;
  std::vector<std::unique_ptr<sample_ring>> free_rings_;
  std::thread ticker_;
  std::atomic<bool> stop_ticking_{false};
  std::atomic<bool> active_{false};
  bool handler_installed_ = false;
};

}  // namespace spanprof::detail
