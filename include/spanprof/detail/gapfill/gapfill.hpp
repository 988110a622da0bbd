// spanprof: gap filling (docs/gapfill.md) — explains the uninstrumented time inside spans with
// the stacks sampled there.
//
// A pure function of its input: the span tree and the samples of one finished transaction
// (stacks already symbolized into a frame table) go in; derived spans, gap summaries and one call
// tree per gap come out. Nothing here reads a clock, a signal, a thread or the runtime, so the
// tests feed it hand-built input (tests/gapfill_test.cpp) and the output is the same for any
// order in which the collector drained the samples.
//
// NOT ASYNC-SIGNAL-SAFE: allocates its result and scratch buffers. Runs on the collector thread.
// An `engine` keeps its scratch buffers (and a reused `result` keeps its vectors) between
// transactions, so in a steady state only the strings of the derived spans are allocated.
//
// From the collector's records (record/transaction_record.hpp, sample/ring.hpp) to the input, per finished transaction:
//   span_record    → span_input: ticks → ns; open = end_ticks == 0; site → callsite_*; flags →
//                    auto_closed / cross_context; the root of a transaction nested in this one
//                    (same context) is added with nested_transaction_root = true.
//   sample_record  → sample_input: ticks → ns; mode 0/1 → wall/cpu; flags keep their bits; the
//                    pcs symbolized (pcs[0] as is, the others as pc − 1, each expanded to its
//                    inline chain, innermost first) into indexes of one frame table per
//                    transaction; stacks may all live in one buffer of indexes.
//   fiber switch events → context_input; each ring's drop log and drop count → drop_report.
// txn_id is what the handler wrote in sample_record::txn_id (txn_id_of(record)).
//
// Cost: one sort of 16-byte keys (skipped when the samples arrive in order, as drained rings
// deliver them), a few linear passes over the samples, and one over each stack, gap by gap, while
// it is in the cache: trimming, then the walk from F to the leaf, which compares frame ids with
// the previous stack and looks frames up only below the first difference.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace spanprof::detail::gapfill {

inline constexpr std::uint32_t no_index = 0xFFFF'FFFFu;
// sample_input::anchor_idx when the handler did not find the span's frame (same value as
// ring.hpp's anchor_unknown: the stack never reached the span's frame, or it was not recorded).
inline constexpr std::uint16_t anchor_unknown = 0xFFFF;

// ---- input ----------------------------------------------------------------------------------

enum class sample_mode : std::uint8_t { wall = 0, cpu = 1 };  // sample_record::mode's tags

// The bits of sample_record::flags (ring.hpp) that matter here, with the same values.
enum sample_flags : std::uint8_t {
  sample_flag_in_switch = 1u << 0,  // a fiber switch was in progress: the sample goes nowhere
  sample_flag_truncated = 1u << 1,  // the unwinder stopped before the outermost frame
};

// One symbolized code location. The caller interns them (one entry per distinct location, or
// per pc: both work) and samples refer to them by index, which is how frames are compared.
// A pc inside inlined code expands to several entries, innermost first: every entry but the
// last of one physical frame has `inlined = true` (it was inlined into the next entry).
struct frame {
  std::string_view function;  // demangled; a parameter list and return type are tolerated
  std::string_view file;      // empty without debug information
  std::string_view module;    // the ELF object (path or soname)
  std::uint32_t line = 0;
  bool inlined = false;
  // spanprof's own code, if the symbolizer knows (by address range). Functions named
  // `spanprof::...` and the signal trampolines are recognised by name anyway.
  bool spanprof_internal = false;
};

// gapfill.md §1's span record, in nanoseconds. The transaction's root is one of them.
struct span_input {
  std::uint64_t id = 0;
  std::uint64_t parent_id = 0;  // 0 for the root of a top-level transaction
  std::uint64_t ctx_id = 0;     // the execution context it was opened on
  std::int64_t begin_ns = 0;
  std::int64_t end_ns = 0;
  bool open = false;  // still open at finish: closed here at the transaction's end (§3)
  std::string_view op;
  std::string_view description;
  std::string_view status = "ok";
  // The macro's call site (span_site): F, the function that opened the span.
  std::string_view callsite_function;  // __PRETTY_FUNCTION__
  std::string_view callsite_file;      // __builtin_FILE()
  std::uint32_t callsite_line = 0;
  // __builtin_frame_address(0) of F. The handler already turned it into each sample's
  // anchor_idx; 0 here means "no anchor recorded", and then anchor_idx is not trusted.
  std::uintptr_t anchor_fp = 0;
  bool auto_closed = false;    // closed by spanprof (span_flag_auto_closed)
  bool cross_context = false;  // its end was attempted from another context (§3)
  // The root of a transaction nested in this one on the same context: it covers its parent's
  // time like a child span, but what happens inside belongs to the nested transaction.
  bool nested_transaction_root = false;
};

// A fiber's on-thread interval [begin, end) on thread `tid` (fiber switch events). A context
// without any is a thread: always on-thread.
struct on_thread_interval {
  std::int64_t begin_ns = 0;
  std::int64_t end_ns = 0;
  std::uint32_t tid = 0;
};

struct context_input {
  std::uint64_t ctx_id = 0;
  std::span<const on_thread_interval> on_thread;
};

struct drop_entry {
  std::int64_t t_ns = 0;
  std::uint64_t ctx_id = 0;
};

// The drops of one ring (thread) while the transaction ran: the logged ones with their times,
// plus `unlogged_count` that overflowed the 64-entry log and are only known to precede its
// oldest entry.
struct drop_report {
  std::uint32_t tid = 0;
  std::span<const drop_entry> log;
  std::uint64_t unlogged_count = 0;
};

// gapfill.md §1's sample record, in nanoseconds, with its stack symbolized.
struct sample_input {
  std::int64_t t_ns = 0;
  std::uint64_t seq = 0;  // per-ring sequence number (tie-break only)
  std::uint64_t ctx_id = 0;
  std::uint64_t txn_id = 0;
  std::uint64_t span_id = 0;  // innermost active span at interrupt time
  std::uint32_t tid = 0;
  std::uint32_t weight = 1;  // 1 + timer overruns in CPU mode
  std::uint16_t anchor_idx = anchor_unknown;  // physical frames from the leaf to F's frame
  std::uint8_t flags = 0;                     // sample_flags
  sample_mode mode = sample_mode::wall;
  std::span<const std::uint32_t> stack;  // leaf first; indexes into transaction_input::frames
};

// GapfillConfig of gapfill.md, with its defaults.
struct config {
  std::int64_t skew_tolerance_ns = 100'000;  // tol = max(2ε, 100 µs)
  std::uint32_t min_samples = 2;             // a derived span needs this many samples
  std::int64_t min_duration_ns = 0;
  std::uint32_t max_inferred_depth = 4;  // derived-span nesting levels below the filled span
  std::uint32_t max_inferred_spans = 200;  // per transaction, longest kept
  bool fill_leaf_spans = false;
  std::int64_t min_gap_ns = 0;  // 0: the nominal sampling interval Δ0
  std::int64_t max_profile_ns = 30'000'000'000;  // 0: no limit
  std::uint32_t max_samples_per_txn = 3000;      // 0: no limit
  double clock_suspect_fraction = 0.01;      // skew conflicts above this share of the samples
};

struct transaction_input {
  std::uint64_t txn_id = 0;        // what samples carry in txn_id
  std::uint64_t root_span_id = 0;  // the transaction's own span, one of `spans`
  sample_mode mode = sample_mode::wall;
  std::int64_t sampling_interval_ns = 0;  // nominal Δ0 = 1 / sample_rate_hz
  std::span<const span_input> spans;
  std::span<const sample_input> samples;
  std::span<const frame> frames;
  std::span<const context_input> contexts;  // only fibers need an entry
  std::span<const drop_report> drops;
};

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

inline std::string_view gap_kind_name(gap_kind k) noexcept {
  switch (k) {
    case gap_kind::leading: return "leading";
    case gap_kind::between: return "between";
    case gap_kind::trailing: return "trailing";
    case gap_kind::whole: return "whole";
  }
  return "whole";
}

// A derived span (inferred or gap), an ordinary span for the writers (gapfill.md §2.6, §4).
// Times are estimates: the truth begin lies in (begin_lo_ns, first sample], the end in
// [last sample, end_hi_ns); begin_ns/end_ns are off by at most half an interval per edge.
struct derived_span {
  derived_kind kind = derived_kind::inferred;
  std::uint64_t id = 0;         // deterministic: a function of the span, gap and rank
  std::uint64_t parent_id = 0;  // the filled span, or the enclosing derived span
  std::uint32_t parent_index = no_index;  // in result::derived_spans, or no_index
  std::uint64_t span_id = 0;              // the span whose gap this fills
  std::uint32_t gap_index = no_index;     // in result::gaps
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
  std::uint32_t call_tree_node = no_index;  // in result::call_tree_nodes
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
  std::uint32_t first_node = 0;  // its call tree in result::call_tree_nodes (filled gaps only)
  std::uint32_t node_count = 0;
  std::uint32_t gap_span = no_index;  // its profile.gap span in result::derived_spans
  friend bool operator==(const gap_summary&, const gap_summary&) = default;
};

// A node of a gap's call tree: one function at one path from F (the first nodes of a gap are
// the roots, normally F alone). Weights are Σ sample weights.
struct call_tree_node {
  std::uint32_t parent = no_index;  // in result::call_tree_nodes
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
  std::uint32_t first_gap = 0;     // in result::gaps
  std::uint32_t gap_count = 0;
  std::int64_t short_gaps_ns = 0;  // spanprof.short_gaps_ns
  friend bool operator==(const span_summary&, const span_summary&) = default;
};

// Per input sample: where it went, for the writers' labels and stacks.
struct sample_placement {
  sample_fate fate = sample_fate::orphan;
  std::uint32_t span_index = no_index;  // the span whose gap holds it
  std::uint32_t gap_index = no_index;   // in result::gaps
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

struct result {
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

// ---- names ----------------------------------------------------------------------------------

namespace names {

inline constexpr std::size_t npos = std::string_view::npos;

inline std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  return s;
}

// Index of the bracket that opens the group closed at s[close]; npos if unbalanced. Brackets
// inside operator names (operator<, operator->) can fool it; the callers then keep the text.
inline std::size_t matching_open(std::string_view s, std::size_t close) noexcept {
  int depth = 0;
  for (std::size_t i = close + 1; i-- > 0;) {
    const char c = s[i];
    if (c == ')' || c == ']' || c == '>' || c == '}') {
      ++depth;
    } else if (c == '(' || c == '[' || c == '<' || c == '{') {
      if (--depth == 0) return i;
    }
  }
  return npos;
}

inline bool ends_with_word(std::string_view s, std::string_view word) noexcept {
  if (!s.ends_with(word)) return false;
  if (s.size() == word.size()) return true;
  const char before = s[s.size() - word.size() - 1];
  return before == ' ' || before == '*' || before == '&' || before == ')';
}

// Trailing qualifiers of a member function: " const", " volatile", " noexcept", "&", "&&" — only
// after the parameter list or another qualifier, so "operator&" keeps its name.
inline bool strip_one_qualifier(std::string_view& s) noexcept {
  auto follows_parameters = [](std::string_view rest) {
    rest = trim(rest);
    return rest.ends_with(')') || ends_with_word(rest, "const") || ends_with_word(rest, "volatile") ||
           rest.ends_with('&');
  };
  for (std::string_view q : {std::string_view("&&"), std::string_view("&"), std::string_view("const"),
                             std::string_view("volatile"), std::string_view("noexcept")}) {
    const bool word = q[0] != '&';
    if (!s.ends_with(q) || s.size() == q.size()) continue;
    if (word && s[s.size() - q.size() - 1] != ' ') continue;
    const std::string_view rest = s.substr(0, s.size() - q.size());
    if (!follows_parameters(rest)) continue;
    s = trim(rest);
    return true;
  }
  return false;
}

// A trailing "[with T = int]" (__PRETTY_FUNCTION__) or "[abi:cxx11]" tag.
inline bool strip_one_bracket_clause(std::string_view& s) noexcept {
  if (!s.ends_with(']')) return false;
  const std::size_t open = matching_open(s, s.size() - 1);
  if (open == npos || open == 0) return false;
  if (s[open - 1] != ' ' && !s.substr(open).starts_with("[abi:")) return false;
  s = trim(s.substr(0, open));
  return true;
}

// The function's name as a user reads it: no return type, no parameter list, no trailing
// qualifiers or `[with T = …]` clause (__PRETTY_FUNCTION__), no `[abi:…]` tag. Template
// arguments stay ("std::sort<int*>"). Returns a view into `s`.
inline std::string_view display_name(std::string_view s) noexcept {
  s = trim(s);
  if (const std::size_t at = s.find('@'); at != npos && at > 0) s = trim(s.substr(0, at));  // symbol versions
  while (strip_one_bracket_clause(s) || strip_one_qualifier(s)) {
  }
  if (s.ends_with(')') && !s.ends_with("operator()")) {
    const std::size_t open = matching_open(s, s.size() - 1);
    if (open != npos && open > 0) s = trim(s.substr(0, open));
  }
  while (strip_one_bracket_clause(s)) {
  }
  // Return type: everything up to the last space outside brackets, unless that space belongs
  // to an operator name ("operator new", "operator delete[]").
  int depth = 0;
  std::size_t cut = npos;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '(' || c == '<' || c == '[' || c == '{') ++depth;
    else if (c == ')' || c == '>' || c == ']' || c == '}') depth = depth > 0 ? depth - 1 : 0;
    else if (c == ' ' && depth == 0 && !ends_with_word(s.substr(0, i), "operator")) cut = i;
  }
  if (cut != npos) s = s.substr(cut + 1);
  while (!s.empty() && (s.front() == '*' || s.front() == '&')) s.remove_prefix(1);
  return s;
}

