// spanprof gapfill, phase 2: the span tree — ends of open spans, owners, covers, which spans
// are filled, call-site matches (gapfill.md §1, §3).
//
// Consumes: the input's spans and samples, the config, the frame_table. Produces: a span_tree
// (read by every later phase) and the per-span parts of the result (status, end, filled).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <utility>
#include <vector>

#include "frames.hpp"
#include "id_table.hpp"
#include "input.hpp"
#include "names.hpp"
#include "output.hpp"

namespace spanprof::detail::gapfill {

namespace scratch {

struct span_state {
  std::uint32_t parent = no_index;
  std::uint32_t owner = no_index;  // itself, or the nearest ancestor that is not excluded
  std::uint32_t ctx = 0;           // index in span_tree::context_ids (= context_timeline::contexts)
  std::int64_t begin = 0;
  std::int64_t end = 0;
  bool excluded = false;
  bool nested = false;
  bool filled = false;
  bool has_child = false;
  std::uint32_t match_first = 0;  // fkeys matching its call site, in span_tree::call_site_functions
  std::uint32_t match_count = 0;
};

// Phase 2's output.
struct span_tree {
  std::vector<span_state> spans;  // parallel to transaction_input::spans
  id_table ids;                   // span id → index
  std::vector<std::uint32_t> call_site_functions;
  // The spans' contexts, in order of first appearance: the first contexts of the timeline.
  std::vector<std::uint64_t> context_ids;
  id_table context_index;  // context id → index in context_ids
  std::uint32_t root = no_index;
  std::int64_t txn_begin_ns = 0;
  std::int64_t txn_end_ns = 0;

