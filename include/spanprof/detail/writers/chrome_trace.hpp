// spanprof: Chrome Trace Event Format (JSON object form), opened by Perfetto and chrome://tracing.
//
// Every span is an `X` (complete) event on its thread's track: no B/E pairing to get wrong, and
// spans of one context nest by construction. `ts` is microseconds since the transaction began
// (JavaScript viewers hold ts as a double: epoch microseconds would lose sub-µs precision); the
// epoch of that origin is in `otherData`. See ../shared/docs/formats.md §2.
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once

#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "../core/text.hpp"
#include "finished_transaction.hpp"
#include "timestamps.hpp"
#include "nesting.hpp"
#include "span_attributes.hpp"
#include "json.hpp"

namespace spanprof::detail {

// "function file:line" for a frame node: what the viewer lists for each level of a stack.
inline std::string frame_label(const profile_frame& f) {
  std::string label = f.function;
  if (!f.file.empty()) {
    const std::size_t slash = f.file.rfind('/');
    fmt::format_to(std::back_inserter(label), " {}:{}", slash == std::string::npos ? f.file : f.file.substr(slash + 1), f.line);
  }
  if (f.inlined) label += " [inlined]";
  return label;
}

// The "stackFrames" object: one node per distinct (parent, frame), ids from 1; "" when no
// sample has a stack. sample_node[i] is the leaf node of sample i (0: no stack).
inline std::string build_stack_frames(const finished_transaction& txn, std::vector<std::uint32_t>& sample_node,
                                      json_text_stats& stats) {
  std::string out;
  if (txn.analysis == nullptr) return out;
  const transaction_analysis& a = *txn.analysis;
  std::unordered_map<std::uint64_t, std::uint32_t> node_of;  // (parent node << 32 | frame) → node
  std::uint32_t next_node = 1;
  json_writer w(out, stats);
  w.begin_object();
  sample_node.assign(txn.sampled.samples.size(), 0);
  for (std::size_t n = 0; n < txn.sampled.samples.size(); ++n) {
    const auto stack = a.stack_of(n);
    std::uint32_t parent = 0;
    for (std::size_t k = stack.size(); k-- > 0;) {  // root first
      const std::uint32_t frame = stack[k];
      const std::uint64_t key = (std::uint64_t{parent} << 32) | frame;
      auto [it, inserted] = node_of.try_emplace(key, next_node);
      if (inserted) {
        const profile_frame& f = a.frames[frame];
        const fmt::format_int node(next_node);
        w.key_text(std::string_view(node.data(), node.size())).begin_object();
        w.key("category").string(f.module != nullptr ? f.module->file_name() : std::string_view("unknown"));
        w.key("name").string(frame_label(f));
        if (parent != 0) w.key("parent").decimal_string(parent);
        w.end_object();
        ++next_node;
      }
      parent = it->second;
    }
    sample_node[n] = parent;
  }
  w.end_object();
  if (next_node == 1) out.clear();
  return out;
}

// Where each span and derived span is drawn, in trace units (common.hpp, 1/1024 µs) since the
// origin. JavaScript viewers turn X events into begin/end pairs and need them strictly nested:
// a span that ends where its child ends (a chain auto-closed at once), or begins where a sibling
// ends (a derived span at its gap's edge), would have equal times whose order they guess. So the
// intervals of each track are nested first (nest_intervals: an overlap is clamped into the
// interval it starts in), and each edge then moves `depth` units inward — a child always starts
// after and ends before its parent, siblings never touch, by a few ns, far below any estimate's
// error. A slice left without length is written as an instant event at its begin.
struct slice_layout {
  std::vector<std::int64_t> begin;  // per slice: instrumented spans, then derived spans
  std::vector<std::int64_t> end;

  [[nodiscard]] bool is_instant(std::size_t k) const noexcept { return end[k] <= begin[k]; }

  static slice_layout of(const finished_transaction& txn, const transaction_analysis* a, std::uint32_t track_tid) {
    const std::size_t span_count = txn.span_count();
    const std::size_t derived_count = a != nullptr ? a->gaps.derived_spans.size() : 0;
    const std::int64_t origin_ns = txn.begin_ns(0);
    std::map<std::uint32_t, std::vector<timed_interval>> by_track;
    for (std::size_t i = 0; i < span_count; ++i) {
      by_track[track_tid].push_back({txn.begin_ns(i) - origin_ns, txn.end_ns(i) - origin_ns, static_cast<std::uint32_t>(i),
                                     static_cast<std::uint32_t>(i)});
    }
    for (std::size_t k = 0; k < derived_count; ++k) {
      const gapfill::derived_span& d = a->gaps.derived_spans[k];
      const auto slice = static_cast<std::uint32_t>(span_count + k);  // derived spans come parents first
      by_track[derived_track(txn, d, track_tid)].push_back({d.begin_ns - origin_ns, d.end_ns - origin_ns, slice, slice});
    }
    slice_layout layout;
    layout.begin.assign(span_count + derived_count, 0);
    layout.end.assign(span_count + derived_count, 0);
    for (auto& [tid, intervals] : by_track) {
      std::uint64_t clamped = 0;
      std::int64_t depth = 0;
      for (const evented_event& e : nest_intervals(std::move(intervals), clamped)) {
        if (e.open) {
          layout.begin[e.frame] = trace_units_from_ns(e.at_ns) + depth;
          ++depth;
        } else {
          --depth;
          layout.end[e.frame] = trace_units_from_ns(e.at_ns) - depth;
        }
      }
    }
    return layout;
  }

