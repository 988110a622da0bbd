// spanprof-report's aggregation (tools/report): percentiles against an independent computation
// from the raw files, culprit ranking, time weights under irregular sampling, malformed files
// skipped and counted; then a real sampled run whose planted function must be the top culprit.
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <spanprof/spanprof.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "report.hpp"
#include "support/sampler_support.hpp"
#include "support/test_support.hpp"

using namespace spanprof_test;
namespace rep = spanprof::report;
using nlohmann::json;

namespace {

void write_text(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

std::string rfc3339(std::int64_t epoch_ns) {
  const std::int64_t s = epoch_ns / 1'000'000'000, us = (epoch_ns / 1000) % 1'000'000;
  std::time_t t = s;
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, us);
}

// A Sentry transaction event as spanprof writes it: one db span, then a derived span for `culprit`
// lasting `culprit_ns` after it, under the root.
std::string synthetic_event(int i, const std::string& name, std::int64_t start, std::int64_t duration, const std::string& status,
                            const std::string& culprit, std::int64_t culprit_ns) {
  const std::string root = fmt::format("{:016x}", 0x1000 + i);
  const std::int64_t db_end = start + duration / 4;
  std::string spans = fmt::format(
      R"J({{"span_id":"{:016x}","parent_span_id":"{}","op":"db.sql.query","description":"SELECT * FROM members","status":"ok","origin":"manual","start_timestamp":"{}","timestamp":"{}","data":{{}}}})J",
      0x2000 + i, root, rfc3339(start), rfc3339(db_end));
  if (!culprit.empty()) {
    spans += fmt::format(
        R"J(,{{"span_id":"{:016x}","parent_span_id":"{}","op":"profile.inferred","description":"{} (users.cpp:43)","status":"ok","origin":"auto.profile.spanprof","start_timestamp":"{}","timestamp":"{}","data":{{"spanprof.inferred":true,"spanprof.sample_count":5,"spanprof.duration_error_ns":1000000,"spanprof.low_confidence":false,"code.function":"{}","code.filepath":"/src/users.cpp","code.lineno":12}}}})J",
        0x3000 + i, root, culprit, rfc3339(db_end), rfc3339(db_end + culprit_ns), culprit);
  }
  return fmt::format(
      R"J({{"type":"transaction","event_id":"{:032x}","platform":"native","transaction":"{}","start_timestamp":"{}","timestamp":"{}","contexts":{{"trace":{{"trace_id":"{:032x}","span_id":"{}","op":"http.server","status":"{}"}}}},"spans":[{}]}})J",
      0x5000 + i, name, rfc3339(start), rfc3339(start + duration), 0x6000 + i, root, status, spans);
}

// Nearest rank, computed here from scratch: the smallest duration d such that at least p % of
// the durations are <= d.
double independent_percentile_ms(std::vector<double> ms, double p) {
  std::sort(ms.begin(), ms.end());
  for (const double d : ms) {
    const auto at_most = static_cast<double>(std::count_if(ms.begin(), ms.end(), [&](double x) { return x <= d; }));
    if (at_most >= p / 100.0 * static_cast<double>(ms.size()) - 1e-9) return d;
  }
  return ms.back();
}

}  // namespace

TEST_CASE("report: nearest-rank percentiles are inputs, by the rank ceil(p n / 100)") {
  const std::vector<std::int64_t> v{10, 20, 30, 40, 50, 60, 70, 80, 90, 100};
  CHECK(rep::nearest_rank_percentile(v, 50) == 50);
  CHECK(rep::nearest_rank_percentile(v, 95) == 100);
  CHECK(rep::nearest_rank_percentile(v, 75) == 80);
  CHECK(rep::nearest_rank_percentile({7}, 99) == 7);
}

