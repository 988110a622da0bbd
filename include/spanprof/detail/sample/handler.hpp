// spanprof: the SIGPROF handler and the per-thread state it reads.
//
// ASYNC-SIGNAL-SAFE, the whole handler: no malloc, no lock, no stdio, no exception, no lazily
// allocated TLS, errno preserved. Everything it touches is allocated at registration (the
// thread's ring, scratch arrays for the unwinder) or lives in static storage. It reads two
// initial-exec TLS pointers: the thread's sampler and the execution context running on it.
#pragma once

#include <signal.h>
#include <time.h>
#include <ucontext.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "../core/counters.hpp"
#include "../core/ticks.hpp"
#include "../record/active_state.hpp"
#include "frame_pointer_walk.hpp"
#include "ring.hpp"
#include "stack_copy.hpp"

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

// ASYNC-SIGNAL-SAFE. One sample of the context `ctx` running on the thread of `ts`, inside
// transaction `txn_id`: its stack (walked or copied, within the context's stack) into the ring.
inline void record_sample(thread_sampler& ts, const active_state& ctx, std::uint64_t txn_id, const siginfo_t* info,
                          ucontext_t& uc) noexcept {
  sample_record header{};
  header.t_ticks = now_ticks();
  header.ctx_id = ctx.ctx_id;
  header.txn_id = txn_id;
  header.span_id = ctx.span_id.load(std::memory_order_relaxed);
  header.tid = static_cast<std::uint32_t>(ts.thread_id);
  header.mode = g_sampler_settings.mode_tag.load(std::memory_order_relaxed);
  // A CPU timer's overruns are expirations the kernel merged into this one signal.
  header.weight = 1;
  if (info != nullptr && info->si_code == SI_TIMER && info->si_overrun > 0) {
    header.weight += static_cast<std::uint32_t>(info->si_overrun);
  }
  // The unwinders read only inside `bounds`, so they must be the bounds of the stack the
  // thread is on. If the interrupted sp is not on the running context's stack, the thread
  // is between the store that switched contexts and the jump that switches stacks (or runs
  // on a stack spanprof was not told about): the sample is flagged in_switch (gapfill.md
  // §1: it goes to no span) and keeps only its pc. Reading nothing then also matters for
  // safety: a fiber library may be unmapping the previous fiber's stack in that window.
  stack_bounds bounds = ctx.stack;
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
    capture_raw_stack(uc, bounds, ctx.anchor_fp.load(std::memory_order_relaxed),
                      g_sampler_settings.max_stack_copy_bytes.load(std::memory_order_relaxed), prefix,
                      stack_words, stack_word_count);
    header.flags |= sample_flag_raw_stack;
    if (stack_words != nullptr &&
        bounds.highest - reinterpret_cast<std::uintptr_t>(stack_words + stack_word_count) < sizeof(std::uintptr_t)) {
      header.flags |= sample_flag_stack_top;
    }
    header.anchor_idx = anchor_unknown;  // located by the collector once it has unwound
    pushed = ts.ring->try_push_parts(header, prefix, raw_stack_layout::prefix_words, stack_words, stack_word_count);
  } else {
    const captured_stack stack =
        unwind_frame_pointers(uc, bounds, ts.scratch_pcs.get(), ts.scratch_frames.get(), ts.max_depth);
    header.anchor_idx = find_anchor(ts.scratch_frames.get(), stack.depth,
                                    ctx.anchor_fp.load(std::memory_order_relaxed));
    if (stack.truncated) {
      header.flags |= sample_flag_truncated;
      g_counters.samples_truncated.fetch_add(1, std::memory_order_relaxed);
    }
    pushed = ts.ring->try_push(header, ts.scratch_pcs.get(), stack.depth);
  }
  if (pushed) {
    g_counters.samples_taken.fetch_add(1, std::memory_order_relaxed);
  } else {
    g_counters.samples_dropped.fetch_add(1, std::memory_order_relaxed);
  }
}

// ASYNC-SIGNAL-SAFE (as far as the previous handler is). chain_sigprof: the handler spanprof
// replaced gets the signal after us.
inline void forward_to_previous_handler(int signal_number, siginfo_t* info, void* raw_context) noexcept {
  const auto& previous = g_previous_sigprof;
  if ((previous.sa_flags & SA_SIGINFO) != 0 && previous.sa_sigaction != nullptr) {
    previous.sa_sigaction(signal_number, info, raw_context);
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN && previous.sa_handler != nullptr) {
    previous.sa_handler(signal_number);
  }
}

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
      record_sample(*ts, *ctx, txn_id, info, *static_cast<ucontext_t*>(raw_context));
    }
    std::atomic_signal_fence(std::memory_order_seq_cst);
    ts->in_handler = 0;
  }
  if (g_chain_previous.load(std::memory_order_relaxed)) forward_to_previous_handler(signal_number, info, raw_context);
  errno = saved_errno;
}

}  // namespace spanprof::detail
