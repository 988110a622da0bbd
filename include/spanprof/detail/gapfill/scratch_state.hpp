// spanprof gapfill: the per-transaction records the phases build and hand on (frames, spans,
// contexts, gaps, work samples, tree nodes, runs, candidate spans).
#pragma once

#include <array>
#include <cstdint>

#include "input.hpp"

namespace spanprof::detail::gapfill {

namespace scratch {

struct gap_state {
  std::uint32_t derived_first = 0;  // its candidates in gap_filler::candidates_
  std::uint32_t derived_count = 0;
  std::uint32_t node_first = 0;  // its tree in gap_filler::nodes_ (first is a virtual root)
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
  std::uint32_t parent = no_index;  // absolute index in gap_filler::nodes_
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

}  // namespace scratch

}  // namespace spanprof::detail::gapfill
