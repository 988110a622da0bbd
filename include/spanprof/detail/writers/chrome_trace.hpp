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

// The members of "stackFrames" (without braces): one node per distinct (parent, frame), ids
// from 1. sample_node[i] is the leaf node of sample i (0: no stack).
inline std::string build_stack_frames(const finished_transaction& txn, std::vector<std::uint32_t>& sample_node,
                                      json_text_stats& stats) {
  std::string out;
  if (txn.analysis == nullptr) return out;
  const transaction_analysis& a = *txn.analysis;
  std::unordered_map<std::uint64_t, std::uint32_t> node_of;  // (parent node << 32 | frame) → node
  std::uint32_t next_node = 1;
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
        if (next_node > 1) out += ',';
        fmt::format_to(std::back_inserter(out), "\"{}\":{{\"category\":", next_node);
        append_json_string(out, f.module != nullptr ? f.module->file_name() : std::string_view("unknown"), stats);
        out += ",\"name\":";
        append_json_string(out, frame_label(f), stats);
        if (parent != 0) fmt::format_to(std::back_inserter(out), ",\"parent\":\"{}\"", parent);
        out += '}';
        ++next_node;
      }
      parent = it->second;
    }
    sample_node[n] = parent;
  }
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

// `"ph":…` through `"ts"` (and `"dur"`) of slice k: an X event, or an instant if it has no length.
inline void append_slice_timing(std::string& out, const slice_layout& layout, std::size_t k, int pid, std::uint32_t tid) {
  fmt::format_to(std::back_inserter(out), ",\"pid\":{},\"tid\":{},\"ts\":", pid, tid);
  append_trace_us(out, layout.begin[k]);
  if (layout.is_instant(k)) {
    out += ",\"s\":\"t\"";
  } else {
    out += ",\"dur\":";
    append_trace_us(out, layout.end[k] - layout.begin[k]);
  }
}

