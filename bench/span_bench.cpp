// span_bench: what a span costs, as a multiple of the clock reads it cannot avoid.
//
// WHAT IS MEASURED, side by side in one process and one run:
//   floor_two_clock_gettime  two clock_gettime(CLOCK_MONOTONIC) reads (the vDSO)
//   floor_two_rdtsc          two __rdtsc() reads
//   floor_two_now_ticks      two spanprof::detail::now_ticks() after spanprof::init: what spans
//                            really read (rdtsc when the kernel's clocksource is tsc, else
//                            clock_gettime; the program prints which)
//   span_pair_static         SPANPROF_SPAN("db.sql.query", "SELECT 1") begin + end inside an
//                            open transaction
//   span_pair_dynamic        the same with a 64-byte std::string description (copied into the
//                            transaction's string arena)
//   transaction_pair         SPANPROF_TRANSACTION begin + finish; the collector drains in the
//                            background (formats none, so it writes nothing)
//
// HOW TO RUN (an optimized build: -Dbuildtype=release; a debug build measures the compiler)
//   meson test -C build/gcc --benchmark --verbose      (registered as benchmark 'span_bench')
//   build/gcc/bench/span_bench [--benchmark_repetitions=15] [--benchmark_filter=span_pair] ...
// Unless given on the command line: --benchmark_repetitions=9, --benchmark_min_time=0.1 and
// --benchmark_enable_random_interleaving=true (the repetitions of all cases are shuffled
// together, so slow drift of a shared machine hits every case alike). 10-15 s in all.
//
// HOW TO READ IT
// The table is Google Benchmark's usual one. Its absolute times depend on the machine and its
// neighbours: never quote them alone. The "ratios (same run)" block after it divides the
// median per-iteration times of two cases measured interleaved in this same run, which cancels
// most of the noise; those are the numbers to report. Columns: ratio of the CPU-time medians,
// of the real-time medians, and of the fastest repetitions (min/min). When the columns disagree
// by more than a few percent the machine was busy: run again. The project's target is
// span_pair_static / floor_two_rdtsc <= 1.5 (Tracy's ZoneScopedN measures 1.01 on the machine
// of docs/platform.md): a span should cost little more than the two timestamps it must take.
// The program exits non-zero if spanprof dropped a span or a transaction during the run: some
// iterations would then have timed a cheap no-op, and the ratios would flatter spanprof.
//
// HOW THE SPAN CASES ARE TIMED
// A transaction holds at most 16383 spans, so each span case opens a fresh transaction every
// 8000 spans (KeepRunningBatch) and the restart stays inside the timed region, amortized. It
// costs ~3 us here (mostly the futex wake of the idle collector at finish), ~0.4 ns per span,
// i.e. it raises span ratios by ~0.02: a small bias against spanprof, and a cost users pay
// too. State::PauseTiming()/ResumeTiming() around the restart instead would hide that cost
// and add its own: a Pause+Resume pair reads the thread CPU clock twice, a real syscall in a
// VM, ~450 ns CPU / ~650 ns real here. Once per batch that is noise; once per iteration it
// would be 20-30 times the span being measured. Smaller batches are no better: at 250 spans
// per transaction the restart is ~8 ns per span (ratio 1.6 instead of 1.15).
// Each repetition starts with two untimed batches, because the case that ran just before it
// (repetitions are shuffled) left its own data in the caches.
//
// WHY TWO PHASES
// Transaction records are pooled and keep the span chunks they grew. transaction_pair leaves
// hundreds to thousands of small records in the pool; a span case after it cycles through all
// of them, growing each to 8000 spans (page faults; 1.4 GB resident in one such run), which
// times the pool's growth instead of the steady state (repetitions of up to 300 ns per span
// pair instead of ~22 ns, when all cases were interleaved in one phase). So the
// clock floors and the span cases run first, interleaved with each other, and transaction_pair
// runs after them, interleaved with a second floor_two_rdtsc; each ratio divides two cases of
// the same phase. With --benchmark_filter the selected cases run in one phase.
#include <spanprof/spanprof.hpp>

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#if defined(__x86_64__)
#include <x86intrin.h>

#include "bench_support.hpp"
#endif

