// gapfill_bench: gap-filling throughput (gapfill.hpp), in samples per second on one core.
//
// WHAT IS MEASURED
// One synthetic transaction, built once: 1,000 spans (the root, 333 spans it opens, each of
// which opens 2 leaf db spans) over 100 s, and 100,000 samples at 1 kHz with ±250 µs jitter and
// 50-frame stacks (8 frames above the span's function F; in a gap, one of 16 planted functions
// with a 40-deep call chain whose leaf varies from sample to sample; in a db span, the driver's
// chain), stored in one buffer of frame ids as a collector would fill it. Each of the 1,332 filled gaps (333 of the root, 3 in each of the 333 middle spans)
// holds one planted function. Each iteration is one
// gap_filler::run() into a reused filled_transaction, as the collector does: sort (or the check that none is
// needed), assignment, trimming, call trees, runs, derived spans, gap spans, labels.
//   drained/anchors     samples in drain order, anchor indexes known (frame pointers)
//   drained/no_anchors  in drain order, anchors unknown (libunwind): F found by its call site
//   shuffled/no_anchors in random order: the sort runs
// items_per_second is samples per second. Target (issue 6): ≥ 5 million on one core.
//
// HOW TO RUN (an optimized build)
//   meson setup build/bench-rel -Dbuildtype=release -Dbuild_tests=false && ninja -C build/bench-rel
//   build/bench-rel/bench/gapfill_bench
//   meson test -C build/bench-rel --benchmark --verbose gapfill_bench
// Before timing, the program checks the result once (a derived span per gap naming the planted
// function) and exits non-zero if it is wrong: a fast run of a broken path is not a measurement.
#include <spanprof/detail/gapfill/gapfill.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <span>
#include <string>
#include <vector>

namespace gf = spanprof::detail::gapfill;

namespace {

constexpr std::int64_t ms_ns = 1'000'000;
constexpr std::size_t mid_span_count = 333;  // + 666 db spans + the root = 1,000 spans
constexpr std::int64_t mid_period_ns = 300 * ms_ns;
constexpr std::int64_t interval_ns = ms_ns;  // 1 kHz
constexpr std::size_t sample_count = 100'000;
constexpr std::size_t stack_depth = 50;
constexpr int planted_functions = 16;
constexpr std::uint64_t root_id = 0xA0;

class profile {
 public:
  profile(bool anchors, bool shuffled) {
    build_frames();
    build_spans();
    build_samples(anchors, shuffled);
    input_.txn_id = 0x7001;
    input_.root_span_id = root_id;
    input_.mode = gf::sample_mode::wall;
    input_.sampling_interval_ns = interval_ns;
    input_.spans = spans_;
    input_.samples = samples_;
    input_.frames = frames_;
    cfg_.max_profile_ns = 0;        // a 100 s profile: no 30 s limit
    cfg_.max_samples_per_txn = 0;   // and no 3000-sample limit
    cfg_.max_inferred_spans = 5000;  // every gap's span kept (the check below counts them)
  }

  [[nodiscard]] const gf::transaction_input& input() const { return input_; }
  [[nodiscard]] const gf::config& cfg() const { return cfg_; }

  // Every filled gap has exactly one top-level derived span, naming the function planted there.
  [[nodiscard]] static bool result_is_right(const gf::filled_transaction& r) {
    constexpr std::size_t filled_gaps = mid_span_count + 3 * mid_span_count;
    std::size_t filled = 0;
    for (const gf::gap_summary& g : r.gaps) filled += g.filled ? 1 : 0;
    std::size_t top_level = 0;
    for (const gf::derived_span& d : r.derived_spans) {
      if (d.kind != gf::derived_kind::inferred || d.parent_index != gf::no_index) continue;
      ++top_level;
      const std::uint32_t k = r.gaps[d.gap_index].k;
      const std::size_t key = d.span_id == root_id ? k : 1000 + 3 * (d.span_id - 0x10000) + k;
      if (d.code_function != "planted_" + std::to_string(key % planted_functions)) return false;
    }
    return filled == filled_gaps && top_level == filled_gaps && r.counts.samples_placed == sample_count &&
           r.counts.unresolved_samples == 0;
  }

 private:
  std::uint32_t frame(const std::string& function, const std::string& file, std::uint32_t line,
                      const std::string& module = "/srv/bin/service") {
    texts_.push_back(function);
    const std::string_view f = texts_.back();
    texts_.push_back(file);
    const std::string_view fi = texts_.back();
    texts_.push_back(module);
    gf::frame out;
    out.function = f;
    out.file = fi;
    out.module = texts_.back();
    out.line = line;
    frames_.push_back(out);
    return static_cast<std::uint32_t>(frames_.size() - 1);
  }

