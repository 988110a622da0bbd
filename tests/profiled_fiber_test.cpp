// profiled_fiber (boost_context.hpp): transactions on Boost.Context fibers that spanprof follows,
// with known truth — two fibers on one thread, migration between threads, many fibers on many
// threads, destruction with a transaction open, and what the sampler sees of a suspended fiber.
// Samples and spans are read back from the files written after shutdown(); the switch events,
// which no writer shows yet, through spanprof::detail. The hand-wired API (fiber_context,
// fiber_switch_scope) is fiber_context_test.cpp's.
#include <doctest/doctest.h>
#include <spanprof/spanprof.hpp>
#include <fmt/format.h>

#include <spanprof/boost_context.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/fiber_support.hpp"
#include "support/sampler_support.hpp"
#include "support/test_support.hpp"

using namespace spanprof_test;
using spanprof::profiled_fiber;
using spanprof::sampling_mode;

namespace {

const span_event* span_with_id(const trace_file& t, const std::string& id) {
  for (const span_event& e : t.spans) {
    if (e.span_id == id) return &e;
  }
  return nullptr;
}

// ---- two fibers, one thread -----------------------------------------------------------------

void two_fibers_one_thread(sampling_mode mode) {
  temp_dir dir;
  constexpr int rounds = 60;
  // 180 ms of CPU in A, 300 ms in B, interleaved. Slices that are not multiples of the kernel's
  // 4 ms tick: with 4 ms each, the tick that detects a CPU timer's expiry can keep landing in
  // the same fiber, and on a loaded machine (few, heavy signals) that fiber took them all.
  constexpr std::int64_t slice_a_ns = 3'000'000, slice_b_ns = 5'000'000;
  int scheduler_tid = 0;
  spanprof::counters after{};
  {
    session s(sampling_config(dir, mode));
    std::thread scheduler([&] {
      scheduler_tid = gettid_now();
      profiled_fiber a{[&](profiled_fiber&& main) {
        SPANPROF_TRANSACTION("fiber-a");
        for (int i = 0; i < rounds; ++i) {
          {
            SPANPROF_SPAN("work", "a");
            spanprof_fiber_test_work_a(slice_a_ns);
          }
          main = std::move(main).resume();
        }
        return std::move(main);
      }};
      profiled_fiber b{[&](profiled_fiber&& main) {
        SPANPROF_TRANSACTION("fiber-b");
        for (int i = 0; i < rounds; ++i) {
          {
            SPANPROF_SPAN("work", "b");
            spanprof_fiber_test_work_b(slice_b_ns);
          }
          main = std::move(main).resume();
        }
        return std::move(main);
      }};
      // Round robin; the scheduler itself has no transaction.
      while (a || b) {
        if (a) a = std::move(a).resume();
        if (b) b = std::move(b).resume();
      }
    });
    scheduler.join();
    after = spanprof::stats();
  }
  const auto traces = read_traces(dir.path());
  REQUIRE(traces.size() == 2);
  const std::uintptr_t ra_a = g_return_into_a.load(), ra_b = g_return_into_b.load();
  REQUIRE(ra_a != 0);
  REQUIRE(ra_b != 0);
  REQUIRE(ra_a != ra_b);
  std::uint64_t total_weight = 0;
  struct expectation {
    std::string name, own_span, other_span;
    std::uintptr_t own_ra, other_ra;
    std::int64_t cpu_ms;
  };
  for (const expectation& e : {expectation{"fiber-a", "a", "b", ra_a, ra_b, 180}, expectation{"fiber-b", "b", "a", ra_b, ra_a, 300}}) {
    const std::string& name = e.name;
    const std::string& own_span = e.own_span;
    const std::string& other_span = e.other_span;
    const std::uintptr_t own_ra = e.own_ra, other_ra = e.other_ra;
    CAPTURE(name);
    const trace_file& t = trace_named(traces, name);
    // Spans: the root and exactly one per round, all its own.
    std::size_t own_spans = 0, foreign_spans = 0;
    for (const span_event& span : t.spans) {
      if (span.is_transaction) continue;
      own_spans += span.name == own_span ? 1 : 0;
      foreign_spans += span.name == other_span ? 1 : 0;
    }
    CHECK(own_spans == static_cast<std::size_t>(rounds));
    CHECK(foreign_spans == 0);
    // Samples: each one's stack shows its own fiber's function, never the other's.
    std::size_t with_own = 0, with_other = 0, foreign_span_ids = 0, wrong_tid = 0;
    std::uint64_t weight = 0;
    for (const sample_event& smp : t.samples) {
      weight += smp.weight;
      with_own += stack_contains(smp, own_ra) ? 1 : 0;
      with_other += stack_contains(smp, other_ra) ? 1 : 0;
      foreign_span_ids += span_with_id(t, smp.span_id) == nullptr ? 1 : 0;
      wrong_tid += smp.tid != static_cast<std::uint64_t>(scheduler_tid) ? 1 : 0;
    }
    MESSAGE(mode_name(mode), " mode, ", name, ": ", t.samples.size(), " samples (weight ", weight, "), ", with_own,
            " in its own function, ", with_other, " in the other fiber's");
    CHECK(with_other == 0);
    CHECK(foreign_span_ids == 0);
    CHECK(wrong_tid == 0);
    // At 1 kHz: ~1 sample per ms in wall mode; half of that is the bar (a third under TSan). In
    // CPU mode the kernel checks the timer once per tick (HZ=250), less often on a loaded
    // machine, where expirations merge into a few heavy samples, each charged whole to the
    // fiber running at that moment: the per-fiber split is then too coarse to test, the total
    // below is not.
    if (mode == sampling_mode::wall) {
      CHECK(t.samples.size() >= static_cast<std::size_t>(e.cpu_ms / (signals_deferred ? 3 : 2)));
    } else if (!signals_deferred) {  // TSan merges deferred signals further still
      CHECK(!t.samples.empty());
    }
    total_weight += weight;
    if (!signals_deferred) CHECK(with_own * 10 >= t.samples.size() * 9);  // almost all in its function
  }
  MESSAGE(mode_name(mode), " mode: ", after.samples_outside_transaction, " signals outside a transaction");
  // The weights add up to the CPU milliseconds (480 for both fibers), whatever the load.
  if (mode == sampling_mode::cpu) CHECK(total_weight >= (signals_deferred ? 160u : 240u));
  // The scheduler runs between the fibers without a transaction: in wall mode it is not signalled
  // then; in CPU mode the timer is not disarmed on each switch, but its first signal outside a
  // transaction disarms it, and the round robin never leaves the scheduler running for long.
  CHECK(after.samples_outside_transaction <= (mode == sampling_mode::wall ? 10u : 40u));
  CHECK(after.cross_context_ends == 0);
}

}  // namespace

