// spanprof: the one JSON writer of the JSON formats (Chrome trace, Sentry event, profile and
// envelope headers, speedscope).
//
// It appends to the writer's std::string and puts the commas itself: each open object or array
// has a "has a member yet?" bit, so no writer keeps a `first` flag or takes a comma back. Text
// goes through core/text.hpp's escape and UTF-8 repair (append_json_string), the only one;
// numbers are formatted as the writers always have, so outputs stay byte for byte the same.
//
// NOT ASYNC-SIGNAL-SAFE (appends to std::string). Collector thread only.
#pragma once

#include <fmt/format.h>

#include <cassert>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>

#include "../core/text.hpp"

namespace spanprof::detail {

// A key or string the writer knows at compile time: checked then to need no escaping, so it is
// copied as it is (most keys are these, and escaping them byte by byte would cost every event).
struct json_literal {
  std::string_view text;

  template <std::size_t N>
  consteval json_literal(const char (&s)[N]) : text(s, N - 1) {  // NOLINT: implicit on purpose
    for (const char c : text) {
      // Not a constant expression, so a literal that would need escaping fails to compile.
      if (static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\' || c == 0x7F) throw "json_literal needs escaping";
    }
  }
};

class json_writer {
 public:
  json_writer(std::string& out, json_text_stats& stats) noexcept : out_(out), stats_(stats) {}
  json_writer(const json_writer&) = delete;
  json_writer& operator=(const json_writer&) = delete;

  [[nodiscard]] std::string& out() noexcept { return out_; }
  [[nodiscard]] json_text_stats& stats() noexcept { return stats_; }
  // How many objects and arrays are open.
  [[nodiscard]] unsigned depth() const noexcept { return depth_; }

  json_writer& begin_object() { return open('{'); }
  json_writer& end_object() { return close('}'); }
  json_writer& begin_array() { return open('['); }
  json_writer& end_array() { return close(']'); }

  // `"name":`, after a comma if the object has members already; the next call writes its value.
  json_writer& key(json_literal name) {
    separate();
    out_ += '"';
    out_ += name.text;
    out_ += "\":";
    after_key_ = true;
    return *this;
  }
  // A key made at run time (the user's data keys): escaped and repaired like any string.
  json_writer& key_text(std::string_view name, std::size_t original_size = 0) {
    separate();
    append_json_string(out_, name, stats_, original_size);
    out_ += ':';
    after_key_ = true;
    return *this;
  }

  // A string value: escaped, invalid UTF-8 repaired (and counted), with the truncation marker
  // when `original_size` says a cap cut it (append_json_string).
  json_writer& string(std::string_view text, std::size_t original_size = 0) {
    separate();
    append_json_string(out_, text, stats_, original_size);
    return *this;
  }
  // A string value that cannot need escaping: ids in hex, status and state names, literals.
  json_writer& plain_string(std::string_view text) {
    separate();
    out_ += '"';
    out_ += text;
    out_ += '"';
    return *this;
  }
  // An address as a string, "0x1f" (JSON numbers cannot hold every 64-bit value exactly).
  json_writer& address(std::uint64_t value) {
    separate();
    fmt::format_to(std::back_inserter(out_), "\"{:#x}\"", value);
    return *this;
  }
  // A 64-bit integer as a decimal string, as Sentry wants thread ids and times.
  json_writer& decimal_string(std::uint64_t value) {
    separate();
    fmt::format_to(std::back_inserter(out_), "\"{}\"", value);
    return *this;
  }

  template <std::integral T>
    requires(!std::same_as<T, bool>)
  json_writer& number(T value) {
    separate();
    fmt::format_to(std::back_inserter(out_), "{}", value);
    return *this;
  }
  // The shortest form that reads back as the same double, with ".0" when it would otherwise
  // read as an integer. JSON has no NaN or infinity: those are written as strings rather than
  // produce invalid JSON.
  json_writer& number(double value) {
    separate();
    if (std::isfinite(value)) {
      const std::size_t start = out_.size();
      fmt::format_to(std::back_inserter(out_), "{}", value);
      if (out_.find_first_of(".e", start) == std::string::npos) out_ += ".0";
    } else {
      fmt::format_to(std::back_inserter(out_), "\"{}\"", value);
    }
    return *this;
  }
  // A double with exactly `decimals` digits after the point (finite values only).
  json_writer& fixed(double value, int decimals) {
    assert(std::isfinite(value));
    separate();
    fmt::format_to(std::back_inserter(out_), "{:.{}f}", value, decimals);
    return *this;
  }
  json_writer& boolean(bool value) {
    separate();
    out_ += value ? "true" : "false";
    return *this;
  }
  // A value built elsewhere (another json_writer's output, a formatted time): copied as it is.
  json_writer& raw(std::string_view fragment) {
    separate();
    out_ += fragment;
    return *this;
  }
  // A value the caller appends itself to out(), e.g. `"` + an RFC 3339 time + `"`.
  template <class Write>
  json_writer& value_with(Write&& write) {
    separate();
    write(out_);
    return *this;
  }

 private:
  // Writers nest a few levels deep (Chrome trace: 4); deeper is a bug in a writer.
  static constexpr unsigned max_depth = 64;

  json_writer& open(char bracket) {
    separate();
    out_ += bracket;
    assert(depth_ < max_depth);
    ++depth_;
    has_member_ &= ~bit(depth_);
    return *this;
  }
  json_writer& close(char bracket) {
    assert(depth_ > 0 && !after_key_);
    --depth_;
    out_ += bracket;
    return *this;
  }
  // Before a member or value: the comma, unless it is the first of its container or the value
  // of the key just written.
  void separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (depth_ == 0) return;
    if ((has_member_ & bit(depth_)) != 0) out_ += ',';
    has_member_ |= bit(depth_);
  }
  static constexpr std::uint64_t bit(unsigned level) noexcept { return std::uint64_t{1} << (level % max_depth); }

  std::string& out_;
  json_text_stats& stats_;
  std::uint64_t has_member_ = 0;  // bit d: the container at depth d has a member
  unsigned depth_ = 0;
  bool after_key_ = false;
};

}  // namespace spanprof::detail
