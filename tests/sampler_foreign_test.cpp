// A program that already has a SIGPROF handler (another profiler): spanprof reports it and stays
// off, or, with chain_sigprof, samples and still calls it. Its own binary: once spanprof's
// handler is installed it stays installed for the life of the process.
#include <doctest/doctest.h>
#include <spanprof/spanprof.hpp>

#include <signal.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "support/sampler_support.hpp"
#include "support/test_support.hpp"

using namespace spanprof_test;

namespace {

std::atomic<long> g_foreign_calls{0};
void foreign_handler(int) { g_foreign_calls.fetch_add(1, std::memory_order_relaxed); }

std::vector<spanprof::error>* g_errors = nullptr;

}  // namespace

TEST_CASE("sampler_foreign: an existing SIGPROF handler is reported and kept; chain_sigprof samples and calls it") {
  struct sigaction original {};
  REQUIRE(sigaction(SIGPROF, nullptr, &original) == 0);
  struct sigaction mine {};
  mine.sa_handler = foreign_handler;
  sigemptyset(&mine.sa_mask);
  mine.sa_flags = SA_RESTART;
  REQUIRE(sigaction(SIGPROF, &mine, nullptr) == 0);

  std::vector<spanprof::error> errors;
  g_errors = &errors;

  // 1. Not configured to chain: init reports it, spans are written, no sample is taken.
  {
    temp_dir dir;
    spanprof::config cfg = sampling_config(dir, spanprof::sampling_mode::wall, 1000);
    cfg.log_errors_to_stderr = false;
    cfg.on_error = [](const spanprof::error& e) { g_errors->push_back(e); };
    {
      session s(cfg);
      std::thread worker([] {
        SPANPROF_TRANSACTION("unsampled");
        SPANPROF_SPAN("work", "still written");
        burn_cpu(100'000'000);
      });
      worker.join();
      CHECK(spanprof::stats().samples_taken == 0);
    }
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].message.find("SIGPROF handler") != std::string::npos);
    CHECK(errors[0].message.find("chain_sigprof") != std::string::npos);
    const auto traces = read_traces(dir.path());
    const trace_file& t = trace_named(traces, "unsampled");
    CHECK(t.samples.empty());
    CHECK(t.spans.size() == 2);
    // Our handler is still the one installed.
    struct sigaction now {};
    sigaction(SIGPROF, nullptr, &now);
    CHECK((now.sa_flags & SA_SIGINFO) == 0);
    CHECK(reinterpret_cast<void*>(now.sa_handler) == reinterpret_cast<void*>(&foreign_handler));
  }

  // 2. chain_sigprof: spanprof samples, and the program's handler still runs for every signal.
  errors.clear();
  g_foreign_calls.store(0);
  {
    temp_dir dir;
    spanprof::config cfg = sampling_config(dir, spanprof::sampling_mode::wall, 1000);
    cfg.chain_sigprof = true;
    cfg.log_errors_to_stderr = false;
    cfg.on_error = [](const spanprof::error& e) { g_errors->push_back(e); };
    spanprof::counters after{};
    {
      session s(cfg);
      std::thread worker([] {
        SPANPROF_TRANSACTION("chained");
        const std::int64_t start = thread_cpu_ns();
        while (spanprof::stats().samples_taken < 50 && thread_cpu_ns() - start < 5'000'000'000) burn_cpu(1'000'000);
      });
      worker.join();
      after = spanprof::stats();
    }
    CHECK(errors.empty());
    CHECK(after.samples_taken >= 50);
    const auto traces = read_traces(dir.path());
    CHECK(trace_named(traces, "chained").samples.size() >= 50);
    const long calls = g_foreign_calls.load();
    MESSAGE("chained: ", after.samples_taken, " samples, the program's handler ran ", calls, " times");
    CHECK(calls >= static_cast<long>(after.samples_taken));
  }
  g_errors = nullptr;
  // spanprof's handler stays installed (by design); it chains to ours, so nothing to restore
  // that would be safe to restore while a SIGPROF could still be in flight.
  (void)original;
}
