// spanprof: gap filling (docs/gapfill.md) — explains the uninstrumented time inside spans with
// the stacks sampled there.
//
// A pure function of its input: the span tree and the samples of one finished transaction
// (stacks already symbolized into a frame table) go in; derived spans, gap summaries and one call
// tree per gap come out. Nothing here reads a clock, a signal, a thread or the runtime, so the
// tests feed it hand-built input (tests/gapfill_*_test.cpp) and the output is the same for any
// order in which the collector drained the samples.
//
// NOT ASYNC-SIGNAL-SAFE: allocates its result and scratch buffers. Runs on the collector thread.
// A `gap_filler` keeps its scratch buffers (and a reused `filled_transaction` keeps its vectors) between
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

#include <cstdint>
#include <limits>

#include "call_tree.hpp"
#include "derived_spans.hpp"
#include "frames.hpp"
#include "gap_filler.hpp"
#include "gap_spans.hpp"
#include "gaps.hpp"
#include "names.hpp"
#include "placement.hpp"
#include "publish.hpp"
#include "sample_order.hpp"
#include "span_tree.hpp"
#include "timeline.hpp"
#include "trim.hpp"

namespace spanprof::detail::gapfill {

inline void gap_filler::run(const transaction_input& in, const config& cfg, filled_transaction& out) {
  reset(in, cfg, out);
  build_frame_table(in.frames, frame_table_);                // 1
  build_span_tree(in, cfg, frame_table_, span_tree_, out);  // 2
  if (span_tree_.root == no_index) {
    out.counts.missing_root = true;
    for (auto& placement : out.placements) placement.fate = sample_fate::orphan;
    out.counts.orphan_samples = in.samples.size();
    return;
  }
  build_context_timeline(in, span_tree_, timeline_);                               // 3
  build_gap_list(in, span_tree_, timeline_, min_gap_, gap_list_, out);             // 4
  build_ordered_samples(in, cfg, span_tree_, timeline_, nominal_, ordered_, out);  // 5
  place_samples(cfg, gap_list_, ordered_, out);                                    // 6
  attribute_drops(in, span_tree_, timeline_, ordered_, drops_, out);
  group_by_gap(in.mode, nominal_, ordered_, gap_samples_, out);
  trimmer_.bind(in, frame_table_, span_tree_, ordered_.samples, out.counts);       // 7
  gap_states_.assign(gap_list_.gaps.size(), scratch::gap_state{});
  // Stacks are trimmed gap by gap, just before the gap's tree is built from them: each stack is
  // then read from memory once (a profile's stacks outgrow the caches).
  for (std::uint32_t gap = 0; gap < gap_states_.size(); ++gap) {
    if (out.gaps[gap].filled) {
      build_gap(gap);  // 7, 8: trim, then the call tree and its runs
      emit_gap(gap);   // 9: runs → candidate derived spans
    } else {
      const scratch::index_range range = gap_samples_.of_gap[gap];
      for (std::uint32_t pos = 0; pos < range.count; ++pos) trimmer_.trim(ordered_.samples[gap_samples_.order[range.first + pos]]);
    }
  }
  finish_candidates();  // 9: the span cap, ids, gap accounting
  emit_gap_spans();     // 10
  label_samples();      // 11
  output_trees();
}

inline void gap_filler::reset(const transaction_input& in, const config& cfg, filled_transaction& out) {
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
  out.profile_cap_ns = std::numeric_limits<std::int64_t>::max();
  out.counts.samples_in = in.samples.size();
  nominal_ = in.sampling_interval_ns > 0 ? in.sampling_interval_ns : 10'000'000;
  out.nominal_interval_ns = nominal_;
  min_gap_ = cfg.min_gap_ns > 0 ? cfg.min_gap_ns : nominal_;
  trees_.nodes.clear();
  trees_.records.clear();
  derived_.candidates.clear();
}

// The one-call form (gapfill.md §5.1's gapfill::run, the symbolizer applied beforehand): a
// fresh gap_filler per transaction. The collector keeps a gap_filler and a filled_transaction instead.
inline filled_transaction run(const transaction_input& in, const config& cfg = {}) {
  gap_filler filler;
  filled_transaction out;
  filler.run(in, cfg, out);
  return out;
}

}  // namespace spanprof::detail::gapfill
