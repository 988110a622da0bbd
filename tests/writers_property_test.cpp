// Property test of every writer (writers_table.hpp) over seeded synthetic transactions
// (synthetic_transaction.hpp): whatever the names, sizes and shapes, each output is accepted by
// an in-process parser (nlohmann: strict JSON, strict UTF-8, no repeated key in an object) and
// keeps the format's invariants — every sample and span written, X events nested per thread,
// ids and timestamps well formed, names repaired (and counted) but never dropped.
//
// SPANPROF_PROPERTY_SEEDS sets how many seeds (default 300; 60 under sanitizers, which are ~10x
// slower, and one seed per extreme case); SPANPROF_PROPERTY_FIRST_SEED where they start. A
// failure prints its seed and knobs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "support/pprof_reader.hpp"
#include "support/synthetic_transaction.hpp"
#include "support/text_samples.hpp"
#include "support/writers_table.hpp"
#include "support/build_kind.hpp"

namespace {

using json = nlohmann::json;
namespace sd = spanprof::detail;
using spanprof_test::is_lower_hex;
using spanprof_test::synthetic_knobs;
using spanprof_test::synthetic_transaction;

using spanprof_test::under_sanitizer;
constexpr std::uint64_t default_seed_count = under_sanitizer ? 60 : 300;

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

constexpr std::string_view replacement_character = "\xEF\xBF\xBD";

// Totals over a run: the test also checks that the generator reached what it is meant to
// exercise, or a passing run would prove nothing.
struct coverage {
  std::uint64_t derived_spans = 0;
  std::uint64_t repaired_outputs = 0;
  std::uint64_t truncated_names = 0;
  std::uint64_t truncated_stacks = 0;
  std::uint64_t zero_sample_txns = 0;
  std::uint64_t multi_thread_txns = 0;
  std::uint64_t hostile_names = 0;
};

// Strict parse: nlohmann rejects invalid UTF-8 and bad escapes. A SAX pass first finds an object
// that repeats a key (serde-based readers such as Relay refuse those; nlohmann's DOM would keep
// one silently; its callback parser is quadratic on objects of objects, hence SAX).
class duplicate_key_finder : public nlohmann::json_sax<json> {
 public:
  std::string duplicate;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    keys_.emplace_back();
    return true;
  }
  bool key(string_t& k) override {
    if (!keys_.back().insert(k).second && duplicate.empty()) duplicate = k;
    return true;
  }
  bool end_object() override {
    keys_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    error = e.what();
    return false;
  }
  std::string error;

 private:
  std::vector<std::set<std::string>> keys_;
};

json parse_strict(const std::string& text, std::string& duplicate_key) {
  duplicate_key_finder finder;
  json::sax_parse(text, &finder);
  duplicate_key = finder.duplicate;
  return json::parse(text);  // throws on anything the SAX pass saw as an error
}

// What a writer must show for a name it was given: the text itself when it was valid UTF-8
// and not cut; a repair (U+FFFD) when it was not valid; the marker with the original size when
// it was cut. Expected values come from the generator's input, never from the writer's helpers.
void check_name(std::string_view what, const std::string& written, std::string_view input, bool valid_utf8,
                std::uint32_t original_size, coverage& cov) {
  INFO(what, ": written \"", written.substr(0, 200), "\"");
  const bool truncated = original_size > input.size();
  if (truncated) {
    ++cov.truncated_names;
    CHECK(written.find("[truncated from " + std::to_string(original_size) + " bytes]") != std::string::npos);
  }
  if (valid_utf8) {
    CHECK(written.substr(0, input.size()) == input);
    if (!truncated) CHECK(written.size() == input.size());
  } else {
    CHECK(!written.empty());
    CHECK(written.find(replacement_character) != std::string::npos);
  }
}

