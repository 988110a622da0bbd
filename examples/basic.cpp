// A tiny "service" instrumented with spanprof: two worker threads handle requests, each a
// transaction with db and cache spans and some un-instrumented work between them.
//
//   SPANPROF_OUTPUT_DIR=profiles ./basic      # one .trace.json + .transaction.json per request
#include <spanprof/spanprof.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace {

// Stands in for a database round trip.
void run_query(const std::string& sql, std::chrono::milliseconds latency) {
  SPANPROF_SPAN_NAMED(query, "db.sql.query", sql);
  query.set_data("db.system", "sqlite");
  std::this_thread::sleep_for(latency);
  query.set_data("db.rows", 42);
}

// Un-instrumented CPU work: the kind of gap the sampler will explain.
double join_members(int rounds) {
  double acc = 0;
  for (int i = 0; i < rounds; ++i) acc += std::sqrt(static_cast<double>(i));
  return acc;
}

bool cache_lookup(int user_id) {
  SPANPROF_FUNCTION();
  SPANPROF_SET_DATA("cache.key", "user:" + std::to_string(user_id));
  std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return user_id % 2 == 0;
}

double handle_get_user(int user_id) {
  SPANPROF_TRANSACTION_OP("GET /api/users/{id}", "http.server");
  SPANPROF_SET_DATA("http.request.method", "GET");
  if (cache_lookup(user_id)) return 0;
  run_query("SELECT * FROM members WHERE user_id = ?", std::chrono::milliseconds(4));
  const double joined = join_members(100'000'000);  // tens of ms: several samples at 101 Hz
  run_query("SELECT * FROM teams WHERE id IN (?)", std::chrono::milliseconds(3));
  return joined;
}

// Un-instrumented waiting: wall mode samples the blocked thread too, so the gap shows where it
// waited (CPU mode would show it as off-CPU time).
void wait_for_retry_budget() { std::this_thread::sleep_for(std::chrono::milliseconds(40)); }

void handle_missing(int user_id) {
  SPANPROF_TRANSACTION_NAMED(txn, "GET /api/orders/{id}", "http.server");
  run_query("SELECT * FROM orders WHERE id = " + std::to_string(user_id), std::chrono::milliseconds(2));
  wait_for_retry_budget();
  txn.set_status(spanprof::status::not_found);
}

}  // namespace

int main() {
  spanprof::config cfg = spanprof::config::from_environment();
  if (auto started = spanprof::init(cfg); !started) {
    std::fprintf(stderr, "profiling disabled: %s\n", started.error.c_str());
  }

  std::vector<std::thread> workers;
  for (int worker = 0; worker < 2; ++worker) {
    workers.emplace_back([worker] {
      for (int request = 0; request < 3; ++request) handle_get_user(worker * 10 + request * 2 + 1);
      handle_missing(worker);
    });
  }
  for (auto& w : workers) w.join();

  spanprof::shutdown();  // writes everything still queued
  const spanprof::counters s = spanprof::stats();
  std::printf("transactions: %llu finished, %llu written; files: %llu; errors: %llu\n",
              static_cast<unsigned long long>(s.transactions_finished),
              static_cast<unsigned long long>(s.transactions_written),
              static_cast<unsigned long long>(s.files_written), static_cast<unsigned long long>(s.errors));
  std::printf("profiles in: %s\n", cfg.output_dir.c_str());
  return s.transactions_written == s.transactions_finished ? 0 : 1;
}
