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

#include "../core/clock.hpp"
#include "../core/config.hpp"
#include "../core/ids.hpp"
#include "../record/transaction_record.hpp"
#include "../sample/ring.hpp"
#include "../core/text.hpp"

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

// Where viewers draw a transaction's spans and samples: its thread, or, for a transaction opened
// on a fiber, a track of the fiber's own — the fiber may run on several threads, and other
// fibers' requests share its threads. Kernel tids stay below 2^22 (PID_MAX_LIMIT), so fiber
// tracks numbered from 2^30 never collide with a thread's.
struct transaction_track {
  std::uint32_t tid = 0;
  std::string label;

  static transaction_track of(const transaction_record& rec) {
    transaction_track t;
    if (rec.on_fiber) {
      const std::uint64_t fiber_number = rec.ctx_id & ~fiber_ctx_id_bit;
      t.tid = static_cast<std::uint32_t>((std::uint64_t{1} << 30) | (fiber_number & ((std::uint64_t{1} << 30) - 1)));
      t.label = fmt::format("fiber {} (began on thread {})", fiber_number, rec.thread_id);
    } else {
      t.tid = static_cast<std::uint32_t>(rec.thread_id);
      t.label = rec.thread_name[0] != '\0' ? std::string(rec.thread_name) : fmt::format("thread {}", rec.thread_id);
    }
    return t;
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

// Trace Event times are microseconds, and JavaScript viewers (speedscope, DevTools) add ts + dur
// in doubles. Decimal fractions are inexact there: a child ending with its parent could end
// one ulp after it ("Tried to end … when … was on the top"). So times are written in units of
// 1/1024 µs (0.98 ns): such fractions are exact binary doubles, and so are their sums. The
// rounding (floor) is monotone, so spans that nest in nanoseconds still nest, and
// ts + dur is exactly the written end.
inline constexpr std::int64_t trace_units_per_us = 1024;

inline std::int64_t trace_units_from_ns(std::int64_t ns) noexcept {
  const std::int64_t scaled = ns * 128;  // × 1024 / 1000 = × 128 / 125; < 2^63 for 2 years of ns
  return scaled >= 0 ? scaled / 125 : -((-scaled + 124) / 125);  // floor
}

// `units` (1/1024 µs) as an exact decimal number of µs: at most 10 decimals, trailing zeros cut.
inline void append_trace_us(std::string& out, std::int64_t units) {
  if (units < 0) {
    out += '-';
    units = -units;
  }
  fmt::format_to(std::back_inserter(out), "{}", units / trace_units_per_us);
  if (const std::int64_t fraction = units % trace_units_per_us; fraction != 0) {
    std::string digits = fmt::format("{:010}", fraction * 9'765'625);  // 1/1024 = 0.0009765625
    digits.erase(digits.find_last_not_of('0') + 1);
    out += '.';
    out += digits;
  }
}

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
