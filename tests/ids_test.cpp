// ids.hpp: hex formatting of span/trace ids, the xoshiro256** generator, and the uniqueness of
// the ids that real transactions get.
#include <spanprof/spanprof.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.hpp"

namespace {

namespace sd = spanprof::detail;
namespace fs = std::filesystem;

// Every id in `ids` once, none zero.
void check_unique_nonzero(std::vector<std::uint64_t> ids) {
  CHECK(std::count(ids.begin(), ids.end(), std::uint64_t{0}) == 0);
  std::sort(ids.begin(), ids.end());
  const auto duplicate = std::adjacent_find(ids.begin(), ids.end());
  INFO("duplicate id: ", duplicate == ids.end() ? 0 : *duplicate);
  CHECK(duplicate == ids.end());
}

}  // namespace

TEST_CASE("to_hex writes lowercase, zero-padded, fixed-width hex") {
  SUBCASE("span ids: 16 characters") {
    CHECK(std::string(sd::to_hex(sd::span_id{0x0123456789abcdefull}).text) == "0123456789abcdef");
    CHECK(std::string(sd::to_hex(sd::span_id{0xFEDCBA9876543210ull}).text) == "fedcba9876543210");
    CHECK(std::string(sd::to_hex(sd::span_id{0xaull}).text) == "000000000000000a");
    CHECK(std::string(sd::to_hex(sd::span_id{0}).text) == "0000000000000000");
    CHECK(std::string(sd::to_hex(sd::span_id{UINT64_MAX}).text) == "ffffffffffffffff");
    CHECK(std::strlen(sd::to_hex(sd::span_id{1}).text) == 16);
  }
  SUBCASE("trace ids: 32 characters, high word first") {
    CHECK(std::string(sd::to_hex(sd::trace_id{0x0123456789abcdefull, 0xfedcba9876543210ull}).text) ==
          "0123456789abcdeffedcba9876543210");
    CHECK(std::string(sd::to_hex(sd::trace_id{0, 1}).text) == "00000000000000000000000000000001");
    CHECK(std::string(sd::to_hex(sd::trace_id{1, 0}).text) == "00000000000000010000000000000000");
    CHECK(std::strlen(sd::to_hex(sd::trace_id{UINT64_MAX, UINT64_MAX}).text) == 32);
  }
}

TEST_CASE("xoshiro256 with a fixed seed") {
  SUBCASE("is xoshiro256** seeded through splitmix64") {
    // Expected values from an independent Python port of the reference algorithms (Blackman &
    // Vigna's xoshiro256starstar.c, state filled by four splitmix64 draws from the seed).
    sd::xoshiro256 zero(0);
    CHECK(zero.next() == 0x99ec5f36cb75f2b4ull);
    CHECK(zero.next() == 0xbf6e1f784956452aull);
    CHECK(zero.next() == 0x1a5f849d4933e6e0ull);
    CHECK(zero.next() == 0x6aa594f1262d2d2cull);
    sd::xoshiro256 answer(42);
    CHECK(answer.next() == 0x15780b2e0c2ec716ull);
    CHECK(answer.next() == 0x6104d9866d113a7eull);
    CHECK(answer.next() == 0xae17533239e499a1ull);
    CHECK(answer.next() == 0xecb8ad4703b360a1ull);
  }
  SUBCASE("is deterministic, and different seeds give different streams") {
    sd::xoshiro256 a(12345), b(12345), c(12346);
    int same_as_b = 0, same_as_c = 0;
    for (int i = 0; i < 1000; ++i) {
      const std::uint64_t x = a.next();
      same_as_b += x == b.next() ? 1 : 0;
      same_as_c += x == c.next() ? 1 : 0;
    }
    CHECK(same_as_b == 1000);
    CHECK(same_as_c == 0);
  }
  SUBCASE("next_unit is uniform in [0, 1)") {
    sd::xoshiro256 rng(7);
    double sum = 0, lowest = 1, highest = 0;
    for (int i = 0; i < 100'000; ++i) {
      const double u = rng.next_unit();
      REQUIRE(u >= 0.0);
      REQUIRE(u < 1.0);
      sum += u;
      lowest = std::min(lowest, u);
      highest = std::max(highest, u);
    }
    CHECK(sum / 100'000 == doctest::Approx(0.5).epsilon(0.01));
    CHECK(lowest < 0.001);
    CHECK(highest > 0.999);
  }
}

TEST_CASE("OS-seeded generators on 4 threads never repeat an id") {
  constexpr int threads = 4;
  constexpr int per_thread = 25'000;
  std::vector<std::vector<std::uint64_t>> drawn(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&out = drawn[static_cast<std::size_t>(t)]] {
      sd::xoshiro256 rng;  // seeded by getrandom(2), like every execution context
      out.reserve(per_thread);
      for (int i = 0; i < per_thread; ++i) out.push_back(rng.next());
    });
  }
  for (auto& w : workers) w.join();
  std::vector<std::uint64_t> all;
  for (const auto& ids : drawn) all.insert(all.end(), ids.begin(), ids.end());
  REQUIRE(all.size() == 100'000u);
  check_unique_nonzero(all);

  // Two generators on the same thread are seeded independently too.
  sd::xoshiro256 first, second;
  CHECK(first.next() != second.next());
}

