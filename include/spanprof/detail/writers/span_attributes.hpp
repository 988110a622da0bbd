// spanprof: the JSON attributes of a span — its key/value data, its call site, and
// gap filling's facts about a derived span; shared by the Sentry span `data` and the Chrome
// trace `args`.
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <string>
#include <vector>

#include "../core/text.hpp"
#include "../gapfill/gapfill.hpp"
#include "finished_transaction.hpp"

namespace spanprof::detail {

// The key/value data of each span. Setting a key again replaces it (as Sentry's set_data does),
// so each key appears once, with its latest value. Keys are compared as they will be written,
// not as recorded: two keys that differ only in invalid UTF-8 bytes are both written with U+FFFD
// in their place, and a JSON object must not repeat a key (serde-based readers such as Relay
// reject the object). Found by tests/writers_property_test.cpp.
inline std::vector<std::vector<const data_entry*>> data_by_span(const finished_transaction& txn) {
  std::vector<std::vector<const data_entry*>> by_span(txn.span_count());
  std::vector<std::vector<std::string>> written_keys(txn.span_count());
  json_text_stats ignored;  // counted when the key is really written
  std::string written;
  const std::size_t count = txn.rec.data.size();
  for (std::size_t i = count; i-- > 0;) {
    const data_entry& entry = txn.rec.data[i];
    if (entry.span_index >= by_span.size()) continue;
    written.clear();
    append_json_string(written, entry.key.view(), ignored, entry.key.original_size);
    auto& keys = written_keys[entry.span_index];
    if (std::find(keys.begin(), keys.end(), written) != keys.end()) continue;
    keys.push_back(written);
    by_span[entry.span_index].push_back(&entry);
  }
  for (auto& list : by_span) std::reverse(list.begin(), list.end());
  return by_span;
}

// `"key":value` for one data entry (no leading comma).
inline void append_data_member(std::string& out, const data_entry& entry, json_text_stats& stats) {
  append_json_string(out, entry.key.view(), stats, entry.key.original_size);
  out += ':';
  switch (entry.kind) {
    case data_kind::string: append_json_string(out, entry.text.view(), stats, entry.text.original_size); break;
    case data_kind::integer: fmt::format_to(std::back_inserter(out), "{}", entry.integer); break;
    case data_kind::unsigned_integer:
      fmt::format_to(std::back_inserter(out), "{}", static_cast<std::uint64_t>(entry.integer));
      break;
    case data_kind::boolean: out += entry.integer != 0 ? "true" : "false"; break;
    case data_kind::floating:
      // JSON has no NaN or infinity: write those as strings rather than produce invalid JSON.
      if (std::isfinite(entry.floating)) {
        const std::size_t start = out.size();
        fmt::format_to(std::back_inserter(out), "{}", entry.floating);
        // Keep a double a double for the reader: "3" would parse as an integer.
        if (out.find_first_of(".e", start) == std::string::npos) out += ".0";
      } else {
        fmt::format_to(std::back_inserter(out), "\"{}\"", entry.floating);
      }
      break;
  }
}

// The call site of a span as OpenTelemetry's code.* attributes (no leading comma).
inline void append_code_location(std::string& out, const span_record& span, json_text_stats& stats) {
  out += "\"code.function\":";
  append_json_string(out, span.site != nullptr ? span.site->function : "", stats);
  out += ",\"code.filepath\":";
  append_json_string(out, span.site != nullptr ? span.site->file : "", stats);
  fmt::format_to(std::back_inserter(out), ",\"code.lineno\":{}", span.site != nullptr ? span.site->line : 0);
}

// The attributes of a derived span (gapfill.md §2.6, §2.7) as JSON members, no braces; shared by
// the Sentry span `data` and the Chrome trace `args`. Times are relative to the transaction's
// start (`origin_ns`), like every other time in the outputs.
inline void append_derived_span_attributes(std::string& out, const gapfill::derived_span& d, std::int64_t origin_ns,
                                           json_text_stats& stats) {
  const bool is_gap = d.kind == gapfill::derived_kind::gap;
  fmt::format_to(std::back_inserter(out), "\"spanprof.{}\":true,\"spanprof.sample_count\":{},\"spanprof.duration_error_ns\":{}",
                 is_gap ? "gap" : "inferred", d.sample_count, d.duration_error_ns);
  fmt::format_to(std::back_inserter(out), ",\"spanprof.bounds_ns\":[{},{}],\"spanprof.duration_min_ns\":{}",
                 d.begin_lo_ns - origin_ns, d.end_hi_ns - origin_ns, d.duration_min_ns);
  fmt::format_to(std::back_inserter(out), ",\"spanprof.state\":\"{}\",\"spanprof.on_cpu_ns\":{},\"spanprof.recursion_depth\":{}",
                 gapfill::state_name(d.state), d.on_cpu_ns, d.recursion_depth);
  if (d.suspended_ns != 0) fmt::format_to(std::back_inserter(out), ",\"spanprof.suspended_ns\":{}", d.suspended_ns);
  if (!d.stack.empty()) {
    out += ",\"spanprof.stack\":";
    append_json_string(out, d.stack, stats);
  }
  if (!d.code_function.empty()) {
    out += ",\"code.function\":";
    append_json_string(out, d.code_function, stats);
    out += ",\"code.filepath\":";
    append_json_string(out, d.code_filepath, stats);
    fmt::format_to(std::back_inserter(out), ",\"code.lineno\":{}", d.code_lineno);
  }
  if (d.tid != 0) fmt::format_to(std::back_inserter(out), ",\"thread.id\":\"{}\"", d.tid);
  fmt::format_to(std::back_inserter(out), ",\"spanprof.low_confidence\":{}", d.low_confidence ? "true" : "false");
  if (d.merged_over_drop) out += ",\"spanprof.merged_over_drop\":true";
  if (is_gap) {
    out += ",\"spanprof.gap_reason\":";
    append_json_string(out, gapfill::reason_name(d.reason), stats);
    fmt::format_to(std::back_inserter(out), ",\"spanprof.expected_samples\":{:.1f}", d.expected_samples);
    if (d.samples_dropped != 0) {
      fmt::format_to(std::back_inserter(out), ",\"spanprof.samples_dropped\":{}{}", d.samples_dropped,
                     d.samples_dropped_upper_bound ? ",\"spanprof.samples_dropped_upper_bound\":true" : "");
    }
  }
}

}  // namespace spanprof::detail