// Gap filling's spans (gapfill.md §4): X events nested under the span whose gap they fill,
// categories spanprof.inferred and spanprof.gap, the §2.6 attributes in args.
inline void append_derived_spans(std::string& out, const finished_transaction& txn, const transaction_analysis& a,
                                 const slice_layout& layout, std::uint32_t track_tid, std::int64_t origin_ns,
                                 json_text_stats& stats) {
  for (std::size_t k = 0; k < a.gaps.derived_spans.size(); ++k) {
    const gapfill::derived_span& d = a.gaps.derived_spans[k];
    const std::size_t slice = txn.span_count() + k;
    out += layout.is_instant(slice) ? ",{\"ph\":\"i\",\"name\":" : ",{\"ph\":\"X\",\"name\":";
    append_json_string(out, d.description, stats);
    out += d.kind == gapfill::derived_kind::gap ? ",\"cat\":\"spanprof.gap\"" : ",\"cat\":\"spanprof.inferred\"";
    append_slice_timing(out, layout, slice, txn.process.pid, slice_layout::derived_track(txn, d, track_tid));
    fmt::format_to(std::back_inserter(out), ",\"args\":{{\"span_id\":\"{}\",\"parent_span_id\":\"{}\",\"op\":\"{}\",",
                   to_hex(d.id).text, to_hex(d.parent_id).text, d.op());
    append_derived_span_attributes(out, d, origin_ns, stats);
    out += "}}";
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

  out += "{\"displayTimeUnit\":\"ms\",\"otherData\":{\"exporter\":\"spanprof ";
  out += spanprof_version;
  out += "\",\"transaction\":";
  append_json_string(out, txn.name(), stats, root.description.original_size);
  fmt::format_to(std::back_inserter(out), ",\"trace_id\":\"{}\",\"event_id\":\"{}\",\"epoch_us\":{}", to_hex(txn.rec.trace).text,
                 to_hex(txn.rec.event_id).text, txn.epoch_ns(origin_ns) / 1000);
  const transaction_counters& c = txn.rec.counters;
  fmt::format_to(std::back_inserter(out),
                 ",\"spans_dropped\":{},\"spans_auto_closed\":{},\"spans_closed_out_of_order\":{},\"data_dropped\":{}}}",
                 c.spans_dropped_over_cap, c.spans_auto_closed, c.spans_closed_out_of_order, c.data_dropped_over_cap);
  out.pop_back();  // reopen otherData for the sampler's figures
  fmt::format_to(std::back_inserter(out),
                 ",\"samples\":{},\"samples_dropped\":{},\"samples_over_cap\":{},\"samples_truncated\":{},"
                 "\"sampling_mode\":\"{}\",\"sample_rate_hz\":{}}}",
                 txn.sampled.samples.size(), txn.sampled.dropped, txn.sampled.over_cap, txn.sampled.truncated,
                 txn.cfg.mode == sampling_mode::cpu ? "cpu" : "wall", txn.cfg.sample_rate_hz);

  out += ",\"traceEvents\":[";
  fmt::format_to(std::back_inserter(out), "{{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":{},\"tid\":{},\"args\":{{\"name\":", pid, pid);
  append_json_string(out, txn.process.name, stats);
  out += "}}";
  fmt::format_to(std::back_inserter(out), ",{{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":{},\"tid\":{},\"args\":{{\"name\":", pid, tid);
  append_json_string(out, track.label, stats);
  out += "}}";

  const auto data = data_by_span(txn);
  const slice_layout layout = slice_layout::of(txn, txn.analysis, tid);
  for (std::size_t i = 0; i < txn.span_count(); ++i) {
    const span_record& span = txn.span(i);
    const std::string_view op = span.op.view();
    const std::string_view description = i == 0 ? txn.name() : span.description.view();
    out += layout.is_instant(i) ? ",{\"ph\":\"i\",\"name\":" : ",{\"ph\":\"X\",\"name\":";
    // The slice label: the description if there is one (an SQL statement, a route), else the op.
    const bool use_description = !description.empty();
    append_json_string(out, use_description ? description : op, stats,
                       use_description ? span.description.original_size : span.op.original_size);
    out += i == 0 ? ",\"cat\":\"transaction\"" : ",\"cat\":\"span\"";
    append_slice_timing(out, layout, i, pid, tid);
    fmt::format_to(std::back_inserter(out), ",\"args\":{{\"span_id\":\"{}\"", to_hex(span.id).text);
    if (span.parent_id != 0) fmt::format_to(std::back_inserter(out), ",\"parent_span_id\":\"{}\"", to_hex(span.parent_id).text);
    out += ",\"op\":";
    append_json_string(out, op, stats, span.op.original_size);
    if (i != 0) {
      out += ",\"description\":";
      append_json_string(out, description, stats, span.description.original_size);
    }
    fmt::format_to(std::back_inserter(out), ",\"status\":\"{}\"", status_name(span.status.load(std::memory_order_relaxed)));
    const std::uint8_t flags = span.flags.load(std::memory_order_relaxed);
    if ((flags & span_flag_auto_closed) != 0) out += ",\"spanprof.auto_closed\":true";
    if ((flags & span_flag_out_of_order) != 0) out += ",\"spanprof.closed_out_of_order\":true";
    out += ',';
    append_code_location(out, span, stats);
    if (!data[i].empty()) {
      // User data in its own object, so a user key can never collide with ours.
      out += ",\"data\":{";
      for (const data_entry* entry : data[i]) {
        if (entry != data[i].front()) out += ',';
        append_data_member(out, *entry, stats);
      }
      out += '}';
    }
    out += "}}";
  }
  if (txn.analysis != nullptr) append_derived_spans(out, txn, *txn.analysis, layout, tid, origin_ns, stats);
  // Samples as thread-scoped instant events, on the transaction's track (a fiber's samples
  // under its spans, whichever thread ran it: that one is in args.thread_id). With the analysis, each names its stack through
  // "sf", a node of the top-level "stackFrames" tree (root first, shared prefixes written
  // once), which is how the Trace Event Format attaches stacks to events.
  std::vector<std::uint32_t> sample_node;
  std::string stack_frames = build_stack_frames(txn, sample_node, stats);
  for (std::size_t n = 0; n < txn.sampled.samples.size(); ++n) {
    const collected_sample& sample = txn.sampled.samples[n];
    fmt::format_to(std::back_inserter(out), ",{{\"ph\":\"i\",\"name\":\"sample\",\"cat\":\"spanprof.sample\",\"s\":\"t\",\"pid\":{},\"tid\":{},\"ts\":",
                   pid, txn.rec.on_fiber ? tid : sample.tid);
    append_trace_us(out, trace_units_from_ns(txn.ticks.to_ns(sample.t_ticks) - origin_ns));
    if (!sample_node.empty() && sample_node[n] != 0) fmt::format_to(std::back_inserter(out), ",\"sf\":\"{}\"", sample_node[n]);
    fmt::format_to(std::back_inserter(out), ",\"args\":{{\"leaf\":\"{:#x}\",\"depth\":{},\"span_id\":\"{}\",\"weight\":{},\"thread_id\":{}",
                   sample.pcs.empty() ? 0 : sample.pcs.front(), sample.pcs.size(), to_hex(sample.span_id).text, sample.weight,
                   sample.tid);
    if ((sample.flags & sample_flag_truncated) != 0) out += ",\"truncated\":true";
    out += ",\"stack\":[";
    for (std::size_t k = 0; k < sample.pcs.size(); ++k) {
      fmt::format_to(std::back_inserter(out), "{}\"{:#x}\"", k == 0 ? "" : ",", sample.pcs[k]);
    }
    out += "]}}";
  }
  out += ']';
  if (!stack_frames.empty()) {
    out += ",\"stackFrames\":{";
    out += stack_frames;
    out += '}';
  }
  out += "}\n";
  return out;
}

}  // namespace spanprof::detail