namespace {

using spanprof_bench::median;
using spanprof_bench::minimum;

// Below max_spans_per_transaction (16383) with room to spare, and large enough that the
// transaction's own begin+finish adds only ~0.4 ns per span (see HOW THE SPAN CASES ARE TIMED).
constexpr int spans_per_transaction = 8000;

// Exactly 64 bytes: longer than any small-string buffer, the size of a short SQL statement.
constexpr std::string_view description_64 = "SELECT id, email, name FROM users WHERE org_id = $1 AND active=1";
static_assert(description_64.size() == 64);

void floor_two_clock_gettime(benchmark::State& state) {
  for (auto _ : state) {
    timespec first{};
    timespec second{};
    clock_gettime(CLOCK_MONOTONIC, &first);
    clock_gettime(CLOCK_MONOTONIC, &second);
    benchmark::DoNotOptimize(first);
    benchmark::DoNotOptimize(second);
  }
}

void floor_two_rdtsc(benchmark::State& state) {
#if defined(__x86_64__)
  for (auto _ : state) {
    std::uint64_t first = __rdtsc();
    std::uint64_t second = __rdtsc();
    benchmark::DoNotOptimize(first);
    benchmark::DoNotOptimize(second);
  }
#else
  state.SkipWithError("rdtsc is x86-64 only");
#endif
}

void floor_two_now_ticks(benchmark::State& state) {
  for (auto _ : state) {
    std::int64_t first = spanprof::detail::now_ticks();
    std::int64_t second = spanprof::detail::now_ticks();
    benchmark::DoNotOptimize(first);
    benchmark::DoNotOptimize(second);
  }
}

// One transaction of spans_per_transaction spans, written the way instrumented code writes
// them. Not inlined, so that the warm-up and the timed loop run the same machine code. Returns
// false when the transaction was not recording (every span in it was then a cheap no-op).
[[gnu::noinline]] bool static_span_batch() {
  SPANPROF_TRANSACTION_NAMED(txn, "span_bench", "bench");
  for (int i = 0; i < spans_per_transaction; ++i) {
    SPANPROF_SPAN("db.sql.query", "SELECT 1");
    // Stands for the work inside a real span: nothing the span loaded may stay in a register
    // across it, as it could not across a call to unknown code.
    benchmark::ClobberMemory();
  }
  return txn.is_recording();
}

[[gnu::noinline]] bool dynamic_span_batch(const std::string& description) {
  SPANPROF_TRANSACTION_NAMED(txn, "span_bench", "bench");
  for (int i = 0; i < spans_per_transaction; ++i) {
    SPANPROF_SPAN("db.sql.query", description);
    benchmark::ClobberMemory();
  }
  return txn.is_recording();
}

// Untimed, before each repetition: the case that ran just before (repetitions are shuffled)
// left its own data in the caches, and only the first repetition of a case is preceded by
// Google Benchmark's own iteration-count estimate.
constexpr int warm_up_batches = 2;

void span_pair_static(benchmark::State& state) {
  for (int i = 0; i < warm_up_batches; ++i) static_span_batch();
  while (state.KeepRunningBatch(spans_per_transaction)) {
    if (!static_span_batch()) {
      state.SkipWithError("the transaction is not recording");
      break;
    }
  }
}

void span_pair_dynamic(benchmark::State& state) {
  const std::string description(description_64);  // built once: the span's copy is what is timed
  for (int i = 0; i < warm_up_batches; ++i) dynamic_span_batch(description);
  while (state.KeepRunningBatch(spans_per_transaction)) {
    if (!dynamic_span_batch(description)) {
      state.SkipWithError("the transaction is not recording");
      break;
    }
  }
}

// A thread finishing transactions back to back outruns the collector in bursts, so the pool
// grows to hundreds or thousands of records before it stops allocating (each new record costs
// page faults, several times a transaction). The untimed warm-up lets the first repetition
// start closer to that steady state.
constexpr int transaction_warm_up = 20'000;

void transaction_pair(benchmark::State& state) {
  for (int i = 0; i < transaction_warm_up; ++i) {
    SPANPROF_TRANSACTION("span_bench.transaction");
    benchmark::ClobberMemory();
  }
  for (auto _ : state) {
    SPANPROF_TRANSACTION("span_bench.transaction");
    benchmark::ClobberMemory();
  }
}

BENCHMARK(floor_two_clock_gettime);
BENCHMARK(floor_two_rdtsc);
BENCHMARK(floor_two_now_ticks);
BENCHMARK(span_pair_static);
BENCHMARK(span_pair_dynamic);
BENCHMARK(transaction_pair);

// Google Benchmark's console table, plus a record of every repetition's per-iteration times
// so that ratios can be printed once all cases have run. Samples are kept per phase: a ratio
// divides two cases of the same phase, which ran interleaved with each other.
class ratio_reporter final : public spanprof_bench::repetition_reporter {
 public:
  using repetition_reporter::repetition_reporter;

  void start_phase() { phases_.emplace_back(); }

