// spanprof: the per-thread sample ring — one producer (the thread's SIGPROF handler), one
// consumer (the collector).
//
// Variable-length records in a preallocated power-of-two byte buffer. A record never wraps: if
// it does not fit before the end, the producer writes a padding record and starts over at the
// beginning. Positions are 64-bit and only grow, so "full" and "empty" are never ambiguous.
// Full means the sample is dropped and counted, with its time kept in a small drop log: the
// handler never waits, because the thread that would drain the ring may be the one this signal
// interrupted.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>

namespace spanprof::detail {

enum class record_kind : std::uint16_t { padding = 0, sample = 1 };

enum sample_flags : std::uint8_t {
  sample_flag_in_switch = 1u << 0,  // a fiber switch was in progress (gapfill.md §1)
  sample_flag_truncated = 1u << 1,  // the unwinder stopped before the outermost frame
  // The payload is registers + a copy of the stack (raw_stack_layout in stack_copy.hpp), not pcs:
  // the collector unwinds it with DWARF CFI.
  sample_flag_raw_stack = 1u << 2,
  // The raw stack copy runs to the top of the stack (it was not cut at max_stack_copy_bytes): a
  // read past its end is the stack's outermost frame asking for a caller that does not exist
  // (a fiber's entry frame, whose return address sits above its stack), not a short copy.
  sample_flag_stack_top = 1u << 3,
};

inline constexpr std::uint16_t anchor_unknown = 0xFFFF;

// gapfill.md §1's sample record; `depth` words follow it: program counters, leaf first, or for
// sample_flag_raw_stack the registers and stack copy that the collector unwinds.
struct sample_record {
  std::uint32_t size_bytes;  // the whole record, header and pcs, a multiple of 8
  record_kind kind;
  std::uint16_t depth;
  std::int64_t t_ticks;      // handler-entry time, on the span clock
  std::uint64_t seq;         // per-ring sequence number
  std::uint64_t ctx_id;
  std::uint64_t txn_id;
  std::uint64_t span_id;     // innermost active span at interrupt time
  std::uint32_t tid;
  std::uint32_t weight;      // 1 + timer overruns in CPU mode, else 1
  std::uint16_t anchor_idx;  // anchor_unknown if not found
  std::uint8_t mode;         // 0 wall, 1 cpu
  std::uint8_t flags;        // sample_flags
  std::uint32_t reserved;

  [[nodiscard]] const std::uintptr_t* pcs() const noexcept {
    return reinterpret_cast<const std::uintptr_t*>(this + 1);
  }
};
static_assert(sizeof(sample_record) % 8 == 0);

struct drop_log_entry {
  std::int64_t t_ticks;
  std::uint64_t ctx_id;
};

// The handler may overwrite an old entry while the collector reads the log; relaxed atomics
// make that a benign, well-defined race (the reader may see a newer drop, never a torn one).
struct atomic_drop_log_entry {
  std::atomic<std::int64_t> t_ticks{0};
  std::atomic<std::uint64_t> ctx_id{0};
};

class sample_ring {
 public:
  static constexpr std::size_t drop_log_size = 64;

  // Not signal-safe: allocates. Called when a thread registers, never in the handler.
  // `capacity_bytes` is rounded up to a power of two (minimum 4 KiB).
  explicit sample_ring(std::size_t capacity_bytes) {
    std::size_t capacity = 4096;
    while (capacity < capacity_bytes) capacity <<= 1;
    capacity_ = capacity;
    buffer_.reset(static_cast<unsigned char*>(::operator new(capacity, std::align_val_t{64})));
    // Touch every page now: a first-touch page fault inside the handler would cost a trap.
    std::memset(buffer_.get(), 0, capacity);
  }

  sample_ring(const sample_ring&) = delete;
  sample_ring& operator=(const sample_ring&) = delete;

  [[nodiscard]] std::size_t capacity_bytes() const noexcept { return capacity_; }

  static constexpr std::size_t record_bytes(std::size_t depth) noexcept {
    return sizeof(sample_record) + depth * sizeof(std::uintptr_t);
  }

  // ASYNC-SIGNAL-SAFE. Copies `header` and `depth` pcs into the ring (header.size_bytes,
  // kind, depth and seq are filled in here). Returns false, counts and logs the drop when full.
  [[nodiscard]] bool try_push(const sample_record& header, const std::uintptr_t* pcs, std::size_t depth) noexcept {
    return try_push_parts(header, pcs, depth, nullptr, 0);
  }

