// spanprof: the counters behind spanprof::stats(), listed once.
//
// One X-macro names every counter: it declares the public `spanprof::counters` snapshot and the
// live atomics the engine and the SIGPROF handler increment, so adding a counter is one line.
#pragma once

#include <atomic>
#include <cstdint>

// X(name, what it counts)
#define SPANPROF_DETAIL_COUNTERS(X)                                                                     \
  X(transactions_started, "begun while recording")                                                      \
  X(transactions_finished, "ended, by their owner, at shutdown or at thread exit")                      \
  X(transactions_not_sampled, "traces_sample_rate said no")                                             \
  X(transactions_collected, "taken by the collector (written or not)")                                  \
  X(transactions_written, "every requested format written")                                             \
  X(transactions_dropped, "collector queue full, or finished after shutdown")                           \
  X(transactions_aborted, "still open at shutdown or thread exit")                                      \
  X(spans_started, "not counted on the hot path: summed at finish")                                     \
  X(spans_dropped, "over max_spans_per_transaction")                                                    \
  X(spans_auto_closed, "open when their parent or transaction ended")                                   \
  X(spans_closed_out_of_order, "ended while spans they opened were still open")                         \
  X(cross_context_ends, "span/transaction ended on another thread or fiber")                            \
  X(nested_transactions, "begun while another was open on the same context")                            \
  X(strings_truncated, "cut at max_description_bytes / max_name_bytes")                                \
  X(invalid_utf8_repaired, "strings with bytes replaced by U+FFFD on output")                           \
  X(files_written, "profile files renamed into place")                                                  \
  X(errors, "every report through on_error")                                                            \
  X(api_misuse, "errors of kind api_misuse")                                                            \
  X(samples_taken, "pushed into a ring by the SIGPROF handler")                                         \
  X(samples_dropped, "ring full (also in each profile's metadata)")                                     \
  X(samples_truncated, "stack deeper than max_stack_depth, or unwinding failed")                        \
  X(samples_unregistered, "SIGPROF on a thread spanprof does not know")                                 \
  X(samples_outside_transaction, "arrived between transactions")                                        \
  X(samples_reentrant, "arrived while the handler ran")                                                 \
  X(samples_orphaned, "their transaction was never written (dropped)")                                  \
  X(aggregate_stacks_over_cap, "per-name aggregate full: counted as \"[other]\"")                       \
  X(aggregate_names_over_cap, "transactions of names beyond the aggregate cap")                         \
  X(profiles_omitted, "envelopes sent without a profile: Sentry would reject it")                       \
  X(profile_samples_dropped, "left out of Sentry profiles (outside the transaction, past 30 s, too big, alone on a thread)")

namespace spanprof {

// What spanprof::stats() returns: counters since the last init(). The list, with what each
// counts, is SPANPROF_DETAIL_COUNTERS above.
struct counters {
#define SPANPROF_DETAIL_DECLARE_COUNTER(name, what) std::uint64_t name = 0;
  SPANPROF_DETAIL_COUNTERS(SPANPROF_DETAIL_DECLARE_COUNTER)
#undef SPANPROF_DETAIL_DECLARE_COUNTER
};

namespace detail {

// The live counters. Relaxed increments: they are statistics and order nothing. Lock-free
// atomics in static storage, so the SIGPROF handler may increment them (ASYNC-SIGNAL-SAFE).
struct live_counters {
#define SPANPROF_DETAIL_DECLARE_COUNTER(name, what) std::atomic<std::uint64_t> name{0};
  SPANPROF_DETAIL_COUNTERS(SPANPROF_DETAIL_DECLARE_COUNTER)
#undef SPANPROF_DETAIL_DECLARE_COUNTER

  [[nodiscard]] spanprof::counters snapshot() const noexcept {
    spanprof::counters out;
#define SPANPROF_DETAIL_COPY_COUNTER(name, what) out.name = name.load(std::memory_order_relaxed);
    SPANPROF_DETAIL_COUNTERS(SPANPROF_DETAIL_COPY_COUNTER)
#undef SPANPROF_DETAIL_COPY_COUNTER
    return out;
  }

  void reset() noexcept {
#define SPANPROF_DETAIL_ZERO_COUNTER(name, what) name.store(0, std::memory_order_relaxed);
    SPANPROF_DETAIL_COUNTERS(SPANPROF_DETAIL_ZERO_COUNTER)
#undef SPANPROF_DETAIL_ZERO_COUNTER
  }
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// The one set of live counters (runtime::stats names it too). Constant-initialized.
inline constinit live_counters g_counters{};

// ASYNC-SIGNAL-SAFE.
inline void bump(std::atomic<std::uint64_t>& counter, std::uint64_t by = 1) noexcept {
  counter.fetch_add(by, std::memory_order_relaxed);
}

}  // namespace detail
}  // namespace spanprof
