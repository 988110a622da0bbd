// gapfill timelines and the span tree: fibers that yield and resume, several contexts on one
// thread, nested transactions, spans left open or ended on another context (gapfill.md §3).
#include <doctest/doctest.h>
#include "support/gapfill_scenario.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace gapfill_support;

TEST_CASE("gapfill U6 / §3 fiber yields mid-span and resumes on another thread") {
  scenario s;
  s.ctx = 1'000'000'001;  // fiber ids are disjoint from tids
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t g = s.frame("fetch_and_merge()", "/work/app/src/orders.cpp", 150);
  s.span(s.root_id, 0, 0, 150, "queue.task", "merge");
  s.fibers.push_back({s.ctx, {{0, ms(50), 11}, {ms(80), ms(150), 12}}});
  s.tid = 11;
  for (double t = 5; t < 50; t += 10) s.sample(ms(t), s.root_id, {g, f});
  s.tid = 12;
  for (double t = 85; t < 150; t += 10) s.sample(ms(t), s.root_id, {g, f});
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  REQUIRE(r.contexts.size() == 1);
  CHECK(r.contexts[0].fiber);
  CHECK(r.contexts[0].interval_ns == ms(10));  // the spacing across the yield is not counted
  const auto merged = inferred_named(r, "fetch_and_merge");
  REQUIRE(merged.size() == 1);  // one span across the yield, samples from both threads
  CHECK(merged[0]->sample_count == 12);
  CHECK(merged[0]->begin_ns == 0);
  CHECK(merged[0]->end_ns == ms(150));
  CHECK(merged[0]->suspended_ns == ms(30));
  CHECK(merged[0]->tid == 11);
  const auto gaps = of_kind(r, gf::derived_kind::gap);
  REQUIRE(gaps.size() == 1);  // the suspended segment; the running time is fully explained
  CHECK(gaps[0]->reason == gf::gap_reason::suspended);
  CHECK(gaps[0]->begin_ns == ms(50));
  CHECK(gaps[0]->end_ns == ms(80));
  CHECK(gaps[0]->parent_id == merged[0]->id);  // the fiber yielded inside fetch_and_merge
  CHECK(r.gaps[merged[0]->gap_index].suspended_ns == ms(30));
  CHECK(r.gaps[merged[0]->gap_index].residual_ns == 0);
}

TEST_CASE("gapfill U6 / §3 fiber: a neighbour across a suspension counts on-thread time only") {
  // Short calls (one sample each) until 45 ms, suspended [48, 80), then G from 82 ms. Between
  // the samples at 45 and 82 the fiber ran 5 ms: G's begin is 2.5 ms of running time before 82,
  // i.e. 0.5 ms before the suspension. (Halving wall time would give 18.5 ms, capped to Δ/2 =
  // 5 ms of running time: 45 ms.)
  scenario s;
  s.ctx = 1'000'000'002;
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t g = s.frame("fetch_and_merge()", "/work/app/src/orders.cpp", 150);
  s.span(s.root_id, 0, 0, 120, "queue.task", "merge");
  s.fibers.push_back({s.ctx, {{0, ms(48), 11}, {ms(80), ms(120), 12}}});
  for (int k = 0; k < 5; ++k) {
    const std::uint32_t short_call = s.frame("step" + std::to_string(k) + "()", "/work/app/src/orders.cpp", 60);
    s.sample(ms(5 + 10 * k), s.root_id, {short_call, f});
  }
  for (double t = 82; t < 120; t += 10) s.sample(ms(t), s.root_id, {g, f});
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  const auto merged = inferred_named(r, "fetch_and_merge");
  REQUIRE(merged.size() == 1);
  CHECK(merged[0]->begin_ns == ms(47.5));
  CHECK(merged[0]->end_ns == ms(117));  // last sample 112 + Δ/2
  CHECK(merged[0]->suspended_ns == ms(32));
  CHECK(r.derived_spans.size() == 3);  // fetch_and_merge, the suspension, the unexplained rest
}

