// A small instrumented workload for spanprof-report's browser test and its 10,000-profile
// measurement: "GET /api/users" runs a db-like span, an un-instrumented planted function (a busy
// CPU loop, not inlined), then another span; "GET /health" only a span. Writes the Sentry event
// and envelope (what the report reads) to SPANPROF_OUTPUT_DIR, and prints the planted call's
// file:line, which the report must name.
//
//   SPANPROF_OUTPUT_DIR=DIR SPANPROF_FORMATS=sentry,envelope report_workload [REQUESTS] [FIXED]
//   FIXED=1: the fast variant, without the planted function (a baseline to compare with).
#include <spanprof/spanprof.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace {

void burn_cpu_ms(int ms) {
  timespec start{}, now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start);
  do {
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  } while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1'000'000 < ms);
}

[[gnu::noinline]] void run_query(const char* sql, int ms) {
  SPANPROF_SPAN_NAMED(query, "db.sql.query", sql);
  query.set_data("db.system", "sqlite");
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
}

}  // namespace

// The planted culprit: joins in application code what one SQL JOIN would do.
extern "C" [[gnu::noinline]] void report_workload_join_in_memory() {
  burn_cpu_ms(25);
  asm volatile("" ::: "memory");
}

namespace {

int g_call_line = 0;

void handle_users(bool fixed) {
  SPANPROF_TRANSACTION_OP("GET /api/users", "http.server");
  run_query("SELECT * FROM members", 4);
  g_call_line = __LINE__ + 1;
  if (!fixed) report_workload_join_in_memory();
  run_query("SELECT * FROM teams", 3);
}

void handle_health() {
  SPANPROF_TRANSACTION_OP("GET /health", "http.server");
  run_query("SELECT 1", 1);
}

}  // namespace

int main(int argc, char** argv) {
  const int requests = argc > 1 ? std::atoi(argv[1]) : 10;
  const bool fixed = argc > 2 && std::atoi(argv[2]) != 0;
  const spanprof::init_result started = spanprof::init();
  if (!started.ok) {
    std::fprintf(stderr, "report_workload: %s\n", started.error.c_str());
    return 1;
  }
  for (int i = 0; i < requests; ++i) {
    handle_users(fixed);
    handle_health();
  }
  spanprof::shutdown();
  std::printf("planted report_workload_join_in_memory called at report_workload.cpp:%d\n", g_call_line);
  return 0;
}
