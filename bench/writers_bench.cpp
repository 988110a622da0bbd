// writers_bench: what it costs the collector to turn one finished transaction into files —
// symbolizing, gap filling, and each output format — side by side in one run, so the ratios
// between them mean something on a noisy, shared machine (issue 7, "Targets").
//
// WHAT IS MEASURED
// The target workload: a 10 s transaction sampled at 101 Hz (1,010 samples), ~100 spans,
// 50-deep stacks of REAL return addresses of this program (a chain of noinline functions walked
// through its frame pointers, 16 different shapes), built by tests/synthetic_transaction.hpp.
//   symbolize/cold   a fresh transaction_analyzer per iteration: module map refreshes, opening
//                    this program's DWARF, then every sample's stack (what the first
//                    transaction of a process pays)
//   symbolize/warm   the same analyzer every iteration: the symbolizer's address cache is hot
//                    (the steady state of a service)
//   gapfill          transaction_analyzer::fill_gaps alone: the engine on the symbolized frames
//   write/<format>   each writer of tests/writers_table.hpp on the analyzed transaction;
//                    the `bytes` counter is the size of its output
// Adding a writer to writers_table.hpp adds its case here.
//
// HOW TO RUN (an optimized build keeps -g: DWARF is needed)
//   meson setup build/bench-rel -Dbuildtype=release -Dbuild_tests=false && ninja -C build/bench-rel
//   build/bench-rel/bench/writers_bench
//   meson test -C build/bench-rel --benchmark --verbose writers_bench
// Before timing, the program checks that the stacks symbolize to this program's functions and
// that every writer produces output; it exits non-zero otherwise.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "../tests/support/synthetic_transaction.hpp"
#include "../tests/support/writers_table.hpp"

namespace sd = spanprof::detail;

