// gapfill placement: which gap each sample lands in — span edges, clock skew, drain order, drops,
// and the profile cap (gapfill.md §2.1, §2.2, §3).
#include <doctest/doctest.h>
#include "support/gapfill_scenario.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace gapfill_support;

TEST_CASE("gapfill U4 / §3 sample straddling a span edge: snapped to the adjacent gap") {
  scenario s = worked_example();
  const std::uint32_t parse = s.frame("parse_request(request const&)", "/work/app/src/orders.cpp", 71);
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 108);
  // The root was still the active span when the signal arrived, but the clock read is 0.5 µs
  // into db span 1 (C.begin + 0.5 µs): it belongs to the gap before C.
  s.sample(ms(20) + us(0.5), s.root_id, {parse, f});
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  CHECK(r.counts.boundary_snapped == 1);
  CHECK(r.counts.skew_conflicts == 0);
  const gf::sample_placement& p = r.placements.back();
  CHECK(p.fate == gf::sample_fate::placed);
  CHECK(p.boundary_snapped);
  CHECK(p.span_index == span_index(s, s.root_id));
  CHECK(r.gaps[p.gap_index].k == 0);
  CHECK(p.placed_t_ns == ms(20));
  // The derived span it joins ends at the gap's edge, not inside db span 1.
  const auto parse_spans = inferred_named(r, "parse_request");
  REQUIRE(parse_spans.size() == 1);
  CHECK(parse_spans[0]->sample_count == 3);
  CHECK(parse_spans[0]->end_ns == ms(20));
  CHECK(parse_spans[0]->end_hi_ns == ms(20));
}

TEST_CASE("gapfill U5 / §3 clock skew ε ≤ tol: output identical to ε = 0") {
  scenario reference = worked_example();
  const gf::filled_transaction expected = reference.run();
  for (const std::int64_t skew : {us(50), -us(50), us(99)}) {
    CAPTURE(skew);
    example_options o;
    o.shift_ns = skew;
    scenario s = worked_example(o);
    const gf::filled_transaction r = s.run();
    CHECK(r.counts.skew_conflicts == 0);
    CHECK(shape_of(r) == shape_of(expected));
  }
}

TEST_CASE("gapfill U5 / §3 clock skew ε > tol: ids decide, conflicts counted, spans stay in their gaps") {
  // gapfill.md's U5 says "+2 ms", but every sample of U1 sits 5 ms from every edge, so 2 ms
  // crosses none; 6 ms moves the samples at 15, 55, 95, 135 and 195 across an edge.
  example_options o;
  o.shift_ns = ms(6);
  scenario s = worked_example(o);
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  CHECK(r.counts.skew_conflicts == 5);
  CHECK(r.counts.clock_suspect);  // 5 of 20 > 1 %
  // The db sample now at 61 ms still belongs to db span 1 (the id decides), clamped to its end.
  for (std::size_t i = 0; i < s.samples.size(); ++i) {
    if (s.samples[i].t_ns != ms(61)) continue;
    CHECK(r.placements[i].span_index == span_index(s, db1_id));
    CHECK(r.placements[i].skew_conflict);
    CHECK(r.placements[i].placed_t_ns == ms(60));
  }
  // The root sample now at 101 ms (inside db span 2) goes to the nearest gap, [60, 100].
  const std::uint32_t root = span_index(s, s.root_id);
  const gf::gap_summary& gap1 = r.gaps[r.spans[root].first_gap + 1];
  CHECK(gap1.low_confidence);
  CHECK(gap1.sample_count == 4);
  const auto join = inferred_named(r, "join_in_memory");
  REQUIRE(join.size() == 1);
  CHECK(join[0]->low_confidence);
  CHECK(join[0]->begin_ns >= ms(60));
  CHECK(join[0]->end_ns <= ms(100));
}

TEST_CASE("gapfill U12 / §3 out-of-order drain: same output for any order and batch split") {
  scenario ordered = worked_example();
  const gf::filled_transaction expected = ordered.run();
  std::uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  };
  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    scenario s = worked_example();
    std::vector<std::size_t> order(s.samples.size());
    std::iota(order.begin(), order.end(), 0);
    // Shuffle, then split into 3 drain batches delivered last-first.
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[next() % i]);
    const std::size_t third = order.size() / 3;
    std::vector<std::size_t> delivered(order.begin() + 2 * static_cast<std::ptrdiff_t>(third), order.end());
    delivered.insert(delivered.end(), order.begin(), order.begin() + static_cast<std::ptrdiff_t>(third));
    delivered.insert(delivered.end(), order.begin() + static_cast<std::ptrdiff_t>(third), order.begin() + 2 * static_cast<std::ptrdiff_t>(third));
    scenario shuffled = s;
    for (std::size_t i = 0; i < delivered.size(); ++i) {
      shuffled.samples[i] = s.samples[delivered[i]];
      shuffled.stacks[i] = s.stacks[delivered[i]];
    }
    const gf::filled_transaction r = shuffled.run();
    CHECK(shape_of(r) == shape_of(expected));
    CHECK(r.counts == expected.counts);
    for (std::size_t i = 0; i < delivered.size(); ++i) CHECK(r.placements[i] == expected.placements[delivered[i]]);
  }
}

