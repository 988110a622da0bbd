// writers/*.hpp through the public API: transactions recorded with the macros, written by the
// collector (spanprof::shutdown() joins it, so the files are complete), read back with nlohmann.
#include <spanprof/spanprof.hpp>

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "support/test_support.hpp"

using spanprof_test::json;
using spanprof_test::read_file;
using spanprof_test::session;
using spanprof_test::span_described;
using spanprof_test::temp_dir;

namespace {

namespace fs = std::filesystem;

spanprof::config config_for(const fs::path& dir) {
  spanprof::config cfg;
  cfg.output_dir = dir.string();
  cfg.formats = spanprof::output_format::chrome_trace | spanprof::output_format::sentry_transaction;
  cfg.log_errors_to_stderr = false;
  return cfg;
}

// The lines the macros of traced_request() are on.
struct sites {
  int transaction = 0, query = 0, connect = 0, lookup = 0;
};

// clang-format off
void traced_request(sites& at) {
  at.transaction = __LINE__; SPANPROF_TRANSACTION_NAMED(txn, "GET /users/{id}", "http.server");
  txn.set_data("http.request.method", "GET");
  {
    at.query = __LINE__; SPANPROF_SPAN_NAMED(query, "db.sql.query", "SELECT * FROM users WHERE id = ?");
    query.set_data("db.rows", 1);
    query.set_data("db.system", "sqlite");
    query.set_data("db.rows", 42);  // set twice: only the latest value is kept
    query.set_data("cache.hit", false);
    query.set_data("db.ratio", 0.25);
    {
      at.connect = __LINE__; SPANPROF_SPAN("db.connect", "pool.acquire");
      SPANPROF_SET_DATA("pool.size", 8);  // goes to the innermost open span
    }
  }
  {
    at.lookup = __LINE__; SPANPROF_SPAN_NAMED(lookup, "cache.get", "user:7");
    lookup.set_status(spanprof::status::not_found);
  }
  txn.set_status(spanprof::status::permission_denied);
}
// clang-format on

}  // namespace

#if !defined(SPANPROF_DISABLE)

namespace {

// Parses `text` and fails the test if an object repeats a key (nlohmann would keep the last).
json parse_unique_keys(const std::string& text) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  json parsed = json::parse(text, [&](int, json::parse_event_t event, json& value) {
    if (event == json::parse_event_t::object_start) open_objects.emplace_back();
    if (event == json::parse_event_t::object_end) open_objects.pop_back();
    if (event == json::parse_event_t::key && !open_objects.back().insert(value.get<std::string>()).second) {
      duplicate = value.get<std::string>();
    }
    return true;
  });
  INFO("duplicate key: ", duplicate);
  CHECK(duplicate.empty());
  return parsed;
}

// Both files of one transaction, found by the event id in their names.
struct profile {
  std::string stem;  // the file name before "-<event id>"
  std::string event_id;
  std::string trace_text, transaction_text;
  json trace, transaction;
};

std::vector<profile> read_profiles(const fs::path& dir) {
  static const std::regex file_name(R"(^(.*)-([0-9a-f]{32})\.(trace|transaction)\.json$)");
  std::map<std::string, profile> by_id;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    std::smatch m;
    INFO("file ", name);
    REQUIRE(std::regex_match(name, m, file_name));
    profile& p = by_id[m[2]];
    p.stem = m[1];
    p.event_id = m[2];
    (m[3] == "trace" ? p.trace_text : p.transaction_text) = read_file(entry.path());
  }
  std::vector<profile> out;
  for (auto& entry : by_id) {
    profile& p = entry.second;
    INFO("event id ", entry.first);
    REQUIRE_FALSE(p.trace_text.empty());
    REQUIRE_FALSE(p.transaction_text.empty());
    p.trace = parse_unique_keys(p.trace_text);
    p.transaction = parse_unique_keys(p.transaction_text);
    out.push_back(std::move(p));
  }
  return out;
}

