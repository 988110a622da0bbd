// spanprof: fiber execution contexts — pooled, listed for shutdown, and the slow half of a switch.
//
// A fiber (a user-level thread: Boost.Context, Boost.Fiber, asio::spawn, a hand-written
// scheduler) gets an execution_context of its own: its transactions and spans live there, not
// on the thread that happens to run it, so they survive suspension and migration to another
// thread. What runs on a thread is named by one TLS pointer, t_running_context (active_state.hpp);
// switching fibers is one relaxed store to it plus a signal fence. The SIGPROF handler reads
// that pointer once and takes the transaction, span and stack bounds from the context it names,
// so a sample is charged to the context that was running, never to a mix of two. A sample taken
// after the store but before the jump to the new stack (or after the jump but before the store)
// sees an sp outside the named context's stack: the handler flags it in_switch and keeps only
// its pc (sample/sampler.hpp).
//
// Switches are cheap when no transaction is involved: the store and two loads. When the context
// switched out or in has a transaction open, the switch is recorded in that transaction
// (transaction_record.hpp, fiber_switch_event: the gap filler's suspended intervals), the thread is
// registered with the sampler if it was not, and in CPU mode the thread's timer is armed.
//
// Fiber contexts are pooled, never freed: the wall-mode ticker reads the running context of
// every thread without synchronizing with their switches, so a context it just read may be
// released at any moment; a pooled one stays valid memory (recycling costs at most one stray
// signal). Live fiber contexts are listed so that shutdown() can write their open
// transactions, as it does for threads.
//
// NOT ASYNC-SIGNAL-SAFE unless marked: nothing here runs in the handler.
#pragma once

#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <mutex>

#include "../core/ticks.hpp"
#include "../engine/runtime.hpp"
#include "fiber_switch.hpp"
#include "thread_registry.hpp"
#include "transaction_ops.hpp"