std::int64_t to_ns(const json& microseconds) { return std::llround(microseconds.get<double>() * 1000.0); }
// The Chrome writer's own time unit, 1/1024 µs (common.hpp): exact, so sums can be compared.
std::int64_t to_trace_units(const json& microseconds) { return std::llround(microseconds.get<double>() * 1024.0); }

// How a reader computes an X event's end: exactly, from the text in nanoseconds (Perfetto), or
// as JavaScript viewers do, ts + dur in doubles (speedscope, chrome://tracing, DevTools).
enum class end_arithmetic { exact_ns, doubles };

// The Trace Event Format's rule for duration events of one thread: they nest (formats.md §2).
template <end_arithmetic Arithmetic = end_arithmetic::exact_ns>
void check_x_events_nest(const json& events) {
  using time = std::conditional_t<Arithmetic == end_arithmetic::exact_ns, std::int64_t, double>;
  struct slice {
    time begin, end;
    std::size_t index;
  };
  std::map<std::int64_t, std::vector<slice>> by_tid;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const json& e = events[i];
    if (e.at("ph") != "X") continue;
    time ts, dur;
    if constexpr (Arithmetic == end_arithmetic::exact_ns) {
      ts = to_trace_units(e.at("ts"));
      dur = to_trace_units(e.at("dur"));
    } else {
      ts = e.at("ts").get<double>();
      dur = e.at("dur").get<double>();
    }
    if (dur < 0) FAIL_CHECK("negative dur: ", e.dump().substr(0, 300));
    by_tid[e.at("tid").get<std::int64_t>()].push_back({ts, ts + dur, i});
  }
  for (auto& [tid, slices] : by_tid) {
    std::stable_sort(slices.begin(), slices.end(), [](const slice& a, const slice& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end > b.end;
    });
    std::vector<slice> open;
    for (const slice& s : slices) {
      while (!open.empty() && open.back().end <= s.begin) open.pop_back();
      if (!open.empty() && s.end > open.back().end) {
        constexpr const char* unit = Arithmetic == end_arithmetic::exact_ns ? " (1/1024 us)" : " us (doubles)";
        FAIL_CHECK("tid ", tid, ": event ", s.index, " [", s.begin, ", ", s.end, "]", unit, " overlaps event ", open.back().index,
                   " [", open.back().begin, ", ", open.back().end, "] without nesting in it: ", events[s.index].dump().substr(0, 300),
                   " vs ", events[open.back().index].dump().substr(0, 300));
        return;
      }
      open.push_back(s);
    }
  }
}

std::string label_of(const sd::finished_transaction& txn, std::size_t i) {
  const sd::span_record& s = txn.span(i);
  if (i == 0) return std::string(txn.name());
  return std::string(s.description.view().empty() ? s.op.view() : s.description.view());
}
std::uint32_t label_original_size(const sd::finished_transaction& txn, std::size_t i) {
  const sd::span_record& s = txn.span(i);
  if (i == 0) return s.description.original_size;
  return s.description.view().empty() ? s.op.original_size : s.description.original_size;
}

