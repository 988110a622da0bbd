// gapfill: gapfill.md §2's worked example end to end (U1), and gaps that get no derived span
// because nothing or too little was sampled there (U2, U3).
#include <doctest/doctest.h>
#include "support/gapfill_scenario.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace gapfill_support;

TEST_CASE("gapfill U1: the worked example — join_in_memory fills gap 1, serialize_response gap 2") {
  example_options o;
  SUBCASE("anchor frames found by the handler") { o.anchors = true; }
  SUBCASE("no anchors (libunwind): F found by its call site") { o.anchors = false; }
  scenario s = worked_example(o);
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  CHECK(r.counts.samples_placed == 20);
  CHECK(r.counts.skew_conflicts == 0);
  CHECK(r.counts.boundary_snapped == 0);
  CHECK(r.counts.unresolved_samples == 0);
  REQUIRE(r.contexts.size() == 1);
  CHECK(r.contexts[0].interval_ns == ms(10));

  // Root gaps: [0, 20], [60, 100], [140, 200]; the db spans are leaves (not filled).
  const std::uint32_t root = span_index(s, s.root_id);
  REQUIRE(r.spans[root].gap_count == 3);
  const gf::gap_summary& gap1 = r.gaps[r.spans[root].first_gap + 1];
  CHECK(gap1.begin_ns == ms(60));
  CHECK(gap1.end_ns == ms(100));
  CHECK(gap1.kind == gf::gap_kind::between);
  CHECK_FALSE(r.spans[span_index(s, db1_id)].filled);

  const auto join = inferred_named(r, "join_in_memory");
  REQUIRE(join.size() == 1);
  CHECK(join[0]->kind == gf::derived_kind::inferred);
  CHECK(join[0]->op() == "profile.inferred");
  CHECK(join[0]->begin_ns == ms(60));
  CHECK(join[0]->end_ns == ms(100));
  CHECK(join[0]->sample_count == 4);
  CHECK(join[0]->parent_id == s.root_id);
  CHECK(join[0]->span_id == s.root_id);
  CHECK(r.gaps[join[0]->gap_index].k == 1);
  CHECK(join[0]->description == "join_in_memory (orders.cpp:118)");
  CHECK(join[0]->stack == "join_in_memory;std::sort<int*>");  // std::sort folds into spanprof.stack
  CHECK(join[0]->duration_error_ns == ms(10));
  CHECK(join[0]->begin_lo_ns == ms(60));
  CHECK(join[0]->end_hi_ns == ms(100));
  CHECK(join[0]->duration_min_ns == ms(30));
  CHECK(join[0]->state == gf::run_state::running);
  CHECK(join[0]->code_filepath == "/work/app/src/orders.cpp");
  CHECK(join[0]->code_lineno == 140);
  CHECK(join[0]->tid == s.tid);
  CHECK(inferred_named(r, "std::sort<int*>").empty());

  const auto serialize = inferred_named(r, "serialize_response");
  REQUIRE(serialize.size() == 1);
  CHECK(serialize[0]->begin_ns == ms(140));
  CHECK(serialize[0]->end_ns == ms(200));
  CHECK(serialize[0]->sample_count == 6);
  CHECK(r.gaps[serialize[0]->gap_index].k == 2);
  CHECK(serialize[0]->description == "serialize_response (orders.cpp:120)");

  const auto parse = inferred_named(r, "parse_request");
  REQUIRE(parse.size() == 1);  // gap 0: both samples show the same callee
  CHECK(parse[0]->begin_ns == ms(0));
  CHECK(parse[0]->end_ns == ms(20));

  CHECK(of_kind(r, gf::derived_kind::gap).empty());  // every gap is explained
  CHECK(r.derived_spans.size() == 3);

  // Gap 1's call tree: F (4) → join_in_memory (4) → std::sort (4, all self).
  REQUIRE(gap1.node_count == 3);
  const gf::call_tree_node& f = r.call_tree_nodes[gap1.first_node];
  CHECK(f.parent == gf::no_index);
  CHECK(s.frames()[f.frame].function == "handle_orders(int)");
  CHECK(f.total_weight == 4);
  CHECK(f.self_weight == 0);
  const gf::call_tree_node& sort = r.call_tree_nodes[gap1.first_node + 2];
  CHECK(s.frames()[sort.frame].function == "void std::sort<int*>(int*, int*)");
  CHECK(sort.self_weight == 4);
  CHECK(sort.depth == 2);
  CHECK(r.call_tree_nodes[sort.parent].total_weight == 4);

  // Every sample of gap 1 is labelled with the join span and trimmed at F.
  for (std::size_t i = 0; i < r.placements.size(); ++i) {
    const gf::sample_placement& p = r.placements[i];
    if (s.samples[i].t_ns < ms(60) || s.samples[i].t_ns > ms(100)) continue;
    CHECK(p.derived_index == static_cast<std::uint32_t>(join[0] - r.derived_spans.data()));
    CHECK(p.trimmed_count == 3);  // std::sort, join_in_memory, handle_orders
  }
}

