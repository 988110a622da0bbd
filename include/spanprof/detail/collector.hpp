// spanprof: the collector thread — takes finished transactions and writes their profiles.
//
// NOT ASYNC-SIGNAL-SAFE. Everything slow lives here so application threads never wait on I/O:
// they push a finished record onto a lock-free stack and, only if the collector sleeps, wake it.
#pragma once

#include <pthread.h>

#include <string>
#include <thread>

#include "output.hpp"
#include "runtime.hpp"
#include "writers/chrome_trace.hpp"
#include "writers/sentry_transaction.hpp"

namespace spanprof::detail {

class collector {
 public:
  explicit collector(runtime& rt) : rt_(rt), process_(process_info::current()) {}

  // The thread body. Returns after stop_requested once every queued transaction is written.
  void run() noexcept {
    pthread_setname_np(pthread_self(), "spanprof-collect");
    if (rt_.cfg.formats != output_format::none) ensure_output_folder();
    for (;;) {
      if (drain() != 0) continue;
      if (rt_.stop_requested.load(std::memory_order_acquire)) {
        // Final drain: stop new arrivals, wait for finishes already past the check (a handful
        // of instructions each), then empty the queue one last time.
        rt_.accepting.store(false, std::memory_order_seq_cst);
        while (rt_.finishes_in_flight.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
        while (drain() != 0) {
        }
        return;
      }
      sleep_until_woken();
    }
  }

 private:
  std::size_t drain() noexcept {
    transaction_record* batch = reverse_chain(rt_.finished.take_all());
    std::size_t count = 0;
    if (batch != nullptr) rt_.clock.refine();
    while (batch != nullptr) {
      transaction_record* next = batch->next;
      write_profiles(*batch);
      rt_.pending_finished.fetch_sub(1, std::memory_order_relaxed);
      rt_.recycle(batch);
      batch = next;
      ++count;
    }
    return count;
  }

  void sleep_until_woken() noexcept {
    const std::uint32_t seen = rt_.wake_word.load(std::memory_order_relaxed);
    rt_.collector_sleeping.store(true, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with runtime::wake_collector
    if (rt_.finished.empty() && !rt_.stop_requested.load(std::memory_order_relaxed)) {
      // Work mostly arrives by this poll: finishes wake us only when a batch has piled up.
      futex_wait(rt_.wake_word, seen, runtime::collector_poll_ns);
    }
    rt_.collector_sleeping.store(false, std::memory_order_relaxed);
  }

  bool ensure_output_folder() noexcept {
    if (folder_.is_open()) return true;
    try {
      std::string error;
      if (folder_.open(rt_.cfg.output_dir, error)) {
        folder_failing_ = false;
        return true;
      }
      // One report per failing spell, not one per transaction.
      if (!folder_failing_) rt_.report(error_kind::output_unavailable, error + "; profiles are not written");
      folder_failing_ = true;
    } catch (...) {
    }
    return false;
  }

  void write_profiles(const transaction_record& rec) noexcept {
    const config& cfg = rt_.cfg;
    bump(rt_.stats.transactions_collected);
    bump(rt_.stats.spans_started, rec.spans.size() > 0 ? rec.spans.size() - 1 : 0);
    bump(rt_.stats.spans_dropped, rec.counters.spans_dropped_over_cap);
    bump(rt_.stats.spans_auto_closed, rec.counters.spans_auto_closed);
    bump(rt_.stats.spans_closed_out_of_order, rec.counters.spans_closed_out_of_order);
    std::uint64_t truncated = 0;
    for (std::size_t i = 0; i < rec.spans.size(); ++i) {
      truncated += rec.spans[i].description.truncated() ? 1 : 0;
    }
    bump(rt_.stats.strings_truncated, truncated);
    if (cfg.formats == output_format::none) return;
    if (!ensure_output_folder()) {
      bump(rt_.stats.transactions_dropped);
      return;
    }
    try {
      const finished_transaction txn{rec, rt_.clock.converter(), rt_.clock, process_, cfg};
      const std::string stem = safe_file_stem(txn.name()) + "-" + to_hex(rec.event_id).text;
      json_text_stats text_stats;
      bool all_written = true;
      if (has_format(cfg.formats, output_format::chrome_trace)) {
        all_written &= write_file(stem + ".trace.json", write_chrome_trace(txn, text_stats));
      }
      if (has_format(cfg.formats, output_format::sentry_transaction)) {
        all_written &= write_file(stem + ".transaction.json", write_sentry_transaction(txn, text_stats));
      }
      bump(rt_.stats.invalid_utf8_repaired, text_stats.utf8_repaired);
      if (all_written) bump(rt_.stats.transactions_written); else bump(rt_.stats.transactions_dropped);
    } catch (const std::exception& e) {
      bump(rt_.stats.transactions_dropped);
      rt_.report(error_kind::write_failed, std::string("spanprof: a profile could not be built: ") + e.what());
    }
  }

  bool write_file(const std::string& name, const std::string& content) {
    std::string error;
    if (folder_.write_atomically(name, content, error)) {
      bump(rt_.stats.files_written);
      return true;
    }
    rt_.report(error_kind::write_failed, error);
    // The folder may have been removed or remounted: reopen it on the next transaction.
    folder_.close();
    return false;
  }

  runtime& rt_;
  process_info process_;
  output_folder folder_;
  bool folder_failing_ = false;
};

}  // namespace spanprof::detail
