// spanprof gapfill, phase 8: one call tree per gap, with the runs of every node (gapfill.md §2.4).
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
  for (std::uint32_t c = nodes_[parent].first_child; c != no_index; c = nodes_[c].next_sibling) {
    if (nodes_[c].fkey == fkey && nodes_[c].caller_line == caller_line) return c;
  }
  tree_node n;
  n.fkey = fkey;
  n.caller_line = caller_line;
  n.frame = frame;
  n.caller_frame = caller_frame;
  n.parent = parent;
  n.next_sibling = nodes_[parent].first_child;
  n.depth = depth;
  const std::uint32_t index = static_cast<std::uint32_t>(nodes_.size());
  nodes_.push_back(n);
  nodes_[parent].first_child = index;
  return index;
}

inline std::uint32_t gap_filler::ensure_record(scratch::path_entry& e) {
  if (e.record == no_index) {
    e.record = static_cast<std::uint32_t>(records_.size());
    records_.emplace_back();
  }
  return e.record;
}

// Ends the runs open at depths ≥ from_depth; `last_pos` was the last sample that had them.
// Runs with fewer than min_samples samples are not recorded: they are never spans (§2.5), and
// their weight stays in their parent's unresolved weight.
inline void gap_filler::close_runs(std::uint32_t from_depth, std::uint32_t last_pos) {
  using namespace scratch;
  const std::uint32_t min_samples = std::max<std::uint32_t>(1, cfg_->min_samples);
  for (std::uint32_t d = open_len_; d-- > std::max<std::uint32_t>(from_depth, 1);) {
    path_entry& e = path_[d];
    if (count_between(e.first_pos, last_pos) >= min_samples) {
      const std::uint32_t parent = d >= 2 ? ensure_record(path_[d - 1]) : no_index;
      const std::uint32_t index = ensure_record(e);
      run_record& r = records_[index];
      r.node = e.node;
      r.parent = parent;
      r.depth = d;
      r.first_pos = e.first_pos;
      r.last_pos = last_pos;
      r.self_weight = e.self_weight;
      r.max_repeat = e.max_repeat;
      r.self_run = e.self_run;
    }
  }
  open_len_ = std::min(open_len_, from_depth);
}

// Misra–Gries: count the line, or take a free slot, or decrement every slot. A few slots per
// node find its hottest lines in one pass without a map per node.
inline void gap_filler::tally_self_line(scratch::tree_node& node, std::uint32_t line, std::uint64_t weight) noexcept {
  using namespace scratch;
  for (line_tally& t : node.self_lines) {
    if (t.weight != 0 && t.line == line) {
      t.weight += weight;
      return;
    }
  }
  for (line_tally& t : node.self_lines) {
    if (t.weight == 0) {
      t = {line, weight};
      return;
    }
  }
  for (line_tally& t : node.self_lines) t.weight = t.weight > weight ? t.weight - weight : 0;
}

inline void gap_filler::sum_node_totals(const scratch::gap_state& g) {
  // Totals bottom-up: children always come after their parent.
  for (std::uint32_t n = g.node_first; n < g.node_first + g.node_count; ++n) nodes_[n].total_weight = nodes_[n].self_weight;
  for (std::uint32_t n = g.node_first + g.node_count; n-- > g.node_first + 1;) {
    nodes_[nodes_[n].parent].total_weight += nodes_[n].total_weight;
  }
}

inline void gap_filler::order_run_records(scratch::gap_state& g) {
  using namespace scratch;
  // Children of each record, in time order: bucket k holds the children of record k, the last
  // bucket the top-level records.
  const std::uint32_t record_count = static_cast<std::uint32_t>(records_.size()) - gap_record_first_;
  auto bucket_of = [&](std::uint32_t r) { return records_[r].parent == no_index ? record_count : records_[r].parent - gap_record_first_; };
  scratch_counts_.assign(record_count + 2, 0);
  for (std::uint32_t r = gap_record_first_; r < records_.size(); ++r) ++scratch_counts_[bucket_of(r) + 1];
  for (std::uint32_t k = 0; k <= record_count; ++k) scratch_counts_[k + 1] += scratch_counts_[k];
  record_children_.resize(record_count);
  for (std::uint32_t k = 0; k < record_count; ++k) {
    records_[gap_record_first_ + k].child_first = scratch_counts_[k];
    records_[gap_record_first_ + k].child_count = scratch_counts_[k + 1] - scratch_counts_[k];
  }
  const std::uint32_t top_first = scratch_counts_[record_count];
  const std::uint32_t top_end = scratch_counts_[record_count + 1];
  for (std::uint32_t r = gap_record_first_; r < records_.size(); ++r) record_children_[scratch_counts_[bucket_of(r)]++] = r;
  auto by_time = [&](std::uint32_t a, std::uint32_t b) { return records_[a].first_pos < records_[b].first_pos; };
  for (std::uint32_t k = 0; k < record_count; ++k) {
    const run_record& r = records_[gap_record_first_ + k];
    std::sort(record_children_.begin() + r.child_first, record_children_.begin() + r.child_first + r.child_count, by_time);
  }
  std::sort(record_children_.begin() + top_first, record_children_.begin() + top_end, by_time);
  g.derived_first = top_first;  // the top-level list, until emit_gap() reuses these fields
  g.derived_count = top_end - top_first;
}

