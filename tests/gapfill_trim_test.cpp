// gapfill trim: cutting each stack at the span's own function — recursion, inlined frames, the
// sampler's frames, truncated unwinds, the anchor and the fallbacks (gapfill.md §2.3).
#include <doctest/doctest.h>
#include "support/gapfill_scenario.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace gapfill_support;

TEST_CASE("gapfill U9 / §3 recursion: direct recursion is one span with recursion_depth") {
  scenario s;
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t start = s.frame("main", "/work/app/src/main.cpp", 3);
  s.span(s.root_id, 0, 0, 60, "http.server", "GET /tree");
  s.span(0xC1, s.root_id, 0, 10, "db.sql.query", "A");
  SUBCASE("f recursing up to 50 deep for 30 ms") {
    const std::uint32_t rec = s.frame("walk(node const*)", "/work/app/src/tree.cpp", 44);
    const std::uint32_t rec_leaf = s.frame("walk(node const*)", "/work/app/src/tree.cpp", 41);
    for (const auto& [t, depth] : std::vector<std::pair<double, int>>{{15, 20}, {25, 50}, {35, 35}}) {
      std::vector<std::uint32_t> stack{rec_leaf};
      for (int k = 1; k < depth; ++k) stack.push_back(rec);
      stack.push_back(f);
      stack.push_back(start);
      s.sample(ms(t), s.root_id, stack);
    }
    s.sample(ms(45), s.root_id, {f, start});
    s.sample(ms(55), s.root_id, {f, start});
    const gf::filled_transaction r = s.run();
    check_invariants(r, s.input());
    const auto walk = inferred_named(r, "walk");
    REQUIRE(walk.size() == 1);
    CHECK(walk[0]->recursion_depth == 50);
    CHECK(walk[0]->sample_count == 3);
    CHECK(walk[0]->begin_ns == ms(10));
    CHECK(walk[0]->end_ns == ms(40));
    CHECK(walk[0]->stack == "walk");
    // F's own samples after it: an `F self` span.
    const auto self = of_kind(r, gf::derived_kind::inferred_self);
    REQUIRE(self.size() == 1);
    CHECK(self[0]->code_function == "handle_orders");
    CHECK(self[0]->begin_ns == ms(40));
    CHECK(self[0]->end_ns == ms(60));
    CHECK(self[0]->description == "handle_orders self (orders.cpp:118)");
  }
  SUBCASE("indirect recursion f→g→f→… is bounded by max_inferred_depth") {
    const std::uint32_t even = s.frame("even(int)", "/work/app/src/parity.cpp", 10);
    const std::uint32_t odd = s.frame("odd(int)", "/work/app/src/parity.cpp", 20);
    // Sample k is k levels deep, so every level has its own samples and none is a chain.
    for (int k = 1; k <= 12; ++k) {
      std::vector<std::uint32_t> stack;
      for (int level = k; level >= 1; --level) stack.push_back(level % 2 == 1 ? even : odd);
      stack.push_back(f);
      s.sample(ms(10 + 4 * k), s.root_id, stack);
    }
    gf::config cfg;
    const gf::filled_transaction r = s.run(cfg);
    check_invariants(r, s.input());
    std::uint32_t deepest = 0;
    for (const gf::derived_span& d : r.derived_spans) deepest = std::max(deepest, d.depth);
    CHECK(deepest == cfg.max_inferred_depth);
    CHECK(of_kind(r, gf::derived_kind::inferred).size() == cfg.max_inferred_depth);
    // The deepest span keeps the weight of the levels below it as unresolved.
    for (const gf::derived_span& d : r.derived_spans) {
      if (d.depth == cfg.max_inferred_depth) CHECK(d.unresolved_weight == d.sample_weight - d.self_weight);
    }
  }
}

