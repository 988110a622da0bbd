// Requests on fibers: each worker thread runs a tiny scheduler that interleaves several requests
// on Boost.Context fibers (spanprof::profiled_fiber from <spanprof/boost_context.hpp>). Every
// request is a transaction on its own fiber: its spans nest there, and each sample is charged
// to the request whose fiber was running, although all of them share the worker's thread.
//
//   SPANPROF_OUTPUT_DIR=profiles ./fibers      # one .trace.json + .transaction.json per request
//
// At the end it reads back the Chrome traces it wrote and names the functions in each
// request's samples (dladdr; the program is linked with -rdynamic), to show that an order's
// profile holds price_order() and never load_profile(), and a user's the reverse.
#include <spanprof/boost_context.hpp>
#include <spanprof/spanprof.hpp>

#include <cxxabi.h>
#include <dlfcn.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using spanprof::profiled_fiber;

// ---- the scheduler ----------------------------------------------------------------------------

// What a request's fiber can ask of the scheduler that runs it.
struct request_context {
  profiled_fiber scheduler;  // resuming it suspends this request
  std::chrono::steady_clock::time_point wake_at{};
};

// Stands in for non-blocking I/O: the request sleeps, its worker thread serves the others.
void wait_for_io(request_context& request, std::chrono::milliseconds latency) {
  request.wake_at = std::chrono::steady_clock::now() + latency;
  request.scheduler = std::move(request.scheduler).resume();
}

// One per worker thread: runs its requests' fibers until all have finished.
class scheduler {
 public:
  template <class Handler>
  void spawn(Handler handler) {
    auto request = std::make_unique<request_context>();
    request_context* raw = request.get();
    ready_.push_back({profiled_fiber{[raw, handler](profiled_fiber&& caller) {
                        raw->scheduler = std::move(caller);
                        handler(*raw);
                        return std::move(raw->scheduler);
                      }},
                      std::move(request)});
  }

  void run() {
    while (!ready_.empty() || !waiting_.empty()) {
      if (ready_.empty()) {
        // Nothing to run: sleep until the earliest I/O completes (no fiber runs, no profiling).
        const auto next = std::min_element(waiting_.begin(), waiting_.end(), [](const task& a, const task& b) {
                            return a.request->wake_at < b.request->wake_at;
                          })->request->wake_at;
        std::this_thread::sleep_until(next);
      }
      const auto now = std::chrono::steady_clock::now();
      for (auto it = waiting_.begin(); it != waiting_.end();) {
        if (it->request->wake_at <= now) {
          ready_.push_back(std::move(*it));
          it = waiting_.erase(it);
        } else {
          ++it;
        }
      }
      if (ready_.empty()) continue;
      task t = std::move(ready_.front());
      ready_.pop_front();
      t.fiber = std::move(t.fiber).resume();  // runs the request until it waits or ends
      if (t.fiber) waiting_.push_back(std::move(t));
    }
  }

 private:
  struct task {
    profiled_fiber fiber;
    std::unique_ptr<request_context> request;
  };
  std::deque<task> ready_;
  std::vector<task> waiting_;
};

// ---- the service --------------------------------------------------------------------------------

// Un-instrumented CPU work, different for each kind of request: what the samples show between
// the spans. Not static: dladdr finds them in the dynamic symbol table.
[[gnu::noinline]] double burn_cpu(std::chrono::milliseconds cpu) {
  timespec start{}, now{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &start);
  double acc = 0;
  do {
    for (int i = 0; i < 1000; ++i) acc += std::sqrt(static_cast<double>(i));
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  } while ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1'000'000 < cpu.count());
  return acc;
}

// Work after the call keeps it from being a tail call: the function's frame stays on the stack.
[[gnu::noinline]] double price_order(int order_id) {
  const double cost = burn_cpu(std::chrono::milliseconds(12 + order_id % 5));
  return cost * 1.07;
}

[[gnu::noinline]] double load_profile(int user_id) {
  const double score = burn_cpu(std::chrono::milliseconds(8 + user_id % 3));
  return score / 3.0;
}

void handle_get_order(request_context& request, int order_id) {
  SPANPROF_TRANSACTION_NAMED(txn, "GET /orders/" + std::to_string(order_id), "http.server");
  txn.set_data("order.id", order_id);
  {
    SPANPROF_SPAN_NAMED(query, "db.sql.query", "SELECT * FROM orders WHERE id = ?");
    wait_for_io(request, std::chrono::milliseconds(6));  // other requests run meanwhile
    query.set_data("db.rows", 1);
  }
  const double price = price_order(order_id);
  {
    SPANPROF_SPAN("cache.put", "order:" + std::to_string(order_id));
    wait_for_io(request, std::chrono::milliseconds(2));
  }
  if (price < 0) txn.set_status(spanprof::status::internal_error);
}

