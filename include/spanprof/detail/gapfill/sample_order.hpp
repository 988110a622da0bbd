// spanprof gapfill, phase 5: which samples count, in a canonical order, within the profile cap,
// and each context's effective sampling interval (gapfill.md §2.1, §3).
//
// Consumes: the input's samples, the config, the span_tree, the context_timeline. Produces:
// ordered_samples, and the result's sample fates for the samples it drops, its counters and
// context summaries.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "id_table.hpp"
#include "input.hpp"
#include "output.hpp"
#include "span_tree.hpp"
#include "timeline.hpp"

namespace spanprof::detail::gapfill {

namespace scratch {

enum work_bits : std::uint8_t {
  work_resolved = 1u << 0,
  work_blocked = 1u << 1,
  work_anchor_usable = 1u << 2,
  work_low_confidence = 1u << 4,
  work_truncated = 1u << 5,
  work_placed = 1u << 6,
};

// One kept sample. Its columns are filled by three phases, in order: this one (t, seq, input,
// ctx, span, tid, weight, anchor/truncated bits), placement (gap, placed_t, work_placed) and
// trimming (leaf_skip, root_pos, resolved/blocked/low-confidence bits); from the call trees on
// it is read only. One record per sample rather than a struct per phase: the walk over a
// gap's samples then touches one cache line per sample (gapfill_bench).
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

// Per context, from its samples.
struct context_sampling {
  std::int64_t interval_ns = 0;  // effective Δ
  std::uint32_t sample_count = 0;
  std::uint32_t tid_first = 0;  // threads it ran on, in ordered_samples::context_tids
  std::uint32_t tid_count = 0;
};

// Phase 5's output.
struct ordered_samples {
  std::vector<work_sample> samples;  // per context, by (t, tid, seq, …)
  std::vector<context_sampling> contexts;  // parallel to context_timeline::contexts
  std::vector<std::uint32_t> context_tids;
  // Scratch, kept for its capacity.
  std::vector<work_sample> sorted;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> sort_keys;
  std::vector<std::int64_t> times;

