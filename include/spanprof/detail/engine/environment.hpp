// spanprof: the SPANPROF_* environment variables over a configuration (config::from_environment).
//
// Engine only. Invalid values are reported and leave the field as it was.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "../core/config.hpp"

namespace spanprof {
namespace detail {

inline bool parse_bool(std::string_view text, bool& out) {
  if (text == "1" || text == "true" || text == "on" || text == "yes") return out = true, true;
  if (text == "0" || text == "false" || text == "off" || text == "no") return out = false, true;
  return false;
}

inline bool parse_formats(std::string_view text, output_format& out) {
  output_format result = output_format::none;
  while (!text.empty()) {
    const std::size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item == "chrome" || item == "chrome_trace" || item == "perfetto") {
      result = result | output_format::chrome_trace;
    } else if (item == "sentry" || item == "sentry_transaction") {
      result = result | output_format::sentry_transaction;
    } else if (item == "speedscope") {
      result = result | output_format::speedscope;
    } else if (item == "folded" || item == "collapsed") {
      result = result | output_format::folded;
    } else if (item == "flamegraph" || item == "svg") {
      result = result | output_format::flamegraph;
    } else if (item == "envelope" || item == "sentry_envelope") {
      result = result | output_format::sentry_envelope;
    } else if (item == "pprof") {
      result = result | output_format::pprof;
    } else if (item == "none") {
    } else if (!item.empty()) {
      return false;
    }
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  out = result;
  return true;
}

template <class Number>
bool parse_number(const char* text, double min, double max, Number& out) {
  errno = 0;
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !std::isfinite(value) || value < min || value > max) return false;
  out = static_cast<Number>(value);
  return true;
}

// config::from_environment's body (the engine defines that member with it).
inline config apply_environment(config base, std::vector<std::string>* problems) {
  auto complain = [&](const char* variable, const char* value, const char* expected) {
    if (problems != nullptr) {
      problems->push_back(std::string("spanprof: ") + variable + " is \"" + value + "\"; expected " + expected);
    }
  };
  if (const char* v = std::getenv("SPANPROF_ENABLED")) {
    if (!detail::parse_bool(v, base.enabled)) complain("SPANPROF_ENABLED", v, "1/0, true/false, on/off");
  }
  if (const char* v = std::getenv("SPANPROF_OUTPUT_DIR")) {
    if (*v == '\0') complain("SPANPROF_OUTPUT_DIR", v, "a folder path"); else base.output_dir = v;
  }
  if (const char* v = std::getenv("SPANPROF_FORMATS")) {
    if (!detail::parse_formats(v, base.formats)) complain("SPANPROF_FORMATS", v, "a comma list of chrome, sentry, envelope, speedscope, pprof, folded, flamegraph, none");
  }
  if (const char* v = std::getenv("SPANPROF_TRACES_SAMPLE_RATE")) {
    if (!detail::parse_number(v, 0.0, 1.0, base.traces_sample_rate)) complain("SPANPROF_TRACES_SAMPLE_RATE", v, "a number in 0..1");
  }
  if (const char* v = std::getenv("SPANPROF_SAMPLE_RATE_HZ")) {
    if (!detail::parse_number(v, 1.0, 100000.0, base.sample_rate_hz)) complain("SPANPROF_SAMPLE_RATE_HZ", v, "1..100000");
  }
  if (const char* v = std::getenv("SPANPROF_MODE")) {
    const std::string_view mode = v;
    if (mode == "wall") base.mode = sampling_mode::wall;
    else if (mode == "cpu") base.mode = sampling_mode::cpu;
    else complain("SPANPROF_MODE", v, "wall or cpu");
  }
  if (const char* v = std::getenv("SPANPROF_SAMPLING")) {
    if (!detail::parse_bool(v, base.sampling)) complain("SPANPROF_SAMPLING", v, "1/0, true/false, on/off");
  }
  if (const char* v = std::getenv("SPANPROF_UNWINDER")) {
    const std::string_view name = v;
    if (name == "auto") base.stack_unwinder = unwinder::automatic;
    else if (name == "fp" || name == "frame_pointers") base.stack_unwinder = unwinder::frame_pointers;
    else if (name == "dwarf") base.stack_unwinder = unwinder::dwarf;
    else complain("SPANPROF_UNWINDER", v, "auto, fp or dwarf");
  }
  if (const char* v = std::getenv("SPANPROF_MAX_STACK_DEPTH")) {
    if (!detail::parse_number(v, 1.0, 1024.0, base.max_stack_depth)) complain("SPANPROF_MAX_STACK_DEPTH", v, "1..1024");
  }
  if (const char* v = std::getenv("SPANPROF_RELEASE")) base.release = v;
  if (const char* v = std::getenv("SPANPROF_ENVIRONMENT")) base.environment = v;
  if (const char* v = std::getenv("SPANPROF_MAX_SPANS")) {
    // 16383, as init() accepts (transaction_record::max_spans - 1) and the README documents.
    if (!detail::parse_number(v, 1.0, 16383.0, base.max_spans_per_transaction)) complain("SPANPROF_MAX_SPANS", v, "1..16383");
  }
  return base;
}

}  // namespace detail
}  // namespace spanprof