  // ASYNC-SIGNAL-SAFE. As try_push, with a payload in two parts: `words` copied as they are,
  // then `stack_words` read from the interrupted thread's stack (see copy_stack_words).
  [[nodiscard]] bool try_push_parts(const sample_record& header, const std::uintptr_t* words, std::size_t word_count,
                                    const std::uintptr_t* stack_words, std::size_t stack_word_count) noexcept {
    const std::size_t depth = word_count + stack_word_count;
    if (depth > 0xFFFF) {
      note_drop(header);
      return false;
    }
    const std::size_t size = record_bytes(depth);
    const std::uint64_t head = head_.load(std::memory_order_relaxed);
    const std::uint64_t tail = tail_.load(std::memory_order_acquire);
    const std::size_t offset = static_cast<std::size_t>(head & (capacity_ - 1));
    const std::size_t until_end = capacity_ - offset;
    const std::size_t needed = size <= until_end ? size : until_end + size;  // padding, then the record
    if (size > capacity_ / 2 || capacity_ - (head - tail) < needed) {
      note_drop(header);
      return false;
    }
    std::uint64_t write = head;
    if (size > until_end) {
      auto* pad = reinterpret_cast<sample_record*>(buffer_.get() + offset);
      pad->size_bytes = static_cast<std::uint32_t>(until_end);
      pad->kind = record_kind::padding;
      write += until_end;
    }
    auto* record = reinterpret_cast<sample_record*>(buffer_.get() + (write & (capacity_ - 1)));
    *record = header;  // memcpy at most: on POSIX's async-signal-safe list since 2016
    record->size_bytes = static_cast<std::uint32_t>(size);
    record->kind = record_kind::sample;
    record->depth = static_cast<std::uint16_t>(depth);
    record->seq = next_seq_++;
    auto* out = reinterpret_cast<std::uintptr_t*>(record + 1);
    for (std::size_t i = 0; i < word_count; ++i) out[i] = words[i];
    copy_stack_words(out + word_count, stack_words, stack_word_count);
    head_.store(write + size, std::memory_order_release);
    return true;
  }

  // Collector only. Calls `visit(const sample_record&)` for every record available now, then
  // frees their space. Returns how many samples it visited.
  template <class Visit>
  std::size_t drain(Visit&& visit) {
    const std::uint64_t head = head_.load(std::memory_order_acquire);
    std::uint64_t tail = tail_.load(std::memory_order_relaxed);
    std::size_t visited = 0;
    while (tail != head) {
      const auto* record = reinterpret_cast<const sample_record*>(buffer_.get() + (tail & (capacity_ - 1)));
      if (record->kind == record_kind::sample) {
        visit(*record);
        ++visited;
      }
      tail += record->size_bytes;
    }
    tail_.store(tail, std::memory_order_release);
    return visited;
  }

  [[nodiscard]] std::uint64_t dropped_samples() const noexcept { return dropped_.load(std::memory_order_relaxed); }

  // Collector only: the drop log entries recorded so far (the newest drop_log_size of them).
  template <class Visit>
  void visit_drop_log(Visit&& visit) const {
    const std::uint64_t count = dropped_.load(std::memory_order_acquire);
    const std::uint64_t first = count > drop_log_size ? count - drop_log_size : 0;
    for (std::uint64_t i = first; i < count; ++i) {
      const atomic_drop_log_entry& e = drop_log_[i % drop_log_size];
      visit(drop_log_entry{e.t_ticks.load(std::memory_order_relaxed), e.ctx_id.load(std::memory_order_relaxed)});
    }
  }

 private:
  // ASYNC-SIGNAL-SAFE. Reads live stack memory, sanitizer red zones included: a sanitizer would
  // report those reads, so this loop is not instrumented, and the volatile reads keep the
  // compiler from turning it into a (sanitizer-intercepted) memcpy call.
  __attribute__((no_sanitize("address", "thread"))) static void copy_stack_words(
      std::uintptr_t* out, const std::uintptr_t* stack, std::size_t count) noexcept {
    const volatile std::uintptr_t* in = stack;
    for (std::size_t i = 0; i < count; ++i) out[i] = in[i];
  }

  // ASYNC-SIGNAL-SAFE.
  void note_drop(const sample_record& header) noexcept {
    const std::uint64_t n = dropped_.load(std::memory_order_relaxed);
    drop_log_[n % drop_log_size].t_ticks.store(header.t_ticks, std::memory_order_relaxed);
    drop_log_[n % drop_log_size].ctx_id.store(header.ctx_id, std::memory_order_relaxed);
    dropped_.store(n + 1, std::memory_order_release);
  }

  struct aligned_delete {
    void operator()(unsigned char* p) const noexcept { ::operator delete(p, std::align_val_t{64}); }
  };

  std::unique_ptr<unsigned char, aligned_delete> buffer_;
  std::size_t capacity_ = 0;
  std::uint64_t next_seq_ = 0;  // producer only
  alignas(64) std::atomic<std::uint64_t> head_{0};  // producer writes
  alignas(64) std::atomic<std::uint64_t> tail_{0};  // consumer writes
  std::atomic<std::uint64_t> dropped_{0};
  atomic_drop_log_entry drop_log_[drop_log_size];
};

static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

}  // namespace spanprof::detail
