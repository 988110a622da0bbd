// spanprof gapfill, phase 11: the last pass over the output — each sample's innermost derived
// span, and the call trees copied out.
#pragma once

#include <cstdint>

#include "gap_filler.hpp"

namespace spanprof::detail::gapfill {

// Innermost derived span of each sample (pprof's inferred_span_id label): parents come before
// children in the candidate order, so children overwrite.
inline void gap_filler::label_samples() {
  using namespace scratch;
  for (std::uint32_t i = 0; i < candidates_.size(); ++i) {
    const std::uint32_t fi = candidate_final_[i];
    if (fi == no_index) continue;
    const candidate& c = candidates_[i];
    const index_range samples = gap_samples_.of_gap[c.gap];
    for (std::uint32_t pos = c.first_pos; pos <= c.last_pos; ++pos) {
      out_->placements[ordered_.samples[gap_samples_.order[samples.first + pos]].input].derived_index = fi;
    }
  }
  for (const work_sample& w : ordered_.samples) {
    if ((w.bits & work_placed) == 0) continue;
    sample_placement& p = out_->placements[w.input];
    p.leaf_skip = w.leaf_skip;
    if ((w.bits & work_resolved) != 0) {
      p.resolved = true;
      p.trimmed_count = static_cast<std::uint16_t>(w.root_pos - w.leaf_skip + 1);
    }
    p.low_confidence_trim = (w.bits & work_low_confidence) != 0;
  }
}

inline void gap_filler::output_trees() {
  using namespace scratch;
  node_output_.assign(nodes_.size(), no_index);
  for (std::uint32_t g = 0; g < gap_states_.size(); ++g) {
    const gap_state& st = gap_states_[g];
    gap_summary& gs = out_->gaps[g];
    if (!gs.filled || st.node_count == 0) continue;
    gs.first_node = static_cast<std::uint32_t>(out_->call_tree_nodes.size());
    for (std::uint32_t n = st.node_first + 1; n < st.node_first + st.node_count; ++n) {
      const tree_node& t = nodes_[n];
      node_output_[n] = static_cast<std::uint32_t>(out_->call_tree_nodes.size());
      call_tree_node o;
      o.parent = t.parent == st.node_first ? no_index : node_output_[t.parent];
      o.frame = t.frame;
      o.call_site_frame = t.parent == st.node_first ? no_index : t.caller_frame;
      o.depth = t.depth;
      o.self_weight = t.self_weight;
      o.total_weight = t.total_weight;
      o.hottest_line = hottest_line(n);
      o.recursion_depth = t.max_repeat;
      out_->call_tree_nodes.push_back(o);
    }
    gs.node_count = static_cast<std::uint32_t>(out_->call_tree_nodes.size()) - gs.first_node;
  }
  for (derived_span& d : out_->derived_spans) {
    if (d.kind != derived_kind::gap && d.call_tree_node != no_index) d.call_tree_node = node_output_[d.call_tree_node];
  }
}

}  // namespace spanprof::detail::gapfill
