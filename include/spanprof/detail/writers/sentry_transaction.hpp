// spanprof: Sentry transaction event JSON (the payload of an envelope's "transaction" item).
//
// Timestamps are RFC 3339 strings with microseconds: Relay accepts floats too, but sentry-cli
// rejects them, and strings keep full precision. Platform is "native" ("cpp" is not in Relay's
// list). See ../shared/docs/formats.md §1.
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once

#include <string>

#include "../core/text.hpp"
#include "finished_transaction.hpp"
#include "timestamps.hpp"
#include "span_attributes.hpp"

namespace spanprof::detail {

inline void append_span_timestamps(std::string& out, const finished_transaction& txn, std::size_t i) {
  out += "\"start_timestamp\":\"";
  append_rfc3339_us(out, txn.epoch_ns(txn.begin_ns(i)));
  out += "\",\"timestamp\":\"";
  append_rfc3339_us(out, txn.epoch_ns(txn.end_ns(i)));
  out += '"';
}

// Sentry's span `data`: the user's entries, then ours (thread, call site, flags) unless the user
// set the same key — a JSON object should not repeat a key, and the user's value wins.
inline void append_sentry_span_data(std::string& out, const finished_transaction& txn, const span_record& span,
                                    const std::vector<const data_entry*>& user, json_text_stats& stats) {
  out += "\"data\":{";
  bool first = true;
  for (const data_entry* entry : user) {
    if (!first) out += ',';
    first = false;
    append_data_member(out, *entry, stats);
  }
  auto member = [&](std::string_view key, auto&& write_value) {
    for (const data_entry* entry : user) {
      if (entry->key.view() == key) return;
    }
    if (!first) out += ',';
    first = false;
    append_json_string(out, key, stats);
    out += ':';
    write_value();
  };
  member("thread.id", [&] { fmt::format_to(std::back_inserter(out), "\"{}\"", txn.rec.thread_id); });
  member("thread.name", [&] { append_json_string(out, txn.rec.thread_name, stats); });
  member("code.function", [&] { append_json_string(out, span.site != nullptr ? span.site->function : "", stats); });
  member("code.filepath", [&] { append_json_string(out, span.site != nullptr ? span.site->file : "", stats); });
  member("code.lineno", [&] { fmt::format_to(std::back_inserter(out), "{}", span.site != nullptr ? span.site->line : 0); });
  const std::uint8_t flags = span.flags.load(std::memory_order_relaxed);
  if ((flags & span_flag_auto_closed) != 0) member("spanprof.auto_closed", [&] { out += "true"; });
  if ((flags & span_flag_out_of_order) != 0) member("spanprof.closed_out_of_order", [&] { out += "true"; });
  out += '}';
}

// What the envelope's copy of the event adds to the plain .transaction.json: the link to the
// profile sent beside it, and the release the profile carries (sentry_profile.hpp).
struct sentry_transaction_link {
  std::string_view profile_id;  // contexts.profile.profile_id; empty: no profile in the envelope
  std::string_view release;     // written when the configuration has none, so both items agree
};

inline std::string write_sentry_transaction(const finished_transaction& txn, json_text_stats& stats,
                                            const sentry_transaction_link* link = nullptr) {
  std::string out;
  out.reserve(1024 + txn.span_count() * 420);
  const span_record& root = txn.span(0);
  const auto trace = to_hex(txn.rec.trace);
  const auto data = data_by_span(txn);

  fmt::format_to(std::back_inserter(out), "{{\"type\":\"transaction\",\"event_id\":\"{}\",\"platform\":\"native\",\"transaction\":",
                 to_hex(txn.rec.event_id).text);
  append_json_string(out, txn.name(), stats, root.description.original_size);
  out += ",\"transaction_info\":{\"source\":\"custom\"},";
  append_span_timestamps(out, txn, 0);
  if (!txn.cfg.release.empty() || (link != nullptr && !link->release.empty())) {
    out += ",\"release\":";
    append_json_string(out, !txn.cfg.release.empty() ? std::string_view(txn.cfg.release) : link->release, stats);
  }
  if (!txn.cfg.environment.empty()) {
    out += ",\"environment\":";
    append_json_string(out, txn.cfg.environment, stats);
  }
  if (!txn.process.host_name.empty()) {
    out += ",\"server_name\":";
    append_json_string(out, txn.process.host_name, stats);
  }
  fmt::format_to(std::back_inserter(out), ",\"sdk\":{{\"name\":\"spanprof\",\"version\":\"{}\"}}", spanprof_version);

  fmt::format_to(std::back_inserter(out), ",\"contexts\":{{\"trace\":{{\"trace_id\":\"{}\",\"span_id\":\"{}\"", trace.text,
                 to_hex(root.id).text);
  if (root.parent_id != 0) fmt::format_to(std::back_inserter(out), ",\"parent_span_id\":\"{}\"", to_hex(root.parent_id).text);
  out += ",\"op\":";
  append_json_string(out, root.op.view(), stats, root.op.original_size);
  fmt::format_to(std::back_inserter(out), ",\"status\":\"{}\",", status_name(root.status.load(std::memory_order_relaxed)));
  append_sentry_span_data(out, txn, root, data[0], stats);
  out += '}';
  if (link != nullptr && !link->profile_id.empty()) {
    fmt::format_to(std::back_inserter(out), ",\"profile\":{{\"profile_id\":\"{}\"}}", link->profile_id);
  }
  out += ",\"os\":{\"name\":";
  append_json_string(out, txn.process.os_name, stats);
  out += ",\"version\":";
  append_json_string(out, txn.process.os_version, stats);
  const transaction_counters& c = txn.rec.counters;
  fmt::format_to(std::back_inserter(out),
                 "}},\"spanprof\":{{\"spans_dropped\":{},\"spans_auto_closed\":{},\"spans_closed_out_of_order\":{},"
                 "\"data_dropped\":{},\"process_id\":{}}}}}",
                 c.spans_dropped_over_cap, c.spans_auto_closed, c.spans_closed_out_of_order, c.data_dropped_over_cap,
                 txn.process.pid);

  out += ",\"spans\":[";
  for (std::size_t i = 1; i < txn.span_count(); ++i) {
    const span_record& span = txn.span(i);
    if (i > 1) out += ',';
    fmt::format_to(std::back_inserter(out), "{{\"span_id\":\"{}\",\"parent_span_id\":\"{}\",\"trace_id\":\"{}\",\"op\":",
                   to_hex(span.id).text, to_hex(span.parent_id).text, trace.text);
    append_json_string(out, span.op.view(), stats, span.op.original_size);
    out += ",\"description\":";
    append_json_string(out, span.description.view(), stats, span.description.original_size);
    fmt::format_to(std::back_inserter(out), ",\"status\":\"{}\",\"origin\":\"manual\",",
                   status_name(span.status.load(std::memory_order_relaxed)));
    append_span_timestamps(out, txn, i);
    out += ',';
    append_sentry_span_data(out, txn, span, data[i], stats);
    out += '}';
  }
  if (txn.analysis != nullptr) {
    // Gap filling's spans (gapfill.md §4), marked by their origin and op.
    const std::int64_t origin_ns = txn.begin_ns(0);
    bool first = txn.span_count() <= 1;
    for (const gapfill::derived_span& d : txn.analysis->gaps.derived_spans) {
      if (!first) out += ',';
      first = false;
      fmt::format_to(std::back_inserter(out), "{{\"span_id\":\"{}\",\"parent_span_id\":\"{}\",\"trace_id\":\"{}\",\"op\":\"{}\",\"description\":",
                     to_hex(d.id).text, to_hex(d.parent_id).text, trace.text, d.op());
      append_json_string(out, d.description, stats);
      out += ",\"status\":\"ok\",\"origin\":\"auto.profile.spanprof\",\"start_timestamp\":\"";
      append_rfc3339_us(out, txn.epoch_ns(d.begin_ns));
      out += "\",\"timestamp\":\"";
      append_rfc3339_us(out, txn.epoch_ns(d.end_ns));
      out += "\",\"data\":{";
      append_derived_span_attributes(out, d, origin_ns, stats);
      out += "}}";
    }
  }
  out += "]}\n";
  return out;
}

}  // namespace spanprof::detail
