// gapfill accuracy: a randomized test over seeded synthetic transactions with known planted
// functions (gapfill.md §5.4, run on a simulator as §5.2 describes).
#include <doctest/doctest.h>
#include "support/gapfill_scenario.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <numeric>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

using namespace gapfill_support;

// ---- §5.4 randomized accuracy, on a simulator -------------------------------------------------
//
// Each seed draws a truth timeline: handle_request() (F) opens 1–5 db spans of 5–40 ms; before,
// between and after them, with probability 0.7, F calls one of eight functions fn0…fn7 for
// 0–60 ms, and 20 % of those call another fnj for part of the time. F's own code runs around
// the calls. Samples are taken at t0 + iΔ + jitter (|jitter| ≤ Δ/4) with the span id and stack
// the truth has at that instant, then noise: 3 % truncated stacks (leaf fragment only), 2 %
// with the handler's frames at the leaf, 2 % dropped into the drop log, samples inside the db
// spans (their own stacks), a clock skew ≤ 40 µs, anchors known for half the transactions
// (frame pointers) and unknown for the others (libunwind); in CPU mode some expirations merge
// (weight 2).
//
// Definitions (gapfill.md §5.4):
//   truth item      (gap k of the root, function, [b, e]) for each top-level planted call;
//                   detectable if e − b ≥ 3Δ.
//   match           a top-level inferred span (kind inferred, parent = root) in gap k that names
//                   the function and overlaps at least half of [b, e]; one span per item.
//   recall          matched detectable items / detectable items.
//   precision       matched top-level inferred spans / all top-level inferred spans (F self
//                   spans are not counted: they name F, not a planted call).
//   attribution     samples farther than tol from every span edge whose (span, gap) is the truth's
//                   / all such samples.
//   duration        matched detectable items whose estimated duration is within
//                   max(2Δ, 10 %) of the truth / matched detectable items.
//   bounds          matched items whose truth [b, e] lies inside [begin_lo, end_hi] / matched
//                   items (§5.2: ≥ 99 % when jitter ≤ Δ/4).

