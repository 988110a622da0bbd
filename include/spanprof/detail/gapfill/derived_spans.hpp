// spanprof gapfill, phase 9: runs become derived spans, then the span cap (gapfill.md §2.5, §2.6).
//
// Consumes: trees_, the context_timeline, ordered_samples, drop_table, the config. Produces:
// derived_ (candidates, then which survive the cap), the result's inferred derived spans and
// the gaps' explained/residual time.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "gap_filler.hpp"
#include "names.hpp"

namespace spanprof::detail::gapfill {

inline std::string gap_filler::call_site_text(std::uint32_t caller_frame) const {
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

// Neighbours of a run: the resolved samples of the gap around it, else the context's samples
// around the gap (unresolved ones say nothing about which function ran). nullptr where none.
inline std::pair<const scratch::work_sample*, const scratch::work_sample*> gap_filler::run_neighbours(
    std::uint32_t gap, const scratch::run_record& top, const scratch::work_sample& first) const noexcept {
  using namespace scratch;
  const index_range samples = gap_samples_.of_gap[gap];
  const std::vector<work_sample>& work = ordered_.samples;
  const work_sample* previous = nullptr;
  for (std::uint32_t pos = top.first_pos; pos-- > 0 && previous == nullptr;) {
    if ((gap_sample(gap, pos).bits & work_resolved) != 0) previous = &gap_sample(gap, pos);
  }
  if (previous == nullptr) {
    const std::uint32_t first_work = gap_samples_.order[samples.first];
    if (first_work > 0 && work[first_work - 1].ctx == first.ctx) previous = &work[first_work - 1];
  }
  const work_sample* next = nullptr;
  for (std::uint32_t pos = top.last_pos + 1; pos < samples.count && next == nullptr; ++pos) {
    if ((gap_sample(gap, pos).bits & work_resolved) != 0) next = &gap_sample(gap, pos);
  }
  if (next == nullptr) {
    const std::uint32_t last_work = gap_samples_.order[samples.first + samples.count - 1];
    if (last_work + 1 < work.size() && work[last_work + 1].ctx == first.ctx) next = &work[last_work + 1];
  }
  return {previous, next};
}

// §2.5: a run's edges. begin_est = max(g0, first_t − Δ/2, (previous_t + first_t)/2), and the
// end likewise, clamped into the parent candidate and after the previous sibling. False when
// the result is shorter than min_duration_ns (the run is not a span).
inline bool gap_filler::estimate_run_window(std::uint32_t gap, const scratch::run_record& top, std::uint32_t parent_candidate,
                                            std::int64_t sibling_end, scratch::run_window& window) const {
  using namespace scratch;
  const gap_summary& gap_info = out_->gaps[gap];
  const ctx_state& ctx = timeline_.contexts[span_tree_.spans[gap_info.span_index].ctx];
  const std::int64_t interval_ns = ordered_.contexts[span_tree_.spans[gap_info.span_index].ctx].interval_ns;
  const work_sample& first = gap_sample(gap, top.first_pos);
  window.first_t = first.placed_t;
  window.last_t = gap_sample(gap, top.last_pos).placed_t;
  const auto [previous, next] = run_neighbours(gap, top, first);
  window.previous_t = previous != nullptr ? previous->placed_t : minus_infinity;
  window.next_t = next != nullptr ? next->placed_t : plus_infinity;
  const std::int64_t first_t = window.first_t;
  const std::int64_t last_t = window.last_t;
  const std::int64_t previous_t = window.previous_t;
  const std::int64_t next_t = window.next_t;
  // Half-windows measured in on-thread time, so a suspension between previous_t and first_t
  // does not stretch the estimate. (A neighbour clamped into this gap by a skew conflict can
  // sit past first_t or last_t: no window.)
  const std::int64_t half = interval_ns / 2;
  const std::int64_t before = previous_t == minus_infinity ? half : std::clamp<std::int64_t>(((first_t - previous_t) - timeline_.suspended_within(ctx, previous_t, first_t)) / 2, 0, half);
  const std::int64_t after = next_t == plus_infinity ? half : std::clamp<std::int64_t>(((next_t - last_t) - timeline_.suspended_within(ctx, last_t, next_t)) / 2, 0, half);
  std::int64_t lower = gap_info.begin_ns;
  std::int64_t upper = gap_info.end_ns;
  if (parent_candidate != no_index) {
    lower = std::max(lower, derived_.candidates[parent_candidate].span.begin_ns);
    upper = std::min(upper, derived_.candidates[parent_candidate].span.end_ns);
  }
  std::int64_t begin = std::max(gap_info.begin_ns, timeline_.wall_before(ctx, first_t, before));
  std::int64_t end = std::min(gap_info.end_ns, timeline_.wall_after(ctx, last_t, after));
  // Within the clock tolerance of the gap's (exact, instrumented) edge, the edge is the better
  // estimate: this also makes a skew ε ≤ tol leave the output unchanged (§3).
  const std::int64_t tolerance_ns = cfg_->skew_tolerance_ns;
  if (begin - gap_info.begin_ns <= tolerance_ns) begin = gap_info.begin_ns;
  if (gap_info.end_ns - end <= tolerance_ns) end = gap_info.end_ns;
  // The midpoints already keep siblings apart; the edge snap above must not undo that.
  lower = std::max(lower, sibling_end);
  begin = std::clamp(begin, lower, std::max(lower, upper));
  end = std::clamp(end, begin, std::max(begin, upper));
  window.begin = begin;
  window.end = end;
  return end - begin >= cfg_->min_duration_ns;
}

// Chain collapse (§2.5): a node with one child and no self samples does not split; the span is
// the chain's top and the chain goes into spanprof.stack. Returns the chain's last record.
inline std::uint32_t gap_filler::collapse_chain(std::uint32_t record, std::uint32_t count, std::uint32_t& max_repeat,
                                                std::string& stack) const {
  using namespace scratch;
  const run_record& top = trees_.records[record];
  std::uint32_t chain_end = record;
  max_repeat = top.max_repeat;
  stack = std::string(frame_table_.functions[trees_.nodes[top.node].fkey].display);
  if (top.self_run) return chain_end;
  for (;;) {
    const run_record& link = trees_.records[chain_end];
    if (link.self_weight != 0 || link.child_count != 1) break;
    const std::uint32_t child = trees_.record_children[link.child_first];
    const run_record& child_run = trees_.records[child];
    if (child_run.self_run || count_between(child_run.first_pos, child_run.last_pos) != count) break;
    chain_end = child;
    max_repeat = std::max(max_repeat, child_run.max_repeat);
    stack.push_back(';');
    stack.append(frame_table_.functions[trees_.nodes[child_run.node].fkey].display);
  }
  return chain_end;
}

// Times, counts, state and code.* of the derived span of run `top` (§2.5, §2.6).
inline void gap_filler::fill_run_span(std::uint32_t gap, const scratch::run_record& top, std::uint32_t chain_end,
                                      const scratch::run_window& window, std::uint32_t max_repeat,
                                      derived_span& span) {
  using namespace scratch;
  const gap_summary& gap_info = out_->gaps[gap];
  const std::uint32_t ctx_index = span_tree_.spans[gap_info.span_index].ctx;
  const ctx_state& ctx = timeline_.contexts[ctx_index];
  const std::uint32_t count = count_between(top.first_pos, top.last_pos);  // ≥ min_samples: see close_runs
  span.kind = top.self_run ? derived_kind::inferred_self : derived_kind::inferred;
  span.span_id = gap_info.span_id;
  span.gap_index = gap;
  span.ctx_id = ctx.id;
  span.tid = gap_sample(gap, top.first_pos).tid;
  span.begin_ns = window.begin;
  span.end_ns = window.end;
  // Bounds: the truth begin lies after previous_t, the last sample without the function, and the end
  // before next_t. gapfill.md also takes first_t − Δ and last_t + Δ, which hold only for perfectly regular
  // samples: with jitter up to Δ/4 the neighbour can be 1.5Δ away, and a drop, a late ticker or
  // (CPU mode) a blocked thread leaves a longer hole in which the call may have started.
  span.begin_lo_ns = std::min(window.begin, std::max(gap_info.begin_ns, window.previous_t));
  span.end_hi_ns = std::max(window.end, std::min(gap_info.end_ns, window.next_t));
  span.duration_min_ns = window.last_t - window.first_t;
  span.duration_error_ns = ordered_.contexts[ctx_index].interval_ns;
  span.sample_count = count;
  span.sample_weight = weight_between(top.first_pos, top.last_pos);
  span.self_weight = trees_.records[chain_end].self_weight;
  const std::uint32_t blocked = trees_.prefix_blocked[top.last_pos + 1] - trees_.prefix_blocked[top.first_pos];
  span.state = blocked == 0 ? run_state::running : blocked == count ? run_state::blocked : run_state::mixed;
  const std::int64_t suspended_ns = timeline_.suspended_within(ctx, window.begin, window.end);
  if (in_->mode == sample_mode::cpu) {
    span.on_cpu_ns = static_cast<std::int64_t>(span.sample_weight) * nominal_;
    span.off_cpu_ns = std::max<std::int64_t>(0, (window.end - window.begin) - suspended_ns - span.on_cpu_ns);
  }
  span.suspended_ns = suspended_ns;
  span.recursion_depth = max_repeat;
  const function_info& fn = frame_table_.functions[trees_.nodes[top.node].fkey];
  span.code_function = std::string(fn.display);
  span.code_filepath = std::string(fn.file);
  span.code_lineno = hottest_line(top.node, top.self_run);
  span.low_confidence = gap_info.low_confidence;
  for (std::uint32_t pos = top.first_pos; pos <= top.last_pos && !span.low_confidence; ++pos) {
    span.low_confidence = (gap_sample(gap, pos).bits & work_low_confidence) != 0;
  }
  span.merged_over_drop = drops_.any_between(ctx_index, window.first_t, window.last_t);
  if (span.merged_over_drop) ++out_->counts.merged_over_drop;
  span.call_tree_node = top.node;  // internal index until output_trees()
}

// The blocking call most of a run's samples were in (their leaf); ties go to the first seen.
inline std::string_view gap_filler::dominant_blocking_call(std::uint32_t gap, const scratch::run_record& top) const {
  using namespace scratch;
  std::array<std::pair<std::string_view, std::uint32_t>, 8> calls{};
  std::size_t used = 0;
  for (std::uint32_t pos = top.first_pos; pos <= top.last_pos; ++pos) {
    const work_sample& sample = gap_sample(gap, pos);
    if ((sample.bits & work_resolved) == 0) continue;
    const std::string_view name = frame_table_.functions[frame_table_.frames[stack_of(sample)[sample.leaf_skip]].fkey].blocking;
    std::size_t i = 0;
    while (i < used && calls[i].first != name) ++i;
    if (i == used && used < calls.size()) calls[used++] = {name, 0};
    if (i < used) ++calls[i].second;
  }
  std::string_view call;
  std::uint32_t best = 0;
  for (std::size_t i = 0; i < used; ++i) {
    if (calls[i].second > best) {
      best = calls[i].second;
      call = calls[i].first;
    }
  }
  return call;
}

// description and spanprof.stack (§2.6): "F self (file:line)", "blocked: call ← function (site)"
// or "function (site)".
inline void gap_filler::describe_run_span(std::uint32_t gap, const scratch::run_record& top, std::string stack,
                                          derived_span& span) const {
  using namespace scratch;
  const tree_node& node = trees_.nodes[top.node];
  const function_info& fn = frame_table_.functions[node.fkey];
  if (top.self_run) {
    span.stack = std::string(fn.display);
    span.description = std::string(fn.display);
    span.description.append(" self");
    if (!fn.file.empty()) {
      span.description.append(" (").append(names::basename(fn.file)).append(":").append(std::to_string(span.code_lineno)).append(")");
    }
    return;
  }
  span.stack = std::move(stack);
  const std::string site = call_site_text(node.caller_frame);
  if (span.state == run_state::blocked) {
    const std::string_view call = dominant_blocking_call(gap, top);
    span.description = "blocked: ";
    span.description.append(call);
    if (fn.blocking != call) span.description.append(" \xE2\x86\x90 ").append(fn.display);  // " ← "
  } else {
    span.description = std::string(fn.display);
  }
  if (!site.empty()) span.description.append(" (").append(site).append(")");
}

// §2.5: one run → one candidate derived span (with its chain collapsed), then its children.
// Returns the candidate index, or no_index when the run is not a span.
inline std::uint32_t gap_filler::emit_run(std::uint32_t gap, std::uint32_t record, std::uint32_t level, std::uint32_t parent_candidate, std::uint64_t& emitted_weight,
                                      std::int64_t& sibling_end) {
  using namespace scratch;
  if (level > cfg_->max_inferred_depth) return no_index;
  const run_record& top = trees_.records[record];
  run_window window;
  if (!estimate_run_window(gap, top, parent_candidate, sibling_end, window)) return no_index;
  sibling_end = window.end;
  const std::uint32_t count = count_between(top.first_pos, top.last_pos);
  std::uint32_t max_repeat = 1;
  std::string stack;
  const std::uint32_t chain_end = collapse_chain(record, count, max_repeat, stack);

  candidate cand;
  cand.span.depth = level;
  fill_run_span(gap, top, chain_end, window, max_repeat, cand.span);
  describe_run_span(gap, top, std::move(stack), cand.span);
  cand.parent = parent_candidate;
  cand.gap = gap;
  cand.first_pos = top.first_pos;
  cand.last_pos = top.last_pos;
  cand.level = level;
  cand.ordinal_in_gap = static_cast<std::uint32_t>(derived_.candidates.size()) - gap_states_[gap].derived_first;
  const std::uint32_t index = static_cast<std::uint32_t>(derived_.candidates.size());
  derived_.candidates.push_back(std::move(cand));
  emitted_weight += derived_.candidates[index].span.sample_weight;

  std::uint64_t children_weight = 0;
  std::int64_t children_end = minus_infinity;
  const run_record& end_record = trees_.records[chain_end];
  for (std::uint32_t child = 0; child < end_record.child_count; ++child) {
    emit_run(gap, trees_.record_children[end_record.child_first + child], level + 1, index, children_weight, children_end);
  }
  derived_span& done = derived_.candidates[index].span;
  done.unresolved_weight = done.sample_weight - done.self_weight - children_weight;
  return index;
}

// The gap's candidates, from its top-level runs (left in derived_first/count by
// order_run_records()) down.
inline void gap_filler::emit_gap(std::uint32_t gap) {
  using namespace scratch;
  gap_state& state = gap_states_[gap];
  const std::uint32_t top_first = state.derived_first;
  const std::uint32_t top_count = state.derived_count;
  state.derived_first = static_cast<std::uint32_t>(derived_.candidates.size());
  std::uint64_t emitted = 0;
  std::int64_t top_end = minus_infinity;
  for (std::uint32_t top = 0; top < top_count; ++top) {
    emit_run(gap, trees_.record_children[top_first + top], 1, no_index, emitted, top_end);
  }
  state.derived_count = static_cast<std::uint32_t>(derived_.candidates.size()) - state.derived_first;
  trees_.records.resize(trees_.gap_record_first);  // this gap's runs are spent
}

// At most max_inferred_spans per transaction, the longest first (§2.5). A child is never
// longer than its parent and sorts after it on ties, so a kept span's parent is kept too.
// Weight of a dropped span goes to its parent's (or gap's) unresolved weight.
inline void gap_filler::apply_span_cap() {
  using namespace scratch;
  const std::size_t count = derived_.candidates.size();
  if (count <= cfg_->max_inferred_spans) return;
  derived_.order.resize(count);
  for (std::uint32_t i = 0; i < count; ++i) derived_.order[i] = i;
  std::sort(derived_.order.begin(), derived_.order.end(), [&](std::uint32_t a, std::uint32_t b) {
    const std::int64_t duration_a = derived_.candidates[a].span.end_ns - derived_.candidates[a].span.begin_ns;
    const std::int64_t duration_b = derived_.candidates[b].span.end_ns - derived_.candidates[b].span.begin_ns;
    if (duration_a != duration_b) return duration_a > duration_b;
    if (derived_.candidates[a].level != derived_.candidates[b].level) return derived_.candidates[a].level < derived_.candidates[b].level;
    return a < b;
  });
  for (std::size_t rank = cfg_->max_inferred_spans; rank < count; ++rank) derived_.candidates[derived_.order[rank]].kept = false;
  for (std::uint32_t i = 0; i < count; ++i) {
    const candidate& dropped = derived_.candidates[i];
    if (dropped.kept) continue;
    ++out_->counts.inferred_spans_over_cap;
    if (dropped.parent != no_index && derived_.candidates[dropped.parent].kept) {
      derived_.candidates[dropped.parent].span.unresolved_weight += dropped.span.sample_weight;
    }
  }
}

// The kept candidates become derived spans: deterministic ids (a function of the span, the
// gap and the rank in it), parents resolved to output indexes.
inline void gap_filler::publish_candidates() {
  using namespace scratch;
  const std::size_t count = derived_.candidates.size();
  derived_.final_index.assign(count, no_index);
  for (std::uint32_t i = 0; i < count; ++i) {
    candidate& kept = derived_.candidates[i];
    if (!kept.kept) continue;
    const std::uint32_t final_index = static_cast<std::uint32_t>(out_->derived_spans.size());
    derived_.final_index[i] = final_index;
    derived_span published = std::move(kept.span);
    const span_input& span = in_->spans[out_->gaps[kept.gap].span_index];
    std::uint64_t id = scratch::mix64(span.id ^ scratch::mix64((static_cast<std::uint64_t>(out_->gaps[kept.gap].k) << 32) | kept.ordinal_in_gap));
    if (id == 0) id = 1;
    published.id = id;
    if (kept.parent != no_index) {
      published.parent_index = derived_.final_index[kept.parent];
      published.parent_id = out_->derived_spans[published.parent_index].id;
    } else {
      published.parent_id = span.id;
    }
    out_->derived_spans.push_back(std::move(published));
  }
}

// Gap-level accounting over the kept top-level spans: explained and residual time, the
// weight no top-level span holds, the expected sample count.
inline void gap_filler::account_gaps() {
  using namespace scratch;
  for (std::uint32_t gap = 0; gap < out_->gaps.size(); ++gap) {
    gap_summary& gap_info = out_->gaps[gap];
    if (!gap_info.filled) continue;
    const gap_state& state = gap_states_[gap];
    std::uint64_t top_weight = 0;
    std::int64_t explained = 0;
    for (std::uint32_t i = state.derived_first; i < state.derived_first + state.derived_count; ++i) {
      if (derived_.final_index[i] == no_index || derived_.candidates[i].parent != no_index) continue;
      const derived_span& top = out_->derived_spans[derived_.final_index[i]];
      top_weight += top.sample_weight;
      explained += (top.end_ns - top.begin_ns) - top.suspended_ns;
    }
    gap_info.unresolved_weight = gap_info.sample_weight - top_weight;
    const std::int64_t running = gap_info.end_ns - gap_info.begin_ns - gap_info.suspended_ns;
    gap_info.explained_ns = explained;
    gap_info.residual_ns = running - explained;
    const std::int64_t interval_ns = ordered_.contexts[span_tree_.spans[gap_info.span_index].ctx].interval_ns;
    gap_info.expected_samples = interval_ns > 0 ? static_cast<double>(running) / static_cast<double>(interval_ns) : 0.0;
  }
}

inline void gap_filler::finish_candidates() {
  apply_span_cap();
  publish_candidates();
  account_gaps();
}

}  // namespace spanprof::detail::gapfill
