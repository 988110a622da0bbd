// fiber_bench: what spanprof adds to a fiber switch, as a multiple of a bare Boost.Context switch.
//
// WHAT IS MEASURED, side by side in one process and one run. Each iteration is one round trip:
// the benchmark thread resumes a fiber, the fiber resumes it back (two switches).
//   bare_boost_round_trip        boost::context::fiber, nothing else
//   profiled_round_trip          spanprof::profiled_fiber (boost_context.hpp) with spanprof
//                                running, no transaction open: what every switch pays
//   profiled_round_trip_in_txn   the same while the fiber has a transaction open: each switch is
//                                also recorded in it (one timestamp and a fiber_switch_event,
//                                what the gap filler needs for "suspended" gaps)
//   scope_round_trip             a raw boost::context::fiber switched by hand with
//                                spanprof::fiber_switch_scope around each resume (the wiring for
//                                other fiber libraries), no transaction
//
// HOW TO RUN (an optimized build: -Dbuildtype=release)
//   meson test -C build/release --benchmark --verbose fiber_bench
//   build/release/bench/fiber_bench [--benchmark_repetitions=15] ...
// Unless given on the command line: --benchmark_repetitions=9, --benchmark_min_time=0.2 and
// --benchmark_enable_random_interleaving=true (the repetitions of all cases are shuffled
// together, so a shared machine's drift hits every case alike). ~10 s.
//
// HOW TO READ IT
// Absolute times depend on the machine; the "ratios (same run)" block divides the medians of
// cases measured interleaved in this run. The target of issue 8 is
// profiled_round_trip / bare_boost_round_trip <= 1.2. With a transaction open the floor is
// higher by construction: each switch reads the clock once (rdtsc, about as long as a bare
// switch on this VM), so in_txn / bare is expected near 2.
//
// The in-transaction case restarts its transaction every 1,900 round trips (3,800 switch events,
// under the 4,096 a transaction holds), inside the timed region: the restart (a few µs, mostly
// the collector hand-off) adds ~1-2 ns per round trip, a bias against spanprof that users pay
// too. The program exits non-zero if a switch event was dropped (a full event log would have
// made some iterations time a cheaper path).
#include <spanprof/boost_context.hpp>
#include <spanprof/spanprof.hpp>

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "bench_support.hpp"

namespace {

using spanprof_bench::median;
using spanprof_bench::minimum;

namespace bctx = boost::context;
using spanprof::profiled_fiber;

constexpr int round_trips_per_transaction = 1900;

// Switch events dropped in any transaction the in-transaction case opened (read inside the
// fiber, which owns the record).
std::atomic<std::uint64_t> g_events_dropped{0};

void bare_boost_round_trip(benchmark::State& state) {
  bool stop = false;
  bctx::fiber f{[&stop](bctx::fiber&& main) {
    while (!stop) main = std::move(main).resume();
    return std::move(main);
  }};
  for (auto _ : state) f = std::move(f).resume();
  stop = true;
  f = std::move(f).resume();  // lets it return: no forced unwind in the measurement's wake
}

void profiled_round_trip(benchmark::State& state) {
  bool stop = false;
  profiled_fiber f{[&stop](profiled_fiber&& main) {
    while (!stop) main = std::move(main).resume();
    return std::move(main);
  }};
  for (auto _ : state) f = std::move(f).resume();
  stop = true;
  f = std::move(f).resume();
}

void profiled_round_trip_in_txn(benchmark::State& state) {
  bool stop = false;
  profiled_fiber f{[&stop](profiled_fiber&& main) {
    while (!stop) {
      SPANPROF_TRANSACTION("fiber_bench");
      for (int i = 0; i < round_trips_per_transaction && !stop; ++i) main = std::move(main).resume();
      const spanprof::detail::execution_context* self = spanprof::detail::current_context();
      if (self != nullptr && self->depth > 0 && self->open[0].load() != nullptr) {
        g_events_dropped.fetch_add(self->open[0].load()->counters.switch_events_dropped, std::memory_order_relaxed);
      }
    }
    return std::move(main);
  }};
  for (auto _ : state) f = std::move(f).resume();
  stop = true;
  f = std::move(f).resume();
}

void scope_round_trip(benchmark::State& state) {
  bool stop = false;
  spanprof::fiber_context profile;
  bctx::fiber f{[&stop](bctx::fiber&& main) {
    while (!stop) main = std::move(main).resume();
    return std::move(main);
  }};
  for (auto _ : state) {
    spanprof::fiber_switch_scope running(profile);
    f = std::move(f).resume();
  }
  stop = true;
  spanprof::fiber_switch_scope running(profile);
  f = std::move(f).resume();
}

BENCHMARK(bare_boost_round_trip);
BENCHMARK(profiled_round_trip);
BENCHMARK(profiled_round_trip_in_txn);
BENCHMARK(scope_round_trip);

// Google Benchmark's console table, plus every repetition's per-iteration times, so that ratios
// of medians can be printed once all cases have run.
class ratio_reporter final : public spanprof_bench::repetition_reporter {
 public:
  using repetition_reporter::repetition_reporter;