TEST_CASE("gapfill U1: gap 0 with two different callees gets an `unexplained` gap span") {
  example_options o;
  o.same_callee_in_gap0 = false;
  scenario s = worked_example(o);
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  CHECK(inferred_named(r, "parse_request").empty());  // one sample each: never a span
  CHECK(inferred_named(r, "authenticate").empty());
  const auto gaps = of_kind(r, gf::derived_kind::gap);
  REQUIRE(gaps.size() == 1);
  CHECK(gaps[0]->reason == gf::gap_reason::unexplained);
  CHECK(gaps[0]->op() == "profile.gap");
  CHECK(gaps[0]->description == "unexplained");
  CHECK(gaps[0]->begin_ns == 0);
  CHECK(gaps[0]->end_ns == ms(20));
  CHECK(gaps[0]->sample_count == 2);
  CHECK(gaps[0]->parent_id == s.root_id);
  CHECK(r.gaps[gaps[0]->gap_index].unresolved_weight == 2);
}

TEST_CASE("gapfill U2 / §3 no samples in a gap: gap span `uninstrumented, unsampled`") {
  example_options o;
  o.samples_in_gap1 = false;
  scenario s = worked_example(o);
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  CHECK(inferred_named(r, "join_in_memory").empty());
  const auto gaps = of_kind(r, gf::derived_kind::gap);
  REQUIRE(gaps.size() == 1);
  CHECK(gaps[0]->reason == gf::gap_reason::unsampled);
  CHECK(gaps[0]->description == "uninstrumented, unsampled");
  CHECK(gaps[0]->begin_ns == ms(60));
  CHECK(gaps[0]->end_ns == ms(100));
  CHECK(gaps[0]->expected_samples == doctest::Approx(4.0));
  CHECK(gaps[0]->sample_count == 0);
  CHECK(r.gaps[gaps[0]->gap_index].k == 1);
  // No derived span in that gap.
  for (const gf::derived_span& d : r.derived_spans) {
    if (d.kind != gf::derived_kind::gap) CHECK(d.gap_index != gaps[0]->gap_index);
  }
}

TEST_CASE("gapfill U3 / §3 gap shorter than Δ: no gap span, counted in short_gaps_ns") {
  scenario s;
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 90);
  const std::uint32_t tiny = s.frame("tiny_step()", "/work/app/src/orders.cpp", 30);
  s.span(s.root_id, 0, 0, 100, "http.server", "GET /orders");
  s.span(0xC1, s.root_id, 0, 50, "db.sql.query", "A");
  s.span(0xC2, s.root_id, 55, 100, "db.sql.query", "B");
  for (double t = 5; t < 50; t += 10) s.sample(ms(t), 0xC1, {f});
  s.sample(ms(52), s.root_id, {tiny, f});
  for (double t = 65; t < 100; t += 10) s.sample(ms(t), 0xC2, {f});
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  const std::uint32_t root = span_index(s, s.root_id);
  REQUIRE(r.spans[root].gap_count == 1);
  const gf::gap_summary& gap = r.gaps[r.spans[root].first_gap];
  CHECK(gap.begin_ns == ms(50));
  CHECK(gap.end_ns == ms(55));
  CHECK(gap.is_short);
  CHECK(r.spans[root].short_gaps_ns == ms(5));
  CHECK(of_kind(r, gf::derived_kind::gap).empty());
  CHECK(inferred_named(r, "tiny_step").empty());
  // Its one sample stays placed in that gap (profile, labels).
  const gf::sample_placement& p = r.placements[5];
  CHECK(p.fate == gf::sample_fate::placed);
  CHECK(p.gap_index == r.spans[root].first_gap);
  CHECK(p.resolved);
}
