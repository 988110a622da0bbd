// Many threads recording at once: nothing lost, nothing counted twice, nothing racy (this file is
// the one TSan is for). Threads start together on a std::latch; spanprof::shutdown() joins the
// collector, so the counters are final once it returns.
#include <doctest/doctest.h>
#include <spanprof/spanprof.hpp>

#include "support/test_support.hpp"

#include <latch>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace spanprof_test;

namespace {

constexpr int spans_per_transaction = 4;

// One transaction, three levels deep, four spans:  txn { a { b { c } } d }
void one_transaction(int thread_index) {
  SPANPROF_TRANSACTION_OP("concurrent", "test.txn");
  {
    SPANPROF_SPAN_NAMED(a, "level.1", "a");
    a.set_data("thread", thread_index);
    {
      SPANPROF_SPAN("level.2", "b");
      SPANPROF_SPAN("level.3", "c");
    }
  }
  SPANPROF_SPAN("level.1", "d");
}

void run_threads(int threads, int transactions_per_thread) {
  std::latch start(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&start, t, transactions_per_thread] {
      start.arrive_and_wait();
      for (int i = 0; i < transactions_per_thread; ++i) one_transaction(t);
    });
  }
  for (auto& w : workers) w.join();
}

}  // namespace

TEST_CASE("concurrency: 8 threads x 10,000 transactions, none lost") {
  constexpr int threads = 8;
  constexpr int per_thread = 10'000;
  constexpr std::uint64_t total = std::uint64_t{threads} * per_thread;
  temp_dir dir;
  {
    spanprof::config cfg = config_for(dir);
    cfg.formats = spanprof::output_format::none;
    cfg.max_pending_transactions = 1u << 20;
    session s(cfg);
    run_threads(threads, per_thread);
  }
  const spanprof::counters c = spanprof::stats();
  CHECK(c.transactions_started == total);
  CHECK(c.transactions_finished == total);
  CHECK(c.transactions_collected == total);
  CHECK(c.spans_started == total * spans_per_transaction);
  CHECK(c.transactions_dropped == 0);
  CHECK(c.transactions_aborted == 0);
  CHECK(c.spans_dropped == 0);
  CHECK(c.spans_auto_closed == 0);
  CHECK(c.spans_closed_out_of_order == 0);
  CHECK(c.cross_context_ends == 0);
  CHECK(c.nested_transactions == 0);
  CHECK(c.errors == 0);
  CHECK(c.files_written == 0);
  CHECK(count_files(dir.path()) == 0);
}

TEST_CASE("concurrency: 8 threads x 200 transactions written as Chrome traces") {
  constexpr int threads = 8;
  constexpr int per_thread = 200;
  constexpr std::size_t total = std::size_t{threads} * per_thread;
  temp_dir dir;
  {
    spanprof::config cfg = config_for(dir);
    cfg.formats = spanprof::output_format::chrome_trace;
    cfg.max_pending_transactions = 1u << 20;
    session s(cfg);
    run_threads(threads, per_thread);
  }
  const spanprof::counters c = spanprof::stats();
  CHECK(c.transactions_finished == total);
  CHECK(c.transactions_written == total);
  CHECK(c.files_written == total);
  CHECK(c.transactions_dropped == 0);
  CHECK(c.errors == 0);

  const auto traces = files_ending_with(dir.path(), ".trace.json");
  CHECK(traces.size() == total);
  CHECK(count_files(dir.path()) == total);  // no temporary or other files left behind
  std::set<std::string> event_ids;
  std::set<long long> thread_ids;
  for (const auto& file : traces) {
    json trace = read_json(file);
    event_ids.insert(trace["otherData"]["event_id"].get<std::string>());
    int complete_events = 0;
    for (json& event : trace["traceEvents"]) {
      // A span is an X event, or an instant if it is too short to draw nested (chrome_trace.hpp).
      const std::string cat = event.value("cat", std::string());
      if (event["ph"] != "X" && !(event["ph"] == "i" && (cat == "span" || cat == "transaction"))) continue;
      thread_ids.insert(event["tid"].get<long long>());
      // Gap filling's derived spans appear wherever samples landed between spans.
      if (cat.starts_with("spanprof.")) continue;
      ++complete_events;
    }
    INFO(file.string());
    CHECK(complete_events == 1 + spans_per_transaction);
  }
  CHECK(event_ids.size() == total);
  CHECK(thread_ids.size() == threads);
}