void handle_get_user(request_context& request, int user_id) {
  SPANPROF_TRANSACTION_NAMED(txn, "GET /users/" + std::to_string(user_id), "http.server");
  {
    SPANPROF_SPAN("cache.get", "user:" + std::to_string(user_id));
    wait_for_io(request, std::chrono::milliseconds(3));
  }
  const double profile = load_profile(user_id);
  {
    SPANPROF_SPAN("db.sql.query", "UPDATE users SET seen = now() WHERE id = ?");
    wait_for_io(request, std::chrono::milliseconds(4));
  }
  if (profile < 0) txn.set_status(spanprof::status::internal_error);
}

// ---- reading the profiles back ------------------------------------------------------------------

// The functions in the samples of one Chrome trace: a caller's return address, one byte back,
// lies in the calling function. A plain text scan: the trace's stacks are lists of hex strings.
std::map<std::string, int> sampled_functions(const std::string& trace, int& samples) {
  std::map<std::string, int> seen;
  samples = 0;
  for (std::size_t at = trace.find("\"stack\":["); at != std::string::npos; at = trace.find("\"stack\":[", at + 1)) {
    ++samples;
    const std::size_t end = trace.find(']', at);
    std::istringstream list(trace.substr(at + 9, end - at - 9));
    std::map<std::string, bool> in_this_sample;
    std::string item;
    for (int k = 0; std::getline(list, item, ','); ++k) {
      const std::uintptr_t pc = std::strtoull(item.c_str() + 1, nullptr, 16) - (k == 0 ? 0 : 1);
      Dl_info info{};
      if (dladdr(reinterpret_cast<void*>(pc), &info) == 0 || info.dli_sname == nullptr) continue;
      int status = 0;
      char* demangled = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
      std::string name = status == 0 ? demangled : info.dli_sname;
      std::free(demangled);
      name = name.substr(0, name.find('('));
      if (name == "price_order" || name == "load_profile") in_this_sample[name] = true;
    }
    for (const auto& [name, yes] : in_this_sample) seen[name] += yes ? 1 : 0;
  }
  return seen;
}

void print_profiles(const std::string& folder) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<fs::path> traces;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    if (entry.path().string().ends_with(".trace.json")) traces.push_back(entry.path());
  }
  std::sort(traces.begin(), traces.end());
  std::printf("\n%-16s %8s  %s\n", "request", "samples", "samples in price_order / load_profile");
  for (const auto& path : traces) {
    std::ifstream in(path);
    const std::string trace((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::size_t name_at = trace.find("\"transaction\":\"") + 15;
    const std::string name = trace.substr(name_at, trace.find('"', name_at) - name_at);
    int samples = 0;
    auto functions = sampled_functions(trace, samples);
    std::printf("%-16s %8d  %4d / %d\n", name.c_str(), samples, functions["price_order"], functions["load_profile"]);
  }
}

int main() {
  // 1 kHz unless SPANPROF_SAMPLE_RATE_HZ says otherwise: the requests are short.
  spanprof::config defaults;
  defaults.sample_rate_hz = 1000;
  const spanprof::config cfg = spanprof::config::from_environment(defaults);
  if (auto started = spanprof::init(cfg); !started) {
    std::fprintf(stderr, "profiling disabled: %s\n", started.error.c_str());
  }

  // Two worker threads, four requests each, interleaved on their fibers.
  std::vector<std::thread> workers;
  for (int worker = 0; worker < 2; ++worker) {
    workers.emplace_back([worker] {
      scheduler s;
      for (int i = 0; i < 2; ++i) {
        const int id = worker * 10 + i;
        s.spawn([id](request_context& r) { handle_get_order(r, id); });
        s.spawn([id](request_context& r) { handle_get_user(r, id); });
      }
      s.run();
    });
  }
  for (auto& w : workers) w.join();

  spanprof::shutdown();  // writes everything still queued
  const spanprof::counters stats = spanprof::stats();
  std::printf("transactions: %llu finished, %llu written; files: %llu; errors: %llu\n",
              static_cast<unsigned long long>(stats.transactions_finished),
              static_cast<unsigned long long>(stats.transactions_written),
              static_cast<unsigned long long>(stats.files_written), static_cast<unsigned long long>(stats.errors));
  std::printf("profiles in: %s\n", cfg.output_dir.c_str());
  if (spanprof::has_format(cfg.formats, spanprof::output_format::chrome_trace)) print_profiles(cfg.output_dir);
  return stats.transactions_written == stats.transactions_finished ? 0 : 1;
}