TEST_CASE("gapfill U7 / §3 transactions on two fibers of one thread see only their own samples") {
  // Fibers A and B alternate on thread 11 every 20 ms; each runs its own transaction.
  scenario a;
  a.ctx = 2001;
  a.tid = 11;
  a.txn_id = 0xAAA;
  a.root_id = 0xA0;
  const std::uint32_t fa = a.frame("handle_a()", "/work/app/src/a.cpp", 10);
  const std::uint32_t wa = a.frame("a_work()", "/work/app/src/a.cpp", 40);
  const std::uint32_t fb = a.frame("handle_b()", "/work/app/src/b.cpp", 10);
  const std::uint32_t wb = a.frame("b_work()", "/work/app/src/b.cpp", 40);
  a.span(0xA0, 0, 0, 140, "queue.task", "A", "void handle_a()", "../src/a.cpp", 5);
  a.span(0xB0, 0, 20, 160, "queue.task", "B", "void handle_b()", "../src/b.cpp", 5).ctx_id = 2002;
  std::vector<gf::on_thread_interval> on_a;
  std::vector<gf::on_thread_interval> on_b;
  for (double t = 0; t < 160; t += 20) {
    const bool is_a = static_cast<int>(t / 20) % 2 == 0;
    (is_a ? on_a : on_b).push_back({ms(t), ms(t + 20), 11});
    for (double u = t + 5; u < t + 20; u += 10) {
      gf::sample_input& smp = a.sample(ms(u), is_a ? 0xA0 : 0xB0, is_a ? std::vector<std::uint32_t>{wa, fa} : std::vector<std::uint32_t>{wb, fb});
      smp.ctx_id = is_a ? 2001 : 2002;
      smp.txn_id = is_a ? 0xAAA : 0xBBB;
    }
  }
  a.fibers.push_back({2001, on_a});
  a.fibers.push_back({2002, on_b});
  // Taken while switching from A to B: it goes nowhere.
  a.sample(ms(20), 0xA0, {wa, fa}).flags = gf::sample_flag_in_switch;

  const gf::filled_transaction ra = a.run();
  check_invariants(ra, a.input());
  CHECK(ra.counts.samples_placed == 8);
  CHECK(ra.counts.other_transaction_samples == 8);
  CHECK(ra.counts.switch_samples == 1);
  CHECK(ra.placements.back().fate == gf::sample_fate::in_switch);
  CHECK(inferred_named(ra, "b_work").empty());
  const auto work_a = inferred_named(ra, "a_work");
  REQUIRE(work_a.size() == 1);
  CHECK(work_a[0]->sample_count == 8);
  CHECK(work_a[0]->suspended_ns == ms(60));  // suspended at [20,40), [60,80), [100,120)

  scenario b = a;
  b.txn_id = 0xBBB;
  b.root_id = 0xB0;
  const gf::filled_transaction rb = b.run();
  check_invariants(rb, b.input());
  CHECK(rb.counts.samples_placed == 8);
  CHECK(rb.counts.other_transaction_samples == 9);  // A's eight, and A's switch sample
  CHECK(inferred_named(rb, "a_work").empty());
  REQUIRE(inferred_named(rb, "b_work").size() == 1);
}

TEST_CASE("gapfill §3 nested transaction on the same ctx: its root covers the outer timeline") {
  scenario s;
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t work = s.frame("prepare()", "/work/app/src/orders.cpp", 20);
  const std::uint32_t inner_work = s.frame("inner_job()", "/work/app/src/jobs.cpp", 20);
  s.span(s.root_id, 0, 0, 100, "http.server", "GET /orders");
  s.span(0xC1, s.root_id, 10, 20, "db.sql.query", "A");
  s.span(0x1A0, s.root_id, 40, 70, "queue.task", "inner").nested_transaction_root = true;
  for (double t = 5; t < 100; t += 10) {
    if (t > 10 && t < 20) {
      s.sample(ms(t), 0xC1, {f});
    } else if (t > 40 && t < 70) {
      s.sample(ms(t), 0x1A0, {inner_work, f}).txn_id = 0x7002;  // the inner transaction's
    } else {
      s.sample(ms(t), s.root_id, {work, f});
    }
  }
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  CHECK(r.counts.other_transaction_samples == 3);
  const std::uint32_t root = span_index(s, s.root_id);
  REQUIRE(r.spans[root].gap_count == 3);
  const gf::gap_summary* gaps = &r.gaps[r.spans[root].first_gap];
  CHECK(gaps[0].begin_ns == 0);
  CHECK(gaps[0].end_ns == ms(10));
  CHECK(gaps[1].begin_ns == ms(20));
  CHECK(gaps[1].end_ns == ms(40));
  CHECK(gaps[2].begin_ns == ms(70));
  CHECK(gaps[2].end_ns == ms(100));
  const std::uint32_t nested = span_index(s, 0x1A0);
  CHECK(r.spans[nested].excluded);
  CHECK_FALSE(r.spans[nested].filled);
  CHECK(r.spans[nested].gap_count == 0);
  CHECK(inferred_named(r, "inner_job").empty());
  for (const gf::derived_span& d : r.derived_spans) {
    CHECK((d.end_ns <= ms(40) || d.begin_ns >= ms(70)));  // nothing inside the inner transaction
  }
}

