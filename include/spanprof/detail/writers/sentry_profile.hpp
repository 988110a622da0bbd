// spanprof: Sentry profile (sample format v1) and the envelope that carries it beside its
// transaction event — what Sentry's ingest endpoint takes in one POST.
//
// Everything Relay would reject is left out here instead (formats.md §1, "What Relay drops";
// Relay's relay-profiling sample/v1.rs): samples outside the transaction or past 30 s, threads
// with a single sample, a profile that would exceed 10 MiB, a profile with nothing left. What
// was left out is counted in `sentry_profile_stats`; the collector reports it. A file written
// here is one Relay accepts as a whole.
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../core/text.hpp"
#include "finished_transaction.hpp"
#include "json.hpp"
#include "timestamps.hpp"
#include "sentry_transaction.hpp"

namespace spanprof::detail {

// Relay's limits (formats.md §1).
inline constexpr std::uint64_t sentry_max_profile_duration_ns = 30'000'000'000;  // last sample's elapsed time
inline constexpr std::size_t sentry_max_profile_bytes = 10 * 1024 * 1024;        // Relay's max_profile_size default
inline constexpr std::size_t sentry_max_transaction_bytes = 1'000'000;           // transaction event item

// What the profile writer kept and what it left out, by reason.
struct sentry_profile_stats {
  std::size_t samples_taken = 0;
  std::size_t outside_transaction = 0;  // before its start or after its end: Relay discards them
  std::size_t over_duration = 0;        // more than 30 s after the start: Relay rejects the profile
  std::size_t idle_edges = 0;           // empty stacks before a thread's first or after its last stack
  std::size_t lone_thread = 0;          // the only sample of its thread: Relay removes it
  std::size_t over_size = 0;            // the latest samples, cut to stay under 10 MiB
  std::size_t samples_written = 0;
  std::string omitted_because;          // non-empty: no profile, and why