  // Whether function `fkey` is the function that opened `span` (its call site matches).
  [[nodiscard]] bool opened_by(const span_state& span, std::uint32_t fkey) const noexcept {
    for (std::uint32_t i = 0; i < span.match_count; ++i) {
      if (call_site_functions[span.match_first + i] == fkey) return true;
    }
    return false;
  }
};

// The transaction's end: the root's, or, if the root itself was never closed (the program
// ended inside it), the last thing known to have happened in it.
inline std::int64_t transaction_end(const transaction_input& in, const span_input& root) {
  if (!root.open) return std::max(root.begin_ns, root.end_ns);
  std::int64_t end = root.begin_ns;
  for (const span_input& span : in.spans) {
    if (!span.open) end = std::max(end, span.end_ns);
  }
  for (const sample_input& sample : in.samples) {
    if (sample.txn_id == in.txn_id) end = std::max(end, sample.t_ns);
  }
  return end;
}

// Ends (auto-closing open spans at the transaction's end), statuses and parents.
inline void resolve_span_ends_and_parents(const transaction_input& in, span_tree& tree, filled_transaction& result) {
  const auto spans = in.spans;
  for (std::uint32_t i = 0; i < spans.size(); ++i) {
    const span_input& input = spans[i];
    span_state& state = tree.spans[i];
    span_summary& summary = result.spans[i];
    state.begin = input.begin_ns;
    if (input.open) {
      state.end = i == tree.root ? tree.txn_end_ns : std::max(input.begin_ns, tree.txn_end_ns);
      summary.status = i == tree.root ? std::string_view("aborted") : std::string_view("deadline_exceeded");
      summary.auto_closed_here = true;
      ++result.counts.spans_auto_closed;
    } else {
      state.end = std::max(input.begin_ns, input.end_ns);
      summary.status = input.status;
    }
    summary.end_ns = state.end;
    if (i != tree.root) {
      state.parent = input.parent_id != input.id ? tree.ids.find(input.parent_id) : no_index;
      // A parent we do not have (dropped over max_spans): the span still covers the root's
      // time, or the root would call it unsampled while its samples sit in this span.
      if (state.parent == no_index) state.parent = tree.root;
      state.excluded = input.cross_context || input.nested_transaction_root;
      state.nested = input.nested_transaction_root;
    }
    summary.excluded = state.excluded;
    if (state.parent != no_index) tree.spans[state.parent].has_child = true;
  }
}

// Owner: samples of a cross-context span belong to the nearest ancestor that is filled
// normally (the span is excluded from cover, so its time is that ancestor's gap).
inline void assign_owners(span_tree& tree) {
  const std::size_t count = tree.spans.size();
  for (std::uint32_t i = 0; i < count; ++i) {
    std::uint32_t owner = i;
    for (std::size_t steps = 0; owner != no_index && tree.spans[owner].excluded && steps <= count; ++steps) {
      owner = tree.spans[owner].parent;
    }
    tree.spans[i].owner = owner == no_index || tree.spans[owner].excluded ? tree.root : owner;
  }
}

// Call-site matches: the functions that are F for each span (§2.3 step 3), found through the
// last component of the name, then checked in full with the file.
inline void match_call_sites(std::span<const span_input> spans, const frame_table& frames, span_tree& tree) {
  const std::hash<std::string_view> hash;
  const auto& by_last = frames.functions_by_last_component;
  for (std::uint32_t i = 0; i < spans.size(); ++i) {
    span_state& state = tree.spans[i];
    state.match_first = static_cast<std::uint32_t>(tree.call_site_functions.size());
    const std::string_view wanted = names::match_name(names::display_name(spans[i].callsite_function));
    if (wanted.empty()) continue;
    const std::uint64_t last_hash = hash(names::last_component(wanted));
    auto it = std::lower_bound(by_last.begin(), by_last.end(), std::make_pair(last_hash, std::uint32_t{0}));
    for (; it != by_last.end() && it->first == last_hash; ++it) {
      const function_info& fn = frames.functions[it->second];
      if (names::names_match(fn.match, wanted) && names::files_match(spans[i].callsite_file, fn.file)) {
        tree.call_site_functions.push_back(it->second);
      }
    }
    state.match_count = static_cast<std::uint32_t>(tree.call_site_functions.size()) - state.match_first;
  }
}

}  // namespace scratch

// Span tree: ends of open spans, owners, which spans are filled, call-site matches. Leaves
// tree.root == no_index when the root span is missing (then nothing else is computed).
inline void build_span_tree(const transaction_input& in, const config& cfg, const scratch::frame_table& frames,
                            scratch::span_tree& tree, filled_transaction& result) {
  using namespace scratch;
  const auto spans = in.spans;
  tree.ids.reset(spans.size());
  tree.spans.assign(spans.size(), span_state{});
  tree.call_site_functions.clear();
  for (std::uint32_t i = 0; i < spans.size(); ++i) {
    if (spans[i].id != 0) tree.ids.insert(spans[i].id, i);  // 0 means "no span"
  }
  tree.root = tree.ids.find(in.root_span_id);
  if (tree.root == no_index) return;
  const span_input& root = spans[tree.root];
  tree.txn_begin_ns = root.begin_ns;
  tree.txn_end_ns = transaction_end(in, root);
  result.txn_begin_ns = tree.txn_begin_ns;
  result.txn_end_ns = tree.txn_end_ns;
  resolve_span_ends_and_parents(in, tree, result);
  assign_owners(tree);
  for (std::uint32_t i = 0; i < spans.size(); ++i) {
    span_state& state = tree.spans[i];
    state.filled = !state.excluded && (i == tree.root || state.has_child || cfg.fill_leaf_spans);
    result.spans[i].filled = state.filled;
  }
  match_call_sites(spans, frames, tree);
  tree.context_ids.clear();
  tree.context_index.reset(spans.size() + 1);
  for (std::uint32_t i = 0; i < spans.size(); ++i) {
    std::uint32_t ctx = tree.context_index.find(spans[i].ctx_id);
    if (ctx == no_index) {
      ctx = static_cast<std::uint32_t>(tree.context_ids.size());
      tree.context_index.insert(spans[i].ctx_id, ctx);
      tree.context_ids.push_back(spans[i].ctx_id);
    }
    tree.spans[i].ctx = ctx;
  }
}

}  // namespace spanprof::detail::gapfill
