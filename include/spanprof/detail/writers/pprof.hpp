// spanprof: pprof's profile.proto (perftools.profiles.Profile), gzip-compressed: `<stem>.pb.gz`
// for `go tool pprof`, Pyroscope, Grafana, Parca. See ../shared/docs/formats.md §4. The wire
// encoding is protobuf_wire.hpp (why not libprotobuf: there).
//
// One Location per distinct pc: its Lines are the pc's inline chain, innermost first (as
// profile.proto asks: "the last entry is the caller"). Samples with the same stack and labels
// are merged; values are [samples/count, wall|cpu/nanoseconds] with each sample worth its
// weight × the sampling period. Labels carry the transaction, trace, span (id, op,
// description), thread and, for samples gap filling placed in a derived span, that span's name,
// so `go tool pprof -tagfocus=span_op=db.sql.query` selects a span's samples.
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "../core/text.hpp"
#include "finished_transaction.hpp"
#include "gzip.hpp"
#include "protobuf_wire.hpp"

namespace spanprof::detail {

// The Profile message under construction: string table and id tables.
class pprof_builder {
 public:
  explicit pprof_builder(json_text_stats& stats) : stats_(stats) { strings_.emplace_back(); }

  // Index of `text` in string_table, repaired to UTF-8 and with spanprof's truncation marker
  // when `original_size` says it was cut at a cap.
  std::int64_t string_index(std::string_view text, std::size_t original_size = 0) {
    scratch_.clear();
    if (append_utf8_repaired(scratch_, text)) ++stats_.utf8_repaired;
    if (original_size > text.size()) {
      scratch_ += "\xE2\x80\xA6[truncated from ";
      scratch_ += std::to_string(original_size);
      scratch_ += " bytes]";
    }
    auto [it, inserted] = string_ids_.try_emplace(scratch_, static_cast<std::int64_t>(strings_.size()));
    if (inserted) strings_.push_back(scratch_);
    return it->second;
  }

  [[nodiscard]] const std::vector<std::string>& strings() const noexcept { return strings_; }

 private:
  json_text_stats& stats_;
  std::vector<std::string> strings_;
  std::unordered_map<std::string, std::int64_t> string_ids_;
  std::string scratch_;
};

// The regular expression (RE2, matched against whole function names) that makes pprof drop
// spanprof's own frames and everything they call. Only used if such frames remain after the
// writer strips them from the leaf end, where the signal handler puts them.
inline constexpr std::string_view pprof_own_frames_regex = "spanprof::.*";

namespace pprof_parts {

namespace pw = protobuf_wire;

// A ValueType message: (type, unit) as string indexes.
inline std::string value_type(pprof_builder& strings, std::string_view type, std::string_view unit) {
  std::string vt;
  pw::append_int64_field(vt, 1, strings.string_index(type));
  pw::append_int64_field(vt, 2, strings.string_index(unit));
  return vt;
}

// Locations, Functions and Mappings, each added the first time a sample's stack names it.
//
// Mappings: one per module a kept frame lies in. pprof re-symbolizes a mapping (when it is not
// run with -symbolize=none) unless its flags say it is done. Function names: only if every
// location has a real symbol, so a module seen as bare offsets ("libfoo.so+0x1234") is left to
// pprof, which may find its symbols. Files, lines and inline frames: if any location has them
// from DWARF, the module's debug information was read, and its locations without lines
// (_start, assembly) would get none from pprof either.
class location_table {
 public:
  // `analysis` may be null (a transaction without samples): then no stack is ever appended.
  location_table(const transaction_analysis* analysis, pprof_builder& strings) : analysis_(analysis), strings_(strings) {
    if (analysis_ == nullptr) return;
    // The main executable first: pprof names the profile after its first mapping ("File: ...").
    for (const profile_frame& f : analysis_->frames) {
      if (f.module != nullptr && f.module->is_main_executable) {
        mapping_of_.emplace(f.module, 0);
        mappings_.push_back({1, f.module});
        break;
      }
    }
  }

  // Appends the location ids of one leaf-first stack, without spanprof's handler and the
  // kernel's signal trampoline at its leaf end (when they were unwound at all): they are not
  // the program's time (gap filling skips them the same way).
  void append_stack(std::span<const std::uint32_t> stack, std::vector<std::uint64_t>& locations) {
    const auto& frames = analysis_->frames;
    std::size_t first_kept = 0;
    while (first_kept < stack.size() && (gapfill::names::is_spanprof_frame(frames[stack[first_kept]].function) ||
                                         gapfill::names::is_signal_trampoline(frames[stack[first_kept]].function))) {
      ++first_kept;
    }
    run_.clear();
    for (std::size_t k = first_kept; k < stack.size(); ++k) {
      run_.push_back(stack[k]);
      // An inlined frame belongs to the same pc as the frame after it (analysis.hpp).
      if (frames[stack[k]].inlined && k + 1 < stack.size() &&
          frames[stack[k + 1]].instruction_addr == frames[stack[k]].instruction_addr) {
        continue;
      }
      locations.push_back(location_id(run_));
      run_.clear();
    }
  }