TEST_CASE("report: time weights add up to the transaction's duration when the sampler is starved and irregular") {
  const std::uint64_t seed = 20261207;
  INFO("seed ", seed);
  std::mt19937_64 rng(seed);
  const std::int64_t interval = 10'000'000;  // 100 Hz
  std::size_t total_samples = 0;
  double total_duration = 0;
  for (int round = 0; round < 50; ++round) {
    rep::transaction t;
    t.start_epoch_ns = 1'000'000'000;
    const std::int64_t duration = 200'000'000 + static_cast<std::int64_t>(rng() % 800'000'000);
    t.end_epoch_ns = t.start_epoch_ns + duration;
    t.frames.push_back({"f", "f.cpp", 1});
    t.stacks.push_back({0});
    // Two threads. Intervals jitter between 0.3x and 1.9x nominal, and one in five is a burst
    // of silence of 2-8 intervals (the sampler thread not scheduled): ~ 45 % of the rate.
    for (const char* tid : {"1", "2"}) {
      std::uniform_real_distribution<double> jitter(0.3, 1.9), burst(2, 8);
      auto next_gap = [&] { return static_cast<std::int64_t>((rng() % 5 == 0 ? burst(rng) : jitter(rng)) * static_cast<double>(interval)); };
      std::int64_t at = next_gap() / 2;
      while (at < duration) {
        t.samples.push_back({at, tid, 0});
        at += next_gap();
      }
    }
    std::shuffle(t.samples.begin(), t.samples.end(), rng);  // the order in the file must not matter
    const auto w = rep::sample_weights(t, interval);
    double total = 0;
    for (const double x : w) total += x;
    const double expected = 2.0 * static_cast<double>(duration);  // two threads, each there all along
    INFO("round ", round, " duration ", duration, " total ", total);
    CHECK(std::abs(total - expected) <= 0.10 * expected);
    total_samples += t.samples.size();
    total_duration += expected;
  }
  const double delivered = static_cast<double>(total_samples) / (total_duration / 1e9);
  MESSAGE("delivered ", delivered, " Hz of 100");
  CHECK(delivered < 60);  // the input really is starved: nominal weights would read ~ 45 % short
  SUBCASE("a silence nothing explains is charged at most 50 intervals") {
    rep::transaction t;
    t.end_epoch_ns = 1'000'000'000;
    t.frames.push_back({"f", "", 0});
    t.stacks.push_back({0});
    t.samples = {{5'000'000, "1", 0}, {995'000'000, "1", 0}};
    const auto w = rep::sample_weights(t, interval);
    CHECK(w[0] == doctest::Approx(5e6 + 250e6));  // its start edge, then half the capped silence
    CHECK(w[1] == doctest::Approx(250e6 + 5e6));
  }
  SUBCASE("a fiber's suspended time is charged to no sample") {
    rep::transaction t;
    t.end_epoch_ns = 100'000'000;
    t.frames.push_back({"f", "", 0});
    t.stacks.push_back({0});
    t.samples = {{10'000'000, "1", 0}, {90'000'000, "1", 0}};
    rep::span gap;
    gap.gap = true;
    gap.gap_reason = "suspended";
    gap.start_ns = 15'000'000;
    gap.end_ns = 85'000'000;
    t.spans.push_back(gap);
    const auto w = rep::sample_weights(t, interval);
    CHECK(w[0] == doctest::Approx(10e6 + 5e6));
    CHECK(w[1] == doctest::Approx(5e6 + 10e6));
  }
}

