// writers/sentry_transaction.hpp through the public API: a transaction recorded with the
// macros, written by the collector, its .transaction.json read back with nlohmann.
#include "support/writers_e2e.hpp"

using namespace spanprof_test;  // the checkers of writers_e2e.hpp
namespace fs = std::filesystem;

TEST_CASE("Sentry transaction event of a transaction") {
  temp_dir dir("spanprof-writers");
  sites at;
  spanprof::config cfg = config_for(dir.path());
  cfg.release = "writers-test@1.2.3";
  cfg.environment = "test";
  record(cfg, [&] { traced_request(at); });
  const std::vector<transaction_files> profiles = read_profiles(dir.path());
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
    CHECK(data.at("code.filepath") == traced_request_file);
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
    CHECK(data.at("code.filepath") == traced_request_file);
    CHECK(data.at("code.function").get<std::string>().find("traced_request") != std::string::npos);
    CHECK(connect.at("data").at("pool.size") == 8);
    CHECK(connect.at("data").at("code.lineno") == at.connect);
    CHECK(lookup.at("data").at("code.lineno") == at.lookup);
    CHECK_FALSE(lookup.at("data").contains("db.rows"));
  }
}
