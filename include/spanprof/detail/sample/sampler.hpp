// spanprof: the SIGPROF sampler — per-thread registration, start/stop, draining the rings.
//
// Only threads inside a transaction are sampled: in wall mode by the ticker (wall_ticker.hpp),
// in cpu mode by each thread's own CPU-time timer (cpu_timer.hpp). The handler (handler.hpp)
// pushes each sample into the thread's ring; the collector drains the rings here.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../core/config.hpp"
#include "../record/active_state.hpp"
#include "cpu_timer.hpp"
#include "handler.hpp"
#include "ring.hpp"
#include "signal_install.hpp"
#include "stack_copy.hpp"
#include "wall_ticker.hpp"

namespace spanprof::detail {

// The thread's stack: [lowest, highest). NOT ASYNC-SIGNAL-SAFE (pthread_getattr_np allocates).
inline stack_bounds current_thread_stack() noexcept {
  stack_bounds bounds;
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return bounds;
  void* address = nullptr;
  std::size_t size = 0;
  if (pthread_attr_getstack(&attr, &address, &size) == 0) {
    bounds.lowest = reinterpret_cast<std::uintptr_t>(address);
    bounds.highest = bounds.lowest + size;
  }
  pthread_attr_destroy(&attr);
  return bounds;
}

// NOT ASYNC-SIGNAL-SAFE. Owns the registered threads, the handler installation and the wall
// mode's ticking thread. Methods are called from application threads (registration, CPU timer
// arming), init/shutdown, and the collector (draining).
class sampler {
 public:
  // An automatic ring holds this long of one thread's samples of the largest record: the time
  // the collector may spend writing one transaction (or be descheduled) without a sample lost.
  // A ring of 256 KiB held 32 ms of dwarf samples at 499 Hz, and the example service under
  // ASan, its 2 cores contended, dropped ~45 % of its samples (run_service_test.sh).
  static constexpr std::int64_t ring_window_ms = 250;
  static constexpr std::size_t min_ring_bytes = 256 * 1024;
  static constexpr std::size_t max_automatic_ring_bytes = 64u << 20;

  // The ring size for `ring_window_ms` of samples at `rate_hz` of the unwinder's largest record,
  // within [min_ring_bytes, max_automatic_ring_bytes].
  static std::size_t automatic_ring_bytes(unsigned rate_hz, unwind_method method, std::size_t max_depth,
                                          std::size_t stack_copy_bytes) noexcept {
    const std::size_t words = method == unwind_method::dwarf ? raw_stack_layout::prefix_words + stack_copy_bytes / sizeof(std::uintptr_t)
                                                             : max_depth;
    const std::size_t window_samples = (static_cast<std::size_t>(rate_hz) * ring_window_ms + 999) / 1000;
    return std::clamp(window_samples * sample_ring::record_bytes(words), min_ring_bytes, max_automatic_ring_bytes);
  }

  struct settings {
    sampling_mode mode = sampling_mode::wall;
    unsigned rate_hz = 101;
    unwind_method method = unwind_method::frame_pointers;
    std::size_t max_depth = 128;
    std::size_t max_stack_copy_bytes = 16 * 1024;  // dwarf: bytes of stack copied per sample
    std::size_t ring_bytes = 256 * 1024;
    bool chain_existing_handler = false;
  };

