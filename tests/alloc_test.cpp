// The hot path does not allocate: once a transaction record and its chunks exist (records are
// recycled with their memory), span begin/end and a whole transaction begin+finish make no heap
// allocation on the application thread. Global operator new/delete are replaced by counting
// versions (replace_operator_new.hpp); the counters are per thread because the collector thread
// allocates legitimately (it builds the JSON).
//
// Every transaction here runs on a fresh worker thread and is followed by shutdown() + init()
// (the collector is joined, so the record is back in the pool): then no second record is ever
// allocated behind our back, and the warm-up below provably touches every record in existence.
#include <doctest/doctest.h>
#include <spanprof/spanprof.hpp>
#include <spanprof/detail/engine/runtime.hpp>

#include "support/test_support.hpp"

#include "support/replace_operator_new.hpp"

#include <cstdint>
#include <functional>
#include <latch>
#include <string>
#include <thread>
#include <vector>
#include "support/build_kind.hpp"

using namespace spanprof_test;

namespace {

constexpr int spans_per_transaction = 10'000;

spanprof::config alloc_config(const temp_dir& dir) {
  spanprof::config cfg = config_for(dir);
  cfg.formats = spanprof::output_format::none;  // the collector's work is not measured here
  cfg.max_spans_per_transaction = 16'383;       // the most allowed; more than 10,000
  return cfg;
}

// shutdown() joins the collector (every finished record is recycled); init() starts again.
// Returns the counters of the session it ended. Runs on worker threads: CHECK, never REQUIRE.
spanprof::counters barrier(const spanprof::config& cfg) {
  spanprof::shutdown();
  const spanprof::counters ended = spanprof::stats();
  const spanprof::init_result again = spanprof::init(cfg);
  CHECK_MESSAGE(again.ok, again.error);
  return ended;
}

const std::string& long_description() {
  static const std::string text = [] {
    std::string s;
    for (int i = 0; s.size() < 200; ++i) s += "SELECT * FROM t" + std::to_string(i) + " WHERE x = ? ";
    s.resize(200);
    return s;
  }();
  return text;
}

// The biggest workload below (10,000 spans with 200-byte descriptions, some data): warms a
// record's span chunks, string blocks and first data chunk.
void warm_transaction() {
  SPANPROF_TRANSACTION("warm-up");
  SPANPROF_SET_DATA("warm", "up");
  const std::string& description = long_description();
  for (int i = 0; i < spans_per_transaction; ++i) {
    SPANPROF_SPAN("db.sql.query", description);
  }
}

// A small transaction, the shape the steady-state measurements below use.
void small_transaction() {
  SPANPROF_TRANSACTION_NAMED(txn, "steady with spans", "http.server");
  txn.set_data("http.request.method", "GET");
  SPANPROF_SPAN_NAMED(query, "db.sql.query", "SELECT 1");
  query.set_data("db.rows", 1);
  SPANPROF_FUNCTION();
  SPANPROF_SET_STATUS(spanprof::status::not_found);
}

// Warms every transaction record this thread can get. A thread takes records from its own
// cache, else a batch from the head of the global pool (a stack: the most recently recycled
// first). With a barrier after each transaction, every record it uses is back at the head of the
// pool before the next take, so after one more transaction than there are records, whatever it
// takes next is a record it has warmed.
void warm_every_record(const spanprof::config& cfg, void (*workload)()) {
  const std::size_t records = spanprof::detail::the_runtime().records_allocated.load();
  for (std::size_t i = 0; i <= records; ++i) {
    workload();
    (void)barrier(cfg);
  }
}

// Runs `body` on a fresh thread (so the main thread's record cache plays no part).
void on_fresh_thread(const std::function<void()>& body) { std::thread(body).join(); }

// How many allocations this thread makes while `body` runs.
template <class Body>
std::uint64_t allocations_during(Body&& body) {
  const std::uint64_t before = thread_allocations();
  body();
  return thread_allocations() - before;
}

const std::string build_kind = spanprof_test::build_kind_name;

// Under TSan operator new cannot be replaced (see replace_operator_new.hpp): skip the counts.
const bool no_counting = SPANPROF_TEST_COUNTING_NEW == 0;

}  // namespace

TEST_CASE("alloc: allocation counting is available in this build") {
  if (no_counting) {
    MESSAGE("SKIPPED (", build_kind, " build): the sanitizer runtime defines operator new itself, so allocations "
            "cannot be counted here; the plain g++/clang++ and ASan builds run the alloc tests");
  }
  CHECK(true);
}

TEST_CASE("alloc: the counting operator new sees this thread's allocations" * doctest::skip(no_counting)) {
  // The measuring instrument itself must be able to see an allocation.
  const std::uint64_t before = thread_allocations();
  auto* p = new int(7);
  auto* q = new (std::nothrow) char[100];
  auto* r = new std::string(100, 'x');
  // Let the pointers escape: otherwise clang may elide a new/delete pair ([expr.new]/10).
  asm volatile("" : : "g"(p), "g"(q), "g"(r) : "memory");
  const std::uint64_t after = thread_allocations();
  delete r;
  delete[] q;
  delete p;
  CHECK(after - before >= 3);
  MESSAGE("build: ", build_kind);
}

