// spanprof gapfill: the per-transaction records the phases build and hand on (frames, spans,
// contexts, gaps, work samples, tree nodes, runs, candidate spans).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "input.hpp"
#include "output.hpp"

namespace spanprof::detail::gapfill {

namespace scratch {

struct gap_state {
  std::uint32_t derived_first = 0;  // its candidates in candidate_list::candidates
  std::uint32_t derived_count = 0;
  std::uint32_t node_first = 0;  // its tree in gap_call_trees::nodes (first is a virtual root)
  std::uint32_t node_count = 0;
};

struct line_tally {
  std::uint32_t line = 0;
  std::uint64_t weight = 0;
};

struct tree_node {
  std::uint32_t fkey = no_index;
  std::uint32_t caller_line = 0;
  std::uint32_t frame = 0;
  std::uint32_t caller_frame = no_index;
  std::uint32_t parent = no_index;  // absolute index in gap_call_trees::nodes
  std::uint32_t first_child = no_index;
  std::uint32_t next_sibling = no_index;
  std::uint32_t depth = 0;
  std::uint32_t max_repeat = 1;
  std::uint64_t self_weight = 0;
  std::uint64_t total_weight = 0;
  // The most frequent lines of its own code (Misra–Gries, exact up to 4 distinct lines), for
  // code.lineno without a per-sample histogram.
  std::array<line_tally, 4> self_lines{};
};

// A run (§2.4): consecutive resolved samples of a gap that contain one node.
struct run_record {
  std::uint32_t node = no_index;
  std::uint32_t parent = no_index;  // enclosing run record (no_index: top level)
  std::uint32_t depth = 0;          // tree depth (1 = called from F)
  std::uint32_t first_pos = 0;      // positions in the gap's sample sequence
  std::uint32_t last_pos = 0;
  std::uint64_t self_weight = 0;
  std::uint32_t max_repeat = 1;
  bool self_run = false;  // F's own samples
  std::uint32_t child_first = 0;
  std::uint32_t child_count = 0;
};

struct path_entry {
  std::uint32_t fkey = 0;
  std::uint32_t caller_line = 0;
  std::uint32_t node = no_index;
  std::uint32_t record = no_index;
  std::uint32_t first_pos = 0;
  std::uint32_t max_repeat = 1;
  std::uint64_t self_weight = 0;
  bool self_run = false;
};

// The state of build_gap()'s walk over one gap's stacks, sample to sample.
struct tree_walk {
  const std::uint32_t* previous = nullptr;  // the previous resolved sample's stack
  std::size_t previous_root = 0;
  std::size_t previous_length = 0;
  std::uint32_t virtual_root = 0;  // the gap's virtual root node
  std::uint32_t last_resolved = 0;  // position of the last resolved sample
  bool any_resolved = false;
  // Within one stack:
  std::uint32_t depth = 0;  // tree depth of the group being walked (0: F)
  std::size_t entry = 0;    // its outermost stack entry
  std::uint32_t caller_line = 0;
  std::uint32_t caller_frame = no_index;
  bool diverged = false;  // it left the previous sample's path: runs below were closed
};

// A run's sample times and estimated edges (§2.5).
struct run_window {
  std::int64_t first_t = 0;     // its first and last samples
  std::int64_t last_t = 0;
  std::int64_t previous_t = 0;  // the neighbouring samples without it (±infinity if none)
  std::int64_t next_t = 0;
  std::int64_t begin = 0;       // begin_est, end_est
  std::int64_t end = 0;
};

// A derived span before the per-transaction cap and id assignment.
struct candidate {
  derived_span span;
  std::uint32_t parent = no_index;  // candidate index
  std::uint32_t gap = 0;
  std::uint32_t first_pos = 0;
  std::uint32_t last_pos = 0;
  std::uint32_t level = 1;
  std::uint32_t ordinal_in_gap = 0;
  bool kept = true;
};

// Phase 8's output and scratch: every filled gap's call tree (nodes accumulate over the
// transaction; gap_state says which are whose), and the runs of the gap being built.
struct gap_call_trees {
  std::vector<tree_node> nodes;
  std::vector<run_record> records;           // the current gap's, from gap_record_first on
  std::vector<std::uint32_t> record_children;  // per record its children, in time order
  std::uint32_t gap_record_first = 0;
  // Per position in the gap's samples: Σ weight, count and blocked count of resolved samples.
  std::vector<std::uint64_t> prefix_weight;
  std::vector<std::uint32_t> prefix_count;
  std::vector<std::uint32_t> prefix_blocked;
  // The walk: the open path (one entry per depth, open_len of them), and for the previous
  // stack, offset from its root → depth, depth → offset of the group's first entry.
  std::vector<path_entry> path;
  std::uint32_t open_len = 0;
  std::vector<std::uint32_t> offset_depth;
  std::vector<std::size_t> depth_offset;
  std::vector<std::uint32_t> bucket_start;  // scratch of order_run_records()
};

// Phase 9's output: the candidate derived spans of every gap (gap_state says which are
// whose), then which survive the span cap.
struct candidate_list {
  std::vector<candidate> candidates;
  std::vector<std::uint32_t> order;        // scratch of the span cap: by duration
  std::vector<std::uint32_t> final_index;  // candidate → derived_spans index (no_index: dropped)
};

}  // namespace scratch

}  // namespace spanprof::detail::gapfill