void check_chrome_trace(const json& doc, const synthetic_transaction& g, coverage& cov) {
  const sd::finished_transaction& txn = g.txn();
  const auto& samples = txn.sampled.samples;
  REQUIRE(doc.at("traceEvents").is_array());
  const json& events = doc.at("traceEvents");
  CHECK(doc.at("otherData").at("samples") == samples.size());
  CHECK(doc.at("otherData").at("trace_id") == std::string(sd::to_hex(txn.rec.trace).text, 32));

  std::vector<const json*> spans, derived, sample_events;
  for (const json& e : events) {
    REQUIRE(e.contains("name"));  // DevTools' engine throws on an event without a name
    REQUIRE(e.at("name").is_string());
    const std::string ph = e.at("ph");
    if (ph != "M") CHECK(e.contains("ts"));
    // Spans are X events, or instants when they have no length (zero-length, or clamped away).
    if (ph == "X" || (ph == "i" && e.value("cat", "") != "spanprof.sample")) {
      const std::string cat = e.at("cat");
      (cat == "transaction" || cat == "span" ? spans : derived).push_back(&e);
    }
    if (ph == "i" && e.value("cat", "") == "spanprof.sample") sample_events.push_back(&e);
  }
  // Every span and sample written, none invented.
  REQUIRE(spans.size() == txn.span_count());
  CHECK(derived.size() == txn.analysis->gaps.derived_spans.size());
  REQUIRE(sample_events.size() == samples.size());
  for (std::size_t i = 0; i < txn.span_count(); ++i) {
    check_name("span " + std::to_string(i), spans[i]->at("name").get<std::string>(), label_of(txn, i), g.label_is_valid_utf8(i),
               label_original_size(txn, i), cov);
    CHECK(spans[i]->at("args").at("span_id") == std::string(sd::to_hex(txn.span(i).id).text, 16));
    // Written in units of 1/1024 µs, moved inward by its nesting depth (a unit per level), and
    // clamped into its parent when it overlapped a sibling: never before its true begin.
    CHECK(to_ns(spans[i]->at("ts")) + 1 >= txn.begin_ns(i) - txn.begin_ns(0));
  }
  // Samples in order, on their thread, with their whole stack.
  // (Tallied, then checked once: a CHECK per sample would dominate the run time.)
  std::size_t wrong_tid = 0, wrong_depth = 0, out_of_order = 0;
  for (std::size_t n = 0; n < samples.size(); ++n) {
    const json& e = *sample_events[n];
    wrong_tid += e.at("tid") != samples[n].tid ? 1 : 0;
    wrong_depth += e.at("args").at("stack").size() != samples[n].pcs.size() ? 1 : 0;
    out_of_order += n > 0 && to_trace_units(e.at("ts")) < to_trace_units(sample_events[n - 1]->at("ts")) ? 1 : 0;
  }
  CHECK(wrong_tid == 0);
  CHECK(wrong_depth == 0);
  CHECK(out_of_order == 0);
  check_x_events_nest(events);
  // Each sample's "sf" names a node of stackFrames whose parent chain is as deep as its stack.
  if (doc.contains("stackFrames")) {
    const json& frames = doc.at("stackFrames");
    std::size_t wrong_sf = 0;
    for (std::size_t n = 0; n < samples.size(); ++n) {
      const auto stack = txn.analysis->stack_of(n);
      if (stack.empty()) {
        wrong_sf += sample_events[n]->contains("sf") ? 1 : 0;
        continue;
      }
      std::string node = sample_events[n]->at("sf");
      std::size_t depth = 0;
      while (frames.contains(node) && depth <= stack.size()) {
        ++depth;
        const json& f = frames.at(node);
        if (!f.contains("parent")) break;
        node = f.at("parent");
      }
      wrong_sf += depth != stack.size() ? 1 : 0;
    }
    CHECK(wrong_sf == 0);
  } else {
    CHECK(txn.analysis->stack_frames.empty());
  }
}

// The span statuses Sentry's own protocol types accept (sentry-cli's error message lists them).
bool is_sentry_status(const json& v) {
  static const std::set<std::string> statuses = {
      "ok", "deadline_exceeded", "unauthenticated", "permission_denied", "not_found", "resource_exhausted",
      "invalid_argument", "unimplemented", "unavailable", "internal_error", "unknown_error", "cancelled",
      "already_exists", "failed_precondition", "aborted", "out_of_range", "data_loss"};
  return v.is_string() && statuses.count(v.get<std::string>()) == 1;
}