  // Samples with information that Sentry will not see. Idle edges are not counted: an empty
  // stack says nothing, and Relay would drop it silently.
  [[nodiscard]] std::size_t samples_lost() const noexcept {
    return omitted_because.empty() ? outside_transaction + over_duration + lone_thread + over_size : samples_taken;
  }
};

// The release both items carry. Sentry's docs require one on the profile and Relay keeps the
// profile's own, so without a configured release the program's name stands in (on the envelope's
// transaction too, so the two agree).
inline std::string_view sentry_release(const finished_transaction& txn) noexcept {
  return !txn.cfg.release.empty() ? std::string_view(txn.cfg.release) : std::string_view(txn.process.name);
}

namespace sentry_profile_detail {

struct timeline {
  std::uint64_t origin_epoch_ns = 0;  // the instant the profile's "timestamp" string names
  std::uint64_t start_ns = 0, end_ns = 0;  // the transaction, relative to origin
};

// The profile timestamp is the transaction's start_timestamp string (µs precision): every
// *_ns value is measured from the microsecond that string names, so they line up exactly with
// the spans.
inline timeline timeline_of(const finished_transaction& txn) {
  const std::int64_t begin_epoch = txn.epoch_ns(txn.begin_ns(0));
  const std::int64_t end_epoch = txn.epoch_ns(txn.end_ns(0));
  timeline t;
  const std::int64_t origin = begin_epoch - (begin_epoch % 1000 + 1000) % 1000;
  t.origin_epoch_ns = static_cast<std::uint64_t>(origin);
  t.start_ns = static_cast<std::uint64_t>(begin_epoch - origin);
  t.end_ns = static_cast<std::uint64_t>(std::max(end_epoch, begin_epoch) - origin);
  return t;
}

struct kept_sample {
  std::size_t index;             // into txn.sampled.samples
  std::uint64_t elapsed_ns;
  std::uint32_t tid;
  bool has_stack;
};

// Relay's normalization, on samples in time order: per thread, drop the empty stacks before the
// first and after the last non-empty one, then drop every thread left with a single sample.
inline void normalize_threads(std::vector<kept_sample>& samples, sentry_profile_stats& stats) {
  std::unordered_map<std::uint32_t, std::pair<std::size_t, std::size_t>> active;  // tid → [first, last] with a stack
  for (std::size_t i = 0; i < samples.size(); ++i) {
    if (!samples[i].has_stack) continue;
    auto [it, inserted] = active.try_emplace(samples[i].tid, i, i);
    if (!inserted) it->second.second = i;
  }
  std::vector<kept_sample> out;
  out.reserve(samples.size());
  std::unordered_map<std::uint32_t, std::size_t> count;
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const auto it = active.find(samples[i].tid);
    if (it == active.end() || i < it->second.first || i > it->second.second) {
      ++stats.idle_edges;
      continue;
    }
    ++count[samples[i].tid];
    out.push_back(samples[i]);
  }
  samples.clear();
  for (const kept_sample& s : out) {
    if (count[s.tid] < 2) {
      ++stats.lone_thread;
    } else {
      samples.push_back(s);
    }
  }
}

inline void write_frame(json_writer& w, const profile_frame& f) {
  w.begin_object();
  if (!f.function.empty()) w.key("function").string(f.function);
  if (!f.file.empty()) {
    const std::size_t slash = f.file.rfind('/');
    w.key("filename").string(slash == std::string::npos ? std::string_view(f.file) : std::string_view(f.file).substr(slash + 1));
    w.key("abs_path").string(f.file);
  }
  if (f.line != 0) w.key("lineno").number(f.line);
  // Relay keeps `module` and drops `package`: the binary's or library's file name goes here.
  if (f.module != nullptr) w.key("module").string(f.module->file_name());
  w.key("in_app").boolean(f.in_app);
  w.key("instruction_addr").address(f.instruction_addr);
  w.key("platform").plain_string("native");
  w.end_object();
}

// debug_meta.images. Relay's profile struct knows the image types macho, symbolic, sourcemap,
// proguard and jvm — not "elf", which would fail the whole profile as invalid JSON — and its
// older versions require debug_id and image_addr: ELF modules are sent as "symbolic" (Sentry's
// generic native type), and a module without a build id (no debug_id) is left out.
inline void write_debug_images(json_writer& w, const transaction_analysis& a) {
  w.key("debug_meta").begin_object().key("images").begin_array();
  for (const debug_image& image : a.images) {
    if (image.debug_id.empty() || image.image_addr.empty()) continue;
    w.begin_object();
    w.key("type").plain_string("symbolic");
    w.key("code_file").string(image.code_file);
    if (!image.code_id.empty()) w.key("code_id").string(image.code_id);
    w.key("debug_id").string(image.debug_id);
    w.key("image_addr").string(image.image_addr);
    if (!image.image_vmaddr.empty()) w.key("image_vmaddr").string(image.image_vmaddr);
    w.key("image_size").number(image.image_size);
    w.end_object();
  }
  w.end_array().end_object();
}

// The profile JSON for `samples` (already normalized, time order).
inline std::string serialize(const finished_transaction& txn, const hex32& profile_id, const timeline& t,
                             const std::vector<kept_sample>& samples, json_text_stats& stats) {
  const transaction_analysis& a = *txn.analysis;
  std::string out;
  out.reserve(2048 + samples.size() * 64);
  json_writer w(out, stats);
  w.begin_object();
  w.key("version").plain_string("1");
  w.key("event_id").plain_string(profile_id.text);
  w.key("platform").plain_string("native");
  w.key("timestamp");
  write_rfc3339_us(w, static_cast<std::int64_t>(t.origin_epoch_ns));
  w.key("release").string(sentry_release(txn));
  if (!txn.cfg.environment.empty()) w.key("environment").string(txn.cfg.environment);
  w.key("device").begin_object();
  w.key("architecture").string(txn.process.architecture.empty() ? std::string_view("unknown") : std::string_view(txn.process.architecture));
  w.end_object();
  w.key("os").begin_object().key("name").string(txn.process.os_name).key("version").string(txn.process.os_version).end_object();
  w.key("runtime").begin_object().key("name").plain_string("spanprof").key("version").plain_string(spanprof_version).end_object();
  write_debug_images(w, a);

  // The thread the transaction ran on, if it kept samples; otherwise (its context moved to other
  // threads) the thread with the most, since Sentry draws the flame graph from this one only.
  std::map<std::uint32_t, std::size_t> per_thread;
  for (const kept_sample& s : samples) ++per_thread[s.tid];
  const transaction_track track = transaction_track::of(txn.rec);
  auto active_tid = track.tid;
  if (per_thread.find(active_tid) == per_thread.end()) {
    active_tid = std::max_element(per_thread.begin(), per_thread.end(),
                                  [](const auto& x, const auto& y) { return x.second < y.second; })->first;
  }
  w.key("transaction").begin_object();
  w.key("id").plain_string(to_hex(txn.rec.event_id).text);
  w.key("trace_id").plain_string(to_hex(txn.rec.trace).text);
  // Exactly as the transaction event spells its name (Relay replaces ours with it anyway).
  w.key("name").string(txn.name(), txn.span(0).description.original_size);
  w.key("active_thread_id").decimal_string(active_tid);
  w.key("relative_start_ns").decimal_string(t.start_ns);
  w.key("relative_end_ns").decimal_string(t.end_ns);
  w.end_object();

  // Frames and stacks: only those the written samples use, each written once. The three arrays
  // are built side by side in one pass over the samples, then spliced in.
  std::vector<std::int64_t> frame_out(a.frames.size(), -1);
  std::string frames_json, stacks_json, samples_json;
  json_writer frames_w(frames_json, stats), stacks_w(stacks_json, stats), samples_w(samples_json, stats);
  frames_w.begin_array();
  stacks_w.begin_array();
  samples_w.begin_array();
  std::uint32_t frame_count = 0;
  std::map<std::vector<std::uint32_t>, std::uint32_t> stack_ids;
  std::vector<std::uint32_t> stack;
  for (const kept_sample& s : samples) {
    stack.clear();
    for (const std::uint32_t f : a.stack_of(s.index)) {  // leaf first, as Sentry wants
      if (frame_out[f] < 0) {
        frame_out[f] = frame_count++;
        write_frame(frames_w, a.frames[f]);
      }
      stack.push_back(static_cast<std::uint32_t>(frame_out[f]));
    }
    auto [it, inserted] = stack_ids.try_emplace(stack, static_cast<std::uint32_t>(stack_ids.size()));
    if (inserted) {
      stacks_w.begin_array();
      for (const std::uint32_t frame : stack) stacks_w.number(frame);
      stacks_w.end_array();
    }
    samples_w.begin_object();
    samples_w.key("stack_id").number(it->second);
    samples_w.key("thread_id").decimal_string(s.tid);
    samples_w.key("elapsed_since_start_ns").decimal_string(s.elapsed_ns);
    samples_w.end_object();
  }
  frames_w.end_array();
  stacks_w.end_array();
  samples_w.end_array();
  w.key("profile").begin_object();
  w.key("samples").raw(samples_json);
  w.key("stacks").raw(stacks_json);
  w.key("frames").raw(frames_json);
  w.key("thread_metadata").begin_object();
  for (const auto& [tid, count] : per_thread) {
    const fmt::format_int digits(tid);
    w.key_text(std::string_view(digits.data(), digits.size())).begin_object();
    // The name is known only for the transaction's own track: the thread that began it, or
    // its fiber.
    if (tid == track.tid && (txn.rec.on_fiber || txn.rec.thread_name[0] != '\0')) w.key("name").string(track.label);
    w.end_object();
  }
  w.end_object();
  w.end_object();
  w.end_object();
  return out;
}

}  // namespace sentry_profile_detail

