// The speedscope, folded and flame graph tests (speedscope_test, folded_test,
// flamegraph_svg_test, nesting_test): independent checkers written from formats.md, not from the
// writers, and the requests they record through the public macros with real sampling.
#pragma once

#include <doctest/doctest.h>
#include <spanprof/spanprof.hpp>
#include <spanprof/detail/engine/environment.hpp>
#include <spanprof/detail/writers/speedscope.hpp>
#include <spanprof/detail/writers/folded.hpp>
#include <spanprof/detail/writers/flamegraph_svg.hpp>

#include <cstdint>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "sampler_support.hpp"
#include "test_support.hpp"

extern "C" [[gnu::noinline]] void spanprof_test_folded_leaf() {
  spanprof_test::burn_wall(30'000'000);
  asm volatile("" ::: "memory");
}

extern "C" [[gnu::noinline]] void spanprof_test_folded_caller() {
  spanprof_test_folded_leaf();
  asm volatile("" ::: "memory");
}

namespace spanprof_test {

namespace sd = spanprof::detail;

// ---- independent checkers (written from formats.md, not from the writers) ---------------------

// speedscope's importer rules for an evented profile (formats.md §3): `at` never decreases, a C
// closes the frame on top, everything is closed at the end, indices exist. Returns "" or why not.
inline std::string evented_problem(const json& events, std::size_t frame_count) {
  std::vector<std::int64_t> open;
  std::int64_t last_at = std::numeric_limits<std::int64_t>::min();
  for (const json& e : events) {
    const std::int64_t frame = e.at("frame").get<std::int64_t>();
    const std::int64_t at = e.at("at").get<std::int64_t>();
    if (frame < 0 || static_cast<std::size_t>(frame) >= frame_count) return "frame index out of range: " + e.dump();
    if (at < last_at) return "at decreases: " + e.dump();
    last_at = at;
    if (e.at("type") == "O") {
      open.push_back(frame);
    } else if (e.at("type") == "C") {
      if (open.empty() || open.back() != frame) return "C does not close the top frame: " + e.dump();
      open.pop_back();
    } else {
      return "unknown event type: " + e.dump();
    }
  }
  return open.empty() ? "" : "frames left open";
}

inline std::string events_problem(const std::vector<sd::evented_event>& events, std::size_t frame_count) {
  json j = json::array();
  for (const auto& e : events) j.push_back({{"type", e.open ? "O" : "C"}, {"frame", e.frame}, {"at", e.at_ns}});
  return evented_problem(j, frame_count);
}

// Well-formedness as far as this SVG needs it: tags balance, attributes are quoted, `&` only
// starts an entity, no `<` in text. xmllint checks the real thing in the clients suite.
inline std::string xml_problem(const std::string& text) {
  std::vector<std::string> open;
  static const std::regex entity("^&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);");
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '&') {
      if (!std::regex_search(text.substr(i, 12), entity)) return "bare & at " + std::to_string(i);
    } else if (text[i] == '<') {
      const std::size_t end = text.find('>', i);
      if (end == std::string::npos) return "unterminated tag";
      const std::string tag = text.substr(i + 1, end - i - 1);
      if (tag.find('<') != std::string::npos) return "< inside a tag: " + tag;
      if (tag.starts_with("?")) {
      } else if (tag.starts_with("/")) {
        if (open.empty() || open.back() != tag.substr(1)) return "mismatched </" + tag.substr(1) + ">";
        open.pop_back();
      } else {
        std::size_t quotes = 0;
        for (const char c : tag) quotes += c == '"' ? 1 : 0;
        if (quotes % 2 != 0) return "unbalanced quotes in <" + tag + ">";
        if (!tag.ends_with("/")) open.push_back(tag.substr(0, tag.find_first_of(" \n")));
      }
      i = end;
    } else if (text[i] == '>') {
      return "bare > at " + std::to_string(i);
    }
  }
  return open.empty() ? "" : "unclosed <" + open.back() + ">";
}