// Runs `body` between init() and shutdown(), which joins the collector: the files are complete.
template <class Body>
spanprof::counters record(const spanprof::config& cfg, Body body) {
  REQUIRE_FALSE(spanprof::is_running());
  {
    session s(cfg);
    body();
  }
  return spanprof::stats();
}

bool is_lower_hex(const json& value, std::size_t length) {
  if (!value.is_string()) return false;
  const std::string text = value.get<std::string>();
  return text.size() == length &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool is_rfc3339_us(const json& value) {
  static const std::regex format(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$)");
  return value.is_string() && std::regex_match(value.get<std::string>(), format);
}

// Chrome's µs with three decimals, as integer nanoseconds (exact for these magnitudes).
// Trace times in the writer's unit, 1/1024 µs (exact in a double, so sums compare exactly).
std::int64_t trace_units(const json& microseconds) { return std::llround(microseconds.get<double>() * 1024.0); }

std::string repeat(const std::string& piece, std::size_t times) {
  std::string out;
  for (std::size_t i = 0; i < times; ++i) out += piece;
  return out;
}

const std::string replacement = "\xEF\xBF\xBD";                     // U+FFFD
const std::string truncated_1mib = "\xE2\x80\xA6[truncated from 1048576 bytes]";  // …[...]

// The X events of a Chrome trace.
std::vector<json> slices_of(const json& trace) {
  std::vector<json> out;
  for (const json& event : trace.at("traceEvents")) {
    if (event.at("ph") == "X") out.push_back(event);
  }
  return out;
}

const json& slice_named(const std::vector<json>& slices, const std::string& name) {
  const json* found = nullptr;
  for (const json& s : slices) {
    if (s.at("name") == name) found = &s;
  }
  INFO("slice ", name);
  REQUIRE(found != nullptr);
  return *found;
}

}  // namespace

