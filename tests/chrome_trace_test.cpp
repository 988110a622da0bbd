// writers/chrome_trace.hpp through the public API: a transaction recorded with the macros,
// written by the collector (spanprof::shutdown() joins it, so the file is complete), read back
// with nlohmann.
#include "support/writers_e2e.hpp"

using namespace spanprof_test;  // the checkers of writers_e2e.hpp
namespace fs = std::filesystem;

TEST_CASE("Chrome trace of a transaction") {
  temp_dir dir("spanprof-writers");
  sites at;
  record(config_for(dir.path()), [&] { traced_request(at); });
  const std::vector<transaction_files> profiles = read_profiles(dir.path());
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
    CHECK(query.at("args").at("code.filepath") == traced_request_file);
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