void check_sentry_transaction(const json& doc, const synthetic_transaction& g, coverage& cov) {
  const sd::finished_transaction& txn = g.txn();
  CHECK(doc.at("type") == "transaction");
  CHECK(is_lower_hex(doc.at("event_id"), 32));
  const json& trace = doc.at("contexts").at("trace");
  CHECK(is_lower_hex(trace.at("trace_id"), 32));
  CHECK(is_lower_hex(trace.at("span_id"), 16));
  CHECK(is_sentry_status(trace.at("status")));
  check_name("transaction", doc.at("transaction").get<std::string>(), txn.name(), g.name_is_valid_utf8(),
             txn.span(0).description.original_size, cov);
  // RFC 3339 with microseconds, fixed width: text order is time order.
  CHECK(doc.at("start_timestamp").get<std::string>() <= doc.at("timestamp").get<std::string>());
  const json& spans = doc.at("spans");
  REQUIRE(spans.size() == txn.span_count() - 1 + txn.analysis->gaps.derived_spans.size());
  std::set<std::string> ids{trace.at("span_id").get<std::string>()};
  for (const json& s : spans) CHECK(ids.insert(s.at("span_id").get<std::string>()).second);  // unique
  for (std::size_t k = 0; k < spans.size(); ++k) {
    const json& s = spans[k];
    INFO("span ", k, ": ", s.dump().substr(0, 300));
    CHECK(is_lower_hex(s.at("span_id"), 16));
    CHECK(is_lower_hex(s.at("parent_span_id"), 16));
    CHECK(ids.count(s.at("parent_span_id").get<std::string>()) == 1);  // the tree holds together
    CHECK(s.at("trace_id") == trace.at("trace_id"));
    CHECK(s.at("start_timestamp").get<std::string>() <= s.at("timestamp").get<std::string>());
    CHECK(s.at("data").is_object());
    CHECK(is_sentry_status(s.at("status")));
    if (k + 1 < txn.span_count()) {
      const sd::span_record& r = txn.span(k + 1);
      CHECK(s.at("origin") == "manual");
      const bool description_labels = !r.description.view().empty();
      if (description_labels) {
        check_name("span description", s.at("description").get<std::string>(), r.description.view(), g.label_is_valid_utf8(k + 1),
                   r.description.original_size, cov);
      }
    } else {
      CHECK(s.at("origin") == "auto.profile.spanprof");
    }
  }
}

// The sum of the weights of the samples that have a symbolized stack: what the sample-based
// formats must account for.
std::uint64_t weight_with_stack(const sd::finished_transaction& txn) {
  std::uint64_t total = 0;
  for (std::size_t n = 0; n < txn.sampled.samples.size(); ++n) {
    if (!txn.analysis->stack_of(n).empty()) total += std::max<std::uint32_t>(1, txn.sampled.samples[n].weight);
  }
  return total;
}

// speedscope: what its importer enforces beyond the schema (formats.md §3).
void check_speedscope(const json& doc, const synthetic_transaction& g, coverage&) {
  CHECK(doc.at("$schema") == "https://www.speedscope.app/file-format-schema.json");
  const std::size_t frame_count = doc.at("shared").at("frames").size();
  std::size_t samples = 0;
  for (const json& p : doc.at("profiles")) {
    if (p.at("type") == "evented") {
      std::vector<std::int64_t> open;
      double at = -1e300;
      for (const json& e : p.at("events")) {
        const std::int64_t frame = e.at("frame").get<std::int64_t>();
        REQUIRE(frame >= 0);
        REQUIRE(static_cast<std::size_t>(frame) < frame_count);
        CHECK(e.at("at").get<double>() >= at);
        at = e.at("at").get<double>();
        if (e.at("type") == "O") {
          open.push_back(frame);
        } else {
          REQUIRE_MESSAGE(!open.empty(), "C without an open frame");
          CHECK(open.back() == frame);
          open.pop_back();
        }
      }
      CHECK(open.empty());
    } else {
      REQUIRE(p.at("type") == "sampled");
      REQUIRE(p.at("samples").size() == p.at("weights").size());
      for (const json& stack : p.at("samples")) {
        for (const json& f : stack) CHECK(f.get<std::size_t>() < frame_count);
      }
      for (const json& w : p.at("weights")) CHECK(w.get<double>() > 0);
      samples += p.at("samples").size();
    }
  }
  std::size_t with_stack = 0;
  for (std::size_t n = 0; n < g.txn().sampled.samples.size(); ++n) with_stack += g.txn().analysis->stack_of(n).empty() ? 0 : 1;
  CHECK(samples == with_stack);  // every sample with a stack, none invented
}