namespace {

constexpr int stack_depth_frames = 50;
constexpr int stack_shapes = 16;

// The top of this program's stack as seen from main(): the frame-pointer walk stops here.
std::uintptr_t stack_top = 0;

// Return addresses from the caller of capture() up, through saved frame pointers (this file is
// built with -fno-omit-frame-pointer): the same walk spanprof's unwinder does in the handler.
[[gnu::noinline]] void capture(std::vector<std::uintptr_t>& pcs) {
  auto* fp = static_cast<std::uintptr_t*>(__builtin_frame_address(0));
  while (fp != nullptr && pcs.size() < stack_depth_frames && reinterpret_cast<std::uintptr_t>(fp) < stack_top) {
    const std::uintptr_t return_address = fp[1];
    auto* next = reinterpret_cast<std::uintptr_t*>(fp[0]);
    if (return_address == 0) break;
    pcs.push_back(return_address);
    if (next <= fp) break;  // a frame pointer must point up the stack
    fp = next;
  }
}

// Three mutually recursive levels, so the stacks hold several distinct functions and lines;
// `shape` picks where the chain changes course. Each returns something so the calls are not
// turned into jumps.
[[gnu::noinline]] int level_b(int depth, int shape, std::vector<std::uintptr_t>& pcs);
[[gnu::noinline]] int level_c(int depth, int shape, std::vector<std::uintptr_t>& pcs);

[[gnu::noinline]] int level_a(int depth, int shape, std::vector<std::uintptr_t>& pcs) {
  if (depth == 0) {
    capture(pcs);
    return 1;
  }
  return 1 + ((depth + shape) % 3 == 0 ? level_c(depth - 1, shape, pcs) : level_b(depth - 1, shape, pcs));
}
[[gnu::noinline]] int level_b(int depth, int shape, std::vector<std::uintptr_t>& pcs) {
  if (depth == 0) {
    capture(pcs);
    return 2;
  }
  return 2 + ((depth * shape) % 4 == 1 ? level_a(depth - 1, shape, pcs) : level_c(depth - 1, shape, pcs));
}
[[gnu::noinline]] int level_c(int depth, int shape, std::vector<std::uintptr_t>& pcs) {
  if (depth == 0) {
    capture(pcs);
    return 3;
  }
  return 3 + level_a(depth - 1, shape, pcs);
}

std::vector<std::vector<std::uintptr_t>> real_stacks() {
  std::vector<std::vector<std::uintptr_t>> stacks;
  for (int shape = 0; shape < stack_shapes; ++shape) {
    std::vector<std::uintptr_t> pcs;
    benchmark::DoNotOptimize(level_a(stack_depth_frames + 5, shape, pcs));
    stacks.push_back(std::move(pcs));
  }
  return stacks;
}

spanprof_test::synthetic_knobs target_workload() {
  spanprof_test::synthetic_knobs k;
  k.duration_ns = 10'000'000'000;
  k.sample_rate_hz = 101;
  k.sample_count = 1010;
  k.span_count = 100;
  k.nesting_depth = 4;
  k.max_stack_depth = 128;
  k.real_stacks = real_stacks();
  return k;
}

// Built once; every case reads it.
spanprof_test::synthetic_transaction* workload = nullptr;

// The collector refreshes the module map at every drain, so a sample's time lies between two
// refreshes that both saw this program loaded: the symbolizer then trusts its address cache.
// The workload's times are synthetic, hence refreshes stamped a second before and after it.
void observe_around_workload(sd::transaction_analyzer& analyzer) {
  const sd::finished_transaction& t = workload->txn();
  analyzer.observe_modules(t.begin_ns(0) - 1'000'000'000);
  analyzer.observe_modules(t.end_ns(0) + 1'000'000'000);
}

void symbolize_cold(benchmark::State& state) {
  sd::transaction_analysis analysis;
  for (auto _ : state) {
    sd::transaction_analyzer analyzer(sd::symbolizer_options{});
    observe_around_workload(analyzer);
    analyzer.symbolize(workload->txn(), analysis);
    benchmark::DoNotOptimize(analysis.frames.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(workload->txn().sampled.samples.size()));
}

void symbolize_warm(benchmark::State& state) {
  sd::transaction_analyzer analyzer(sd::symbolizer_options{});
  observe_around_workload(analyzer);
  sd::transaction_analysis analysis;
  analyzer.symbolize(workload->txn(), analysis);
  for (auto _ : state) {
    analyzer.symbolize(workload->txn(), analysis);
    benchmark::DoNotOptimize(analysis.frames.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(workload->txn().sampled.samples.size()));
}

void gapfill(benchmark::State& state) {
  sd::transaction_analyzer analyzer(sd::symbolizer_options{});
  sd::transaction_analysis& analysis = workload->analysis();
  for (auto _ : state) {
    analyzer.fill_gaps(workload->txn(), analysis);
    benchmark::DoNotOptimize(analysis.gaps.derived_spans.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(workload->txn().sampled.samples.size()));
}

void write_format(benchmark::State& state, const spanprof_test::writer_entry* writer) {
  std::size_t bytes = 0;
  for (auto _ : state) {
    sd::json_text_stats stats;
    const std::string out = writer->write(workload->txn(), stats);
    bytes = out.size();
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
}

}  // namespace

int main(int argc, char** argv) {
  int top_marker = 0;
  stack_top = reinterpret_cast<std::uintptr_t>(&top_marker);
  spanprof_test::synthetic_transaction txn(/*seed=*/101, target_workload());
  workload = &txn;

  // Analyze once (the writers need it), and check the workload is what this claims to measure.
  sd::transaction_analyzer analyzer(sd::symbolizer_options{});
  observe_around_workload(analyzer);
  analyzer.analyze(txn.txn(), txn.analysis());
  txn.txn().analysis = &txn.analysis();
  const sd::transaction_analysis& a = txn.analysis();
  std::size_t named_levels = 0;
  for (const sd::profile_frame& f : a.frames) named_levels += f.function.find("level_") != std::string::npos ? 1 : 0;
  const std::size_t samples = txn.txn().sampled.samples.size();
  std::printf("workload: %zu samples, %zu spans, %zu frames per stack (first), %zu distinct frames (%zu named level_*), "
              "%zu derived spans\n",
              samples, txn.txn().span_count(), samples != 0 ? a.stack_of(0).size() : 0, a.frames.size(), named_levels,
              a.gaps.derived_spans.size());
  if (samples != 1010 || named_levels == 0 || a.stack_of(0).size() < stack_depth_frames) {
    std::fprintf(stderr, "writers_bench: the workload is not the target one (stacks not symbolized to this program?)\n");
    return 1;
  }

  benchmark::RegisterBenchmark("symbolize/cold", symbolize_cold)->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("symbolize/warm", symbolize_warm)->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("gapfill", gapfill)->Unit(benchmark::kMicrosecond);
  for (const auto& writer : spanprof_test::all_writers) {
    sd::json_text_stats stats;
    if (writer.write(txn.txn(), stats).empty()) {
      std::fprintf(stderr, "writers_bench: writer %.*s wrote nothing\n", static_cast<int>(writer.name.size()), writer.name.data());
      return 1;
    }
    benchmark::RegisterBenchmark(("write/" + std::string(writer.name)).c_str(), write_format, &writer)
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
