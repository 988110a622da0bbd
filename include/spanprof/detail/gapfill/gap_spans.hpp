// spanprof gapfill, phase 10: gap spans for what the samples do not explain (gapfill.md §2.7).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "gap_filler.hpp"

namespace spanprof::detail::gapfill {

// A profile.gap span over [begin, end) of gap `gap`; `ordinal` keeps the ids of one gap's
// spans apart (0: the summary, 1 + k: suspension k).
inline derived_span gap_filler::make_gap_span(std::uint32_t gap, std::int64_t begin, std::int64_t end, gap_reason reason,
                                              std::uint64_t ordinal) const {
  using namespace scratch;
  const gap_summary& gap_info = out_->gaps[gap];
  const span_input& span = in_->spans[gap_info.span_index];
  const std::uint32_t ctx_index = span_tree_.spans[gap_info.span_index].ctx;
  const context_sampling& sampling = ordered_.contexts[ctx_index];
  derived_span gap_span;
  gap_span.kind = derived_kind::gap;
  const std::uint64_t id = scratch::mix64(span.id ^ scratch::mix64((static_cast<std::uint64_t>(gap_info.k) << 32) ^ (0xFFFF0000ull + ordinal)));
  gap_span.id = id == 0 ? 1 : id;
  gap_span.parent_id = span.id;
  gap_span.span_id = span.id;
  gap_span.gap_index = gap;
  gap_span.ctx_id = timeline_.contexts[ctx_index].id;
  gap_span.tid = sampling.tid_count != 0 ? ordered_.context_tids[sampling.tid_first] : 0;
  gap_span.begin_ns = begin;
  gap_span.end_ns = end;
  gap_span.begin_lo_ns = begin;
  gap_span.end_hi_ns = end;
  gap_span.duration_error_ns = sampling.interval_ns;
  gap_span.reason = reason;
  gap_span.low_confidence = gap_info.low_confidence;
  return gap_span;
}

// The summary span of a gap the samples do not explain (§2.7), with its reason; its index in
// derived_spans, or no_index if the gap needs none.
inline std::uint32_t gap_filler::emit_gap_summary(std::uint32_t gap) {
  using namespace scratch;
  gap_summary& gap_info = out_->gaps[gap];
  const std::int64_t interval_ns = ordered_.contexts[span_tree_.spans[gap_info.span_index].ctx].interval_ns;
  const std::int64_t duration = gap_info.end_ns - gap_info.begin_ns;
  const std::int64_t running = duration - gap_info.suspended_ns;
  if (gap_info.is_short || running <= 0 ||
      (gap_info.sample_count != 0 && gap_info.residual_ns < std::max(min_gap_, 2 * interval_ns))) {
    return no_index;
  }
  derived_span gap_span = make_gap_span(gap, gap_info.begin_ns, gap_info.end_ns, gap_reason::unexplained, 0);
  gap_span.sample_count = gap_info.sample_count;
  gap_span.sample_weight = gap_info.sample_weight;
  gap_span.unresolved_weight = gap_info.unresolved_weight;
  gap_span.expected_samples = gap_info.expected_samples;
  gap_span.samples_dropped = gap_info.samples_dropped;
  gap_span.samples_dropped_upper_bound = gap_info.samples_dropped_upper_bound;
  gap_span.on_cpu_ns = gap_info.on_cpu_ns;
  gap_span.off_cpu_ns = gap_info.off_cpu_ns;
  gap_span.suspended_ns = gap_info.suspended_ns;
  const bool after_cap = gap_info.end_ns > out_->profile_cap_ns;
  if (gap_info.samples_dropped != 0) gap_span.reason = gap_reason::samples_dropped;
  else if (after_cap) gap_span.reason = gap_reason::profile_limit;
  else if (gap_info.sample_count == 0 && in_->mode == sample_mode::cpu && duration >= 2 * nominal_) gap_span.reason = gap_reason::off_cpu;
  // No sample at all: in CPU mode too short to tell off-CPU from a burst shorter than Δ0.
  else if (gap_info.sample_count == 0) gap_span.reason = gap_reason::unsampled;
  gap_span.description = std::string(reason_name(gap_span.reason));
  if (gap_span.reason == gap_reason::samples_dropped) {
    gap_span.description.append(gap_span.samples_dropped_upper_bound ? " (up to " : " (").append(std::to_string(gap_span.samples_dropped)).append(")");
  }
  const auto index = static_cast<std::uint32_t>(out_->derived_spans.size());
  gap_info.gap_span = index;
  out_->derived_spans.push_back(std::move(gap_span));
  return index;
}

// One span per fiber suspension of the gap, nested in the innermost inferred span that
// contains it (the function the fiber yielded inside), else in the gap's summary span
// (`summary`, or no_index), else directly in the filled span.
inline void gap_filler::emit_suspension_spans(std::uint32_t gap, std::uint32_t summary) {
  using namespace scratch;
  const gap_segments& segments = gap_list_.gaps[gap];
  const gap_state& state = gap_states_[gap];
  for (std::uint32_t segment = 0; segment < segments.suspended_count; ++segment) {
    const interval& suspension = gap_list_.suspended[segments.suspended_first + segment];
    if (suspension.end - suspension.begin < min_gap_) continue;
    derived_span gap_span = make_gap_span(gap, suspension.begin, suspension.end, gap_reason::suspended, 1 + segment);
    gap_span.description = std::string(reason_name(gap_reason::suspended));
    gap_span.suspended_ns = suspension.end - suspension.begin;
    std::uint32_t parent = summary;
    std::uint32_t parent_depth = 0;
    for (std::uint32_t i = state.derived_first; i < state.derived_first + state.derived_count; ++i) {
      const std::uint32_t final_index = derived_.final_index[i];
      if (final_index == no_index) continue;
      const derived_span& inferred = out_->derived_spans[final_index];
      if (inferred.begin_ns <= suspension.begin && suspension.end <= inferred.end_ns && inferred.depth > parent_depth) {
        parent = final_index;
        parent_depth = inferred.depth;
      }
    }
    if (parent != no_index) {
      gap_span.parent_index = parent;
      gap_span.parent_id = out_->derived_spans[parent].id;
      gap_span.depth = out_->derived_spans[parent].depth + 1;
    }
    out_->derived_spans.push_back(std::move(gap_span));
  }
}

// §2.7: gap spans for what the samples do not explain, and one per fiber suspension.
inline void gap_filler::emit_gap_spans() {
  const std::size_t gap_count = out_->gaps.size();
  for (std::uint32_t gap = 0; gap < gap_count; ++gap) {
    if (!out_->gaps[gap].filled) continue;
    emit_suspension_spans(gap, emit_gap_summary(gap));
  }
}

}  // namespace spanprof::detail::gapfill
