// spanprof gapfill, phase 7: trimming each stack to the span's own function F (gapfill.md §2.3).
//
// Consumes: the input's stacks and anchors, the frame_table, the span_tree, ordered_samples.
// Produces: each work sample's trim columns (leaf_skip, root_pos, resolved/blocked/low-confidence
// bits) and the trimming counters. Runs gap by gap, just before the gap's call tree is built
// (see gapfill.hpp), so a stack is read from memory once.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "frames.hpp"
#include "input.hpp"
#include "output.hpp"
#include "sample_order.hpp"
#include "span_tree.hpp"

namespace spanprof::detail::gapfill {

namespace scratch {

// Longest common root-side prefix of the stacks of a span and its descendants (§2.3 fallback).
struct common_prefix {
  std::uint32_t sample = no_index;  // a work sample holding the prefix
  std::uint32_t length = 0;
  bool distinct = false;  // at least two different stacks
};

// Keeps the common prefixes (computed once per transaction, only if a sample needs them) and
// their scratch between transactions.
class stack_trimmer {
 public:
  // The transaction's inputs; every reference must outlive the trim() calls.
  void bind(const transaction_input& in, const frame_table& frames, const span_tree& tree,
            const std::vector<work_sample>& samples, counters& counts) noexcept {
    in_ = &in;
    frames_ = &frames;
    tree_ = &tree;
    samples_ = &samples;
    counts_ = &counts;
    prefixes_ready_ = false;
  }
  void trim(work_sample& sample);

 private:
  [[nodiscard]] std::span<const std::uint32_t> stack_of(const work_sample& sample) const noexcept {
    return in_->samples[sample.input].stack;
  }
  [[nodiscard]] bool frames_valid(std::span<const std::uint32_t> stack) const noexcept;
  [[nodiscard]] std::size_t root_from_anchor(const work_sample& sample, std::span<const std::uint32_t> stack) const noexcept;
  [[nodiscard]] std::size_t root_from_call_site(const span_state& span, std::span<const std::uint32_t> stack,
                                                std::size_t leaf) const noexcept;
  void compute_common_prefixes();

