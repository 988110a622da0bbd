// spanprof: speedscope's own file format (<stem>.speedscope.json), one file per transaction.
//
// One shared frame table; per track (today: per thread) an *evented* profile with the spans —
// instrumented and gap filling's derived spans, as exact open/close events — and a *sampled*
// profile with the symbolized stacks, root first, weighted in nanoseconds. All times are
// nanoseconds since the transaction began. See ../shared/docs/formats.md §3.
//
// speedscope's importer (not its schema) rejects a `C` that does not close the frame on top,
// an `at` that decreases and an `O` left open, so the events are built by nest_intervals(),
// which makes any set of intervals properly nested instead of trusting the input to be.
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once


#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "../core/text.hpp"
#include "finished_transaction.hpp"
#include "json.hpp"
#include "nesting.hpp"

namespace spanprof::detail {

// The label of instrumented span i wherever a writer shows spans as frames: the transaction's
// name for the root, else "op description" (just one of them if the other is empty), with the
// truncation marker when a cap cut the description.
inline std::string span_frame_label(const finished_transaction& txn, std::size_t i) {
  const span_record& span = txn.span(i);
  if (i == 0) {
    std::string label(txn.name());
    if (span.description.original_size > span.description.view().size()) label += "\xE2\x80\xA6[truncated]";
    return label;
  }
  std::string label(span.op.view());
  const std::string_view description = span.description.view();
  if (!description.empty()) {
    if (!label.empty()) label += ' ';
    label += description;
    if (span.description.original_size > description.size()) label += "\xE2\x80\xA6[truncated]";
  }
  if (label.empty()) label = "span";
  return label;
}

// A frame of speedscope's shared table.
struct speedscope_frame {
  std::string name;
  std::string file;
  std::uint32_t line = 0;
  friend bool operator<(const speedscope_frame& a, const speedscope_frame& b) {
    return std::tie(a.name, a.file, a.line) < std::tie(b.name, b.file, b.line);
  }
};

// Interns frames by (name, file, line): speedscope merges call-tree nodes by frame index, so a
// function seen at several addresses of one line must be one frame.
class speedscope_frame_table {
 public:
  std::uint32_t intern(speedscope_frame f) {
    auto [it, inserted] = index_.try_emplace(f, static_cast<std::uint32_t>(frames_.size()));
    if (inserted) frames_.push_back(std::move(f));
    return it->second;
  }
  [[nodiscard]] const std::vector<speedscope_frame>& frames() const noexcept { return frames_; }