TEST_CASE("report: synthetic files: percentiles equal the raw files', culprits ranked, malformed files skipped and counted") {
  temp_dir dir("spanprof-report");
  std::mt19937_64 rng(7);
  const std::int64_t base = 1'765'000'000'000'000'000;
  int errors = 0;
  for (int i = 0; i < 200; ++i) {
    const bool slow = i % 2 == 0;
    const std::string name = slow ? "GET /api/users" : "GET /api/health <script>alert(1)</script>";
    const std::int64_t duration = (slow ? 50'000'000 : 2'000'000) + static_cast<std::int64_t>(rng() % 30'000'000);
    const std::string status = i % 10 == 3 ? "internal_error" : "ok";
    if (slow && status != "ok") ++errors;
    // join_in_memory takes about half of every users transaction, parse_row a tenth.
    const std::string culprit = slow ? (i % 4 == 0 ? "join_in_memory" : "parse_row") : "";
    const std::int64_t culprit_ns = culprit == "join_in_memory" ? duration / 2 : duration / 10;
    write_text(dir.path() / fmt::format("txn-{:03}.transaction.json", i),
               synthetic_event(i, name, base + i * 100'000'000LL, duration, status, culprit, culprit_ns));
  }
  // Unreadable, truncated and foreign files.
  write_text(dir.path() / "empty.transaction.json", "");
  write_text(dir.path() / "truncated.transaction.json", synthetic_event(999, "GET /x", base, 1000, "ok", "", 0).substr(0, 120));
  write_text(dir.path() / "foreign.transaction.json", R"({"type":"event","message":"hello"})");
  write_text(dir.path() / "garbage.envelope", std::string("\x00\xff\xfe garbage\n\x01", 13));
  write_text(dir.path() / "ignored.trace.json", "{}");  // not an input: no count

  rep::run r;
  rep::read_run({dir.path().string()}, r, /*quiet=*/true);
  CHECK(r.files_read == 200);
  CHECK(r.files_skipped == 4);
  const json report = json::parse(rep::report_json(r, nullptr));
  CHECK(report["current"]["files_skipped"] == 4);
  CHECK(report["current"]["skipped"].size() == 4);

  // Independently: nlohmann over the raw files, durations from their timestamps.
  std::map<std::string, std::vector<double>> durations;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    const std::string p = entry.path().filename().string();
    if (p.rfind("txn-", 0) != 0) continue;
    std::ifstream in(entry.path());
    const json t = json::parse(in);
    const double ms = static_cast<double>(parse_rfc3339_ns(t["timestamp"]) - parse_rfc3339_ns(t["start_timestamp"])) / 1e6;
    durations[t["transaction"]].push_back(ms);
  }
  REQUIRE(report["current"]["endpoints"].size() == 2);
  for (const json& e : report["current"]["endpoints"]) {
    const auto& d = durations.at(e["name"]);
    INFO(e["name"]);
    CHECK(e["count"] == d.size());
    for (const auto& kp : std::vector<std::pair<std::string, double>>{{"p50", 50}, {"p75", 75}, {"p95", 95}, {"p99", 99}}) {
      INFO(kp.first);
      CHECK(e["duration_ms"][kp.first].get<double>() == doctest::Approx(independent_percentile_ms(d, kp.second)).epsilon(1e-9));
    }
    CHECK(e["duration_ms"]["max"].get<double>() == doctest::Approx(*std::max_element(d.begin(), d.end())));
  }
  const json& users = report["current"]["endpoints"][0];
  REQUIRE(users["name"] == "GET /api/users");  // slowest p95 first
  CHECK(users["errors"] == errors);
  REQUIRE(users["culprits"].size() == 2);
  CHECK(users["culprits"][0]["function"] == "join_in_memory");
  CHECK(users["culprits"][0]["call_site"] == "users.cpp:43");
  CHECK(users["culprits"][0]["transactions"] == 50);
  CHECK(users["culprits"][0]["typical_position"] == "after db.sql.query SELECT * FROM members");
  CHECK(users["culprits"][1]["function"] == "parse_row");
  // join_in_memory: half of a quarter of the transactions' time; an independent sum.
  CHECK(users["culprits"][0]["share"].get<double>() == doctest::Approx(0.5 * 0.5).epsilon(0.05));

  // The hostile name reaches the page only escaped.
  const std::string html = rep::report_html(r, nullptr, rep::report_json(r, nullptr));
  CHECK(html.find("<script>alert(1)") == std::string::npos);
  CHECK(html.find("&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
}

namespace {

constexpr unsigned e2e_rate_hz = 500;

[[gnu::noinline]] void report_fake_query(const char* statement) {
  SPANPROF_SPAN("db.sql.query", statement);
  burn_wall(5'000'000);
}

int g_join_call_line = 0;

}  // namespace

// The function a user forgot to instrument: a busy loop between two db spans, >= 30 ms and
// sampled at least 5 times (a starved sampler would otherwise leave transactions unprofiled).
extern "C" [[gnu::noinline]] void spanprof_report_test_join_members() {
  burn_until_sampled(30'000'000, 5);
  asm volatile("" ::: "memory");
}

namespace {

[[gnu::noinline]] void report_handle_users() {
  SPANPROF_TRANSACTION_OP("GET /api/users", "http.server");
  report_fake_query("SELECT * FROM members");
  g_join_call_line = __LINE__ + 1;
  spanprof_report_test_join_members();
  report_fake_query("SELECT * FROM teams");
}

[[gnu::noinline]] void report_handle_health() {
  SPANPROF_TRANSACTION_OP("GET /health", "http.server");
  report_fake_query("SELECT 1");
}

}  // namespace

TEST_CASE("report: a real sampled run: the planted function is the top culprit, after the right span, and the weights add up") {
  temp_dir dir("spanprof-report-e2e");
  spanprof::config cfg = sampling_config(dir, spanprof::sampling_mode::wall, e2e_rate_hz);
  cfg.formats = spanprof::output_format::sentry_transaction | spanprof::output_format::sentry_envelope;
  {
    session s(cfg);
    for (int i = 0; i < 6; ++i) {
      report_handle_users();
      report_handle_health();
    }
  }
  rep::options opts;
  opts.sample_rate_hz = e2e_rate_hz;
  rep::run r(opts);
  rep::read_run({dir.path().string()}, r);
  CHECK(r.files_skipped == 0);
  CHECK(r.transactions == 12);
  REQUIRE(r.endpoints.count("GET /api/users") == 1);
  const rep::endpoint& users = r.endpoints.at("GET /api/users");
  CHECK(users.durations_ns.size() == 6);
  if (signals_deferred) {
    MESSAGE("TSan defers signals: stacks are stale, culprits not checked");
    return;
  }
  const auto culprits = users.ranked_culprits();
  REQUIRE_FALSE(culprits.empty());
  const rep::culprit& top = *culprits.front();
  INFO("top culprit: ", top.function, " (", top.call_site, ") ", top.typical_position());
  CHECK(top.function.find("spanprof_report_test_join_members") != std::string::npos);
  CHECK(top.call_site == "report_test.cpp:" + std::to_string(g_join_call_line));
  CHECK(top.typical_position() == "after db.sql.query SELECT * FROM members");
  // On a loaded machine the sampler is starved (a transaction may end up with too few samples
  // for a derived span): most, not all, transactions show it.
  CHECK(top.transactions >= 3);
  CHECK(users.profiled_transactions >= 3);
  // What the weights and the culprit's share come to with a real sampler. In clean-clone runs on
  // these shared 2-core machines (103-251 Hz delivered of 500) the weights read 54-85 % of the
  // transactions' time, which the 50-interval cap does not explain: an open defect (issue 15,
  // part 5), so only printed here. The weighting is checked above on deliberately starved
  // synthetic input whose truth is known (10 %); here it must at least not invent time.
  const double share = static_cast<double>(top.total_ns) / static_cast<double>(users.total_ns);
  const double delivered_hz = static_cast<double>(users.samples) / (static_cast<double>(users.profiled_ns) / 1e9);
  MESSAGE("delivered ", delivered_hz, " Hz of ", e2e_rate_hz, "; weights ", users.sample_weight_ns / 1e6, " ms of ",
          static_cast<double>(users.profiled_ns) / 1e6, " ms; top culprit's share ", share);
  CHECK(share < 0.95);
  CHECK(users.sample_weight_ns <= 1.10 * static_cast<double>(users.profiled_ns));
}
