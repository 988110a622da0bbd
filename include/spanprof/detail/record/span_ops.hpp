// spanprof: the span operations behind the macros — the hot path, inline in every TU.
//
// Span begin/end take no lock, make no syscall and allocate nothing once a record's chunks
// exist. What needs the engine (transactions, a span ended on the wrong context) is a call into
// the implementation TU (namespace compiled), declared here and defined in
// engine/implementation.hpp. Part of the light public header.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "../core/ticks.hpp"
#include "execution_context.hpp"
#include "span_record.hpp"
#include "transaction_record.hpp"

namespace spanprof::detail {

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

// Compiled once, in the implementation TU (engine/implementation.hpp).
namespace compiled {
transaction_handle begin_transaction(std::string_view name, std::string_view op, const span_site* site,
                                     void* frame_address) noexcept;
void end_transaction(const transaction_handle& handle) noexcept;
// Counts a span or transaction ended on another context than the one that opened it.
void note_cross_context_end() noexcept;
}  // namespace compiled

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

[[gnu::always_inline]] inline void end_span(const span_handle& h) noexcept {
  if (h.rec == nullptr) return;
  execution_context* ctx = current_context();
  if (ctx != h.ctx) {
    // Ended on another thread or fiber: the owner may be writing this record right now, so we
    // must not touch it. The span is auto-closed when its transaction finishes.
    compiled::note_cross_context_end();
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

inline void set_transaction_status(const transaction_handle& h, span_status status) noexcept {
  if (h.rec == nullptr || current_context() != h.ctx || find_open_slot(*h.ctx, h.rec, h.serial) < 0) return;
  h.rec->spans[0].status.store(status, std::memory_order_relaxed);
}

}  // namespace spanprof::detail
