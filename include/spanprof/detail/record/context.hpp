// spanprof: execution contexts and the span/transaction operations behind the macros.
//
// An execution context is a thread or a fiber (fiber.hpp): it owns a stack of open transactions
// and, inside the innermost one, a chain of open spans. Everything here runs on the thread the
// context is running on, without locks (a fiber's context is owned by whichever thread runs the
// fiber; handing a fiber to another thread hands its context over with it). The only other
// readers are the SIGPROF handler, which reads the running context's active_state (its base
// class, sampler.hpp), and shutdown(), which snapshots open transactions through the protocol
// described in records.hpp.
#pragma once

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "../core/clock.hpp"
#include "../core/ids.hpp"
#include "records.hpp"
#include "../engine/runtime.hpp"
#include "../sample/sampler.hpp"

namespace spanprof::detail {

// The active_state base (ctx_id, the active transaction/span, the stack bounds) is what the
// handler reads; it is a base, not a member, so that the one TLS pointer t_running_context serves
// both the handler and the macros, and a fiber switch is one store.
struct execution_context : active_state {
  static constexpr int max_open_transactions = 8;

  // ctx_id (in active_state): the kernel tid for threads; fiber_ctx_id_bit | n for fibers.
  int thread_id = 0;         // threads: the kernel tid; fibers: 0 (they run on any thread)
  char thread_name[16] = {};
  bool is_fiber = false;
  xoshiro256 rng;  // ids and sampling decisions; owned by this context, so no TLS lookups

  // Open transactions, outermost first. A null slot below `depth` is a transaction that
  // traces_sample_rate left unrecorded: spans inside it are no-ops, not children of the outer.
  std::array<std::atomic<transaction_record*>, max_open_transactions> open{};
  std::array<std::uint64_t, max_open_transactions> open_serial{};
  int depth = 0;

  // Threads only: records taken in bulk from the global pool. Fibers use the cache of the
  // thread they run on, so thousands of fibers do not each hoard records.
  transaction_record* free_cache = nullptr;

