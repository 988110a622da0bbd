// spanprof gapfill, phase 2: the span tree — ends of open spans, owners, covers, which spans
// are filled, call-site matches (gapfill.md §1, §3).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "gap_filler.hpp"
#include "names.hpp"

namespace spanprof::detail::gapfill {

// Span tree: ends of open spans, owners, covers, which spans are filled, call-site matches.
inline void gap_filler::prepare_spans() {
  using namespace scratch;
  const auto spans = in_->spans;
  span_ids_.reset(spans.size());
  spans_.assign(spans.size(), span_state{});
  for (std::uint32_t i = 0; i < spans.size(); ++i) {
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

  for (std::uint32_t i = 0; i < spans.size(); ++i) {
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
  for (std::uint32_t i = 0; i < spans.size(); ++i) {
    std::uint32_t owner = i;
    for (std::size_t steps = 0; owner != no_index && spans_[owner].excluded && steps <= spans.size(); ++steps) {
      owner = spans_[owner].parent;
    }
    spans_[i].owner = owner == no_index || spans_[owner].excluded ? root_ : owner;
  }
  for (std::uint32_t i = 0; i < spans.size(); ++i) {
    span_state& st = spans_[i];
    st.filled = !st.excluded && (i == root_ || st.has_child || cfg_->fill_leaf_spans);
    out_->spans[i].filled = st.filled;
  }

  // Call-site matches: the functions that are F for each span (§2.3 step 3), found through the
  // last component of the name, then checked in full with the file.
  const std::hash<std::string_view> hash;
  for (std::uint32_t i = 0; i < spans.size(); ++i) {
    span_state& st = spans_[i];
    st.match_first = static_cast<std::uint32_t>(span_matches_.size());
    const std::string_view wanted = names::match_name(names::display_name(spans[i].callsite_function));
    if (wanted.empty()) continue;
    const std::uint64_t h = hash(names::last_component(wanted));
    auto it = std::lower_bound(functions_by_last_.begin(), functions_by_last_.end(), std::make_pair(h, std::uint32_t{0}));
    for (; it != functions_by_last_.end() && it->first == h; ++it) {
      const function_info& fn = functions_[it->second];
      if (names::names_match(fn.match, wanted) && names::files_match(spans[i].callsite_file, fn.file)) {
        span_matches_.push_back(it->second);
      }
    }
    st.match_count = static_cast<std::uint32_t>(span_matches_.size()) - st.match_first;
  }
}

}  // namespace spanprof::detail::gapfill
