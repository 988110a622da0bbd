// spanprof gapfill, phase 8: one call tree per gap, with the runs of every node (gapfill.md §2.4).
//
// Consumes: the frame_table, ordered_samples and gap_samples (trimming each gap's samples
// first, phase 7). Produces: trees_ (nodes of every filled gap, the current gap's runs) and
// gap_states_' node ranges.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "gap_filler.hpp"

namespace spanprof::detail::gapfill {

inline std::uint32_t gap_filler::child_of(std::uint32_t parent, std::uint32_t fkey, std::uint32_t caller_line, std::uint32_t frame, std::uint32_t caller_frame, std::uint32_t depth) {
  using namespace scratch;
  for (std::uint32_t child = trees_.nodes[parent].first_child; child != no_index; child = trees_.nodes[child].next_sibling) {
    if (trees_.nodes[child].fkey == fkey && trees_.nodes[child].caller_line == caller_line) return child;
  }
  tree_node node;
  node.fkey = fkey;
  node.caller_line = caller_line;
  node.frame = frame;
  node.caller_frame = caller_frame;
  node.parent = parent;
  node.next_sibling = trees_.nodes[parent].first_child;
  node.depth = depth;
  const std::uint32_t index = static_cast<std::uint32_t>(trees_.nodes.size());
  trees_.nodes.push_back(node);
  trees_.nodes[parent].first_child = index;
  return index;
}

inline std::uint32_t gap_filler::ensure_record(scratch::path_entry& entry) {
  if (entry.record == no_index) {
    entry.record = static_cast<std::uint32_t>(trees_.records.size());
    trees_.records.emplace_back();
  }
  return entry.record;
}

// Ends the runs open at depths ≥ from_depth; `last_pos` was the last sample that had them.
// Runs with fewer than min_samples samples are not recorded: they are never spans (§2.5), and
// their weight stays in their parent's unresolved weight.
inline void gap_filler::close_runs(std::uint32_t from_depth, std::uint32_t last_pos) {
  using namespace scratch;
  const std::uint32_t min_samples = std::max<std::uint32_t>(1, cfg_->min_samples);
  for (std::uint32_t depth = trees_.open_len; depth-- > std::max<std::uint32_t>(from_depth, 1);) {
    path_entry& entry = trees_.path[depth];
    if (count_between(entry.first_pos, last_pos) >= min_samples) {
      const std::uint32_t parent = depth >= 2 ? ensure_record(trees_.path[depth - 1]) : no_index;
      const std::uint32_t index = ensure_record(entry);
      run_record& run = trees_.records[index];
      run.node = entry.node;
      run.parent = parent;
      run.depth = depth;
      run.first_pos = entry.first_pos;
      run.last_pos = last_pos;
      run.self_weight = entry.self_weight;
      run.max_repeat = entry.max_repeat;
      run.self_run = entry.self_run;
    }
  }
  trees_.open_len = std::min(trees_.open_len, from_depth);
}

// Misra–Gries: count the line, or take a free slot, or decrement every slot. A few slots per
// node find its hottest lines in one pass without a map per node.
inline void gap_filler::tally_self_line(scratch::tree_node& node, std::uint32_t line, std::uint64_t weight) noexcept {
  using namespace scratch;
  for (line_tally& slot : node.self_lines) {
    if (slot.weight != 0 && slot.line == line) {
      slot.weight += weight;
      return;
    }
  }
  for (line_tally& slot : node.self_lines) {
    if (slot.weight == 0) {
      slot = {line, weight};
      return;
    }
  }
  for (line_tally& slot : node.self_lines) slot.weight = slot.weight > weight ? slot.weight - weight : 0;
}

inline void gap_filler::sum_node_totals(const scratch::gap_state& state) {
  // Totals bottom-up: children always come after their parent.
  const std::uint32_t first = state.node_first;
  const std::uint32_t end = state.node_first + state.node_count;
  for (std::uint32_t node = first; node < end; ++node) trees_.nodes[node].total_weight = trees_.nodes[node].self_weight;
  for (std::uint32_t node = end; node-- > first + 1;) trees_.nodes[trees_.nodes[node].parent].total_weight += trees_.nodes[node].total_weight;
}

inline void gap_filler::order_run_records(scratch::gap_state& state) {
  using namespace scratch;
  // Children of each record, in time order: bucket i holds the children of the gap's record i,
  // the last bucket the top-level records.
  const std::uint32_t record_count = static_cast<std::uint32_t>(trees_.records.size()) - trees_.gap_record_first;
  auto bucket_of = [&](std::uint32_t record) {
    return trees_.records[record].parent == no_index ? record_count : trees_.records[record].parent - trees_.gap_record_first;
  };
  std::vector<std::uint32_t>& bucket_start = trees_.bucket_start;
  bucket_start.assign(record_count + 2, 0);
  for (std::uint32_t record = trees_.gap_record_first; record < trees_.records.size(); ++record) ++bucket_start[bucket_of(record) + 1];
  for (std::uint32_t i = 0; i <= record_count; ++i) bucket_start[i + 1] += bucket_start[i];
  trees_.record_children.resize(record_count);
  for (std::uint32_t i = 0; i < record_count; ++i) {
    trees_.records[trees_.gap_record_first + i].child_first = bucket_start[i];
    trees_.records[trees_.gap_record_first + i].child_count = bucket_start[i + 1] - bucket_start[i];
  }
  const std::uint32_t top_first = bucket_start[record_count];
  const std::uint32_t top_end = bucket_start[record_count + 1];
  for (std::uint32_t record = trees_.gap_record_first; record < trees_.records.size(); ++record) {
    trees_.record_children[bucket_start[bucket_of(record)]++] = record;
  }
  auto by_time = [&](std::uint32_t a, std::uint32_t b) { return trees_.records[a].first_pos < trees_.records[b].first_pos; };
  for (std::uint32_t i = 0; i < record_count; ++i) {
    const run_record& parent = trees_.records[trees_.gap_record_first + i];
    std::sort(trees_.record_children.begin() + parent.child_first, trees_.record_children.begin() + parent.child_first + parent.child_count, by_time);
  }
  std::sort(trees_.record_children.begin() + top_first, trees_.record_children.begin() + top_end, by_time);
  state.derived_first = top_first;  // the top-level list, until emit_gap() reuses these fields
  state.derived_count = top_end - top_first;
}

// Trims the gap's samples (§2.3) and sums, per position, the weight, count and blocked count
// of the resolved ones (weight_between() and friends). Returns the longest trimmed stack.
inline std::size_t gap_filler::trim_gap_samples(std::uint32_t gap) {
  using namespace scratch;
  const index_range samples = gap_samples_.of_gap[gap];
  const std::uint32_t sample_count = samples.count;
  trees_.prefix_weight.resize(sample_count + 1);
  trees_.prefix_count.resize(sample_count + 1);
  trees_.prefix_blocked.resize(sample_count + 1);
  trees_.prefix_weight[0] = 0;
  trees_.prefix_count[0] = 0;
  trees_.prefix_blocked[0] = 0;
  std::size_t longest = 0;
  // The stacks are read from memory here for the first time: ask for a few samples ahead, the
  // trimming of one sample is too short to hide the wait for the next.
  constexpr std::uint32_t prefetch_distance = 4;
  auto prefetch_stack = [&](std::uint32_t pos) {
    const std::span<const std::uint32_t> stack = stack_of(ordered_.samples[gap_samples_.order[samples.first + pos]]);
    const char* bytes = reinterpret_cast<const char*>(stack.data());
    for (std::size_t offset = 0; offset < stack.size_bytes(); offset += 64) __builtin_prefetch(bytes + offset);
  };
  for (std::uint32_t pos = 0; pos < std::min(sample_count, prefetch_distance); ++pos) prefetch_stack(pos);
  for (std::uint32_t pos = 0; pos < sample_count; ++pos) {
    if (pos + prefetch_distance < sample_count) prefetch_stack(pos + prefetch_distance);
    work_sample& sample = ordered_.samples[gap_samples_.order[samples.first + pos]];
    trimmer_.trim(sample);
    const bool resolved = (sample.bits & work_resolved) != 0;
    if (resolved) longest = std::max<std::size_t>(longest, sample.root_pos - sample.leaf_skip + 1);
    trees_.prefix_weight[pos + 1] = trees_.prefix_weight[pos] + (resolved ? sample.weight : 0);
    trees_.prefix_count[pos + 1] = trees_.prefix_count[pos] + (resolved ? 1 : 0);
    trees_.prefix_blocked[pos + 1] = trees_.prefix_blocked[pos] + (resolved && (sample.bits & work_blocked) != 0 ? 1 : 0);
  }
  return longest;
}

// Where the walk of a stack starts (§2.4 fast path). Consecutive stacks share most of their
// frames from F down: compare the frame ids first, then walk (with lookups) only from the
// group holding the last shared frame, whose repeat count may differ. The groups above it are
// the same nodes with the same runs.
inline void gap_filler::resume_walk(scratch::tree_walk& walk, const std::uint32_t* entries, std::size_t leaf,
                                    std::size_t root) const noexcept {
  const std::size_t length = root - leaf + 1;
  std::size_t shared = 0;
  if (walk.previous != nullptr) {
    const std::size_t limit = std::min(length, walk.previous_length);
    while (shared < limit && entries[root - shared] == walk.previous[walk.previous_root - shared]) ++shared;
  }
  walk.depth = 0;
  walk.entry = root;
  walk.caller_line = 0;
  walk.caller_frame = no_index;
  if (shared != 0) {
    walk.depth = trees_.offset_depth[shared - 1];
    walk.entry = root - trees_.depth_offset[walk.depth];
    if (walk.depth != 0) {
      walk.caller_frame = entries[walk.entry + 1];
      walk.caller_line = frame_table_.frames[walk.caller_frame].line;
    }
  }
  walk.previous = entries;
  walk.previous_root = root;
  walk.previous_length = length;
  walk.diverged = false;
}

// Walks the stack from walk.entry to the leaf, one recursion-collapsed group (one tree level)
// at a time: a group that matches the open path extends its run; the first that does not
// closes the runs below it and opens new nodes and runs from there on.
inline void gap_filler::descend_stack(scratch::tree_walk& walk, const std::uint32_t* entries, std::size_t leaf,
                                      std::size_t root, std::uint32_t pos) {
  using namespace scratch;
  path_entry* const path = trees_.path.data();
  const frame_info* const info = frame_table_.frames.data();
  for (;;) {
    const std::uint32_t fkey = info[entries[walk.entry]].fkey;
    std::size_t inner = walk.entry;
    std::uint32_t repeat = 1;
    while (inner > leaf && info[entries[inner - 1]].fkey == fkey) {
      --inner;
      ++repeat;
    }
    trees_.depth_offset[walk.depth] = root - walk.entry;
    for (std::size_t offset = root - walk.entry; offset <= root - inner; ++offset) trees_.offset_depth[offset] = walk.depth;
    const std::uint32_t frame_index = entries[inner];
    path_entry& open = path[walk.depth];
    if (!walk.diverged && walk.depth < trees_.open_len && open.fkey == fkey && open.caller_line == walk.caller_line) {
      if (repeat > open.max_repeat) open.max_repeat = repeat;
    } else {
      if (!walk.diverged) {
        close_runs(walk.depth, walk.last_resolved);
        walk.diverged = true;
      }
      const std::uint32_t parent_node = walk.depth == 0 ? walk.virtual_root : path[walk.depth - 1].node;
      path_entry fresh;
      fresh.fkey = fkey;
      fresh.caller_line = walk.caller_line;
      fresh.node = child_of(parent_node, fkey, walk.caller_line, frame_index, walk.caller_frame, walk.depth);
      fresh.first_pos = pos;
      fresh.max_repeat = repeat;
      path[walk.depth] = fresh;
      trees_.open_len = walk.depth + 1;
    }
    if (repeat > 1) {
      tree_node& node = trees_.nodes[path[walk.depth].node];
      node.max_repeat = std::max(node.max_repeat, repeat);
    }
    walk.caller_line = info[frame_index].line;
    walk.caller_frame = frame_index;
    ++walk.depth;
    if (inner == leaf) break;
    walk.entry = inner - 1;
  }
}

// After the walk: the sample's weight goes to the innermost run it is in and to its leaf node;
// a sample in F's own code is in the `F self` run at depth 1.
inline void gap_filler::credit_sample(scratch::tree_walk& walk, const scratch::work_sample& sample, std::uint32_t leaf_line,
                                      std::uint32_t pos) {
  using namespace scratch;
  constexpr std::uint32_t self_fkey = no_index - 1;
  path_entry* const path = trees_.path.data();
  const std::uint32_t leaf_node = path[walk.depth - 1].node;
  std::uint32_t run_depth = walk.depth;  // depth of the innermost run this sample is in
  if (walk.depth == 1) {
    // F's own code: a run of its own at depth 1 (the `F self` candidate).
    path_entry& self_entry = path[1];
    if (walk.diverged || trees_.open_len < 2 || !self_entry.self_run) {
      if (!walk.diverged) close_runs(1, walk.last_resolved);
      walk.diverged = true;
      path_entry fresh;
      fresh.fkey = self_fkey;
      fresh.node = path[0].node;
      fresh.first_pos = pos;
      fresh.self_run = true;
      path[1] = fresh;
      trees_.open_len = 2;
    }
    run_depth = 2;
  }
  if (!walk.diverged && trees_.open_len > run_depth) close_runs(run_depth, walk.last_resolved);
  path[run_depth - 1].self_weight += sample.weight;
  tree_node& leaf = trees_.nodes[leaf_node];
  leaf.self_weight += sample.weight;
  tally_self_line(leaf, leaf_line, sample.weight);
  walk.last_resolved = pos;
  walk.any_resolved = true;
}

// §2.4: the call tree of a gap from its trimmed stacks (root = F), and its runs. Each stack is
// walked from F towards the leaf, collapsing direct recursion; while it agrees with the path
// of the previous sample nothing is looked up, so a steady stack costs a comparison per frame.
inline void gap_filler::build_gap(std::uint32_t gap) {
  using namespace scratch;
  gap_state& state = gap_states_[gap];
  const std::size_t longest = trim_gap_samples(gap);
  state.node_first = static_cast<std::uint32_t>(trees_.nodes.size());
  trees_.nodes.emplace_back();  // virtual root: its children are the roots (F)
  trees_.gap_record_first = static_cast<std::uint32_t>(trees_.records.size());
  trees_.open_len = 0;
  // Depth ≤ stack length, + 1 for the `F self` run: no resize inside the loop.
  if (trees_.path.size() < longest + 2) trees_.path.resize(longest + 2);
  // The previous resolved sample's trimmed stack, and for each offset from its root the depth
  // of the (recursion-collapsed) group holding it; trees_.depth_offset[d]: where group d starts.
  if (trees_.offset_depth.size() < longest + 1) trees_.offset_depth.resize(longest + 1);
  if (trees_.depth_offset.size() < longest + 2) trees_.depth_offset.resize(longest + 2);
  tree_walk walk;
  walk.virtual_root = state.node_first;
  const std::uint32_t sample_count = gap_samples_.of_gap[gap].count;
  for (std::uint32_t pos = 0; pos < sample_count; ++pos) {
    const work_sample& sample = gap_sample(gap, pos);
    if ((sample.bits & work_resolved) == 0) continue;  // unknown stack: neither extends nor ends a run
    const std::uint32_t* const entries = stack_of(sample).data();
    resume_walk(walk, entries, sample.leaf_skip, sample.root_pos);
    descend_stack(walk, entries, sample.leaf_skip, sample.root_pos, pos);
    credit_sample(walk, sample, frame_table_.frames[entries[sample.leaf_skip]].line, pos);
  }
  if (walk.any_resolved) close_runs(0, walk.last_resolved);
  trees_.open_len = 0;
  state.node_count = static_cast<std::uint32_t>(trees_.nodes.size()) - state.node_first;
  sum_node_totals(state);
  order_run_records(state);
}

inline std::uint32_t gap_filler::hottest_line(std::uint32_t node, bool self_only) const {
  using namespace scratch;
  const tree_node& self = trees_.nodes[node];
  // Most nodes of a deep stack are links of a chain: no code of their own, one callee.
  if (!self_only && self.self_weight == 0 && self.first_child != no_index && trees_.nodes[self.first_child].next_sibling == no_index) {
    return trees_.nodes[self.first_child].caller_line;
  }
  // Lines of its own code, and the lines where it called each child, weighted.
  std::array<line_tally, 16> lines{};
  std::size_t used = 0;
  auto add = [&](std::uint32_t line, std::uint64_t weight) {
    if (weight == 0) return;
    for (std::size_t i = 0; i < used; ++i) {
      if (lines[i].line == line) {
        lines[i].weight += weight;
        return;
      }
    }
    if (used < lines.size()) {
      lines[used++] = {line, weight};
      return;
    }
    // Full: replace the lightest if this one is heavier.
    std::size_t lightest = 0;
    for (std::size_t i = 1; i < used; ++i) {
      if (lines[i].weight < lines[lightest].weight) lightest = i;
    }
    if (lines[lightest].weight < weight) lines[lightest] = {line, weight};
  };
  for (const line_tally& tally : self.self_lines) add(tally.line, tally.weight);
  for (std::uint32_t child = self_only ? no_index : trees_.nodes[node].first_child; child != no_index; child = trees_.nodes[child].next_sibling) {
    add(trees_.nodes[child].caller_line, trees_.nodes[child].total_weight);
  }
  std::uint32_t best = in_->frames[trees_.nodes[node].frame].line;
  std::uint64_t best_weight = 0;
  for (std::size_t i = 0; i < used; ++i) {
    if (lines[i].weight > best_weight || (lines[i].weight == best_weight && lines[i].line < best)) {
      best = lines[i].line;
      best_weight = lines[i].weight;
    }
  }
  return best;
}

}  // namespace spanprof::detail::gapfill
