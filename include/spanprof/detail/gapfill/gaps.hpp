// spanprof gapfill, phase 4: the gaps of every span — its time minus its children's (§1).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <tuple>

#include "gap_filler.hpp"

namespace spanprof::detail::gapfill {

// gaps(S) = [S.begin, S.end] − ∪ children on S's context (§1), for every span that is not
// excluded; a span without children has one `whole` gap (used to place its samples).
inline void gap_filler::compute_gaps() {
  using namespace scratch;
  const auto spans = in_->spans;
  for (std::uint32_t i = 0; i < spans.size(); ++i) {
    const span_state& c = spans_[i];
    // A cross-context span covers nothing; a nested transaction's root covers its parent.
    if (i == root_ || c.parent == no_index || (c.excluded && !c.nested)) continue;
    // Children of a cross-context span cover its nearest non-excluded ancestor, which also
    // holds that span's samples.
    std::uint32_t parent = c.parent;
    if (spans_[parent].excluded) parent = spans_[parent].owner;
    if (spans_[parent].ctx != c.ctx) continue;  // another context never covers this one
    const span_state& p = spans_[parent];
    const std::int64_t b = std::max(c.begin, p.begin);
    const std::int64_t e = std::min(c.end, p.end);
    if (e > b) covers_.emplace_back(parent, b, e);
  }
  std::sort(covers_.begin(), covers_.end());
  std::size_t cover = 0;
  for (std::uint32_t i = 0; i < spans.size(); ++i) {
    span_state& s = spans_[i];
    while (cover < covers_.size() && std::get<0>(covers_[cover]) < i) ++cover;
    const std::size_t cover_first = cover;
    while (cover < covers_.size() && std::get<0>(covers_[cover]) == i) ++cover;
    s.first_gap = static_cast<std::uint32_t>(gap_states_.size());
    out_->spans[i].first_gap = s.first_gap;
    if (s.excluded) continue;
    const bool has_cover = cover > cover_first;
    std::int64_t cursor = s.begin;
    auto add_gap = [&](std::int64_t b, std::int64_t e) {
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
      st.suspended_first = static_cast<std::uint32_t>(gap_suspended_.size());
      const ctx_state& c = ctxs_[s.ctx];
      if (c.suspended_count != 0) {
        const auto sus_first = suspended_.begin() + c.suspended_first;
        const auto sus_last = sus_first + c.suspended_count;
        auto it = std::lower_bound(sus_first, sus_last, b, [](const interval& x, std::int64_t t) { return x.end <= t; });
        for (; it != sus_last && it->begin < e; ++it) {
          const std::int64_t sb = std::max(b, it->begin);
          const std::int64_t se = std::min(e, it->end);
          if (se > sb) {
            gap_suspended_.push_back({sb, se});
            g.suspended_ns += se - sb;
          }
        }
      }
      st.suspended_count = static_cast<std::uint32_t>(gap_suspended_.size()) - st.suspended_first;
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

}  // namespace spanprof::detail::gapfill
