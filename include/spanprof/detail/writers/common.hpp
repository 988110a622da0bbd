// spanprof: what every writer needs — a finished transaction with its times in nanoseconds,
// process facts, and time formatting.
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once

#include <fmt/format.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <fstream>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "../clock.hpp"
#include "../config.hpp"
#include "../ids.hpp"
#include "../records.hpp"
#include "../ring.hpp"
#include "../text.hpp"

namespace spanprof::detail {

inline constexpr std::string_view spanprof_version = "0.1.0";

struct process_info {
  int pid = 0;
  std::string name;  // /proc/self/comm
  std::string os_name = "Linux";
  std::string os_version;
  std::string architecture;
  std::string host_name;

  static process_info current() {
    process_info info;
    info.pid = static_cast<int>(::getpid());
    std::ifstream comm("/proc/self/comm");
    std::getline(comm, info.name);
    if (info.name.empty()) info.name = "process";
    utsname uts{};
    if (::uname(&uts) == 0) {
      info.os_name = uts.sysname;
      info.os_version = uts.release;
      info.architecture = uts.machine;
      info.host_name = uts.nodename;
    }
    return info;
  }
};

// A sample of a finished transaction, copied out of its thread's ring by the collector.
struct collected_sample {
  std::int64_t t_ticks = 0;
  std::uint64_t seq = 0;  // per-ring sequence number
  std::uint64_t ctx_id = 0;
  std::uint64_t span_id = 0;
  std::uint32_t tid = 0;
  std::uint32_t weight = 1;
  std::uint16_t anchor_idx = 0;
  std::uint8_t flags = 0;
  std::uint8_t mode = 0;  // 0 wall, 1 cpu
  std::vector<std::uintptr_t> pcs;  // leaf first
};

// What the sampler saw of one transaction.
struct transaction_samples {
  std::vector<collected_sample> samples;  // in time order
  std::uint64_t dropped = 0;     // ring full while this transaction's context was active
  std::vector<drop_log_entry> drop_log;  // the logged ones among them, with their times
  std::uint64_t over_cap = 0;    // beyond max_samples_per_transaction
  std::uint64_t truncated = 0;
};

struct transaction_analysis;  // analysis.hpp: symbolized stacks and gap filling's derived spans

// A finished transaction as the writers see it: times already in monotonic nanoseconds.
struct finished_transaction {
  const transaction_record& rec;
  tick_converter ticks;
  const clock_calibration& clock;
  const process_info& process;
  const config& cfg;
  const transaction_samples& sampled;
  const transaction_analysis* analysis = nullptr;  // null if it could not be built

  [[nodiscard]] std::size_t span_count() const noexcept { return rec.spans.size(); }
  [[nodiscard]] const span_record& span(std::size_t i) const noexcept { return rec.spans[i]; }
  [[nodiscard]] std::int64_t begin_ns(std::size_t i) const noexcept { return ticks.to_ns(span(i).begin_ticks); }
  [[nodiscard]] std::int64_t end_ns(std::size_t i) const noexcept {
    // Clamp: a span can never end before it began, whatever the calibration did.
    const std::int64_t end = ticks.to_ns(span(i).end_ticks.load(std::memory_order_relaxed));
    return end < begin_ns(i) ? begin_ns(i) : end;
  }
  [[nodiscard]] std::int64_t epoch_ns(std::int64_t monotonic) const noexcept {
    return clock.monotonic_to_epoch_ns(monotonic);
  }
  [[nodiscard]] std::string_view name() const noexcept {
    const std::string_view n = span(0).description.view();
    return n.empty() ? std::string_view("unnamed transaction") : n;
  }
};

// RFC 3339 UTC with microseconds ("2024-05-01T12:00:00.000100Z"): what Sentry, Relay and
// sentry-cli all accept for start_timestamp/timestamp.
inline void append_rfc3339_us(std::string& out, std::int64_t epoch_ns) {
  const std::int64_t epoch_us = epoch_ns / 1000;
  const time_t seconds = static_cast<time_t>(epoch_us / 1'000'000);
  const auto micros = static_cast<long>(epoch_us % 1'000'000);
  tm utc{};
  gmtime_r(&seconds, &utc);
  fmt::format_to(std::back_inserter(out), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", utc.tm_year + 1900,
                 utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, micros);
}

// Microseconds with exactly three decimals, from integer nanoseconds: exact, so a child's
// ts+dur never overshoots its parent's through rounding.
inline void append_us_from_ns(std::string& out, std::int64_t ns) {
  if (ns < 0) {
    out += '-';
    ns = -ns;
  }
  fmt::format_to(std::back_inserter(out), "{}.{:03}", ns / 1000, ns % 1000);
}

}  // namespace spanprof::detail

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

}  // namespace spanprof::detail