  const transaction_input* in_ = nullptr;
  const frame_table* frames_ = nullptr;
  const span_tree* tree_ = nullptr;
  const std::vector<work_sample>* samples_ = nullptr;
  counters* counts_ = nullptr;
  bool prefixes_ready_ = false;
  std::vector<common_prefix> prefixes_;  // parallel to span_tree::spans
  std::vector<std::uint32_t> span_depths_;
};

// A frame index past the table would be the caller's bug: the sample stays unresolved rather
// than be read out of bounds. (A max-reduction: vectorized, and it brings the stack into the
// cache for the walk that follows.)
inline bool stack_trimmer::frames_valid(std::span<const std::uint32_t> stack) const noexcept {
  const std::size_t n = stack.size();
  std::array<std::uint32_t, 4> largest{};  // four chains: the loop is not bound by one max's latency
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (std::size_t lane = 0; lane < 4; ++lane) largest[lane] = std::max(largest[lane], stack[i + lane]);
  }
  for (; i < n; ++i) largest[0] = std::max(largest[0], stack[i]);
  return n != 0 && std::max(std::max(largest[0], largest[1]), std::max(largest[2], largest[3])) < frames_->frames.size();
}

// F at the anchor frame the handler found: physical frame anchor_idx, within its inline chain
// the outermost entry that is F (entries outside F: F inlined into its caller). stack.size()
// if not found.
inline std::size_t stack_trimmer::root_from_anchor(const work_sample& sample, std::span<const std::uint32_t> stack) const noexcept {
  const frame_info* info = frames_->frames.data();
  const std::size_t n = stack.size();
  const std::size_t anchor = in_->samples[sample.input].anchor_idx;
  std::size_t root = n;
  // Physical frame anchor_idx spans the entries [chain_first, root]: its inline chain.
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
  if (root == n) return n;
  const span_state& span = tree_->spans[sample.span];
  for (std::size_t e = root + 1; e-- > chain_first;) {
    if (tree_->opened_by(span, info[stack[e]].fkey)) return e;
  }
  return root;
}

// The outermost frame above `leaf` whose function matches the span's call site; stack.size()
// if none.
inline std::size_t stack_trimmer::root_from_call_site(const span_state& span, std::span<const std::uint32_t> stack,
                                                      std::size_t leaf) const noexcept {
  const frame_info* info = frames_->frames.data();
  for (std::size_t e = stack.size(); e-- > leaf;) {
    if (tree_->opened_by(span, info[stack[e]].fkey)) return e;
  }
  return stack.size();
}

// §2.3: drop spanprof's and signal delivery's frames at the leaf, then cut the stack at F —
// exactly at the anchor frame when the handler found it, else at the outermost frame matching
// the span's call site, else at the common prefix of the span's samples.
inline void stack_trimmer::trim(work_sample& sample) {
  const std::span<const std::uint32_t> stack = stack_of(sample);
  const std::size_t n = stack.size();
  if (!frames_valid(stack)) {
    ++counts_->unresolved_samples;
    return;
  }
  const frame_info* info = frames_->frames.data();
  std::size_t leaf = 0;
  while (leaf < n && (info[stack[leaf]].bits & frame_internal) != 0) ++leaf;
  if (leaf != 0) ++counts_->self_frames_stripped;
  sample.leaf_skip = static_cast<std::uint16_t>(leaf);
  if (leaf >= n) {  // nothing but spanprof's own frames
    ++counts_->unresolved_samples;
    return;
  }
  if ((info[stack[leaf]].bits & frame_blocking) != 0) sample.bits |= work_blocked;
  std::size_t root = n;  // n: not found
  if ((sample.bits & work_anchor_usable) != 0) root = root_from_anchor(sample, stack);
  if (root == n) root = root_from_call_site(tree_->spans[sample.span], stack, leaf);
  if (root == n && (sample.bits & work_truncated) == 0) {
    if (!prefixes_ready_) compute_common_prefixes();
    const common_prefix& prefix = prefixes_[sample.span];
    if (prefix.sample == no_index || !prefix.distinct || prefix.length == 0 || prefix.length > n) {
      root = n - 1;  // untrimmed
      sample.bits |= work_low_confidence;
      ++counts_->low_confidence_trims;
    } else {
      root = n - prefix.length;
    }
  }
  // A truncated stack without F lost its root side: no prefix can be aligned with it.
  if (root == n || root < leaf) {
    ++counts_->unresolved_samples;
    return;
  }
  sample.root_pos = static_cast<std::uint16_t>(root);
  sample.bits |= work_resolved;
}

// §2.3 step 3, second fallback: the longest common prefix (root side) of the stacks taken
// while S or a descendant was active; they diverge just below F, where the child spans open.
// Computed for every span the first time a sample needs it (rare: the call site usually
// finds F).
inline void stack_trimmer::compute_common_prefixes() {
  prefixes_ready_ = true;
  const std::size_t frame_count = frames_->frames.size();
  auto valid = [&](const work_sample& sample) {
    for (const std::uint32_t f : stack_of(sample)) {
      if (f >= frame_count) return false;
    }
    return !stack_of(sample).empty();
  };
  auto fkey_from_root = [&](const work_sample& sample, std::size_t offset) {
    const std::span<const std::uint32_t> stack = stack_of(sample);
    return frames_->frames[stack[stack.size() - 1 - offset]].fkey;
  };
  // Merges the prefix (sample, length, distinct) into `into`.
  auto merge = [&](common_prefix& into, std::uint32_t sample, std::uint32_t length, bool distinct) {
    if (sample == no_index) return;
    if (into.sample == no_index) {
      into = common_prefix{sample, length, distinct};
      return;
    }
    const work_sample& held = (*samples_)[into.sample];
    const work_sample& other = (*samples_)[sample];
    const std::uint32_t limit = std::min(into.length, length);
    std::uint32_t shared = 0;
    while (shared < limit && fkey_from_root(held, shared) == fkey_from_root(other, shared)) ++shared;
    const bool same_stack = shared == into.length && shared == length && stack_of(held).size() == into.length &&
                            stack_of(other).size() == length;
    into.distinct = into.distinct || distinct || !same_stack;
    into.length = shared;
  };
  const std::vector<span_state>& spans = tree_->spans;
  prefixes_.assign(spans.size(), common_prefix{});
  for (std::uint32_t i = 0; i < samples_->size(); ++i) {
    const work_sample& sample = (*samples_)[i];
    if ((sample.bits & work_placed) == 0 || (sample.bits & work_truncated) != 0 || !valid(sample)) continue;
    merge(prefixes_[sample.span], i, static_cast<std::uint32_t>(stack_of(sample).size()), false);
  }
  // Children into parents, deepest first.
  std::vector<std::uint32_t>& depth = span_depths_;
  depth.assign(spans.size(), 0);
  std::uint32_t max_depth = 0;
  for (std::uint32_t i = 0; i < spans.size(); ++i) {
    std::uint32_t levels = 0;
    for (std::uint32_t p = spans[i].parent; p != no_index && levels <= spans.size(); p = spans[p].parent) ++levels;
    depth[i] = levels;
    max_depth = std::max(max_depth, levels);
  }
  for (std::uint32_t level = max_depth; level > 0; --level) {
    for (std::uint32_t i = 0; i < spans.size(); ++i) {
      if (depth[i] != level || spans[i].parent == no_index) continue;
      if (spans[spans[i].parent].ctx != spans[i].ctx) continue;
      const common_prefix child = prefixes_[i];
      merge(prefixes_[spans[i].parent], child.sample, child.length, child.distinct);
    }
  }
}

}  // namespace scratch

}  // namespace spanprof::detail::gapfill