TEST_CASE("alloc: 10,000 span begin/end inside one transaction allocate nothing" * doctest::skip(no_counting)) {
  temp_dir dir;
  const spanprof::config cfg = alloc_config(dir);
  session s(cfg);
  std::uint64_t static_strings = 1;
  std::uint64_t long_strings = 1;
  spanprof::counters static_session;
  on_fresh_thread([&] {
    warm_every_record(cfg, warm_transaction);
    {
      SPANPROF_TRANSACTION("static strings");
      static_strings = allocations_during([] {
        for (int i = 0; i < spans_per_transaction; ++i) {
          SPANPROF_SPAN("test.op", "a static description");
        }
      });
    }
    static_session = barrier(cfg);
    {
      SPANPROF_TRANSACTION("200-byte std::string descriptions");
      const std::string description = long_description();  // made before counting
      long_strings = allocations_during([&] {
        for (int i = 0; i < spans_per_transaction; ++i) {
          SPANPROF_SPAN("db.sql.query", description);
        }
      });
    }
  });
  spanprof::shutdown();
  // Both transactions recorded every span: the loops did measure the recording path.
  CHECK(static_session.spans_started == spans_per_transaction);
  CHECK(static_session.spans_dropped == 0);
  CHECK(spanprof::stats().spans_started == spans_per_transaction);
  CHECK(spanprof::stats().spans_dropped == 0);
  CHECK(long_description().size() == 200);
  CHECK(static_strings == 0);
  CHECK(long_strings == 0);
}

TEST_CASE("alloc: a whole transaction begin+finish allocates nothing in steady state" * doctest::skip(no_counting)) {
  temp_dir dir;
  const spanprof::config cfg = alloc_config(dir);
  session s(cfg);
  std::uint64_t empty_transaction = 1;
  std::uint64_t with_spans = 1;
  on_fresh_thread([&] {
    warm_every_record(cfg, warm_transaction);
    empty_transaction = allocations_during([] { SPANPROF_TRANSACTION("steady"); });
    CHECK(barrier(cfg).transactions_collected == 1);
    with_spans = allocations_during(small_transaction);
  });
  spanprof::shutdown();
  CHECK(spanprof::stats().transactions_collected == 1);
  CHECK(empty_transaction == 0);
  CHECK(with_spans == 0);
}

// A burst (many transactions open or pending at once) leaves many records in the pool; the pool
// keeps at most runtime::max_pooled_records of them warm. Once the burst is over, a steady
// stream of transactions must again allocate nothing. The burst is made deterministic: 40
// threads each hold 8 nested transactions open at the same time (320 records).
TEST_CASE("alloc: after a burst of records, steady state allocates nothing again" * doctest::skip(no_counting)) {
  temp_dir dir;
  const spanprof::config cfg = alloc_config(dir);
  session s(cfg);
  constexpr int burst_threads = 40;
  {
    std::latch all_open(burst_threads);
    std::latch release(1);
    std::vector<std::thread> burst;
    for (int t = 0; t < burst_threads; ++t) {
      burst.emplace_back([&] {
        std::function<void(int)> nest = [&](int level) {
          SPANPROF_TRANSACTION("burst");
          SPANPROF_SPAN("test.op", "burst span");
          if (level < 8) {
            nest(level + 1);
          } else {
            all_open.count_down();
            release.wait();
          }
        };
        nest(1);
      });
    }
    all_open.wait();
    release.count_down();
    for (auto& t : burst) t.join();
  }
  const std::size_t records = spanprof::detail::the_runtime().records_allocated.load();
  REQUIRE(records >= std::size_t{burst_threads} * 8);
  std::uint64_t steady = 1;
  on_fresh_thread([&] {
    warm_every_record(cfg, small_transaction);
    steady = allocations_during(small_transaction);
  });
  spanprof::shutdown();
  INFO(records, " records exist after the burst");
  CHECK(steady == 0);
}

// Back to back, without barriers: a record is back in the pool only once the collector has
// processed it, so while the collector lags (it polls, and is woken only per batch of finished
// transactions) begin_transaction allocates new records: 3 allocations each (the record, its
// first span chunk, its first string block). Informational: the count depends on scheduling.
TEST_CASE("alloc: back-to-back transactions (informational)" * doctest::skip(no_counting)) {
  temp_dir dir;
  spanprof::config cfg = alloc_config(dir);
  cfg.max_pending_transactions = 1u << 20;
  session s(cfg);
  constexpr int rounds = 2'000;
  std::uint64_t allocations = 0;
  std::size_t records_before = 0;
  std::size_t records_after = 0;
  on_fresh_thread([&] {
    for (int i = 0; i < rounds; ++i) {  // warm-up
      SPANPROF_TRANSACTION("back to back");
      SPANPROF_SPAN("test.op", "span");
    }
    records_before = spanprof::detail::the_runtime().records_allocated.load();
    allocations = allocations_during([&] {
      for (int i = 0; i < rounds; ++i) {
        SPANPROF_TRANSACTION("back to back");
        SPANPROF_SPAN("test.op", "span");
      }
    });
    records_after = spanprof::detail::the_runtime().records_allocated.load();
  });
  spanprof::shutdown();
  MESSAGE(build_kind, ": ", rounds, " back-to-back transactions made ", allocations,
          " allocations on the application thread; transaction records allocated ", records_before, " -> ",
          records_after);
  CHECK(spanprof::stats().transactions_collected == 2 * rounds);
}