namespace {

class sim_random {
 public:
  explicit sim_random(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Our own integer → real mapping: std:: distributions differ between standard libraries.
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  std::int64_t range(std::int64_t lo, std::int64_t hi) { return lo + static_cast<std::int64_t>(unit() * static_cast<double>(hi - lo)); }
  bool chance(double p) { return unit() < p; }

 private:
  std::uint64_t state_;
};

struct planted_call {
  int fn = 0;
  std::int64_t begin = 0;
  std::int64_t end = 0;
  int nested_fn = -1;  // a call to another fnj for part of the time
  std::int64_t nested_begin = 0;
  std::int64_t nested_end = 0;
  std::uint32_t gap = 0;  // gap k of the root
};

struct simulated {
  scenario s;
  std::vector<planted_call> calls;
  std::vector<std::pair<std::int64_t, std::int64_t>> db_spans;
  std::vector<std::uint64_t> db_ids;
  // Truth per sample (parallel to s.samples): span id, root gap k (if in the root), edge distance.
  std::vector<std::tuple<std::uint64_t, std::uint32_t, std::int64_t>> sample_truth;
};

simulated simulate(std::uint64_t seed, gf::sample_mode mode) {
  sim_random rnd(seed);
  simulated sim;
  scenario& s = sim.s;
  s.mode = mode;
  const std::int64_t delta = ms(10);  // 100 Hz
  s.interval_ns = delta;
  const std::uint32_t clone = s.frame("clone3", "", 0, "/lib/x86_64-linux-gnu/libc.so.6");
  const std::uint32_t thread_start = s.frame("start_thread", "", 0, "/lib/x86_64-linux-gnu/libc.so.6");
  const std::uint32_t loop = s.frame("app::worker_loop()", "/work/app/src/server.cpp", 77);
  const std::uint32_t handler = s.frame("spanprof::detail::sigprof_handler(int, siginfo_t*, void*)", "/work/include/spanprof/detail/sampler.hpp", 120);
  const std::uint32_t restore = s.frame("__restore_rt", "", 0, "/lib/x86_64-linux-gnu/libc.so.6");
  const std::uint32_t db_query = s.frame("db::query(char const*)", "/work/app/src/db.cpp", 20);
  const std::uint32_t db_wait = s.frame("db::send_and_wait()", "/work/app/src/db.cpp", 44);
  const std::uint32_t recv = s.frame("recv", "", 0, "/lib/x86_64-linux-gnu/libc.so.6");
  auto f_at = [&](std::uint32_t line) { return s.frame("handle_request(int)", "/work/app/src/handler.cpp", line); };
  auto fn_name = [](int i) { return "fn" + std::to_string(i); };
  auto fn_at = [&](int i, std::uint32_t line) { return s.frame(fn_name(i) + "()", "/work/app/src/work.cpp", line); };
  auto helper = [&](int i, int r) { return s.frame(fn_name(i) + "_step" + std::to_string(r) + "()", "/work/app/src/work.cpp", static_cast<std::uint32_t>(500 + 10 * i + r)); };
  auto fn_base = [](int i) { return static_cast<std::uint32_t>(200 + 20 * i); };

  // Timeline.
  const int db_count = static_cast<int>(rnd.range(1, 6));
  std::int64_t cursor = 0;
  std::vector<std::pair<std::int64_t, std::int64_t>> self_periods;
  for (int slot = 0; slot <= db_count; ++slot) {
    cursor += rnd.range(ms(2), ms(10));
    if (rnd.chance(0.7)) {
      planted_call c;
      c.fn = static_cast<int>(rnd.range(0, 8));
      c.begin = cursor;
      c.end = cursor + rnd.range(0, ms(60));
      c.gap = static_cast<std::uint32_t>(slot);
      if (rnd.chance(0.2)) {
        c.nested_fn = static_cast<int>((c.fn + rnd.range(1, 8)) % 8);
        const std::int64_t d = c.end - c.begin;
        c.nested_begin = c.begin + static_cast<std::int64_t>(rnd.unit() * 0.4 * static_cast<double>(d));
        c.nested_end = c.nested_begin + static_cast<std::int64_t>((0.2 + 0.3 * rnd.unit()) * static_cast<double>(d));
      }
      sim.calls.push_back(c);
      cursor = c.end;
    }
    cursor += rnd.range(ms(2), ms(10));
    if (slot < db_count) {
      const std::int64_t b = cursor;
      cursor += rnd.range(ms(5), ms(40));
      sim.db_spans.emplace_back(b, cursor);
    }
  }
  const std::int64_t end = cursor;
  s.span(s.root_id, 0, 0, 0, "http.server", "GET /work", "void handle_request(int)", "../src/handler.cpp", 30).end_ns = end;
  for (std::size_t k = 0; k < sim.db_spans.size(); ++k) {
    const std::uint64_t id = 0xD00 + k;
    gf::span_input& db = s.span(id, s.root_id, 0, 0, "db.sql.query", "SELECT …", "void handle_request(int)", "../src/handler.cpp", static_cast<std::uint32_t>(60 + k));
    db.begin_ns = sim.db_spans[k].first;
    db.end_ns = sim.db_spans[k].second;
    sim.db_ids.push_back(id);
  }
  const bool anchors = rnd.chance(0.5);
  const std::int64_t skew = rnd.range(-us(40), us(40));
  std::vector<gf::drop_entry> drops;

  // Samples.
  const std::int64_t t0 = rnd.range(0, delta);
  for (std::int64_t i = 0;; ++i) {
    const std::int64_t t = t0 + i * delta + rnd.range(-delta / 4, delta / 4);
    if (t > end) break;
    if (t < 0) continue;
    std::uint64_t span_id = s.root_id;
    std::uint32_t gap = 0;
    std::vector<std::uint32_t> stack;
    std::uint16_t anchor = 0;
    std::int64_t edge_distance = std::min(t, end - t);
    for (std::size_t k = 0; k < sim.db_spans.size(); ++k) {
      const auto [b, e] = sim.db_spans[k];
      edge_distance = std::min({edge_distance, std::abs(t - b), std::abs(t - e)});
      if (t >= e) gap = static_cast<std::uint32_t>(k + 1);
      if (t >= b && t <= e) {
        span_id = sim.db_ids[k];
        stack = {recv, db_wait, db_query, f_at(static_cast<std::uint32_t>(60 + k))};
        anchor = 3;
      }
    }
    if (span_id == s.root_id) {
      const planted_call* call = nullptr;
      for (const planted_call& c : sim.calls) {
        if (t >= c.begin && t < c.end) call = &c;
      }
      if (call == nullptr) {
        stack = {f_at(static_cast<std::uint32_t>(31 + rnd.range(0, 4)))};  // F's own code
        anchor = 0;
      } else {
        const std::uint32_t call_line = static_cast<std::uint32_t>(40 + call->gap);
        const bool nested = call->nested_fn >= 0 && t >= call->nested_begin && t < call->nested_end;
        const int leaf_fn = nested ? call->nested_fn : call->fn;
        if (rnd.chance(0.5)) {
          stack = {fn_at(leaf_fn, fn_base(leaf_fn) + static_cast<std::uint32_t>(rnd.range(0, 4)))};
        } else {
          const int r = static_cast<int>(rnd.range(0, 3));
          stack = {helper(leaf_fn, r), fn_at(leaf_fn, fn_base(leaf_fn) + 5 + static_cast<std::uint32_t>(r))};
        }
        if (nested) stack.push_back(fn_at(call->fn, fn_base(call->fn) + 9));
        stack.push_back(f_at(call_line));
        anchor = static_cast<std::uint16_t>(stack.size() - 1);
      }
    }
    stack.insert(stack.end(), {loop, thread_start, clone});
    if (rnd.chance(0.02)) {  // ring full: dropped, logged
      drops.push_back({t + skew, s.ctx});
      continue;
    }
    std::uint8_t flags = 0;
    if (rnd.chance(0.03)) {  // the unwinder stopped after one or two frames
      stack.resize(static_cast<std::size_t>(rnd.range(1, 3)));
      flags = gf::sample_flag_truncated;
      anchor = gf::anchor_unknown;
    } else if (rnd.chance(0.02)) {
      stack.insert(stack.begin(), {handler, restore});
      anchor = static_cast<std::uint16_t>(anchor + 2);
    }
    gf::sample_input& smp = s.sample(t + skew, span_id, stack, anchors ? anchor : gf::anchor_unknown);
    smp.flags = flags;
    if (mode == gf::sample_mode::cpu && rnd.chance(0.05)) {
      smp.weight = 2;  // this signal stands for two expirations: the next one never comes
      ++i;
    }
    sim.sample_truth.emplace_back(span_id, gap, edge_distance);
  }
  s.drop_reports.push_back({s.tid, drops, 0});
  return sim;
}

struct accuracy {
  std::size_t detectable = 0;
  std::size_t detectable_matched = 0;
  std::size_t top_level = 0;
  std::size_t top_level_matched = 0;
  std::size_t attributable = 0;
  std::size_t attributed = 0;
  std::size_t duration_ok = 0;
  std::size_t matched = 0;
  std::size_t bounds_ok = 0;
  std::size_t transactions = 0;
  [[nodiscard]] double recall() const { return detectable == 0 ? 1.0 : static_cast<double>(detectable_matched) / static_cast<double>(detectable); }
  [[nodiscard]] double precision() const { return top_level == 0 ? 1.0 : static_cast<double>(top_level_matched) / static_cast<double>(top_level); }
  [[nodiscard]] double attribution() const { return attributable == 0 ? 1.0 : static_cast<double>(attributed) / static_cast<double>(attributable); }
  [[nodiscard]] double bounds() const { return matched == 0 ? 1.0 : static_cast<double>(bounds_ok) / static_cast<double>(matched); }
  [[nodiscard]] double duration() const { return detectable_matched == 0 ? 1.0 : static_cast<double>(duration_ok) / static_cast<double>(detectable_matched); }
};

void score(simulated& sim, const gf::filled_transaction& r, accuracy& acc) {
  const scenario& s = sim.s;
  const std::int64_t delta = s.interval_ns;
  const std::uint32_t root = span_index(s, s.root_id);
  ++acc.transactions;
  std::vector<bool> used(r.derived_spans.size(), false);
  for (const planted_call& c : sim.calls) {
    const bool detectable = c.end - c.begin >= 3 * delta;
    acc.detectable += detectable ? 1 : 0;
    const std::string name = "fn" + std::to_string(c.fn);
    for (std::size_t i = 0; i < r.derived_spans.size(); ++i) {
      const gf::derived_span& d = r.derived_spans[i];
      if (used[i] || d.kind != gf::derived_kind::inferred || d.parent_id != s.root_id) continue;
      if (r.gaps[d.gap_index].span_index != root || r.gaps[d.gap_index].k != c.gap || d.code_function != name) continue;
      const std::int64_t overlap = std::min(d.end_ns, c.end) - std::max(d.begin_ns, c.begin);
      if (2 * overlap < c.end - c.begin) continue;
      used[i] = true;
      ++acc.matched;
      if (d.begin_lo_ns <= c.begin && c.end <= d.end_hi_ns) ++acc.bounds_ok;
      if (detectable) {
        ++acc.detectable_matched;
        const std::int64_t truth = c.end - c.begin;
        const std::int64_t error = std::abs((d.end_ns - d.begin_ns) - truth);
        if (error <= std::max<std::int64_t>(2 * delta, truth / 10)) ++acc.duration_ok;
      }
      break;
    }
  }
  for (std::size_t i = 0; i < r.derived_spans.size(); ++i) {
    const gf::derived_span& d = r.derived_spans[i];
    if (d.kind != gf::derived_kind::inferred || d.parent_id != s.root_id) continue;
    ++acc.top_level;
    acc.top_level_matched += used[i] ? 1 : 0;
  }
  const gf::config cfg;
  for (std::size_t i = 0; i < s.samples.size(); ++i) {
    const auto& [span_id, gap, distance] = sim.sample_truth[i];
    if (distance <= cfg.skew_tolerance_ns) continue;
    ++acc.attributable;
    const gf::sample_placement& p = r.placements[i];
    if (p.fate != gf::sample_fate::placed || p.span_index != span_index(s, span_id)) continue;
    if (span_id != s.root_id || r.gaps[p.gap_index].k == gap) ++acc.attributed;
  }
}

}  // namespace

TEST_CASE("gapfill §5.4 randomized accuracy: precision and recall of gap attribution ≥ 0.95") {
  for (const gf::sample_mode mode : {gf::sample_mode::wall, gf::sample_mode::cpu}) {
    accuracy acc;
    gf::gap_filler filler;  // reused across transactions, as the collector does
    gf::filled_transaction r;
    const gf::config cfg;
    for (std::uint64_t seed = 1; seed <= 200; ++seed) {
      CAPTURE(seed);
      simulated sim = simulate(seed * 7919 + (mode == gf::sample_mode::cpu ? 1'000'000 : 0), mode);
      filler.run(sim.s.input(), cfg, r);
      check_invariants(r, sim.s.input());
      score(sim, r, acc);
      if (seed % 4 == 0) {
        // Output invariant under permutation (a reversed drain).
        scenario reversed = sim.s;
        std::reverse(reversed.samples.begin(), reversed.samples.end());
        std::reverse(reversed.stacks.begin(), reversed.stacks.end());
        const gf::filled_transaction again = reversed.run(cfg);
        CHECK(shape_of(again) == shape_of(r));
      }
    }
    MESSAGE(std::string(mode == gf::sample_mode::wall ? "wall" : "cpu") << " mode, " << acc.transactions << " transactions: recall "
            << acc.recall() << " (" << acc.detectable_matched << "/" << acc.detectable << " detectable calls), precision "
            << acc.precision() << " (" << acc.top_level_matched << "/" << acc.top_level << " top-level inferred spans), "
            << "sample attribution " << acc.attribution() << " (" << acc.attributed << "/" << acc.attributable
            << "), duration within max(2Δ, 10 %) " << acc.duration() << ", truth inside the bounds " << acc.bounds()
            << " (" << acc.bounds_ok << "/" << acc.matched << ")");
    CHECK(acc.transactions == 200);
    CHECK(acc.detectable > 100);  // the test means something only with enough detectable calls
    CHECK(acc.recall() >= 0.95);
    CHECK(acc.precision() >= 0.95);
    CHECK(acc.attribution() >= 0.99);
    CHECK(acc.duration() >= 0.95);
    CHECK(acc.bounds() >= 0.99);
  }
}