  [[nodiscard]] std::span<const std::uint32_t> threads_of(std::uint32_t ctx) const noexcept {
    return {context_tids.data() + contexts[ctx].tid_first, contexts[ctx].tid_count};
  }
};

// Filter by transaction, switch flag and span: the work samples, in input order.
inline void collect_samples(const transaction_input& in, const span_tree& tree, ordered_samples& ordered,
                            filled_transaction& result) {
  const auto samples = in.samples;
  ordered.samples.reserve(samples.size());
  std::uint32_t cached_span = no_index;
  std::uint64_t cached_id = 0;  // span id 0 is never a span: the cache starts empty
  for (std::uint32_t i = 0; i < samples.size(); ++i) {
    const sample_input& input_sample = samples[i];
    sample_placement& placement = result.placements[i];
    if (input_sample.txn_id != in.txn_id) {
      placement.fate = sample_fate::other_transaction;
      ++result.counts.other_transaction_samples;
      continue;
    }
    if ((input_sample.flags & sample_flag_in_switch) != 0) {
      placement.fate = sample_fate::in_switch;
      ++result.counts.switch_samples;
      continue;
    }
    const std::uint32_t span = cached_id == input_sample.span_id ? cached_span : input_sample.span_id == 0 ? no_index : tree.ids.find(input_sample.span_id);
    cached_id = input_sample.span_id;
    cached_span = span;
    if (span == no_index || tree.spans[span].nested || tree.context_ids[tree.spans[span].ctx] != input_sample.ctx_id ||
        input_sample.stack.size() >= anchor_unknown) {
      placement.fate = sample_fate::orphan;
      ++result.counts.orphan_samples;
      continue;
    }
    work_sample sample;
    sample.t = input_sample.t_ns;
    sample.placed_t = input_sample.t_ns;
    sample.seq = input_sample.seq;
    sample.input = i;
    sample.ctx = tree.spans[span].ctx;
    const std::uint32_t owner = tree.spans[span].owner;
    sample.span = owner;
    sample.tid = input_sample.tid;
    sample.weight = input_sample.weight == 0 ? 1 : input_sample.weight;
    if ((input_sample.flags & sample_flag_truncated) != 0) sample.bits |= work_truncated;
    if (owner == span && input_sample.anchor_idx != anchor_unknown && (input_sample.flags & sample_flag_truncated) == 0 &&
        in.spans[span].anchor_fp != 0) {
      sample.bits |= work_anchor_usable;
    }
    if (input_sample.mode != in.mode) ++result.counts.mode_mismatch_samples;
    ordered.samples.push_back(sample);
  }
}

// Order per context by (t, tid, seq): the remaining fields break ties so the order depends on
// the sample multiset only.
inline void sort_samples(std::span<const sample_input> inputs, std::int64_t txn_begin_ns, ordered_samples& ordered) {
  std::vector<work_sample>& work = ordered.samples;
  auto less = [inputs](const work_sample& a, const work_sample& b) {
    if (a.ctx != b.ctx) return a.ctx < b.ctx;
    if (a.t != b.t) return a.t < b.t;
    if (a.tid != b.tid) return a.tid < b.tid;
    if (a.seq != b.seq) return a.seq < b.seq;
    const sample_input& x = inputs[a.input];
    const sample_input& y = inputs[b.input];
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
  constexpr std::uint64_t time_bits = 40;
  constexpr std::int64_t headroom_ns = std::int64_t{1} << 38;  // samples a little before the transaction's begin
  constexpr std::int64_t max_offset = (std::int64_t{1} << time_bits) - 1;
  auto& keys = ordered.sort_keys;
  keys.resize(work.size());
  for (std::uint32_t i = 0; i < work.size(); ++i) {
    const std::int64_t offset = std::clamp<std::int64_t>(work[i].t - txn_begin_ns + headroom_ns, 0, max_offset);
    keys[i] = {(static_cast<std::uint64_t>(work[i].ctx) << time_bits) | static_cast<std::uint64_t>(offset), i};
  }
  auto key_less = [&](const std::pair<std::uint64_t, std::uint32_t>& a, const std::pair<std::uint64_t, std::uint32_t>& b) {
    if (a.first != b.first) return a.first < b.first;
    return less(work[a.second], work[b.second]);
  };
  if (std::is_sorted(keys.begin(), keys.end(), key_less)) return;
  std::sort(keys.begin(), keys.end(), key_less);
  ordered.sorted.resize(work.size());
  for (std::size_t i = 0; i < work.size(); ++i) ordered.sorted[i] = work[keys[i].second];
  work.swap(ordered.sorted);
}

// Samples after txn.begin + max_profile_ns, or beyond the first max_samples_per_txn, are not
// kept (§3 "very long transaction").
inline void apply_profile_cap(const config& cfg, const span_tree& tree, ordered_samples& ordered,
                              filled_transaction& result) {
  std::vector<work_sample>& work = ordered.samples;
  const std::int64_t txn_begin = tree.txn_begin_ns;
  std::int64_t cap = cfg.max_profile_ns > 0 && txn_begin <= plus_infinity - cfg.max_profile_ns
                         ? txn_begin + cfg.max_profile_ns
                         : plus_infinity;
  const std::size_t max_samples = cfg.max_samples_per_txn;
  if (max_samples != 0 && work.size() > max_samples) {
    std::vector<std::int64_t>& times = ordered.times;
    times.resize(work.size());
    for (std::size_t i = 0; i < work.size(); ++i) times[i] = work[i].t;
    std::nth_element(times.begin(), times.begin() + static_cast<std::ptrdiff_t>(max_samples), times.end());
    cap = std::min(cap, times[max_samples]);
  }
  if (cap < tree.txn_end_ns) result.profile_cap_ns = cap;
  std::size_t kept = 0;
  for (std::size_t i = 0; i < work.size(); ++i) {
    if (work[i].t >= cap) {
      result.placements[work[i].input].fate = sample_fate::over_cap;
      ++result.counts.samples_over_cap;
      continue;
    }
    work[kept++] = work[i];
  }
  work.resize(kept);
  for (const work_sample& sample : work) {
    if ((sample.bits & work_truncated) != 0) ++result.counts.truncated_samples;
    ++ordered.contexts[sample.ctx].sample_count;
  }
}

// The threads each context ran on: a fiber's from its switches (the timeline), a thread's
// (one, unless the tid was reused) from its samples.
inline void collect_context_threads(const context_timeline& timeline, ordered_samples& ordered) {
  std::vector<std::uint32_t>& tids = ordered.context_tids;
  for (std::uint32_t ctx = 0; ctx < timeline.contexts.size(); ++ctx) {
    const ctx_state& state = timeline.contexts[ctx];
    if (!state.fiber) continue;
    context_sampling& sampling = ordered.contexts[ctx];
    sampling.tid_first = static_cast<std::uint32_t>(tids.size());
    const auto fiber_first = timeline.fiber_tids.begin() + state.fiber_tid_first;
    tids.insert(tids.end(), fiber_first, fiber_first + state.fiber_tid_count);
    sampling.tid_count = state.fiber_tid_count;
  }
  const std::vector<work_sample>& work = ordered.samples;
  for (std::size_t begin = 0, end = 0; begin < work.size(); begin = end) {
    const std::uint32_t ctx = work[begin].ctx;
    while (end < work.size() && work[end].ctx == ctx) ++end;
    if (timeline.contexts[ctx].fiber) continue;
    context_sampling& sampling = ordered.contexts[ctx];
    sampling.tid_first = static_cast<std::uint32_t>(tids.size());
    for (std::size_t i = begin; i < end; ++i) {
      if (std::find(tids.begin() + sampling.tid_first, tids.end(), work[i].tid) == tids.end()) tids.push_back(work[i].tid);
    }
    sampling.tid_count = static_cast<std::uint32_t>(tids.size()) - sampling.tid_first;
  }
}

// Effective interval Δ per context: the median spacing of consecutive samples while on-thread
// (wall mode), else Δ0 (§1).
inline void compute_intervals(sample_mode mode, const context_timeline& timeline, ordered_samples& ordered) {
  if (mode != sample_mode::wall) return;
  const std::vector<work_sample>& work = ordered.samples;
  std::vector<std::int64_t>& spacings = ordered.times;
  for (std::size_t begin = 0, end = 0; begin < work.size(); begin = end) {
    const std::uint32_t ctx = work[begin].ctx;
    while (end < work.size() && work[end].ctx == ctx) ++end;
    if (end - begin < 2) continue;
    const ctx_state& state = timeline.contexts[ctx];
    spacings.clear();
    for (std::size_t i = begin + 1; i < end; ++i) {
      const std::int64_t spacing = work[i].t - work[i - 1].t;
      if (spacing > 0 && timeline.suspended_within(state, work[i - 1].t, work[i].t) == 0) spacings.push_back(spacing);
    }
    if (!spacings.empty()) {
      const auto middle = spacings.begin() + static_cast<std::ptrdiff_t>(spacings.size() / 2);
      std::nth_element(spacings.begin(), middle, spacings.end());
      ordered.contexts[ctx].interval_ns = *middle;
    }
  }
}

}  // namespace scratch

// Phase 5: the kept samples in canonical order, and what each context's samples say.
inline void build_ordered_samples(const transaction_input& in, const config& cfg, const scratch::span_tree& tree,
                                  const scratch::context_timeline& timeline, std::int64_t nominal_interval_ns,
                                  scratch::ordered_samples& ordered, filled_transaction& result) {
  using namespace scratch;
  ordered.samples.clear();
  ordered.context_tids.clear();
  ordered.contexts.assign(timeline.contexts.size(), context_sampling{nominal_interval_ns});
  collect_samples(in, tree, ordered, result);
  sort_samples(in.samples, tree.txn_begin_ns, ordered);
  apply_profile_cap(cfg, tree, ordered, result);
  collect_context_threads(timeline, ordered);
  compute_intervals(in.mode, timeline, ordered);
  for (std::uint32_t ctx = 0; ctx < timeline.contexts.size(); ++ctx) {
    context_summary summary;
    summary.ctx_id = timeline.contexts[ctx].id;
    summary.interval_ns = ordered.contexts[ctx].interval_ns;
    summary.sample_count = ordered.contexts[ctx].sample_count;
    summary.fiber = timeline.contexts[ctx].fiber;
    result.contexts.push_back(summary);
  }
}

}  // namespace spanprof::detail::gapfill