  void write_mappings(std::string& out) {
    std::string msg;
    for (const mapping_entry& entry : mappings_) {
      const module_info& m = *entry.module;
      msg.clear();
      pw::append_varint_field(msg, 1, entry.id);
      pw::append_varint_field(msg, 2, m.image_addr);
      pw::append_varint_field(msg, 3, m.image_addr + m.image_size);
      // The lowest PT_LOAD starts at file offset 0 in the ELF files linkers produce, and
      // memory_start is that segment's address.
      pw::append_varint_field(msg, 4, 0);
      pw::append_int64_field(msg, 5, strings_.string_index(m.path));
      if (!m.build_id_hex.empty()) pw::append_int64_field(msg, 6, strings_.string_index(m.build_id_hex));
      pw::append_varint_field(msg, 7, entry.functions ? 1 : 0);
      pw::append_varint_field(msg, 8, entry.dwarf ? 1 : 0);
      pw::append_varint_field(msg, 9, entry.dwarf ? 1 : 0);
      pw::append_varint_field(msg, 10, entry.dwarf ? 1 : 0);
      pw::append_bytes_field(out, 3, msg);
    }
  }

  [[nodiscard]] const std::string& locations_message() const noexcept { return locations_msg_; }
  [[nodiscard]] const std::string& functions_message() const noexcept { return functions_msg_; }
  // spanprof frames left inside a stack (not at its leaf end), which drop_frames then hides.
  [[nodiscard]] bool own_frames_remain() const noexcept { return own_frames_remain_; }

 private:
  struct mapping_entry {
    std::uint64_t id = 0;
    const module_info* module = nullptr;
    bool functions = true, dwarf = false;
  };

  // frames[run] of one pc: innermost first, its last entry the non-inlined function.
  std::uint64_t location_id(const std::vector<std::uint32_t>& run) {
    auto [it, inserted] = location_ids_.try_emplace(run, location_ids_.size() + 1);
    if (!inserted) return it->second;
    const profile_frame& outer = analysis_->frames[run.back()];
    std::string loc, line;
    pw::append_varint_field(loc, 1, it->second);
    pw::append_varint_field(loc, 2, mapping_id(outer));
    pw::append_varint_field(loc, 3, outer.instruction_addr);
    for (const std::uint32_t frame : run) {
      const profile_frame& f = analysis_->frames[frame];
      own_frames_remain_ = own_frames_remain_ || gapfill::names::is_spanprof_frame(f.function);
      line.clear();
      pw::append_varint_field(line, 1, function_id(f));
      pw::append_int64_field(line, 2, f.line);
      pw::append_bytes_field(loc, 4, line);
    }
    pw::append_bytes_field(locations_msg_, 4, loc);
    return it->second;
  }

  // 0 (no mapping) for a frame outside every known module.
  std::uint64_t mapping_id(const profile_frame& outer) {
    if (outer.module == nullptr) return 0;
    auto [m, added] = mapping_of_.try_emplace(outer.module, mappings_.size());
    if (added) mappings_.push_back({mappings_.size() + 1, outer.module});
    mapping_entry& entry = mappings_[m->second];
    const frame_quality q = outer.quality;
    entry.functions = entry.functions && (q == frame_quality::dwarf || q == frame_quality::symtab);
    entry.dwarf = entry.dwarf || q == frame_quality::dwarf;
    return entry.id;
  }

  // Functions by (name, file).
  std::uint64_t function_id(const profile_frame& f) {
    auto [it, inserted] = function_ids_.try_emplace({f.function, f.file}, function_ids_.size() + 1);
    if (inserted) {
      std::string msg;
      pw::append_varint_field(msg, 1, it->second);
      const std::int64_t name = strings_.string_index(f.function);
      pw::append_int64_field(msg, 2, name);
      // The symbolizer keeps only demangled names: the system name is the same string.
      pw::append_int64_field(msg, 3, name);
      if (!f.file.empty()) pw::append_int64_field(msg, 4, strings_.string_index(f.file));
      pw::append_bytes_field(functions_msg_, 5, msg);
    }
    return it->second;
  }

