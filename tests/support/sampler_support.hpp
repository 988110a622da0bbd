// Helpers for the sampler tests: samples read back from the Chrome traces written after
// shutdown(), CPU burning measured in thread CPU time, bounded waits on a condition.
#pragma once

#include <doctest/doctest.h>
#include <spanprof/spanprof.hpp>

#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "build_kind.hpp"
#include "test_support.hpp"

namespace spanprof_test {

// TSan defers asynchronous signals to its next interception point and runs the handler with a
// copy of the context of the moment the signal arrived: stacks and span ids are then stale.
inline constexpr bool signals_deferred = under_tsan;

inline std::int64_t thread_cpu_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

using spanprof::detail::monotonic_ns;

// Burns `ns` of this thread's CPU time.
inline void burn_cpu(std::int64_t ns) {
  const std::int64_t start = thread_cpu_ns();
  while (thread_cpu_ns() - start < ns) {
  }
}

// Busy for `ns` of wall time (more CPU than that only if the machine is idle).
inline void burn_wall(std::int64_t ns) {
  const std::int64_t until = monotonic_ns() + ns;
  volatile std::uint64_t x = 1;
  while (monotonic_ns() < until) {
    for (int i = 0; i < 1000; ++i) x = x * 6364136223846793005ull + 1442695040888963407ull;
  }
}

// Busy until `min_ns` of wall time have passed AND the sampler has taken `min_samples` samples
// (process-wide) since the call, or `max_ns` passed. A loaded machine or a sanitizer can starve
// the sampler: a planted function that a test expects gap filling to name then lasts until it
// was really sampled, rather than a fixed time that may get no samples at all.
inline void burn_until_sampled(std::int64_t min_ns, std::uint64_t min_samples, std::int64_t max_ns = 5'000'000'000) {
  const std::int64_t begin = monotonic_ns();
  const std::uint64_t samples_before = spanprof::stats().samples_taken;
  do {
    burn_wall(1'000'000);
  } while ((monotonic_ns() - begin < min_ns || spanprof::stats().samples_taken - samples_before < min_samples) &&
           monotonic_ns() - begin < max_ns);
}

// Polls `done` until it holds or `limit_ms` of wall time passed (a safety bound, never an
// assertion on time). Returns whether it held.
template <class Done>
bool wait_until(Done&& done, std::int64_t limit_ms = 30'000) {
  const std::int64_t deadline = monotonic_ns() + limit_ms * 1'000'000;
  while (!done()) {
    if (monotonic_ns() > deadline) return false;
    timespec pause{0, 200'000};  // yield the CPU between checks (2 CPUs here)
    nanosleep(&pause, nullptr);
  }
  return true;
}

struct sample_event {
  std::uint64_t tid = 0;
  double ts_us = 0;
  std::string span_id;
  std::uint64_t weight = 1;
  bool truncated = false;
  std::vector<std::uintptr_t> stack;  // leaf first
};

struct span_event {
  std::string name, span_id;
  double ts_us = 0, dur_us = 0;
  bool is_transaction = false;
};

struct trace_file {
  std::string transaction;
  json other;
  std::uint64_t tid = 0;  // the transaction's track (from its X events): its thread, or its fiber's track
  std::string track_name;  // the thread_name metadata of that track
  std::vector<span_event> spans;
  std::vector<sample_event> samples;
};

inline int gettid_now() { return static_cast<int>(::syscall(SYS_gettid)); }

// Is `pc` one of the sample's return addresses (not its leaf)?
inline bool stack_contains(const sample_event& s, std::uintptr_t pc) {
  for (std::size_t k = 1; k < s.stack.size(); ++k) {
    if (s.stack[k] == pc) return true;
  }
  return false;
}

inline std::uintptr_t parse_hex(const std::string& text) { return static_cast<std::uintptr_t>(std::stoull(text, nullptr, 16)); }

inline trace_file read_trace(const std::filesystem::path& file) {
  const json doc = read_json(file);
  trace_file out;
  out.other = doc.at("otherData");
  out.transaction = out.other.value("transaction", std::string());
  for (const json& e : doc.at("traceEvents")) {
    const std::string ph = e.value("ph", std::string());
    if (ph == "M" && e.value("name", std::string()) == "thread_name") {
      out.track_name = e.at("args").at("name").get<std::string>();
    }
    const std::string cat = e.value("cat", std::string());
    if (cat == "spanprof.inferred" || cat == "spanprof.gap") {
      continue;  // gap filling's derived spans: checked by gapfill_e2e_test, not here
    }
    // A span: an X event, or an instant when too short to draw nested (chrome_trace.hpp).
    if (ph == "X" || (ph == "i" && (cat == "span" || cat == "transaction"))) {
      span_event s;
      s.name = e.at("name").get<std::string>();
      s.span_id = e.at("args").at("span_id").get<std::string>();
      s.ts_us = e.at("ts").get<double>();
      s.dur_us = e.value("dur", 0.0);
      s.is_transaction = e.value("cat", std::string()) == "transaction";
      out.tid = e.at("tid").get<std::uint64_t>();
      out.spans.push_back(s);
    } else if (ph == "i" && e.value("cat", std::string()) == "spanprof.sample") {
      sample_event s;
      s.tid = e.at("args").at("thread_id").get<std::uint64_t>();  // the thread (tid is the track)
      s.ts_us = e.at("ts").get<double>();
      const json& a = e.at("args");
      s.span_id = a.at("span_id").get<std::string>();
      s.weight = a.at("weight").get<std::uint64_t>();
      s.truncated = a.value("truncated", false);
      for (const json& pc : a.at("stack")) s.stack.push_back(parse_hex(pc.get<std::string>()));
      CHECK(a.at("depth").get<std::size_t>() == s.stack.size());
      if (!s.stack.empty()) CHECK(parse_hex(a.at("leaf").get<std::string>()) == s.stack.front());
      out.samples.push_back(s);
    }
  }
  return out;
}

inline std::vector<trace_file> read_traces(const std::string& dir) {
  std::vector<trace_file> out;
  for (const auto& file : files_ending_with(dir, ".trace.json")) out.push_back(read_trace(file));
  return out;
}

inline const trace_file& trace_named(const std::vector<trace_file>& traces, const std::string& name) {
  const trace_file* found = nullptr;
  int matches = 0;
  for (const auto& t : traces) {
    if (t.transaction == name) {
      found = &t;
      ++matches;
    }
  }
  INFO("transaction ", name);
  REQUIRE(matches == 1);
  return *found;
}

// A chrome-only configuration sampling at `hz` in `mode`.
inline spanprof::config sampling_config(const temp_dir& dir, spanprof::sampling_mode mode, unsigned hz = 1000) {
  spanprof::config cfg = config_for(dir);
  cfg.formats = spanprof::output_format::chrome_trace;
  cfg.sampling = true;
  cfg.mode = mode;
  cfg.sample_rate_hz = hz;
  return cfg;
}

inline std::string mode_name(spanprof::sampling_mode m) { return m == spanprof::sampling_mode::cpu ? "cpu" : "wall"; }

}  // namespace spanprof_test

// Known truth for the samplers' tests: burns `cpu_ns` of CPU time here and records the return
// address of its call, so that a sample's stack tells which caller was running. Not inlined,
// and extern "C", so that its name in a stack is exact.
extern "C" [[gnu::noinline]] inline void spanprof_test_burn(std::int64_t cpu_ns, std::atomic<std::uintptr_t>* return_address) {
  return_address->store(reinterpret_cast<std::uintptr_t>(__builtin_return_address(0)), std::memory_order_relaxed);
  const std::int64_t start = spanprof_test::thread_cpu_ns();
  while (spanprof_test::thread_cpu_ns() - start < cpu_ns) {
  }
  asm volatile("" ::: "memory");
}