TEST_CASE("fiber: two fibers on one thread, wall mode — every sample and span in its own fiber's transaction") {
  two_fibers_one_thread(sampling_mode::wall);
}

TEST_CASE("fiber: two fibers on one thread, cpu mode — the thread's timer charges the running fiber") {
  two_fibers_one_thread(sampling_mode::cpu);
}

// ---- migration -----------------------------------------------------------------------------

TEST_CASE("fiber: a fiber migrated to another thread keeps its transaction and span stack; its samples carry the new thread") {
  temp_dir dir;
  int tid_1 = 0, tid_2 = 0;
  std::vector<switch_event_copy> events;
  {
    spanprof::config cfg = sampling_config(dir, sampling_mode::wall);
    cfg.formats = spanprof::output_format::chrome_trace | spanprof::output_format::sentry_transaction;
    session s(cfg);
    profiled_fiber handed_over;  // written by the first thread, read after joining it
    profiled_fiber f{[&](profiled_fiber&& caller) {
      SPANPROF_TRANSACTION("migrating");
      {
        SPANPROF_SPAN("phase", "outer");
        spanprof_fiber_test_work_a(100'000'000);  // on the first thread
        caller = std::move(caller).resume();       // suspended inside "outer"
        spanprof_fiber_test_work_b(100'000'000);  // on the second thread
        {
          SPANPROF_SPAN("phase", "inner");
          burn_cpu(5'000'000);
        }
      }
      events = switches_of(open_record());
      return std::move(caller);
    }};
    std::thread first([&] {
      tid_1 = gettid_now();
      f = std::move(f).resume();
      handed_over = std::move(f);
    });
    first.join();
    REQUIRE(handed_over);
    // A thread that never opened a transaction: the fiber registers it when it arrives.
    std::thread second([&] {
      tid_2 = gettid_now();
      handed_over = std::move(handed_over).resume();
      CHECK_FALSE(handed_over);  // the fiber ended
    });
    second.join();
  }
  // The switch record: suspended on the first thread, resumed on the second, in that order.
  REQUIRE(events.size() == 2);
  CHECK(events[0].kind == suspend);
  CHECK(events[0].tid == static_cast<std::uint32_t>(tid_1));
  CHECK(events[1].kind == resume);
  CHECK(events[1].tid == static_cast<std::uint32_t>(tid_2));
  CHECK(events[0].t_ticks <= events[1].t_ticks);

  const auto traces = read_traces(dir.path());
  REQUIRE(traces.size() == 1);
  const trace_file& t = trace_named(traces, "migrating");
  // Drawn on a track of the fiber's own, above every thread id, named after the thread it
  // began on.
  CHECK(t.tid >= (std::uint64_t{1} << 30));
  CHECK(t.track_name.find(fmt::format("began on thread {}", tid_1)) != std::string::npos);
  const auto txns = read_transactions(dir.path());
  const json txn = transaction_named(txns, "migrating");
  CHECK(txn.at("contexts").at("trace").at("status") == "ok");
  const json outer = span_described(txn, "outer");
  const json inner = span_described(txn, "inner");
  CHECK(outer.at("parent_span_id") == root_span_id(txn));
  CHECK(inner.at("parent_span_id") == outer.at("span_id"));  // the span stack survived the move
  CHECK(outer.at("status") == "ok");
  CHECK(inner.at("status") == "ok");
  CHECK_FALSE(outer.at("data").contains("spanprof.auto_closed"));
  CHECK(manual_spans(txn).size() == 2);

  const std::uintptr_t ra_a = g_return_into_a.load(), ra_b = g_return_into_b.load();
  std::size_t on_1 = 0, on_2 = 0, on_other = 0, a_on_1 = 0, a_elsewhere = 0, b_on_2 = 0, b_elsewhere = 0;
  for (const sample_event& smp : t.samples) {
    const bool first = smp.tid == static_cast<std::uint64_t>(tid_1), second = smp.tid == static_cast<std::uint64_t>(tid_2);
    on_1 += first ? 1 : 0;
    on_2 += second ? 1 : 0;
    on_other += !first && !second ? 1 : 0;
    if (stack_contains(smp, ra_a)) (first ? a_on_1 : a_elsewhere) += 1;
    if (stack_contains(smp, ra_b)) (second ? b_on_2 : b_elsewhere) += 1;
  }
  MESSAGE(t.samples.size(), " samples: ", on_1, " on the first thread (", a_on_1, " in work_a), ", on_2,
          " on the second (", b_on_2, " in work_b)");
  // 100 ms of CPU on each thread at 1 kHz.
  CHECK(on_1 >= (signals_deferred ? 10u : 60u));
  CHECK(on_2 >= (signals_deferred ? 10u : 60u));
  CHECK(on_other == 0);
  CHECK(a_elsewhere == 0);
  CHECK(b_elsewhere == 0);
  if (!signals_deferred) {  // TSan runs the handler later, in its runtime: stacks are not comparable
    CHECK(a_on_1 * 10 >= on_1 * 8);
    CHECK(b_on_2 * 10 >= on_2 * 8);
  }
}

