// gapfill derived spans: chain collapse, repeated calls, blocked and CPU-mode states, and the
// emission limits (gapfill.md §2.4–§2.6).
#include <doctest/doctest.h>
#include "support/gapfill_scenario.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace gapfill_support;

TEST_CASE("gapfill U15 / §3 blocked, CPU mode: on-CPU time from weights, silent gaps `off-CPU`") {
  scenario s;
  s.mode = gf::sample_mode::cpu;
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t crunch = s.frame("crunch()", "/work/app/src/orders.cpp", 30);
  s.span(s.root_id, 0, 0, 250, "http.server", "GET /orders");
  s.span(0xC1, s.root_id, 100, 150, "db.sql.query", "A");
  s.sample(ms(20), s.root_id, {crunch, f});
  s.sample(ms(50), s.root_id, {crunch, f}).weight = 2;  // two expirations merged into one signal
  s.sample(ms(80), s.root_id, {crunch, f});
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  const std::uint32_t root = span_index(s, s.root_id);
  const gf::gap_summary& busy = r.gaps[r.spans[root].first_gap];
  CHECK(busy.on_cpu_ns == ms(40));   // Σ weight·Δ0
  CHECK(busy.off_cpu_ns == ms(60));  // d − on_cpu_ns
  const auto c = inferred_named(r, "crunch");
  REQUIRE(c.size() == 1);
  CHECK(c[0]->on_cpu_ns == ms(40));
  CHECK(c[0]->sample_weight == 4);
  CHECK(c[0]->off_cpu_ns == (c[0]->end_ns - c[0]->begin_ns) - ms(40));
  const gf::gap_summary& idle = r.gaps[r.spans[root].first_gap + 1];
  REQUIRE(idle.gap_span != gf::no_index);
  const gf::derived_span& off = r.derived_spans[idle.gap_span];
  CHECK(off.reason == gf::gap_reason::off_cpu);
  CHECK(off.description == "off-CPU");
  CHECK(off.begin_ns == ms(150));
  CHECK(off.end_ns == ms(250));
  CHECK(idle.off_cpu_ns == ms(100));
}

TEST_CASE("gapfill U16: chain collapse — F→G→H→I with equal counts is one span with the stack") {
  scenario s = worked_example();
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t g = s.frame("G()", "/work/app/src/chain.cpp", 10);
  const std::uint32_t h = s.frame("H()", "/work/app/src/chain.cpp", 20);
  const std::uint32_t i = s.frame("I()", "/work/app/src/chain.cpp", 30);
  s.remove_samples_if([](const gf::sample_input& x) { return x.t_ns > ms(60) && x.t_ns < ms(100); });
  for (double t = 65; t < 100; t += 10) s.sample(ms(t), s.root_id, {i, h, g, f}, 3);
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  const auto spans = inferred_named(r, "G");
  REQUIRE(spans.size() == 1);
  CHECK(spans[0]->stack == "G;H;I");
  CHECK(spans[0]->self_weight == 4);  // at the chain's end, I
  CHECK(inferred_named(r, "H").empty());
  CHECK(inferred_named(r, "I").empty());
}

TEST_CASE("gapfill U17: G G G K G G G gives two G spans; K (one sample) is not emitted") {
  scenario s;
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t g = s.frame("G()", "/work/app/src/g.cpp", 10);
  const std::uint32_t k = s.frame("K()", "/work/app/src/k.cpp", 10);
  s.span(s.root_id, 0, 0, 70, "http.server", "GET /g");
  const std::vector<std::uint32_t> sequence{g, g, g, k, g, g, g};
  for (std::size_t n = 0; n < sequence.size(); ++n) s.sample(ms(5.0 + 10.0 * static_cast<double>(n)), s.root_id, {sequence[n], f});
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  const auto spans = inferred_named(r, "G");
  REQUIRE(spans.size() == 2);
  CHECK(spans[0]->begin_ns == 0);
  CHECK(spans[0]->end_ns == ms(30));
  CHECK(spans[1]->begin_ns == ms(40));
  CHECK(spans[1]->end_ns == ms(70));
  CHECK(inferred_named(r, "K").empty());
  CHECK(r.gaps[spans[0]->gap_index].unresolved_weight == 1);
  CHECK(of_kind(r, gf::derived_kind::gap).empty());  // 10 ms unexplained < 2Δ
}