TEST_CASE("Chrome trace of a transaction") {
  temp_dir dir("spanprof-writers");
  sites at;
  record(config_for(dir.path()), [&] { traced_request(at); });
  const std::vector<profile> profiles = read_profiles(dir.path());
  REQUIRE(profiles.size() == 1);
  const json& trace = profiles[0].trace;
  REQUIRE(trace.is_object());
  REQUIRE(trace.contains("traceEvents"));
  REQUIRE(trace.at("traceEvents").is_array());

  const std::vector<json> slices = slices_of(trace);
  REQUIRE(slices.size() == 4);  // the transaction and its three spans
  const json& root = slice_named(slices, "GET /users/{id}");
  const json& query = slice_named(slices, "SELECT * FROM users WHERE id = ?");
  const json& connect = slice_named(slices, "pool.acquire");
  const json& lookup = slice_named(slices, "user:7");
  const int pid = static_cast<int>(::getpid());
  const json tid = root.at("tid");

  SUBCASE("process and thread are named") {
    int process_names = 0, thread_names = 0;
    for (const json& event : trace.at("traceEvents")) {
      if (event.at("ph") != "M") continue;
      INFO(event.dump());
      CHECK(event.at("pid") == pid);
      CHECK(event.at("args").at("name").is_string());
      CHECK_FALSE(event.at("args").at("name").get<std::string>().empty());
      if (event.at("name") == "process_name") ++process_names;
      if (event.at("name") == "thread_name") {
        ++thread_names;
        CHECK(event.at("tid") == tid);
      }
    }
    CHECK(process_names == 1);
    CHECK(thread_names == 1);
  }
  SUBCASE("one complete event per span, the transaction's with cat \"transaction\"") {
    int transactions = 0;
    for (const json& s : slices) {
      INFO(s.dump());
      CHECK(s.at("pid") == pid);
      CHECK(s.at("tid") == tid);
      CHECK(s.at("ts").is_number());
      CHECK(s.at("dur").is_number());
      CHECK(s.at("dur").get<double>() >= 0.0);
      transactions += s.at("cat") == "transaction" ? 1 : 0;
      if (&s != &root) CHECK(s.at("cat") == "span");
    }
    CHECK(transactions == 1);
    CHECK(root.at("cat") == "transaction");
    CHECK(trace_units(root.at("ts")) == 0);  // ts counts from the transaction's start
  }
  SUBCASE("times are microseconds in binary fractions (multiples of 1/1024), exact in a double") {
    static const std::regex member(R"re("(ts|dur)":([^,}]*))re");
    const std::string& text = profiles[0].trace_text;
    int seen = 0;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), member); it != std::sregex_iterator(); ++it, ++seen) {
      INFO((*it)[0].str());
      const std::string number = (*it)[2].str();
      CHECK(std::regex_match(number, std::regex(R"(\d+(\.\d{1,10})?)")));
      const double units = std::stod(number) * 1024.0;
      CHECK(units == std::floor(units));  // a whole number of units: no decimal rounding anywhere
    }
    CHECK(seen == 8);
  }
  SUBCASE("span ids link children to parents, and children lie inside them") {
    std::map<std::string, const json*> by_id;
    for (const json& s : slices) {
      REQUIRE(is_lower_hex(s.at("args").at("span_id"), 16));
      by_id[s.at("args").at("span_id").get<std::string>()] = &s;
    }
    CHECK(by_id.size() == slices.size());
    CHECK_FALSE(root.at("args").contains("parent_span_id"));
    CHECK(query.at("args").at("parent_span_id") == root.at("args").at("span_id"));
    CHECK(connect.at("args").at("parent_span_id") == query.at("args").at("span_id"));
    CHECK(lookup.at("args").at("parent_span_id") == root.at("args").at("span_id"));
    for (const json& s : slices) {
      if (&s == &root) continue;
      const auto parent = by_id.find(s.at("args").at("parent_span_id").get<std::string>());
      INFO(s.at("name"));
      REQUIRE(parent != by_id.end());
      const json& p = *parent->second;
      CHECK(trace_units(s.at("ts")) >= trace_units(p.at("ts")));
      CHECK(trace_units(s.at("ts")) + trace_units(s.at("dur")) <= trace_units(p.at("ts")) + trace_units(p.at("dur")));
    }
    // The cache lookup started after the query had ended.
    CHECK(trace_units(lookup.at("ts")) >= trace_units(query.at("ts")) + trace_units(query.at("dur")));
  }
  SUBCASE("op, status, call site and user data are in args") {
    CHECK(root.at("args").at("op") == "http.server");
    CHECK(root.at("args").at("status") == "permission_denied");
    CHECK(root.at("args").at("data") == json{{"http.request.method", "GET"}});
    CHECK(query.at("args").at("op") == "db.sql.query");
    CHECK(query.at("args").at("description") == "SELECT * FROM users WHERE id = ?");
    CHECK(query.at("args").at("status") == "ok");
    CHECK(query.at("args").at("data") ==
          json{{"db.rows", 42}, {"db.system", "sqlite"}, {"cache.hit", false}, {"db.ratio", 0.25}});
    CHECK(connect.at("args").at("data") == json{{"pool.size", 8}});
    CHECK(lookup.at("args").at("status") == "not_found");
    CHECK_FALSE(lookup.at("args").contains("data"));
    CHECK(root.at("args").at("code.lineno") == at.transaction);
    CHECK(query.at("args").at("code.lineno") == at.query);
    CHECK(connect.at("args").at("code.lineno") == at.connect);
    CHECK(lookup.at("args").at("code.lineno") == at.lookup);
    CHECK(query.at("args").at("code.filepath") == __FILE__);
    CHECK(query.at("args").at("code.function").get<std::string>().find("traced_request") != std::string::npos);
  }
  SUBCASE("otherData names the transaction and its Sentry ids") {
    const json& other = trace.at("otherData");
    CHECK(other.at("transaction") == "GET /users/{id}");
    CHECK(other.at("event_id") == profiles[0].event_id);
    CHECK(other.at("trace_id") == profiles[0].transaction.at("contexts").at("trace").at("trace_id"));
    CHECK(other.at("epoch_us").is_number_integer());
  }
}