TEST_CASE("gapfill U8 / §3 spans left open at finish: auto-closed at txn.end, gaps as usual") {
  SUBCASE("still open when gapfill runs") {
    scenario s = worked_example();
    s.spans[2].open = true;  // db span 2 never ended: its samples carry its id to the end
    for (std::size_t i = 0; i < s.samples.size(); ++i) {
      if (s.samples[i].t_ns > ms(140)) s.samples[i].span_id = db2_id;
    }
    const gf::filled_transaction r = s.run();
    check_invariants(r, s.input());
    const std::uint32_t db2 = span_index(s, db2_id);
    CHECK(r.spans[db2].auto_closed_here);
    CHECK(r.spans[db2].end_ns == ms(200));
    CHECK(r.spans[db2].status == "deadline_exceeded");
    CHECK(r.counts.spans_auto_closed == 1);
    const std::uint32_t root = span_index(s, s.root_id);
    CHECK(r.spans[root].gap_count == 2);  // [0, 20], [60, 100]: db span 2 covers the rest
    CHECK(inferred_named(r, "serialize_response").empty());
    CHECK(inferred_named(r, "join_in_memory").size() == 1);
  }
  SUBCASE("already auto-closed by the context (deadline_exceeded, auto_closed)") {
    scenario s = worked_example();
    s.spans[2].end_ns = ms(200);
    s.spans[2].status = "deadline_exceeded";
    s.spans[2].auto_closed = true;
    const gf::filled_transaction r = s.run();
    const std::uint32_t db2 = span_index(s, db2_id);
    CHECK_FALSE(r.spans[db2].auto_closed_here);
    CHECK(r.spans[db2].status == "deadline_exceeded");
    CHECK(r.spans[span_index(s, s.root_id)].gap_count == 2);
    CHECK(r.counts.spans_auto_closed == 0);
  }
}

TEST_CASE("gapfill §3 span ended on another ctx: excluded from cover and from filling") {
  scenario s;
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t load = s.frame("load_cache()", "/work/app/src/cache.cpp", 20);
  const std::uint32_t q = s.frame("db::query(char const*)", "/work/app/src/db.cpp", 31);
  s.span(s.root_id, 0, 0, 100, "http.server", "GET /orders");
  s.span(0xC1, s.root_id, 30, 60, "cache.get", "warm").cross_context = true;
  s.span(0xC2, 0xC1, 40, 50, "db.sql.query", "SELECT 1");  // a child of the cross-context span
  for (double t = 5; t < 100; t += 10) {
    if (t > 40 && t < 50) s.sample(ms(t), 0xC2, {q, f});
    else s.sample(ms(t), t > 30 && t < 60 ? 0xC1 : s.root_id, {load, f});
  }
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  const std::uint32_t cross = span_index(s, 0xC1);
  CHECK(r.spans[cross].excluded);
  CHECK_FALSE(r.spans[cross].filled);
  CHECK(r.spans[cross].gap_count == 0);
  // The root's gaps ignore it: only its child covers [40, 50].
  const std::uint32_t root = span_index(s, s.root_id);
  REQUIRE(r.spans[root].gap_count == 2);
  CHECK(r.gaps[r.spans[root].first_gap].end_ns == ms(40));
  CHECK(r.gaps[r.spans[root].first_gap + 1].begin_ns == ms(50));
  // Its samples explain the root's time: load_cache spans [0, 40].
  const auto spans = inferred_named(r, "load_cache");
  REQUIRE(spans.size() == 2);
  CHECK(spans[0]->begin_ns == 0);
  CHECK(spans[0]->end_ns == ms(40));
  CHECK(spans[0]->sample_count == 4);
  CHECK(spans[1]->begin_ns == ms(50));
  CHECK(spans[1]->end_ns == ms(100));
}