TEST_CASE("gapfill U10 / §3 inlined frames: a derived span can name an inlined function") {
  SUBCASE("the callee is inlined into F") {
    scenario s = worked_example();
    const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 130);
    const std::uint32_t header = s.frame("parse_header(buffer&)", "/work/app/src/parser.hpp", 20, "/srv/bin/orders", true);
    const std::uint32_t message = s.frame("parse_message(buffer&)", "/work/app/src/parser.hpp", 50, "/srv/bin/orders", true);
    const std::uint32_t serve = s.frame("app::serve(app::server&)", "/work/app/src/server.cpp", 55);
    s.remove_samples_if([](const gf::sample_input& x) { return x.t_ns > ms(60) && x.t_ns < ms(100); });
    // One pc in F's frame expands to three entries: parse_header ← parse_message ← F.
    for (double t = 65; t < 100; t += 10) s.sample(ms(t), s.root_id, {header, message, f, serve}, 0);
    const gf::filled_transaction r = s.run();
    check_invariants(r, s.input());
    const auto parse = inferred_named(r, "parse_message");
    REQUIRE(parse.size() == 1);
    CHECK(parse[0]->description == "parse_message (orders.cpp:130)");  // where F inlined it
    CHECK(parse[0]->stack == "parse_message;parse_header");
    CHECK(parse[0]->code_filepath == "/work/app/src/parser.hpp");
    CHECK(parse[0]->code_lineno == 50);
    CHECK(parse[0]->begin_ns == ms(60));
    CHECK(parse[0]->end_ns == ms(100));
  }
  SUBCASE("F itself is inlined into its caller: the anchor frame is the caller's") {
    scenario s = worked_example();
    const std::uint32_t f_inlined = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118, "/srv/bin/orders", true);
    const std::uint32_t join = s.frame("join_in_memory(std::vector<int, std::allocator<int> >&)", "/work/app/src/orders.cpp", 140);
    const std::uint32_t serve = s.frame("app::serve(app::server&)", "/work/app/src/server.cpp", 55);
    const std::uint32_t main_fn = s.frame("main", "/work/app/src/main.cpp", 12);
    s.remove_samples_if([](const gf::sample_input& x) { return x.t_ns > ms(60) && x.t_ns < ms(100); });
    // Physical frames: join, serve (with F inlined in it), main. F's frame address is serve's.
    for (double t = 65; t < 100; t += 10) s.sample(ms(t), s.root_id, {join, f_inlined, serve, main_fn}, 1);
    const gf::filled_transaction r = s.run();
    check_invariants(r, s.input());
    const auto join_spans = inferred_named(r, "join_in_memory");
    REQUIRE(join_spans.size() == 1);
    CHECK(join_spans[0]->description == "join_in_memory (orders.cpp:118)");
    CHECK(inferred_named(r, "app::serve").empty());
    const gf::gap_summary& gap = r.gaps[join_spans[0]->gap_index];
    CHECK(s.frames()[r.call_tree_nodes[gap.first_node].frame].function == "handle_orders(int)");
    CHECK(r.placements.back().trimmed_count == 2);
  }
}

TEST_CASE("gapfill U11 / §3 sampler frames and __restore_rt never reach the output") {
  scenario plain = worked_example();
  const gf::filled_transaction expected = plain.run();
  example_options o;
  o.handler_frames = true;
  scenario s = worked_example(o);
  const gf::filled_transaction r = s.run();
  CHECK(shape_of(r) == shape_of(expected));
  CHECK(r.counts.self_frames_stripped == 20);  // the counter says they were there
  CHECK(expected.counts.self_frames_stripped == 0);
  for (const gf::sample_placement& p : r.placements) CHECK(p.leaf_skip == 2);
}

TEST_CASE("gapfill §3 unwind failure (TRUNCATED): sample kept, fallback trim, counted") {
  scenario s = worked_example();
  const std::uint32_t sort = s.frame("void std::sort<int*>(int*, int*)", "/usr/include/c++/12/bits/stl_algo.h", 4881);
  const std::uint32_t join = s.frame("join_in_memory(std::vector<int, std::allocator<int> >&)", "/work/app/src/orders.cpp", 140);
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  for (std::size_t i = 0; i < s.samples.size(); ++i) {
    if (s.samples[i].t_ns == ms(75)) {
      // The walk stopped right after the leaf: F is not in it, so it cannot be placed in the tree.
      s.stacks[i] = {sort};
      s.samples[i].flags = gf::sample_flag_truncated;
    }
    if (s.samples[i].t_ns == ms(85)) {
      // Stopped above F: the call site still finds F. The anchor index is not trusted.
      s.stacks[i] = {sort, join, f};
      s.samples[i].flags = gf::sample_flag_truncated;
    }
  }
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  CHECK(r.counts.truncated_samples == 2);
  CHECK(r.counts.unresolved_samples == 1);
  std::size_t at75 = 0;
  std::size_t at85 = 0;
  for (std::size_t i = 0; i < s.samples.size(); ++i) {
    if (s.samples[i].t_ns == ms(75)) at75 = i;
    if (s.samples[i].t_ns == ms(85)) at85 = i;
  }
  CHECK(r.placements[at75].fate == gf::sample_fate::placed);
  CHECK_FALSE(r.placements[at75].resolved);
  CHECK(r.placements[at85].resolved);
  CHECK(r.placements[at85].trimmed_count == 3);
  // The unknown stack neither ends nor extends the run: still one join_in_memory.
  const auto spans = inferred_named(r, "join_in_memory");
  REQUIRE(spans.size() == 1);
  CHECK(spans[0]->sample_count == 3);
  CHECK(spans[0]->begin_ns == ms(60));
  CHECK(spans[0]->end_ns == ms(100));
  CHECK(r.gaps[spans[0]->gap_index].unresolved_weight == 1);
}

