// spanprof gapfill, phase 4: the gaps of every span — its time minus its children's (§1).
//
// Consumes: the input's spans, the span_tree, the context_timeline, min_gap_ns. Produces: a
// gap_list (which gaps each span has, their suspended segments) and the result's gap_summary
// records (filled_transaction::gaps, indexed like gap_list::gaps) and short_gaps_ns.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <tuple>
#include <vector>

#include "input.hpp"
#include "output.hpp"
#include "span_tree.hpp"
#include "timeline.hpp"

namespace spanprof::detail::gapfill {

namespace scratch {

struct gap_segments {
  std::uint32_t suspended_first = 0;  // its suspended segments in gap_list::suspended
  std::uint32_t suspended_count = 0;
};

// [first, first + count) of some table.
struct index_range {
  std::uint32_t first = 0;
  std::uint32_t count = 0;
};

// Phase 4's output.
struct gap_list {
  std::vector<gap_segments> gaps;  // parallel to filled_transaction::gaps
  std::vector<interval> suspended;
  std::vector<index_range> of_span;  // each span's gaps; parallel to span_tree::spans
  // Scratch: (parent span, begin, end) of every child that covers part of its parent.
  std::vector<std::tuple<std::uint32_t, std::int64_t, std::int64_t>> covers;
};

// The covers of every span: its same-context children clipped to it, sorted by parent then time.
inline void collect_covers(const span_tree& tree, gap_list& list) {
  list.covers.clear();
  for (std::uint32_t i = 0; i < tree.spans.size(); ++i) {
    const span_state& child = tree.spans[i];
    // A cross-context span covers nothing; a nested transaction's root covers its parent.
    if (i == tree.root || child.parent == no_index || (child.excluded && !child.nested)) continue;
    // Children of a cross-context span cover its nearest non-excluded ancestor, which also
    // holds that span's samples.
    std::uint32_t parent = child.parent;
    if (tree.spans[parent].excluded) parent = tree.spans[parent].owner;
    const span_state& covered = tree.spans[parent];
    if (covered.ctx != child.ctx) continue;  // another context never covers this one
    const std::int64_t begin = std::max(child.begin, covered.begin);
    const std::int64_t end = std::min(child.end, covered.end);
    if (end > begin) list.covers.emplace_back(parent, begin, end);
  }
  std::sort(list.covers.begin(), list.covers.end());
}

// Appends gap [begin, end) of span `span_index` (its `has_cover`: whether it has children).
inline void add_gap(std::uint32_t span_index, std::int64_t begin, std::int64_t end, bool has_cover,
                    const transaction_input& in, const span_tree& tree, const context_timeline& timeline,
                    std::int64_t min_gap_ns, gap_list& list, filled_transaction& result) {
  if (end <= begin) return;
  const span_state& span = tree.spans[span_index];
  index_range& range = list.of_span[span_index];
  const ctx_state& ctx = timeline.contexts[span.ctx];
  gap_summary summary;
  summary.span_id = in.spans[span_index].id;
  summary.span_index = span_index;
  summary.k = range.count++;
  summary.ctx_id = ctx.id;
  summary.begin_ns = begin;
  summary.end_ns = end;
  summary.filled = span.filled;
  if (!has_cover) summary.kind = gap_kind::whole;
  else if (begin == span.begin) summary.kind = gap_kind::leading;
  else if (end == span.end) summary.kind = gap_kind::trailing;
  else summary.kind = gap_kind::between;
  gap_segments segments;
  segments.suspended_first = static_cast<std::uint32_t>(list.suspended.size());
  if (ctx.suspended_count != 0) {
    const auto suspended_first = timeline.suspended.begin() + ctx.suspended_first;
    const auto suspended_last = suspended_first + ctx.suspended_count;
    auto it = std::lower_bound(suspended_first, suspended_last, begin,
                               [](const interval& x, std::int64_t t) { return x.end <= t; });
    for (; it != suspended_last && it->begin < end; ++it) {
      const std::int64_t segment_begin = std::max(begin, it->begin);
      const std::int64_t segment_end = std::min(end, it->end);
      if (segment_end > segment_begin) {
        list.suspended.push_back({segment_begin, segment_end});
        summary.suspended_ns += segment_end - segment_begin;
      }
    }
  }
  segments.suspended_count = static_cast<std::uint32_t>(list.suspended.size()) - segments.suspended_first;
  summary.is_short = end - begin < min_gap_ns;
  if (span.filled && summary.is_short) result.spans[span_index].short_gaps_ns += end - begin;
  result.gaps.push_back(summary);
  list.gaps.push_back(segments);
}

}  // namespace scratch

// gaps(S) = [S.begin, S.end] − ∪ children on S's context (§1), for every span that is not
// excluded; a span without children has one `whole` gap (used to place its samples).
inline void build_gap_list(const transaction_input& in, const scratch::span_tree& tree,
                           const scratch::context_timeline& timeline, std::int64_t min_gap_ns, scratch::gap_list& list,
                           filled_transaction& result) {
  using namespace scratch;
  list.gaps.clear();
  list.suspended.clear();
  list.of_span.assign(tree.spans.size(), index_range{});
  collect_covers(tree, list);
  std::size_t cover = 0;
  for (std::uint32_t i = 0; i < tree.spans.size(); ++i) {
    const span_state& span = tree.spans[i];
    while (cover < list.covers.size() && std::get<0>(list.covers[cover]) < i) ++cover;
    const std::size_t cover_first = cover;
    while (cover < list.covers.size() && std::get<0>(list.covers[cover]) == i) ++cover;
    list.of_span[i].first = static_cast<std::uint32_t>(list.gaps.size());
    result.spans[i].first_gap = list.of_span[i].first;
    if (span.excluded) continue;
    const bool has_cover = cover > cover_first;
    std::int64_t cursor = span.begin;
    for (std::size_t cover_index = cover_first; cover_index < cover; ++cover_index) {
      const auto& [parent, cover_begin, cover_end] = list.covers[cover_index];
      (void)parent;
      if (cover_begin > cursor) add_gap(i, cursor, cover_begin, has_cover, in, tree, timeline, min_gap_ns, list, result);
      cursor = std::max(cursor, cover_end);
    }
    add_gap(i, cursor, span.end, has_cover, in, tree, timeline, min_gap_ns, list, result);
    result.spans[i].gap_count = list.of_span[i].count;
  }
}

}  // namespace spanprof::detail::gapfill