TEST_CASE("gapfill §3 blocked in a syscall, wall mode: state=blocked, `blocked: <call> ← <fn>`") {
  scenario s = worked_example();
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t fetch = s.frame("fetch_user(int)", "/work/app/src/users.cpp", 88);
  const std::uint32_t recv = s.frame("__libc_recv", "", 0, "/lib/x86_64-linux-gnu/libc.so.6");
  const std::uint32_t poll = s.frame("__GI___poll", "", 0, "/lib/x86_64-linux-gnu/libc.so.6");
  const std::uint32_t own_read = s.frame("read", "/work/app/src/users.cpp", 12);  // the app's own `read`
  const std::uint32_t hash = s.frame("hash_row()", "/work/app/src/users.cpp", 40);
  s.remove_samples_if([](const gf::sample_input& x) { return x.t_ns > ms(60) && x.t_ns < ms(100); });
  SUBCASE("every sample in recv") {
    for (double t = 65; t < 100; t += 10) s.sample(ms(t), s.root_id, {recv, fetch, f});
    const gf::filled_transaction r = s.run();
    const auto spans = inferred_named(r, "fetch_user");
    REQUIRE(spans.size() == 1);
    CHECK(spans[0]->state == gf::run_state::blocked);
    CHECK(spans[0]->description == "blocked: recv \xE2\x86\x90 fetch_user (orders.cpp:118)");
  }
  SUBCASE("glibc's internal alias names the public call") {
    for (double t = 65; t < 100; t += 10) s.sample(ms(t), s.root_id, {poll, fetch, f});
    const gf::filled_transaction r = s.run();
    REQUIRE(inferred_named(r, "fetch_user").size() == 1);
    CHECK(inferred_named(r, "fetch_user")[0]->description == "blocked: poll \xE2\x86\x90 fetch_user (orders.cpp:118)");
  }
  SUBCASE("half blocked, half computing: mixed") {
    for (double t = 65; t < 100; t += 10) s.sample(ms(t), s.root_id, {t < 80 ? recv : hash, fetch, f});
    const gf::filled_transaction r = s.run();
    REQUIRE(inferred_named(r, "fetch_user").size() == 1);
    CHECK(inferred_named(r, "fetch_user")[0]->state == gf::run_state::mixed);
    CHECK(inferred_named(r, "fetch_user")[0]->description == "fetch_user (orders.cpp:118)");
  }
  SUBCASE("an application function named read is not a system call") {
    for (double t = 65; t < 100; t += 10) s.sample(ms(t), s.root_id, {own_read, fetch, f});
    const gf::filled_transaction r = s.run();
    REQUIRE(inferred_named(r, "fetch_user").size() == 1);
    CHECK(inferred_named(r, "fetch_user")[0]->state == gf::run_state::running);
  }
}

TEST_CASE("gapfill §2.5 limits: min_samples, min_duration_ns, max_inferred_spans (longest kept)") {
  scenario s = worked_example();
  SUBCASE("min_samples = 5 keeps only serialize_response (6 samples)") {
    gf::config cfg;
    cfg.min_samples = 5;
    const gf::filled_transaction r = s.run(cfg);
    check_invariants(r, s.input());
    CHECK(of_kind(r, gf::derived_kind::inferred).size() == 1);
    CHECK(inferred_named(r, "serialize_response").size() == 1);
  }
  SUBCASE("min_duration_ns = 50 ms keeps only serialize_response (60 ms)") {
    gf::config cfg;
    cfg.min_duration_ns = ms(50);
    const gf::filled_transaction r = s.run(cfg);
    CHECK(of_kind(r, gf::derived_kind::inferred).size() == 1);
    CHECK(inferred_named(r, "serialize_response").size() == 1);
  }
  SUBCASE("max_inferred_spans = 2 drops the shortest, its weight unresolved in its gap") {
    gf::config cfg;
    cfg.max_inferred_spans = 2;
    const gf::filled_transaction r = s.run(cfg);
    check_invariants(r, s.input());
    CHECK(r.counts.inferred_spans_over_cap == 1);
    CHECK(inferred_named(r, "parse_request").empty());  // 20 ms, the shortest
    CHECK(inferred_named(r, "join_in_memory").size() == 1);
    CHECK(r.gaps[r.spans[span_index(s, s.root_id)].first_gap].unresolved_weight == 2);
  }
  SUBCASE("fill_leaf_spans fills the db spans too") {
    gf::config cfg;
    cfg.fill_leaf_spans = true;
    const gf::filled_transaction r = s.run(cfg);
    check_invariants(r, s.input());
    const auto query = inferred_named(r, "db::query");
    REQUIRE(query.size() == 2);
    CHECK(query[0]->parent_id == db1_id);
    CHECK(query[0]->state == gf::run_state::blocked);
  }
}
