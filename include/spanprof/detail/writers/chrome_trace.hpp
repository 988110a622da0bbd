// spanprof: Chrome Trace Event Format (JSON object form), opened by Perfetto and chrome://tracing.
//
// Every span is an `X` (complete) event on its thread's track: no B/E pairing to get wrong, and
// spans of one context nest by construction. `ts` is microseconds since the transaction began
// (JavaScript viewers hold ts as a double: epoch microseconds would lose sub-µs precision); the
// epoch of that origin is in `otherData`. See ../shared/docs/formats.md §2.
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "../analysis.hpp"
#include "common.hpp"

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

// Gap filling's spans (gapfill.md §4): X events nested under the span whose gap they fill,
// categories spanprof.inferred and spanprof.gap, the §2.6 attributes in args.
inline void append_derived_spans(std::string& out, const finished_transaction& txn, const transaction_analysis& a,
                                 std::uint32_t track_tid, std::int64_t origin_ns, json_text_stats& stats) {
  for (const gapfill::derived_span& d : a.gaps.derived_spans) {
    out += ",{\"ph\":\"X\",\"name\":";
    append_json_string(out, d.description, stats);
    out += d.kind == gapfill::derived_kind::gap ? ",\"cat\":\"spanprof.gap\"" : ",\"cat\":\"spanprof.inferred\"";
    // On the fiber's track for a fiber's transaction, else on the thread whose samples made it.
    fmt::format_to(std::back_inserter(out), ",\"pid\":{},\"tid\":{},\"ts\":", txn.process.pid,
                   txn.rec.on_fiber || d.tid == 0 ? track_tid : d.tid);
    // A derived span often starts exactly where a sibling span ends (its gap's edge). Viewers
    // that turn X events into begin/end pairs (speedscope) may then order the begin before the
    // sibling's end and see overlapping slices: `depth` ns inward on each side (a nested
    // derived span may share its parent's edges), far below the estimate's ± Δ, keeps them
    // strictly nested.
    const std::int64_t depth_ns = d.depth;
    const std::int64_t inset_ns = d.end_ns - d.begin_ns > 2 * depth_ns ? depth_ns : 0;
    append_us_from_ns(out, d.begin_ns + inset_ns - origin_ns);
    out += ",\"dur\":";
    append_us_from_ns(out, d.end_ns - d.begin_ns - 2 * inset_ns);
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
  for (std::size_t i = 0; i < txn.span_count(); ++i) {
    const span_record& span = txn.span(i);
    const std::string_view op = span.op.view();
    const std::string_view description = i == 0 ? txn.name() : span.description.view();
    out += ",{\"ph\":\"X\",\"name\":";
    // The slice label: the description if there is one (an SQL statement, a route), else the op.
    const bool use_description = !description.empty();
    append_json_string(out, use_description ? description : op, stats,
                       use_description ? span.description.original_size : span.op.original_size);
    out += i == 0 ? ",\"cat\":\"transaction\"" : ",\"cat\":\"span\"";
    fmt::format_to(std::back_inserter(out), ",\"pid\":{},\"tid\":{},\"ts\":", pid, tid);
    append_us_from_ns(out, txn.begin_ns(i) - origin_ns);
    out += ",\"dur\":";
    append_us_from_ns(out, txn.end_ns(i) - txn.begin_ns(i));
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
  if (txn.analysis != nullptr) append_derived_spans(out, txn, *txn.analysis, tid, origin_ns, stats);
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
    append_us_from_ns(out, txn.ticks.to_ns(sample.t_ticks) - origin_ns);
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
