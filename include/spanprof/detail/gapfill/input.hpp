// spanprof gapfill: what goes in — the spans, contexts, drops and symbolized samples of one
// finished transaction, and the knobs (gapfill.md §1, §4).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

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

}  // namespace spanprof::detail::gapfill
