// writers/speedscope.hpp, writers/folded.hpp, writers/flamegraph_svg.hpp: the pure pieces
// (escaping, nesting, SVG rendering, aggregation caps) directly, and the files the collector
// writes for transactions recorded through the public macros with real sampling. The real
// clients (speedscope's importer, flamegraph.pl, xmllint) run in the 'clients' suite.
#include <doctest/doctest.h>
#include <spanprof/spanprof.hpp>
#include <spanprof/detail/engine/environment.hpp>
#include <spanprof/detail/writers/speedscope.hpp>
#include <spanprof/detail/writers/folded.hpp>
#include <spanprof/detail/writers/flamegraph_svg.hpp>

#if defined(SPANPROF_DISABLE)
TEST_CASE("speedscope_folded: nothing to check, built with SPANPROF_DISABLE") { MESSAGE("SPANPROF_DISABLE: these cases need the engine"); }
#else

#include <cstdint>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "support/sampler_support.hpp"
#include "support/test_support.hpp"

using namespace spanprof_test;
namespace sd = spanprof::detail;

namespace {

// ---- independent checkers (written from formats.md, not from the writers) ---------------------

// speedscope's importer rules for an evented profile (formats.md §3): `at` never decreases, a C
// closes the frame on top, everything is closed at the end, indices exist. Returns "" or why not.
std::string evented_problem(const json& events, std::size_t frame_count) {
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

std::string events_problem(const std::vector<sd::evented_event>& events, std::size_t frame_count) {
  json j = json::array();
  for (const auto& e : events) j.push_back({{"type", e.open ? "O" : "C"}, {"frame", e.frame}, {"at", e.at_ns}});
  return evented_problem(j, frame_count);
}

// Well-formedness as far as this SVG needs it: tags balance, attributes are quoted, `&` only
// starts an entity, no `<` in text. xmllint checks the real thing in the clients suite.
std::string xml_problem(const std::string& text) {
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

std::size_t count_of(const std::string& text, std::string_view what) {
  std::size_t n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// A folded file as flamegraph.pl reads it: `^(.*)\s+?(\d+(?:\.\d*)?)$`, and a stack that itself
// ends like that would be a differential line. Fails the test on any other line.
std::map<std::string, std::uint64_t> parse_folded(const std::string& text) {
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

std::uint64_t total(const std::map<std::string, std::uint64_t>& counts) {
  std::uint64_t sum = 0;
  for (const auto& [stack, count] : counts) sum += count;
  return sum;
}

// ---- a workload with known functions ------------------------------------------------------

constexpr unsigned rate_hz = 1000;
constexpr std::int64_t interval_ns = 1'000'000'000 / rate_hz;

}  // namespace

extern "C" [[gnu::noinline]] void spanprof_test_folded_leaf() {
  burn_wall(30'000'000);
  asm volatile("" ::: "memory");
}

extern "C" [[gnu::noinline]] void spanprof_test_folded_caller() {
  spanprof_test_folded_leaf();
  asm volatile("" ::: "memory");
}

namespace {

// The description holds the separator, a newline and a trailing number: folded must repair all.
constexpr const char* hostile_description = "SELECT a;b\nc 7";
constexpr const char* hostile_description_folded = "db.query SELECT a:b c_7";

[[gnu::noinline]] void request() {
  SPANPROF_TRANSACTION("GET /folded");
  {
    SPANPROF_SPAN("db.query", hostile_description);
    burn_wall(20'000'000);
  }
  spanprof_test_folded_caller();
}

[[gnu::noinline]] void other_request() {
  SPANPROF_TRANSACTION("POST /other");
  burn_wall(5'000'000);
}

// The file next to `file` with `suffix` instead of `old_suffix` (same transaction).
std::filesystem::path sibling(const std::filesystem::path& file, std::string_view old_suffix, std::string_view suffix) {
  std::string name = file.filename().string();
  REQUIRE(name.ends_with(old_suffix));
  name.resize(name.size() - old_suffix.size());
  return file.parent_path() / (name + std::string(suffix));
}

// Samples (with a stack) and their Σ weight in a Chrome trace: an independent writer's view.
std::pair<std::uint64_t, std::uint64_t> chrome_samples(const std::filesystem::path& trace) {
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
std::uint64_t chrome_samples_in_span(const std::filesystem::path& trace, std::string_view name) {
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

std::uint64_t chrome_all_sample_weight(const std::filesystem::path& trace) {
  const json doc = read_json(trace);
  std::uint64_t weight = 0;
  for (const json& e : doc.at("traceEvents")) {
    if (e.value("ph", "") == "i" && e.value("name", "") == "sample") weight += e.at("args").at("weight").get<std::uint64_t>();
  }
  return weight;
}

}  // namespace

// ---- pure pieces ----------------------------------------------------------------------------

TEST_CASE("folded_frame_name: the separator, line breaks, trailing numbers and bad UTF-8 are repaired") {
  sd::json_text_stats stats;
  CHECK(sd::folded_frame_name("a;b;c", stats) == "a:b:c");
  CHECK(sd::folded_frame_name("x\ny\rz\tw", stats) == "x y z w");
  CHECK(sd::folded_frame_name("std::vector<int> const&", stats) == "std::vector<int> const&");  // spaces stay
  CHECK(sd::folded_frame_name("retry 7", stats) == "retry_7");
  CHECK(sd::folded_frame_name("retry 7 3", stats) == "retry 7_3");
  CHECK(sd::folded_frame_name("ratio 1.5", stats) == "ratio_1.5");
  CHECK(sd::folded_frame_name("wide  12", stats) == "wide__12");
  CHECK(sd::folded_frame_name("retry 7\n", stats) == "retry_7");  // the newline is trailing space
  CHECK(sd::folded_frame_name("x7", stats) == "x7");
  CHECK(sd::folded_frame_name("version 1.2.3", stats) == "version 1.2.3");  // not a number to flamegraph.pl
  CHECK(sd::folded_frame_name("ends in dot .", stats) == "ends in dot .");
  CHECK(sd::folded_frame_name("", stats) == "[unknown]");
  CHECK(sd::folded_frame_name("  ", stats) == "[unknown]");
  CHECK(stats.utf8_repaired == 0);
  CHECK(sd::folded_frame_name("caf\xC3\xA9", stats) == "caf\xC3\xA9");
  CHECK(stats.utf8_repaired == 0);
  CHECK(sd::folded_frame_name("bad\xFF", stats) == "bad\xEF\xBF\xBD");
  CHECK(stats.utf8_repaired == 1);
}

TEST_CASE("folded_frame_name: any name gives a frame both flamegraph.pl and speedscope read back whole") {
  const unsigned seed = std::random_device{}();
  INFO("seed ", seed);
  std::mt19937 rng(seed);
  const std::string alphabet = "ab ;\n\r\t0123456789.\xFF";
  static const std::regex line_re(R"(^(.*)\s+?(\d+(?:\.\d*)?)$)");
  static const std::regex speedscope_re(R"(^(.*) (\d+)$)");
  for (int round = 0; round < 500; ++round) {
    std::string raw;
    const std::size_t length = rng() % 12;
    for (std::size_t i = 0; i < length; ++i) raw += alphabet[rng() % alphabet.size()];
    sd::json_text_stats stats;
    const std::string frame = sd::folded_frame_name(raw, stats);
    INFO("raw ", json(std::string(raw.begin(), raw.end())).dump(-1, ' ', false, json::error_handler_t::replace));
    CHECK(frame.find(';') == std::string::npos);
    CHECK(frame.find_first_of("\n\r\t") == std::string::npos);
    const std::string line = "root;" + frame + " 5";
    std::smatch m, s;
    REQUIRE(std::regex_match(line, m, line_re));
    CHECK(m[1].str() == "root;" + frame);
    CHECK(m[2].str() == "5");
    CHECK_FALSE(std::regex_match(m[1].str(), line_re));
    REQUIRE(std::regex_match(line, s, speedscope_re));
    CHECK(s[1].str() == "root;" + frame);
  }
}

TEST_CASE("nest_intervals: nested input comes out as is") {
  std::uint64_t clamped = 0;
  // parent [0,10], child [2,5], second child [5,9] (shares an edge with the first)
  const auto events = sd::nest_intervals({{0, 10, 0, 0}, {5, 9, 2, 2}, {2, 5, 1, 1}}, clamped);
  REQUIRE(events.size() == 6);
  const std::vector<std::tuple<bool, std::uint32_t, std::int64_t>> expected = {
      {true, 0, 0}, {true, 1, 2}, {false, 1, 5}, {true, 2, 5}, {false, 2, 9}, {false, 0, 10}};
  for (std::size_t i = 0; i < events.size(); ++i) {
    INFO("event ", i);
    CHECK(events[i].open == std::get<0>(expected[i]));
    CHECK(events[i].frame == std::get<1>(expected[i]));
    CHECK(events[i].at_ns == std::get<2>(expected[i]));
  }
  CHECK(clamped == 0);
}

TEST_CASE("nest_intervals: overlapping, reversed, zero-length and identical intervals still nest") {
  std::uint64_t clamped = 0;
  std::vector<sd::timed_interval> hostile = {
      {0, 100, 0, 0},    // root
      {10, 50, 1, 1},    // span
      {40, 70, 2, 2},    // overlaps the span's end: clamped to 50
      {60, 60, 3, 3},    // zero length
      {90, 80, 4, 4},    // ends before it begins: made zero length
      {10, 50, 5, 5},    // same edges as the span: nested inside it (higher order)
      {95, 130, 6, 6},   // beyond the root's end: clamped
      {100, 100, 7, 7},  // at the root's very end
  };
  const auto events = sd::nest_intervals(hostile, clamped);
  CHECK(events_problem(events, 8) == "");
  CHECK(events.size() == 2 * hostile.size());
  CHECK(clamped == 2);
  // Frame 5 opens after frame 1 (inside it), frame 2 inside 1 as well (it starts before 50).
  std::vector<std::uint32_t> stack_at_open_of_5, stack_at_open_of_2;
  std::vector<std::uint32_t> stack;
  for (const auto& e : events) {
    if (e.open) {
      if (e.frame == 5) stack_at_open_of_5 = stack;
      if (e.frame == 2) stack_at_open_of_2 = stack;
      stack.push_back(e.frame);
    } else {
      stack.pop_back();
    }
  }
  CHECK(stack_at_open_of_5 == std::vector<std::uint32_t>{0, 1});
  REQUIRE(stack_at_open_of_2.size() >= 2);
  CHECK(stack_at_open_of_2[1] == 1);

  SUBCASE("random intervals") {
    const unsigned seed = std::random_device{}();
    INFO("seed ", seed);
    std::mt19937 rng(seed);
    for (int round = 0; round < 200; ++round) {
      std::vector<sd::timed_interval> random;
      const std::uint32_t n = 1 + rng() % 20;
      for (std::uint32_t i = 0; i < n; ++i) {
        random.push_back({static_cast<std::int64_t>(rng() % 50), static_cast<std::int64_t>(rng() % 50), i, i});
      }
      std::uint64_t c = 0;
      const auto ev = sd::nest_intervals(random, c);
      CHECK(events_problem(ev, n) == "");
      CHECK(ev.size() == 2 * n);
    }
  }
}

TEST_CASE("render_flamegraph_svg: a titled box per frame, escaped names, widths from the counts") {
  const sd::folded_counts counts = {
      {"root;a;b", 2}, {"root;a", 1}, {"root;<script>&\"'", 1}, {"root;bad\xFF" "byte", 0},
      {std::string("root;") + std::string(5000, 'x'), 4}};
  sd::json_text_stats repaired;
  const std::string svg = sd::render_flamegraph_svg(counts, {.title = "GET /a&b <c>"}, repaired);
  INFO(svg.substr(0, 2000));
  CHECK(xml_problem(svg) == "");
  CHECK(svg.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\""));
  // all, root, a, b, <script>, xxxx: six frames; the zero count is not a frame
  CHECK(count_of(svg, "<g class=\"frame\">") == 6);
  CHECK(count_of(svg, "<title>") == 6);
  CHECK(svg.find("<title>all (8 samples, 100.00%)</title>") != std::string::npos);
  CHECK(svg.find("<title>a (3 samples, 37.50%)</title>") != std::string::npos);
  CHECK(svg.find("<title>b (2 samples, 25.00%)</title>") != std::string::npos);
  CHECK(svg.find("&lt;script&gt;&amp;&quot;&apos;") != std::string::npos);
  CHECK(svg.find("<script>") == std::string::npos);
  CHECK(svg.find("GET /a&amp;b &lt;c&gt;") != std::string::npos);
  CHECK(svg.find("bad") == std::string::npos);
  // The long name's label is cut ("..") to fit its box; its title keeps the whole name.
  CHECK(svg.find(std::string(5000, 'x') + " (4 samples") != std::string::npos);
  CHECK(count_of(svg, std::string(5000, 'x')) == 1);
  CHECK(svg.find("x..</text>") != std::string::npos);
  // Deterministic: same input, same bytes.
  sd::json_text_stats again;
  CHECK(sd::render_flamegraph_svg(counts, {.title = "GET /a&b <c>"}, again) == svg);

  SUBCASE("invalid UTF-8 and XML's forbidden characters are replaced and counted") {
    sd::json_text_stats r;
    const std::string bad = sd::render_flamegraph_svg({{"f\xFFg;\x01h\xEF\xBF\xBF", 1}}, {.title = "t"}, r);
    CHECK(xml_problem(bad) == "");
    CHECK(bad.find('\x01') == std::string::npos);
    CHECK(bad.find("\xEF\xBF\xBF") == std::string::npos);
    CHECK(bad.find("f\xEF\xBF\xBDg") != std::string::npos);
    CHECK(r.utf8_repaired >= 2);
  }
  SUBCASE("no samples still gives a valid file") {
    sd::json_text_stats r;
    const std::string empty = sd::render_flamegraph_svg({}, {.title = "t"}, r);
    CHECK(xml_problem(empty) == "");
    CHECK(count_of(empty, "<g class=\"frame\">") == 0);
  }
}

TEST_CASE("folded_aggregates: counts merge per name, caps fill [other], rewrites are rate-limited") {
  sd::folded_aggregates agg({.max_names = 2, .max_stacks_per_name = 2, .min_rewrite_interval_ns = 1'000'000'000});
  std::uint64_t stacks_over = 0, names_over = 0;
  REQUIRE(agg.add("GET /a", {{"GET /a;x", 2}, {"GET /a;y", 1}}, stacks_over, names_over) != nullptr);
  auto* a = agg.add("GET /a", {{"GET /a;x", 3}, {"GET /a;z", 4}}, stacks_over, names_over);
  REQUIRE(a != nullptr);
  CHECK(a->stacks.at("GET /a;x") == 5);
  CHECK(a->stacks.at("GET /a;y") == 1);
  CHECK(a->stacks.count("GET /a;z") == 0);
  CHECK(a->other == 4);
  CHECK(stacks_over == 1);
  CHECK(a->with_other().at("GET /a;[other]") == 4);
  CHECK(a->transactions == 2);
  CHECK(a->stem == "GET_a");
  // A second name with the same stem gets its own file.
  auto* b = agg.add("GET ?a", {{"GET ?a;x", 1}}, stacks_over, names_over);
  REQUIRE(b != nullptr);
  CHECK(b->stem != a->stem);
  CHECK(b->stem.starts_with("GET_a-"));
  CHECK(agg.add("GET /c", {{"GET /c", 1}}, stacks_over, names_over) == nullptr);
  CHECK(names_over == 1);

  std::vector<std::string> written;
  auto write = [&](const sd::folded_aggregates::aggregate& x) {
    written.push_back(x.name);
    return true;
  };
  agg.flush(0, false, write);
  CHECK(written.size() == 2);  // never written before: written now
  written.clear();
  agg.add("GET /a", {{"GET /a;x", 1}}, stacks_over, names_over);
  agg.flush(500'000'000, false, write);
  CHECK(written.empty());  // within the interval: held back
  CHECK(agg.any_dirty());
  agg.flush(1'000'000'000, false, write);
  CHECK(written == std::vector<std::string>{"GET /a"});
  CHECK_FALSE(agg.any_dirty());
  written.clear();
  agg.add("GET /a", {{"GET /a;x", 1}}, stacks_over, names_over);
  agg.flush(1'000'000'001, true, write);  // shutdown: everything changed is written
  CHECK(written == std::vector<std::string>{"GET /a"});

  SUBCASE("the bytes of all stacks are capped too") {
    sd::folded_aggregates small({.max_names = 10, .max_stacks_per_name = 100, .max_total_stack_bytes = 10});
    std::uint64_t over = 0, names = 0;
    auto* x = small.add("n", {{"n;aaaa", 1}, {"n;bbbb", 2}, {"n;cccc", 3}}, over, names);  // 6 bytes each
    REQUIRE(x != nullptr);
    CHECK(x->stacks.size() == 1);
    CHECK(x->other == 5);
    CHECK(over == 2);
  }
}

TEST_CASE("parse_formats: the speedscope, folded and flame graph names") {
  spanprof::output_format f{};
  REQUIRE(sd::parse_formats("speedscope, folded,flamegraph", f));
  CHECK(f == (spanprof::output_format::speedscope | spanprof::output_format::folded | spanprof::output_format::flamegraph));
  REQUIRE(sd::parse_formats("collapsed,svg", f));
  CHECK(f == (spanprof::output_format::folded | spanprof::output_format::flamegraph));
  CHECK_FALSE(sd::parse_formats("speedscope,flame", f));
}

// ---- through the collector ------------------------------------------------------------------

TEST_CASE("speedscope file: nested span events, samples root first, weights in ns") {
  temp_dir dir;
  spanprof::config cfg = sampling_config(dir, spanprof::sampling_mode::wall, rate_hz);
  cfg.formats = spanprof::output_format::speedscope | spanprof::output_format::chrome_trace;
  std::int64_t wall_ns = 0;
  {
    session s(cfg);
    const std::int64_t t0 = monotonic_ns();
    request();
    wall_ns = monotonic_ns() - t0;
  }
  const auto files = files_ending_with(dir.path(), ".speedscope.json");
  REQUIRE(files.size() == 1);
  const json doc = read_json(files[0]);
  CHECK(doc.at("$schema") == "https://www.speedscope.app/file-format-schema.json");
  CHECK(doc.at("name") == "GET /folded");
  const json& frames = doc.at("shared").at("frames");
  REQUIRE(frames.is_array());
  for (const json& f : frames) CHECK(f.at("name").is_string());
  auto frame_name = [&](std::int64_t i) { return frames.at(static_cast<std::size_t>(i)).at("name").get<std::string>(); };

  std::size_t evented = 0, sampled = 0;
  bool db_inside_root = false;
  std::size_t with_both = 0, caller_first = 0;  // samples showing the caller and the leaf function
  std::uint64_t weight_sum = 0, sample_count = 0;
  for (const json& p : doc.at("profiles")) {
    CHECK(p.at("unit") == "nanoseconds");
    const std::string name = p.at("name").get<std::string>();
    CHECK((name.starts_with("spans: ") || name.starts_with("samples: ")));
    if (p.at("type") == "evented") {
      ++evented;
      INFO("profile ", p.at("name"));
      CHECK(evented_problem(p.at("events"), frames.size()) == "");
      std::vector<std::string> stack;
      for (const json& e : p.at("events")) {
        if (e.at("type") == "O") {
          const std::string name = frame_name(e.at("frame"));
          if (name == std::string("db.query ") + hostile_description && stack == std::vector<std::string>{"GET /folded"}) {
            db_inside_root = true;
          }
          stack.push_back(name);
        } else {
          stack.pop_back();
        }
      }
      CHECK(p.at("startValue").get<std::int64_t>() <= p.at("events").front().at("at").get<std::int64_t>());
      CHECK(p.at("endValue").get<std::int64_t>() >= p.at("events").back().at("at").get<std::int64_t>());
    } else {
      REQUIRE(p.at("type") == "sampled");
      ++sampled;
      const json& samples = p.at("samples");
      const json& weights = p.at("weights");
      REQUIRE(samples.size() == weights.size());
      for (std::size_t n = 0; n < samples.size(); ++n) {
        CHECK(weights[n].get<std::int64_t>() > 0);
        weight_sum += weights[n].get<std::uint64_t>();
        ++sample_count;
        std::int64_t caller_at = -1, leaf_at = -1;
        for (std::size_t k = 0; k < samples[n].size(); ++k) {
          const std::int64_t idx = samples[n][k].get<std::int64_t>();
          REQUIRE(idx >= 0);
          REQUIRE(static_cast<std::size_t>(idx) < frames.size());
          const std::string name = frame_name(idx);
          if (name == "spanprof_test_folded_caller") caller_at = static_cast<std::int64_t>(k);
          if (name == "spanprof_test_folded_leaf") leaf_at = static_cast<std::int64_t>(k);
        }
        if (caller_at >= 0 && leaf_at >= 0) {
          ++with_both;
          caller_first += caller_at < leaf_at ? 1 : 0;
        }
      }
      CHECK(p.at("endValue").get<std::uint64_t>() - p.at("startValue").get<std::uint64_t>() == [&] {
        std::uint64_t sum = 0;
        for (const json& w : weights) sum += w.get<std::uint64_t>();
        return sum;
      }());
    }
  }
  CHECK(evented >= 1);
  CHECK(db_inside_root);
  MESSAGE("samples ", sample_count, ", weights ", weight_sum / 1000, " us, transaction ", wall_ns / 1000, " us");
  if (signals_deferred) return;
  CHECK(sampled >= 1);
  // Σ weights = samples × interval, each sample seen by an independent writer (Chrome trace)...
  const auto trace = sibling(files[0], ".speedscope.json", ".trace.json");
  const auto [chrome_with_stack, chrome_weight] = chrome_samples(trace);
  // Root first: the caller comes before the function it called, in every sample. Samples of
  // the root's own time are where they run (a loaded machine may leave it unsampled).
  CHECK(caller_first == with_both);
  if (chrome_samples_in_span(trace, "GET /folded") >= 2) CHECK(with_both > 0);
  CHECK(sample_count == chrome_with_stack);
  CHECK(weight_sum == chrome_weight * static_cast<std::uint64_t>(interval_ns));
  // ...and never more time than the transaction lasted (a late timer gives fewer samples, not more).
  CHECK(weight_sum > 0);
  CHECK(static_cast<std::int64_t>(weight_sum) <= wall_ns + 2 * interval_ns);
}

TEST_CASE("folded files: span path roots, escaped names, counts = samples; aggregate = sum of transactions") {
  temp_dir dir;
  spanprof::config cfg = sampling_config(dir, spanprof::sampling_mode::wall, rate_hz);
  cfg.formats = spanprof::output_format::folded | spanprof::output_format::flamegraph | spanprof::output_format::chrome_trace;
  {
    session s(cfg);
    request();
    request();
    other_request();
  }
  // The SVG is written for every transaction; the .folded only when it has samples (a
  // loaded machine may give the short one none).
  std::vector<std::filesystem::path> per_txn_svg;
  for (const auto& f : files_ending_with(dir.path(), ".svg")) {
    if (!f.filename().string().ends_with(".aggregate.svg")) per_txn_svg.push_back(f);
  }
  REQUIRE(per_txn_svg.size() == 3);

  std::map<std::string, std::uint64_t> expected_aggregate;
  bool saw_span_path = false, saw_known_function = false, saw_derived = false;
  // What the Chrome traces (an independent writer) say the sampler saw: samples taken inside
  // the db span, and in the root's own time (where the un-instrumented caller runs). On a
  // loaded machine a stretch can go unsampled; the checks below then have nothing to find.
  std::uint64_t chrome_in_db = 0, chrome_in_root = 0;
  for (const auto& svg_file : per_txn_svg) {
    const auto file = sibling(svg_file, ".svg", ".folded");
    INFO("file ", file.string());
    const std::uint64_t chrome_weight = chrome_all_sample_weight(sibling(svg_file, ".svg", ".trace.json"));
    CHECK(std::filesystem::exists(file) == (chrome_weight > 0));
    const auto counts = chrome_weight > 0 ? parse_folded(read_file(file)) : std::map<std::string, std::uint64_t>{};
    const bool is_get = file.filename().string().starts_with("GET_folded");
    const std::string root = is_get ? "GET /folded" : "POST /other";
    if (is_get) {
      chrome_in_db += chrome_samples_in_span(sibling(svg_file, ".svg", ".trace.json"), hostile_description);
      chrome_in_root += chrome_samples_in_span(sibling(svg_file, ".svg", ".trace.json"), "GET /folded");
    }
    for (const auto& [stack, count] : counts) {
      CHECK((stack == root || stack.starts_with(root + ";")));
      if (stack.starts_with(root + ";" + hostile_description_folded + ";")) saw_span_path = true;
      if (stack.find("request();spanprof_test_folded_caller;spanprof_test_folded_leaf") != std::string::npos) {
        saw_known_function = true;
        // Trimmed at the function that opened the transaction: nothing of the thread above it.
        CHECK(stack.find(";main;") == std::string::npos);
      }
      if (stack.find(";span:profile.inferred ") != std::string::npos) saw_derived = true;
      if (is_get) expected_aggregate[stack] += count;
    }
    // Every sample counted once, with its weight (Chrome trace: an independent writer).
    CHECK(total(counts) == chrome_weight);

    const std::string svg = read_file(svg_file);
    CHECK(xml_problem(svg) == "");
    CHECK(count_of(svg, "<g class=\"frame\">") == count_of(svg, "<title>"));
    if (chrome_weight > 0) {
      CHECK(svg.find("<title>all (" + std::to_string(total(counts)) + " samples, 100.00%)</title>") != std::string::npos);
    } else {
      CHECK(svg.find(">no samples</text>") != std::string::npos);
    }
  }
  MESSAGE("samples in the db spans: ", chrome_in_db, ", in the roots' own time: ", chrome_in_root);
  if (!signals_deferred) {
    // Two or more: gap filling may snap a lone sample at a span's edge into the parent's gap.
    if (chrome_in_db >= 2) CHECK(saw_span_path);
    if (chrome_in_root >= 2) {
      CHECK(saw_known_function);
      CHECK(saw_derived);
    }
  }

  const auto aggregate_file = dir / "GET_folded.aggregate.folded";
  const auto aggregate = parse_folded(read_file(aggregate_file));
  CHECK(aggregate == expected_aggregate);
  CHECK(std::filesystem::exists(dir / "POST_other.aggregate.svg"));
  const std::string aggregate_svg = read_file(dir / "GET_folded.aggregate.svg");
  CHECK(xml_problem(aggregate_svg) == "");
  CHECK(aggregate_svg.find("(2 transactions)") != std::string::npos);
  CHECK(aggregate_svg.find("<title>all (" + std::to_string(total(expected_aggregate)) + " samples, 100.00%)</title>") !=
        std::string::npos);
  CHECK(spanprof::stats().aggregate_stacks_over_cap == 0);
}

TEST_CASE("hostile names: invalid UTF-8, separators and huge descriptions give valid files, repairs counted") {
  temp_dir dir;
  spanprof::config cfg = config_for(dir);
  cfg.sampling = false;  // the span frames alone carry the names
  cfg.log_errors_to_stderr = false;
  cfg.formats = spanprof::output_format::speedscope | spanprof::output_format::folded | spanprof::output_format::flamegraph;
  const std::string huge(100'000, 'q');
  {
    session s(cfg);
    SPANPROF_TRANSACTION("bad \xFF name;<svg> & 7");
    { SPANPROF_SPAN("db\n.query", "x\xC3;y\t 42"); }
    { SPANPROF_SPAN("huge", huge); }
  }
  const auto speedscope = files_ending_with(dir.path(), ".speedscope.json");
  REQUIRE(speedscope.size() == 1);
  const json doc = read_json(speedscope[0]);  // nlohmann rejects invalid UTF-8: parsing is the check
  const json& frames = doc.at("shared").at("frames");
  bool saw_truncated = false;
  for (const json& f : frames) {
    const std::string name = f.at("name").get<std::string>();
    CHECK(name.size() < huge.size());  // cut at max_description_bytes
    saw_truncated |= name.find("[truncated]") != std::string::npos;
  }
  CHECK(saw_truncated);
  for (const json& p : doc.at("profiles")) {
    if (p.at("type") == "evented") CHECK(evented_problem(p.at("events"), frames.size()) == "");
  }
  // No samples: no stacks, and no empty .folded file for flamegraph.pl and speedscope to reject.
  CHECK(files_ending_with(dir.path(), ".folded").empty());
  const auto svgs = files_ending_with(dir.path(), ".svg");
  CHECK(svgs.size() == 2);  // the transaction's and its name's aggregate
  for (const auto& file : svgs) {
    const std::string svg = read_file(file);
    CHECK(xml_problem(svg) == "");
    CHECK(svg.find("&lt;svg&gt; &amp; 7") != std::string::npos);  // the title, escaped
    CHECK(svg.find('\xFF') == std::string::npos);
  }
  CHECK(spanprof::stats().invalid_utf8_repaired > 0);
}

#endif