// What two spellings of one function share: display_name without trailing template arguments
// (__PRETTY_FUNCTION__ writes them as a [with …] clause, the demangler inline).
inline std::string_view match_name(std::string_view display) noexcept {
  if (display.ends_with('>') && !display.ends_with("operator>") && !display.ends_with("operator->") &&
      !display.ends_with("operator>>")) {
    const std::size_t open = matching_open(display, display.size() - 1);
    if (open != npos && open > 0) display = display.substr(0, open);
  }
  return display;
}

inline std::string_view last_component(std::string_view name) noexcept {
  const std::size_t at = name.rfind("::");
  return at == npos ? name : name.substr(at + 2);
}

// GCC's __PRETTY_FUNCTION__ spells an anonymous namespace "{anonymous}", the demangler
// "(anonymous namespace)": a component either way, skipped when comparing.
inline bool skip_anonymous_component(std::string_view s, std::size_t& i) noexcept {
  for (const std::string_view token : {std::string_view("{anonymous}::"), std::string_view("(anonymous namespace)::")}) {
    if (s.substr(i).starts_with(token)) {
      i += token.size();
      return true;
    }
  }
  return false;
}

inline bool equal_ignoring_anonymous(std::string_view a, std::string_view b) noexcept {
  std::size_t i = 0, j = 0;
  for (;;) {
    if (i == 0 || (i >= 2 && a[i - 1] == ':' && a[i - 2] == ':')) {
      while (skip_anonymous_component(a, i)) {
      }
    }
    if (j == 0 || (j >= 2 && b[j - 1] == ':' && b[j - 2] == ':')) {
      while (skip_anonymous_component(b, j)) {
      }
    }
    if (i == a.size() || j == b.size()) return i == a.size() && j == b.size();
    if (a[i] != b[j]) return false;
    ++i;
    ++j;
  }
}

// "handle_orders" matches "app::handle_orders": __PRETTY_FUNCTION__ and the demangler may
// qualify differently (anonymous namespaces, inline namespaces): equal, or one equal to a
// trailing run of the other's components.
inline bool names_match(std::string_view a, std::string_view b) noexcept {
  if (a.empty() || b.empty()) return false;
  if (equal_ignoring_anonymous(a, b)) return true;
  for (const auto& [longer, shorter] : {std::pair{a, b}, std::pair{b, a}}) {
    for (std::size_t at = longer.find("::"); at != npos; at = longer.find("::", at + 2)) {
      if (equal_ignoring_anonymous(longer.substr(at + 2), shorter)) return true;
    }
  }
  return false;
}

inline std::string_view strip_relative_prefix(std::string_view path) noexcept {
  for (;;) {
    if (path.starts_with("./")) path.remove_prefix(2);
    else if (path.starts_with("../")) path.remove_prefix(3);
    else return path;
  }
}

// __builtin_FILE() is the path the compiler was given ("../src/orders.cpp"), DWARF may give
// another spelling of it ("/work/app/src/orders.cpp"): equal once the relative prefix is gone,
// or one a suffix of the other at a '/'. A frame without a file matches on its name alone.
inline bool files_match(std::string_view callsite_file, std::string_view frame_file) noexcept {
  if (callsite_file.empty() || frame_file.empty()) return true;
  const std::string_view a = strip_relative_prefix(callsite_file);
  const std::string_view b = strip_relative_prefix(frame_file);
  if (a == b) return true;
  const std::string_view& longer = a.size() > b.size() ? a : b;
  const std::string_view& shorter = a.size() > b.size() ? b : a;
  return !shorter.empty() && longer.ends_with(shorter) && longer[longer.size() - shorter.size() - 1] == '/';
}

inline std::string_view basename(std::string_view path) noexcept {
  const std::size_t slash = path.rfind('/');
  return slash == npos ? path : path.substr(slash + 1);
}

inline bool is_signal_trampoline(std::string_view display) noexcept {
  return display == "__restore_rt" || display == "__kernel_rt_sigreturn" || display == "_sigtramp" ||
         display == "__kernel_sigreturn" || display == "__GI___restore_rt";
}

// spanprof's own frames (the handler, the RAII types) and the unwinder's, should any leak in.
inline bool is_spanprof_frame(std::string_view display) noexcept {
  return display.starts_with("spanprof::") || display.starts_with("_ULx86_64_") ||
         display.starts_with("_Ux86_64_") || display == "unw_backtrace";
}

// The C library's objects, where a leaf named `read` is the system call's wrapper and not an
// application function of that name. Unknown (empty) modules are given the benefit of the doubt.
inline bool is_system_library(std::string_view module) noexcept {
  const std::string_view name = basename(module);
  return name.empty() || name.starts_with("libc.") || name.starts_with("libc-") || name.starts_with("libpthread") ||
         name.starts_with("librt") || name.starts_with("ld-linux") || name.starts_with("linux-vdso") ||
         name.starts_with("libc.musl");
}

// The blocking libc entry a wall-mode sample's leaf is in, as a short name ("recv", "futex"),
// or empty. glibc's internal aliases (__GI___poll, __libc_recv, __futex_abstimed_wait_common64,
// read_nocancel) map to the public name.
inline std::string_view blocking_call(std::string_view display) noexcept {
  std::string_view s = display;
  for (bool changed = true; changed;) {
    changed = false;
    while (s.starts_with('_')) { s.remove_prefix(1); changed = true; }
    for (std::string_view prefix : {std::string_view("GI_"), std::string_view("libc_"), std::string_view("new_")}) {
      if (s.starts_with(prefix)) { s.remove_prefix(prefix.size()); changed = true; }
    }
  }
  if (s.ends_with("_nocancel")) s.remove_suffix(9);
  if (s.starts_with("futex") || s.starts_with("lll_lock_wait")) return "futex";
  static constexpr std::array<std::string_view, 48> calls{
      "read", "readv", "pread", "pread64", "preadv", "recv", "recvfrom", "recvmsg", "recvmmsg",
      "write", "writev", "pwrite", "pwrite64", "send", "sendto", "sendmsg", "poll", "ppoll",
      "select", "pselect", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2", "nanosleep",
      "clock_nanosleep", "sleep", "usleep", "pthread_cond_wait", "pthread_cond_timedwait",
      "pthread_cond_clockwait", "pthread_join", "sem_wait", "sem_timedwait", "sem_clockwait",
      "accept", "accept4", "connect", "wait", "waitpid", "wait4", "waitid", "sigwait",
      "sigtimedwait", "sigwaitinfo", "pause", "fsync", "fdatasync"};
  for (std::string_view call : calls) {
    if (s == call) return call;
  }
  if (s == "syscall" || s == "msgrcv" || s == "mq_receive" || s == "mq_timedreceive" || s == "flock") return s;
  return {};
}

}  // namespace names

// ---- the engine -----------------------------------------------------------------------------

namespace internal {

inline constexpr std::int64_t minus_infinity = std::numeric_limits<std::int64_t>::min() / 4;
inline constexpr std::int64_t plus_infinity = std::numeric_limits<std::int64_t>::max() / 4;

inline std::uint64_t mix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Open addressing, linear probing: 64-bit key → 32-bit value. Rebuilt per transaction. Slot
// key 0 marks an empty slot, so the key 0 itself is kept aside.
class id_table {
 public:
  void reset(std::size_t expected) {
    std::size_t capacity = 16;
    while (capacity < expected * 2) capacity <<= 1;
    keys_.assign(capacity, 0);
    values_.assign(capacity, no_index);
    mask_ = capacity - 1;
    zero_value_ = no_index;
  }
  // Keeps the first value inserted for a key.
  void insert(std::uint64_t key, std::uint32_t value) {
    if (key == 0) {
      if (zero_value_ == no_index) zero_value_ = value;
      return;
    }
    for (std::size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      if (keys_[i] == key) return;
      if (keys_[i] == 0) {
        keys_[i] = key;
        values_[i] = value;
        return;
      }
    }
  }
  [[nodiscard]] std::uint32_t find(std::uint64_t key) const noexcept {
    if (key == 0) return zero_value_;
    if (keys_.empty()) return no_index;
    for (std::size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      if (keys_[i] == key) return values_[i];
      if (keys_[i] == 0) return no_index;
    }
  }

