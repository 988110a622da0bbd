// spanprof gapfill, phase 6: placing samples in gaps, drops in gaps, and each gap's samples in
// time order (gapfill.md §2.2, §3).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "gap_filler.hpp"

namespace spanprof::detail::gapfill {

// §2.2: the span id decides, the timestamp picks the gap; within tol of a gap a sample is
// snapped to its edge, farther it is a skew conflict placed in the nearest gap.
inline void gap_filler::assign_samples() {
  using namespace scratch;
  const std::int64_t tol = cfg_->skew_tolerance_ns;
  auto& gaps = out_->gaps;
  for (work_sample& w : work_) {
    const span_gaps& span_gap_range = gap_list_.of_span[w.span];
    sample_placement& p = out_->placements[w.input];
    p.span_index = w.span;
    if (span_gap_range.count == 0) {
      p.fate = sample_fate::unplaced;
      p.skew_conflict = true;
      ++out_->counts.skew_conflicts;
      ++out_->counts.unplaced_samples;
      continue;
    }
    const std::uint32_t first = span_gap_range.first;
    const std::uint32_t last = first + span_gap_range.count;
    // The last gap beginning at or before t.
    std::uint32_t lo = first;
    std::uint32_t hi = last;
    while (lo < hi) {
      const std::uint32_t mid = lo + (hi - lo) / 2;
      if (gaps[mid].begin_ns <= w.t) lo = mid + 1;
      else hi = mid;
    }
    std::uint32_t chosen = no_index;
    std::int64_t distance = 0;
    if (lo > first && w.t <= gaps[lo - 1].end_ns) {
      chosen = lo - 1;
    } else {
      const std::int64_t before = lo > first ? w.t - gaps[lo - 1].end_ns : plus_infinity;
      const std::int64_t after = lo < last ? gaps[lo].begin_ns - w.t : plus_infinity;
      chosen = before <= after ? lo - 1 : lo;
      distance = std::min(before, after);
    }
    const gap_summary& g = gaps[chosen];
    w.gap = chosen;
    w.placed_t = std::clamp(w.t, g.begin_ns, g.end_ns);
    w.bits |= work_placed;
    p.fate = sample_fate::placed;
    p.gap_index = chosen;
    p.placed_t_ns = w.placed_t;
    ++out_->counts.samples_placed;
    if (distance == 0) continue;
    if (distance <= tol) {
      p.boundary_snapped = true;
      ++out_->counts.boundary_snapped;
    } else {
      p.skew_conflict = true;
      ++out_->counts.skew_conflicts;
      gaps[chosen].low_confidence = true;
    }
  }
  const double kept = static_cast<double>(work_.size());
  out_->counts.clock_suspect =
      kept > 0 && static_cast<double>(out_->counts.skew_conflicts) > cfg_->clock_suspect_fraction * kept;
}

// §3 "dropped samples": each logged drop goes to the gap of its context that holds its time;
// drops that overflowed a ring's log are only known to precede its oldest entry, so every gap
// of a context that ran on that thread and began earlier may hold them (an upper bound).
inline void gap_filler::attribute_drops() {
  using namespace scratch;
  auto& gaps = out_->gaps;
  std::vector<std::pair<std::uint32_t, std::int64_t>> per_ctx;  // (ctx, t)
  for (const drop_report& report : in_->drops) {
    out_->counts.samples_dropped += report.log.size() + report.unlogged_count;
    for (const drop_entry& d : report.log) {
      const std::uint32_t ctx = timeline_.ids.find(d.ctx_id);
      if (ctx != no_index) per_ctx.emplace_back(ctx, d.t_ns);
    }
  }
  std::sort(per_ctx.begin(), per_ctx.end());
  for (std::size_t i = 0; i < per_ctx.size();) {
    const std::uint32_t ctx = per_ctx[i].first;
    context_sampling& c = ctx_sampling_[ctx];
    c.drop_first = static_cast<std::uint32_t>(drop_times_.size());
    for (; i < per_ctx.size() && per_ctx[i].first == ctx; ++i) drop_times_.push_back(per_ctx[i].second);
    c.drop_count = static_cast<std::uint32_t>(drop_times_.size()) - c.drop_first;
  }
  for (std::uint32_t g = 0; g < gaps.size(); ++g) {
    const context_sampling& c = ctx_sampling_[span_tree_.spans[gaps[g].span_index].ctx];
    const auto first = drop_times_.begin() + c.drop_first;
    const auto last = first + c.drop_count;
    gaps[g].samples_dropped = static_cast<std::uint64_t>(std::upper_bound(first, last, gaps[g].end_ns) -
                                               std::lower_bound(first, last, gaps[g].begin_ns));
    for (const drop_report& report : in_->drops) {
      if (report.unlogged_count == 0) continue;
      const bool ran_there =
          std::find(ctx_tids_.begin() + c.tid_first, ctx_tids_.begin() + c.tid_first + c.tid_count, report.tid) !=
          ctx_tids_.begin() + c.tid_first + c.tid_count;
      if (!ran_there) continue;
      std::int64_t oldest = plus_infinity;
      for (const drop_entry& d : report.log) oldest = std::min(oldest, d.t_ns);
      if (gaps[g].begin_ns < oldest) {
        gaps[g].samples_dropped += report.unlogged_count;
        gaps[g].samples_dropped_upper_bound = true;
      }
    }
  }
}

// A counting sort by gap that keeps time order inside each gap.
inline void gap_filler::group_by_gap() {
  using namespace scratch;
  const std::size_t gap_count = gap_states_.size();
  scratch_counts_.assign(gap_count + 1, 0);
  for (const work_sample& w : work_) {
    if ((w.bits & work_placed) != 0) ++scratch_counts_[w.gap + 1];
  }
  for (std::size_t g = 0; g < gap_count; ++g) {
    gap_states_[g].sample_first = scratch_counts_[g];
    gap_states_[g].sample_count = scratch_counts_[g + 1];
    scratch_counts_[g + 1] += scratch_counts_[g];
  }
  gap_order_.resize(scratch_counts_[gap_count]);
  for (std::uint32_t i = 0; i < work_.size(); ++i) {
    const work_sample& w = work_[i];
    if ((w.bits & work_placed) != 0) gap_order_[scratch_counts_[w.gap]++] = i;
  }
  for (std::size_t g = 0; g < gap_count; ++g) {
    gap_summary& summary = out_->gaps[g];
    summary.sample_count = gap_states_[g].sample_count;
    for (std::uint32_t k = 0; k < summary.sample_count; ++k) {
      summary.sample_weight += work_[gap_order_[gap_states_[g].sample_first + k]].weight;
    }
    if (in_->mode == sample_mode::cpu) {
      summary.on_cpu_ns = static_cast<std::int64_t>(summary.sample_weight) * nominal_;
      const std::int64_t running = summary.end_ns - summary.begin_ns - summary.suspended_ns;
      summary.off_cpu_ns = std::max<std::int64_t>(0, running - summary.on_cpu_ns);
    }
  }
}

}  // namespace spanprof::detail::gapfill
