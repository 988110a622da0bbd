// spanprof gapfill, phase 3: each context's timeline — fibers' suspended intervals, and the
// on-thread time between two instants (gapfill.md §1).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "gap_filler.hpp"

namespace spanprof::detail::gapfill {

// Contexts: those of the spans, and fibers' suspended intervals within the transaction.
inline void gap_filler::prepare_contexts() {
  using namespace scratch;
  const auto spans = in_->spans;
  ctx_ids_.reset(spans.size() + in_->contexts.size() + 1);
  auto context_index = [&](std::uint64_t id) {
    std::uint32_t index = ctx_ids_.find(id);
    if (index == no_index) {
      index = static_cast<std::uint32_t>(ctxs_.size());
      ctx_ids_.insert(id, index);
      ctx_state c;
      c.id = id;
      c.interval_ns = nominal_;
      ctxs_.push_back(c);
    }
    return index;
  };
  for (std::uint32_t i = 0; i < spans.size(); ++i) spans_[i].ctx = context_index(spans[i].ctx_id);
  for (const context_input& c : in_->contexts) {
    const std::uint32_t index = context_index(c.ctx_id);
    ctx_state& st = ctxs_[index];
    if (c.on_thread.empty() || st.fiber) continue;
    st.fiber = true;
    // Suspended = the transaction's interval minus the union of the on-thread intervals.
    std::vector<interval> on;
    on.reserve(c.on_thread.size());
    for (const on_thread_interval& o : c.on_thread) {
      if (o.end_ns > o.begin_ns) on.push_back({o.begin_ns, o.end_ns});
    }
    std::sort(on.begin(), on.end(), [](const interval& a, const interval& b) { return a.begin < b.begin; });
    st.suspended_first = static_cast<std::uint32_t>(suspended_.size());
    std::int64_t cursor = txn_begin_;
    for (const interval& o : on) {
      if (o.begin > cursor && cursor < txn_end_) suspended_.push_back({cursor, std::min(o.begin, txn_end_)});
      cursor = std::max(cursor, o.end);
    }
    if (cursor < txn_end_) suspended_.push_back({cursor, txn_end_});
    st.suspended_count = static_cast<std::uint32_t>(suspended_.size()) - st.suspended_first;
    st.tid_first = static_cast<std::uint32_t>(ctx_tids_.size());
    for (const on_thread_interval& o : c.on_thread) {
      if (std::find(ctx_tids_.begin() + st.tid_first, ctx_tids_.end(), o.tid) == ctx_tids_.end()) ctx_tids_.push_back(o.tid);
    }
    st.tid_count = static_cast<std::uint32_t>(ctx_tids_.size()) - st.tid_first;
  }
}

inline std::int64_t gap_filler::suspended_within(const scratch::ctx_state& c, std::int64_t a, std::int64_t b) const noexcept {
  if (c.suspended_count == 0 || b <= a) return 0;
  const auto first = suspended_.begin() + c.suspended_first;
  const auto last = first + c.suspended_count;
  auto it = std::lower_bound(first, last, a, [](const scratch::interval& s, std::int64_t t) { return s.end <= t; });
  std::int64_t total = 0;
  for (; it != last && it->begin < b; ++it) total += std::min(b, it->end) - std::max(a, it->begin);
  return total;
}

// The wall time that lies `on_thread_ns` of on-thread time before t: suspensions do not count.
inline std::int64_t gap_filler::wall_before(const scratch::ctx_state& c, std::int64_t t, std::int64_t on_thread_ns) const noexcept {
  if (c.suspended_count == 0) return t - on_thread_ns;
  const auto first = suspended_.begin() + c.suspended_first;
  auto it = std::lower_bound(first, first + c.suspended_count, t,
                             [](const scratch::interval& s, std::int64_t x) { return s.begin < x; });
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

inline std::int64_t gap_filler::wall_after(const scratch::ctx_state& c, std::int64_t t, std::int64_t on_thread_ns) const noexcept {
  if (c.suspended_count == 0) return t + on_thread_ns;
  const auto first = suspended_.begin() + c.suspended_first;
  const auto last = first + c.suspended_count;
  auto it = std::lower_bound(first, last, t, [](const scratch::interval& s, std::int64_t x) { return s.end <= x; });
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

}  // namespace spanprof::detail::gapfill