  const transaction_analysis* analysis_;
  pprof_builder& strings_;
  std::vector<mapping_entry> mappings_;
  std::unordered_map<const module_info*, std::size_t> mapping_of_;
  std::map<std::pair<std::string_view, std::string_view>, std::uint64_t> function_ids_;
  std::map<std::vector<std::uint32_t>, std::uint64_t> location_ids_;
  std::string functions_msg_, locations_msg_;
  std::vector<std::uint32_t> run_;
  bool own_frames_remain_ = false;
};

// (key, str, num) string indexes / number of one Label.
using label = std::tuple<std::int64_t, std::int64_t, std::int64_t>;

// The labels every sample carries: the transaction, trace, span (id, op, description), the
// derived span gap filling placed it in, thread and, on a fiber, the fiber (its track), so that
// -tagfocus=fiber=… selects one request whatever threads it ran on.
class sample_labeller {
 public:
  sample_labeller(const finished_transaction& txn, pprof_builder& strings)
      : txn_(txn),
        strings_(strings),
        key_transaction_(strings.string_index("transaction")),
        key_trace_(strings.string_index("trace_id")),
        key_span_(strings.string_index("span_id")),
        key_op_(strings.string_index("span_op")),
        key_description_(strings.string_index("span_description")),
        key_thread_(strings.string_index("thread_id")),
        key_derived_(strings.string_index("derived_span")),
        transaction_name_(strings.string_index(txn.name(), txn.span(0).description.original_size)),
        trace_id_(strings.string_index(to_hex(txn.rec.trace).text)),
        key_fiber_(txn.rec.on_fiber ? strings.string_index("fiber") : 0),
        fiber_name_(txn.rec.on_fiber ? strings.string_index(transaction_track::of(txn.rec).label) : 0) {
    for (std::size_t i = 0; i < txn.span_count(); ++i) span_index_.emplace(txn.span(i).id, i);
  }

  // The labels of one sample; `derived` is the derived span gap filling placed it in, if any.
  void append_labels(const collected_sample& s, const gapfill::derived_span* derived, std::vector<label>& labels) {
    labels.emplace_back(key_transaction_, transaction_name_, 0);
    labels.emplace_back(key_trace_, trace_id_, 0);
    if (s.span_id != 0) labels.emplace_back(key_span_, strings_.string_index(to_hex(s.span_id).text), 0);
    if (auto it = span_index_.find(s.span_id); it != span_index_.end()) {
      const span_record& span = txn_.span(it->second);
      labels.emplace_back(key_op_, strings_.string_index(span.op.view(), span.op.original_size), 0);
      if (it->second == 0) {
        labels.emplace_back(key_description_, transaction_name_, 0);
      } else if (!span.description.view().empty()) {
        labels.emplace_back(key_description_, strings_.string_index(span.description.view(), span.description.original_size), 0);
      }
    }
    if (derived != nullptr) labels.emplace_back(key_derived_, strings_.string_index(derived->description), 0);
    labels.emplace_back(key_thread_, 0, static_cast<std::int64_t>(s.tid));
    if (txn_.rec.on_fiber) labels.emplace_back(key_fiber_, fiber_name_, 0);
  }

 private:
  const finished_transaction& txn_;
  pprof_builder& strings_;
  std::unordered_map<std::uint64_t, std::size_t> span_index_;  // span id → index in txn
  const std::int64_t key_transaction_, key_trace_, key_span_, key_op_, key_description_, key_thread_, key_derived_;
  const std::int64_t transaction_name_, trace_id_, key_fiber_, fiber_name_;
};

// Samples merged when stack and labels agree; values are [count, time in ns].
class sample_merger {
 public:
  void add(const std::vector<std::uint64_t>& locations, const std::vector<label>& labels, std::int64_t time_ns) {
    auto [it, inserted] = index_.try_emplace({locations, labels}, merged_.size());
    if (inserted) merged_.push_back({locations, labels, 0, 0});
    entry& e = merged_[it->second];
    e.count += 1;
    e.time_ns += time_ns;
  }

  void write_samples(std::string& out) const {
    std::string msg, sub, packed;
    std::vector<std::int64_t> values(2);
    for (const entry& e : merged_) {
      msg.clear();
      pw::append_packed_field(msg, 1, e.locations, packed);
      values[0] = e.count;
      values[1] = e.time_ns;
      pw::append_packed_field(msg, 2, values, packed);
      for (const auto& [key, str, num] : e.labels) {
        sub.clear();
        pw::append_int64_field(sub, 1, key);
        pw::append_int64_field(sub, 2, str);
        pw::append_int64_field(sub, 3, num);
        pw::append_bytes_field(msg, 3, sub);
      }
      pw::append_bytes_field(out, 2, msg);
    }
  }

