// The writers' end-to-end tests (chrome_trace_test, sentry_transaction_test, writers_test):
// a traced request recorded through the public macros, the configuration that writes it, and
// readers and checkers for the files the collector writes.
#pragma once

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

#include "test_support.hpp"
#include "text_samples.hpp"

namespace spanprof_test {

namespace fs = std::filesystem;

inline spanprof::config config_for(const fs::path& dir) {
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

// The file traced_request() is in: its spans' code.filepath.
inline constexpr const char* traced_request_file = __FILE__;

// clang-format off
inline void traced_request(sites& at) {
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

// Parses `text` and fails the test if an object repeats a key (nlohmann would keep the last).
inline json parse_unique_keys(const std::string& text) {
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
struct transaction_files {
  std::string stem;  // the file name before "-<event id>"
  std::string event_id;
  std::string trace_text, transaction_text;
  json trace, transaction;
};

inline std::vector<transaction_files> read_profiles(const fs::path& dir) {
  static const std::regex file_name(R"(^(.*)-([0-9a-f]{32})\.(trace|transaction)\.json$)");
  std::map<std::string, transaction_files> by_id;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    std::smatch m;
    INFO("file ", name);
    REQUIRE(std::regex_match(name, m, file_name));
    transaction_files& p = by_id[m[2]];
    p.stem = m[1];
    p.event_id = m[2];
    (m[3] == "trace" ? p.trace_text : p.transaction_text) = read_file(entry.path());
  }
  std::vector<transaction_files> out;
  for (auto& entry : by_id) {
    transaction_files& p = entry.second;
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
inline spanprof::counters record(const spanprof::config& cfg, Body body) {
  REQUIRE_FALSE(spanprof::is_running());
  {
    session s(cfg);
    body();
  }
  return spanprof::stats();
}

inline bool is_rfc3339_us(const json& value) {
  static const std::regex format(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$)");
  return value.is_string() && std::regex_match(value.get<std::string>(), format);
}

// Chrome's µs with three decimals, as integer nanoseconds (exact for these magnitudes).
// Trace times in the writer's unit, 1/1024 µs (exact in a double, so sums compare exactly).
inline std::int64_t trace_units(const json& microseconds) { return std::llround(microseconds.get<double>() * 1024.0); }

inline const std::string truncated_1mib = "\xE2\x80\xA6[truncated from 1048576 bytes]";  // …[...]

// The X events of a Chrome trace.
inline std::vector<json> slices_of(const json& trace) {
  std::vector<json> out;
  for (const json& event : trace.at("traceEvents")) {
    if (event.at("ph") == "X") out.push_back(event);
  }
  return out;
}

inline const json& slice_named(const std::vector<json>& slices, const std::string& name) {
  const json* found = nullptr;
  for (const json& s : slices) {
    if (s.at("name") == name) found = &s;
  }
  INFO("slice ", name);
  REQUIRE(found != nullptr);
  return *found;
}

}  // namespace spanprof_test
