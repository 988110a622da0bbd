// spanprof: the collector's sample buckets — each transaction's samples, copied out of the
// rings, held until its finished record arrives (or, if it never does, given up as orphans).
//
// NOT ASYNC-SIGNAL-SAFE (allocates). Collector thread only.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <utility>

#include "../core/clock.hpp"
#include "../writers/finished_transaction.hpp"

namespace spanprof::detail {

class sample_buckets {
 public:
  // A transaction keeps at most this many samples (gapfill.md: 3000, or 30 s at 101 Hz); Sentry
  // drops profiles longer than 30 s anyway.
  static constexpr std::size_t max_samples_per_transaction = 3000;
  // Samples whose transaction has not been written this long after their last sample belong to
  // a transaction that was dropped (queue full, out of memory): freed and counted.
  static constexpr std::int64_t orphan_after_ns = 60'000'000'000;

  // The bucket of transaction `txn_id` for a sample taken at `t_ticks`, or nullptr when the
  // transaction is at its cap (the sample is then counted in over_cap). The caller builds the
  // sample and push()es it.
  [[nodiscard]] transaction_samples* admit(std::uint64_t txn_id, std::int64_t t_ticks) {
    bucket& b = buckets_[txn_id];
    b.last_ticks = t_ticks;
    if (b.sampled.samples.size() >= max_samples_per_transaction) {
      ++b.sampled.over_cap;
      return nullptr;
    }
    return &b.sampled;  // stays valid: unordered_map never moves its elements
  }
  static void push(transaction_samples& into, collected_sample&& s) {
    if ((s.flags & sample_flag_truncated) != 0) ++into.truncated;
    into.samples.push_back(std::move(s));
  }

  // Frees the buckets whose last sample is older than orphan_after_ns (all of them if `all`),
  // at most about once a second unless `all`. Returns how many samples it freed.
  std::uint64_t discard_orphans(const tick_converter& c, bool all) noexcept {
    const std::int64_t now = now_ticks();
    if (!all && now - last_orphan_scan_ticks_ < static_cast<std::int64_t>(1e9 / c.ns_per_tick)) return 0;
    last_orphan_scan_ticks_ = now;
    std::uint64_t freed = 0;
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      if (all || c.to_ns(now) - c.to_ns(it->second.last_ticks) > orphan_after_ns) {
        freed += it->second.sampled.samples.size();
        it = buckets_.erase(it);
      } else {
        ++it;
      }
    }
    return freed;
  }

  // The samples of transaction `txn_id`, taken out of their bucket, in time order.
  [[nodiscard]] transaction_samples take(std::uint64_t txn_id) {
    transaction_samples out;
    if (auto it = buckets_.find(txn_id); it != buckets_.end()) {
      out = std::move(it->second.sampled);
      buckets_.erase(it);
    }
    std::stable_sort(out.samples.begin(), out.samples.end(),
                     [](const collected_sample& a, const collected_sample& b) { return a.t_ticks < b.t_ticks; });
    return out;
  }

 private:
  struct bucket {
    transaction_samples sampled;
    std::int64_t last_ticks = 0;
  };

  std::unordered_map<std::uint64_t, bucket> buckets_;  // samples by transaction id
  std::int64_t last_orphan_scan_ticks_ = 0;
};

}  // namespace spanprof::detail