using format_check = void (*)(const json&, const synthetic_transaction&, coverage&);
// Format-specific invariants of the JSON formats, by writer name.
const std::map<std::string_view, format_check> format_checks = {
    {"chrome_trace", &check_chrome_trace},
    {"sentry_transaction", &check_sentry_transaction},
    {"speedscope", &check_speedscope},
};

// Sentry envelope: exact framing (each item's `length` bytes, then a newline), strict JSON in
// every part, the transaction and profile linked, the profile's stacks and samples consistent.
void check_envelope(const std::string& out, const synthetic_transaction& g, coverage& cov) {
  std::size_t at = out.find('\n');
  REQUIRE(at != std::string::npos);
  std::string duplicate;
  const json header = parse_strict(out.substr(0, at), duplicate);
  CHECK(header.at("event_id") == std::string(sd::to_hex(g.txn().rec.event_id).text, 32));
  ++at;
  json transaction, profile;
  while (at < out.size()) {
    const std::size_t end_of_header = out.find('\n', at);
    REQUIRE(end_of_header != std::string::npos);
    const json item = parse_strict(out.substr(at, end_of_header - at), duplicate);
    const std::size_t length = item.at("length").get<std::size_t>();
    REQUIRE(end_of_header + 1 + length < out.size() + 1);
    const std::string payload = out.substr(end_of_header + 1, length);
    at = end_of_header + 1 + length;
    REQUIRE_MESSAGE(at < out.size(), "the last item has no newline after its length bytes");
    CHECK(out[at] == '\n');
    ++at;
    const json parsed = parse_strict(payload, duplicate);
    CHECK(duplicate.empty());
    if (item.at("type") == "transaction") transaction = parsed;
    else if (item.at("type") == "profile") profile = parsed;
    else FAIL_CHECK("unexpected item type ", item.at("type"));
  }
  REQUIRE(transaction.is_object());
  check_sentry_transaction(transaction, g, cov);
  if (profile.is_null()) return;  // left out, as Sentry would have rejected it (counted by the writer)
  CHECK(transaction.at("contexts").at("profile").at("profile_id") == profile.at("event_id"));
  CHECK(profile.at("transaction").at("id") == transaction.at("event_id"));
  const json& p = profile.at("profile");
  const std::size_t frames = p.at("frames").size(), stacks = p.at("stacks").size();
  for (const json& stack : p.at("stacks")) {
    for (const json& f : stack) CHECK(f.get<std::size_t>() < frames);
  }
  std::uint64_t previous = 0;
  for (const json& smp : p.at("samples")) {
    CHECK(smp.at("stack_id").get<std::size_t>() < stacks);
    const std::string elapsed = smp.at("elapsed_since_start_ns").get<std::string>();
    REQUIRE(!elapsed.empty());
    CHECK(elapsed.find_first_not_of("0123456789") == std::string::npos);
    CHECK(std::stoull(elapsed) >= previous);
    previous = std::stoull(elapsed);
  }
}