// The v1 profile of `txn`, or "" when Sentry would not accept one (`report.omitted_because`
// says why). Samples Relay would discard or reject are left out and counted in `report`.
inline std::string write_sentry_profile(const finished_transaction& txn, const hex32& profile_id, json_text_stats& stats,
                                        sentry_profile_stats& report, std::size_t max_bytes = sentry_max_profile_bytes) {
  namespace sp = sentry_profile_detail;
  report = {};
  report.samples_taken = txn.sampled.samples.size();
  if (txn.analysis == nullptr) {
    report.omitted_because = "its samples could not be symbolized";
    return {};
  }
  if (txn.rec.trace.is_nil() || txn.rec.event_id.is_nil()) {
    report.omitted_because = "its trace or event id is nil";
    return {};
  }
  const sp::timeline t = sp::timeline_of(txn);
  if (t.end_ns <= t.start_ns) {  // Relay: relative_start_ns < relative_end_ns, or invalid
    report.omitted_because = "it lasted no time";
    return {};
  }
  std::vector<sp::kept_sample> samples;
  samples.reserve(txn.sampled.samples.size());
  for (std::size_t i = 0; i < txn.sampled.samples.size(); ++i) {
    const collected_sample& c = txn.sampled.samples[i];
    const std::int64_t elapsed = txn.epoch_ns(txn.ticks.to_ns(c.t_ticks)) - static_cast<std::int64_t>(t.origin_epoch_ns);
    if (elapsed < static_cast<std::int64_t>(t.start_ns) || elapsed > static_cast<std::int64_t>(t.end_ns)) {
      ++report.outside_transaction;
    } else if (static_cast<std::uint64_t>(elapsed) > sentry_max_profile_duration_ns) {
      ++report.over_duration;
    } else {
      // A fiber's samples all go to its track, whichever thread ran it: Sentry draws the flame
      // graph of one thread, and the request is the fiber, not the threads it visited.
      const std::uint32_t tid = txn.rec.on_fiber ? transaction_track::of(txn.rec).tid : c.tid;
      samples.push_back({i, static_cast<std::uint64_t>(elapsed), tid, !txn.analysis->stack_of(i).empty()});
    }
  }
  // Time order is what makes Relay's "last sample" the latest one; the collector sorted them,
  // and equal times keep their order.
  std::stable_sort(samples.begin(), samples.end(),
                   [](const sp::kept_sample& x, const sp::kept_sample& y) { return x.elapsed_ns < y.elapsed_ns; });
  sp::normalize_threads(samples, report);
  for (;;) {
    if (samples.empty()) {
      report.omitted_because = fmt::format("it has {} sample(s), and Sentry needs 2 or more with a stack on one thread "
                                           "inside the transaction", report.samples_taken);
      return {};
    }
    json_text_stats attempt_stats;
    std::string profile = sp::serialize(txn, profile_id, t, samples, attempt_stats);
    if (profile.size() <= max_bytes) {
      stats.utf8_repaired += attempt_stats.utf8_repaired;
      report.samples_written = samples.size();
      return profile;
    }
    // Too big: keep the earliest samples, in proportion to the room (with a margin, since
    // frames are shared unevenly), and normalize again.
    const auto keep = static_cast<std::size_t>(static_cast<double>(samples.size()) * 0.9 *
                                               static_cast<double>(max_bytes) / static_cast<double>(profile.size()));
    const std::size_t cut = samples.size() - std::min(keep, samples.size() - 1);
    report.over_size += cut;
    samples.resize(samples.size() - cut);
    // Samples the cut left idle or alone on their thread are lost to the size limit too.
    sentry_profile_stats after_cut;
    sp::normalize_threads(samples, after_cut);
    report.over_size += after_cut.idle_edges + after_cut.lone_thread;
  }
}

