// spanprof gapfill: what comes out — derived spans, gap summaries, call trees, the fate of
// every sample, and the counters (gapfill.md §2.5–§2.7).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "input.hpp"

namespace spanprof::detail::gapfill {

// ---- output ---------------------------------------------------------------------------------

enum class derived_kind : std::uint8_t {
  inferred,       // a function the samples show between spans (op profile.inferred)
  inferred_self,  // F's own code, F being the function that opened the filled span
  gap,            // a stretch the samples do not explain (op profile.gap), with its reason
};

enum class run_state : std::uint8_t { running, blocked, mixed };

enum class gap_reason : std::uint8_t {
  none,
  suspended,        // the fiber was not running
  samples_dropped,  // the ring was full
  profile_limit,    // after max_profile_ns / max_samples_per_txn
  off_cpu,          // CPU mode, no samples: the thread was not on a CPU
  unsampled,        // no sample fell here (wall mode, or too short to tell in CPU mode)
  unexplained,      // sampled, but the samples do not add up to a derived span
};

enum class gap_kind : std::uint8_t { leading, between, trailing, whole };

enum class sample_fate : std::uint8_t {
  placed,             // assigned to (span, gap)
  other_transaction,  // txn_id is not this transaction's
  in_switch,          // taken during a fiber switch (switch_samples)
  orphan,             // unknown span, or a span of another context (orphan_samples)
  over_cap,           // after the profile limit (samples_over_cap)
  unplaced,           // its span has no gap at all to hold it (counted as a skew conflict)
};

inline constexpr std::string_view inferred_op = "profile.inferred";
inline constexpr std::string_view gap_op = "profile.gap";

inline std::string_view state_name(run_state s) noexcept {
  switch (s) {
    case run_state::running: return "running";
    case run_state::blocked: return "blocked";
    case run_state::mixed: return "mixed";
  }
  return "running";
}

inline std::string_view reason_name(gap_reason r) noexcept {
  switch (r) {
    case gap_reason::none: return "";
    case gap_reason::suspended: return "suspended";
    case gap_reason::samples_dropped: return "samples dropped";
    case gap_reason::profile_limit: return "profile limit";
    case gap_reason::off_cpu: return "off-CPU";
    case gap_reason::unsampled: return "uninstrumented, unsampled";
    case gap_reason::unexplained: return "unexplained";
  }
  return "";
}

// A derived span (inferred or gap), an ordinary span for the writers (gapfill.md §2.6, §4).
// Times are estimates: the truth begin lies in (begin_lo_ns, first sample], the end in
// [last sample, end_hi_ns); begin_ns/end_ns are off by at most half an interval per edge.
struct derived_span {
  derived_kind kind = derived_kind::inferred;
  std::uint64_t id = 0;         // deterministic: a function of the span, gap and rank
  std::uint64_t parent_id = 0;  // the filled span, or the enclosing derived span
  std::uint32_t parent_index = no_index;  // in filled_transaction::derived_spans, or no_index
  std::uint64_t span_id = 0;              // the span whose gap this fills
  std::uint32_t gap_index = no_index;     // in filled_transaction::gaps
  std::uint32_t depth = 1;                // 1: child of the filled span
  std::uint64_t ctx_id = 0;
  std::uint32_t tid = 0;  // thread of its first sample (0 if it has none)
  std::string description;  // "join_in_memory (orders.cpp:118)", "blocked: recv ← fetch (…)", a reason
  std::int64_t begin_ns = 0;
  std::int64_t end_ns = 0;
  std::int64_t begin_lo_ns = 0;  // spanprof.bounds_ns
  std::int64_t end_hi_ns = 0;
  std::int64_t duration_min_ns = 0;    // last sample − first sample
  std::int64_t duration_error_ns = 0;  // Δ: the estimate is "n samples, ± Δ"
  std::uint32_t sample_count = 0;
  std::uint64_t sample_weight = 0;      // Σ weight of its samples
  std::uint64_t self_weight = 0;        // samples in its own code (the chain's last function)
  std::uint64_t unresolved_weight = 0;  // samples in calls too short to be spans of their own
  run_state state = run_state::running;
  std::int64_t on_cpu_ns = 0;   // CPU mode: Σ weight·Δ0 (0 in wall mode)
  std::int64_t off_cpu_ns = 0;  // CPU mode: duration − on_cpu_ns, at least 0
  std::int64_t suspended_ns = 0;  // fiber suspensions inside it
  std::uint32_t recursion_depth = 1;
  std::string stack;  // spanprof.stack: the collapsed chain "G;H;I"
  std::string code_function;
  std::string code_filepath;
  std::uint32_t code_lineno = 0;  // the hottest line inside the function
  bool low_confidence = false;
  bool merged_over_drop = false;  // it spans a hole where samples were dropped
  std::uint32_t call_tree_node = no_index;  // in filled_transaction::call_tree_nodes
  // Gap spans only:
  gap_reason reason = gap_reason::none;
  std::uint64_t samples_dropped = 0;
  bool samples_dropped_upper_bound = false;  // the drop log overflowed
  double expected_samples = 0.0;             // running duration / Δ

