// spanprof gapfill, phase 3: each context's timeline — fibers' suspended intervals, and the
// on-thread time between two instants (gapfill.md §1).
//
// Consumes: the input's contexts, the span_tree (its contexts, the transaction's interval).
// Produces: a context_timeline, read by the phases that place samples and estimate edges.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "id_table.hpp"
#include "input.hpp"
#include "span_tree.hpp"

namespace spanprof::detail::gapfill {

namespace scratch {

struct interval {
  std::int64_t begin = 0;
  std::int64_t end = 0;
};

struct ctx_state {
  std::uint64_t id = 0;
  bool fiber = false;
  std::uint32_t suspended_first = 0;  // suspended intervals within the transaction, sorted
  std::uint32_t suspended_count = 0;
  std::uint32_t fiber_tid_first = 0;  // a fiber's threads, in context_timeline::fiber_tids
  std::uint32_t fiber_tid_count = 0;
};

// Phase 3's output. The first contexts are the span_tree's (same indexes), then those only
// the input's context list names.
struct context_timeline {
  std::vector<ctx_state> contexts;
  id_table ids;  // context id → index in contexts
  std::vector<interval> suspended;
  std::vector<std::uint32_t> fiber_tids;  // the threads each fiber ran on, in switch order
  std::vector<interval> on_thread_scratch;  // scratch: one fiber's on-thread intervals

  // Suspended time of context `c` within [from, to).
  [[nodiscard]] std::int64_t suspended_within(const ctx_state& c, std::int64_t from, std::int64_t to) const noexcept {
    if (c.suspended_count == 0 || to <= from) return 0;
    const auto first = suspended.begin() + c.suspended_first;
    const auto last = first + c.suspended_count;
    auto it = std::lower_bound(first, last, from, [](const interval& s, std::int64_t t) { return s.end <= t; });
    std::int64_t total = 0;
    for (; it != last && it->begin < to; ++it) total += std::min(to, it->end) - std::max(from, it->begin);
    return total;
  }

  // The wall time that lies `on_thread_ns` of on-thread time before t: suspensions do not count.
  [[nodiscard]] std::int64_t wall_before(const ctx_state& c, std::int64_t t, std::int64_t on_thread_ns) const noexcept {
    if (c.suspended_count == 0) return t - on_thread_ns;
    const auto first = suspended.begin() + c.suspended_first;
    auto it = std::lower_bound(first, first + c.suspended_count, t,
                               [](const interval& s, std::int64_t x) { return s.begin < x; });
    std::int64_t cursor = t;
    std::int64_t remaining = on_thread_ns;
    while (it != first) {
      --it;
      if (it->end >= cursor) {  // cursor inside this suspension: jump to its start
        cursor = std::min(cursor, it->begin);
        continue;
      }
      const std::int64_t available = cursor - it->end;
      if (available >= remaining) return cursor - remaining;
      remaining -= available;
      cursor = it->begin;
    }
    return cursor - remaining;
  }

  // The wall time that lies `on_thread_ns` of on-thread time after t.
  [[nodiscard]] std::int64_t wall_after(const ctx_state& c, std::int64_t t, std::int64_t on_thread_ns) const noexcept {
    if (c.suspended_count == 0) return t + on_thread_ns;
    const auto first = suspended.begin() + c.suspended_first;
    const auto last = first + c.suspended_count;
    auto it = std::lower_bound(first, last, t, [](const interval& s, std::int64_t x) { return s.end <= x; });
    std::int64_t cursor = t;
    std::int64_t remaining = on_thread_ns;
    for (; it != last; ++it) {
      if (it->begin <= cursor) {
        cursor = std::max(cursor, it->end);
        continue;
      }
      const std::int64_t available = it->begin - cursor;
      if (available >= remaining) return cursor + remaining;
      remaining -= available;
      cursor = it->end;
    }
    return cursor + remaining;
  }
};

// A fiber's suspended intervals = the transaction's interval minus the union of its on-thread
// intervals; and the threads it ran on.
inline void add_fiber_timeline(const context_input& fiber, const span_tree& tree, context_timeline& timeline,
                               ctx_state& state) {
  state.fiber = true;
  std::vector<interval>& on = timeline.on_thread_scratch;
  on.clear();
  for (const on_thread_interval& o : fiber.on_thread) {
    if (o.end_ns > o.begin_ns) on.push_back({o.begin_ns, o.end_ns});
  }
  std::sort(on.begin(), on.end(), [](const interval& a, const interval& b) { return a.begin < b.begin; });
  const std::int64_t txn_begin = tree.txn_begin_ns;
  const std::int64_t txn_end = tree.txn_end_ns;
  state.suspended_first = static_cast<std::uint32_t>(timeline.suspended.size());
  std::int64_t cursor = txn_begin;
  for (const interval& o : on) {
    if (o.begin > cursor && cursor < txn_end) timeline.suspended.push_back({cursor, std::min(o.begin, txn_end)});
    cursor = std::max(cursor, o.end);
  }
  if (cursor < txn_end) timeline.suspended.push_back({cursor, txn_end});
  state.suspended_count = static_cast<std::uint32_t>(timeline.suspended.size()) - state.suspended_first;
  std::vector<std::uint32_t>& tids = timeline.fiber_tids;
  state.fiber_tid_first = static_cast<std::uint32_t>(tids.size());
  for (const on_thread_interval& o : fiber.on_thread) {
    if (std::find(tids.begin() + state.fiber_tid_first, tids.end(), o.tid) == tids.end()) tids.push_back(o.tid);
  }
  state.fiber_tid_count = static_cast<std::uint32_t>(tids.size()) - state.fiber_tid_first;
}

}  // namespace scratch

// Contexts: those of the spans, and fibers' suspended intervals within the transaction.
inline void build_context_timeline(const transaction_input& in, const scratch::span_tree& tree,
                                   scratch::context_timeline& timeline) {
  using namespace scratch;
  timeline.contexts.clear();
  timeline.suspended.clear();
  timeline.fiber_tids.clear();
  timeline.ids.reset(in.spans.size() + in.contexts.size() + 1);
  auto context_index = [&](std::uint64_t id) {
    std::uint32_t index = timeline.ids.find(id);
    if (index == no_index) {
      index = static_cast<std::uint32_t>(timeline.contexts.size());
      timeline.ids.insert(id, index);
      ctx_state state;
      state.id = id;
      timeline.contexts.push_back(state);
    }
    return index;
  };
  for (const std::uint64_t id : tree.context_ids) context_index(id);
  for (const context_input& fiber : in.contexts) {
    ctx_state& state = timeline.contexts[context_index(fiber.ctx_id)];
    if (fiber.on_thread.empty() || state.fiber) continue;
    add_fiber_timeline(fiber, tree, timeline, state);
  }
}

}  // namespace spanprof::detail::gapfill