// pprof: decoded by the test's own reader; pprof's CheckValid rules, and every sample counted.
void check_pprof(const std::string& out, const synthetic_transaction& g, coverage&) {
  namespace pr = spanprof_test::pprof_reader;
  const pr::profile p = pr::decode_profile(pr::gunzip(out));
  REQUIRE(!p.strings.empty());
  CHECK(p.strings[0].empty());
  REQUIRE(p.sample_types.size() == 2);
  std::set<std::uint64_t> location_ids, function_ids;
  for (const pr::location& l : p.locations) CHECK(l.id != 0);
  for (const pr::location& l : p.locations) location_ids.insert(l.id);
  for (const pr::function& f : p.functions) function_ids.insert(f.id);
  CHECK(location_ids.size() == p.locations.size());
  CHECK(function_ids.size() == p.functions.size());
  CHECK(function_ids.count(0) == 0);
  for (const pr::location& l : p.locations) {
    for (const pr::line& ln : l.lines) CHECK(function_ids.count(ln.function_id) == 1);
  }
  std::int64_t counted = 0;
  for (const pr::sample& s : p.samples) {
    REQUIRE(s.values.size() == 2);
    counted += s.values[0];
    for (const std::uint64_t id : s.location_ids) CHECK(location_ids.count(id) == 1);
    for (const pr::label& l : s.labels) {
      CHECK(l.key > 0);
      CHECK(static_cast<std::size_t>(l.key) < p.strings.size());
      CHECK(static_cast<std::size_t>(l.str) < p.strings.size());
    }
  }
  CHECK(static_cast<std::uint64_t>(counted) == g.txn().sampled.samples.size());  // every sample, once
}

bool all_digits(std::string_view s) { return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos; }

// Folded stacks: what flamegraph.pl and speedscope read (formats.md §5), every sample counted.
// (Plain string scans: std::regex recurses per character and overflows the stack on 1 MiB names.)
void check_folded(const std::string& out, const synthetic_transaction& g, coverage&) {
  std::set<std::string> stacks;
  std::uint64_t total = 0;
  std::size_t start = 0;
  while (start < out.size()) {
    const std::size_t end = out.find('\n', start);
    REQUIRE(end != std::string::npos);
    const std::string_view line(out.data() + start, end - start);
    start = end + 1;
    // "<stack> <count>": one space, a positive integer, a stack that does not end in a space.
    const std::size_t space = line.rfind(' ');
    REQUIRE_MESSAGE(space != std::string_view::npos, line.substr(0, 200));
    const std::string_view stack = line.substr(0, space), count = line.substr(space + 1);
    REQUIRE_MESSAGE(all_digits(count), line.substr(0, 200));
    CHECK(count.front() != '0');
    REQUIRE(!stack.empty());
    CHECK(stack.back() != ' ');
    // flamegraph.pl reads "<stack> <n> <m>" as a differential line: no leaf may end in " <number>".
    const std::size_t leaf_space = stack.rfind(' ');
    if (leaf_space != std::string_view::npos && stack.rfind(';') < leaf_space) {
      const std::string_view tail = stack.substr(leaf_space + 1);  // a number is "12" or "12." or "12.5"
      const std::size_t dot = tail.find('.');
      const bool number = all_digits(tail.substr(0, dot)) &&
                          (dot == std::string_view::npos || tail.size() == dot + 1 || all_digits(tail.substr(dot + 1)));
      CHECK_MESSAGE(!number, line.substr(line.size() > 200 ? line.size() - 200 : 0));
    }
    CHECK(line.find('\r') == std::string_view::npos);
    CHECK(line.find('\t') == std::string_view::npos);
    CHECK(stacks.insert(std::string(stack)).second);
    total += std::stoull(std::string(count));
  }
  CHECK(total == weight_with_stack(g.txn()));
}

