// spanprof: the process-wide state between init() and shutdown().
//
// One `runtime` object lives for the whole process and is never destroyed (threads that are
// still inside a span while the process exits must not touch freed memory). The hot path
// only looks at `g_recording`, a pointer that is null whenever spanprof is off.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <thread>
#include <vector>

#include "../core/clock.hpp"
#include "../core/config.hpp"
#include "errors.hpp"
#include "../core/queue.hpp"
#include "../record/transaction_record.hpp"
#include "../sample/sampler.hpp"

namespace spanprof::detail {

struct execution_context;

// Futex on a 32-bit word: the collector sleeps with a timeout and application threads wake it
// without taking any lock.
inline void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected, std::int64_t timeout_ns) noexcept {
  timespec timeout{static_cast<time_t>(timeout_ns / 1'000'000'000), static_cast<long>(timeout_ns % 1'000'000'000)};
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, expected, &timeout, nullptr, 0);
}
inline void futex_wake_one(std::atomic<std::uint32_t>& word) noexcept {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));

struct runtime {
  config cfg;  // written by init() only while nothing records; read-only while recording
  clock_calibration clock;
  live_counters& stats = g_counters;
  error_reporter errors;

  // Records waiting for reuse, and finished transactions waiting for the collector.
  intrusive_stack<transaction_record> free_records;
  intrusive_stack<transaction_record> finished;
  std::atomic<std::size_t> pending_finished{0};
  std::atomic<std::size_t> records_allocated{0};

  // Collector wake-up: application threads wake it only when it sleeps.
  std::atomic<std::uint32_t> wake_word{0};
  std::atomic<bool> collector_sleeping{false};
  std::atomic<bool> stop_requested{false};
  // Whether a finished transaction may still be queued. Cleared by the collector before its
  // final drain; a finish checks it after raising `finishes_in_flight`, and the collector waits
  // for that count to reach 0 after clearing it (Dekker-style, all seq_cst), so no transaction
  // is queued after the last drain.
  std::atomic<bool> accepting{false};
  std::atomic<int> finishes_in_flight{0};
  std::thread collector_thread;

  // The SIGPROF sampler. `sampling` / `sampling_cpu` are set by init() before recording starts
  // and cleared by shutdown() after it stops.
  sampler stack_sampler;
  std::atomic<bool> sampling{false};
  std::atomic<bool> sampling_cpu{false};

  std::mutex registry_mutex;  // contexts register at their first transaction, not per span
  std::vector<execution_context*> contexts;  // threads
  // Fibers (record/fiber_registry.hpp), under registry_mutex: the live ones, doubly linked through
  // execution_context::registry_prev/next (a vector's erase would cost O(fibers) per fiber),
  // and the released ones, kept for reuse and never freed.
  execution_context* fiber_contexts = nullptr;
  execution_context* free_fiber_contexts = nullptr;

  std::mutex lifecycle_mutex;  // serializes init() and shutdown()
  bool running = false;        // under lifecycle_mutex
  bool exit_hooks_registered = false;

  // In a child of fork() only the forking thread exists: no collector. Recording stops there,
  // and the parent's thread handle (meaningless in the child) is forgotten without being
  // destroyed, so the child may init() again. Runs in the child right after fork: touches
  // nothing but this object.
  void forget_parent_after_fork(execution_context* forking_thread) noexcept {
    running = false;
    accepting.store(false, std::memory_order_relaxed);
    sampling.store(false, std::memory_order_relaxed);
    sampling_cpu.store(false, std::memory_order_relaxed);
    stack_sampler.forget_parent_after_fork();
    new (&collector_thread) std::thread();
    new (&lifecycle_mutex) std::mutex();
    new (&registry_mutex) std::mutex();
    // The parent's other threads do not exist here; their contexts stay allocated but unlisted,
    // so a shutdown() in the child does not write the parent's transactions a second time.
    contexts.clear();
    if (forking_thread != nullptr) contexts.push_back(forking_thread);  // within capacity: no allocation
  }

  void wake_collector() noexcept {
    // Pairs with the fence in the collector's sleep: either it sees our push, or we see it asleep.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (collector_sleeping.load(std::memory_order_relaxed)) {
      wake_word.fetch_add(1, std::memory_order_relaxed);
      futex_wake_one(wake_word);
    }
  }

  void report(error_kind kind, std::string message) noexcept { errors.report(stats, kind, std::move(message)); }

  transaction_record* allocate_record() noexcept {
    auto* fresh = new (std::nothrow) transaction_record;
    if (fresh != nullptr) records_allocated.fetch_add(1, std::memory_order_relaxed);
    return fresh;
  }

  // Recycled records keep their memory, so transactions that look alike allocate nothing.
  // Records are never freed (shutdown() may still look at one through a context's open slot),
  // so their number is the peak of transactions open or pending at once, which
  // max_pending_transactions bounds.

  void recycle(transaction_record* rec) noexcept {
    rec->reset();
    free_records.push(rec);
  }

  // Finishes wake a sleeping collector only once this many wait; below that, its periodic
  // poll picks them up. A futex wake per transaction would cost more than the transaction.
  static constexpr std::size_t wake_batch = 64;
  static constexpr std::int64_t collector_poll_ns = 20'000'000;
};

inline runtime& the_runtime() noexcept {
  // Leaked on purpose: see the file comment.
  static runtime* instance = new runtime;
  return *instance;
}

// Non-null exactly while spanprof records. Constant-initialized, so reading it is safe from any
// static initializer and from a signal handler.
inline constinit std::atomic<runtime*> g_recording{nullptr};

}  // namespace spanprof::detail