  void print_ratios() const {
    struct ratio {
      const char* numerator;
      const char* denominator;
    };
    static constexpr ratio ratios[] = {
        {"span_pair_static", "floor_two_rdtsc"},
        {"span_pair_static", "floor_two_clock_gettime"},
        {"span_pair_static", "floor_two_now_ticks"},
        {"span_pair_dynamic", "floor_two_rdtsc"},
        {"transaction_pair", "floor_two_rdtsc"},
        {"floor_two_clock_gettime", "floor_two_rdtsc"},
    };
    std::size_t repetitions = 0;
    for (const auto& phase : phases_) {
      for (const auto& entry : phase) repetitions = std::max(repetitions, entry.second.cpu_ns.size());
    }
    std::printf("\nratios (same run; medians of %zu repetitions)\n", repetitions);
    std::printf("  %-46s %8s %8s %8s\n", "", "cpu", "real", "min/min");
    for (const ratio& r : ratios) {
      const std::string name = std::string(r.numerator) + " / " + r.denominator;
      const spanprof_bench::run_times* top = nullptr;
      const spanprof_bench::run_times* bottom = nullptr;
      for (const auto& phase : phases_) {
        const auto t = phase.find(r.numerator);
        const auto b = phase.find(r.denominator);
        if (t != phase.end() && b != phase.end()) {
          top = &t->second;
          bottom = &b->second;
          break;
        }
      }
      if (top == nullptr) {
        // Filtered out, or only aggregates were reported (--benchmark_*_aggregates_only).
        std::printf("  %-46s %8s\n", name.c_str(), "n/a (no per-repetition results for both)");
        continue;
      }
      std::printf("  %-46s %8.2f %8.2f %8.2f\n", name.c_str(), median(top->cpu_ns) / median(bottom->cpu_ns),
                  median(top->real_ns) / median(bottom->real_ns), minimum(top->cpu_ns) / minimum(bottom->cpu_ns));
    }
    std::printf("  target: span_pair_static / floor_two_rdtsc <= 1.50 (Tracy ZoneScopedN: 1.01)\n");
  }

 private:
  void record(const Run& run) override {
    if (phases_.empty()) start_phase();
    phases_.back()[run.run_name.function_name].add(run);
  }

  std::vector<std::map<std::string, spanprof_bench::run_times>> phases_;
};

}  // namespace

int main(int argc, char** argv) {
  // Our defaults for flags the user did not give.
  static char repetitions[] = "--benchmark_repetitions=9";
  static char min_time[] = "--benchmark_min_time=0.1";
  static char interleave[] = "--benchmark_enable_random_interleaving=true";
  std::vector<char*> args(argv, argv + argc);
  const bool user_filter = spanprof_bench::has_flag(args, "--benchmark_filter");
  spanprof_bench::add_default_flags(args, {repetitions, min_time, interleave});
  int args_count = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&args_count, args.data());
  if (benchmark::ReportUnrecognizedArguments(args_count, args.data())) return 1;

  spanprof::config cfg;
  cfg.formats = spanprof::output_format::none;
  // Nothing is written with formats none, but the collector still opens its folder at start:
  // point it at one that exists rather than create ./spanprof-profiles wherever we run.
  cfg.output_dir = std::filesystem::temp_directory_path().string();
  cfg.max_spans_per_transaction = 16383;
  cfg.max_pending_transactions = 1u << 20;
  if (const spanprof::init_result started = spanprof::init(cfg); !started) {
    std::fprintf(stderr, "span_bench: %s\n", started.error.c_str());
    return 1;
  }
  std::printf("span_bench: spanprof ticks are %s\n",
              spanprof::detail::g_use_tsc.load(std::memory_order_relaxed) ? "rdtsc (clocksource tsc)"
                                                                           : "clock_gettime(CLOCK_MONOTONIC)");

  const bool color = isatty(STDOUT_FILENO) != 0 && std::getenv("NO_COLOR") == nullptr;
  ratio_reporter reporter(color ? benchmark::ConsoleReporter::OO_Color : benchmark::ConsoleReporter::OO_None);
  if (user_filter) {
    reporter.start_phase();
    benchmark::RunSpecifiedBenchmarks(&reporter);
  } else {
    // Two phases, each interleaved: see WHY TWO PHASES at the top of this file.
    std::printf("\nphase 1 of 2: clock floors and spans\n");
    reporter.start_phase();
    benchmark::RunSpecifiedBenchmarks(&reporter, "^(floor_.*|span_pair_.*)$");
    std::printf("\nphase 2 of 2: transactions\n");
    reporter.start_phase();
    benchmark::RunSpecifiedBenchmarks(&reporter, "^(floor_two_rdtsc|transaction_pair)$");
  }
  benchmark::Shutdown();
  std::fflush(stdout);

  spanprof::shutdown();  // drains the collector, so the counters below are final
  reporter.print_ratios();
  const spanprof::counters stats = spanprof::stats();
  std::printf("spanprof: %llu transactions, %llu spans recorded; dropped: %llu spans, %llu transactions\n",
              static_cast<unsigned long long>(stats.transactions_finished),
              static_cast<unsigned long long>(stats.spans_started),
              static_cast<unsigned long long>(stats.spans_dropped),
              static_cast<unsigned long long>(stats.transactions_dropped));
  if (stats.spans_dropped != 0 || stats.transactions_dropped != 0) {
    std::fprintf(stderr, "span_bench: spanprof dropped records; some iterations timed a no-op and the ratios are wrong\n");
    return 1;
  }
  return 0;
}