TEST_CASE("Sentry transaction event of a transaction") {
  temp_dir dir("spanprof-writers");
  sites at;
  spanprof::config cfg = config_for(dir.path());
  cfg.release = "writers-test@1.2.3";
  cfg.environment = "test";
  record(cfg, [&] { traced_request(at); });
  const std::vector<profile> profiles = read_profiles(dir.path());
  REQUIRE(profiles.size() == 1);
  const json& event = profiles[0].transaction;
  REQUIRE(event.is_object());
  const json& trace_context = event.at("contexts").at("trace");
  const std::string trace_id = trace_context.at("trace_id").get<std::string>();
  const std::string root_id = trace_context.at("span_id").get<std::string>();

  SUBCASE("the event's required fields") {
    CHECK(event.at("type") == "transaction");
    CHECK(is_lower_hex(event.at("event_id"), 32));
    CHECK(event.at("event_id") == profiles[0].event_id);
    CHECK(event.at("platform") == "native");
    CHECK(event.at("transaction") == "GET /users/{id}");
    CHECK(event.at("release") == "writers-test@1.2.3");
    CHECK(event.at("environment") == "test");
    REQUIRE(is_rfc3339_us(event.at("start_timestamp")));
    REQUIRE(is_rfc3339_us(event.at("timestamp")));
    CHECK(event.at("start_timestamp").get<std::string>() <= event.at("timestamp").get<std::string>());
    CHECK(is_lower_hex(trace_context.at("trace_id"), 32));
    CHECK(is_lower_hex(trace_context.at("span_id"), 16));
    CHECK(trace_context.at("op") == "http.server");
    CHECK(trace_context.at("status") == "permission_denied");
    CHECK_FALSE(trace_context.contains("parent_span_id"));
  }
  SUBCASE("the transaction's own data: user keys and call site") {
    const json& data = trace_context.at("data");
    CHECK(data.at("http.request.method") == "GET");
    CHECK(data.at("code.lineno") == at.transaction);
    CHECK(data.at("code.filepath") == __FILE__);
    CHECK(data.at("code.function").get<std::string>().find("traced_request") != std::string::npos);
    CHECK(data.at("thread.id").is_string());
  }
  SUBCASE("spans link up within one trace and lie inside the transaction") {
    const json& spans = event.at("spans");
    REQUIRE(spans.is_array());
    REQUIRE(spans.size() == 3);
    std::set<std::string> ids{root_id};
    for (const json& s : spans) ids.insert(s.at("span_id").get<std::string>());
    CHECK(ids.size() == 4);  // all distinct
    for (const json& s : spans) {
      INFO(s.dump());
      CHECK(is_lower_hex(s.at("span_id"), 16));
      CHECK(ids.count(s.at("parent_span_id").get<std::string>()) == 1);
      CHECK(s.at("parent_span_id") != s.at("span_id"));
      CHECK(s.at("trace_id") == trace_id);
      REQUIRE(is_rfc3339_us(s.at("start_timestamp")));
      REQUIRE(is_rfc3339_us(s.at("timestamp")));
      CHECK(s.at("start_timestamp").get<std::string>() <= s.at("timestamp").get<std::string>());
      CHECK(s.at("start_timestamp").get<std::string>() >= event.at("start_timestamp").get<std::string>());
      CHECK(s.at("timestamp").get<std::string>() <= event.at("timestamp").get<std::string>());
    }
    const json& query = span_described(event, "SELECT * FROM users WHERE id = ?");
    const json& connect = span_described(event, "pool.acquire");
    const json& lookup = span_described(event, "user:7");
    CHECK(query.at("parent_span_id") == root_id);
    CHECK(connect.at("parent_span_id") == query.at("span_id"));
    CHECK(lookup.at("parent_span_id") == root_id);
  }
  SUBCASE("each span's op, description, status and data") {
    const json& query = span_described(event, "SELECT * FROM users WHERE id = ?");
    const json& connect = span_described(event, "pool.acquire");
    const json& lookup = span_described(event, "user:7");
    CHECK(query.at("op") == "db.sql.query");
    CHECK(query.at("status") == "ok");
    CHECK(connect.at("op") == "db.connect");
    CHECK(lookup.at("op") == "cache.get");
    CHECK(lookup.at("status") == "not_found");

    const json& data = query.at("data");
    CHECK(data.at("db.rows") == 42);  // set twice; the file has the key once (parse_unique_keys)
    CHECK(data.at("db.system") == "sqlite");
    CHECK(data.at("cache.hit") == false);
    CHECK(data.at("db.ratio") == 0.25);
    CHECK(data.at("code.lineno") == at.query);
    CHECK(data.at("code.filepath") == __FILE__);
    CHECK(data.at("code.function").get<std::string>().find("traced_request") != std::string::npos);
    CHECK(connect.at("data").at("pool.size") == 8);
    CHECK(connect.at("data").at("code.lineno") == at.connect);
    CHECK(lookup.at("data").at("code.lineno") == at.lookup);
    CHECK_FALSE(lookup.at("data").contains("db.rows"));
  }
}