  void build_frames() {
    for (std::uint32_t k = 0; k < 8; ++k) outer_.push_back(frame("outer_" + std::to_string(k) + "()", "/work/svc/src/server.cpp", 10 + k));
    // handle_request calls process_item, which opens the mid span.
    root_calls_mid_ = frame("handle_request(request&)", "/work/svc/src/handler.cpp", 45);
    for (int p = 0; p < planted_functions; ++p) {
      const std::string name = "planted_" + std::to_string(p);
      std::vector<std::uint32_t> chain;
      chain.push_back(frame(name + "(state&)", "/work/svc/src/work.cpp", 100 + 10 * static_cast<std::uint32_t>(p)));
      for (int level = 1; level < 41; ++level) {
        chain.push_back(frame(name + "_level" + std::to_string(level) + "()", "/work/svc/src/work_detail.cpp",
                              static_cast<std::uint32_t>(1000 * p + level)));
      }
      chains_.push_back(chain);
      std::vector<std::uint32_t> leaves;
      for (int leaf = 0; leaf < 4; ++leaf) {
        leaves.push_back(frame(name + "_leaf" + std::to_string(leaf) + "()", "/work/svc/src/work_detail.cpp",
                               static_cast<std::uint32_t>(900 + leaf)));
      }
      leaves_.push_back(leaves);
    }
    for (int level = 0; level < 39; ++level) {
      db_chain_.push_back(frame("db::driver_level" + std::to_string(level) + "()", "/work/svc/src/db.cpp", static_cast<std::uint32_t>(level + 1)));
    }
    db_chain_.push_back(frame("__libc_recv", "", 0, "/lib/x86_64-linux-gnu/libc.so.6"));
    root_calls_.resize(planted_functions);
    mid_calls_.resize(planted_functions);
    for (int p = 0; p < planted_functions; ++p) {
      root_calls_[p] = frame("handle_request(request&)", "/work/svc/src/handler.cpp", 50 + static_cast<std::uint32_t>(p));
      mid_calls_[p] = frame("process_item(item const&)", "/work/svc/src/items.cpp", 80 + static_cast<std::uint32_t>(p));
    }
  }

  gf::span_input& add_span(std::uint64_t id, std::uint64_t parent, std::int64_t begin, std::int64_t end, const char* op,
                           const char* callsite) {
    gf::span_input s;
    s.id = id;
    s.parent_id = parent;
    s.ctx_id = 7;
    s.begin_ns = begin;
    s.end_ns = end;
    s.op = op;
    s.description = op;
    s.callsite_function = callsite;
    s.callsite_file = callsite == std::string_view("void handle_request(request&)") ? "../src/handler.cpp" : "../src/items.cpp";
    s.anchor_fp = 0x7ffc0000 + id;
    spans_.push_back(s);
    return spans_.back();
  }

  void build_spans() {
    add_span(root_id, 0, 0, static_cast<std::int64_t>(sample_count) * interval_ns, "http.server",
             "void handle_request(request&)");
    for (std::size_t i = 0; i < mid_span_count; ++i) {
      const std::int64_t base = static_cast<std::int64_t>(i) * mid_period_ns;
      const std::uint64_t mid = 0x10000 + i;
      add_span(mid, root_id, base, base + 250 * ms_ns, "function", "void process_item(item const&)");  // SPANPROF_FUNCTION()
      add_span(0x20000 + 2 * i, mid, base + 50 * ms_ns, base + 100 * ms_ns, "db.sql.query", "void process_item(item const&)");
      add_span(0x20001 + 2 * i, mid, base + 150 * ms_ns, base + 200 * ms_ns, "db.sql.query", "void process_item(item const&)");
    }
  }

