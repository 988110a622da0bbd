// spanprof: time as the formats write it — RFC 3339 for Sentry, exact binary
// fractions of a microsecond for the Trace Event formats.
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once

#include <fmt/format.h>

#include <ctime>
#include <cstdint>
#include <iterator>
#include <string>


namespace spanprof::detail {

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

}  // namespace spanprof::detail
