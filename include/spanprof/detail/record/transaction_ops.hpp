// spanprof: transactions begin and finish — the engine side of SPANPROF_TRANSACTION.
//
// Compiled in the implementation TU only (the light header calls compiled::begin_transaction /
// end_transaction, defined in engine/implementation.hpp): a transaction takes a pooled record,
// registers the thread on its first use, and hands the finished record to the collector.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <thread>

#include "../core/ids.hpp"
#include "../core/ticks.hpp"
#include "../engine/runtime.hpp"
#include "span_ops.hpp"
#include "thread_registry.hpp"

namespace spanprof::detail {

[[gnu::cold]] inline void note_cross_context_end() noexcept {
  if (runtime* rt = g_recording.load(std::memory_order_relaxed)) bump(rt->stats.cross_context_ends);
}

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
  rec->trace = outer != nullptr ? outer->trace : as_uuid4({ctx->rng.next(), ctx->rng.next()});
  rec->event_id = as_uuid4({ctx->rng.next(), ctx->rng.next()});
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

}  // namespace spanprof::detail