TEST_CASE("gapfill U13 / §3 dropped samples: reason `samples dropped (n)`, runs bridge drop holes") {
  SUBCASE("U2 with drop log entries in 60–100") {
    example_options o;
    o.samples_in_gap1 = false;
    scenario s = worked_example(o);
    s.drop_reports.push_back({s.tid, {{ms(65), s.ctx}, {ms(75), s.ctx}, {ms(85), s.ctx}, {ms(25), 999}}, 0});
    const gf::filled_transaction r = s.run();
    const auto gaps = of_kind(r, gf::derived_kind::gap);
    REQUIRE(gaps.size() == 1);
    CHECK(gaps[0]->reason == gf::gap_reason::samples_dropped);
    CHECK(gaps[0]->samples_dropped == 3);  // the entry of context 999 is not ours
    CHECK_FALSE(gaps[0]->samples_dropped_upper_bound);
    CHECK(gaps[0]->description == "samples dropped (3)");
    CHECK(r.counts.samples_dropped == 4);
  }
  SUBCASE("the log overflowed: an upper bound for gaps before its oldest entry") {
    example_options o;
    o.samples_in_gap1 = false;
    scenario s = worked_example(o);
    s.drop_reports.push_back({s.tid, {{ms(150), s.ctx}}, 7});
    const gf::filled_transaction r = s.run();
    const auto gaps = of_kind(r, gf::derived_kind::gap);
    REQUIRE(gaps.size() == 1);
    CHECK(gaps[0]->samples_dropped == 7);
    CHECK(gaps[0]->samples_dropped_upper_bound);
    CHECK(gaps[0]->description == "samples dropped (up to 7)");
  }
  SUBCASE("a run bridges the hole of dropped samples") {
    scenario s = worked_example();
    s.remove_samples_if([](const gf::sample_input& x) { return x.t_ns == ms(75) || x.t_ns == ms(85); });
    s.drop_reports.push_back({s.tid, {{ms(75), s.ctx}, {ms(85), s.ctx}}, 0});
    const gf::filled_transaction r = s.run();
    check_invariants(r, s.input());
    const auto join = inferred_named(r, "join_in_memory");
    REQUIRE(join.size() == 1);
    CHECK(join[0]->sample_count == 2);
    CHECK(join[0]->begin_ns == ms(60));
    CHECK(join[0]->end_ns == ms(100));
    CHECK(join[0]->merged_over_drop);
    CHECK(r.counts.merged_over_drop == 1);
  }
}

TEST_CASE("gapfill U14 / §3 very long transaction: nothing kept after 30 s, later gaps `profile limit`") {
  scenario s;
  const std::uint32_t f = s.frame("handle_batch()", "/work/app/src/batch.cpp", 60);
  const std::uint32_t work = s.frame("crunch()", "/work/app/src/batch.cpp", 80);
  s.span(s.root_id, 0, 0, 40'000, "queue.task", "nightly", "void handle_batch()", "../src/batch.cpp", 50);
  s.span(0xC1, s.root_id, 10'000, 20'000, "db.sql.query", "A", "void handle_batch()", "../src/batch.cpp", 55);
  s.span(0xC2, s.root_id, 32'000, 35'000, "db.sql.query", "B", "void handle_batch()", "../src/batch.cpp", 57);
  for (double t = 5; t < 40'000; t += 10) {
    const bool in_a = t > 10'000 && t < 20'000;
    const bool in_b = t > 32'000 && t < 35'000;
    s.sample(ms(t), in_a ? 0xC1 : in_b ? 0xC2 : s.root_id, {work, f});
  }
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  CHECK(r.counts.samples_over_cap == 1000);
  CHECK(r.profile_cap_ns == ms(30'000));
  for (std::size_t i = 0; i < s.samples.size(); ++i) {
    CHECK((r.placements[i].fate == gf::sample_fate::over_cap) == (s.samples[i].t_ns >= ms(30'000)));
  }
  for (const gf::derived_span& d : r.derived_spans) {
    if (d.kind != gf::derived_kind::gap) CHECK(d.end_ns <= ms(30'000));
  }
  const auto crunch = inferred_named(r, "crunch");
  REQUIRE(crunch.size() == 2);
  CHECK(crunch[1]->begin_ns == ms(20'000));
  CHECK(crunch[1]->end_ns == ms(30'000));
  const auto gaps = of_kind(r, gf::derived_kind::gap);
  REQUIRE(gaps.size() == 2);
  CHECK(gaps[0]->reason == gf::gap_reason::profile_limit);  // [20 s, 32 s], sampled until 30 s
  CHECK(gaps[0]->begin_ns == ms(20'000));
  CHECK(gaps[1]->reason == gf::gap_reason::profile_limit);  // [35 s, 40 s], no samples
  CHECK(gaps[1]->sample_count == 0);
  CHECK(gaps[1]->description == "profile limit");

  SUBCASE("the sample-count cap alone") {
    gf::config cfg;
    cfg.max_samples_per_txn = 1500;
    const gf::filled_transaction capped = s.run(cfg);
    CHECK(capped.counts.samples_over_cap == 4000 - 1500);
    CHECK(capped.profile_cap_ns == ms(15'005));  // the 1501st sample's time
  }
}