// §2.4: the call tree of a gap from its trimmed stacks (root = F), and its runs. Each stack is
// walked from F towards the leaf, collapsing direct recursion; while it agrees with the path
// of the previous sample nothing is looked up, so a steady stack costs a comparison per frame.
inline void gap_filler::build_gap(std::uint32_t gap) {
  using namespace scratch;
  gap_state& g = gap_states_[gap];
  const scratch::index_range samples = gap_samples_.of_gap[gap];
  const std::uint32_t m = samples.count;
  prefix_weight_.resize(m + 1);
  prefix_count_.resize(m + 1);
  prefix_blocked_.resize(m + 1);
  prefix_weight_[0] = 0;
  prefix_count_[0] = 0;
  prefix_blocked_[0] = 0;
  std::size_t longest = 0;
  // The stacks are read from memory here for the first time: ask for a few samples ahead, the
  // trimming of one sample is too short to hide the wait for the next.
  constexpr std::uint32_t prefetch_distance = 4;
  auto prefetch_stack = [&](std::uint32_t pos) {
    const std::span<const std::uint32_t> st = stack_of(ordered_.samples[gap_samples_.order[samples.first + pos]]);
    const char* bytes = reinterpret_cast<const char*>(st.data());
    for (std::size_t offset = 0; offset < st.size_bytes(); offset += 64) __builtin_prefetch(bytes + offset);
  };
  for (std::uint32_t pos = 0; pos < std::min(m, prefetch_distance); ++pos) prefetch_stack(pos);
  for (std::uint32_t pos = 0; pos < m; ++pos) {
    if (pos + prefetch_distance < m) prefetch_stack(pos + prefetch_distance);
    work_sample& w = ordered_.samples[gap_samples_.order[samples.first + pos]];
    trimmer_.trim(w);
    const bool resolved = (w.bits & work_resolved) != 0;
    if (resolved) longest = std::max<std::size_t>(longest, w.root_pos - w.leaf_skip + 1);
    prefix_weight_[pos + 1] = prefix_weight_[pos] + (resolved ? w.weight : 0);
    prefix_count_[pos + 1] = prefix_count_[pos] + (resolved ? 1 : 0);
    prefix_blocked_[pos + 1] = prefix_blocked_[pos] + (resolved && (w.bits & work_blocked) != 0 ? 1 : 0);
  }
  g.node_first = static_cast<std::uint32_t>(nodes_.size());
  nodes_.emplace_back();  // virtual root: its children are the roots (F)
  const std::uint32_t virtual_root = g.node_first;
  gap_record_first_ = static_cast<std::uint32_t>(records_.size());
  open_len_ = 0;
  std::uint32_t last_resolved = 0;
  bool any_resolved = false;
  constexpr std::uint32_t self_fkey = no_index - 1;
  // Depth ≤ stack length, + 1 for the `F self` run: no resize inside the loop.
  if (path_.size() < longest + 2) path_.resize(longest + 2);
  path_entry* const path = path_.data();
  const frame_info* const info = frame_table_.frames.data();
  // The previous resolved sample's trimmed stack, and for each offset from its root the depth
  // of the (recursion-collapsed) group holding it; depth_offset_[d]: where group d starts.
  if (offset_depth_.size() < longest + 1) offset_depth_.resize(longest + 1);
  if (depth_offset_.size() < longest + 2) depth_offset_.resize(longest + 2);
  std::uint32_t* const offset_depth = offset_depth_.data();
  std::size_t* const depth_offset = depth_offset_.data();
  const std::uint32_t* previous = nullptr;
  std::size_t previous_root = 0;
  std::size_t previous_length = 0;
  for (std::uint32_t pos = 0; pos < m; ++pos) {
    const work_sample& w = gap_sample(gap, pos);
    if ((w.bits & work_resolved) == 0) continue;  // unknown stack: neither extends nor ends a run
    const std::uint32_t* const entries = stack_of(w).data();
    const std::size_t leaf = w.leaf_skip;
    const std::size_t root = w.root_pos;
    const std::size_t length = root - leaf + 1;
    // Consecutive stacks share most of their frames from F down: compare the frame ids first,
    // then walk (with lookups) only from the group holding the last shared frame, whose
    // repeat count may differ. The groups above it are the same nodes with the same runs.
    std::size_t shared = 0;
    if (previous != nullptr) {
      const std::size_t limit = std::min(length, previous_length);
      while (shared < limit && entries[root - shared] == previous[previous_root - shared]) ++shared;
    }
    std::uint32_t depth = 0;
    std::size_t e = root;
    std::uint32_t caller_line = 0;
    std::uint32_t caller_frame = no_index;
    if (shared != 0) {
      depth = offset_depth[shared - 1];
      const std::size_t start = depth_offset[depth];
      e = root - start;
      if (depth != 0) {
        caller_frame = entries[e + 1];
        caller_line = info[caller_frame].line;
      }
    }
    previous = entries;
    previous_root = root;
    previous_length = length;
    bool diverged = false;
    for (;;) {
      const std::uint32_t fkey = info[entries[e]].fkey;
      std::size_t inner = e;
      std::uint32_t repeat = 1;
      while (inner > leaf && info[entries[inner - 1]].fkey == fkey) {
        --inner;
        ++repeat;
      }
      depth_offset[depth] = root - e;
      for (std::size_t o = root - e; o <= root - inner; ++o) offset_depth[o] = depth;
      const std::uint32_t frame_index = entries[inner];
      path_entry& p = path[depth];
      if (!diverged && depth < open_len_ && p.fkey == fkey && p.caller_line == caller_line) {
        if (repeat > p.max_repeat) p.max_repeat = repeat;
      } else {
        if (!diverged) {
          close_runs(depth, last_resolved);
          diverged = true;
        }
        const std::uint32_t parent_node = depth == 0 ? virtual_root : path[depth - 1].node;
        path_entry fresh;
        fresh.fkey = fkey;
        fresh.caller_line = caller_line;
        fresh.node = child_of(parent_node, fkey, caller_line, frame_index, caller_frame, depth);
        fresh.first_pos = pos;
        fresh.max_repeat = repeat;
        path[depth] = fresh;
        open_len_ = depth + 1;
      }
      if (repeat > 1) {
        tree_node& node = nodes_[path[depth].node];
        node.max_repeat = std::max(node.max_repeat, repeat);
      }
      caller_line = info[frame_index].line;
      caller_frame = frame_index;
      ++depth;
      if (inner == leaf) break;
      e = inner - 1;
    }
    const std::uint32_t leaf_node = path[depth - 1].node;
    std::uint32_t run_depth = depth;  // depth of the innermost run this sample is in
    if (depth == 1) {
      // F's own code: a run of its own at depth 1 (the `F self` candidate).
      path_entry& p = path[1];
      if (diverged || open_len_ < 2 || !p.self_run) {
        if (!diverged) close_runs(1, last_resolved);
        diverged = true;
        path_entry fresh;
        fresh.fkey = self_fkey;
        fresh.node = path[0].node;
        fresh.first_pos = pos;
        fresh.self_run = true;
        path[1] = fresh;
        open_len_ = 2;
      }
      run_depth = 2;
    }
    if (!diverged && open_len_ > run_depth) close_runs(run_depth, last_resolved);
    path[run_depth - 1].self_weight += w.weight;
    tree_node& ln = nodes_[leaf_node];
    ln.self_weight += w.weight;
    tally_self_line(ln, info[entries[leaf]].line, w.weight);
    last_resolved = pos;
    any_resolved = true;
  }
  if (any_resolved) close_runs(0, last_resolved);
  open_len_ = 0;
  g.node_count = static_cast<std::uint32_t>(nodes_.size()) - g.node_first;
  sum_node_totals(g);
  order_run_records(g);
}

inline std::uint32_t gap_filler::hottest_line(std::uint32_t node, bool self_only) const {
  using namespace scratch;
  const tree_node& n = nodes_[node];
  // Most nodes of a deep stack are links of a chain: no code of their own, one callee.
  if (!self_only && n.self_weight == 0 && n.first_child != no_index && nodes_[n.first_child].next_sibling == no_index) {
    return nodes_[n.first_child].caller_line;
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
  for (const line_tally& t : nodes_[node].self_lines) add(t.line, t.weight);
  for (std::uint32_t c = self_only ? no_index : nodes_[node].first_child; c != no_index; c = nodes_[c].next_sibling) {
    add(nodes_[c].caller_line, nodes_[c].total_weight);
  }
  std::uint32_t best = in_->frames[nodes_[node].frame].line;
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
