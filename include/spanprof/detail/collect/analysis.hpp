// spanprof: what the collector works out for one finished transaction before the writers run —
// its samples symbolized into one frame table, and gap filling's derived spans
// (transaction_analysis, in writers/finished_transaction.hpp).
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only. The symbolizer and the gap-filling engine keep
// their caches and scratch space between transactions; this file only joins them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../record/transaction_record.hpp"  // txn_id_of
#include "../gapfill/gapfill.hpp"
#include "../symbolize/debug_images.hpp"
#include "../symbolize/frames.hpp"
#include "../symbolize/module_map.hpp"
#include "../symbolize/symbolizer.hpp"
#include "../writers/finished_transaction.hpp"

namespace spanprof::detail {

class transaction_analyzer {
 public:
  explicit transaction_analyzer(symbolizer_options options) : symbolizer_(std::move(options)) {}

  // Follows dlopen/dlclose; the collector calls it every time it drains the rings, so a module
  // unloaded later is still known for the samples taken while it was there.
  void observe_modules(std::int64_t now_ns) { symbolizer_.refresh(now_ns); }

  void analyze(const finished_transaction& txn, transaction_analysis& out) {
    symbolize(txn, out);
    fill_gaps(txn, out);
  }

  // The two halves of analyze(), public so tests and benchmarks can run gap filling on a frame
  // table they built themselves, and time each half alone.
  void symbolize(const finished_transaction& txn, transaction_analysis& out) {
    out.frames.clear();
    out.stack_frames.clear();
    out.stack_begin.clear();
    out.images.clear();
    frame_index_.clear();
    symbolize_samples(txn, out);
  }

 private:
  void symbolize_samples(const finished_transaction& txn, transaction_analysis& out) {
    std::vector<const module_info*> modules_used;
    out.stack_begin.push_back(0);
    for (const collected_sample& sample : txn.sampled.samples) {
      const std::int64_t t_ns = txn.ticks.to_ns(sample.t_ticks);
      for (std::size_t k = 0; k < sample.pcs.size(); ++k) {
        const resolved_address resolved = symbolizer_.resolve(sample.pcs[k], t_ns, /*is_return_address=*/k > 0);
        if (resolved.module != nullptr &&
            std::find(modules_used.begin(), modules_used.end(), resolved.module) == modules_used.end()) {
          modules_used.push_back(resolved.module);
        }
        for (const symbolized_frame& f : resolved.frames) out.stack_frames.push_back(intern(resolved, f, out));
      }
      out.stack_begin.push_back(static_cast<std::uint32_t>(out.stack_frames.size()));
    }
    for (const module_info* m : modules_used) out.images.push_back(debug_image_of(*m));
  }

  // One entry per distinct (address, function, file, line, inlined): frames are compared by
  // index downstream, and the writers need each address.
  std::uint32_t intern(const resolved_address& at, const symbolized_frame& f, transaction_analysis& out) {
    key_.clear();
    fmt::format_to(std::back_inserter(key_), "{:x}|{}|{}|{}|{}", at.instruction_addr, f.function, f.file, f.line,
                   f.inlined ? 1 : 0);
    if (auto it = frame_index_.find(key_); it != frame_index_.end()) return it->second;
    profile_frame pf;
    pf.function = std::string(f.function);
    pf.file = std::string(f.file);
    pf.line = f.line;
    pf.quality = f.quality;
    pf.inlined = f.inlined;
    pf.module = at.module;
    pf.instruction_addr = at.instruction_addr;
    pf.relative_addr = at.relative_addr;
    pf.in_app = at.module != nullptr && at.module->in_app;
    const auto index = static_cast<std::uint32_t>(out.frames.size());
    out.frames.push_back(std::move(pf));
    frame_index_.emplace(key_, index);
    return index;
  }

