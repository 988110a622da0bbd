// Gap filling end to end, with known truth: a transaction with two db spans doing real work and
// a planted, un-instrumented function burning CPU for ~40 ms between them (longer if the
// sampler is starved: until it took 10 samples). Sampled for real
// (SIGPROF, the default unwinder, libdw symbolization), gap-filled by the collector, read back
// from the Sentry transaction file: the derived span must name the planted function with the
// file:line of its call, sit in the right gap under the transaction, and estimate its duration
// within max(2 sampling intervals, 10 %) of the measured truth.
#include <doctest/doctest.h>
#include <spanprof/spanprof.hpp>

#include <cstdint>
#include <string>

#include "support/sampler_support.hpp"
#include "support/test_support.hpp"
#include "support/build_kind.hpp"

using namespace spanprof_test;

namespace {

// ASan slows the program unevenly (the ticker and the workload both), so whole stretches can go
// unsampled: the duration check only means something in an uninstrumented build.
constexpr bool timing_distorted = spanprof_test::under_asan;

constexpr unsigned rate_hz = 1000;
constexpr std::int64_t interval_ns = 1'000'000'000 / rate_hz;

[[gnu::noinline]] void fake_db_query(const char* statement) {
  SPANPROF_SPAN("db.sql.query", statement);
  burn_wall(20'000'000);
}

std::int64_t g_planted_begin_ns = 0, g_planted_end_ns = 0;

}  // namespace

// The function a user forgot to instrument: >= 40 ms, and sampled at least 10 times.
extern "C" [[gnu::noinline]] void spanprof_test_join_members() {
  g_planted_begin_ns = monotonic_ns();
  burn_until_sampled(40'000'000, 10);
  g_planted_end_ns = monotonic_ns();
  asm volatile("" ::: "memory");
}

namespace {

int g_call_line = 0;

[[gnu::noinline]] void handle_request() {
  SPANPROF_TRANSACTION("GET /users");
  fake_db_query("SELECT * FROM members");
  g_call_line = __LINE__ + 1;
  spanprof_test_join_members();
  fake_db_query("SELECT * FROM teams");
}

}  // namespace

TEST_CASE("gapfill_e2e: the planted function between two db spans becomes a derived span, with its call site and duration") {
  temp_dir dir;
  spanprof::config cfg = sampling_config(dir, spanprof::sampling_mode::wall, rate_hz);
  cfg.formats = spanprof::output_format::sentry_transaction;
  {
    session s(cfg);
    handle_request();
  }
  const auto txns = read_transactions(dir.path(), derived_spans::keep);
  const json txn = transaction_named(txns, "GET /users");
  const std::string root = root_span_id(txn);
  const json first_db = span_described(txn, "SELECT * FROM members");
  const json second_db = span_described(txn, "SELECT * FROM teams");

  const json* planted = nullptr;
  std::size_t inferred = 0;
  for (const json& span : txn.at("spans")) {
    if (span.at("op") != "profile.inferred") continue;
    ++inferred;
    CHECK(span.at("origin") == "auto.profile.spanprof");
    CHECK(span.at("data").at("spanprof.inferred") == true);
    if (span.at("description").get<std::string>().find("spanprof_test_join_members") != std::string::npos) planted = &span;
  }
  MESSAGE("derived spans: ", inferred);
  if (signals_deferred) {
    MESSAGE("TSan defers signals: sampled stacks are stale, the derived span is not checked");
    return;
  }
  REQUIRE(planted != nullptr);
  const json& p = *planted;
  INFO("derived span: ", p.dump());
  // Named after the function, with the line that called it.
  const std::string expected_site = "gapfill_e2e_test.cpp:" + std::to_string(g_call_line);
  CHECK(p.at("description").get<std::string>().find(expected_site) != std::string::npos);
  CHECK(p.at("parent_span_id") == root);
  // In the gap between the two queries.
  const std::int64_t begin = parse_rfc3339_ns(p.at("start_timestamp")), end = parse_rfc3339_ns(p.at("timestamp"));
  CHECK(begin >= parse_rfc3339_ns(first_db.at("timestamp")));
  CHECK(end <= parse_rfc3339_ns(second_db.at("start_timestamp")));
  // Its duration: within max(2 intervals, 10 %) of what the function measured itself.
  const std::int64_t truth = g_planted_end_ns - g_planted_begin_ns;
  // The sampling interval: nominally 1 ms; on a loaded machine the signals come later, and the
  // gap filler reports the interval it saw (spanprof.duration_error_ns).
  const std::int64_t interval = std::max(interval_ns, p.at("data").at("spanprof.duration_error_ns").get<std::int64_t>());
  const std::int64_t tolerance = std::max<std::int64_t>(2 * interval, truth / 10);
  MESSAGE("planted function: truth ", truth / 1000, " us, estimate ", (end - begin) / 1000, " us, tolerance ",
          tolerance / 1000, " us, ", p.at("data").at("spanprof.sample_count"), " samples");
  if (timing_distorted) {
    MESSAGE("ASan build: the duration estimate is printed, not checked");
  } else {
    CHECK(std::llabs((end - begin) - truth) <= tolerance);
  }
  CHECK(p.at("data").at("spanprof.sample_count").get<int>() >= 2);
}
