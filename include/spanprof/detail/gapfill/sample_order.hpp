// spanprof gapfill, phase 5: which samples count, in a canonical order, within the profile cap,
// and each context's effective sampling interval (gapfill.md §2.1, §3).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "gap_filler.hpp"

namespace spanprof::detail::gapfill {

// Filter by transaction, switch flag and span; order per context by (t, tid, seq) — the
// remaining fields break ties so the order depends on the sample multiset only.
inline void gap_filler::collect_samples() {
  using namespace scratch;
  const auto samples = in_->samples;
  work_.reserve(samples.size());
  std::uint32_t cached_span = no_index;
  std::uint64_t cached_id = 0;  // span id 0 is never a span: the cache starts empty
  for (std::uint32_t i = 0; i < samples.size(); ++i) {
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
    std::uint32_t span = cached_id == s.span_id ? cached_span : s.span_id == 0 ? no_index : span_tree_.ids.find(s.span_id);
    cached_id = s.span_id;
    cached_span = span;
    if (span == no_index || span_tree_.spans[span].nested || span_tree_.context_ids[span_tree_.spans[span].ctx] != s.ctx_id ||
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
    w.ctx = span_tree_.spans[span].ctx;
    const std::uint32_t owner = span_tree_.spans[span].owner;
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
  constexpr std::uint64_t time_bits = 40;
  constexpr std::int64_t headroom_ns = std::int64_t{1} << 38;  // samples a little before the transaction's begin
  constexpr std::int64_t max_offset = (std::int64_t{1} << time_bits) - 1;
  sort_keys_.resize(work_.size());
  for (std::uint32_t i = 0; i < work_.size(); ++i) {
    const std::int64_t offset = std::clamp<std::int64_t>(work_[i].t - span_tree_.txn_begin_ns + headroom_ns, 0, max_offset);
    sort_keys_[i] = {(static_cast<std::uint64_t>(work_[i].ctx) << time_bits) | static_cast<std::uint64_t>(offset), i};
  }
  auto key_less = [&](const std::pair<std::uint64_t, std::uint32_t>& a, const std::pair<std::uint64_t, std::uint32_t>& b) {
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
inline void gap_filler::apply_profile_cap() {
  using namespace scratch;
  const std::int64_t txn_begin = span_tree_.txn_begin_ns;
  std::int64_t cap = cfg_->max_profile_ns > 0 && txn_begin <= plus_infinity - cfg_->max_profile_ns
                ? txn_begin + cfg_->max_profile_ns
                : plus_infinity;
  const std::size_t max_samples = cfg_->max_samples_per_txn;
  if (max_samples != 0 && work_.size() > max_samples) {
    scratch_times_.resize(work_.size());
    for (std::size_t i = 0; i < work_.size(); ++i) scratch_times_[i] = work_[i].t;
    std::nth_element(scratch_times_.begin(), scratch_times_.begin() + static_cast<std::ptrdiff_t>(max_samples),
                     scratch_times_.end());
    cap = std::min(cap, scratch_times_[max_samples]);
  }
  if (cap < span_tree_.txn_end_ns) out_->profile_cap_ns = cap;
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
    ++ctx_sampling_[w.ctx].sample_count;
  }
}

// Effective interval Δ per context: the median spacing of consecutive samples while on-thread
// (wall mode), else Δ0 (§1).
inline void gap_filler::compute_intervals() {
  using namespace scratch;
  // A fiber's threads come from its switches (the timeline); a thread's from its samples below.
  for (std::uint32_t ctx = 0; ctx < timeline_.contexts.size(); ++ctx) {
    const ctx_state& state = timeline_.contexts[ctx];
    if (!state.fiber) continue;
    context_sampling& c = ctx_sampling_[ctx];
    c.tid_first = static_cast<std::uint32_t>(ctx_tids_.size());
    const auto fiber_first = timeline_.fiber_tids.begin() + state.fiber_tid_first;
    ctx_tids_.insert(ctx_tids_.end(), fiber_first, fiber_first + state.fiber_tid_count);
    c.tid_count = state.fiber_tid_count;
  }
  std::size_t begin = 0;
  while (begin < work_.size()) {
    const std::uint32_t ctx = work_[begin].ctx;
    std::size_t end = begin;
    while (end < work_.size() && work_[end].ctx == ctx) ++end;
    context_sampling& c = ctx_sampling_[ctx];
    const ctx_state& state = timeline_.contexts[ctx];
    if (!state.fiber) {  // a thread's tids (one, unless the tid was reused): from its samples
      c.tid_first = static_cast<std::uint32_t>(ctx_tids_.size());
      for (std::size_t i = begin; i < end; ++i) {
        if (std::find(ctx_tids_.begin() + c.tid_first, ctx_tids_.end(), work_[i].tid) == ctx_tids_.end()) {
          ctx_tids_.push_back(work_[i].tid);
        }
      }
      c.tid_count = static_cast<std::uint32_t>(ctx_tids_.size()) - c.tid_first;
    }
    if (in_->mode == sample_mode::wall && end - begin >= 2) {
      scratch_times_.clear();
      for (std::size_t i = begin + 1; i < end; ++i) {
        const std::int64_t spacing = work_[i].t - work_[i - 1].t;
        if (spacing > 0 && timeline_.suspended_within(state, work_[i - 1].t, work_[i].t) == 0) scratch_times_.push_back(spacing);
      }
      if (!scratch_times_.empty()) {
        const auto middle = scratch_times_.begin() + static_cast<std::ptrdiff_t>(scratch_times_.size() / 2);
        std::nth_element(scratch_times_.begin(), middle, scratch_times_.end());
        c.interval_ns = *middle;
      }
    }
    begin = end;
  }
  for (std::uint32_t ctx = 0; ctx < timeline_.contexts.size(); ++ctx) {
    context_summary summary;
    summary.ctx_id = timeline_.contexts[ctx].id;
    summary.interval_ns = ctx_sampling_[ctx].interval_ns;
    summary.sample_count = ctx_sampling_[ctx].sample_count;
    summary.fiber = timeline_.contexts[ctx].fiber;
    out_->contexts.push_back(summary);
  }
}

}  // namespace spanprof::detail::gapfill