 private:
  std::vector<std::uint64_t> keys_;
  std::vector<std::uint32_t> values_;
  std::size_t mask_ = 0;
  std::uint32_t zero_value_ = no_index;
};

enum frame_bits : std::uint8_t {
  frame_internal = 1u << 0,    // spanprof or signal delivery: stripped from the leaf side
  frame_blocking = 1u << 1,    // a blocking libc entry
  frame_inlined = 1u << 2,
};

struct frame_info {
  std::uint32_t fkey = 0;  // function identity: (module, file, display name)
  std::uint32_t line = 0;
  std::uint8_t bits = 0;
};

struct function_info {
  std::string_view display;
  std::string_view match;
  std::string_view file;
  std::string_view module;
  std::string_view blocking;  // blocking_call(display)
  std::uint64_t last_hash = 0;
  std::uint32_t first_frame = 0;
};

struct interval {
  std::int64_t begin = 0;
  std::int64_t end = 0;
};

struct span_state {
  std::uint32_t parent = no_index;
  std::uint32_t owner = no_index;  // itself, or the nearest ancestor that is not excluded
  std::uint32_t ctx = 0;
  std::int64_t begin = 0;
  std::int64_t end = 0;
  bool excluded = false;
  bool nested = false;
  bool filled = false;
  bool has_child = false;
  std::uint32_t first_gap = 0;
  std::uint32_t gap_count = 0;
  std::uint32_t match_first = 0;  // fkeys matching its call site, in engine::span_matches_
  std::uint32_t match_count = 0;
  // Longest common root-side prefix of the stacks of it and its descendants (§2.3 fallback).
  std::uint32_t lcp_sample = no_index;  // a work sample holding the prefix
  std::uint32_t lcp_length = 0;
  bool lcp_distinct = false;  // at least two different stacks
};

struct ctx_state {
  std::uint64_t id = 0;
  bool fiber = false;
  std::uint32_t suspended_first = 0;  // suspended intervals within the transaction, sorted
  std::uint32_t suspended_count = 0;
  std::uint32_t drop_first = 0;  // sorted drop times, in engine::drop_times_
  std::uint32_t drop_count = 0;
  std::uint32_t tid_first = 0;  // threads it ran on, in engine::ctx_tids_
  std::uint32_t tid_count = 0;
  std::int64_t interval_ns = 0;
  std::uint32_t sample_count = 0;
};

struct gap_state {
  std::uint32_t sample_first = 0;  // its samples in engine::gap_order_, in time order
  std::uint32_t sample_count = 0;
  std::uint32_t suspended_first = 0;  // its suspended segments in engine::gap_suspended_
  std::uint32_t suspended_count = 0;
  std::uint32_t derived_first = 0;  // its candidates in engine::candidates_
  std::uint32_t derived_count = 0;
  std::uint32_t node_first = 0;  // its tree in engine::nodes_ (first is a virtual root)
  std::uint32_t node_count = 0;
};

enum work_bits : std::uint8_t {
  work_resolved = 1u << 0,
  work_blocked = 1u << 1,
  work_anchor_usable = 1u << 2,
  work_needs_lcp = 1u << 3,
  work_low_confidence = 1u << 4,
  work_truncated = 1u << 5,
  work_placed = 1u << 6,
};

struct work_sample {
  std::int64_t t = 0;
  std::int64_t placed_t = 0;
  std::uint64_t seq = 0;
  std::uint32_t input = 0;
  std::uint32_t ctx = 0;
  std::uint32_t span = 0;  // after redirection to the owner of an excluded span
  std::uint32_t gap = no_index;
  std::uint32_t tid = 0;
  std::uint32_t weight = 1;
  std::uint16_t leaf_skip = 0;
  std::uint16_t root_pos = 0;  // leaf-first index of F; valid if resolved
  std::uint8_t bits = 0;
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
  std::uint32_t parent = no_index;  // absolute index in engine::nodes_
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

}  // namespace internal

// Reusable: keeps its scratch buffers between transactions. One engine per collector thread.
class engine {
 public:
  // Fills `out` (its previous contents are replaced, its capacity reused).
  void run(const transaction_input& in, const config& cfg, result& out);

 private:
  using i64 = std::int64_t;
  using u32 = std::uint32_t;
  using u64 = std::uint64_t;

  void reset(const transaction_input& in, const config& cfg, result& out);
  void prepare_frames();
  void prepare_spans();
  void prepare_contexts();
  void compute_gaps();
  void collect_samples();
  void apply_profile_cap();
  void compute_intervals();
  void assign_samples();
  void attribute_drops();
  void group_by_gap();
  void trim_sample(internal::work_sample& w);
  void compute_common_prefixes();
  void build_gap(u32 gap);
  void emit_gap(u32 gap);
  u32 emit_run(u32 gap, u32 record, u32 level, u32 parent_candidate, u64& emitted_weight, i64& sibling_end);
  void finish_candidates();
  void emit_gap_spans();
  void label_samples();
  void output_trees();

  // Context timeline helpers (suspensions only exist for fibers).
  [[nodiscard]] i64 suspended_within(const internal::ctx_state& c, i64 a, i64 b) const noexcept;
  [[nodiscard]] i64 wall_before(const internal::ctx_state& c, i64 t, i64 on_thread_ns) const noexcept;
  [[nodiscard]] i64 wall_after(const internal::ctx_state& c, i64 t, i64 on_thread_ns) const noexcept;
  [[nodiscard]] bool span_matches_fkey(const internal::span_state& s, u32 fkey) const noexcept {
    for (u32 i = 0; i < s.match_count; ++i) {
      if (span_matches_[s.match_first + i] == fkey) return true;
    }
    return false;
  }
  [[nodiscard]] std::span<const u32> stack_of(const internal::work_sample& w) const noexcept {
    return in_->samples[w.input].stack;
  }
  u32 child_of(u32 parent, u32 fkey, u32 caller_line, u32 frame, u32 caller_frame, u32 depth);
  void close_runs(u32 from_depth, u32 last_pos);
  u32 ensure_record(internal::path_entry& e);
  [[nodiscard]] u32 hottest_line(u32 node, bool self_only = false) const;
  [[nodiscard]] std::string call_site_text(u32 caller_frame) const;
  [[nodiscard]] u64 weight_between(u32 first_pos, u32 last_pos) const noexcept {
    return prefix_weight_[last_pos + 1] - prefix_weight_[first_pos];
  }
  [[nodiscard]] u32 count_between(u32 first_pos, u32 last_pos) const noexcept {
    return prefix_count_[last_pos + 1] - prefix_count_[first_pos];
  }
  [[nodiscard]] const internal::work_sample& gap_sample(u32 gap, u32 pos) const noexcept {
    return work_[gap_order_[gap_states_[gap].sample_first + pos]];
  }

  const transaction_input* in_ = nullptr;
  const config* cfg_ = nullptr;
  result* out_ = nullptr;
  i64 nominal_ = 0;
  i64 min_gap_ = 0;
  i64 txn_begin_ = 0;
  i64 txn_end_ = 0;
  u32 root_ = no_index;
  bool prefixes_ready_ = false;