TEST_CASE("gapfill §2.3 anchor trim: exact when F recurses through another function") {
  // render() → layout() → render() → paint(): the span was opened by the inner render(). Its
  // anchor (frame address) picks the inner one; the call site alone matches the outermost.
  scenario s;
  const std::uint32_t render_outer = s.frame("render(node const&)", "/work/app/src/ui.cpp", 30);
  const std::uint32_t layout = s.frame("layout(node const&)", "/work/app/src/ui.cpp", 60);
  const std::uint32_t render_inner = s.frame("render(node const&)", "/work/app/src/ui.cpp", 34);
  const std::uint32_t paint = s.frame("paint(node const&)", "/work/app/src/ui.cpp", 90);
  const std::uint32_t main_fn = s.frame("main", "/work/app/src/main.cpp", 3);
  s.span(s.root_id, 0, 0, 40, "ui.render", "frame", "void render(const node&)", "../src/ui.cpp", 20);
  for (double t = 5; t < 40; t += 10) s.sample(ms(t), s.root_id, {paint, render_inner, layout, render_outer, main_fn}, 1);
  SUBCASE("anchor found: paint, called by the render that opened the span") {
    const gf::filled_transaction r = s.run();
    const auto paint_spans = inferred_named(r, "paint");
    REQUIRE(paint_spans.size() == 1);
    CHECK(paint_spans[0]->description == "paint (ui.cpp:34)");
    CHECK(r.placements[0].trimmed_count == 2);
    CHECK(inferred_named(r, "layout").empty());
  }
  SUBCASE("no anchor (libunwind): the outermost render, as §2.3 step 3 says") {
    for (gf::sample_input& x : s.samples) x.anchor_idx = gf::anchor_unknown;
    const gf::filled_transaction r = s.run();
    const auto layout_spans = inferred_named(r, "layout");
    REQUIRE(layout_spans.size() == 1);
    CHECK(layout_spans[0]->stack == "layout;render;paint");
    CHECK(r.placements[0].trimmed_count == 4);
  }
}

TEST_CASE("gapfill §2.3 fallback: no call-site match, F is the end of the common prefix") {
  SUBCASE("the samples diverge below F: same result as U1") {
    example_options o;
    o.anchors = false;
    scenario expected_scenario = worked_example(o);
    const gf::filled_transaction expected = expected_scenario.run();
    scenario s = worked_example(o);
    for (gf::span_input& span : s.spans) span.callsite_function = "auto handle_orders(int)::<lambda()>";
    const gf::filled_transaction r = s.run();
    CHECK(r.derived_spans == expected.derived_spans);
    // The root's samples (and its descendants') diverge below F: trimmed there. Each db span's
    // own samples are all one stack, so for them F cannot be told apart: untrimmed, flagged.
    CHECK(r.counts.low_confidence_trims == 8);
    for (std::size_t i = 0; i < s.samples.size(); ++i) {
      CHECK(r.placements[i].low_confidence_trim == (s.samples[i].span_id != s.root_id));
      if (s.samples[i].span_id == s.root_id) CHECK(r.placements[i].trimmed_count == expected.placements[i].trimmed_count);
    }
  }
  SUBCASE("fewer than two distinct stacks: kept untrimmed, low confidence") {
    scenario s;
    const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
    const std::uint32_t g = s.frame("G()", "/work/app/src/g.cpp", 10);
    const std::uint32_t main_fn = s.frame("main", "/work/app/src/main.cpp", 3);
    s.span(s.root_id, 0, 0, 40, "http.server", "GET /g", "lambda");
    for (double t = 5; t < 40; t += 10) s.sample(ms(t), s.root_id, {g, f, main_fn});
    const gf::filled_transaction r = s.run();
    check_invariants(r, s.input());
    CHECK(r.counts.low_confidence_trims == 4);
    CHECK(r.placements[0].low_confidence_trim);
    CHECK(r.placements[0].trimmed_count == 3);
    const auto spans = inferred_named(r, "handle_orders");  // the root is now main
    REQUIRE(spans.size() == 1);
    CHECK(spans[0]->low_confidence);
    CHECK(spans[0]->stack == "handle_orders;G");
  }
}
