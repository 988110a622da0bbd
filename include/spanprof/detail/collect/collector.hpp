// spanprof: the collector thread — takes finished transactions and writes their profiles.
//
// NOT ASYNC-SIGNAL-SAFE. Everything slow lives here so application threads never wait on I/O:
// they push a finished record onto a lock-free stack and, only if the collector sleeps, wake it.
#pragma once

#include <pthread.h>

#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "analysis.hpp"
#include "output.hpp"
#include "sample_buckets.hpp"
#include "../record/fiber_registry.hpp"
#include "../engine/runtime.hpp"
#include "../sample/unwind_dwarf.hpp"
#include "../writers/registry.hpp"

namespace spanprof::detail {

class collector {
 public:
  explicit collector(runtime& rt)
      : rt_(rt), process_(process_info::current()), analyzer_(symbolizer_options{.in_app_modules = rt.cfg.in_app_modules}) {}

  // The thread body. Returns after stop_requested once every queued transaction is written.
  void run() noexcept {
    pthread_setname_np(pthread_self(), "spanprof-writer");  // at most 15 characters
    if (rt_.cfg.formats != output_format::none) ensure_output_folder();
    for (;;) {
      if (drain() != 0) continue;
      drain_samples();
      flush_aggregates(/*all=*/false);  // idle: what the rate limit held back
      if (rt_.stop_requested.load(std::memory_order_acquire)) {
        // Final drain: stop new arrivals, wait for finishes already past the check (a handful
        // of instructions each), then empty the queue one last time.
        rt_.accepting.store(false, std::memory_order_seq_cst);
        while (rt_.finishes_in_flight.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
        do {
          drain_samples();
        } while (drain() != 0);
        discard_orphans(/*all=*/true);
        flush_aggregates(/*all=*/true);
        return;
      }
      sleep_until_woken();
    }
  }

 private:
  // Copies every sample out of the rings into its transaction's bucket. A transaction's own
  // thread pushes its samples before it finishes the transaction (the handler runs to
  // completion on that thread first), so by the time a finished record is taken from the
  // queue, a drain has everything it needs. NOT ASYNC-SIGNAL-SAFE.
  void drain_samples() noexcept {
    try {
      analyzer_.observe_modules(monotonic_ns());
    } catch (...) {
    }
    drain_rings();
    discard_orphans(/*all=*/false);
  }

  // The rings into the buckets, and nothing else: safe while a transaction is being written
  // (it touches neither the symbolizer nor the analysis that transaction's writers read), so
  // write_profiles calls it between its stages: writing one large transaction under a
  // sanitizer or on a busy machine can outlast what a ring holds (sampler::ring_window_ms),
  // and every sample that does not fit is lost.
  void drain_rings() noexcept {
    try {
      dwarf_unwinder_.note_batch_start();
      rt_.stack_sampler.drain([this](const sample_record& r) {
        transaction_samples* into = buckets_.admit(r.txn_id, r.t_ticks);
        if (into == nullptr) return;
        collected_sample s;
        s.t_ticks = r.t_ticks;
        s.seq = r.seq;
        s.ctx_id = r.ctx_id;
        s.mode = r.mode;
        s.span_id = r.span_id;
        s.tid = r.tid;
        s.weight = r.weight;
        s.anchor_idx = r.anchor_idx;
        s.flags = r.flags;
        if ((r.flags & sample_flag_raw_stack) != 0) {
          unwind_raw_stack(r, s);
        } else {
          s.pcs.assign(r.pcs(), r.pcs() + r.depth);
        }
        sample_buckets::push(*into, std::move(s));
      });
    } catch (...) {
      // Out of memory while copying: the samples left in the rings are retried next time.
    }
  }

  // The DWARF unwinder's records carry registers and a stack copy: walk them now, while the
  // modules they ran in are most likely still loaded.
  void unwind_raw_stack(const sample_record& r, collected_sample& s) {
    const std::size_t max_depth = rt_.cfg.max_stack_depth;
    if (unwind_pcs_.size() < max_depth) {
      unwind_pcs_.resize(max_depth);
      unwind_frames_.resize(max_depth);
    }
    const captured_stack stack = dwarf_unwinder_.unwind(r, unwind_pcs_.data(), unwind_frames_.data(), max_depth);
    const std::uintptr_t anchor_fp = r.pcs()[raw_stack_layout::anchor_index];
    s.anchor_idx = find_anchor(unwind_frames_.data(), stack.depth, anchor_fp);
    s.pcs.assign(unwind_pcs_.data(), unwind_pcs_.data() + stack.depth);
    s.flags = static_cast<std::uint8_t>(s.flags & ~(sample_flag_raw_stack | sample_flag_stack_top));
    if (stack.truncated) {
      s.flags |= sample_flag_truncated;
      g_counters.samples_truncated.fetch_add(1, std::memory_order_relaxed);
    }
  }

  void discard_orphans(bool all) noexcept {
    bump(rt_.stats.samples_orphaned, buckets_.discard_orphans(rt_.clock.converter(), all));
  }

  // The samples of `rec`, taken out of their bucket, in time order, with the drops that hit
  // its context while it ran.
  transaction_samples take_samples(const transaction_record& rec) {
    transaction_samples out = buckets_.take(txn_id_of(rec));
    const std::int64_t begin = rec.spans[0].begin_ticks;
    const std::int64_t end = rec.spans[0].end_ticks.load(std::memory_order_relaxed);
    rt_.stack_sampler.visit_drops([&](const drop_log_entry& drop) {
      if (drop.ctx_id == rec.ctx_id && drop.t_ticks >= begin && drop.t_ticks <= end) {
        ++out.dropped;
        out.drop_log.push_back(drop);
      }
    });
    return out;
  }

  // Writes every finished transaction. The rings are drained AFTER the batch is taken: a
  // transaction's thread pushes its samples before it finishes, so only then do the buckets
  // hold all of each batched transaction's samples (draining first lost the samples of one
  // that finished in between).
  std::size_t drain() noexcept {
    transaction_record* batch = reverse_chain(rt_.finished.take_all());
    std::size_t count = 0;
    if (batch != nullptr) {
      rt_.clock.refine();
      drain_samples();
    }
    while (batch != nullptr) {
      transaction_record* next = batch->next;
      write_profiles(*batch);
      drain_samples();
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
    transaction_samples sampled;
    try {
      sampled = take_samples(rec);  // always: its bucket must go even if nothing is written
    } catch (...) {
    }
    if (cfg.formats == output_format::none) return;
    if (!ensure_output_folder()) {
      bump(rt_.stats.transactions_dropped);
      return;
    }
    try {
      finished_transaction txn{rec, rt_.clock.converter(), rt_.clock, process_, cfg, sampled};
      try {
        analyzer_.analyze(txn, analysis_);
        txn.analysis = &analysis_;
        drain_rings();
      } catch (const std::exception& e) {
        // The spans are still worth writing without frames and derived spans.
        rt_.report(error_kind::write_failed, std::string("spanprof: symbolizing or gap filling failed: ") + e.what());
      }
      const std::string stem = safe_file_stem(txn.name()) + "-" + to_hex(rec.event_id).text;
      json_text_stats text_stats;
      bool all_written = true;
      for (const format_entry& f : all_formats) {
        if (f.standalone && has_format(cfg.formats, f.format)) {
          all_written &= write_file(stem + std::string(f.extension), f.write(txn, text_stats));
          drain_rings();
        }
      }
      const bool wants_folded = has_format(cfg.formats, output_format::folded);
      const bool wants_svg = has_format(cfg.formats, output_format::flamegraph);
      if (wants_folded || wants_svg) {
        const folded_counts counts = fold_transaction(txn, text_stats);
        // No samples, no lines: an empty file is what flamegraph.pl ("No stack counts found")
        // and speedscope ("Unrecognized format") reject, so none is written. The SVG says
        // "no samples" instead.
        if (wants_folded && !counts.empty()) all_written &= write_file(stem + ".folded", write_folded(counts));
        if (wants_svg) {
          const std::string title = registry_detail::flamegraph_title(txn);
          all_written &= write_file(stem + ".svg", render_flamegraph_svg(counts, {.title = title}, text_stats));
        }
        std::uint64_t stacks_over_cap = 0, names_over_cap = 0;
        aggregates_.add(txn.name(), counts, stacks_over_cap, names_over_cap);
        bump(rt_.stats.aggregate_stacks_over_cap, stacks_over_cap);
        bump(rt_.stats.aggregate_names_over_cap, names_over_cap);
        flush_aggregates(/*all=*/false);
      }
      if (has_format(cfg.formats, output_format::sentry_envelope)) all_written &= write_envelope(stem, txn, text_stats);
      bump(rt_.stats.invalid_utf8_repaired, text_stats.utf8_repaired);
      if (all_written) bump(rt_.stats.transactions_written); else bump(rt_.stats.transactions_dropped);
    } catch (const std::exception& e) {
      bump(rt_.stats.transactions_dropped);
      rt_.report(error_kind::write_failed, std::string("spanprof: a profile could not be built: ") + e.what());
    }
  }

  // Rewrites the per-name aggregates that changed (rate-limited, see folded_aggregates::limits;
  // `all` at shutdown). Each file is replaced atomically, so a reader sees the old or the new.
  void flush_aggregates(bool all) noexcept {
    try {
      if (!aggregates_.any_dirty()) return;
      const bool wants_folded = has_format(rt_.cfg.formats, output_format::folded);
      const bool wants_svg = has_format(rt_.cfg.formats, output_format::flamegraph);
      aggregates_.flush(monotonic_ns(), all, [&](const folded_aggregates::aggregate& agg) {
        if (!ensure_output_folder()) return false;
        const folded_counts lines = agg.with_other();
        bool ok = true;
        if (wants_folded && !lines.empty()) ok &= write_file(agg.stem + ".aggregate.folded", write_folded(lines));
        if (wants_svg) {
          json_text_stats text_stats;
          const std::string title = fmt::format("{} ({} transactions)", agg.name, agg.transactions);
          ok &= write_file(agg.stem + ".aggregate.svg", render_flamegraph_svg(lines, {.title = title}, text_stats));
        }
        return ok;
      });
    } catch (const std::exception& e) {
      rt_.report(error_kind::write_failed, std::string("spanprof: an aggregate flame graph could not be built: ") + e.what());
    } catch (...) {
      // noexcept: nothing may escape into the collector loop; the aggregate stays dirty and is retried.
    }
  }

  // The .envelope file: the transaction event and, if Sentry would accept it, its profile.
  // What Sentry would have rejected is left out, counted and reported, never written.
  bool write_envelope(const std::string& stem, const finished_transaction& txn, json_text_stats& text_stats) {
    const sentry_envelope_result r =
        write_sentry_envelope(txn, next_profile_id(), txn.epoch_ns(monotonic_ns()), text_stats);
    const sentry_profile_stats& p = r.profile;
    // The name JSON-escaped: an error message is one line, whatever bytes the name holds.
    std::string about = "spanprof: transaction ";
    json_text_stats ignored;
    append_json_string(about, txn.name(), ignored);
    fmt::format_to(std::back_inserter(about), " ({})", to_hex(txn.rec.event_id).text);
    if (!r.problem.empty()) {
      rt_.report(error_kind::profile_trimmed, about + ": no envelope written: " + r.problem);
      return false;
    }
    if (!p.omitted_because.empty() && !txn.cfg.sampling) {
      // Sampling is off: no profile was asked for, and one warning per transaction would be noise.
    } else if (!p.omitted_because.empty()) {
      bump(rt_.stats.profiles_omitted);
      bump(rt_.stats.profile_samples_dropped, p.samples_taken);
      rt_.report(error_kind::profile_trimmed, about + ": envelope sent without a profile: " + p.omitted_because);
    } else if (p.samples_lost() != 0) {
      bump(rt_.stats.profile_samples_dropped, p.samples_lost());
      rt_.report(error_kind::profile_trimmed,
                 fmt::format("{}: {} of {} samples left out of its Sentry profile ({} outside the transaction, {} past "
                             "Sentry's 30 s, {} alone on their thread, {} over the 10 MiB limit)",
                             about, p.samples_lost(), p.samples_taken, p.outside_transaction, p.over_duration, p.lone_thread,
                             p.over_size));
    }
    return write_file(stem + ".envelope", r.envelope);
  }

  // A fresh uuid4 for each profile. Only the collector draws from this generator.
  trace_id next_profile_id() noexcept { return as_uuid4({profile_ids_.next(), profile_ids_.next()}); }

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
  dwarf_unwinder dwarf_unwinder_;
  transaction_analyzer analyzer_;
  transaction_analysis analysis_;
  std::vector<std::uintptr_t> unwind_pcs_, unwind_frames_;
  sample_buckets buckets_;
  output_folder folder_;
  bool folder_failing_ = false;
  folded_aggregates aggregates_;
  xoshiro256 profile_ids_;
};

}  // namespace spanprof::detail
