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
  for (std::uint32_t i = 0; i < derived_.candidates.size(); ++i) {
    const std::uint32_t final_index = derived_.final_index[i];
    if (final_index == no_index) continue;
    const candidate& kept = derived_.candidates[i];
    const index_range samples = gap_samples_.of_gap[kept.gap];
    for (std::uint32_t pos = kept.first_pos; pos <= kept.last_pos; ++pos) {
      out_->placements[ordered_.samples[gap_samples_.order[samples.first + pos]].input].derived_index = final_index;
    }
  }
  for (const work_sample& sample : ordered_.samples) {
    if ((sample.bits & work_placed) == 0) continue;
    sample_placement& placement = out_->placements[sample.input];
    placement.leaf_skip = sample.leaf_skip;
    if ((sample.bits & work_resolved) != 0) {
      placement.resolved = true;
      placement.trimmed_count = static_cast<std::uint16_t>(sample.root_pos - sample.leaf_skip + 1);
    }
    placement.low_confidence_trim = (sample.bits & work_low_confidence) != 0;
  }
}

inline void gap_filler::output_trees() {
  using namespace scratch;
  node_output_.assign(trees_.nodes.size(), no_index);
  for (std::uint32_t gap = 0; gap < gap_states_.size(); ++gap) {
    const gap_state& state = gap_states_[gap];
    gap_summary& gap_info = out_->gaps[gap];
    if (!gap_info.filled || state.node_count == 0) continue;
    gap_info.first_node = static_cast<std::uint32_t>(out_->call_tree_nodes.size());
    const std::uint32_t virtual_root = state.node_first;
    for (std::uint32_t node = virtual_root + 1; node < state.node_first + state.node_count; ++node) {
      const tree_node& built = trees_.nodes[node];
      node_output_[node] = static_cast<std::uint32_t>(out_->call_tree_nodes.size());
      call_tree_node published;
      published.parent = built.parent == virtual_root ? no_index : node_output_[built.parent];
      published.frame = built.frame;
      published.call_site_frame = built.parent == virtual_root ? no_index : built.caller_frame;
      published.depth = built.depth;
      published.self_weight = built.self_weight;
      published.total_weight = built.total_weight;
      published.hottest_line = hottest_line(node);
      published.recursion_depth = built.max_repeat;
      out_->call_tree_nodes.push_back(published);
    }
    gap_info.node_count = static_cast<std::uint32_t>(out_->call_tree_nodes.size()) - gap_info.first_node;
  }
  for (derived_span& span : out_->derived_spans) {
    if (span.kind != derived_kind::gap && span.call_tree_node != no_index) span.call_tree_node = node_output_[span.call_tree_node];
  }
}

}  // namespace spanprof::detail::gapfill