 public:
  // Runs the gap-filling engine over txn's spans and samples, given out.frames and out's stacks.
  void fill_gaps(const finished_transaction& txn, transaction_analysis& out) {
    namespace gf = gapfill;
    spans_.clear();
    for (std::size_t i = 0; i < txn.span_count(); ++i) {
      const span_record& s = txn.span(i);
      gf::span_input in;
      in.id = s.id;
      in.parent_id = s.parent_id;
      in.ctx_id = s.ctx_id;
      in.begin_ns = txn.begin_ns(i);
      in.open = s.end_ticks.load(std::memory_order_relaxed) == 0;
      in.end_ns = in.open ? in.begin_ns : txn.end_ns(i);
      in.op = s.op.view();
      in.description = i == 0 ? txn.name() : s.description.view();
      in.status = status_name(s.status.load(std::memory_order_relaxed));
      if (s.site != nullptr) {
        in.callsite_function = s.site->function;
        in.callsite_file = s.site->file;
        in.callsite_line = s.site->line;
      }
      in.anchor_fp = s.anchor_fp;
      in.auto_closed = (s.flags.load(std::memory_order_relaxed) & span_flag_auto_closed) != 0;
      spans_.push_back(in);
    }
    frames_.clear();
    for (const profile_frame& f : out.frames) {
      gf::frame g;
      g.function = f.function;
      g.file = f.file;
      g.module = f.module != nullptr ? std::string_view(f.module->path) : std::string_view();
      g.line = f.line;
      g.inlined = f.inlined;
      frames_.push_back(g);
    }
    samples_.clear();
    const auto& collected = txn.sampled.samples;
    for (std::size_t i = 0; i < collected.size(); ++i) {
      const collected_sample& c = collected[i];
      gf::sample_input in;
      in.t_ns = txn.ticks.to_ns(c.t_ticks);
      in.seq = c.seq;
      in.ctx_id = c.ctx_id;
      in.txn_id = txn_id_of(txn.rec);
      in.span_id = c.span_id;
      in.tid = c.tid;
      in.weight = c.weight;
      in.anchor_idx = c.anchor_idx;
      in.flags = c.flags;
      in.mode = c.mode == 1 ? gf::sample_mode::cpu : gf::sample_mode::wall;
      in.stack = out.stack_of(i);
      samples_.push_back(in);
    }
    drops_.clear();
    drop_entries_.clear();
    for (const drop_log_entry& d : txn.sampled.drop_log) drop_entries_.push_back({txn.ticks.to_ns(d.t_ticks), d.ctx_id});
    if (txn.sampled.dropped != 0) {
      const std::uint64_t logged = drop_entries_.size();
      drops_.push_back({static_cast<std::uint32_t>(txn.rec.thread_id), drop_entries_,
                        txn.sampled.dropped > logged ? txn.sampled.dropped - logged : 0});
    }
    collect_on_thread_intervals(txn);
    gf::transaction_input input;
    input.txn_id = txn_id_of(txn.rec);
    input.root_span_id = txn.span(0).id;
    input.mode = txn.cfg.mode == sampling_mode::cpu ? gf::sample_mode::cpu : gf::sample_mode::wall;
    input.sampling_interval_ns = 1'000'000'000 / static_cast<std::int64_t>(txn.cfg.sample_rate_hz);
    input.spans = spans_;
    input.samples = samples_;
    input.frames = frames_;
    input.drops = drops_;
    input.contexts = contexts_;
    gf::config cfg;
    cfg.max_samples_per_txn = 0;  // the collector already capped them
    gap_filler_.run(input, cfg, out.gaps);
  }

 private:
  // The times the transaction's context ran, from its fiber switch events (transaction_record.hpp): it
  // begins on-thread on the thread it was opened on, each suspend ends an interval, each resume
  // starts one. Without switches it ran throughout and the engine needs no entry; with them,
  // the time between is the "suspended" gap reason instead of unexplained time.
  void collect_on_thread_intervals(const finished_transaction& txn) {
    on_thread_.clear();
    contexts_.clear();
    const std::size_t count = txn.rec.switches.size();
    if (count == 0) return;
    std::int64_t begin_ns = txn.begin_ns(0);
    auto tid = static_cast<std::uint32_t>(txn.rec.thread_id);
    bool on_thread = true;
    for (std::size_t i = 0; i < count; ++i) {
      const fiber_switch_event& e = txn.rec.switches[i];
      const std::int64_t t_ns = txn.ticks.to_ns(e.t_ticks);
      if (e.kind == fiber_switch_kind::suspend && on_thread) {
        on_thread_.push_back({begin_ns, t_ns, tid});
        on_thread = false;
      } else if (e.kind == fiber_switch_kind::resume && !on_thread) {
        begin_ns = t_ns;
        tid = e.tid;
        on_thread = true;
      }
    }
    if (on_thread) on_thread_.push_back({begin_ns, txn.end_ns(0), tid});
    // An empty list would mean "a thread, always on-thread": a transaction suspended for good
    // still gets an interval, if an empty one.
    if (on_thread_.empty()) on_thread_.push_back({begin_ns, begin_ns, tid});
    contexts_.push_back({txn.rec.ctx_id, on_thread_});
  }

  symbolizer symbolizer_;
  gapfill::gap_filler gap_filler_;
  std::vector<gapfill::on_thread_interval> on_thread_;
  std::vector<gapfill::context_input> contexts_;
  std::unordered_map<std::string, std::uint32_t> frame_index_;
  std::string key_;
  std::vector<gapfill::span_input> spans_;
  std::vector<gapfill::frame> frames_;
  std::vector<gapfill::sample_input> samples_;
  std::vector<gapfill::drop_entry> drop_entries_;
  std::vector<gapfill::drop_report> drops_;
};

}  // namespace spanprof::detail