  // Fibers only, under runtime::registry_mutex: the list of live fiber contexts that shutdown()
  // walks, and the free list of released ones (fiber.hpp).
  execution_context* registry_prev = nullptr;
  execution_context* registry_next = nullptr;
  bool listed = false;
};

// The thread's own context (null until the thread registers); t_running_context (sampler.hpp)
// is the one running now, this one or a fiber's. initial-exec TLS, a trivially initialized
// pointer.
inline thread_local execution_context* t_thread_context __attribute__((tls_model("initial-exec"))) = nullptr;

// ASYNC-SIGNAL-SAFE: one TLS load. The context running on this thread: its own or a fiber's.
inline execution_context* current_context() noexcept {
  return static_cast<execution_context*>(t_running_context.load(std::memory_order_relaxed));
}

// ASYNC-SIGNAL-SAFE. Makes `ctx` the running context of this thread: the one store a fiber
// switch is. The fence keeps the compiler from moving it across the jump to another stack.
inline void set_current_context(execution_context* ctx) noexcept {
  t_running_context.store(ctx, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

inline void publish_active(execution_context& ctx, std::uint64_t txn_id, const span_record* span) noexcept {
  ctx.txn_id.store(txn_id, std::memory_order_relaxed);
  ctx.span_id.store(span != nullptr ? span->id : 0, std::memory_order_relaxed);
  ctx.anchor_fp.store(span != nullptr ? span->anchor_fp : 0, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
}

// ---- registration ---------------------------------------------------------------------------

void finish_open_transactions_at_exit(execution_context& ctx) noexcept;

// Owns the thread's context; its destructor runs at thread exit.
struct context_owner {
  execution_context* ctx = nullptr;
  ~context_owner() {
    if (ctx == nullptr) return;
    finish_open_transactions_at_exit(*ctx);
    runtime& rt = the_runtime();
    rt.stack_sampler.unregister_current_thread();  // before ctx (its active_state) is freed
    {
      std::lock_guard lock(rt.registry_mutex);
      std::erase(rt.contexts, ctx);
      if (ctx->free_cache != nullptr) {
        transaction_record* last = ctx->free_cache;
        while (last->next != nullptr) last = last->next;
        rt.free_records.push_chain(ctx->free_cache, last);
      }
    }
    set_current_context(nullptr);  // whatever ran last: the thread is gone
    t_thread_context = nullptr;
    delete ctx;
  }
};

// Registers the calling thread and returns its own context. Not on the per-span path: once per
// thread, at its first transaction (or an explicit spanprof::register_thread(), or the first
// switch to a fiber with a transaction open). A fiber may be running: it stays the running one.
inline execution_context* register_current_thread(runtime& rt) noexcept {
  if (t_thread_context != nullptr) return t_thread_context;
  try {
    thread_local context_owner owner;
    auto* ctx = new execution_context;
    ctx->thread_id = static_cast<int>(::syscall(SYS_gettid));
    ctx->ctx_id = static_cast<std::uint64_t>(ctx->thread_id);
    if (pthread_getname_np(pthread_self(), ctx->thread_name, sizeof ctx->thread_name) != 0) ctx->thread_name[0] = '\0';
    {
      std::lock_guard lock(rt.registry_mutex);
      rt.contexts.push_back(ctx);
    }
    owner.ctx = ctx;
    t_thread_context = ctx;
    if (current_context() == nullptr) set_current_context(ctx);
    return ctx;
  } catch (...) {
    return nullptr;  // out of memory: this thread stays unprofiled
  }
}

// ---- handles held by the RAII types ---------------------------------------------------------

struct transaction_handle {
  execution_context* ctx = nullptr;
  transaction_record* rec = nullptr;  // null: not recording, or not sampled
  std::uint64_t serial = 0;
  int slot = -1;                      // index in ctx->open; -1: nothing was opened
};

struct span_handle {
  execution_context* ctx = nullptr;
  transaction_record* rec = nullptr;
  std::uint64_t serial = 0;
  std::uint32_t index = 0;
};

// Is `rec` (with `serial`) one of ctx's open transactions? Only then does this thread own it.
inline int find_open_slot(const execution_context& ctx, const transaction_record* rec, std::uint64_t serial) noexcept {
  for (int slot = ctx.depth - 1; slot >= 0; --slot) {
    if (ctx.open[static_cast<std::size_t>(slot)].load(std::memory_order_relaxed) == rec &&
        ctx.open_serial[static_cast<std::size_t>(slot)] == serial) {
      return slot;
    }
  }
  return -1;
}

// ---- spans ----------------------------------------------------------------------------------

// The hot path: no lock, no syscall, no allocation once the record's chunks exist. Forced
// inline: clang otherwise calls it out of line, which costs more than the work itself.
[[gnu::always_inline]] inline span_handle begin_span(std::string_view op, std::string_view description, const span_site* site,
                              void* frame_address) noexcept {
  execution_context* ctx = current_context();
  if (ctx == nullptr || ctx->depth == 0) return {};
  const auto slot = static_cast<std::size_t>(ctx->depth - 1);
  transaction_record* rec = ctx->open[slot].load(std::memory_order_relaxed);
  if (rec == nullptr) return {};
  // +1: spans[0] is the transaction's root, which max_spans_per_transaction does not count.
  span_record* span = rec->spans.prepare_next(rec->max_spans_limit + std::size_t{1});
  if (span == nullptr) [[unlikely]] {
    ++rec->counters.spans_dropped_over_cap;
    return {};
  }
  const auto index = static_cast<std::uint32_t>(rec->spans.size());
  const span_record& parent = rec->spans[rec->active_index];
  span->id = ctx->rng.next() | 1;  // never 0
  span->parent_id = parent.id;
  span->parent_index = rec->active_index;
  span->ctx_id = ctx->ctx_id;
  span->end_ticks.store(0, std::memory_order_relaxed);
  span->status.store(span_status::ok, std::memory_order_relaxed);
  span->flags.store(0, std::memory_order_relaxed);
  span->op = rec->strings.copy(op, rec->description_cap);
  span->description = rec->strings.copy(description, rec->description_cap);
  span->site = site;
  span->anchor_fp = reinterpret_cast<std::uintptr_t>(frame_address);
  // gapfill.md §1: take `begin`, then publish the span as active.
  span->begin_ticks = now_ticks();
  rec->spans.publish_next();
  rec->active_index = index;
  publish_active(*ctx, txn_id_of(*rec), span);  // rec is the innermost transaction
  return {ctx, rec, ctx->open_serial[slot], index};
}

// Closes every span above `index` on rec's active chain (they were left open), at `end_ticks`.
[[gnu::cold]] inline void auto_close_above(transaction_record& rec, std::uint32_t index, std::int64_t end_ticks,
                             span_status status) noexcept {
  while (rec.active_index != index && rec.active_index != 0) {
    span_record& open_span = rec.spans[rec.active_index];
    open_span.status.store(status, std::memory_order_relaxed);
    open_span.flags.fetch_or(span_flag_auto_closed, std::memory_order_relaxed);
    open_span.end_ticks.store(end_ticks, std::memory_order_relaxed);
    ++rec.counters.spans_auto_closed;
    rec.active_index = open_span.parent_index;
  }
}

[[gnu::cold]] inline void note_cross_context_end() noexcept {
  if (runtime* rt = g_recording.load(std::memory_order_relaxed)) bump(rt->stats.cross_context_ends);
}

[[gnu::always_inline]] inline void end_span(const span_handle& h) noexcept {
  if (h.rec == nullptr) return;
  execution_context* ctx = current_context();
  if (ctx != h.ctx) {
    // Ended on another thread or fiber: the owner may be writing this record right now, so we
    // must not touch it. The span is auto-closed when its transaction finishes.
    note_cross_context_end();
    return;
  }
  const int slot = find_open_slot(*ctx, h.rec, h.serial);
  if (slot < 0) return;  // its transaction already finished and closed it (counted there)
  transaction_record& rec = *h.rec;
  span_record& span = rec.spans[h.index];
  if (span.end_ticks.load(std::memory_order_relaxed) != 0) return;  // auto-closed with a parent
  if (rec.active_index != h.index) {
    // Closed before spans it opened: close those first, then this one.
    span.flags.fetch_or(span_flag_out_of_order, std::memory_order_relaxed);
    ++rec.counters.spans_closed_out_of_order;
    auto_close_above(rec, h.index, now_ticks(), span_status::cancelled);
  }
  // gapfill.md §1: restore the parent as active, then take `end`.
  rec.active_index = span.parent_index;
  if (slot == ctx->depth - 1) publish_active(*ctx, txn_id_of(rec), &rec.spans[span.parent_index]);
  span.end_ticks.store(now_ticks(), std::memory_order_relaxed);
}

inline void set_span_status(const span_handle& h, span_status status) noexcept {
  if (h.rec == nullptr || current_context() != h.ctx || find_open_slot(*h.ctx, h.rec, h.serial) < 0) return;
  h.rec->spans[h.index].status.store(status, std::memory_order_relaxed);
}

template <class Fill>
void add_span_data(const span_handle& h, std::string_view key, Fill fill) noexcept {
  if (h.rec == nullptr || current_context() != h.ctx || find_open_slot(*h.ctx, h.rec, h.serial) < 0) return;
  transaction_record& rec = *h.rec;
  data_entry* entry = rec.data.prepare_next(rec.max_data_limit);
  if (entry == nullptr) {
    ++rec.counters.data_dropped_over_cap;
    return;
  }
  entry->span_index = h.index;
  entry->key = rec.strings.copy(key, 256);
  fill(*entry, rec.strings, rec.description_cap);
  rec.data.publish_next();
}

// The innermost open span of the current context (the transaction's root if no span is open).
inline span_handle current_span() noexcept {
  execution_context* ctx = current_context();
  if (ctx == nullptr || ctx->depth == 0) return {};
  const auto slot = static_cast<std::size_t>(ctx->depth - 1);
  transaction_record* rec = ctx->open[slot].load(std::memory_order_relaxed);
  if (rec == nullptr) return {};
  return {ctx, rec, ctx->open_serial[slot], rec->active_index};
}

// ---- transactions ---------------------------------------------------------------------------

// A thread takes at most this many pooled records at once, so idle threads do not hoard them.
inline constexpr int max_cached_records = 16;

inline transaction_record* take_record(runtime& rt, execution_context& ctx) noexcept {
  if (ctx.free_cache == nullptr) {
    transaction_record* taken = rt.free_records.take_all();
    transaction_record* last_kept = taken;
    for (int i = 1; last_kept != nullptr && i < max_cached_records; ++i) last_kept = last_kept->next;
    if (last_kept != nullptr && last_kept->next != nullptr) {
      transaction_record* rest = last_kept->next;
      last_kept->next = nullptr;
      transaction_record* rest_last = rest;
      while (rest_last->next != nullptr) rest_last = rest_last->next;
      rt.free_records.push_chain(rest, rest_last);
    }
    ctx.free_cache = taken;
  }
  if (ctx.free_cache != nullptr) {
    transaction_record* rec = ctx.free_cache;
    ctx.free_cache = rec->next;
    rec->next = nullptr;
    return rec;
  }
  return rt.allocate_record();
}

inline transaction_handle begin_transaction(std::string_view name, std::string_view op, const span_site* site,
                                            void* frame_address) noexcept {
  runtime* rt = g_recording.load(std::memory_order_acquire);
  if (rt == nullptr) return {};
  // The thread is registered even when a fiber runs: records come from its cache, samples need
  // its sampler, and the record names the thread the transaction began on.
  execution_context* thread_ctx = t_thread_context;
  if (thread_ctx == nullptr && (thread_ctx = register_current_thread(*rt)) == nullptr) return {};
  execution_context* ctx = current_context();  // the thread's own, or the fiber running on it
  if (ctx == nullptr) {
    ctx = thread_ctx;  // a fiber switch left none running (the thread was not registered then)
    set_current_context(ctx);
  }
  if (rt->sampling.load(std::memory_order_relaxed) && t_sampler == nullptr) {
    rt->stack_sampler.register_current_thread(*thread_ctx, thread_ctx->thread_id);
  }
  if (ctx->depth == execution_context::max_open_transactions) {
    rt->report(error_kind::api_misuse, "spanprof: more than 8 transactions open on one thread; this one is not recorded");
    return {};
  }
  bump(rt->stats.transactions_started);
  const auto slot = static_cast<std::size_t>(ctx->depth);
  transaction_record* outer = slot > 0 ? ctx->open[slot - 1].load(std::memory_order_relaxed) : nullptr;
  const config& cfg = rt->cfg;
  const bool sampled = cfg.traces_sample_rate >= 1.0 || ctx->rng.next_unit() < cfg.traces_sample_rate;
  transaction_record* rec = sampled ? take_record(*rt, *thread_ctx) : nullptr;
  if (rec == nullptr) {
    if (!sampled) bump(rt->stats.transactions_not_sampled);
    ctx->open[slot].store(nullptr, std::memory_order_relaxed);
    ctx->open_serial[slot] = 0;
    ++ctx->depth;
    publish_active(*ctx, 0, nullptr);
    return {ctx, nullptr, 0, static_cast<int>(slot)};
  }
  if (outer != nullptr) bump(rt->stats.nested_transactions);

  // A nested transaction continues the outer's trace, under its active span.
  rec->trace = outer != nullptr ? outer->trace : trace_id{ctx->rng.next(), ctx->rng.next()};
  if (outer == nullptr) {
    rec->trace.high = (rec->trace.high & ~0xf000ull) | 0x4000ull;  // uuid4-shaped, as Sentry expects
    rec->trace.low = (rec->trace.low & 0x3fffffffffffffffull) | 0x8000000000000000ull;
  }
  rec->event_id = {ctx->rng.next(), ctx->rng.next() | 1};
  rec->event_id.high = (rec->event_id.high & ~0xf000ull) | 0x4000ull;
  rec->event_id.low = (rec->event_id.low & 0x3fffffffffffffffull) | 0x8000000000000000ull;
  rec->serial = ctx->rng.next() | 1;
  rec->parent_span_id = outer != nullptr ? outer->spans[outer->active_index].id : 0;
  rec->ctx_id = ctx->ctx_id;
  rec->thread_id = thread_ctx->thread_id;
  std::memcpy(rec->thread_name, thread_ctx->thread_name, sizeof rec->thread_name);
  rec->on_fiber = ctx->is_fiber;
  rec->max_spans_limit = static_cast<std::uint32_t>(cfg.max_spans_per_transaction);
  rec->max_data_limit = static_cast<std::uint32_t>(cfg.max_data_per_transaction);
  rec->description_cap = static_cast<std::uint32_t>(cfg.max_description_bytes);

  span_record* root = rec->spans.prepare_next(rec->max_spans_limit + 1);
  if (root == nullptr) {  // out of memory for the first chunk
    rt->recycle(rec);
    return {};
  }
  root->id = ctx->rng.next() | 1;
  root->parent_id = rec->parent_span_id;
  root->parent_index = 0;
  root->ctx_id = ctx->ctx_id;
  root->end_ticks.store(0, std::memory_order_relaxed);
  root->status.store(span_status::ok, std::memory_order_relaxed);
  root->flags.store(0, std::memory_order_relaxed);
  root->op = rec->strings.copy(op, rec->description_cap);
  root->description = rec->strings.copy(name, cfg.max_name_bytes);
  root->site = site;
  root->anchor_fp = reinterpret_cast<std::uintptr_t>(frame_address);
  root->begin_ticks = now_ticks();
  rec->spans.publish_next();
  rec->active_index = 0;
  rec->state.store(transaction_state::open, std::memory_order_release);
  ctx->open_serial[slot] = rec->serial;
  ctx->open[slot].store(rec, std::memory_order_release);
  ++ctx->depth;
  publish_active(*ctx, txn_id_of(*rec), root);
  if (slot == 0 && rt->sampling_cpu.load(std::memory_order_relaxed)) rt->stack_sampler.arm_cpu_timer(true);
  return {ctx, rec, rec->serial, static_cast<int>(slot)};
}

// Hands a finished record to the collector, or recycles it if shutdown already took it.
inline void hand_to_collector(runtime& rt, transaction_record* rec, bool aborted) noexcept {
  rt.finishes_in_flight.fetch_add(1, std::memory_order_seq_cst);
  transaction_state expected = transaction_state::open;
  if (!rec->state.compare_exchange_strong(expected, transaction_state::finished, std::memory_order_acq_rel)) {
    // shutdown() is copying or has copied this transaction; wait out the copy (microseconds),
    // then the record is ours to recycle. shutdown() counted it as finished and aborted.
    while (rec->state.load(std::memory_order_acquire) == transaction_state::snapshotting) std::this_thread::yield();
    rt.recycle(rec);
    rt.finishes_in_flight.fetch_sub(1, std::memory_order_seq_cst);
    return;
  }
  bump(rt.stats.transactions_finished);
  if (aborted) bump(rt.stats.transactions_aborted);
  if (!rt.accepting.load(std::memory_order_seq_cst)) {
    bump(rt.stats.transactions_dropped);  // finished after shutdown's last drain
    rt.recycle(rec);
  } else if (rt.pending_finished.load(std::memory_order_relaxed) >= rt.cfg.max_pending_transactions) {
    bump(rt.stats.transactions_dropped);
    rt.report(error_kind::queue_full, "spanprof: the collector is behind (max_pending_transactions reached); a transaction was dropped");
    rt.recycle(rec);
  } else {
    const std::size_t pending = rt.pending_finished.fetch_add(1, std::memory_order_relaxed) + 1;
    rt.finished.push(rec);
    if (pending >= runtime::wake_batch) rt.wake_collector();
  }
  rt.finishes_in_flight.fetch_sub(1, std::memory_order_seq_cst);
}

// Finishes the transaction in `slot` of ctx (and any opened after it, which it encloses).
inline void finish_slot(execution_context& ctx, int slot, span_status root_status_if_forced, bool forced) noexcept {
  runtime& rt = the_runtime();
  // Inner transactions still open are finished first: a transaction cannot outlive its parent.
  while (ctx.depth - 1 > slot) finish_slot(ctx, ctx.depth - 1, span_status::cancelled, true);
  transaction_record* rec = ctx.open[static_cast<std::size_t>(slot)].load(std::memory_order_relaxed);
  transaction_record* outer = slot > 0 ? ctx.open[static_cast<std::size_t>(slot - 1)].load(std::memory_order_relaxed) : nullptr;
  // gapfill.md §1: restore the outer context as active, then take `end`.
  publish_active(ctx, outer != nullptr ? txn_id_of(*outer) : 0, outer != nullptr ? &outer->spans[outer->active_index] : nullptr);
  ctx.open[static_cast<std::size_t>(slot)].store(nullptr, std::memory_order_release);
  ctx.depth = slot;
  // Idle threads cost nothing. Only for the running context: a suspended fiber's transactions
  // finished by its destruction say nothing about what runs on this thread.
  if (slot == 0 && &ctx == current_context() && rt.sampling_cpu.load(std::memory_order_relaxed)) {
    rt.stack_sampler.arm_cpu_timer(false);
  }
  if (rec == nullptr) return;  // not sampled
  const std::int64_t end = now_ticks();
  auto_close_above(*rec, 0, end, span_status::deadline_exceeded);
  span_record& root = rec->spans[0];
  if (forced) {
    root.status.store(root_status_if_forced, std::memory_order_relaxed);
    root.flags.fetch_or(span_flag_auto_closed, std::memory_order_relaxed);
  }
  root.end_ticks.store(end, std::memory_order_relaxed);
  hand_to_collector(rt, rec, forced);
}

inline void end_transaction(const transaction_handle& h) noexcept {
  if (h.slot < 0) return;
  execution_context* ctx = current_context();
  if (ctx != h.ctx) {
    note_cross_context_end();
    return;
  }
  if (h.rec == nullptr) {
    // Unsampled: pop its placeholder if it is still there.
    if (h.slot < ctx->depth && ctx->open[static_cast<std::size_t>(h.slot)].load(std::memory_order_relaxed) == nullptr) {
      finish_slot(*ctx, h.slot, span_status::ok, false);
    }
    return;
  }
  const int slot = find_open_slot(*ctx, h.rec, h.serial);
  if (slot < 0) return;  // already finished by an outer transaction or by thread exit
  finish_slot(*ctx, slot, span_status::ok, false);
}

inline void finish_open_transactions_at_exit(execution_context& ctx) noexcept {
  if (ctx.depth > 0) finish_slot(ctx, 0, span_status::aborted, true);
}

inline void set_transaction_status(const transaction_handle& h, span_status status) noexcept {
  if (h.rec == nullptr || current_context() != h.ctx || find_open_slot(*h.ctx, h.rec, h.serial) < 0) return;
  h.rec->spans[0].status.store(status, std::memory_order_relaxed);
}

// ---- shutdown's snapshot of a transaction another thread still has open ---------------------

// NOT ASYNC-SIGNAL-SAFE (allocates). Copies what `rec` holds now into a new record, closing
// everything still open at `end_ticks` with status `aborted` (the root) and
// `deadline_exceeded` (spans). Runs concurrently with the owner appending: it only reads below
// the published counts, and end/status are atomics.
inline transaction_record* snapshot_open_transaction(runtime& rt, const transaction_record& rec, std::int64_t end_ticks) {
  transaction_record* copy = rt.allocate_record();
  if (copy == nullptr) return nullptr;
  copy->trace = rec.trace;
  copy->event_id = rec.event_id;
  copy->serial = rec.serial;
  copy->parent_span_id = rec.parent_span_id;
  copy->ctx_id = rec.ctx_id;
  copy->thread_id = rec.thread_id;
  std::memcpy(copy->thread_name, rec.thread_name, sizeof copy->thread_name);
  copy->on_fiber = rec.on_fiber;
  copy->max_spans_limit = rec.max_spans_limit;
  copy->max_data_limit = rec.max_data_limit;
  copy->description_cap = rec.description_cap;
  copy->counters = {};
  const std::size_t span_count = rec.spans.size();
  for (std::size_t i = 0; i < span_count; ++i) {
    const span_record& from = rec.spans[i];
    span_record* to = copy->spans.prepare_next(transaction_record::max_spans);
    if (to == nullptr) break;
    to->id = from.id;
    to->parent_id = from.parent_id;
    to->parent_index = from.parent_index;
    to->ctx_id = from.ctx_id;
    to->begin_ticks = from.begin_ticks;
    std::int64_t end = from.end_ticks.load(std::memory_order_relaxed);
    span_status status = from.status.load(std::memory_order_relaxed);
    std::uint8_t flags = from.flags.load(std::memory_order_relaxed);
    if (end == 0) {
      end = end_ticks;
      status = i == 0 ? span_status::aborted : span_status::deadline_exceeded;
      flags |= span_flag_auto_closed;
      ++copy->counters.spans_auto_closed;
    }
    to->end_ticks.store(end, std::memory_order_relaxed);
    to->status.store(status, std::memory_order_relaxed);
    to->flags.store(flags, std::memory_order_relaxed);
    to->op = copy->strings.copy(from.op.view(), UINT32_MAX);
    to->op.original_size = from.op.original_size;
    to->description = copy->strings.copy(from.description.view(), UINT32_MAX);
    to->description.original_size = from.description.original_size;
    to->site = from.site;
    to->anchor_fp = from.anchor_fp;
    copy->spans.publish_next();
  }
  const std::size_t data_count = rec.data.size();
  for (std::size_t i = 0; i < data_count; ++i) {
    const data_entry& from = rec.data[i];
    data_entry* to = copy->data.prepare_next(copy->max_data_limit);
    if (to == nullptr) break;
    *to = from;
    to->key = copy->strings.copy(from.key.view(), UINT32_MAX);
    if (from.kind == data_kind::string) {
      to->text = copy->strings.copy(from.text.view(), UINT32_MAX);
      to->text.original_size = from.text.original_size;
    }
    copy->data.publish_next();
  }
  const std::size_t switch_count = rec.switches.size();
  for (std::size_t i = 0; i < switch_count; ++i) {
    fiber_switch_event* to = copy->switches.prepare_next(transaction_record::max_switch_events);
    if (to == nullptr) break;
    *to = rec.switches[i];
    copy->switches.publish_next();
  }
  copy->state.store(transaction_state::finished, std::memory_order_relaxed);
  return copy;
}

}  // namespace spanprof::detail