using spanprof_test::session;
using spanprof_test::temp_dir;

namespace {

bool is_lower_hex(const std::string& text, std::size_t length) {
  return text.size() == length &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

TEST_CASE("transactions on 4 threads get unique, well-formed ids") {
  temp_dir tmp("spanprof-ids");
  const fs::path& dir = tmp.path();

  constexpr int threads = 4, transactions = 25, spans = 40;
  spanprof::config cfg;
  cfg.output_dir = dir.string();
  cfg.formats = spanprof::output_format::sentry_transaction;
  cfg.log_errors_to_stderr = false;
  REQUIRE(!spanprof::is_running());
  session running(cfg);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([] {
      for (int i = 0; i < transactions; ++i) {
        SPANPROF_TRANSACTION("ids");
        for (int s = 0; s < spans; ++s) {
          SPANPROF_SPAN("op", "span");
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  spanprof::shutdown();  // joins the collector: every file is on disk

  std::vector<std::uint64_t> span_ids, event_ids, trace_ids;
  std::size_t files = 0, instrumented_spans = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    ++files;
    std::ifstream in(entry.path());
    const nlohmann::json txn = nlohmann::json::parse(in);
    const std::string event_id = txn.at("event_id").get<std::string>();
    const std::string trace_id = txn.at("contexts").at("trace").at("trace_id").get<std::string>();
    const std::string root_id = txn.at("contexts").at("trace").at("span_id").get<std::string>();
    INFO("file ", entry.path().filename().string());
    REQUIRE(is_lower_hex(event_id, 32));
    REQUIRE(is_lower_hex(trace_id, 32));
    REQUIRE(is_lower_hex(root_id, 16));
    // uuid4-shaped, as Sentry expects: version nibble 4, variant 10xx.
    CHECK(event_id[12] == '4');
    CHECK(std::string("89ab").find(event_id[16]) != std::string::npos);
    CHECK(trace_id[12] == '4');
    CHECK(std::string("89ab").find(trace_id[16]) != std::string::npos);
    // Ids are checked as 64-bit halves; a clash of either half would already be a defect.
    event_ids.push_back(std::stoull(event_id.substr(0, 16), nullptr, 16));
    event_ids.push_back(std::stoull(event_id.substr(16), nullptr, 16));
    trace_ids.push_back(std::stoull(trace_id.substr(0, 16), nullptr, 16));
    trace_ids.push_back(std::stoull(trace_id.substr(16), nullptr, 16));
    span_ids.push_back(std::stoull(root_id, nullptr, 16));
    ++instrumented_spans;
    for (const auto& span : txn.at("spans")) {
      const std::string id = span.at("span_id").get<std::string>();
      REQUIRE(is_lower_hex(id, 16));
      span_ids.push_back(std::stoull(id, nullptr, 16));
      // Gap filling's derived spans (op profile.*) appear when a slow run (TSan) gets samples;
      // their ids must be unique too, but they are not among the spans opened here.
      if (span.at("op").get<std::string>().rfind("profile.", 0) != 0) ++instrumented_spans;
    }
  }
  CHECK(files == static_cast<std::size_t>(threads * transactions));
  CHECK(instrumented_spans == static_cast<std::size_t>(threads * transactions * (spans + 1)));
  check_unique_nonzero(span_ids);
  check_unique_nonzero(event_ids);
  check_unique_nonzero(trace_ids);
}