  // What the truth is at t: the innermost span and the stack (leaf first).
  void build_samples(bool anchors, bool shuffled) {
    std::uint64_t rng = 0x9e3779b97f4a7c15ull;
    auto next = [&] {
      rng ^= rng << 13;
      rng ^= rng >> 7;
      rng ^= rng << 17;
      return rng;
    };
    std::vector<std::vector<std::uint32_t>> stacks;
    stacks.reserve(sample_count);
    for (std::size_t k = 0; k < sample_count; ++k) {
      const std::int64_t jitter = static_cast<std::int64_t>(next() % 500'000) - 250'000;
      const std::int64_t t = std::max<std::int64_t>(0, static_cast<std::int64_t>(k) * interval_ns + interval_ns / 2 + jitter);
      // After the last middle span, the root's last gap runs to the end.
      const std::size_t mid = std::min<std::size_t>(static_cast<std::size_t>(t / mid_period_ns), mid_span_count - 1);
      const std::int64_t offset = t - static_cast<std::int64_t>(mid) * mid_period_ns;
      std::vector<std::uint32_t> stack;  // built root first, reversed below
      stack.insert(stack.end(), outer_.rbegin(), outer_.rend());
      std::uint64_t span = root_id;
      std::uint16_t anchor_from_root = 8;  // handle_request
      std::size_t gap_key = 0;
      const bool in_mid = offset < 250 * ms_ns;
      if (!in_mid) {
        gap_key = mid;  // the root's gap after mid span `mid`
      } else {
        span = 0x10000 + mid;
        anchor_from_root = 9;  // process_item
        stack.push_back(root_calls_mid_);
        if (offset >= 50 * ms_ns && offset < 100 * ms_ns) span = 0x20000 + 2 * mid;
        if (offset >= 150 * ms_ns && offset < 200 * ms_ns) span = 0x20001 + 2 * mid;
        gap_key = 1000 + 3 * mid + static_cast<std::size_t>(offset / (100 * ms_ns));
      }
      const int planted = static_cast<int>(gap_key % planted_functions);
      if (span >= 0x20000) {  // in a db span
        stack.push_back(mid_calls_[0]);
        stack.insert(stack.end(), db_chain_.begin(), db_chain_.begin() + static_cast<std::ptrdiff_t>(stack_depth - stack.size()));
      } else {
        stack.push_back(in_mid ? mid_calls_[planted] : root_calls_[planted]);
        const std::vector<std::uint32_t>& chain = chains_[planted];
        stack.insert(stack.end(), chain.begin(), chain.begin() + static_cast<std::ptrdiff_t>(stack_depth - 1 - stack.size()));
        // The leaf changes at every sample: no leaf runs long enough to be a span of its own.
        stack.push_back(leaves_[planted][k % 4]);
      }
      std::reverse(stack.begin(), stack.end());
      stacks.push_back(std::move(stack));
      gf::sample_input s;
      s.t_ns = t;
      s.seq = k;
      s.ctx_id = 7;
      s.txn_id = 0x7001;
      s.span_id = span;
      s.tid = 7;
      s.anchor_idx = anchors ? static_cast<std::uint16_t>(stack_depth - 1 - anchor_from_root) : gf::anchor_unknown;
      samples_.push_back(s);
    }
    if (shuffled) {
      for (std::size_t i = samples_.size(); i > 1; --i) {
        const std::size_t j = next() % i;
        std::swap(samples_[i - 1], samples_[j]);
        std::swap(stacks[i - 1], stacks[j]);
      }
    }
    // One buffer of frame ids for the transaction, in sample order, as a collector symbolizing
    // its samples would fill it.
    stack_pool_.reserve(sample_count * stack_depth);
    for (const auto& stack : stacks) stack_pool_.insert(stack_pool_.end(), stack.begin(), stack.end());
    std::size_t offset = 0;
    for (std::size_t i = 0; i < samples_.size(); ++i) {
      samples_[i].stack = std::span<const std::uint32_t>(stack_pool_).subspan(offset, stacks[i].size());
      offset += stacks[i].size();
    }
  }

  std::deque<std::string> texts_;
  std::vector<gf::frame> frames_;
  std::vector<std::uint32_t> outer_;
  std::uint32_t root_calls_mid_ = 0;
  std::vector<std::vector<std::uint32_t>> chains_;
  std::vector<std::vector<std::uint32_t>> leaves_;
  std::vector<std::uint32_t> db_chain_;
  std::vector<std::uint32_t> root_calls_;
  std::vector<std::uint32_t> mid_calls_;
  std::vector<gf::span_input> spans_;
  std::vector<std::uint32_t> stack_pool_;
  std::vector<gf::sample_input> samples_;
  gf::transaction_input input_;
  gf::config cfg_;
};

void run_case(benchmark::State& state, bool anchors, bool shuffled) {
  const profile p(anchors, shuffled);
  gf::gap_filler filler;
  gf::filled_transaction result;
  filler.run(p.input(), p.cfg(), result);
  if (!profile::result_is_right(result)) {
    state.SkipWithError("wrong gap-filling result: not timing it");
    std::size_t top_level = 0;
    for (const gf::derived_span& d : result.derived_spans) top_level += d.parent_index == gf::no_index && d.kind == gf::derived_kind::inferred;
    std::fprintf(stderr, "gapfill_bench: wrong result (anchors=%d shuffled=%d): %zu derived spans, %zu top-level, %zu placed, %zu unresolved\n",
                 anchors, shuffled, result.derived_spans.size(), top_level, static_cast<std::size_t>(result.counts.samples_placed),
                 static_cast<std::size_t>(result.counts.unresolved_samples));
    std::exit(1);
  }
  for (auto _ : state) {
    filler.run(p.input(), p.cfg(), result);
    benchmark::DoNotOptimize(result.derived_spans.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(sample_count));
  state.counters["derived_spans"] = static_cast<double>(result.derived_spans.size());
}

void drained_anchors(benchmark::State& state) { run_case(state, true, false); }
void drained_no_anchors(benchmark::State& state) { run_case(state, false, false); }
void shuffled_no_anchors(benchmark::State& state) { run_case(state, false, true); }

}  // namespace

BENCHMARK(drained_anchors)->Name("gapfill/drained/anchors")->Unit(benchmark::kMillisecond);
BENCHMARK(drained_no_anchors)->Name("gapfill/drained/no_anchors")->Unit(benchmark::kMillisecond);
BENCHMARK(shuffled_no_anchors)->Name("gapfill/shuffled/no_anchors")->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