TEST_CASE("invalid UTF-8 in names, descriptions and data is repaired, and the files still parse") {
  temp_dir dir("spanprof-writers");
  const std::string name = "bad \xFF name";
  const std::string description = "desc \xED\xA0\x80 end";  // a UTF-16 surrogate
  const spanprof::counters stats = record(config_for(dir.path()), [&] {
    SPANPROF_TRANSACTION_OP(name, "task");
    SPANPROF_SPAN_NAMED(span, "op", description);
    span.set_data("value", "\xC0\x80");
  });
  CHECK(stats.invalid_utf8_repaired > 0);
  const std::vector<profile> profiles = read_profiles(dir.path());  // every file parses
  REQUIRE(profiles.size() == 1);
  const std::string repaired_name = "bad " + replacement + " name";
  const std::string repaired_description = "desc " + repeat(replacement, 3) + " end";

  const json& event = profiles[0].transaction;
  CHECK(event.at("transaction") == repaired_name);
  REQUIRE(event.at("spans").size() == 1);
  CHECK(event.at("spans")[0].at("description") == repaired_description);
  CHECK(event.at("spans")[0].at("data").at("value") == repeat(replacement, 2));

  const std::vector<json> slices = slices_of(profiles[0].trace);
  slice_named(slices, repaired_name);
  CHECK(slice_named(slices, repaired_description).at("args").at("data").at("value") == repeat(replacement, 2));
  CHECK(profiles[0].trace_text.find(replacement) != std::string::npos);
  CHECK(profiles[0].transaction_text.find(replacement) != std::string::npos);
}