 private:
  std::map<speedscope_frame, std::uint32_t> index_;
  std::vector<speedscope_frame> frames_;
};

// One profile pair (evented + sampled) per track: the transaction's thread — or, for a
// transaction on a fiber, the fiber's track (transaction_track), which every span and sample of
// the fiber goes to, whichever thread ran it — plus any other thread its samples came from.
struct speedscope_track {
  std::uint64_t key = 0;
  std::string name;
  std::vector<timed_interval> spans;
  std::vector<std::vector<std::uint32_t>> samples;  // root first
  std::vector<std::uint64_t> weights_ns;
};

struct speedscope_stats {
  std::uint64_t clamped_intervals = 0;  // spans that overlapped a sibling and were cut
  std::uint64_t empty_samples = 0;      // no frames: left out of the sampled profile
};

inline std::string write_speedscope(const finished_transaction& txn, json_text_stats& stats,
                                    speedscope_stats* out_stats = nullptr) {
  speedscope_stats local;
  speedscope_stats& sstats = out_stats != nullptr ? *out_stats : local;
  const std::int64_t origin_ns = txn.begin_ns(0);
  const transaction_track own = transaction_track::of(txn.rec);
  const std::uint32_t txn_tid = own.tid;
  speedscope_frame_table table;
  std::vector<speedscope_track> tracks;
  std::unordered_map<std::uint64_t, std::size_t> track_index;
  auto track = [&](std::uint32_t thread_tid) -> speedscope_track& {
    const std::uint32_t tid = txn.rec.on_fiber || thread_tid == 0 ? txn_tid : thread_tid;
    auto [it, inserted] = track_index.try_emplace(tid, tracks.size());
    if (inserted) {
      speedscope_track t;
      t.key = tid;
      if (tid != txn_tid) t.name = fmt::format("thread {}", tid);
      else if (txn.rec.on_fiber) t.name = own.label;
      else t.name = fmt::format("{} ({})", own.label, tid);
      tracks.push_back(std::move(t));
    }
    return tracks[it->second];
  };
  (void)track(txn_tid);  // the transaction's thread comes first, and always has a span profile

  std::uint32_t order = 0;
  for (std::size_t i = 0; i < txn.span_count(); ++i) {
    const span_record& span = txn.span(i);
    speedscope_frame f{span_frame_label(txn, i), "", 0};
    if (span.site != nullptr && span.site->file != nullptr) {
      f.file = span.site->file;
      f.line = static_cast<std::uint32_t>(span.site->line);
    }
    track(txn_tid).spans.push_back({txn.begin_ns(i) - origin_ns, txn.end_ns(i) - origin_ns, table.intern(std::move(f)), order++});
  }
  const std::int64_t interval_ns = 1'000'000'000 / static_cast<std::int64_t>(std::max(1u, txn.cfg.sample_rate_hz));
  if (txn.analysis != nullptr) {
    const transaction_analysis& a = *txn.analysis;
    for (const gapfill::derived_span& d : a.gaps.derived_spans) {
      speedscope_frame f{d.description.empty() ? std::string(d.op()) : d.description, d.code_filepath, d.code_lineno};
      // Derived spans are listed parents first, after every instrumented span: `order` keeps
      // a derived span that shares both edges with its parent inside it.
      track(d.tid).spans.push_back({d.begin_ns - origin_ns, d.end_ns - origin_ns,
                                                           table.intern(std::move(f)), order++});
    }
    std::vector<std::uint32_t> frame_of(a.frames.size(), 0);
    for (std::size_t k = 0; k < a.frames.size(); ++k) {
      const profile_frame& pf = a.frames[k];
      speedscope_frame f;
      f.name = pf.function.empty() ? fmt::format("{}+{:#x}", pf.module != nullptr ? pf.module->file_name() : std::string_view("unknown"),
                                                 pf.relative_addr)
                                   : pf.function;
      if (pf.inlined) f.name += " [inlined]";
      f.file = pf.file;
      f.line = pf.line;
      frame_of[k] = table.intern(std::move(f));
    }
    for (std::size_t n = 0; n < txn.sampled.samples.size(); ++n) {
      const collected_sample& sample = txn.sampled.samples[n];
      const auto stack = a.stack_of(n);
      if (stack.empty()) {
        ++sstats.empty_samples;
        continue;
      }
      std::vector<std::uint32_t> root_first;
      root_first.reserve(stack.size());
      for (std::size_t k = stack.size(); k-- > 0;) root_first.push_back(frame_of[stack[k]]);
      speedscope_track& t = track(sample.tid);
      t.samples.push_back(std::move(root_first));
      // A sample stands for the time since the previous one: its weight (1 + timer overruns
      // in CPU mode) intervals.
      t.weights_ns.push_back(static_cast<std::uint64_t>(std::max<std::uint32_t>(1, sample.weight)) *
                             static_cast<std::uint64_t>(interval_ns));
    }
  }

  std::string out;
  out.reserve(1024 + table.frames().size() * 96 + txn.sampled.samples.size() * 64);
  json_writer w(out, stats);
  w.begin_object();
  w.key("$schema").plain_string("https://www.speedscope.app/file-format-schema.json");
  w.key("name").string(txn.name());
  w.key("exporter").value_with([](std::string& o) {
    o += "\"spanprof@";
    o += spanprof_version;
    o += '"';
  });
  w.key("activeProfileIndex").number(0);
  w.key("shared").begin_object().key("frames").begin_array();
  for (const speedscope_frame& f : table.frames()) {
    w.begin_object();
    w.key("name").string(f.name);
    if (!f.file.empty()) {
      w.key("file").string(f.file);
      if (f.line != 0) w.key("line").number(f.line);
    }
    w.end_object();
  }
  w.end_array().end_object();
  w.key("profiles").begin_array();
  const std::int64_t txn_end_ns = txn.end_ns(0) - origin_ns;
  for (const speedscope_track& t : tracks) {
    if (!t.spans.empty()) {
      const auto events = nest_intervals(t.spans, sstats.clamped_intervals);
      std::int64_t start_ns = 0, end_ns = txn_end_ns;
      for (const evented_event& e : events) {
        start_ns = std::min(start_ns, e.at_ns);
        end_ns = std::max(end_ns, e.at_ns);
      }
      w.begin_object();
      w.key("type").plain_string("evented");
      w.key("name").string("spans: " + t.name);
      w.key("unit").plain_string("nanoseconds");
      w.key("startValue").number(start_ns);
      w.key("endValue").number(end_ns);
      w.key("events").begin_array();
      for (const evented_event& e : events) {
        w.begin_object();
        w.key("type").plain_string(e.open ? "O" : "C");
        w.key("frame").number(e.frame);
        w.key("at").number(e.at_ns);
        w.end_object();
      }
      w.end_array().end_object();
    }
    if (!t.samples.empty()) {
      std::uint64_t total_ns = 0;
      for (const std::uint64_t weight : t.weights_ns) total_ns += weight;
      w.begin_object();
      w.key("type").plain_string("sampled");
      w.key("name").string("samples: " + t.name);
      w.key("unit").plain_string("nanoseconds");
      w.key("startValue").number(0);
      w.key("endValue").number(total_ns);
      w.key("samples").begin_array();
      for (const std::vector<std::uint32_t>& sample : t.samples) {
        w.begin_array();
        for (const std::uint32_t frame : sample) w.number(frame);
        w.end_array();
      }
      w.end_array();
      w.key("weights").begin_array();
      for (const std::uint64_t weight : t.weights_ns) w.number(weight);
      w.end_array().end_object();
    }
  }
  w.end_array();
  w.end_object();
  out += '\n';
  return out;
}

}  // namespace spanprof::detail