// ---- many fibers, many threads --------------------------------------------------------------

TEST_CASE("fiber: 1,000 fibers × 3 short transactions on 4 threads, migrating at every yield — none lost or mixed up") {
  temp_dir dir;
  constexpr int fiber_count = 1000;
  constexpr int txns_per_fiber = 3;
  constexpr int thread_count = 4;
  std::atomic<int> migrations{0};
  spanprof::counters after{};
  {
    spanprof::config cfg = sampling_config(dir, sampling_mode::wall, 1000);
    cfg.formats = spanprof::output_format::sentry_transaction;
    cfg.max_pending_transactions = 1 << 16;  // the collector must never have to drop one
    session s(cfg);

    // A run queue shared by the threads: a fiber that yields goes to the back and is resumed by
    // whichever thread takes it next.
    struct task {
      profiled_fiber fiber;
      int last_tid = 0;
    };
    std::mutex mutex;
    std::condition_variable ready;
    std::deque<task> queue;
    int remaining = fiber_count;
    for (int i = 0; i < fiber_count; ++i) {
      queue.push_back({profiled_fiber{[i](profiled_fiber&& worker) {
                         for (int k = 0; k < txns_per_fiber; ++k) {
                           const std::string name = "f" + std::to_string(i) + "-t" + std::to_string(k);
                           SPANPROF_TRANSACTION_NAMED(txn, name, "task");
                           txn.set_data("fiber", i);
                           {
                             SPANPROF_SPAN("step", name + "-s0");
                             worker = std::move(worker).resume();
                           }
                           {
                             SPANPROF_SPAN("step", name + "-s1");
                             worker = std::move(worker).resume();
                           }
                         }
                         return std::move(worker);
                       }},
                       0});
    }
    std::vector<std::thread> threads;
    for (int w = 0; w < thread_count; ++w) {
      threads.emplace_back([&] {
        const int me = gettid_now();
        for (;;) {
          std::unique_lock lock(mutex);
          ready.wait(lock, [&] { return !queue.empty() || remaining == 0; });
          if (queue.empty()) return;
          task t = std::move(queue.front());
          queue.pop_front();
          lock.unlock();
          if (t.last_tid != 0 && t.last_tid != me) migrations.fetch_add(1, std::memory_order_relaxed);
          t.last_tid = me;
          t.fiber = std::move(t.fiber).resume();
          lock.lock();
          if (t.fiber) {
            queue.push_back(std::move(t));
            ready.notify_one();
          } else if (--remaining == 0) {
            ready.notify_all();
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    after = spanprof::stats();
  }
  MESSAGE(migrations.load(), " resumptions on another thread than the previous one; ", after.samples_taken, " samples");
  CHECK(migrations.load() > 0);
  CHECK(after.transactions_started == fiber_count * txns_per_fiber);
  CHECK(after.transactions_finished == fiber_count * txns_per_fiber);
  CHECK(after.transactions_dropped == 0);
  CHECK(after.transactions_aborted == 0);
  CHECK(after.cross_context_ends == 0);
  CHECK(after.spans_auto_closed == 0);

  const auto txns = read_transactions(dir.path());
  CHECK(txns.size() == static_cast<std::size_t>(fiber_count * txns_per_fiber));
  std::set<std::string> names;
  std::size_t misattributed = 0;
  for (const json& txn : txns) {
    const std::string name = txn.at("transaction").get<std::string>();
    names.insert(name);
    const auto dash = name.find("-t");
    REQUIRE(dash != std::string::npos);
    const int fiber = std::stoi(name.substr(1, dash - 1));
    const std::vector<json> spans = manual_spans(txn);
    bool right = txn.at("contexts").at("trace").at("status") == "ok" &&
                 txn.at("contexts").at("trace").at("data").at("fiber") == fiber && spans.size() == 2;
    for (const json& span : spans) {
      const std::string d = span.at("description").get<std::string>();
      right = right && (d == name + "-s0" || d == name + "-s1") && span.at("parent_span_id") == root_span_id(txn) &&
              span.at("status") == "ok";
    }
    if (right) right = spans[0].at("description") != spans[1].at("description");
    if (!right) {
      if (misattributed < 5) MESSAGE("wrong: ", txn.dump());
      ++misattributed;
    }
  }
  CHECK(names.size() == static_cast<std::size_t>(fiber_count * txns_per_fiber));
  CHECK(misattributed == 0);
}

// ---- destruction ----------------------------------------------------------------------------

TEST_CASE("fiber: a fiber destroyed with an open transaction is closed as aborted") {
  temp_dir dir;
  bool unwound = false;
  spanprof::counters after{};
  {
    spanprof::config cfg = config_for(dir);
    cfg.sampling = false;
    session s(cfg);
    std::thread owner([&] {
      struct on_unwind {
        bool& flag;
        ~on_unwind() { flag = true; }
      };
      profiled_fiber f{[&](profiled_fiber&& caller) {
        on_unwind watch{unwound};
        SPANPROF_TRANSACTION("doomed");
        SPANPROF_SPAN("db.sql.query", "never finished");
        caller = std::move(caller).resume();
        FAIL_CHECK("a destroyed fiber was resumed");
        return std::move(caller);
      }};
      f = std::move(f).resume();  // suspended inside its transaction and span
      CHECK(f);
      f = profiled_fiber();  // destroyed: Boost unwinds its stack
      CHECK(unwound);
      // And one that never ran: nothing to record, nothing to unwind.
      profiled_fiber never{[](profiled_fiber&& caller) { return std::move(caller); }};
    });
    owner.join();
    after = spanprof::stats();
  }
  CHECK(after.transactions_aborted == 1);
  CHECK(after.cross_context_ends == 0);  // the unwinding ran as the fiber, on finished records
  const auto txns = read_transactions(dir.path());
  REQUIRE(txns.size() == 1);
  const json txn = transaction_named(txns, "doomed");
  CHECK(txn.at("contexts").at("trace").at("status") == "aborted");
  const json span = span_described(txn, "never finished");
  CHECK(span.at("status") == "deadline_exceeded");
  CHECK(span.at("data").at("spanprof.auto_closed") == true);
}

// ---- what the sampler sees ------------------------------------------------------------------

namespace {

void suspended_gets_no_samples(sampling_mode mode) {
  temp_dir dir;
  std::int64_t txn_begin_ns = 0, suspended_from_ns = 0, suspended_to_ns = 0;
  spanprof::counters after{};
  {
    spanprof::config cfg = sampling_config(dir, mode);
    cfg.formats = spanprof::output_format::chrome_trace | spanprof::output_format::sentry_transaction;
    session s(cfg);
    std::thread scheduler([&] {
      profiled_fiber f{[&](profiled_fiber&& main) {
        SPANPROF_TRANSACTION("suspended");
        txn_begin_ns = monotonic_ns();
        spanprof_fiber_test_work_a(60'000'000);
        main = std::move(main).resume();
        spanprof_fiber_test_work_a(60'000'000);
        return std::move(main);
      }};
      f = std::move(f).resume();
      // The fiber is suspended with its transaction open; the thread burns CPU outside any.
      suspended_from_ns = monotonic_ns();
      burn_cpu(200'000'000);
      suspended_to_ns = monotonic_ns();
      f = std::move(f).resume();
    });
    scheduler.join();
    after = spanprof::stats();
  }
  const auto traces = read_traces(dir.path());
  const trace_file& t = trace_named(traces, "suspended");
  // Sample times are µs since the transaction began; the window is known to within µs. The
  // margin is 2 ms plus 1 % of the distance: sample times go through the tick calibration,
  // which a loaded machine can put a few ms off over half a second.
  const double from_us = static_cast<double>(suspended_from_ns - txn_begin_ns) / 1000.0 * 1.01 + 2000.0;
  const double to_us = static_cast<double>(suspended_to_ns - txn_begin_ns) / 1000.0 * 0.99 - 2000.0;
  // Weighted: under load a CPU timer's expirations merge into fewer, heavier signals.
  std::uint64_t inside = 0, before = 0, after_window = 0;
  for (const sample_event& smp : t.samples) {
    if (smp.ts_us > from_us && smp.ts_us < to_us) inside += smp.weight;
    else if (smp.ts_us <= from_us) before += smp.weight;
    else after_window += smp.weight;
  }
  MESSAGE(mode_name(mode), " mode: weight ", before, " before the suspension, ", inside, " during it, ", after_window,
          " after (", t.samples.size(), " samples); ", after.samples_outside_transaction, " signals outside a transaction");
  CHECK(inside == 0);
  // 60 ms of CPU before and after, at 1 kHz.
  CHECK(before >= (signals_deferred ? 1u : 15u));
  CHECK(after_window >= (signals_deferred ? 1u : 15u));
  // CPU mode: 200 ms of CPU outside a transaction, and the first CPU-timer signal disarms the
  // timer, so a handful at most instead of ~50. Wall mode: the ticker does not signal the thread.
  CHECK(after.samples_outside_transaction <= 4);

  // Gap filling is told when the fiber ran (its switch events): the suspension is a gap of
  // reason "suspended", never unexplained time. (On a loaded machine wall-mode signals come
  // late, so part of the running time may still be an "unexplained" gap: the suspension must
  // be inside it as suspended_ns, not counted as its residual.)
  const json txn = transaction_named(read_transactions(dir.path(), derived_spans::keep), "suspended");
  const json root_id = txn.at("contexts").at("trace").at("span_id");
  const std::int64_t suspended_ns = suspended_to_ns - suspended_from_ns;
  std::int64_t longest_suspended_gap_ns = 0;
  std::map<std::string, json> spans_by_id;
  for (const json& span : txn.at("spans")) {
    spans_by_id[span.at("span_id").get<std::string>()] = span;
    const json& data = span.value("data", json::object());
    if (data.value("spanprof.gap_reason", "") != "unexplained") continue;
    CHECK(data.at("spanprof.suspended_ns").get<std::int64_t>() >= suspended_ns * 9 / 10);
  }
  for (const json& span : txn.at("spans")) {
    const json& data = span.value("data", json::object());
    if (data.value("spanprof.gap_reason", "") != "suspended") continue;
    const std::int64_t begin = parse_rfc3339_ns(span.at("start_timestamp")), end = parse_rfc3339_ns(span.at("timestamp"));
    // Under the transaction, or under the derived span it interrupted (an unexplained gap, or a
    // function whose samples on both sides of the suspension merged into one inferred span).
    if (span.at("parent_span_id") != root_id) {
      const auto parent = spans_by_id.find(span.at("parent_span_id").get<std::string>());
      REQUIRE(parent != spans_by_id.end());
      CHECK(parse_rfc3339_ns(parent->second.at("start_timestamp")) <= begin);
      CHECK(end <= parse_rfc3339_ns(parent->second.at("timestamp")));
    }
    longest_suspended_gap_ns = std::max(longest_suspended_gap_ns, end - begin);
  }
  MESSAGE("suspended for ", suspended_ns, " ns; longest suspended gap ", longest_suspended_gap_ns, " ns");
  CHECK(longest_suspended_gap_ns >= suspended_ns * 9 / 10);
}

}  // namespace

TEST_CASE("fiber: a suspended fiber gets no samples, wall mode") { suspended_gets_no_samples(sampling_mode::wall); }

TEST_CASE("fiber: a suspended fiber gets no samples, cpu mode — and the idle timer disarms itself") {
  suspended_gets_no_samples(sampling_mode::cpu);
}
