// writers/nesting.hpp: nest_intervals makes any set of intervals properly nested, as
// speedscope's importer and the Chrome trace viewers need (checked by an independent checker).
#include "support/flame_files.hpp"

using namespace spanprof_test;
namespace sd = spanprof::detail;

TEST_CASE("nest_intervals: nested input comes out as is") {
  std::uint64_t clamped = 0;
  // parent [0,10], child [2,5], second child [5,9] (shares an edge with the first)
  const auto events = sd::nest_intervals({{0, 10, 0, 0}, {5, 9, 2, 2}, {2, 5, 1, 1}}, clamped);
  REQUIRE(events.size() == 6);
  const std::vector<std::tuple<bool, std::uint32_t, std::int64_t>> expected = {
      {true, 0, 0}, {true, 1, 2}, {false, 1, 5}, {true, 2, 5}, {false, 2, 9}, {false, 0, 10}};
  for (std::size_t i = 0; i < events.size(); ++i) {
    INFO("event ", i);
    CHECK(events[i].open == std::get<0>(expected[i]));
    CHECK(events[i].frame == std::get<1>(expected[i]));
    CHECK(events[i].at_ns == std::get<2>(expected[i]));
  }
  CHECK(clamped == 0);
}

TEST_CASE("nest_intervals: overlapping, reversed, zero-length and identical intervals still nest") {
  std::uint64_t clamped = 0;
  std::vector<sd::timed_interval> hostile = {
      {0, 100, 0, 0},    // root
      {10, 50, 1, 1},    // span
      {40, 70, 2, 2},    // overlaps the span's end: clamped to 50
      {60, 60, 3, 3},    // zero length
      {90, 80, 4, 4},    // ends before it begins: made zero length
      {10, 50, 5, 5},    // same edges as the span: nested inside it (higher order)
      {95, 130, 6, 6},   // beyond the root's end: clamped
      {100, 100, 7, 7},  // at the root's very end
  };
  const auto events = sd::nest_intervals(hostile, clamped);
  CHECK(events_problem(events, 8) == "");
  CHECK(events.size() == 2 * hostile.size());
  CHECK(clamped == 2);
  // Frame 5 opens after frame 1 (inside it), frame 2 inside 1 as well (it starts before 50).
  std::vector<std::uint32_t> stack_at_open_of_5, stack_at_open_of_2;
  std::vector<std::uint32_t> stack;
  for (const auto& e : events) {
    if (e.open) {
      if (e.frame == 5) stack_at_open_of_5 = stack;
      if (e.frame == 2) stack_at_open_of_2 = stack;
      stack.push_back(e.frame);
    } else {
      stack.pop_back();
    }
  }
  CHECK(stack_at_open_of_5 == std::vector<std::uint32_t>{0, 1});
  REQUIRE(stack_at_open_of_2.size() >= 2);
  CHECK(stack_at_open_of_2[1] == 1);

  SUBCASE("random intervals") {
    const unsigned seed = std::random_device{}();
    INFO("seed ", seed);
    std::mt19937 rng(seed);
    for (int round = 0; round < 200; ++round) {
      std::vector<sd::timed_interval> random;
      const std::uint32_t n = 1 + rng() % 20;
      for (std::uint32_t i = 0; i < n; ++i) {
        random.push_back({static_cast<std::int64_t>(rng() % 50), static_cast<std::int64_t>(rng() % 50), i, i});
      }
      std::uint64_t c = 0;
      const auto ev = sd::nest_intervals(random, c);
      CHECK(events_problem(ev, n) == "");
      CHECK(ev.size() == 2 * n);
    }
  }
}