// The SVG flame graph: one document, escaped, a box title per frame; "no samples" otherwise.
void check_flamegraph(const std::string& out, const synthetic_transaction& g, coverage&) {
  CHECK(out.find("<svg") != std::string::npos);
  CHECK(out.ends_with("</svg>\n"));
  CHECK(out.find('\0') == std::string::npos);
  // Every '&' starts an entity: a raw one is what xmllint rejects first.
  std::size_t raw_ampersands = 0;
  for (std::size_t at = out.find('&'); at != std::string::npos; at = out.find('&', at + 1)) {
    const std::size_t semicolon = out.find(';', at);
    const std::string_view entity =
        semicolon == std::string::npos ? std::string_view() : std::string_view(out).substr(at + 1, semicolon - at - 1);
    const bool known = entity == "amp" || entity == "lt" || entity == "gt" || entity == "quot" || entity == "apos" ||
                       (entity.size() > 1 && entity[0] == '#' && entity.size() < 10);
    raw_ampersands += known ? 0 : 1;
  }
  CHECK(raw_ampersands == 0);
  std::size_t titles = 0;
  for (std::size_t at = out.find("<title>"); at != std::string::npos; at = out.find("<title>", at + 1)) ++titles;
  CHECK((titles > 1) == (weight_with_stack(g.txn()) > 0));
}

using text_check = void (*)(const std::string&, const synthetic_transaction&, coverage&);
// Format-specific invariants of the other formats. A writer in neither map fails the test.
const std::map<std::string_view, text_check> text_checks = {
    {"sentry_envelope", &check_envelope},
    {"pprof", &check_pprof},
    {"folded", &check_folded},
    {"flamegraph", &check_flamegraph},
};

void check_every_writer(const synthetic_transaction& g, coverage& cov) {
  const synthetic_knobs& k = g.knobs();
  INFO("seed ", g.seed(), " knobs: hostile=", k.hostile_names, " invalid_utf8=", k.invalid_utf8, " huge=", k.huge_strings,
       " spans=", g.txn().span_count(), " nesting=", k.nesting_depth, " zero_length=", k.zero_length_spans, " open=", k.open_spans,
       " samples=", k.sample_count, " same_ts=", k.same_timestamp_samples, " threads=", k.thread_count,
       " max_depth=", k.max_stack_depth, " extra_depth=", k.extra_stack_depth, " cpu=", k.cpu_mode, " duration_ns=", k.duration_ns);
  cov.derived_spans += g.txn().analysis->gaps.derived_spans.size();
  cov.truncated_stacks += g.txn().sampled.truncated;
  cov.zero_sample_txns += g.txn().sampled.samples.empty() ? 1 : 0;
  cov.multi_thread_txns += k.thread_count > 1 ? 1 : 0;
  cov.hostile_names += k.hostile_names ? 1 : 0;
  for (const auto& writer : spanprof_test::all_writers) {
    INFO("writer ", writer.name);
    sd::json_text_stats stats;
    std::string out;
    REQUIRE_NOTHROW(out = writer.write(g.txn(), stats));
    if (writer.name == "folded" && weight_with_stack(g.txn()) == 0) {
      CHECK(out.empty());  // no samples, no lines: the collector writes no file
      continue;
    }
    if (writer.name == "sentry_envelope" && out.empty()) {
      // None when the transaction event alone is over Relay's 1 MB (reported by the collector).
      sd::json_text_stats ignored;
      CHECK(sd::write_sentry_transaction(g.txn(), ignored).size() > 1'000'000);
      continue;
    }
    REQUIRE(!out.empty());
    if (writer.name != "pprof") {  // text formats; pprof is gzip, checked by decoding it
      CHECK(out.back() == '\n');  // complete, as a text file should end
      // Repairs are counted exactly when they happen (no U+FFFD is ever planted). The flame
      // graph leaves out boxes too narrow to draw, so a repaired name may not be in it.
      const bool repaired = out.find(replacement_character) != std::string::npos;
      if (writer.name == "flamegraph") CHECK((stats.utf8_repaired > 0) >= repaired);
      else CHECK((stats.utf8_repaired > 0) == repaired);
      cov.repaired_outputs += repaired ? 1 : 0;
    }
    if (writer.extension.ends_with(".json")) {
      std::string duplicate;
      json doc;
      try {
        doc = parse_strict(out, duplicate);
      } catch (const json::exception& e) {
        FAIL("not strict JSON: ", e.what());
      }
      CHECK_MESSAGE(duplicate.empty(), "an object repeats the key \"", duplicate, "\"");
      const auto check = format_checks.find(writer.name);
      REQUIRE_MESSAGE(check != format_checks.end(), "writer ", writer.name, " has no format-specific checks here");
      check->second(doc, g, cov);
    } else {
      const auto check = text_checks.find(writer.name);
      REQUIRE_MESSAGE(check != text_checks.end(), "writer ", writer.name, " has no format-specific checks here");
      check->second(out, g, cov);
    }
  }
}

}  // namespace

