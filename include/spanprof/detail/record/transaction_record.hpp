// spanprof: the record of one transaction — its spans, data, fiber switches and strings.
//
// A transaction record is written by exactly one owner (the execution context that opened it)
// and, after finish, read by exactly one collector. The only concurrent reader is `shutdown()`
// snapshotting a transaction that another thread still has open. Hence storage never moves
// (chunked_log), so a reader holding a count it loaded with acquire can read every element
// below it. Records are recycled with their chunks and string blocks (runtime::recycle), so
// steady-state span begin/end never allocates.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "../core/ids.hpp"
#include "chunked_log.hpp"
#include "span_record.hpp"
#include "string_arena.hpp"

namespace spanprof::detail {

// gapfill.md §1's fiber switch event: the transaction's execution context stopped (suspend) or
// started (resume) running on thread `tid` at `t_ticks`. A transaction begins on-thread, on its
// record's `thread_id`; each suspend ends an on-thread interval, each resume starts one, and the
// last one ends with the transaction. Recorded for every context a switch involves (a thread's
// own context is suspended while a fiber runs on it), only while the context has a transaction
// open; a transaction that was never switched out has none and was on-thread throughout.
enum class fiber_switch_kind : std::uint8_t { suspend, resume };

struct fiber_switch_event {
  std::int64_t t_ticks = 0;  // same clock as the spans and samples
  std::uint32_t tid = 0;
  fiber_switch_kind kind = fiber_switch_kind::suspend;
};

// Fiber contexts have ids with this bit set (a counter below it), so they never collide with a
// thread's ctx_id, which is its kernel tid (gapfill.md §1).
inline constexpr std::uint64_t fiber_ctx_id_bit = std::uint64_t{1} << 63;
inline constexpr bool is_fiber_ctx_id(std::uint64_t ctx_id) noexcept { return (ctx_id & fiber_ctx_id_bit) != 0; }

enum class transaction_state : std::uint8_t {
  free,          // in a pool, not a transaction
  open,          // its owner is recording into it
  finished,      // handed to the collector by its owner
  snapshotting,  // shutdown() is copying it while the owner may still append
  abandoned,     // shutdown() wrote a copy; the owner's finish only recycles it
};

// Per-transaction counters written into the profile's metadata.
struct transaction_counters {
  std::uint32_t spans_dropped_over_cap = 0;
  std::uint32_t spans_closed_out_of_order = 0;
  std::uint32_t spans_auto_closed = 0;
  std::uint32_t cross_context_ends = 0;
  std::uint32_t data_dropped_over_cap = 0;
  std::uint32_t switch_events_dropped = 0;  // beyond transaction_record::max_switch_events
};

struct transaction_record {
  static constexpr std::size_t span_chunk = 64;
  static constexpr std::size_t max_spans = span_chunk * 256;
  static constexpr std::size_t switch_chunk = 64;
  static constexpr std::size_t max_switch_events = switch_chunk * 64;  // 2,048 suspensions

  // Immutable once the record is published to the owning context.
  trace_id trace{};
  trace_id event_id{};
  std::uint64_t serial = 0;          // distinguishes reuses of the same record (owner only)
  span_id parent_span_id = 0;        // the outer transaction's active span when nested
  std::uint64_t ctx_id = 0;          // the execution context it was opened on (thread or fiber)
  int thread_id = 0;                 // the thread it began on
  char thread_name[16] = {};
  bool on_fiber = false;             // ctx_id is a fiber's (is_fiber_ctx_id)
  std::uint32_t max_spans_limit = 0;
  std::uint32_t max_data_limit = 0;
  std::uint32_t description_cap = 0;

  chunked_log<span_record, span_chunk, 256> spans;  // spans[0] is the transaction itself
  chunked_log<data_entry, 32, 64> data;
  // Fiber switches of its context while it was open, in time order (fiber_switch_event). Appended
  // by whichever thread runs the switch, which owns the context at that moment.
  chunked_log<fiber_switch_event, switch_chunk, max_switch_events / switch_chunk> switches;
  string_arena strings;

  std::atomic<transaction_state> state{transaction_state::free};
  std::uint32_t active_index = 0;  // owner only: innermost open span
  transaction_counters counters;     // owner only until finished

  transaction_record* next = nullptr;  // intrusive link for the pool and the finished queue

  // Exclusive holder only: make a recycled record look new while keeping its memory, so a
  // service whose transactions look alike allocates nothing per span in steady state.
  void reset() noexcept {
    spans.clear();
    data.clear();
    switches.clear();
    strings.reset();
    state.store(transaction_state::free, std::memory_order_relaxed);
    active_index = 0;
    counters = {};
    parent_span_id = 0;
    thread_name[0] = '\0';
    on_fiber = false;
    next = nullptr;
  }
};

// The id samples carry to name their transaction (the handler reads it from active_state).
inline std::uint64_t txn_id_of(const transaction_record& rec) noexcept { return rec.event_id.low; }

}  // namespace spanprof::detail
