// spanprof gapfill, phase 10: gap spans for what the samples do not explain (gapfill.md §2.7).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "gap_filler.hpp"

namespace spanprof::detail::gapfill {

// §2.7: gap spans for what the samples do not explain, and one per fiber suspension.
inline void gap_filler::emit_gap_spans() {
  using namespace scratch;
  const std::size_t gap_count = out_->gaps.size();
  for (std::uint32_t g = 0; g < gap_count; ++g) {
    gap_summary& gs = out_->gaps[g];
    if (!gs.filled) continue;
    const span_input& s = in_->spans[gs.span_index];
    const std::uint32_t ctx_index = span_tree_.spans[gs.span_index].ctx;
    const ctx_state& c = timeline_.contexts[ctx_index];
    const context_sampling& sampling = ordered_.contexts[ctx_index];
    const std::int64_t delta = sampling.interval_ns;
    const std::int64_t duration = gs.end_ns - gs.begin_ns;
    const std::int64_t running = duration - gs.suspended_ns;
    auto make = [&](std::int64_t begin, std::int64_t end, gap_reason reason, std::uint64_t ordinal) {
      derived_span d;
      d.kind = derived_kind::gap;
      std::uint64_t id = scratch::mix64(s.id ^ scratch::mix64((static_cast<std::uint64_t>(gs.k) << 32) ^ (0xFFFF0000ull + ordinal)));
      d.id = id == 0 ? 1 : id;
      d.parent_id = s.id;
      d.span_id = s.id;
      d.gap_index = g;
      d.ctx_id = c.id;
      d.tid = sampling.tid_count != 0 ? ordered_.context_tids[sampling.tid_first] : 0;
      d.begin_ns = begin;
      d.end_ns = end;
      d.begin_lo_ns = begin;
      d.end_hi_ns = end;
      d.duration_error_ns = delta;
      d.reason = reason;
      d.low_confidence = gs.low_confidence;
      return d;
    };
    std::uint32_t whole = no_index;
    if (!gs.is_short && running > 0 &&
        (gs.sample_count == 0 || gs.residual_ns >= std::max(min_gap_, 2 * delta))) {
      derived_span d = make(gs.begin_ns, gs.end_ns, gap_reason::unexplained, 0);
      d.sample_count = gs.sample_count;
      d.sample_weight = gs.sample_weight;
      d.unresolved_weight = gs.unresolved_weight;
      d.expected_samples = gs.expected_samples;
      d.samples_dropped = gs.samples_dropped;
      d.samples_dropped_upper_bound = gs.samples_dropped_upper_bound;
      d.on_cpu_ns = gs.on_cpu_ns;
      d.off_cpu_ns = gs.off_cpu_ns;
      d.suspended_ns = gs.suspended_ns;
      const bool after_cap = gs.end_ns > out_->profile_cap_ns;
      if (gs.samples_dropped != 0) d.reason = gap_reason::samples_dropped;
      else if (after_cap) d.reason = gap_reason::profile_limit;
      else if (gs.sample_count == 0 && in_->mode == sample_mode::cpu && duration >= 2 * nominal_) d.reason = gap_reason::off_cpu;
      // No sample at all: in CPU mode too short to tell off-CPU from a burst shorter than Δ0.
      else if (gs.sample_count == 0) d.reason = gap_reason::unsampled;
      d.description = std::string(reason_name(d.reason));
      if (d.reason == gap_reason::samples_dropped) {
        d.description.append(d.samples_dropped_upper_bound ? " (up to " : " (").append(std::to_string(d.samples_dropped)).append(")");
      }
      whole = static_cast<std::uint32_t>(out_->derived_spans.size());
      gs.gap_span = whole;
      out_->derived_spans.push_back(std::move(d));
    }
    const gap_state& st = gap_states_[g];
    const gap_segments& segments = gap_list_.gaps[g];
    for (std::uint32_t k = 0; k < segments.suspended_count; ++k) {
      const interval& seg = gap_list_.suspended[segments.suspended_first + k];
      if (seg.end - seg.begin < min_gap_) continue;
      derived_span d = make(seg.begin, seg.end, gap_reason::suspended, 1 + k);
      d.description = std::string(reason_name(gap_reason::suspended));
      d.suspended_ns = seg.end - seg.begin;
      // Nested in the innermost inferred span that contains it (the function the fiber yielded
      // inside), else in the gap span, else directly in the filled span.
      std::uint32_t parent = whole;
      std::uint32_t parent_depth = 0;
      for (std::uint32_t i = st.derived_first; i < st.derived_first + st.derived_count; ++i) {
        const std::uint32_t fi = candidate_final_[i];
        if (fi == no_index) continue;
        const derived_span& inferred = out_->derived_spans[fi];
        if (inferred.begin_ns <= seg.begin && seg.end <= inferred.end_ns && inferred.depth > parent_depth) {
          parent = fi;
          parent_depth = inferred.depth;
        }
      }
      if (parent != no_index) {
        d.parent_index = parent;
        d.parent_id = out_->derived_spans[parent].id;
        d.depth = out_->derived_spans[parent].depth + 1;
      }
      out_->derived_spans.push_back(std::move(d));
    }
  }
}

}  // namespace spanprof::detail::gapfill