TEST_CASE("writers: seeded synthetic transactions give valid files with every sample, span and name") {
  const std::uint64_t first = env_number("SPANPROF_PROPERTY_FIRST_SEED", 1);
  const std::uint64_t count = env_number("SPANPROF_PROPERTY_SEEDS", default_seed_count);
  coverage cov;
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    const synthetic_transaction g(seed);
    check_every_writer(g, cov);
  }
  // The run exercised what it claims to (with the default seed range).
  if (count >= 50) {
    CHECK(cov.derived_spans > 0);
    CHECK(cov.repaired_outputs > 0);
    CHECK(cov.truncated_stacks > 0);
    CHECK(cov.zero_sample_txns > 0);
    CHECK(cov.multi_thread_txns > 0);
    CHECK(cov.hostile_names > 0);
  }
}

TEST_CASE("writers: the extremes — huge strings, deep stacks, many samples, many and deep spans") {
  coverage cov;
  synthetic_knobs k;
  SUBCASE("1 MiB strings, hostile and invalid names") {
    k.huge_strings = k.hostile_names = k.invalid_utf8 = true;
    k.sample_count = 20;
  }
  SUBCASE("stacks of 500+ frames, the deepest cut at max depth") {
    k.extra_stack_depth = 600;
    k.max_stack_depth = 1024;
    k.sample_count = 30;
  }
  SUBCASE("100,000 samples, some at one timestamp, on three threads") {
    k.sample_count = 100'000;
    k.same_timestamp_samples = true;
    k.thread_count = 3;
    k.span_count = 60;
    k.duration_ns = 20'000'000'000;
  }
  SUBCASE("zero samples") { k.sample_count = 0; }
  SUBCASE("one sample") { k.sample_count = 1; }
  SUBCASE("4,000 spans, a chain 1,000 deep, zero-length and open spans") {
    k.span_count = 4000;
    k.nesting_depth = 1000;
    k.zero_length_spans = k.open_spans = true;
    k.sample_count = 500;
  }
  SUBCASE("a transaction of 1 ns") {
    k.duration_ns = 1;
    k.span_count = 5;
    k.sample_count = 3;
  }
  // Two seeds each; one for the costly 10^5-sample case, and for all under sanitizers.
  for (std::uint64_t seed = 1; seed <= (k.sample_count > 10'000 || under_sanitizer ? 1u : 2u); ++seed) {
    const synthetic_transaction g(seed, k);
    check_every_writer(g, cov);
  }
}

// A span and its child that end at the same nanosecond (every chain closed at once by
// auto-closing, or by shutdown's snapshot): JavaScript viewers add ts + dur in doubles, and with
// decimal fractions the child's sum could come out one ulp past the parent's (speedscope
// --strict: "Tried to end ... when ... was on the top"; found by the writers corpus). Times in
// binary fractions of a µs (common.hpp) make the sums exact.
TEST_CASE("writers: Chrome trace X events nest in a JavaScript viewer's double arithmetic") {
  const std::uint64_t count = env_number("SPANPROF_PROPERTY_SEEDS", default_seed_count);
  for (std::uint64_t seed = 1; seed <= count; ++seed) {
    const synthetic_transaction g(seed);
    INFO("seed ", seed);
    sd::json_text_stats stats;
    const json doc = json::parse(sd::write_chrome_trace(g.txn(), stats));
    check_x_events_nest<end_arithmetic::doubles>(doc.at("traceEvents"));
  }
}