inline std::size_t count_of(const std::string& text, std::string_view what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// A folded file as flamegraph.pl reads it: `^(.*)\s+?(\d+(?:\.\d*)?)$`, and a stack that itself
// ends like that would be a differential line. Fails the test on any other line.
inline std::map<std::string, std::uint64_t> parse_folded(const std::string& text) {
  static const std::regex line_re(R"(^(.*)\s+?(\d+(?:\.\d*)?)$)");
  static const std::regex speedscope_re(R"(^(.*) (\d+)$)");
  std::map<std::string, std::uint64_t> out;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t nl = text.find('\n', start);
    REQUIRE(nl != std::string::npos);  // every line ends with a newline
    const std::string line = text.substr(start, nl - start);
    start = nl + 1;
    std::smatch m, s;
    INFO("line: ", line);
    REQUIRE(std::regex_match(line, m, line_re));
    REQUIRE(std::regex_match(line, s, speedscope_re));
    CHECK(m[1].str() == s[1].str());  // both tools see the same stack and count
    CHECK(m[2].str() == s[2].str());
    const std::string stack = m[1].str();
    CHECK_FALSE(std::regex_match(stack, line_re));  // not a differential line
    CHECK(out.count(stack) == 0);                     // merged: each stack once
    const std::uint64_t count = std::stoull(m[2].str());
    CHECK(count > 0);
    out[stack] += count;
  }
  return out;
}

inline std::uint64_t total(const std::map<std::string, std::uint64_t>& counts) {
  std::uint64_t sum = 0;
  for (const auto& [stack, count] : counts) sum += count;
  return sum;
}

// ---- a workload with known functions ------------------------------------------------------

constexpr unsigned rate_hz = 1000;
constexpr std::int64_t interval_ns = 1'000'000'000 / rate_hz;

// The description holds the separator, a newline and a trailing number: folded must repair all.
constexpr const char* hostile_description = "SELECT a;b\nc 7";
constexpr const char* hostile_description_folded = "db.query SELECT a:b c_7";

[[gnu::noinline]] inline void request() {
  SPANPROF_TRANSACTION("GET /folded");
  {
    SPANPROF_SPAN("db.query", hostile_description);
    burn_wall(20'000'000);
  }
  spanprof_test_folded_caller();
}

[[gnu::noinline]] inline void other_request() {
  SPANPROF_TRANSACTION("POST /other");
  burn_wall(5'000'000);
}

// The file next to `file` with `suffix` instead of `old_suffix` (same transaction).
inline std::filesystem::path sibling(const std::filesystem::path& file, std::string_view old_suffix, std::string_view suffix) {
  std::string name = file.filename().string();
  REQUIRE(name.ends_with(old_suffix));
  name.resize(name.size() - old_suffix.size());
  return file.parent_path() / (name + std::string(suffix));
}

// Samples (with a stack) and their Σ weight in a Chrome trace: an independent writer's view.
inline std::pair<std::uint64_t, std::uint64_t> chrome_samples(const std::filesystem::path& trace) {
  const json doc = read_json(trace);
  std::uint64_t with_stack = 0, weight = 0;
  for (const json& e : doc.at("traceEvents")) {
    if (e.value("ph", "") != "i" || e.value("name", "") != "sample") continue;
    if (e.at("args").at("depth").get<int>() == 0) continue;
    ++with_stack;
    weight += e.at("args").at("weight").get<std::uint64_t>();
  }
  return {with_stack, weight};
}

// Samples in a Chrome trace whose span_id is that of the slice named `name`.
inline std::uint64_t chrome_samples_in_span(const std::filesystem::path& trace, std::string_view name) {
  const json doc = read_json(trace);
  std::string span_id;
  for (const json& e : doc.at("traceEvents")) {
    if (e.value("ph", "") == "X" && e.value("name", "") == name) span_id = e.at("args").at("span_id").get<std::string>();
  }
  REQUIRE_MESSAGE(!span_id.empty(), "no slice named ", name);
  std::uint64_t n = 0;
  for (const json& e : doc.at("traceEvents")) {
    if (e.value("ph", "") == "i" && e.value("name", "") == "sample" && e.at("args").at("span_id") == span_id) ++n;
  }
  return n;
}

inline std::uint64_t chrome_all_sample_weight(const std::filesystem::path& trace) {
  const json doc = read_json(trace);
  std::uint64_t weight = 0;
  for (const json& e : doc.at("traceEvents")) {
    if (e.value("ph", "") == "i" && e.value("name", "") == "sample") weight += e.at("args").at("weight").get<std::uint64_t>();
  }
  return weight;
}

}  // namespace spanprof_test