  std::vector<internal::frame_info> frame_infos_;
  std::vector<internal::function_info> functions_;
  std::vector<u32> function_slots_;
  std::vector<std::pair<u64, u32>> functions_by_last_;
  std::vector<internal::span_state> spans_;
  internal::id_table span_ids_;
  std::vector<u32> span_matches_;
  std::vector<internal::ctx_state> ctxs_;
  internal::id_table ctx_ids_;
  std::vector<internal::interval> suspended_;
  std::vector<std::int64_t> drop_times_;
  std::vector<u32> ctx_tids_;
  std::vector<std::tuple<u32, i64, i64>> covers_;  // (parent span, begin, end)
  std::vector<internal::gap_state> gap_states_;
  std::vector<internal::interval> gap_suspended_;
  std::vector<internal::work_sample> work_;
  std::vector<internal::work_sample> work_sorted_;
  std::vector<std::pair<u64, u32>> sort_keys_;
  std::vector<i64> scratch_times_;
  std::vector<u32> gap_order_;
  std::vector<u32> scratch_counts_;
  // Per gap being built:
  std::vector<u64> prefix_weight_;
  std::vector<u32> prefix_count_;
  std::vector<u32> prefix_blocked_;
  std::vector<internal::path_entry> path_;
  std::vector<u32> offset_depth_;
  std::vector<std::size_t> depth_offset_;
  u32 open_len_ = 0;
  std::vector<internal::tree_node> nodes_;
  std::vector<internal::run_record> records_;
  std::vector<u32> record_children_;
  u32 gap_record_first_ = 0;
  std::vector<internal::candidate> candidates_;
  std::vector<u32> candidate_order_;
  std::vector<u32> candidate_final_;
  std::vector<u32> node_output_;
};

// ---- engine implementation ------------------------------------------------------------------

inline void engine::run(const transaction_input& in, const config& cfg, result& out) {
  reset(in, cfg, out);
  prepare_frames();
  prepare_spans();
  if (root_ == no_index) {
    out.counts.missing_root = true;
    for (auto& p : out.placements) p.fate = sample_fate::orphan;
    out.counts.orphan_samples = in.samples.size();
    return;
  }
  prepare_contexts();
  compute_gaps();
  collect_samples();
  apply_profile_cap();
  compute_intervals();
  assign_samples();
  attribute_drops();
  group_by_gap();
  // Stacks are trimmed gap by gap, just before the gap's tree is built from them: each stack is
  // then read from memory once (a profile's stacks outgrow the caches).
  for (u32 g = 0; g < gap_states_.size(); ++g) {
    if (out.gaps[g].filled) {
      build_gap(g);
      emit_gap(g);
    } else {
      for (u32 k = 0; k < gap_states_[g].sample_count; ++k) trim_sample(work_[gap_order_[gap_states_[g].sample_first + k]]);
    }
  }
  finish_candidates();
  emit_gap_spans();
  label_samples();
  output_trees();
}

inline void engine::reset(const transaction_input& in, const config& cfg, result& out) {
  in_ = &in;
  cfg_ = &cfg;
  out_ = &out;
  out.mode = in.mode;
  out.counts = {};
  out.derived_spans.clear();
  out.gaps.clear();
  out.call_tree_nodes.clear();
  out.spans.assign(in.spans.size(), span_summary{});
  out.placements.assign(in.samples.size(), sample_placement{});
  out.contexts.clear();
  out.profile_cap_ns = std::numeric_limits<i64>::max();
  out.counts.samples_in = in.samples.size();
  nominal_ = in.sampling_interval_ns > 0 ? in.sampling_interval_ns : 10'000'000;
  out.nominal_interval_ns = nominal_;
  min_gap_ = cfg.min_gap_ns > 0 ? cfg.min_gap_ns : nominal_;
  root_ = no_index;
  prefixes_ready_ = false;
  spans_.clear();
  span_matches_.clear();
  ctxs_.clear();
  suspended_.clear();
  drop_times_.clear();
  ctx_tids_.clear();
  covers_.clear();
  gap_states_.clear();
  gap_suspended_.clear();
  work_.clear();
  gap_order_.clear();
  nodes_.clear();
  records_.clear();
  candidates_.clear();
}

// Function identities, and what each frame is (spanprof's own, a trampoline, a blocking call).
inline void engine::prepare_frames() {
  using namespace internal;
  const auto frames = in_->frames;
  frame_infos_.assign(frames.size(), frame_info{});
  functions_.clear();
  std::size_t capacity = 16;
  while (capacity < frames.size() * 2) capacity <<= 1;
  function_slots_.assign(capacity, no_index);
  const std::size_t mask = capacity - 1;
  const std::hash<std::string_view> hash;
  for (u32 f = 0; f < frames.size(); ++f) {
    const frame& fr = frames[f];
    const std::string_view display = names::display_name(fr.function);
    // A frame without a name is a function of its own: unnamed code in one module must not
    // look like one function (and be collapsed as recursion).
    const u64 h = display.empty() ? mix64(f) : mix64(hash(display) ^ (hash(fr.file) * 31) ^ (hash(fr.module) * 131));
    u32 fkey = no_index;
    for (std::size_t slot = h & mask;; slot = (slot + 1) & mask) {
      const u32 existing = function_slots_[slot];
      if (existing == no_index) {
        fkey = static_cast<u32>(functions_.size());
        function_slots_[slot] = fkey;
        function_info info;
        info.display = display;
        info.match = names::match_name(display);
        info.file = fr.file;
        info.module = fr.module;
        info.blocking = names::is_system_library(fr.module) ? names::blocking_call(display) : std::string_view{};
        info.last_hash = hash(names::last_component(info.match));
        info.first_frame = f;
        functions_.push_back(info);
        break;
      }
      const function_info& e = functions_[existing];
      if (!display.empty() && e.display == display && e.file == fr.file && e.module == fr.module) {
        fkey = existing;
        break;
      }
    }
    std::uint8_t bits = 0;
    if (fr.spanprof_internal || names::is_spanprof_frame(display) || names::is_signal_trampoline(display)) {
      bits |= frame_internal;
    }
    if (!functions_[fkey].blocking.empty()) bits |= frame_blocking;
    if (fr.inlined) bits |= frame_inlined;
    frame_infos_[f] = frame_info{fkey, fr.line, bits};
  }
  functions_by_last_.clear();
  for (u32 k = 0; k < functions_.size(); ++k) functions_by_last_.emplace_back(functions_[k].last_hash, k);
  std::sort(functions_by_last_.begin(), functions_by_last_.end());
}

// Span tree: ends of open spans, owners, covers, which spans are filled, call-site matches.
inline void engine::prepare_spans() {
  using namespace internal;
  const auto spans = in_->spans;
  span_ids_.reset(spans.size());
  spans_.assign(spans.size(), span_state{});
  for (u32 i = 0; i < spans.size(); ++i) {
    if (spans[i].id != 0) span_ids_.insert(spans[i].id, i);  // 0 means "no span"
  }
  root_ = span_ids_.find(in_->root_span_id);
  if (root_ == no_index) return;
  const span_input& root = spans[root_];
  txn_begin_ = root.begin_ns;
  if (!root.open) {
    txn_end_ = std::max(root.begin_ns, root.end_ns);
  } else {
    // The root itself was never closed (the program ended inside it): its end is the last
    // thing known to have happened in it.
    txn_end_ = root.begin_ns;
    for (const span_input& s : spans) {
      if (!s.open) txn_end_ = std::max(txn_end_, s.end_ns);
    }
    for (const sample_input& s : in_->samples) {
      if (s.txn_id == in_->txn_id) txn_end_ = std::max(txn_end_, s.t_ns);
    }
  }
  out_->txn_begin_ns = txn_begin_;
  out_->txn_end_ns = txn_end_;

  for (u32 i = 0; i < spans.size(); ++i) {
    const span_input& s = spans[i];
    span_state& st = spans_[i];
    span_summary& summary = out_->spans[i];
    st.begin = s.begin_ns;
    if (s.open) {
      st.end = i == root_ ? txn_end_ : std::max(s.begin_ns, txn_end_);
      summary.status = i == root_ ? std::string_view("aborted") : std::string_view("deadline_exceeded");
      summary.auto_closed_here = true;
      ++out_->counts.spans_auto_closed;
    } else {
      st.end = std::max(s.begin_ns, s.end_ns);
      summary.status = s.status;
    }
    summary.end_ns = st.end;
    if (i != root_) {
      st.parent = s.parent_id != s.id ? span_ids_.find(s.parent_id) : no_index;
      // A parent we do not have (dropped over max_spans): the span still covers the root's
      // time, or the root would call it unsampled while its samples sit in this span.
      if (st.parent == no_index) st.parent = root_;
      st.excluded = s.cross_context || s.nested_transaction_root;
      st.nested = s.nested_transaction_root;
    }
    summary.excluded = st.excluded;
    if (st.parent != no_index) spans_[st.parent].has_child = true;
  }
  // Owner: samples of a cross-context span belong to the nearest ancestor that is filled
  // normally (the span is excluded from cover, so its time is that ancestor's gap).
  for (u32 i = 0; i < spans.size(); ++i) {
    u32 owner = i;
    for (std::size_t steps = 0; owner != no_index && spans_[owner].excluded && steps <= spans.size(); ++steps) {
      owner = spans_[owner].parent;
    }
    spans_[i].owner = owner == no_index || spans_[owner].excluded ? root_ : owner;
  }
  for (u32 i = 0; i < spans.size(); ++i) {
    span_state& st = spans_[i];
    st.filled = !st.excluded && (i == root_ || st.has_child || cfg_->fill_leaf_spans);
    out_->spans[i].filled = st.filled;
  }

  // Call-site matches: the functions that are F for each span (§2.3 step 3), found through the
  // last component of the name, then checked in full with the file.
  const std::hash<std::string_view> hash;
  for (u32 i = 0; i < spans.size(); ++i) {
    span_state& st = spans_[i];
    st.match_first = static_cast<u32>(span_matches_.size());
    const std::string_view wanted = names::match_name(names::display_name(spans[i].callsite_function));
    if (wanted.empty()) continue;
    const u64 h = hash(names::last_component(wanted));
    auto it = std::lower_bound(functions_by_last_.begin(), functions_by_last_.end(), std::make_pair(h, u32{0}));
    for (; it != functions_by_last_.end() && it->first == h; ++it) {
      const function_info& fn = functions_[it->second];
      if (names::names_match(fn.match, wanted) && names::files_match(spans[i].callsite_file, fn.file)) {
        span_matches_.push_back(it->second);
      }
    }
    st.match_count = static_cast<u32>(span_matches_.size()) - st.match_first;
  }
}

// Contexts: those of the spans, and fibers' suspended intervals within the transaction.
inline void engine::prepare_contexts() {
  using namespace internal;
  const auto spans = in_->spans;
  ctx_ids_.reset(spans.size() + in_->contexts.size() + 1);
  auto context_index = [&](u64 id) {
    u32 index = ctx_ids_.find(id);
    if (index == no_index) {
      index = static_cast<u32>(ctxs_.size());
      ctx_ids_.insert(id, index);
      ctx_state c;
      c.id = id;
      c.interval_ns = nominal_;
      ctxs_.push_back(c);
    }
    return index;
  };
  for (u32 i = 0; i < spans.size(); ++i) spans_[i].ctx = context_index(spans[i].ctx_id);
  for (const context_input& c : in_->contexts) {
    const u32 index = context_index(c.ctx_id);
    ctx_state& st = ctxs_[index];
    if (c.on_thread.empty() || st.fiber) continue;
    st.fiber = true;
    // Suspended = the transaction's interval minus the union of the on-thread intervals.
    std::vector<interval> on;
    on.reserve(c.on_thread.size());
    for (const on_thread_interval& o : c.on_thread) {
      if (o.end_ns > o.begin_ns) on.push_back({o.begin_ns, o.end_ns});
    }
    std::sort(on.begin(), on.end(), [](const interval& a, const interval& b) { return a.begin < b.begin; });
    st.suspended_first = static_cast<u32>(suspended_.size());
    i64 cursor = txn_begin_;
    for (const interval& o : on) {
      if (o.begin > cursor && cursor < txn_end_) suspended_.push_back({cursor, std::min(o.begin, txn_end_)});
      cursor = std::max(cursor, o.end);
    }
    if (cursor < txn_end_) suspended_.push_back({cursor, txn_end_});
    st.suspended_count = static_cast<u32>(suspended_.size()) - st.suspended_first;
    st.tid_first = static_cast<u32>(ctx_tids_.size());
    for (const on_thread_interval& o : c.on_thread) {
      if (std::find(ctx_tids_.begin() + st.tid_first, ctx_tids_.end(), o.tid) == ctx_tids_.end()) ctx_tids_.push_back(o.tid);
    }
    st.tid_count = static_cast<u32>(ctx_tids_.size()) - st.tid_first;
  }
}

inline std::int64_t engine::suspended_within(const internal::ctx_state& c, i64 a, i64 b) const noexcept {
  if (c.suspended_count == 0 || b <= a) return 0;
  const auto first = suspended_.begin() + c.suspended_first;
  const auto last = first + c.suspended_count;
  auto it = std::lower_bound(first, last, a, [](const internal::interval& s, i64 t) { return s.end <= t; });
  i64 total = 0;
  for (; it != last && it->begin < b; ++it) total += std::min(b, it->end) - std::max(a, it->begin);
  return total;
}

// The wall time that lies `on_thread_ns` of on-thread time before t: suspensions do not count.
inline std::int64_t engine::wall_before(const internal::ctx_state& c, i64 t, i64 on_thread_ns) const noexcept {
  if (c.suspended_count == 0) return t - on_thread_ns;
  const auto first = suspended_.begin() + c.suspended_first;
  auto it = std::lower_bound(first, first + c.suspended_count, t,
                             [](const internal::interval& s, i64 x) { return s.begin < x; });
  i64 cursor = t;
  i64 remaining = on_thread_ns;
  while (it != first) {
    --it;
    if (it->end >= cursor) {  // cursor inside this suspension: jump to its start
      cursor = std::min(cursor, it->begin);
      continue;
    }
    const i64 available = cursor - it->end;
    if (available >= remaining) return cursor - remaining;
    remaining -= available;
    cursor = it->begin;
  }
  return cursor - remaining;
}

inline std::int64_t engine::wall_after(const internal::ctx_state& c, i64 t, i64 on_thread_ns) const noexcept {
  if (c.suspended_count == 0) return t + on_thread_ns;
  const auto first = suspended_.begin() + c.suspended_first;
  const auto last = first + c.suspended_count;
  auto it = std::lower_bound(first, last, t, [](const internal::interval& s, i64 x) { return s.end <= x; });
  i64 cursor = t;
  i64 remaining = on_thread_ns;
  for (; it != last; ++it) {
    if (it->begin <= cursor) {
      cursor = std::max(cursor, it->end);
      continue;
    }
    const i64 available = it->begin - cursor;
    if (available >= remaining) return cursor + remaining;
    remaining -= available;
    cursor = it->end;
  }
  return cursor + remaining;
}

// gaps(S) = [S.begin, S.end] − ∪ children on S's context (§1), for every span that is not
// excluded; a span without children has one `whole` gap (used to place its samples).
inline void engine::compute_gaps() {
  using namespace internal;
  const auto spans = in_->spans;
  for (u32 i = 0; i < spans.size(); ++i) {
    const span_state& c = spans_[i];
    // A cross-context span covers nothing; a nested transaction's root covers its parent.
    if (i == root_ || c.parent == no_index || (c.excluded && !c.nested)) continue;
    // Children of a cross-context span cover its nearest non-excluded ancestor, which also
    // holds that span's samples.
    u32 parent = c.parent;
    if (spans_[parent].excluded) parent = spans_[parent].owner;
    if (spans_[parent].ctx != c.ctx) continue;  // another context never covers this one
    const span_state& p = spans_[parent];
    const i64 b = std::max(c.begin, p.begin);
    const i64 e = std::min(c.end, p.end);
    if (e > b) covers_.emplace_back(parent, b, e);
  }
  std::sort(covers_.begin(), covers_.end());
  std::size_t cover = 0;
  for (u32 i = 0; i < spans.size(); ++i) {
    span_state& s = spans_[i];
    while (cover < covers_.size() && std::get<0>(covers_[cover]) < i) ++cover;
    const std::size_t cover_first = cover;
    while (cover < covers_.size() && std::get<0>(covers_[cover]) == i) ++cover;
    s.first_gap = static_cast<u32>(gap_states_.size());
    out_->spans[i].first_gap = s.first_gap;
    if (s.excluded) continue;
    const bool has_cover = cover > cover_first;
    i64 cursor = s.begin;
    auto add_gap = [&](i64 b, i64 e) {
      if (e <= b) return;
      gap_summary g;
      g.span_id = spans[i].id;
      g.span_index = i;
      g.k = s.gap_count++;
      g.ctx_id = ctxs_[s.ctx].id;
      g.begin_ns = b;
      g.end_ns = e;
      g.filled = s.filled;
      if (!has_cover) g.kind = gap_kind::whole;
      else if (b == s.begin) g.kind = gap_kind::leading;
      else if (e == s.end) g.kind = gap_kind::trailing;
      else g.kind = gap_kind::between;
      gap_state st;
      st.suspended_first = static_cast<u32>(gap_suspended_.size());
      const ctx_state& c = ctxs_[s.ctx];
      if (c.suspended_count != 0) {
        const auto sus_first = suspended_.begin() + c.suspended_first;
        const auto sus_last = sus_first + c.suspended_count;
        auto it = std::lower_bound(sus_first, sus_last, b, [](const interval& x, i64 t) { return x.end <= t; });
        for (; it != sus_last && it->begin < e; ++it) {
          const i64 sb = std::max(b, it->begin);
          const i64 se = std::min(e, it->end);
          if (se > sb) {
            gap_suspended_.push_back({sb, se});
            g.suspended_ns += se - sb;
          }
        }
      }
      st.suspended_count = static_cast<u32>(gap_suspended_.size()) - st.suspended_first;
      g.is_short = e - b < min_gap_;
      if (s.filled && g.is_short) out_->spans[i].short_gaps_ns += e - b;
      out_->gaps.push_back(g);
      gap_states_.push_back(st);
    };
    for (std::size_t k = cover_first; k < cover; ++k) {
      const auto& [parent, b, e] = covers_[k];
      (void)parent;
      if (b > cursor) add_gap(cursor, b);
      cursor = std::max(cursor, e);
    }
    add_gap(cursor, s.end);
    out_->spans[i].gap_count = s.gap_count;
  }
}

// Filter by transaction, switch flag and span; order per context by (t, tid, seq) — the
// remaining fields break ties so the order depends on the sample multiset only.
inline void engine::collect_samples() {
  using namespace internal;
  const auto samples = in_->samples;
  work_.reserve(samples.size());
  u32 cached_span = no_index;
  u64 cached_id = 0;  // span id 0 is never a span: the cache starts empty
  for (u32 i = 0; i < samples.size(); ++i) {
    const sample_input& s = samples[i];
    sample_placement& p = out_->placements[i];
    if (s.txn_id != in_->txn_id) {
      p.fate = sample_fate::other_transaction;
      ++out_->counts.other_transaction_samples;
      continue;
    }
    if ((s.flags & sample_flag_in_switch) != 0) {
      p.fate = sample_fate::in_switch;
      ++out_->counts.switch_samples;
      continue;
    }
    u32 span = cached_id == s.span_id ? cached_span : s.span_id == 0 ? no_index : span_ids_.find(s.span_id);
    cached_id = s.span_id;
    cached_span = span;
    if (span == no_index || spans_[span].nested || ctxs_[spans_[span].ctx].id != s.ctx_id ||
        s.stack.size() >= anchor_unknown) {
      p.fate = sample_fate::orphan;
      ++out_->counts.orphan_samples;
      continue;
    }
    work_sample w;
    w.t = s.t_ns;
    w.placed_t = s.t_ns;
    w.seq = s.seq;
    w.input = i;
    w.ctx = spans_[span].ctx;
    const u32 owner = spans_[span].owner;
    w.span = owner;
    w.tid = s.tid;
    w.weight = s.weight == 0 ? 1 : s.weight;
    if ((s.flags & sample_flag_truncated) != 0) w.bits |= work_truncated;
    if (owner == span && s.anchor_idx != anchor_unknown && (s.flags & sample_flag_truncated) == 0 &&
        in_->spans[span].anchor_fp != 0) {
      w.bits |= work_anchor_usable;
    }
    if (s.mode != in_->mode) ++out_->counts.mode_mismatch_samples;
    work_.push_back(w);
  }
  const auto samples_span = in_->samples;
  auto less = [samples_span](const work_sample& a, const work_sample& b) {
    if (a.ctx != b.ctx) return a.ctx < b.ctx;
    if (a.t != b.t) return a.t < b.t;
    if (a.tid != b.tid) return a.tid < b.tid;
    if (a.seq != b.seq) return a.seq < b.seq;
    const sample_input& x = samples_span[a.input];
    const sample_input& y = samples_span[b.input];
    if (x.span_id != y.span_id) return x.span_id < y.span_id;
    if (x.weight != y.weight) return x.weight < y.weight;
    if (x.flags != y.flags) return x.flags < y.flags;
    if (x.anchor_idx != y.anchor_idx) return x.anchor_idx < y.anchor_idx;
    return std::lexicographical_compare(x.stack.begin(), x.stack.end(), y.stack.begin(), y.stack.end());
  };
  // Sort 16-byte keys, not the records: (context, time since the transaction began) packed in
  // one word — 24 bits of context, 40 of time (18 minutes; clamped beyond, where the full
  // comparison takes over) — and the record's index. Drained rings deliver each context's
  // samples in order: then the check is all there is.
  constexpr u64 time_bits = 40;
  constexpr i64 headroom_ns = i64{1} << 38;  // samples a little before the transaction's begin
  constexpr i64 max_offset = (i64{1} << time_bits) - 1;
  sort_keys_.resize(work_.size());
  for (u32 i = 0; i < work_.size(); ++i) {
    const i64 offset = std::clamp<i64>(work_[i].t - txn_begin_ + headroom_ns, 0, max_offset);
    sort_keys_[i] = {(static_cast<u64>(work_[i].ctx) << time_bits) | static_cast<u64>(offset), i};
  }
  auto key_less = [&](const std::pair<u64, u32>& a, const std::pair<u64, u32>& b) {
    if (a.first != b.first) return a.first < b.first;
    return less(work_[a.second], work_[b.second]);
  };
  if (std::is_sorted(sort_keys_.begin(), sort_keys_.end(), key_less)) return;
  std::sort(sort_keys_.begin(), sort_keys_.end(), key_less);
  work_sorted_.resize(work_.size());
  for (std::size_t i = 0; i < work_.size(); ++i) work_sorted_[i] = work_[sort_keys_[i].second];
  work_.swap(work_sorted_);
}

// Samples after txn.begin + max_profile_ns, or beyond the first max_samples_per_txn, are not
// kept (§3 "very long transaction").
inline void engine::apply_profile_cap() {
  using namespace internal;
  i64 cap = cfg_->max_profile_ns > 0 && txn_begin_ <= plus_infinity - cfg_->max_profile_ns
                ? txn_begin_ + cfg_->max_profile_ns
                : plus_infinity;
  const std::size_t max_samples = cfg_->max_samples_per_txn;
  if (max_samples != 0 && work_.size() > max_samples) {
    scratch_times_.resize(work_.size());
    for (std::size_t i = 0; i < work_.size(); ++i) scratch_times_[i] = work_[i].t;
    std::nth_element(scratch_times_.begin(), scratch_times_.begin() + static_cast<std::ptrdiff_t>(max_samples),
                     scratch_times_.end());
    cap = std::min(cap, scratch_times_[max_samples]);
  }
  if (cap < txn_end_) out_->profile_cap_ns = cap;
  std::size_t kept = 0;
  for (std::size_t i = 0; i < work_.size(); ++i) {
    if (work_[i].t >= cap) {
      out_->placements[work_[i].input].fate = sample_fate::over_cap;
      ++out_->counts.samples_over_cap;
      continue;
    }
    work_[kept++] = work_[i];
  }
  work_.resize(kept);
  for (const work_sample& w : work_) {
    if ((w.bits & work_truncated) != 0) ++out_->counts.truncated_samples;
    ++ctxs_[w.ctx].sample_count;
  }
}

// Effective interval Δ per context: the median spacing of consecutive samples while on-thread
// (wall mode), else Δ0 (§1).
inline void engine::compute_intervals() {
  using namespace internal;
  std::size_t begin = 0;
  while (begin < work_.size()) {
    const u32 ctx = work_[begin].ctx;
    std::size_t end = begin;
    while (end < work_.size() && work_[end].ctx == ctx) ++end;
    ctx_state& c = ctxs_[ctx];
    if (!c.fiber) {  // a thread's tids (one, unless the tid was reused): from its samples
      c.tid_first = static_cast<u32>(ctx_tids_.size());
      for (std::size_t i = begin; i < end; ++i) {
        if (std::find(ctx_tids_.begin() + c.tid_first, ctx_tids_.end(), work_[i].tid) == ctx_tids_.end()) {
          ctx_tids_.push_back(work_[i].tid);
        }
      }
      c.tid_count = static_cast<u32>(ctx_tids_.size()) - c.tid_first;
    }
    if (in_->mode == sample_mode::wall && end - begin >= 2) {
      scratch_times_.clear();
      for (std::size_t i = begin + 1; i < end; ++i) {
        const i64 spacing = work_[i].t - work_[i - 1].t;
        if (spacing > 0 && suspended_within(c, work_[i - 1].t, work_[i].t) == 0) scratch_times_.push_back(spacing);
      }
      if (!scratch_times_.empty()) {
        const auto middle = scratch_times_.begin() + static_cast<std::ptrdiff_t>(scratch_times_.size() / 2);
        std::nth_element(scratch_times_.begin(), middle, scratch_times_.end());
        c.interval_ns = *middle;
      }
    }
    begin = end;
  }
  for (const ctx_state& c : ctxs_) {
    context_summary summary;
    summary.ctx_id = c.id;
    summary.interval_ns = c.interval_ns;
    summary.sample_count = c.sample_count;
    summary.fiber = c.fiber;
    out_->contexts.push_back(summary);
  }
}

// §2.2: the span id decides, the timestamp picks the gap; within tol of a gap a sample is
// snapped to its edge, farther it is a skew conflict placed in the nearest gap.
inline void engine::assign_samples() {
  using namespace internal;
  const i64 tol = cfg_->skew_tolerance_ns;
  auto& gaps = out_->gaps;
  for (work_sample& w : work_) {
    const span_state& s = spans_[w.span];
    sample_placement& p = out_->placements[w.input];
    p.span_index = w.span;
    if (s.gap_count == 0) {
      p.fate = sample_fate::unplaced;
      p.skew_conflict = true;
      ++out_->counts.skew_conflicts;
      ++out_->counts.unplaced_samples;
      continue;
    }
    const u32 first = s.first_gap;
    const u32 last = first + s.gap_count;
    // The last gap beginning at or before t.
    u32 lo = first;
    u32 hi = last;
    while (lo < hi) {
      const u32 mid = lo + (hi - lo) / 2;
      if (gaps[mid].begin_ns <= w.t) lo = mid + 1;
      else hi = mid;
    }
    u32 chosen = no_index;
    i64 distance = 0;
    if (lo > first && w.t <= gaps[lo - 1].end_ns) {
      chosen = lo - 1;
    } else {
      const i64 before = lo > first ? w.t - gaps[lo - 1].end_ns : plus_infinity;
      const i64 after = lo < last ? gaps[lo].begin_ns - w.t : plus_infinity;
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
inline void engine::attribute_drops() {
  using namespace internal;
  auto& gaps = out_->gaps;
  std::vector<std::pair<u32, i64>> per_ctx;  // (ctx, t)
  for (const drop_report& report : in_->drops) {
    out_->counts.samples_dropped += report.log.size() + report.unlogged_count;
    for (const drop_entry& d : report.log) {
      const u32 ctx = ctx_ids_.find(d.ctx_id);
      if (ctx != no_index) per_ctx.emplace_back(ctx, d.t_ns);
    }
  }
  std::sort(per_ctx.begin(), per_ctx.end());
  for (std::size_t i = 0; i < per_ctx.size();) {
    const u32 ctx = per_ctx[i].first;
    ctx_state& c = ctxs_[ctx];
    c.drop_first = static_cast<u32>(drop_times_.size());
    for (; i < per_ctx.size() && per_ctx[i].first == ctx; ++i) drop_times_.push_back(per_ctx[i].second);
    c.drop_count = static_cast<u32>(drop_times_.size()) - c.drop_first;
  }
  for (u32 g = 0; g < gaps.size(); ++g) {
    const ctx_state& c = ctxs_[spans_[gaps[g].span_index].ctx];
    const auto first = drop_times_.begin() + c.drop_first;
    const auto last = first + c.drop_count;
    gaps[g].samples_dropped = static_cast<u64>(std::upper_bound(first, last, gaps[g].end_ns) -
                                               std::lower_bound(first, last, gaps[g].begin_ns));
    for (const drop_report& report : in_->drops) {
      if (report.unlogged_count == 0) continue;
      const bool ran_there =
          std::find(ctx_tids_.begin() + c.tid_first, ctx_tids_.begin() + c.tid_first + c.tid_count, report.tid) !=
          ctx_tids_.begin() + c.tid_first + c.tid_count;
      if (!ran_there) continue;
      i64 oldest = plus_infinity;
      for (const drop_entry& d : report.log) oldest = std::min(oldest, d.t_ns);
      if (gaps[g].begin_ns < oldest) {
        gaps[g].samples_dropped += report.unlogged_count;
        gaps[g].samples_dropped_upper_bound = true;
      }
    }
  }
}

// A counting sort by gap that keeps time order inside each gap.
inline void engine::group_by_gap() {
  using namespace internal;
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
  for (u32 i = 0; i < work_.size(); ++i) {
    const work_sample& w = work_[i];
    if ((w.bits & work_placed) != 0) gap_order_[scratch_counts_[w.gap]++] = i;
  }
  for (std::size_t g = 0; g < gap_count; ++g) {
    gap_summary& summary = out_->gaps[g];
    summary.sample_count = gap_states_[g].sample_count;
    for (u32 k = 0; k < summary.sample_count; ++k) {
      summary.sample_weight += work_[gap_order_[gap_states_[g].sample_first + k]].weight;
    }
    if (in_->mode == sample_mode::cpu) {
      summary.on_cpu_ns = static_cast<i64>(summary.sample_weight) * nominal_;
      const i64 running = summary.end_ns - summary.begin_ns - summary.suspended_ns;
      summary.off_cpu_ns = std::max<i64>(0, running - summary.on_cpu_ns);
    }
  }
}

// §2.3: drop spanprof's and signal delivery's frames at the leaf, then cut the stack at F —
// exactly at the anchor frame when the handler found it, else at the outermost frame matching
// the span's call site, else at the common prefix of the span's samples.
inline void engine::trim_sample(internal::work_sample& w) {
  using namespace internal;
  const std::span<const u32> stack = stack_of(w);
  const std::size_t n = stack.size();
  // A frame index past the table would be the caller's bug: the sample stays unresolved rather
  // than be read out of bounds. (A max-reduction: vectorized, and it brings the stack into the
  // cache for the walk that follows.)
  std::array<u32, 4> largest{};  // four chains: the loop is not bound by one max's latency
  std::size_t k = 0;
  for (; k + 4 <= n; k += 4) {
    for (std::size_t lane = 0; lane < 4; ++lane) largest[lane] = std::max(largest[lane], stack[k + lane]);
  }
  for (; k < n; ++k) largest[0] = std::max(largest[0], stack[k]);
  if (n == 0 || std::max(std::max(largest[0], largest[1]), std::max(largest[2], largest[3])) >= frame_infos_.size()) {
    ++out_->counts.unresolved_samples;
    return;
  }
  const frame_info* info = frame_infos_.data();
  std::size_t leaf = 0;
  while (leaf < n && (info[stack[leaf]].bits & frame_internal) != 0) ++leaf;
  if (leaf != 0) ++out_->counts.self_frames_stripped;
  w.leaf_skip = static_cast<std::uint16_t>(leaf);
  if (leaf >= n) {  // nothing but spanprof's own frames
    ++out_->counts.unresolved_samples;
    return;
  }
  if ((info[stack[leaf]].bits & frame_blocking) != 0) w.bits |= work_blocked;
  const span_state& s = spans_[w.span];
  std::size_t root = n;  // n: not found
  if ((w.bits & work_anchor_usable) != 0) {
    // Physical frame anchor_idx spans the entries [chain_first, chain_last]: its inline chain.
    const std::size_t anchor = in_->samples[w.input].anchor_idx;
    std::size_t physical = 0;
    std::size_t chain_first = 0;
    for (std::size_t e = 0; e < n; ++e) {
      if ((info[stack[e]].bits & frame_inlined) != 0) continue;
      if (physical == anchor) {
        root = e;
        break;
      }
      ++physical;
      chain_first = e + 1;
    }
    if (root != n) {
      // In the anchor's inline chain, entries outside F (F inlined into its caller) go.
      for (std::size_t e = root + 1; e-- > chain_first;) {
        if (span_matches_fkey(s, info[stack[e]].fkey)) {
          root = e;
          break;
        }
      }
    }
  }
  if (root == n) {
    for (std::size_t e = n; e-- > leaf;) {
      if (span_matches_fkey(s, info[stack[e]].fkey)) {
        root = e;
        break;
      }
    }
  }
  if (root == n && (w.bits & work_truncated) == 0) {
    if (!prefixes_ready_) compute_common_prefixes();
    if (s.lcp_sample == no_index || !s.lcp_distinct || s.lcp_length == 0 || s.lcp_length > n) {
      root = n - 1;  // untrimmed
      w.bits |= work_low_confidence;
      ++out_->counts.low_confidence_trims;
    } else {
      root = n - s.lcp_length;
    }
  }
  // A truncated stack without F lost its root side: no prefix can be aligned with it.
  if (root == n || root < leaf) {
    ++out_->counts.unresolved_samples;
    return;
  }
  w.root_pos = static_cast<std::uint16_t>(root);
  w.bits |= work_resolved;
}

// §2.3 step 3, second fallback: the longest common prefix (root side) of the stacks taken
// while S or a descendant was active; they diverge just below F, where the child spans open.
// Computed for every span the first time a sample needs it (rare: the call site usually
// finds F).
inline void engine::compute_common_prefixes() {
  using namespace internal;
  prefixes_ready_ = true;
  const std::size_t frame_count = frame_infos_.size();
  auto valid = [&](const work_sample& w) {
    for (const u32 f : stack_of(w)) {
      if (f >= frame_count) return false;
    }
    return !stack_of(w).empty();
  };
  auto fkey_from_root = [&](const work_sample& w, std::size_t k) {
    const std::span<const u32> st = stack_of(w);
    return frame_infos_[st[st.size() - 1 - k]].fkey;
  };
  // Merges sample/prefix (b_sample, b_len) into span s's prefix.
  auto merge = [&](span_state& s, u32 b_sample, u32 b_len, bool b_distinct) {
    if (b_sample == no_index) return;
    if (s.lcp_sample == no_index) {
      s.lcp_sample = b_sample;
      s.lcp_length = b_len;
      s.lcp_distinct = b_distinct;
      return;
    }
    const work_sample& a = work_[s.lcp_sample];
    const work_sample& b = work_[b_sample];
    const u32 limit = std::min(s.lcp_length, b_len);
    u32 k = 0;
    while (k < limit && fkey_from_root(a, k) == fkey_from_root(b, k)) ++k;
    const bool same_stack = k == s.lcp_length && k == b_len && stack_of(a).size() == s.lcp_length &&
                            stack_of(b).size() == b_len;
    s.lcp_distinct = s.lcp_distinct || b_distinct || !same_stack;
    s.lcp_length = k;
  };
  for (span_state& s : spans_) {
    s.lcp_sample = no_index;
    s.lcp_length = 0;
    s.lcp_distinct = false;
  }
  for (u32 i = 0; i < work_.size(); ++i) {
    const work_sample& w = work_[i];
    if ((w.bits & work_placed) == 0 || (w.bits & work_truncated) != 0 || !valid(w)) continue;
    merge(spans_[w.span], i, static_cast<u32>(stack_of(w).size()), false);
  }
  // Children into parents, deepest first.
  std::vector<u32> depth(spans_.size(), 0);
  u32 max_depth = 0;
  for (u32 i = 0; i < spans_.size(); ++i) {
    u32 d = 0;
    for (u32 p = spans_[i].parent; p != no_index && d <= spans_.size(); p = spans_[p].parent) ++d;
    depth[i] = d;
    max_depth = std::max(max_depth, d);
  }
  for (u32 d = max_depth; d > 0; --d) {
    for (u32 i = 0; i < spans_.size(); ++i) {
      if (depth[i] != d || spans_[i].parent == no_index) continue;
      span_state& parent = spans_[spans_[i].parent];
      if (parent.ctx != spans_[i].ctx) continue;
      merge(parent, spans_[i].lcp_sample, spans_[i].lcp_length, spans_[i].lcp_distinct);
    }
  }
}

inline std::uint32_t engine::child_of(u32 parent, u32 fkey, u32 caller_line, u32 frame, u32 caller_frame, u32 depth) {
  using namespace internal;
  for (u32 c = nodes_[parent].first_child; c != no_index; c = nodes_[c].next_sibling) {
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
  const u32 index = static_cast<u32>(nodes_.size());
  nodes_.push_back(n);
  nodes_[parent].first_child = index;
  return index;
}

inline std::uint32_t engine::ensure_record(internal::path_entry& e) {
  if (e.record == no_index) {
    e.record = static_cast<u32>(records_.size());
    records_.emplace_back();
  }
  return e.record;
}

// Ends the runs open at depths ≥ from_depth; `last_pos` was the last sample that had them.
// Runs with fewer than min_samples samples are not recorded: they are never spans (§2.5), and
// their weight stays in their parent's unresolved weight.
inline void engine::close_runs(u32 from_depth, u32 last_pos) {
  using namespace internal;
  const u32 min_samples = std::max<u32>(1, cfg_->min_samples);
  for (u32 d = open_len_; d-- > std::max<u32>(from_depth, 1);) {
    path_entry& e = path_[d];
    if (count_between(e.first_pos, last_pos) >= min_samples) {
      const u32 parent = d >= 2 ? ensure_record(path_[d - 1]) : no_index;
      const u32 index = ensure_record(e);
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

// §2.4: the call tree of a gap from its trimmed stacks (root = F), and its runs. Each stack is
// walked from F towards the leaf, collapsing direct recursion; while it agrees with the path
// of the previous sample nothing is looked up, so a steady stack costs a comparison per frame.
inline void engine::build_gap(u32 gap) {
  using namespace internal;
  gap_state& g = gap_states_[gap];
  const u32 m = g.sample_count;
  prefix_weight_.resize(m + 1);
  prefix_count_.resize(m + 1);
  prefix_blocked_.resize(m + 1);
  prefix_weight_[0] = 0;
  prefix_count_[0] = 0;
  prefix_blocked_[0] = 0;
  std::size_t longest = 0;
  // The stacks are read from memory here for the first time: ask for a few samples ahead, the
  // trimming of one sample is too short to hide the wait for the next.
  constexpr u32 prefetch_distance = 4;
  auto prefetch_stack = [&](u32 pos) {
    const std::span<const u32> st = stack_of(work_[gap_order_[g.sample_first + pos]]);
    const char* bytes = reinterpret_cast<const char*>(st.data());
    for (std::size_t offset = 0; offset < st.size_bytes(); offset += 64) __builtin_prefetch(bytes + offset);
  };
  for (u32 pos = 0; pos < std::min(m, prefetch_distance); ++pos) prefetch_stack(pos);
  for (u32 pos = 0; pos < m; ++pos) {
    if (pos + prefetch_distance < m) prefetch_stack(pos + prefetch_distance);
    work_sample& w = work_[gap_order_[g.sample_first + pos]];
    trim_sample(w);
    const bool resolved = (w.bits & work_resolved) != 0;
    if (resolved) longest = std::max<std::size_t>(longest, w.root_pos - w.leaf_skip + 1);
    prefix_weight_[pos + 1] = prefix_weight_[pos] + (resolved ? w.weight : 0);
    prefix_count_[pos + 1] = prefix_count_[pos] + (resolved ? 1 : 0);
    prefix_blocked_[pos + 1] = prefix_blocked_[pos] + (resolved && (w.bits & work_blocked) != 0 ? 1 : 0);
  }
  g.node_first = static_cast<u32>(nodes_.size());
  nodes_.emplace_back();  // virtual root: its children are the roots (F)
  const u32 virtual_root = g.node_first;
  gap_record_first_ = static_cast<u32>(records_.size());
  open_len_ = 0;
  u32 last_resolved = 0;
  bool any_resolved = false;
  constexpr u32 self_fkey = no_index - 1;
  // Depth ≤ stack length, + 1 for the `F self` run: no resize inside the loop.
  if (path_.size() < longest + 2) path_.resize(longest + 2);
  path_entry* const path = path_.data();
  const frame_info* const info = frame_infos_.data();
  // The previous resolved sample's trimmed stack, and for each offset from its root the depth
  // of the (recursion-collapsed) group holding it; depth_offset_[d]: where group d starts.
  if (offset_depth_.size() < longest + 1) offset_depth_.resize(longest + 1);
  if (depth_offset_.size() < longest + 2) depth_offset_.resize(longest + 2);
  u32* const offset_depth = offset_depth_.data();
  std::size_t* const depth_offset = depth_offset_.data();
  const u32* previous = nullptr;
  std::size_t previous_root = 0;
  std::size_t previous_length = 0;
  for (u32 pos = 0; pos < m; ++pos) {
    const work_sample& w = gap_sample(gap, pos);
    if ((w.bits & work_resolved) == 0) continue;  // unknown stack: neither extends nor ends a run
    const u32* const entries = stack_of(w).data();
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
    u32 depth = 0;
    std::size_t e = root;
    u32 caller_line = 0;
    u32 caller_frame = no_index;
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
      const u32 fkey = info[entries[e]].fkey;
      std::size_t inner = e;
      u32 repeat = 1;
      while (inner > leaf && info[entries[inner - 1]].fkey == fkey) {
        --inner;
        ++repeat;
      }
      depth_offset[depth] = root - e;
      for (std::size_t o = root - e; o <= root - inner; ++o) offset_depth[o] = depth;
      const u32 frame_index = entries[inner];
      path_entry& p = path[depth];
      if (!diverged && depth < open_len_ && p.fkey == fkey && p.caller_line == caller_line) {
        if (repeat > p.max_repeat) p.max_repeat = repeat;
      } else {
        if (!diverged) {
          close_runs(depth, last_resolved);
          diverged = true;
        }
        const u32 parent_node = depth == 0 ? virtual_root : path[depth - 1].node;
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
    const u32 leaf_node = path[depth - 1].node;
    u32 run_depth = depth;  // depth of the innermost run this sample is in
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
    const u32 line = info[entries[leaf]].line;
    // Misra–Gries: count the line, or take a free slot, or decrement every slot.
    bool counted = false;
    for (line_tally& t : ln.self_lines) {
      if (t.weight != 0 && t.line == line) {
        t.weight += w.weight;
        counted = true;
        break;
      }
    }
    if (!counted) {
      for (line_tally& t : ln.self_lines) {
        if (t.weight == 0) {
          t = {line, w.weight};
          counted = true;
          break;
        }
      }
    }
    if (!counted) {
      for (line_tally& t : ln.self_lines) t.weight = t.weight > w.weight ? t.weight - w.weight : 0;
    }
    last_resolved = pos;
    any_resolved = true;
  }
  if (any_resolved) close_runs(0, last_resolved);
  open_len_ = 0;
  g.node_count = static_cast<u32>(nodes_.size()) - g.node_first;
  // Totals bottom-up: children always come after their parent.
  for (u32 n = g.node_first; n < g.node_first + g.node_count; ++n) nodes_[n].total_weight = nodes_[n].self_weight;
  for (u32 n = g.node_first + g.node_count; n-- > g.node_first + 1;) {
    nodes_[nodes_[n].parent].total_weight += nodes_[n].total_weight;
  }
  // Children of each record, in time order: bucket k holds the children of record k, the last
  // bucket the top-level records.
  const u32 record_count = static_cast<u32>(records_.size()) - gap_record_first_;
  auto bucket_of = [&](u32 r) { return records_[r].parent == no_index ? record_count : records_[r].parent - gap_record_first_; };
  scratch_counts_.assign(record_count + 2, 0);
  for (u32 r = gap_record_first_; r < records_.size(); ++r) ++scratch_counts_[bucket_of(r) + 1];
  for (u32 k = 0; k <= record_count; ++k) scratch_counts_[k + 1] += scratch_counts_[k];
  record_children_.resize(record_count);
  for (u32 k = 0; k < record_count; ++k) {
    records_[gap_record_first_ + k].child_first = scratch_counts_[k];
    records_[gap_record_first_ + k].child_count = scratch_counts_[k + 1] - scratch_counts_[k];
  }
  const u32 top_first = scratch_counts_[record_count];
  const u32 top_end = scratch_counts_[record_count + 1];
  for (u32 r = gap_record_first_; r < records_.size(); ++r) record_children_[scratch_counts_[bucket_of(r)]++] = r;
  auto by_time = [&](u32 a, u32 b) { return records_[a].first_pos < records_[b].first_pos; };
  for (u32 k = 0; k < record_count; ++k) {
    const run_record& r = records_[gap_record_first_ + k];
    std::sort(record_children_.begin() + r.child_first, record_children_.begin() + r.child_first + r.child_count, by_time);
  }
  std::sort(record_children_.begin() + top_first, record_children_.begin() + top_end, by_time);
  g.derived_first = top_first;  // the top-level list, until emit_gap() reuses these fields
  g.derived_count = top_end - top_first;
}

inline std::uint32_t engine::hottest_line(u32 node, bool self_only) const {
  using namespace internal;
  const tree_node& n = nodes_[node];
  // Most nodes of a deep stack are links of a chain: no code of their own, one callee.
  if (!self_only && n.self_weight == 0 && n.first_child != no_index && nodes_[n.first_child].next_sibling == no_index) {
    return nodes_[n.first_child].caller_line;
  }
  // Lines of its own code, and the lines where it called each child, weighted.
  std::array<line_tally, 16> lines{};
  std::size_t used = 0;
  auto add = [&](u32 line, u64 weight) {
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
  for (u32 c = self_only ? no_index : nodes_[node].first_child; c != no_index; c = nodes_[c].next_sibling) {
    add(nodes_[c].caller_line, nodes_[c].total_weight);
  }
  u32 best = in_->frames[nodes_[node].frame].line;
  u64 best_weight = 0;
  for (std::size_t i = 0; i < used; ++i) {
    if (lines[i].weight > best_weight || (lines[i].weight == best_weight && lines[i].line < best)) {
      best = lines[i].line;
      best_weight = lines[i].weight;
    }
  }
  return best;
}

inline std::string engine::call_site_text(u32 caller_frame) const {
  if (caller_frame == no_index) return {};
  const frame& f = in_->frames[caller_frame];
  std::string out;
  if (!f.file.empty()) {
    out.append(names::basename(f.file));
    out.push_back(':');
    out.append(std::to_string(f.line));
  } else if (!f.module.empty()) {
    out.append(names::basename(f.module));
  }
  return out;
}

// §2.5: one run → one candidate derived span (with its chain collapsed), then its children.
// Returns the candidate index, or no_index when the run is not a span.
inline std::uint32_t engine::emit_run(u32 gap, u32 record, u32 level, u32 parent_candidate, u64& emitted_weight,
                                      i64& sibling_end) {
  using namespace internal;
  if (level > cfg_->max_inferred_depth) return no_index;
  const run_record& top = records_[record];
  const gap_summary& gs = out_->gaps[gap];
  const gap_state& g = gap_states_[gap];
  const ctx_state& c = ctxs_[spans_[gs.span_index].ctx];
  const i64 delta = c.interval_ns;
  const i64 tol = cfg_->skew_tolerance_ns;
  const u32 count = count_between(top.first_pos, top.last_pos);  // ≥ min_samples: see close_runs
  const work_sample& first = gap_sample(gap, top.first_pos);
  const work_sample& last = gap_sample(gap, top.last_pos);
  const i64 ta = first.placed_t;
  const i64 tb = last.placed_t;
  // Neighbours: the resolved samples of the gap around the run, else the context's samples
  // around the gap (unresolved ones say nothing about which function ran).
  const work_sample* previous = nullptr;
  for (u32 pos = top.first_pos; pos-- > 0 && previous == nullptr;) {
    if ((gap_sample(gap, pos).bits & work_resolved) != 0) previous = &gap_sample(gap, pos);
  }
  if (previous == nullptr) {
    const u32 first_work = gap_order_[g.sample_first];
    if (first_work > 0 && work_[first_work - 1].ctx == first.ctx) previous = &work_[first_work - 1];
  }
  const work_sample* next = nullptr;
  for (u32 pos = top.last_pos + 1; pos < g.sample_count && next == nullptr; ++pos) {
    if ((gap_sample(gap, pos).bits & work_resolved) != 0) next = &gap_sample(gap, pos);
  }
  if (next == nullptr) {
    const u32 last_work = gap_order_[g.sample_first + g.sample_count - 1];
    if (last_work + 1 < work_.size() && work_[last_work + 1].ctx == first.ctx) next = &work_[last_work + 1];
  }
  const i64 tp = previous != nullptr ? previous->placed_t : minus_infinity;
  const i64 tn = next != nullptr ? next->placed_t : plus_infinity;
  // begin_est = max(g0, ta − Δ/2, (tp + ta)/2), measured in on-thread time so a suspension
  // between tp and ta does not stretch the estimate.
  // (A neighbour clamped into this gap by a skew conflict can sit past ta or tb: no window.)
  const i64 half = delta / 2;
  const i64 before = tp == minus_infinity ? half : std::clamp<i64>(((ta - tp) - suspended_within(c, tp, ta)) / 2, 0, half);
  const i64 after = tn == plus_infinity ? half : std::clamp<i64>(((tn - tb) - suspended_within(c, tb, tn)) / 2, 0, half);
  i64 lower = gs.begin_ns;
  i64 upper = gs.end_ns;
  if (parent_candidate != no_index) {
    lower = std::max(lower, candidates_[parent_candidate].span.begin_ns);
    upper = std::min(upper, candidates_[parent_candidate].span.end_ns);
  }
  i64 begin = std::max(gs.begin_ns, wall_before(c, ta, before));
  i64 end = std::min(gs.end_ns, wall_after(c, tb, after));
  // Within the clock tolerance of the gap's (exact, instrumented) edge, the edge is the better
  // estimate: this also makes a skew ε ≤ tol leave the output unchanged (§3).
  if (begin - gs.begin_ns <= tol) begin = gs.begin_ns;
  if (gs.end_ns - end <= tol) end = gs.end_ns;
  // The midpoints already keep siblings apart; the edge snap above must not undo that.
  lower = std::max(lower, sibling_end);
  begin = std::clamp(begin, lower, std::max(lower, upper));
  end = std::clamp(end, begin, std::max(begin, upper));
  if (end - begin < cfg_->min_duration_ns) return no_index;
  sibling_end = end;

  // Chain collapse: a node with one child and no self samples does not split (§2.5).
  u32 chain_end = record;
  u32 max_repeat = top.max_repeat;
  std::string stack(functions_[nodes_[top.node].fkey].display);
  if (!top.self_run) {
    for (;;) {
      const run_record& r = records_[chain_end];
      if (r.self_weight != 0 || r.child_count != 1) break;
      const u32 child = record_children_[r.child_first];
      const run_record& cr = records_[child];
      if (cr.self_run || count_between(cr.first_pos, cr.last_pos) != count) break;
      chain_end = child;
      max_repeat = std::max(max_repeat, cr.max_repeat);
      stack.push_back(';');
      stack.append(functions_[nodes_[cr.node].fkey].display);
    }
  }

  candidate cand;
  derived_span& d = cand.span;
  d.kind = top.self_run ? derived_kind::inferred_self : derived_kind::inferred;
  d.span_id = gs.span_id;
  d.gap_index = gap;
  d.depth = level;
  d.ctx_id = c.id;
  d.tid = first.tid;
  d.begin_ns = begin;
  d.end_ns = end;
  // Bounds: the truth begin lies after tp, the last sample without the function, and the end
  // before tn. gapfill.md also takes ta − Δ and tb + Δ, which hold only for perfectly regular
  // samples: with jitter up to Δ/4 the neighbour can be 1.5Δ away, and a drop, a late ticker or
  // (CPU mode) a blocked thread leaves a longer hole in which the call may have started.
  d.begin_lo_ns = std::min(begin, std::max(gs.begin_ns, tp));
  d.end_hi_ns = std::max(end, std::min(gs.end_ns, tn));
  d.duration_min_ns = tb - ta;
  d.duration_error_ns = delta;
  d.sample_count = count;
  d.sample_weight = weight_between(top.first_pos, top.last_pos);
  d.self_weight = records_[chain_end].self_weight;
  const u32 blocked = prefix_blocked_[top.last_pos + 1] - prefix_blocked_[top.first_pos];
  d.state = blocked == 0 ? run_state::running : blocked == count ? run_state::blocked : run_state::mixed;
  if (in_->mode == sample_mode::cpu) {
    d.on_cpu_ns = static_cast<i64>(d.sample_weight) * nominal_;
    d.off_cpu_ns = std::max<i64>(0, (end - begin) - suspended_within(c, begin, end) - d.on_cpu_ns);
  }
  d.suspended_ns = suspended_within(c, begin, end);
  d.recursion_depth = max_repeat;
  const tree_node& node = nodes_[top.node];
  const function_info& fn = functions_[node.fkey];
  d.code_function = std::string(fn.display);
  d.code_filepath = std::string(fn.file);
  d.code_lineno = hottest_line(top.node, top.self_run);
  d.low_confidence = gs.low_confidence;
  for (u32 pos = top.first_pos; pos <= top.last_pos && !d.low_confidence; ++pos) {
    d.low_confidence = (gap_sample(gap, pos).bits & work_low_confidence) != 0;
  }
  if (c.drop_count != 0) {
    const auto drops_first = drop_times_.begin() + c.drop_first;
    const auto drops_last = drops_first + c.drop_count;
    d.merged_over_drop = std::upper_bound(drops_first, drops_last, ta) != std::lower_bound(drops_first, drops_last, tb);
    if (d.merged_over_drop) ++out_->counts.merged_over_drop;
  }
  d.call_tree_node = top.node;  // internal index until output_trees()
  if (top.self_run) {
    d.stack = std::string(fn.display);
    d.description = std::string(fn.display);
    d.description.append(" self");
    if (!fn.file.empty()) {
      d.description.append(" (").append(names::basename(fn.file)).append(":").append(std::to_string(d.code_lineno)).append(")");
    }
  } else {
    d.stack = std::move(stack);
    const std::string site = call_site_text(node.caller_frame);
    if (d.state == run_state::blocked) {
      // The blocking call most of its samples were in (their leaf); ties go to the first seen.
      std::array<std::pair<std::string_view, u32>, 8> calls{};
      std::size_t used = 0;
      for (u32 pos = top.first_pos; pos <= top.last_pos; ++pos) {
        const work_sample& w = gap_sample(gap, pos);
        if ((w.bits & work_resolved) == 0) continue;
        const std::string_view name = functions_[frame_infos_[stack_of(w)[w.leaf_skip]].fkey].blocking;
        std::size_t i = 0;
        while (i < used && calls[i].first != name) ++i;
        if (i == used && used < calls.size()) calls[used++] = {name, 0};
        if (i < used) ++calls[i].second;
      }
      std::string_view call;
      u32 best = 0;
      for (std::size_t i = 0; i < used; ++i) {
        if (calls[i].second > best) {
          best = calls[i].second;
          call = calls[i].first;
        }
      }
      d.description = "blocked: ";
      d.description.append(call);
      if (fn.blocking != call) d.description.append(" \xE2\x86\x90 ").append(fn.display);  // " ← "
    } else {
      d.description = std::string(fn.display);
    }
    if (!site.empty()) d.description.append(" (").append(site).append(")");
  }
  cand.parent = parent_candidate;
  cand.gap = gap;
  cand.first_pos = top.first_pos;
  cand.last_pos = top.last_pos;
  cand.level = level;
  cand.ordinal_in_gap = static_cast<u32>(candidates_.size()) - gap_states_[gap].derived_first;
  const u32 index = static_cast<u32>(candidates_.size());
  candidates_.push_back(std::move(cand));
  emitted_weight += candidates_[index].span.sample_weight;

  u64 children_weight = 0;
  i64 children_end = minus_infinity;
  const run_record& end_record = records_[chain_end];
  for (u32 k = 0; k < end_record.child_count; ++k) {
    const u32 child = record_children_[end_record.child_first + k];
    emit_run(gap, child, level + 1, index, children_weight, children_end);
  }
  derived_span& done = candidates_[index].span;
  done.unresolved_weight = done.sample_weight - done.self_weight - children_weight;
  return index;
}

inline void engine::emit_gap(u32 gap) {
  using namespace internal;
  gap_state& g = gap_states_[gap];
  const u32 top_first = g.derived_first;
  const u32 top_count = g.derived_count;
  g.derived_first = static_cast<u32>(candidates_.size());
  u64 emitted = 0;
  i64 top_end = minus_infinity;
  for (u32 k = 0; k < top_count; ++k) emit_run(gap, record_children_[top_first + k], 1, no_index, emitted, top_end);
  g.derived_count = static_cast<u32>(candidates_.size()) - g.derived_first;
  records_.resize(gap_record_first_);  // this gap's runs are spent
}

// At most max_inferred_spans per transaction, the longest first (§2.5). A child is never
// longer than its parent and sorts after it on ties, so a kept span's parent is kept too.
// Weight of a dropped span goes to its parent's (or gap's) unresolved weight.
inline void engine::finish_candidates() {
  using namespace internal;
  const std::size_t n = candidates_.size();
  if (n > cfg_->max_inferred_spans) {
    candidate_order_.resize(n);
    for (u32 i = 0; i < n; ++i) candidate_order_[i] = i;
    std::sort(candidate_order_.begin(), candidate_order_.end(), [&](u32 a, u32 b) {
      const i64 da = candidates_[a].span.end_ns - candidates_[a].span.begin_ns;
      const i64 db = candidates_[b].span.end_ns - candidates_[b].span.begin_ns;
      if (da != db) return da > db;
      if (candidates_[a].level != candidates_[b].level) return candidates_[a].level < candidates_[b].level;
      return a < b;
    });
    for (std::size_t k = cfg_->max_inferred_spans; k < n; ++k) candidates_[candidate_order_[k]].kept = false;
    for (u32 i = 0; i < n; ++i) {
      candidate& c = candidates_[i];
      if (c.kept) continue;
      ++out_->counts.inferred_spans_over_cap;
      if (c.parent != no_index && candidates_[c.parent].kept) {
        candidates_[c.parent].span.unresolved_weight += c.span.sample_weight;
      }
    }
  }
  candidate_final_.assign(n, no_index);
  for (u32 i = 0; i < n; ++i) {
    candidate& c = candidates_[i];
    if (!c.kept) continue;
    const u32 final_index = static_cast<u32>(out_->derived_spans.size());
    candidate_final_[i] = final_index;
    derived_span d = std::move(c.span);
    const span_input& s = in_->spans[out_->gaps[c.gap].span_index];
    u64 id = internal::mix64(s.id ^ internal::mix64((static_cast<u64>(out_->gaps[c.gap].k) << 32) | c.ordinal_in_gap));
    if (id == 0) id = 1;
    d.id = id;
    if (c.parent != no_index) {
      d.parent_index = candidate_final_[c.parent];
      d.parent_id = out_->derived_spans[d.parent_index].id;
    } else {
      d.parent_id = s.id;
    }
    out_->derived_spans.push_back(std::move(d));
  }
  // Gap-level accounting over the kept top-level spans.
  for (u32 g = 0; g < out_->gaps.size(); ++g) {
    gap_summary& gs = out_->gaps[g];
    if (!gs.filled) continue;
    const gap_state& st = gap_states_[g];
    u64 top_weight = 0;
    i64 explained = 0;
    for (u32 i = st.derived_first; i < st.derived_first + st.derived_count; ++i) {
      if (candidate_final_[i] == no_index || candidates_[i].parent != no_index) continue;
      const derived_span& d = out_->derived_spans[candidate_final_[i]];
      top_weight += d.sample_weight;
      explained += (d.end_ns - d.begin_ns) - d.suspended_ns;
    }
    gs.unresolved_weight = gs.sample_weight - top_weight;
    const i64 running = gs.end_ns - gs.begin_ns - gs.suspended_ns;
    gs.explained_ns = explained;
    gs.residual_ns = running - explained;
    const i64 delta = ctxs_[spans_[gs.span_index].ctx].interval_ns;
    gs.expected_samples = delta > 0 ? static_cast<double>(running) / static_cast<double>(delta) : 0.0;
  }
}

// §2.7: gap spans for what the samples do not explain, and one per fiber suspension.
inline void engine::emit_gap_spans() {
  using namespace internal;
  const std::size_t gap_count = out_->gaps.size();
  for (u32 g = 0; g < gap_count; ++g) {
    gap_summary& gs = out_->gaps[g];
    if (!gs.filled) continue;
    const span_input& s = in_->spans[gs.span_index];
    const ctx_state& c = ctxs_[spans_[gs.span_index].ctx];
    const i64 delta = c.interval_ns;
    const i64 duration = gs.end_ns - gs.begin_ns;
    const i64 running = duration - gs.suspended_ns;
    auto make = [&](i64 begin, i64 end, gap_reason reason, u64 ordinal) {
      derived_span d;
      d.kind = derived_kind::gap;
      u64 id = internal::mix64(s.id ^ internal::mix64((static_cast<u64>(gs.k) << 32) ^ (0xFFFF0000ull + ordinal)));
      d.id = id == 0 ? 1 : id;
      d.parent_id = s.id;
      d.span_id = s.id;
      d.gap_index = g;
      d.ctx_id = c.id;
      d.tid = c.tid_count != 0 ? ctx_tids_[c.tid_first] : 0;
      d.begin_ns = begin;
      d.end_ns = end;
      d.begin_lo_ns = begin;
      d.end_hi_ns = end;
      d.duration_error_ns = delta;
      d.reason = reason;
      d.low_confidence = gs.low_confidence;
      return d;
    };
    u32 whole = no_index;
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
      whole = static_cast<u32>(out_->derived_spans.size());
      gs.gap_span = whole;
      out_->derived_spans.push_back(std::move(d));
    }
    const gap_state& st = gap_states_[g];
    for (u32 k = 0; k < st.suspended_count; ++k) {
      const interval& seg = gap_suspended_[st.suspended_first + k];
      if (seg.end - seg.begin < min_gap_) continue;
      derived_span d = make(seg.begin, seg.end, gap_reason::suspended, 1 + k);
      d.description = std::string(reason_name(gap_reason::suspended));
      d.suspended_ns = seg.end - seg.begin;
      // Nested in the innermost inferred span that contains it (the function the fiber yielded
      // inside), else in the gap span, else directly in the filled span.
      u32 parent = whole;
      u32 parent_depth = 0;
      for (u32 i = st.derived_first; i < st.derived_first + st.derived_count; ++i) {
        const u32 fi = candidate_final_[i];
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

// Innermost derived span of each sample (pprof's inferred_span_id label): parents come before
// children in the candidate order, so children overwrite.
inline void engine::label_samples() {
  using namespace internal;
  for (u32 i = 0; i < candidates_.size(); ++i) {
    const u32 fi = candidate_final_[i];
    if (fi == no_index) continue;
    const candidate& c = candidates_[i];
    const gap_state& g = gap_states_[c.gap];
    for (u32 pos = c.first_pos; pos <= c.last_pos; ++pos) {
      out_->placements[work_[gap_order_[g.sample_first + pos]].input].derived_index = fi;
    }
  }
  for (const work_sample& w : work_) {
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

inline void engine::output_trees() {
  using namespace internal;
  node_output_.assign(nodes_.size(), no_index);
  for (u32 g = 0; g < gap_states_.size(); ++g) {
    const gap_state& st = gap_states_[g];
    gap_summary& gs = out_->gaps[g];
    if (!gs.filled || st.node_count == 0) continue;
    gs.first_node = static_cast<u32>(out_->call_tree_nodes.size());
    for (u32 n = st.node_first + 1; n < st.node_first + st.node_count; ++n) {
      const tree_node& t = nodes_[n];
      node_output_[n] = static_cast<u32>(out_->call_tree_nodes.size());
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
    gs.node_count = static_cast<u32>(out_->call_tree_nodes.size()) - gs.first_node;
  }
  for (derived_span& d : out_->derived_spans) {
    if (d.kind != derived_kind::gap && d.call_tree_node != no_index) d.call_tree_node = node_output_[d.call_tree_node];
  }
}

// The one-call form (gapfill.md §5.1's gapfill::run, the symbolizer applied beforehand): a
// fresh engine per transaction. The collector keeps an engine and a result instead.
inline result run(const transaction_input& in, const config& cfg = {}) {
  engine e;
  result out;
  e.run(in, cfg, out);
  return out;
}

}  // namespace spanprof::detail::gapfill
