// spanprof gapfill, phase 6: placing samples in gaps, drops in gaps, and each gap's samples in
// time order (gapfill.md §2.2, §3).
//
// Consumes: the config, the input's drop reports, the span_tree, the context_timeline, the
// gap_list, ordered_samples. Produces: each work sample's placement columns (gap, placed_t),
// a drop_table and the gap_samples index; in the result, sample placements and the gaps'
// sample counts, drops and CPU figures.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "gaps.hpp"
#include "input.hpp"
#include "output.hpp"
#include "sample_order.hpp"
#include "span_tree.hpp"
#include "timeline.hpp"

namespace spanprof::detail::gapfill {

namespace scratch {

// Logged drop times per context (§3 "dropped samples").
struct drop_table {
  std::vector<std::int64_t> times;      // sorted within each context
  std::vector<index_range> of_context;  // parallel to context_timeline::contexts
  std::vector<std::pair<std::uint32_t, std::int64_t>> by_context;  // scratch: (ctx, t)

  // Whether a drop of context `ctx` was logged strictly between `from` and `to`.
  [[nodiscard]] bool any_between(std::uint32_t ctx, std::int64_t from, std::int64_t to) const noexcept {
    const index_range range = of_context[ctx];
    if (range.count == 0) return false;
    const auto first = times.begin() + range.first;
    const auto last = first + range.count;
    return std::upper_bound(first, last, from) != std::lower_bound(first, last, to);
  }
};

// Each gap's placed samples, in time order.
struct gap_samples {
  std::vector<std::uint32_t> order;  // indexes in ordered_samples::samples, gap by gap
  std::vector<index_range> of_gap;   // parallel to gap_list::gaps
  std::vector<std::uint32_t> counts;  // scratch of the counting sort
};

// Which of a span's gaps a sample at t goes to, and how far outside every gap t lies (0:
// inside one).
inline std::pair<std::uint32_t, std::int64_t> nearest_gap(const std::vector<gap_summary>& gaps, index_range span_gaps,
                                                          std::int64_t t) {
  const std::uint32_t first = span_gaps.first;
  const std::uint32_t last = first + span_gaps.count;
  // The last gap beginning at or before t.
  std::uint32_t lo = first;
  std::uint32_t hi = last;
  while (lo < hi) {
    const std::uint32_t mid = lo + (hi - lo) / 2;
    if (gaps[mid].begin_ns <= t) lo = mid + 1;
    else hi = mid;
  }
  if (lo > first && t <= gaps[lo - 1].end_ns) return {lo - 1, 0};
  const std::int64_t before = lo > first ? t - gaps[lo - 1].end_ns : plus_infinity;
  const std::int64_t after = lo < last ? gaps[lo].begin_ns - t : plus_infinity;
  return {before <= after ? lo - 1 : lo, std::min(before, after)};
}

}  // namespace scratch

// §2.2: the span id decides, the timestamp picks the gap; within tol of a gap a sample is
// snapped to its edge, farther it is a skew conflict placed in the nearest gap.
inline void place_samples(const config& cfg, const scratch::gap_list& list, scratch::ordered_samples& ordered,
                          filled_transaction& result) {
  using namespace scratch;
  const std::int64_t tol = cfg.skew_tolerance_ns;
  auto& gaps = result.gaps;
  for (work_sample& sample : ordered.samples) {
    const index_range range = list.of_span[sample.span];
    sample_placement& placement = result.placements[sample.input];
    placement.span_index = sample.span;
    if (range.count == 0) {
      placement.fate = sample_fate::unplaced;
      placement.skew_conflict = true;
      ++result.counts.skew_conflicts;
      ++result.counts.unplaced_samples;
      continue;
    }
    const auto [chosen, distance] = nearest_gap(gaps, range, sample.t);
    const gap_summary& chosen_gap = gaps[chosen];
    sample.gap = chosen;
    sample.placed_t = std::clamp(sample.t, chosen_gap.begin_ns, chosen_gap.end_ns);
    sample.bits |= work_placed;
    placement.fate = sample_fate::placed;
    placement.gap_index = chosen;
    placement.placed_t_ns = sample.placed_t;
    ++result.counts.samples_placed;
    if (distance == 0) continue;
    if (distance <= tol) {
      placement.boundary_snapped = true;
      ++result.counts.boundary_snapped;
    } else {
      placement.skew_conflict = true;
      ++result.counts.skew_conflicts;
      gaps[chosen].low_confidence = true;
    }
  }
  const double kept = static_cast<double>(ordered.samples.size());
  result.counts.clock_suspect =
      kept > 0 && static_cast<double>(result.counts.skew_conflicts) > cfg.clock_suspect_fraction * kept;
}

// §3 "dropped samples": each logged drop goes to the gap of its context that holds its time;
// drops that overflowed a ring's log are only known to precede its oldest entry, so every gap
// of a context that ran on that thread and began earlier may hold them (an upper bound).
inline void attribute_drops(const transaction_input& in, const scratch::span_tree& tree,
                            const scratch::context_timeline& timeline, const scratch::ordered_samples& ordered,
                            scratch::drop_table& drops, filled_transaction& result) {
  using namespace scratch;
  auto& gaps = result.gaps;
  drops.times.clear();
  drops.of_context.assign(timeline.contexts.size(), index_range{});
  auto& by_context = drops.by_context;
  by_context.clear();
  for (const drop_report& report : in.drops) {
    result.counts.samples_dropped += report.log.size() + report.unlogged_count;
    for (const drop_entry& drop : report.log) {
      const std::uint32_t ctx = timeline.ids.find(drop.ctx_id);
      if (ctx != no_index) by_context.emplace_back(ctx, drop.t_ns);
    }
  }
  std::sort(by_context.begin(), by_context.end());
  for (std::size_t i = 0; i < by_context.size();) {
    const std::uint32_t ctx = by_context[i].first;
    index_range& range = drops.of_context[ctx];
    range.first = static_cast<std::uint32_t>(drops.times.size());
    for (; i < by_context.size() && by_context[i].first == ctx; ++i) drops.times.push_back(by_context[i].second);
    range.count = static_cast<std::uint32_t>(drops.times.size()) - range.first;
  }
  for (std::uint32_t gap = 0; gap < gaps.size(); ++gap) {
    const std::uint32_t ctx = tree.spans[gaps[gap].span_index].ctx;
    const index_range range = drops.of_context[ctx];
    const auto first = drops.times.begin() + range.first;
    const auto last = first + range.count;
    gaps[gap].samples_dropped = static_cast<std::uint64_t>(std::upper_bound(first, last, gaps[gap].end_ns) -
                                                         std::lower_bound(first, last, gaps[gap].begin_ns));
    const std::span<const std::uint32_t> threads = ordered.threads_of(ctx);
    for (const drop_report& report : in.drops) {
      if (report.unlogged_count == 0) continue;
      if (std::find(threads.begin(), threads.end(), report.tid) == threads.end()) continue;
      std::int64_t oldest = plus_infinity;
      for (const drop_entry& drop : report.log) oldest = std::min(oldest, drop.t_ns);
      if (gaps[gap].begin_ns < oldest) {
        gaps[gap].samples_dropped += report.unlogged_count;
        gaps[gap].samples_dropped_upper_bound = true;
      }
    }
  }
}

// A counting sort by gap that keeps time order inside each gap; then each gap's sample totals.
inline void group_by_gap(sample_mode mode, std::int64_t nominal_interval_ns, const scratch::ordered_samples& ordered,
                         scratch::gap_samples& grouped, filled_transaction& result) {
  using namespace scratch;
  const std::vector<work_sample>& work = ordered.samples;
  const std::size_t gap_count = result.gaps.size();
  std::vector<std::uint32_t>& counts = grouped.counts;
  counts.assign(gap_count + 1, 0);
  for (const work_sample& sample : work) {
    if ((sample.bits & work_placed) != 0) ++counts[sample.gap + 1];
  }
  grouped.of_gap.resize(gap_count);
  for (std::size_t gap = 0; gap < gap_count; ++gap) {
    grouped.of_gap[gap] = {counts[gap], counts[gap + 1]};
    counts[gap + 1] += counts[gap];
  }
  grouped.order.resize(counts[gap_count]);
  for (std::uint32_t i = 0; i < work.size(); ++i) {
    if ((work[i].bits & work_placed) != 0) grouped.order[counts[work[i].gap]++] = i;
  }
  for (std::size_t gap = 0; gap < gap_count; ++gap) {
    gap_summary& summary = result.gaps[gap];
    const index_range range = grouped.of_gap[gap];
    summary.sample_count = range.count;
    for (std::uint32_t pos = 0; pos < range.count; ++pos) summary.sample_weight += work[grouped.order[range.first + pos]].weight;
    if (mode == sample_mode::cpu) {
      summary.on_cpu_ns = static_cast<std::int64_t>(summary.sample_weight) * nominal_interval_ns;
      const std::int64_t running = summary.end_ns - summary.begin_ns - summary.suspended_ns;
      summary.off_cpu_ns = std::max<std::int64_t>(0, running - summary.on_cpu_ns);
    }
  }
}

}  // namespace spanprof::detail::gapfill