 private:
  struct entry {
    std::vector<std::uint64_t> locations;
    std::vector<label> labels;
    std::int64_t count = 0;
    std::int64_t time_ns = 0;
  };
  std::vector<entry> merged_;
  std::map<std::pair<std::vector<std::uint64_t>, std::vector<label>>, std::size_t> index_;
};

// The fields after the samples: drop_frames, time, duration, period type and period, comments
// and the default sample type. They add strings, so they are built before the string table is
// written and appended after it.
inline std::string profile_scalars(const finished_transaction& txn, pprof_builder& strings, bool own_frames_remain,
                                   std::string_view time_type, std::int64_t period_ns) {
  std::string tail;
  if (own_frames_remain) pw::append_int64_field(tail, 7, strings.string_index(pprof_own_frames_regex));
  const std::int64_t begin_ns = txn.begin_ns(0);
  pw::append_int64_field(tail, 9, txn.epoch_ns(begin_ns));
  pw::append_int64_field(tail, 10, txn.end_ns(0) - begin_ns);
  pw::append_bytes_field(tail, 11, value_type(strings, time_type, "nanoseconds"));
  pw::append_int64_field(tail, 12, period_ns);
  const transaction_samples& sampled = txn.sampled;
  for (const std::string& comment :
       {fmt::format("spanprof {}: {} samples at {} Hz ({} mode)", spanprof_version, sampled.samples.size(),
                    txn.cfg.sample_rate_hz, time_type),
        fmt::format("samples dropped (ring full): {}", sampled.dropped),
        fmt::format("samples over the per-transaction cap: {}", sampled.over_cap),
        fmt::format("samples with truncated stacks: {}", sampled.truncated)}) {
    pw::append_int64_field(tail, 13, strings.string_index(comment));
  }
  pw::append_int64_field(tail, 14, strings.string_index(time_type));
  return tail;
}

}  // namespace pprof_parts

// The serialized, uncompressed Profile message (tests decode this; the file is its gzip).
// The order of the steps is the order of the string table: keep it, files are reproducible.
inline std::string build_pprof_profile(const finished_transaction& txn, json_text_stats& stats) {
  namespace pw = protobuf_wire;
  pprof_builder strings(stats);
  std::string out;
  const std::string_view time_type = txn.cfg.mode == sampling_mode::cpu ? "cpu" : "wall";
  const std::int64_t period_ns = 1'000'000'000 / static_cast<std::int64_t>(txn.cfg.sample_rate_hz > 0 ? txn.cfg.sample_rate_hz : 1);
  pw::append_bytes_field(out, 1, pprof_parts::value_type(strings, "samples", "count"));
  pw::append_bytes_field(out, 1, pprof_parts::value_type(strings, time_type, "nanoseconds"));

  const transaction_analysis* a = txn.analysis;
  const auto& samples = txn.sampled.samples;
  const bool has_stacks = a != nullptr && a->stack_begin.size() == samples.size() + 1;
  const bool has_placements = a != nullptr && a->gaps.placements.size() == samples.size();
  pprof_parts::location_table locations(a, strings);
  pprof_parts::sample_labeller labeller(txn, strings);
  pprof_parts::sample_merger merger;
  std::vector<std::uint64_t> sample_locations;
  std::vector<pprof_parts::label> sample_labels;
  for (std::size_t n = 0; n < samples.size(); ++n) {
    sample_locations.clear();
    sample_labels.clear();
    if (has_stacks) locations.append_stack(a->stack_of(n), sample_locations);
    const gapfill::derived_span* derived = nullptr;
    if (has_placements && a->gaps.placements[n].derived_index < a->gaps.derived_spans.size()) {
      derived = &a->gaps.derived_spans[a->gaps.placements[n].derived_index];
    }
    labeller.append_labels(samples[n], derived, sample_labels);
    merger.add(sample_locations, sample_labels, static_cast<std::int64_t>(samples[n].weight) * period_ns);
  }

  merger.write_samples(out);
  locations.write_mappings(out);
  out += locations.locations_message();
  out += locations.functions_message();
  const std::string tail = pprof_parts::profile_scalars(txn, strings, locations.own_frames_remain(), time_type, period_ns);
  for (const std::string& s : strings.strings()) pw::append_bytes_field(out, 6, s);
  out += tail;
  return out;
}

inline std::string write_pprof(const finished_transaction& txn, json_text_stats& stats) {
  return gzip_compress(build_pprof_profile(txn, stats));
}

}  // namespace spanprof::detail