namespace spanprof::detail {


// Fiber contexts handed out since the process began: the low bits of a fiber's ctx_id.
inline constinit std::atomic<std::uint64_t> g_fiber_contexts_created{0};

// Caller holds rt.registry_mutex. Every context shutdown() must visit: threads, then fibers.
template <class Visit>
void for_each_listed_context(runtime& rt, Visit&& visit) {
  for (execution_context* ctx : rt.contexts) visit(ctx);
  for (execution_context* ctx = rt.fiber_contexts; ctx != nullptr; ctx = ctx->registry_next) visit(ctx);
}

// A fresh context for a new fiber, with the stack it will run on ({0, 0}: unknown). Null only
// when out of memory (the fiber then runs with no context: its transactions are not recorded).
inline execution_context* acquire_fiber_context(stack_bounds stack) noexcept {
  runtime& rt = the_runtime();
  execution_context* ctx = nullptr;
  {
    std::lock_guard lock(rt.registry_mutex);
    ctx = rt.free_fiber_contexts;
    if (ctx != nullptr) rt.free_fiber_contexts = ctx->registry_next;
  }
  // A recycled context keeps its id generator (already seeded): no getrandom per fiber.
  if (ctx == nullptr && (ctx = new (std::nothrow) execution_context) == nullptr) return nullptr;
  ctx->ctx_id = fiber_ctx_id_bit | (g_fiber_contexts_created.fetch_add(1, std::memory_order_relaxed) + 1);
  ctx->is_fiber = true;
  ctx->thread_id = 0;
  ctx->thread_name[0] = '\0';
  ctx->stack = stack;
  ctx->depth = 0;
  publish_active(*ctx, 0, nullptr);
  std::lock_guard lock(rt.registry_mutex);
  ctx->registry_prev = nullptr;
  ctx->registry_next = rt.fiber_contexts;
  if (rt.fiber_contexts != nullptr) rt.fiber_contexts->registry_prev = ctx;
  rt.fiber_contexts = ctx;
  ctx->listed = true;
  return ctx;
}

// Finishes every transaction still open on `ctx` now, as aborted (the fiber will not finish
// them: it is being destroyed or unwound). The caller owns ctx: it runs it, or the fiber is
// suspended and nobody else can resume it. Later ends from the transactions' RAII objects find
// them closed and do nothing.
inline void abandon_context(execution_context* ctx) noexcept {
  if (ctx != nullptr && ctx->depth > 0) finish_slot(*ctx, 0, span_status::aborted, true);
}

// Appends a switch event to every recorded transaction `ctx` has open. The caller owns ctx.
[[gnu::always_inline]] inline void record_switch(execution_context* ctx, fiber_switch_event event) noexcept {
  if (ctx == nullptr) return;
  for (int slot = 0; slot < ctx->depth; ++slot) {
    transaction_record* rec = ctx->open[static_cast<std::size_t>(slot)].load(std::memory_order_relaxed);
    if (rec == nullptr) continue;  // unsampled
    fiber_switch_event* e = rec->switches.prepare_next(transaction_record::max_switch_events);
    if (e == nullptr) {
      ++rec->counters.switch_events_dropped;
      continue;
    }
    *e = event;
    rec->switches.publish_next();
  }
}

// The slow half of a switch: records it in the open transactions of both contexts, registers
// the thread for a context that brings a transaction, arms the CPU timer. Out of line: the
// common switch (no transaction on either side) never calls it.
inline void note_switch(execution_context* from, execution_context* to) noexcept {
  if (from == to) return;
  // One timestamp: `from` stops exactly when `to` starts. Read first: rdtsc takes about as long
  // as a bare fiber switch here, and the loads below can proceed while it completes.
  const std::int64_t t = now_ticks();
  runtime* rt = g_recording.load(std::memory_order_acquire);
  execution_context* thread_ctx = t_thread_context;
  const bool to_active = to != nullptr && to->txn_id.load(std::memory_order_relaxed) != 0;
  if (rt != nullptr && to_active) {
    // A fiber that migrated here brings its transaction to a thread that may never have opened
    // one: without registering, its samples here would be lost.
    if (thread_ctx == nullptr) thread_ctx = register_current_thread(*rt);
    if (thread_ctx != nullptr && t_sampler == nullptr && rt->sampling.load(std::memory_order_relaxed)) {
      rt->stack_sampler.register_current_thread(*thread_ctx, thread_ctx->thread_id);
    }
  }
  const auto tid = static_cast<std::uint32_t>(thread_ctx != nullptr ? thread_ctx->thread_id : ::syscall(SYS_gettid));
  record_switch(from, {t, tid, fiber_switch_kind::suspend});
  record_switch(to, {t, tid, fiber_switch_kind::resume});
  // CPU mode: timers are per thread and charge the running context. Arm when a context with a
  // transaction starts running; do not disarm when one stops (that would be a syscall on every
  // switch to a scheduler): the handler disarms the timer the first time it fires outside a
  // transaction.
  if (rt != nullptr && to_active && rt->sampling_cpu.load(std::memory_order_relaxed)) rt->stack_sampler.arm_cpu_timer(true);
}

// Gives a fiber's context back: makes sure no thread runs it (the caller's, if it still does),
// finishes its open transactions as aborted, and returns it to the pool.
inline void release_fiber_context(execution_context* ctx) noexcept {
  if (ctx == nullptr) return;
  if (current_context() == ctx) switch_running_context(t_thread_context);
  abandon_context(ctx);  // before unlisting, like a thread's exit: shutdown() may be copying it
  runtime& rt = the_runtime();
  std::lock_guard lock(rt.registry_mutex);
  if (ctx->listed) {
    if (ctx->registry_prev != nullptr) ctx->registry_prev->registry_next = ctx->registry_next;
    else rt.fiber_contexts = ctx->registry_next;
    if (ctx->registry_next != nullptr) ctx->registry_next->registry_prev = ctx->registry_prev;
    ctx->listed = false;
  }
  ctx->registry_prev = nullptr;
  ctx->registry_next = rt.free_fiber_contexts;
  rt.free_fiber_contexts = ctx;
}

// In a child of fork(): only the forking thread exists. Its own context stays listed; fibers are
// unlisted (the parent writes their open transactions), though the child may go on running
// them. Touches memory only: runs right after fork.
inline void forget_parent_contexts_after_fork(runtime& rt) noexcept {
  rt.forget_parent_after_fork(t_thread_context);
  for (execution_context* ctx = rt.fiber_contexts; ctx != nullptr; ctx = ctx->registry_next) ctx->listed = false;
  rt.fiber_contexts = nullptr;
}

// With SIGPROF blocked while the two words change, if `ctx` runs here: this thread's handler
// must see the old bounds or the new ones, never one of each.
inline void set_context_stack(execution_context* ctx, stack_bounds bounds) noexcept {
  if (ctx == nullptr) return;
  if (current_context() != ctx) {
    ctx->stack = bounds;
    return;
  }
  sigset_t block, previous;
  sigemptyset(&block);
  sigaddset(&block, SIGPROF);
  pthread_sigmask(SIG_BLOCK, &block, &previous);
  ctx->stack = bounds;
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

}  // namespace spanprof::detail