TEST_CASE("a 1 MiB description is cut at max_description_bytes and marked") {
  temp_dir dir("spanprof-writers");
  spanprof::config cfg = config_for(dir.path());
  std::string huge, expected;
  SUBCASE("ASCII") {
    cfg.max_description_bytes = 4096;
    huge = std::string(1 << 20, 'd');
    expected = std::string(4096, 'd') + truncated_1mib;
  }
  SUBCASE("two-byte characters, cap in the middle of one: cut back to a boundary") {
    cfg.max_description_bytes = 4095;
    huge = repeat("\xC3\xA9", 1 << 19);
    expected = repeat("\xC3\xA9", 2047) + truncated_1mib;
  }
  REQUIRE(huge.size() == 1048576);
  const spanprof::counters stats = record(cfg, [&] {
    SPANPROF_TRANSACTION_OP("big description", "task");
    SPANPROF_SPAN("db.sql.query", huge);
  });
  CHECK(stats.strings_truncated == 1);
  CHECK(stats.invalid_utf8_repaired == 0);
  const std::vector<profile> profiles = read_profiles(dir.path());
  REQUIRE(profiles.size() == 1);
  REQUIRE(profiles[0].transaction.at("spans").size() == 1);
  CHECK(profiles[0].transaction.at("spans")[0].at("description") == expected);
  const std::vector<json> slices = slices_of(profiles[0].trace);
  const json& slice = slice_named(slices, expected);
  CHECK(slice.at("args").at("description") == expected);
}

TEST_CASE("hostile transaction names only ever produce files inside the output folder") {
  temp_dir base("spanprof-writers");
  const fs::path out = base.path() / "l1" / "l2" / "out";
  struct example {
    std::string name;             // as given to the macro
    std::string expected_name;    // as the Sentry event's "transaction" reads back
    std::string expected_stem;    // the file name's start (text.hpp's rules, applied by hand)
  };
  const std::vector<example> examples = {
      {"../../x", "../../x", "_._.._x"},
      {"./../../x", "./../../x", "_.._.._x"},
      {"/etc/passwd", "/etc/passwd", "_etc_passwd"},
      {"a\nb", "a\nb", "a_b"},
      {std::string("nul\0inside", 10), std::string("nul\0inside", 10), "nul_inside"},
      {"..", "..", "_."},
      {".", ".", "transaction"},
      {"", "unnamed transaction", "unnamed_transaction"},
      {"\xFF/..\xFF/x", replacement + "/.." + replacement + "/x", "_.._x"},
      {std::string(4096, 'n'), std::string(200, 'n') + "\xE2\x80\xA6[truncated from 4096 bytes]", std::string(80, 'n')},
  };
  record(config_for(out), [&] {
    for (const example& e : examples) {
      SPANPROF_TRANSACTION_OP(e.name, "task");
    }
  });

  // Nothing anywhere under base but the three folders and, directly in `out`, well-named files.
  static const std::regex file_name(R"(^[A-Za-z0-9._-]+-[0-9a-f]{32}\.(trace|transaction)\.json$)");
  const std::set<fs::path> folders{base.path() / "l1", base.path() / "l1" / "l2", out};
  std::size_t files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(base.path())) {
    INFO("found ", entry.path().string());
    if (entry.is_directory() && !entry.is_symlink()) {
      CHECK(folders.count(entry.path()) == 1);
      continue;
    }
    ++files;
    CHECK(entry.is_regular_file());
    CHECK(entry.path().parent_path() == out);
    CHECK(std::regex_match(entry.path().filename().string(), file_name));
  }
  CHECK(files == 2 * examples.size());

  const std::vector<profile> profiles = read_profiles(out);
  REQUIRE(profiles.size() == examples.size());
  for (const example& e : examples) {
    INFO("expected name of ", e.expected_stem);
    int matches = 0;
    for (const profile& p : profiles) {
      if (p.transaction.at("transaction") != e.expected_name) continue;
      ++matches;
      CHECK(p.stem == e.expected_stem);
      CHECK(p.trace.at("otherData").at("transaction") == e.expected_name);
    }
    CHECK(matches == 1);
  }
}

#else  // SPANPROF_DISABLE: the macros compile to nothing, so nothing may be written.

TEST_CASE("with SPANPROF_DISABLE no file is written") {
  temp_dir base("spanprof-writers");
  const fs::path out = base.path() / "out";
  sites at;
  CHECK(spanprof::init(config_for(out)).ok);
  traced_request(at);
  spanprof::shutdown();
  CHECK_FALSE(fs::exists(out));
  CHECK(at.transaction != 0);
}

#endif