  // Returns profiled / bare (CPU-time medians), or 0 if either case did not run.
  double print_ratios() const {
    static constexpr const char* cases[] = {"profiled_round_trip", "profiled_round_trip_in_txn", "scope_round_trip"};
    const auto bare = samples_.find("bare_boost_round_trip");
    std::size_t repetitions = bare != samples_.end() ? bare->second.cpu_ns.size() : 0;
    std::printf("\nratios to bare_boost_round_trip (same run; medians of %zu repetitions)\n", repetitions);
    std::printf("  %-30s %8s %8s %8s %12s\n", "", "cpu", "real", "min/min", "ns/switch+");
    double headline = 0;
    for (const char* name : cases) {
      const auto top = samples_.find(name);
      if (bare == samples_.end() || top == samples_.end()) {
        std::printf("  %-30s %8s\n", name, "n/a (filtered out, or only aggregates reported)");
        continue;
      }
      const double ratio = median(top->second.cpu_ns) / median(bare->second.cpu_ns);
      // What the hook adds to each of the two switches of a round trip.
      const double added_per_switch = (median(top->second.cpu_ns) - median(bare->second.cpu_ns)) / 2;
      std::printf("  %-30s %8.2f %8.2f %8.2f %12.2f\n", name, ratio,
                  median(top->second.real_ns) / median(bare->second.real_ns),
                  minimum(top->second.cpu_ns) / minimum(bare->second.cpu_ns), added_per_switch);
      if (std::strcmp(name, "profiled_round_trip") == 0) headline = ratio;
    }
    std::printf("  target: profiled_round_trip / bare_boost_round_trip <= 1.20\n");
    return headline;
  }

 private:
  void record(const Run& run) override { samples_[run.run_name.function_name].add(run); }

  std::map<std::string, spanprof_bench::run_times> samples_;
};

}  // namespace

int main(int argc, char** argv) {
  static char repetitions[] = "--benchmark_repetitions=9";
  static char min_time[] = "--benchmark_min_time=0.2";
  static char interleave[] = "--benchmark_enable_random_interleaving=true";
  std::vector<char*> args(argv, argv + argc);
  spanprof_bench::add_default_flags(args, {repetitions, min_time, interleave});
  int args_count = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&args_count, args.data());
  if (benchmark::ReportUnrecognizedArguments(args_count, args.data())) return 1;

  // Spanprof running as in a service: sampling on (wall mode signals only threads whose running
  // context has a transaction), nothing written.
  spanprof::config cfg;
  cfg.formats = spanprof::output_format::none;
  cfg.output_dir = std::filesystem::temp_directory_path().string();  // opened at start; exists
  cfg.max_pending_transactions = 1u << 20;
  if (const spanprof::init_result started = spanprof::init(cfg); !started) {
    std::fprintf(stderr, "fiber_bench: %s\n", started.error.c_str());
    return 1;
  }

  const bool color = isatty(STDOUT_FILENO) != 0 && std::getenv("NO_COLOR") == nullptr;
  ratio_reporter reporter(color ? benchmark::ConsoleReporter::OO_Color : benchmark::ConsoleReporter::OO_None);
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  std::fflush(stdout);

  spanprof::shutdown();
  reporter.print_ratios();
  const spanprof::counters stats = spanprof::stats();
  std::printf("spanprof: %llu transactions recorded, %llu dropped; %llu switch events dropped\n",
              static_cast<unsigned long long>(stats.transactions_finished),
              static_cast<unsigned long long>(stats.transactions_dropped),
              static_cast<unsigned long long>(g_events_dropped.load()));
  if (stats.transactions_dropped != 0 || g_events_dropped.load() != 0) {
    std::fprintf(stderr, "fiber_bench: spanprof dropped records; some iterations timed a cheaper path\n");
    return 1;
  }
  return 0;
}
