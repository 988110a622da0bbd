// spanprof: shutdown's copy of a transaction that another thread still has open.
//
// Engine only.
#pragma once

#include <cstdint>
#include <cstring>

#include "../engine/runtime.hpp"
#include "transaction_record.hpp"

namespace spanprof::detail {

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
