// spanprof: init() and shutdown() — starting and stopping the engine.
//
// Engine only: the public init/shutdown (engine/implementation.hpp) call these.
#pragma once

#include <pthread.h>

#include <algorithm>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "../collect/collector.hpp"
#include "../core/config.hpp"
#include "../record/fiber_registry.hpp"
#include "../record/snapshot.hpp"
#include "environment.hpp"
#include "runtime.hpp"

namespace spanprof {

namespace detail {

inline std::string validate(const config& cfg) {
  auto range = [](const char* field, double value, double lo, double hi) -> std::string {
    if (value >= lo && value <= hi) return {};
    return fmt::format("spanprof: {} is {}; expected {}..{}", field, value, lo, hi);
  };
  if (cfg.output_dir.empty()) return "spanprof: output_dir is empty; expected a folder path";
  for (std::string problem :
       {range("traces_sample_rate", cfg.traces_sample_rate, 0.0, 1.0),
        range("sample_rate_hz", cfg.sample_rate_hz, 1, 100000),
        range("max_spans_per_transaction", static_cast<double>(cfg.max_spans_per_transaction), 1,
              static_cast<double>(transaction_record::max_spans - 1)),
        range("max_data_per_transaction", static_cast<double>(cfg.max_data_per_transaction), 0, 2048),
        range("max_description_bytes", static_cast<double>(cfg.max_description_bytes), 16, 1 << 20),
        range("max_name_bytes", static_cast<double>(cfg.max_name_bytes), 8, 4096),
        range("max_pending_transactions", static_cast<double>(cfg.max_pending_transactions), 1, 1 << 20),
        range("max_stack_depth", static_cast<double>(cfg.max_stack_depth), 1, 1024),
        cfg.ring_capacity_bytes == 0 ? std::string() : range("ring_capacity_bytes", static_cast<double>(cfg.ring_capacity_bytes), 4096, 1 << 30),
        range("stack_copy_bytes", static_cast<double>(cfg.stack_copy_bytes), 512, 256 * 1024)}) {
    if (!problem.empty()) return problem;
  }
  if (!(cfg.traces_sample_rate == cfg.traces_sample_rate)) return "spanprof: traces_sample_rate is NaN; expected 0..1";
  return {};
}

inline sampler::settings sampler_settings_for(const config& cfg) noexcept {
  sampler::settings s;
  s.mode = cfg.mode;
  s.rate_hz = cfg.sample_rate_hz;
  s.max_depth = cfg.max_stack_depth;
  s.chain_existing_handler = cfg.chain_sigprof;
#if defined(SPANPROF_FRAME_POINTERS)
  s.method = cfg.stack_unwinder == unwinder::dwarf ? unwind_method::dwarf : unwind_method::frame_pointers;
#else
  s.method = cfg.stack_unwinder == unwinder::frame_pointers ? unwind_method::frame_pointers : unwind_method::dwarf;
#endif
  s.ring_bytes = cfg.ring_capacity_bytes != 0
                     ? cfg.ring_capacity_bytes
                     : sampler::automatic_ring_bytes(cfg.sample_rate_hz, s.method, cfg.max_stack_depth, cfg.stack_copy_bytes);
  // A record larger than half the ring is never accepted: a small ring gets a smaller copy.
  s.max_stack_copy_bytes = std::min(cfg.stack_copy_bytes, s.ring_bytes / 2 - 512);
  return s;
}

// Copies every transaction still open anywhere into the finished queue, as aborted.
inline void abandon_open_transactions(runtime& rt) {
  const std::int64_t end = now_ticks();
  std::lock_guard lock(rt.registry_mutex);
  for_each_listed_context(rt, [&](execution_context* ctx) {
    for (auto& slot : ctx->open) {
      transaction_record* rec = slot.load(std::memory_order_acquire);
      if (rec == nullptr) continue;
      transaction_state expected = transaction_state::open;
      if (!rec->state.compare_exchange_strong(expected, transaction_state::snapshotting, std::memory_order_acq_rel)) continue;
      transaction_record* copy = nullptr;
      try {
        copy = snapshot_open_transaction(rt, *rec, end);
      } catch (...) {
      }
      rec->state.store(transaction_state::abandoned, std::memory_order_release);
      bump(rt.stats.transactions_finished);
      bump(rt.stats.transactions_aborted);
      if (copy == nullptr) {
        bump(rt.stats.transactions_dropped);
        continue;
      }
      rt.pending_finished.fetch_add(1, std::memory_order_relaxed);
      rt.finished.push(copy);
    }
  });
}


// NOT ASYNC-SIGNAL-SAFE. shutdown(): every finished transaction is written, every
// transaction still open (on any thread) is written as aborted, and the collector stops.
// Idempotent, and safe to call from several threads at once. Also runs at exit.
inline void stop_recording() noexcept {
  detail::runtime& rt = detail::the_runtime();
  std::lock_guard lifecycle(rt.lifecycle_mutex);
  if (!rt.running) return;
  detail::g_recording.store(nullptr, std::memory_order_release);  // no new transactions
  rt.stack_sampler.stop();  // before the collector's last drain, so no sample arrives after it
  rt.sampling.store(false, std::memory_order_relaxed);
  rt.sampling_cpu.store(false, std::memory_order_relaxed);
  try {
    detail::abandon_open_transactions(rt);
  } catch (...) {
  }
  rt.stop_requested.store(true, std::memory_order_release);
  rt.wake_word.fetch_add(1, std::memory_order_relaxed);
  detail::futex_wake_one(rt.wake_word);
  if (rt.collector_thread.joinable()) rt.collector_thread.join();
  rt.running = false;
}

// NOT ASYNC-SIGNAL-SAFE. Starts recording. A second init() while running changes nothing and
// returns ok; call shutdown() first to change the configuration.
inline init_result start_recording(const config& cfg) noexcept {
  detail::runtime& rt = detail::the_runtime();
  try {
    std::lock_guard lifecycle(rt.lifecycle_mutex);
    if (rt.running) return {};
    rt.errors.set_callback(cfg.on_error, cfg.log_errors_to_stderr);
    if (std::string problem = detail::validate(cfg); !problem.empty()) {
      rt.report(error_kind::invalid_config, problem);
      return {false, problem};
    }
    if (!cfg.enabled) return {};
    rt.cfg = cfg;
    rt.stats.reset();
    rt.clock.calibrate();
    rt.stop_requested.store(false, std::memory_order_relaxed);
    rt.accepting.store(true, std::memory_order_seq_cst);
    rt.collector_thread = std::thread([&rt] {
      try {
        detail::collector(rt).run();
      } catch (const std::exception& e) {  // only its construction can throw (out of memory)
        rt.report(error_kind::write_failed, std::string("spanprof: the collector could not start: ") + e.what());
      }
    });
    rt.running = true;
    if (cfg.sampling) {
      if (std::string problem = rt.stack_sampler.start(detail::sampler_settings_for(cfg)); !problem.empty()) {
        rt.report(error_kind::invalid_config, problem);  // spans still work; sampling stays off
      } else {
        rt.sampling_cpu.store(cfg.mode == sampling_mode::cpu, std::memory_order_relaxed);
        rt.sampling.store(true, std::memory_order_relaxed);
      }
    }
    if (!rt.exit_hooks_registered) {
      // Profiles of transactions still open at exit are written as aborted, like Sentry's flush.
      std::atexit([] { stop_recording(); });
      pthread_atfork(nullptr, nullptr, [] {
        detail::g_recording.store(nullptr, std::memory_order_relaxed);
        detail::forget_parent_contexts_after_fork(detail::the_runtime());
      });
      rt.exit_hooks_registered = true;
    }
    detail::g_recording.store(&rt, std::memory_order_release);
    return {};
  } catch (const std::exception& e) {
    std::string problem = std::string("spanprof: init failed: ") + e.what();
    rt.report(error_kind::invalid_config, problem);
    return {false, problem};
  }
}

// init() with the configuration read from SPANPROF_* environment variables over the defaults.
inline init_result start_recording_from_environment() noexcept {
  try {
    std::vector<std::string> problems;
    const config cfg = config::from_environment(config{}, &problems);
    // Reported after init(cfg), which installs this configuration's error settings and resets
    // the counters: before it, they reached the previous init's callback and were then zeroed.
    init_result result = start_recording(cfg);
    for (auto& problem : problems) detail::the_runtime().report(error_kind::invalid_config, std::move(problem));
    return result;
  } catch (...) {
    return {false, "spanprof: init failed: out of memory"};
  }
}

// Counters since the last init(). Safe from any thread.

}  // namespace detail
}  // namespace spanprof
