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
#include "json.hpp"
#include "timestamps.hpp"
#include "span_attributes.hpp"

namespace spanprof::detail {

// An RFC 3339 time as a JSON string value.
inline void write_rfc3339_us(json_writer& w, std::int64_t epoch_ns) {
  w.value_with([&](std::string& out) {
    out += '"';
    append_rfc3339_us(out, epoch_ns);
    out += '"';
  });
}

inline void write_span_timestamps(json_writer& w, const finished_transaction& txn, std::size_t i) {
  w.key("start_timestamp");
  write_rfc3339_us(w, txn.epoch_ns(txn.begin_ns(i)));
  w.key("timestamp");
  write_rfc3339_us(w, txn.epoch_ns(txn.end_ns(i)));
}

// Sentry's span `data`: the user's entries, then ours (thread, call site, flags) unless the user
// set the same key — a JSON object should not repeat a key, and the user's value wins.
inline void write_sentry_span_data(json_writer& w, const finished_transaction& txn, const span_record& span,
                                   const std::vector<const data_entry*>& user) {
  w.key("data").begin_object();
  for (const data_entry* entry : user) write_data_member(w, *entry);
  auto member = [&](json_literal key) -> bool {
    for (const data_entry* entry : user) {
      if (entry->key.view() == key.text) return false;
    }
    w.key(key);
    return true;
  };
  if (member("thread.id")) w.decimal_string(txn.rec.thread_id);
  if (member("thread.name")) w.string(txn.rec.thread_name);
  if (member("code.function")) w.string(span.site != nullptr ? span.site->function : "");
  if (member("code.filepath")) w.string(span.site != nullptr ? span.site->file : "");
  if (member("code.lineno")) w.number(span.site != nullptr ? span.site->line : 0);
  const std::uint8_t flags = span.flags.load(std::memory_order_relaxed);
  if ((flags & span_flag_auto_closed) != 0 && member("spanprof.auto_closed")) w.boolean(true);
  if ((flags & span_flag_out_of_order) != 0 && member("spanprof.closed_out_of_order")) w.boolean(true);
  w.end_object();
}

// What the envelope's copy of the event adds to the plain .transaction.json: the link to the
// profile sent beside it, and the release the profile carries (sentry_profile.hpp).
struct sentry_transaction_link {
  std::string_view profile_id;  // contexts.profile.profile_id; empty: no profile in the envelope
  std::string_view release;     // written when the configuration has none, so both items agree
};

// The event as one JSON object, no newline after it (the envelope puts its own).
inline void append_sentry_transaction_event(std::string& out, const finished_transaction& txn, json_text_stats& stats,
                                            const sentry_transaction_link* link = nullptr) {
  json_writer w(out, stats);
  const span_record& root = txn.span(0);
  const auto trace = to_hex(txn.rec.trace);
  const auto data = data_by_span(txn);

  w.begin_object();
  w.key("type").plain_string("transaction");
  w.key("event_id").plain_string(to_hex(txn.rec.event_id).text);
  w.key("platform").plain_string("native");
  w.key("transaction").string(txn.name(), root.description.original_size);
  w.key("transaction_info").begin_object().key("source").plain_string("custom").end_object();
  write_span_timestamps(w, txn, 0);
  if (!txn.cfg.release.empty() || (link != nullptr && !link->release.empty())) {
    w.key("release").string(!txn.cfg.release.empty() ? std::string_view(txn.cfg.release) : link->release);
  }
  if (!txn.cfg.environment.empty()) w.key("environment").string(txn.cfg.environment);
  if (!txn.process.host_name.empty()) w.key("server_name").string(txn.process.host_name);
  w.key("sdk").begin_object().key("name").plain_string("spanprof").key("version").plain_string(spanprof_version).end_object();

  w.key("contexts").begin_object();
  w.key("trace").begin_object();
  w.key("trace_id").plain_string(trace.text);
  w.key("span_id").plain_string(to_hex(root.id).text);
  if (root.parent_id != 0) w.key("parent_span_id").plain_string(to_hex(root.parent_id).text);
  w.key("op").string(root.op.view(), root.op.original_size);
  w.key("status").plain_string(status_name(root.status.load(std::memory_order_relaxed)));
  write_sentry_span_data(w, txn, root, data[0]);
  w.end_object();
  if (link != nullptr && !link->profile_id.empty()) {
    w.key("profile").begin_object().key("profile_id").plain_string(link->profile_id).end_object();
  }
  w.key("os").begin_object().key("name").string(txn.process.os_name).key("version").string(txn.process.os_version).end_object();
  const transaction_counters& c = txn.rec.counters;
  w.key("spanprof").begin_object();
  w.key("spans_dropped").number(c.spans_dropped_over_cap);
  w.key("spans_auto_closed").number(c.spans_auto_closed);
  w.key("spans_closed_out_of_order").number(c.spans_closed_out_of_order);
  w.key("data_dropped").number(c.data_dropped_over_cap);
  w.key("process_id").number(txn.process.pid);
  w.end_object();
  w.end_object();

  w.key("spans").begin_array();
  for (std::size_t i = 1; i < txn.span_count(); ++i) {
    const span_record& span = txn.span(i);
    w.begin_object();
    w.key("span_id").plain_string(to_hex(span.id).text);
    w.key("parent_span_id").plain_string(to_hex(span.parent_id).text);
    w.key("trace_id").plain_string(trace.text);
    w.key("op").string(span.op.view(), span.op.original_size);
    w.key("description").string(span.description.view(), span.description.original_size);
    w.key("status").plain_string(status_name(span.status.load(std::memory_order_relaxed)));
    w.key("origin").plain_string("manual");
    write_span_timestamps(w, txn, i);
    write_sentry_span_data(w, txn, span, data[i]);
    w.end_object();
  }
  if (txn.analysis != nullptr) {
    // Gap filling's spans (gapfill.md §4), marked by their origin and op.
    const std::int64_t origin_ns = txn.begin_ns(0);
    for (const gapfill::derived_span& d : txn.analysis->gaps.derived_spans) {
      w.begin_object();
      w.key("span_id").plain_string(to_hex(d.id).text);
      w.key("parent_span_id").plain_string(to_hex(d.parent_id).text);
      w.key("trace_id").plain_string(trace.text);
      w.key("op").plain_string(d.op());
      w.key("description").string(d.description);
      w.key("status").plain_string("ok");
      w.key("origin").plain_string("auto.profile.spanprof");
      w.key("start_timestamp");
      write_rfc3339_us(w, txn.epoch_ns(d.begin_ns));
      w.key("timestamp");
      write_rfc3339_us(w, txn.epoch_ns(d.end_ns));
      w.key("data").begin_object();
      write_derived_span_attributes(w, d, origin_ns);
      w.end_object();
      w.end_object();
    }
  }
  w.end_array();
  w.end_object();
}

// The .transaction.json file: the event and a newline.
inline std::string write_sentry_transaction(const finished_transaction& txn, json_text_stats& stats,
                                            const sentry_transaction_link* link = nullptr) {
  std::string out;
  out.reserve(1024 + txn.span_count() * 420);
  append_sentry_transaction_event(out, txn, stats, link);
  out += '\n';
  return out;
}

}  // namespace spanprof::detail
