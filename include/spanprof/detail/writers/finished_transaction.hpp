// spanprof: a finished transaction as every writer sees it — its spans with times in
// monotonic nanoseconds, its samples, and what the analysis made of them.
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/clock.hpp"
#include "../core/config.hpp"
#include "../gapfill/gapfill.hpp"
#include "../record/transaction_record.hpp"
#include "../sample/ring.hpp"
#include "../symbolize/debug_images.hpp"
#include "../symbolize/frames.hpp"
#include "../symbolize/module_map.hpp"
#include "process_info.hpp"

namespace spanprof::detail {

// One symbolized code location, owned here (the symbolizer's views die at its next call).
struct profile_frame {
  std::string function;
  std::string file;
  std::uint32_t line = 0;
  frame_quality quality = frame_quality::unknown;
  bool inlined = false;  // inlined into the next frame of the same address
  const module_info* module = nullptr;
  std::uintptr_t instruction_addr = 0;
  std::uintptr_t relative_addr = 0;
  bool in_app = false;
};

struct transaction_analysis {
  std::vector<profile_frame> frames;
  // All stacks, leaf first, as indexes into `frames` (an address with inlined calls gives
  // several, innermost first); sample i's stack is [stack_begin[i], stack_begin[i + 1]).
  std::vector<std::uint32_t> stack_frames;
  std::vector<std::uint32_t> stack_begin;
  std::vector<debug_image> images;  // the modules the stacks touch, for Sentry's debug_meta
  gapfill::filled_transaction gaps;

  [[nodiscard]] std::span<const std::uint32_t> stack_of(std::size_t sample) const noexcept {
    return {stack_frames.data() + stack_begin[sample], stack_begin[sample + 1] - stack_begin[sample]};
  }
};

// A sample of a finished transaction, copied out of its thread's ring by the collector.
struct collected_sample {
  std::int64_t t_ticks = 0;
  std::uint64_t seq = 0;  // per-ring sequence number
  std::uint64_t ctx_id = 0;
  std::uint64_t span_id = 0;
  std::uint32_t tid = 0;
  std::uint32_t weight = 1;
  std::uint16_t anchor_idx = 0;
  std::uint8_t flags = 0;
  std::uint8_t mode = 0;  // 0 wall, 1 cpu
  std::vector<std::uintptr_t> pcs;  // leaf first
};

// What the sampler saw of one transaction.
struct transaction_samples {
  std::vector<collected_sample> samples;  // in time order
  std::uint64_t dropped = 0;     // ring full while this transaction's context was active
  std::vector<drop_log_entry> drop_log;  // the logged ones among them, with their times
  std::uint64_t over_cap = 0;    // beyond max_samples_per_transaction
  std::uint64_t truncated = 0;
};

// A finished transaction as the writers see it: times already in monotonic nanoseconds.
struct finished_transaction {
  const transaction_record& rec;
  tick_converter ticks;
  const clock_calibration& clock;
  const process_info& process;
  const config& cfg;
  const transaction_samples& sampled;
  const transaction_analysis* analysis = nullptr;  // null if it could not be built

  [[nodiscard]] std::size_t span_count() const noexcept { return rec.spans.size(); }
  [[nodiscard]] const span_record& span(std::size_t i) const noexcept { return rec.spans[i]; }
  [[nodiscard]] std::int64_t begin_ns(std::size_t i) const noexcept { return ticks.to_ns(span(i).begin_ticks); }
  [[nodiscard]] std::int64_t end_ns(std::size_t i) const noexcept {
    // Clamp: a span can never end before it began, whatever the calibration did.
    const std::int64_t end = ticks.to_ns(span(i).end_ticks.load(std::memory_order_relaxed));
    return end < begin_ns(i) ? begin_ns(i) : end;
  }
  [[nodiscard]] std::int64_t epoch_ns(std::int64_t monotonic) const noexcept {
    return clock.monotonic_to_epoch_ns(monotonic);
  }
  [[nodiscard]] std::string_view name() const noexcept {
    const std::string_view n = span(0).description.view();
    return n.empty() ? std::string_view("unnamed transaction") : n;
  }
};

// Where viewers draw a transaction's spans and samples: its thread, or, for a transaction opened
// on a fiber, a track of the fiber's own — the fiber may run on several threads, and other
// fibers' requests share its threads. Kernel tids stay below 2^22 (PID_MAX_LIMIT), so fiber
// tracks numbered from 2^30 never collide with a thread's.
struct transaction_track {
  std::uint32_t tid = 0;
  std::string label;

  static transaction_track of(const transaction_record& rec) {
    transaction_track t;
    if (rec.on_fiber) {
      const std::uint64_t fiber_number = rec.ctx_id & ~fiber_ctx_id_bit;
      t.tid = static_cast<std::uint32_t>((std::uint64_t{1} << 30) | (fiber_number & ((std::uint64_t{1} << 30) - 1)));
      t.label = fmt::format("fiber {} (began on thread {})", fiber_number, rec.thread_id);
    } else {
      t.tid = static_cast<std::uint32_t>(rec.thread_id);
      t.label = rec.thread_name[0] != '\0' ? std::string(rec.thread_name) : fmt::format("thread {}", rec.thread_id);
    }
    return t;
  }
};

}  // namespace spanprof::detail
