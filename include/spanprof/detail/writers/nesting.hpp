// spanprof: intervals turned into properly nested open/close events, for the timeline
// formats (speedscope's evented profiles, the Chrome trace's slices).
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>


namespace spanprof::detail {

// Nesting for the timeline formats (speedscope's evented profiles, the Chrome trace's slices).
//
// One interval to show as an O/C pair. `order` breaks ties between intervals with the same
// edges: the lower one is the outer one (callers pass parents before children).
struct timed_interval {
  std::int64_t begin_ns = 0;
  std::int64_t end_ns = 0;
  std::uint32_t frame = 0;
  std::uint32_t order = 0;
};

struct evented_event {
  bool open = true;
  std::uint32_t frame = 0;
  std::int64_t at_ns = 0;
};

// Events that speedscope accepts whatever the intervals are: `at` never decreases, every C
// closes the frame on top, nothing is left open. Intervals that overlap without nesting (a
// derived span sharing an edge with a sibling, a clock step) are clamped to end with the
// interval they start in; `clamped` counts them. An interval that starts exactly where the
// open one ends becomes its sibling, not its child.
inline std::vector<evented_event> nest_intervals(std::vector<timed_interval> intervals, std::uint64_t& clamped) {
  for (timed_interval& iv : intervals) iv.end_ns = std::max(iv.end_ns, iv.begin_ns);
  std::sort(intervals.begin(), intervals.end(), [](const timed_interval& a, const timed_interval& b) {
    if (a.begin_ns != b.begin_ns) return a.begin_ns < b.begin_ns;
    if (a.end_ns != b.end_ns) return a.end_ns > b.end_ns;  // the longer one contains the other
    return a.order < b.order;
  });
  std::vector<evented_event> events;
  events.reserve(intervals.size() * 2);
  std::vector<timed_interval> open;
  for (timed_interval iv : intervals) {
    // Close what ended before this begins. `<=` for intervals of nonzero length only: a
    // zero-length child at its parent's very end still belongs inside it.
    while (!open.empty() && (open.back().end_ns < iv.begin_ns ||
                             (open.back().end_ns == iv.begin_ns && open.back().begin_ns < open.back().end_ns &&
                              iv.end_ns > iv.begin_ns))) {
      events.push_back({false, open.back().frame, open.back().end_ns});
      open.pop_back();
    }
    if (!open.empty() && iv.end_ns > open.back().end_ns) {
      iv.end_ns = open.back().end_ns;
      ++clamped;
    }
    events.push_back({true, iv.frame, iv.begin_ns});
    open.push_back(iv);
  }
  while (!open.empty()) {
    events.push_back({false, open.back().frame, open.back().end_ns});
    open.pop_back();
  }
  return events;
}

}  // namespace spanprof::detail
