// spanprof gapfill, phase 7: trimming each stack to the span's own function F (gapfill.md §2.3).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "gap_filler.hpp"

namespace spanprof::detail::gapfill {

// §2.3: drop spanprof's and signal delivery's frames at the leaf, then cut the stack at F —
// exactly at the anchor frame when the handler found it, else at the outermost frame matching
// the span's call site, else at the common prefix of the span's samples.
inline void gap_filler::trim_sample(scratch::work_sample& w) {
  using namespace scratch;
  const std::span<const std::uint32_t> stack = stack_of(w);
  const std::size_t n = stack.size();
  // A frame index past the table would be the caller's bug: the sample stays unresolved rather
  // than be read out of bounds. (A max-reduction: vectorized, and it brings the stack into the
  // cache for the walk that follows.)
  std::array<std::uint32_t, 4> largest{};  // four chains: the loop is not bound by one max's latency
  std::size_t k = 0;
  for (; k + 4 <= n; k += 4) {
    for (std::size_t lane = 0; lane < 4; ++lane) largest[lane] = std::max(largest[lane], stack[k + lane]);
  }
  for (; k < n; ++k) largest[0] = std::max(largest[0], stack[k]);
  if (n == 0 || std::max(std::max(largest[0], largest[1]), std::max(largest[2], largest[3])) >= frame_table_.frames.size()) {
    ++out_->counts.unresolved_samples;
    return;
  }
  const frame_info* info = frame_table_.frames.data();
  std::size_t leaf = 0;
  while (leaf < n && (info[stack[leaf]].bits & frame_internal) != 0) ++leaf;
  if (leaf != 0) ++out_->counts.self_frames_stripped;
  w.leaf_skip = static_cast<std::uint16_t>(leaf);
  if (leaf >= n) {  // nothing but spanprof's own frames
    ++out_->counts.unresolved_samples;
    return;
  }
  if ((info[stack[leaf]].bits & frame_blocking) != 0) w.bits |= work_blocked;
  const span_state& s = span_tree_.spans[w.span];
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
        if (span_tree_.opened_by(s, info[stack[e]].fkey)) {
          root = e;
          break;
        }
      }
    }
  }
  if (root == n) {
    for (std::size_t e = n; e-- > leaf;) {
      if (span_tree_.opened_by(s, info[stack[e]].fkey)) {
        root = e;
        break;
      }
    }
  }
  if (root == n && (w.bits & work_truncated) == 0) {
    if (!prefixes_ready_) compute_common_prefixes();
    const common_prefix& prefix = prefixes_[w.span];
    if (prefix.sample == no_index || !prefix.distinct || prefix.length == 0 || prefix.length > n) {
      root = n - 1;  // untrimmed
      w.bits |= work_low_confidence;
      ++out_->counts.low_confidence_trims;
    } else {
      root = n - prefix.length;
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
inline void gap_filler::compute_common_prefixes() {
  using namespace scratch;
  prefixes_ready_ = true;
  const std::size_t frame_count = frame_table_.frames.size();
  auto valid = [&](const work_sample& w) {
    for (const std::uint32_t f : stack_of(w)) {
      if (f >= frame_count) return false;
    }
    return !stack_of(w).empty();
  };
  auto fkey_from_root = [&](const work_sample& w, std::size_t k) {
    const std::span<const std::uint32_t> st = stack_of(w);
    return frame_table_.frames[st[st.size() - 1 - k]].fkey;
  };
  // Merges sample/prefix (b_sample, b_len) into span s's prefix.
  auto merge = [&](common_prefix& s, std::uint32_t b_sample, std::uint32_t b_len, bool b_distinct) {
    if (b_sample == no_index) return;
    if (s.sample == no_index) {
      s.sample = b_sample;
      s.length = b_len;
      s.distinct = b_distinct;
      return;
    }
    const work_sample& a = work_[s.sample];
    const work_sample& b = work_[b_sample];
    const std::uint32_t limit = std::min(s.length, b_len);
    std::uint32_t k = 0;
    while (k < limit && fkey_from_root(a, k) == fkey_from_root(b, k)) ++k;
    const bool same_stack = k == s.length && k == b_len && stack_of(a).size() == s.length &&
                            stack_of(b).size() == b_len;
    s.distinct = s.distinct || b_distinct || !same_stack;
    s.length = k;
  };
  const std::vector<span_state>& spans = span_tree_.spans;
  prefixes_.assign(spans.size(), common_prefix{});
  for (std::uint32_t i = 0; i < work_.size(); ++i) {
    const work_sample& w = work_[i];
    if ((w.bits & work_placed) == 0 || (w.bits & work_truncated) != 0 || !valid(w)) continue;
    merge(prefixes_[w.span], i, static_cast<std::uint32_t>(stack_of(w).size()), false);
  }
  // Children into parents, deepest first.
  std::vector<std::uint32_t> depth(spans.size(), 0);
  std::uint32_t max_depth = 0;
  for (std::uint32_t i = 0; i < spans.size(); ++i) {
    std::uint32_t d = 0;
    for (std::uint32_t p = spans[i].parent; p != no_index && d <= spans.size(); p = spans[p].parent) ++d;
    depth[i] = d;
    max_depth = std::max(max_depth, d);
  }
  for (std::uint32_t d = max_depth; d > 0; --d) {
    for (std::uint32_t i = 0; i < spans.size(); ++i) {
      if (depth[i] != d || spans[i].parent == no_index) continue;
      if (spans[spans[i].parent].ctx != spans[i].ctx) continue;
      const common_prefix child = prefixes_[i];
      merge(prefixes_[spans[i].parent], child.sample, child.length, child.distinct);
    }
  }
}

}  // namespace spanprof::detail::gapfill