  // Installs the handler (once per process) and, in wall mode, starts the ticking thread.
  // Returns an empty string, or why sampling stays off (spans keep working).
  std::string start(const settings& s) {
    std::lock_guard lock(mutex_);
    settings_ = s;
    g_sampler_settings.method.store(s.method, std::memory_order_relaxed);
    g_sampler_settings.max_stack_copy_bytes.store(s.max_stack_copy_bytes, std::memory_order_relaxed);
    g_sampler_settings.period_ns.store(1'000'000'000 / static_cast<std::int64_t>(s.rate_hz), std::memory_order_relaxed);
    g_sampler_settings.mode_tag.store(s.mode == sampling_mode::cpu ? 1 : 0, std::memory_order_relaxed);
    if (!handler_installed_) {
      if (std::string problem = install_sigprof_handler(s.chain_existing_handler); !problem.empty()) return problem;
      handler_installed_ = true;
    }
    active_.store(true, std::memory_order_release);
    for (auto& ts : threads_) {
      if (!ts->exited.load(std::memory_order_relaxed) && s.mode == sampling_mode::cpu) create_cpu_timer(*ts);
    }
    if (s.mode == sampling_mode::wall) {
      stop_ticking_.store(false, std::memory_order_relaxed);
      ticker_ = std::thread([this] {
        run_wall_ticks(stop_ticking_, [this](std::vector<int>& targets) { collect_wall_targets(targets); });
      });
    }
    return {};
  }

  // Stops signalling. The handler stays installed: a SIGPROF already on its way must never
  // meet SIG_DFL, whose action is to kill the process.
  void stop() noexcept {
    active_.store(false, std::memory_order_release);
    stop_ticking_.store(true, std::memory_order_release);
    if (ticker_.joinable()) ticker_.join();
    std::lock_guard lock(mutex_);
    for (auto& ts : threads_) delete_cpu_timer(*ts);
  }

  [[nodiscard]] bool active() const noexcept { return active_.load(std::memory_order_acquire); }

  // In a child of fork(): only the forking thread exists. The ticker is gone and the mutex may
  // have been held by a parent thread (so may the thread list: it is not touched here).
  void forget_parent_after_fork() noexcept {
    active_.store(false, std::memory_order_relaxed);
    new (&ticker_) std::thread();
    new (&mutex_) std::mutex();
  }

  // Registers the calling thread: its stack bounds (into `thread_context`, the thread's own
  // execution context; fibers carry theirs), ring, scratch space, CPU timer. Called at its first
  // transaction (or the first switch to a fiber with one), never from the handler. Returns
  // nullptr on allocation failure.
  thread_sampler* register_current_thread(active_state& thread_context, int thread_id) noexcept {
    if (t_sampler != nullptr) return t_sampler;
    try {
      auto ts = std::make_unique<thread_sampler>();
      ts->thread_id = thread_id;
      ts->running = &t_running_context;
      // Before t_sampler is published below: no handler reads it earlier.
      if (thread_context.stack.highest == 0) thread_context.stack = current_thread_stack();
      ts->max_depth = settings_.max_depth;
      ts->scratch_pcs.reset(new std::uintptr_t[ts->max_depth]);
      ts->scratch_frames.reset(new std::uintptr_t[ts->max_depth]);
      std::lock_guard lock(mutex_);
      if (!free_rings_.empty() && free_rings_.back()->capacity_bytes() >= settings_.ring_bytes) {
        ts->ring = std::move(free_rings_.back());
        free_rings_.pop_back();
      } else {
        ts->ring = std::make_unique<sample_ring>(settings_.ring_bytes);
      }
      if (active() && settings_.mode == sampling_mode::cpu) create_cpu_timer(*ts);
      thread_sampler* raw = ts.get();
      threads_.push_back(std::move(ts));
      std::atomic_signal_fence(std::memory_order_seq_cst);
      t_sampler = raw;  // from here on, the handler records this thread's samples
      return raw;
    } catch (...) {
      return nullptr;
    }
  }

  // At thread exit. SIGPROF is blocked while the thread detaches itself, so no handler can run
  // half-way through; the ring stays until the collector has drained it.
  void unregister_current_thread() noexcept {
    thread_sampler* ts = t_sampler;
    if (ts == nullptr) return;
    sigset_t block, previous;
    sigemptyset(&block);
    sigaddset(&block, SIGPROF);
    pthread_sigmask(SIG_BLOCK, &block, &previous);
    t_sampler = nullptr;
    {
      std::lock_guard lock(mutex_);
      delete_cpu_timer(*ts);
      ts->exited.store(true, std::memory_order_release);
    }
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }

  // CPU mode: a context with a transaction starts running on the calling thread (armed), or
  // the thread left its outermost transaction (disarmed); cpu_timer.hpp.
  void arm_cpu_timer(bool armed) noexcept { detail::arm_cpu_timer(t_sampler, armed); }

  // Collector: visits every sample in every ring, then recycles the rings of exited threads.
  template <class Visit>
  std::size_t drain(Visit&& visit) {
    std::lock_guard lock(mutex_);
    std::size_t total = 0;
    for (auto& ts : threads_) total += ts->ring->drain(visit);
    for (auto it = threads_.begin(); it != threads_.end();) {
      if ((*it)->exited.load(std::memory_order_acquire)) {
        total += (*it)->ring->drain(visit);  // anything pushed before it exited
        if (free_rings_.size() < 64) free_rings_.push_back(std::move((*it)->ring));
        it = threads_.erase(it);
      } else {
        ++it;
      }
    }
    return total;
  }

  // Collector: the drop logs of every ring (drops are rare; this is for the profile metadata).
  template <class Visit>
  void visit_drops(Visit&& visit) {
    std::lock_guard lock(mutex_);
    for (auto& ts : threads_) ts->ring->visit_drop_log(visit);
  }

 private:
  // Wall mode, once per tick on the ticker thread: the threads to signal.
  void collect_wall_targets(std::vector<int>& targets) noexcept {
    std::lock_guard lock(mutex_);
    for (auto& ts : threads_) {
      if (ts->exited.load(std::memory_order_relaxed)) continue;
      // Fiber contexts are recycled, never freed (record/fiber_registry.hpp), and a thread's own context is
      // freed only after it unregistered (under mutex_): `current` is safe to read even if
      // the thread switches away from it right now, which at worst costs one signal that
      // its handler counts as outside a transaction.
      const active_state* current = ts->running->load(std::memory_order_relaxed);
      if (current != nullptr && current->txn_id.load(std::memory_order_relaxed) != 0) targets.push_back(ts->thread_id);
    }
  }

  std::mutex mutex_;
  settings settings_;
  std::vector<std::unique_ptr<thread_sampler>> threads_;
  std::vector<std::unique_ptr<sample_ring>> free_rings_;
  std::thread ticker_;
  std::atomic<bool> stop_ticking_{false};
  std::atomic<bool> active_{false};
  bool handler_installed_ = false;
};

}  // namespace spanprof::detail