  [[nodiscard]] std::string_view op() const noexcept { return kind == derived_kind::gap ? gap_op : inferred_op; }
  friend bool operator==(const derived_span&, const derived_span&) = default;
};

// Every uncovered stretch of every span (gapfill.md §1), filled or not.
struct gap_summary {
  std::uint64_t span_id = 0;
  std::uint32_t span_index = 0;  // in transaction_input::spans
  std::uint32_t k = 0;           // gap k of the span, in time order
  gap_kind kind = gap_kind::whole;
  std::uint64_t ctx_id = 0;
  std::int64_t begin_ns = 0;
  std::int64_t end_ns = 0;
  std::int64_t suspended_ns = 0;
  bool filled = false;    // its span is filled (root, or has children): derived spans live here
  bool is_short = false;  // shorter than min_gap_ns: counted in the span's short_gaps_ns
  bool low_confidence = false;  // a sample was placed here against its timestamp
  std::uint32_t sample_count = 0;
  std::uint64_t sample_weight = 0;
  std::uint64_t unresolved_weight = 0;  // not in any top-level derived span
  double expected_samples = 0.0;
  std::int64_t explained_ns = 0;  // Σ top-level derived spans, suspensions excluded
  std::int64_t residual_ns = 0;   // running time − explained_ns
  std::int64_t on_cpu_ns = 0;     // CPU mode
  std::int64_t off_cpu_ns = 0;    // CPU mode
  std::uint64_t samples_dropped = 0;
  bool samples_dropped_upper_bound = false;
  std::uint32_t first_node = 0;  // its call tree in filled_transaction::call_tree_nodes (filled gaps only)
  std::uint32_t node_count = 0;
  std::uint32_t gap_span = no_index;  // its profile.gap span in filled_transaction::derived_spans
  friend bool operator==(const gap_summary&, const gap_summary&) = default;
};

// A node of a gap's call tree: one function at one path from F (the first nodes of a gap are
// the roots, normally F alone). Weights are Σ sample weights.
struct call_tree_node {
  std::uint32_t parent = no_index;  // in filled_transaction::call_tree_nodes
  std::uint32_t frame = 0;          // a transaction_input::frames entry of this function
  std::uint32_t call_site_frame = no_index;  // the parent's frame at the call (its line)
  std::uint32_t depth = 0;                   // 0: a root (F)
  std::uint64_t self_weight = 0;
  std::uint64_t total_weight = 0;
  std::uint32_t hottest_line = 0;
  std::uint32_t recursion_depth = 1;  // most direct-recursion levels collapsed into it
  friend bool operator==(const call_tree_node&, const call_tree_node&) = default;
};

// Per input span.
struct span_summary {
  std::int64_t end_ns = 0;         // as used: the transaction's end if it was open
  std::string_view status;         // "deadline_exceeded" if closed here
  bool auto_closed_here = false;   // it was open at finish (§3 "spans left open")
  bool excluded = false;           // cross-context or nested root: not a cover, not filled
  bool filled = false;
  std::uint32_t first_gap = 0;     // in filled_transaction::gaps
  std::uint32_t gap_count = 0;
  std::int64_t short_gaps_ns = 0;  // spanprof.short_gaps_ns
  friend bool operator==(const span_summary&, const span_summary&) = default;
};

// Per input sample: where it went, for the writers' labels and stacks.
struct sample_placement {
  sample_fate fate = sample_fate::orphan;
  std::uint32_t span_index = no_index;  // the span whose gap holds it
  std::uint32_t gap_index = no_index;   // in filled_transaction::gaps
  std::int64_t placed_t_ns = 0;         // t, or the gap edge it was snapped/clamped to
  bool boundary_snapped = false;
  bool skew_conflict = false;
  bool resolved = false;  // its trimmed stack is placed in the gap's call tree
  bool low_confidence_trim = false;  // kept untrimmed: F could not be found
  // The trimmed stack is stack[leaf_skip, leaf_skip + trimmed_count): spanprof's and signal
  // delivery's leaf frames dropped, cut at F (its last entry). 0 entries if unresolved.
  std::uint16_t leaf_skip = 0;
  std::uint16_t trimmed_count = 0;
  std::uint32_t derived_index = no_index;  // innermost derived span containing it
  friend bool operator==(const sample_placement&, const sample_placement&) = default;
};

struct context_summary {
  std::uint64_t ctx_id = 0;
  std::int64_t interval_ns = 0;  // effective Δ: median on-thread spacing (wall), else Δ0
  std::uint32_t sample_count = 0;
  bool fiber = false;  // had on-thread intervals
  friend bool operator==(const context_summary&, const context_summary&) = default;
};

// The per-transaction counters of gapfill.md (§2, §3).
struct counters {
  std::uint64_t samples_in = 0;
  std::uint64_t samples_placed = 0;
  std::uint64_t other_transaction_samples = 0;
  std::uint64_t switch_samples = 0;
  std::uint64_t orphan_samples = 0;
  std::uint64_t samples_over_cap = 0;
  std::uint64_t unplaced_samples = 0;
  std::uint64_t boundary_snapped = 0;
  std::uint64_t skew_conflicts = 0;
  std::uint64_t self_frames_stripped = 0;  // samples that had spanprof/signal frames at the leaf
  std::uint64_t truncated_samples = 0;
  std::uint64_t unresolved_samples = 0;  // placed, but F not found in the stack
  std::uint64_t low_confidence_trims = 0;
  std::uint64_t merged_over_drop = 0;
  std::uint64_t mode_mismatch_samples = 0;
  std::uint64_t inferred_spans_over_cap = 0;
  std::uint64_t spans_auto_closed = 0;
  std::uint64_t samples_dropped = 0;  // Σ over the drop reports
  bool clock_suspect = false;
  bool missing_root = false;  // root_span_id is not among the spans: nothing was filled
  friend bool operator==(const counters&, const counters&) = default;
};

struct filled_transaction {
  sample_mode mode = sample_mode::wall;
  std::int64_t nominal_interval_ns = 0;
  std::int64_t txn_begin_ns = 0;
  std::int64_t txn_end_ns = 0;
  std::int64_t profile_cap_ns = std::numeric_limits<std::int64_t>::max();  // nothing kept from here
  counters counts;
  std::vector<derived_span> derived_spans;  // pre-order: parents before children
  std::vector<gap_summary> gaps;
  std::vector<call_tree_node> call_tree_nodes;
  std::vector<span_summary> spans;             // parallel to transaction_input::spans
  std::vector<sample_placement> placements;    // parallel to transaction_input::samples
  std::vector<context_summary> contexts;
};

}  // namespace spanprof::detail::gapfill