// What write_sentry_envelope produced.
struct sentry_envelope_result {
  std::string envelope;  // "" when nothing Sentry accepts could be written
  sentry_profile_stats profile;
  std::string problem;   // why there is no envelope
};

inline void append_envelope_item(std::string& out, std::string_view type, std::string_view payload) {
  // `length` is the exact byte count, so the payload may hold any byte, newlines included.
  json_text_stats no_text;  // the header holds no text from the transaction
  json_writer w(out, no_text);
  w.begin_object();
  w.key("type").plain_string(type);
  w.key("length").number(payload.size());
  w.key("content_type").plain_string("application/json");
  w.end_object();
  out += '\n';
  out += payload;
  out += '\n';
}

// The envelope of one transaction: its event and, when Sentry would accept one, its profile.
// `now_epoch_ns` is the envelope's sent_at.
inline sentry_envelope_result write_sentry_envelope(const finished_transaction& txn, const trace_id& profile_id,
                                                    std::int64_t now_epoch_ns, json_text_stats& stats,
                                                    std::size_t max_profile_bytes = sentry_max_profile_bytes) {
  sentry_envelope_result result;
  const hex32 profile_hex = to_hex(profile_id);
  std::string profile = write_sentry_profile(txn, profile_hex, stats, result.profile, max_profile_bytes);
  sentry_transaction_link link;
  link.profile_id = profile.empty() ? std::string_view() : std::string_view(profile_hex.text);
  link.release = sentry_release(txn);
  std::string transaction;
  transaction.reserve(1024 + txn.span_count() * 420);
  append_sentry_transaction_event(transaction, txn, stats, &link);
  if (transaction.size() > sentry_max_transaction_bytes) {
    result.problem = fmt::format("its transaction event is {} bytes, over the {} bytes Relay accepts", transaction.size(),
                                 sentry_max_transaction_bytes);
    return result;
  }
  std::string& out = result.envelope;
  out.reserve(256 + transaction.size() + profile.size());
  json_writer w(out, stats);
  w.begin_object();
  w.key("event_id").plain_string(to_hex(txn.rec.event_id).text);
  w.key("sent_at");
  write_rfc3339_us(w, now_epoch_ns);
  w.key("sdk").begin_object().key("name").plain_string("spanprof").key("version").plain_string(spanprof_version).end_object();
  w.end_object();
  out += '\n';
  append_envelope_item(out, "transaction", transaction);
  if (!profile.empty()) append_envelope_item(out, "profile", profile);
  return result;
}

}  // namespace spanprof::detail
