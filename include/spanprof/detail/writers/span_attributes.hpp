// spanprof: the JSON attributes of a span — its key/value data, its call site, and
// gap filling's facts about a derived span; shared by the Sentry span `data` and the Chrome
// trace `args`.
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <string>
#include <vector>

#include "../core/text.hpp"
#include "../gapfill/gapfill.hpp"
#include "finished_transaction.hpp"
#include "json.hpp"

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

// `"key":value` for one data entry, a member of the object `w` is in.
inline void write_data_member(json_writer& w, const data_entry& entry) {
  w.key_text(entry.key.view(), entry.key.original_size);
  switch (entry.kind) {
    case data_kind::string: w.string(entry.text.view(), entry.text.original_size); break;
    case data_kind::integer: w.number(entry.integer); break;
    case data_kind::unsigned_integer: w.number(static_cast<std::uint64_t>(entry.integer)); break;
    case data_kind::boolean: w.boolean(entry.integer != 0); break;
    case data_kind::floating: w.number(entry.floating); break;
  }
}

// The call site of a span as OpenTelemetry's code.* attributes.
inline void write_code_location(json_writer& w, const span_record& span) {
  w.key("code.function").string(span.site != nullptr ? span.site->function : "");
  w.key("code.filepath").string(span.site != nullptr ? span.site->file : "");
  w.key("code.lineno").number(span.site != nullptr ? span.site->line : 0);
}

// The attributes of a derived span (gapfill.md §2.6, §2.7) as members of the object `w` is in;
// shared by the Sentry span `data` and the Chrome trace `args`. Times are relative to the
// transaction's start (`origin_ns`), like every other time in the outputs.
inline void write_derived_span_attributes(json_writer& w, const gapfill::derived_span& d, std::int64_t origin_ns) {
  const bool is_gap = d.kind == gapfill::derived_kind::gap;
  w.key(is_gap ? json_literal("spanprof.gap") : json_literal("spanprof.inferred")).boolean(true);
  w.key("spanprof.sample_count").number(d.sample_count);
  w.key("spanprof.duration_error_ns").number(d.duration_error_ns);
  w.key("spanprof.bounds_ns").begin_array().number(d.begin_lo_ns - origin_ns).number(d.end_hi_ns - origin_ns).end_array();
  w.key("spanprof.duration_min_ns").number(d.duration_min_ns);
  w.key("spanprof.state").plain_string(gapfill::state_name(d.state));
  w.key("spanprof.on_cpu_ns").number(d.on_cpu_ns);
  w.key("spanprof.recursion_depth").number(d.recursion_depth);
  if (d.suspended_ns != 0) w.key("spanprof.suspended_ns").number(d.suspended_ns);
  if (!d.stack.empty()) w.key("spanprof.stack").string(d.stack);
  if (!d.code_function.empty()) {
    w.key("code.function").string(d.code_function);
    w.key("code.filepath").string(d.code_filepath);
    w.key("code.lineno").number(d.code_lineno);
  }
  if (d.tid != 0) w.key("thread.id").decimal_string(d.tid);
  w.key("spanprof.low_confidence").boolean(d.low_confidence);
  if (d.merged_over_drop) w.key("spanprof.merged_over_drop").boolean(true);
  if (is_gap) {
    w.key("spanprof.gap_reason").string(gapfill::reason_name(d.reason));
    w.key("spanprof.expected_samples").fixed(d.expected_samples, 1);
    if (d.samples_dropped != 0) {
      w.key("spanprof.samples_dropped").number(d.samples_dropped);
      if (d.samples_dropped_upper_bound) w.key("spanprof.samples_dropped_upper_bound").boolean(true);
    }
  }
}

}  // namespace spanprof::detail