  // A fiber's transaction draws everything on the fiber's track; a thread's draws a derived
  // span on the thread whose samples made it.
  static std::uint32_t derived_track(const finished_transaction& txn, const gapfill::derived_span& d, std::uint32_t track_tid) {
    return txn.rec.on_fiber || d.tid == 0 ? track_tid : d.tid;
  }
};

// "pid" through "ts" (and "dur") of slice k: an X event, or an instant if it has no length.
inline void write_slice_timing(json_writer& w, const slice_layout& layout, std::size_t k, int pid, std::uint32_t tid) {
  w.key("pid").number(pid);
  w.key("tid").number(tid);
  w.key("ts").value_with([&](std::string& out) { append_trace_us(out, layout.begin[k]); });
  if (layout.is_instant(k)) {
    w.key("s").plain_string("t");
  } else {
    w.key("dur").value_with([&](std::string& out) { append_trace_us(out, layout.end[k] - layout.begin[k]); });
  }
}

// Gap filling's spans (gapfill.md §4): X events nested under the span whose gap they fill,
// categories spanprof.inferred and spanprof.gap, the §2.6 attributes in args.
inline void write_derived_spans(json_writer& w, const finished_transaction& txn, const transaction_analysis& a,
                                const slice_layout& layout, std::uint32_t track_tid, std::int64_t origin_ns) {
  for (std::size_t k = 0; k < a.gaps.derived_spans.size(); ++k) {
    const gapfill::derived_span& d = a.gaps.derived_spans[k];
    const std::size_t slice = txn.span_count() + k;
    w.begin_object();
    w.key("ph").plain_string(layout.is_instant(slice) ? "i" : "X");
    w.key("name").string(d.description);
    w.key("cat").plain_string(d.kind == gapfill::derived_kind::gap ? "spanprof.gap" : "spanprof.inferred");
    write_slice_timing(w, layout, slice, txn.process.pid, slice_layout::derived_track(txn, d, track_tid));
    w.key("args").begin_object();
    w.key("span_id").plain_string(to_hex(d.id).text);
    w.key("parent_span_id").plain_string(to_hex(d.parent_id).text);
    w.key("op").plain_string(d.op());
    write_derived_span_attributes(w, d, origin_ns);
    w.end_object();
    w.end_object();
  }
}

inline std::string write_chrome_trace(const finished_transaction& txn, json_text_stats& stats) {
  std::string out;
  out.reserve(512 + txn.span_count() * 320);
  const span_record& root = txn.span(0);
  const std::int64_t origin_ns = txn.begin_ns(0);
  const auto pid = txn.process.pid;
  const transaction_track track = transaction_track::of(txn.rec);
  const auto tid = track.tid;

  json_writer w(out, stats);
  w.begin_object();
  w.key("displayTimeUnit").plain_string("ms");
  w.key("otherData").begin_object();
  w.key("exporter").value_with([](std::string& o) {
    o += "\"spanprof ";
    o += spanprof_version;
    o += '"';
  });
  w.key("transaction").string(txn.name(), root.description.original_size);
  w.key("trace_id").plain_string(to_hex(txn.rec.trace).text);
  w.key("event_id").plain_string(to_hex(txn.rec.event_id).text);
  w.key("epoch_us").number(txn.epoch_ns(origin_ns) / 1000);
  const transaction_counters& c = txn.rec.counters;
  w.key("spans_dropped").number(c.spans_dropped_over_cap);
  w.key("spans_auto_closed").number(c.spans_auto_closed);
  w.key("spans_closed_out_of_order").number(c.spans_closed_out_of_order);
  w.key("data_dropped").number(c.data_dropped_over_cap);
  w.key("samples").number(txn.sampled.samples.size());
  w.key("samples_dropped").number(txn.sampled.dropped);
  w.key("samples_over_cap").number(txn.sampled.over_cap);
  w.key("samples_truncated").number(txn.sampled.truncated);
  w.key("sampling_mode").plain_string(txn.cfg.mode == sampling_mode::cpu ? "cpu" : "wall");
  w.key("sample_rate_hz").number(txn.cfg.sample_rate_hz);
  w.end_object();

  w.key("traceEvents").begin_array();
  w.begin_object().key("ph").plain_string("M").key("name").plain_string("process_name");
  w.key("pid").number(pid).key("tid").number(pid);
  w.key("args").begin_object().key("name").string(txn.process.name).end_object();
  w.end_object();
  w.begin_object().key("ph").plain_string("M").key("name").plain_string("thread_name");
  w.key("pid").number(pid).key("tid").number(tid);
  w.key("args").begin_object().key("name").string(track.label).end_object();
  w.end_object();

  const auto data = data_by_span(txn);
  const slice_layout layout = slice_layout::of(txn, txn.analysis, tid);
  for (std::size_t i = 0; i < txn.span_count(); ++i) {
    const span_record& span = txn.span(i);
    const std::string_view op = span.op.view();
    const std::string_view description = i == 0 ? txn.name() : span.description.view();
    w.begin_object();
    w.key("ph").plain_string(layout.is_instant(i) ? "i" : "X");
    // The slice label: the description if there is one (an SQL statement, a route), else the op.
    const bool use_description = !description.empty();
    w.key("name").string(use_description ? description : op,
                         use_description ? span.description.original_size : span.op.original_size);
    w.key("cat").plain_string(i == 0 ? "transaction" : "span");
    write_slice_timing(w, layout, i, pid, tid);
    w.key("args").begin_object();
    w.key("span_id").plain_string(to_hex(span.id).text);
    if (span.parent_id != 0) w.key("parent_span_id").plain_string(to_hex(span.parent_id).text);
    w.key("op").string(op, span.op.original_size);
    if (i != 0) w.key("description").string(description, span.description.original_size);
    w.key("status").plain_string(status_name(span.status.load(std::memory_order_relaxed)));
    const std::uint8_t flags = span.flags.load(std::memory_order_relaxed);
    if ((flags & span_flag_auto_closed) != 0) w.key("spanprof.auto_closed").boolean(true);
    if ((flags & span_flag_out_of_order) != 0) w.key("spanprof.closed_out_of_order").boolean(true);
    write_code_location(w, span);
    if (!data[i].empty()) {
      // User data in its own object, so a user key can never collide with ours.
      w.key("data").begin_object();
      for (const data_entry* entry : data[i]) write_data_member(w, *entry);
      w.end_object();
    }
    w.end_object();
    w.end_object();
  }
  if (txn.analysis != nullptr) write_derived_spans(w, txn, *txn.analysis, layout, tid, origin_ns);
  // Samples as thread-scoped instant events, on the transaction's track (a fiber's samples
  // under its spans, whichever thread ran it: that one is in args.thread_id). With the analysis, each names its stack through
  // "sf", a node of the top-level "stackFrames" tree (root first, shared prefixes written
  // once), which is how the Trace Event Format attaches stacks to events.
  std::vector<std::uint32_t> sample_node;
  const std::string stack_frames = build_stack_frames(txn, sample_node, stats);
  for (std::size_t n = 0; n < txn.sampled.samples.size(); ++n) {
    const collected_sample& sample = txn.sampled.samples[n];
    w.begin_object();
    w.key("ph").plain_string("i");
    w.key("name").plain_string("sample");
    w.key("cat").plain_string("spanprof.sample");
    w.key("s").plain_string("t");
    w.key("pid").number(pid);
    w.key("tid").number(txn.rec.on_fiber ? tid : sample.tid);
    w.key("ts").value_with([&](std::string& o) { append_trace_us(o, trace_units_from_ns(txn.ticks.to_ns(sample.t_ticks) - origin_ns)); });
    if (!sample_node.empty() && sample_node[n] != 0) w.key("sf").decimal_string(sample_node[n]);
    w.key("args").begin_object();
    w.key("leaf").address(sample.pcs.empty() ? 0 : sample.pcs.front());
    w.key("depth").number(sample.pcs.size());
    w.key("span_id").plain_string(to_hex(sample.span_id).text);
    w.key("weight").number(sample.weight);
    w.key("thread_id").number(sample.tid);
    if ((sample.flags & sample_flag_truncated) != 0) w.key("truncated").boolean(true);
    w.key("stack").begin_array();
    for (const std::uintptr_t pc : sample.pcs) w.address(pc);
    w.end_array();
    w.end_object();
    w.end_object();
  }
  w.end_array();
  if (!stack_frames.empty()) w.key("stackFrames").raw(stack_frames);
  w.end_object();
  out += '\n';
  return out;
}

}  // namespace spanprof::detail
