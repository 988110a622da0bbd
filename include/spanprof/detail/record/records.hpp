// spanprof: the records a transaction is made of (spans, key/value data, strings).
//
// A transaction record is written by exactly one owner (the execution context that opened it)
// and, after finish, read by exactly one collector. The only concurrent reader is `shutdown()`
// snapshotting a transaction that another thread still has open. Hence:
//   - storage never moves (fixed chunks, never a reallocating vector), so a reader holding a
//     count it loaded with acquire can read every element below it;
//   - fields the owner changes after publishing (span end, status) are relaxed atomics, which
//     on x86-64 compile to the same plain `mov` as a non-atomic store.
// Records are recycled with their chunks (see pool.hpp), so steady-state span begin/end never
// allocates.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string_view>

#include "../core/ids.hpp"

namespace spanprof::detail {

// Sentry's span statuses (`develop.sentry.dev`, "Span Status").
enum class span_status : std::uint8_t {
  ok,
  cancelled,
  unknown,
  invalid_argument,
  deadline_exceeded,
  not_found,
  already_exists,
  permission_denied,
  resource_exhausted,
  failed_precondition,
  aborted,
  out_of_range,
  unimplemented,
  internal_error,
  unavailable,
  data_loss,
  unauthenticated,
};

// As written in Sentry events. `unknown` is spelled "unknown_error": sentry-cli (Sentry's Rust
// protocol types) rejects the whole transaction on "unknown", Relay accepts both spellings.
inline std::string_view status_name(span_status s) noexcept {
  static constexpr std::string_view names[] = {
      "ok",        "cancelled",          "unknown_error", "invalid_argument",  "deadline_exceeded",
      "not_found", "already_exists",     "permission_denied", "resource_exhausted",
      "failed_precondition", "aborted",  "out_of_range", "unimplemented", "internal_error",
      "unavailable", "data_loss",        "unauthenticated"};
  const auto index = static_cast<std::size_t>(s);
  return index < std::size(names) ? names[index] : "unknown_error";
}

// Where a macro was written: static storage, one per macro expansion (like Tracy's
// SourceLocationData), so a span carries its call site for the cost of a pointer.
struct span_site {
  const char* function;
  const char* file;
  std::uint32_t line;
};

// A string copied into the transaction's arena. `original_size` > `size` means it was cut at
// the cap; the writer adds the truncation marker.
struct string_ref {
  const char* data = nullptr;
  std::uint32_t size = 0;
  std::uint32_t original_size = 0;
  [[nodiscard]] std::string_view view() const noexcept { return {data == nullptr ? "" : data, size}; }
  [[nodiscard]] bool truncated() const noexcept { return original_size > size; }
};

enum span_flags : std::uint8_t {
  span_flag_auto_closed = 1u << 0,     // closed by spanprof, not by its owner (see status)
  span_flag_out_of_order = 1u << 1,    // ended while spans it opened were still open
  span_flag_cross_context = 1u << 2,   // its end was attempted from another execution context
};

// Every field of `gapfill.md` §1's span record.
struct span_record {
  span_id id = 0;
  span_id parent_id = 0;            // 0 for a root span of a top-level transaction
  std::uint32_t parent_index = 0;   // index of the parent in this transaction; root: itself
  std::uint64_t ctx_id = 0;
  std::int64_t begin_ticks = 0;
  std::atomic<std::int64_t> end_ticks{0};  // 0 while open
  std::atomic<span_status> status{span_status::ok};
  std::atomic<std::uint8_t> flags{0};
  string_ref op;
  string_ref description;
  const span_site* site = nullptr;  // the macro's call site: function, file, line
  std::uintptr_t anchor_fp = 0;     // __builtin_frame_address(0) of the function that opened it
};

enum class data_kind : std::uint8_t { string, integer, unsigned_integer, floating, boolean };

struct data_entry {
  std::uint32_t span_index = 0;
  data_kind kind = data_kind::string;
  string_ref key;
  string_ref text;
  std::int64_t integer = 0;
  double floating = 0.0;
};

// Append-only log of T in fixed chunks. One writer; readers load `size()` with acquire and may
// then read every element below it while the writer keeps appending.
template <class T, std::size_t ChunkSize, std::size_t MaxChunks>
class chunked_log {
 public:
  static constexpr std::size_t max_size = ChunkSize * MaxChunks;

  chunked_log() = default;
  chunked_log(const chunked_log&) = delete;
  chunked_log& operator=(const chunked_log&) = delete;
  ~chunked_log() {
    for (auto& chunk : chunks_) delete[] chunk.load(std::memory_order_relaxed);
  }

  // Owner only. Returns nullptr past `limit` or when a chunk cannot be allocated; the caller
  // counts the loss. Allocates only the first time a chunk index is reached in this record's
  // life: recycled records keep their chunks.
  T* prepare_next(std::size_t limit) noexcept {
    const std::size_t index = size_.load(std::memory_order_relaxed);
    if (index >= limit || index >= max_size) return nullptr;
    auto& slot = chunks_[index / ChunkSize];
    T* chunk = slot.load(std::memory_order_relaxed);
    if (chunk == nullptr) {
      chunk = new (std::nothrow) T[ChunkSize];
      if (chunk == nullptr) return nullptr;
      slot.store(chunk, std::memory_order_release);
    }
    return &chunk[index % ChunkSize];
  }
  // Owner only: makes the element prepared last visible to readers.
  void publish_next() noexcept { size_.store(size_.load(std::memory_order_relaxed) + 1, std::memory_order_release); }

  [[nodiscard]] std::size_t size() const noexcept { return size_.load(std::memory_order_acquire); }
  T& operator[](std::size_t i) noexcept { return chunks_[i / ChunkSize].load(std::memory_order_acquire)[i % ChunkSize]; }
  const T& operator[](std::size_t i) const noexcept {
    return chunks_[i / ChunkSize].load(std::memory_order_acquire)[i % ChunkSize];
  }

  // Owner or exclusive holder only (the record is not shared any more).
  void clear() noexcept { size_.store(0, std::memory_order_relaxed); }

 private:
  std::atomic<std::size_t> size_{0};
  std::array<std::atomic<T*>, MaxChunks> chunks_{};
};

// Bump allocator for the strings of one transaction. Blocks are kept across recycling.
class string_arena {
 public:
  static constexpr std::size_t block_size = 16 * 1024;

  string_arena() = default;
  string_arena(const string_arena&) = delete;
  string_arena& operator=(const string_arena&) = delete;
  ~string_arena() {
    release_oversized();
    for (block* b = head_; b != nullptr;) {
      block* next = b->next;
      ::operator delete(b);
      b = next;
    }
  }

  // Owner only. Copies at most `cap` bytes of `text`, cut back to a UTF-8 character boundary.
  // Never fails loudly: on allocation failure it returns an empty string marked as truncated.
  // The common case (fits the cap and the current block) is inline and branch-light: with a
  // string literal the compiler sees the length and inlines the copy.
  [[gnu::always_inline]] string_ref copy(std::string_view text, std::size_t cap) noexcept {
    const std::size_t size = text.size();
    if (size <= cap && current_ != nullptr && current_->capacity - current_->used >= size) [[likely]] {
      char* dest = current_->bytes() + current_->used;
      current_->used += size;
      std::memcpy(dest, text.data(), size);
      const auto size32 = static_cast<std::uint32_t>(size);
      return {dest, size32, size32};
    }
    return copy_slow(text, cap);
  }

  // Exclusive holder only.
  void reset() noexcept {
    release_oversized();
    current_ = head_;
    if (current_ != nullptr) current_->used = 0;
  }

 private:
  struct block {
    block* next;
    block* oversized_next;
    std::size_t used;
    std::size_t capacity;
    char* bytes() noexcept { return reinterpret_cast<char*>(this + 1); }
  };

  [[gnu::cold]] string_ref copy_slow(std::string_view text, std::size_t cap) noexcept {
    std::size_t keep = text.size() < cap ? text.size() : cap;
    if (keep < text.size()) {
      // Do not cut a multi-byte character in half: back up over continuation bytes.
      while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) --keep;
    }
    string_ref ref;
    ref.original_size = static_cast<std::uint32_t>(text.size() < UINT32_MAX ? text.size() : UINT32_MAX);
    char* dest = allocate(keep);
    if (dest == nullptr) return ref;
    if (keep != 0) std::memcpy(dest, text.data(), keep);
    ref.data = dest;
    ref.size = static_cast<std::uint32_t>(keep);
    return ref;
  }

  char* allocate(std::size_t size) noexcept {
    if (size == 0) return const_cast<char*>("");
    if (size > block_size / 4) {
      // A huge string (a 1 MiB SQL statement, capped by the caller) gets its own block, freed
      // on reset, so one big description does not bloat every recycled record.
      auto* b = static_cast<block*>(::operator new(sizeof(block) + size, std::nothrow));
      if (b == nullptr) return nullptr;
      *b = block{nullptr, oversized_, size, size};
      oversized_ = b;
      return b->bytes();
    }
    while (current_ == nullptr || current_->capacity - current_->used < size) {
      if (current_ != nullptr && current_->next != nullptr) {
        current_ = current_->next;
        current_->used = 0;
        continue;
      }
      auto* b = static_cast<block*>(::operator new(sizeof(block) + block_size, std::nothrow));
      if (b == nullptr) return nullptr;
      *b = block{nullptr, nullptr, 0, block_size};
      if (current_ == nullptr) head_ = b; else current_->next = b;
      current_ = b;
    }
    char* out = current_->bytes() + current_->used;
    current_->used += size;
    return out;
  }

  void release_oversized() noexcept {
    for (block* b = oversized_; b != nullptr;) {
      block* next = b->oversized_next;
      ::operator delete(b);
      b = next;
    }
    oversized_ = nullptr;
  }

  block* head_ = nullptr;
  block* current_ = nullptr;
  block* oversized_ = nullptr;
};

// gapfill.md §1's fiber switch event: the transaction's execution context stopped (suspend) or
// started (resume) running on thread `tid` at `t_ticks`. A transaction begins on-thread, on its
// record's `thread_id`; each suspend ends an on-thread interval, each resume starts one, and the
// last one ends with the transaction. Recorded for every context a switch involves (a thread's
// own context is suspended while a fiber runs on it), only while the context has a transaction
// open; a transaction that was never switched out has none and was on-thread throughout.
enum class fiber_switch_kind : std::uint8_t { suspend, resume };

struct fiber_switch_event {
  std::int64_t t_ticks = 0;  // same clock as the spans and samples
  std::uint32_t tid = 0;
  fiber_switch_kind kind = fiber_switch_kind::suspend;
};

// Fiber contexts have ids with this bit set (a counter below it), so they never collide with a
// thread's ctx_id, which is its kernel tid (gapfill.md §1).
inline constexpr std::uint64_t fiber_ctx_id_bit = std::uint64_t{1} << 63;
inline constexpr bool is_fiber_ctx_id(std::uint64_t ctx_id) noexcept { return (ctx_id & fiber_ctx_id_bit) != 0; }

enum class transaction_state : std::uint8_t {
  free,          // in a pool, not a transaction
  open,          // its owner is recording into it
  finished,      // handed to the collector by its owner
  snapshotting,  // shutdown() is copying it while the owner may still append
  abandoned,     // shutdown() wrote a copy; the owner's finish only recycles it
};

// Per-transaction counters written into the profile's metadata.
struct transaction_counters {
  std::uint32_t spans_dropped_over_cap = 0;
  std::uint32_t spans_closed_out_of_order = 0;
  std::uint32_t spans_auto_closed = 0;
  std::uint32_t cross_context_ends = 0;
  std::uint32_t data_dropped_over_cap = 0;
  std::uint32_t switch_events_dropped = 0;  // beyond transaction_record::max_switch_events
};

struct transaction_record {
  static constexpr std::size_t span_chunk = 64;
  static constexpr std::size_t max_spans = span_chunk * 256;
  static constexpr std::size_t switch_chunk = 64;
  static constexpr std::size_t max_switch_events = switch_chunk * 64;  // 2,048 suspensions

  // Immutable once the record is published to the owning context.
  trace_id trace{};
  trace_id event_id{};
  std::uint64_t serial = 0;          // distinguishes reuses of the same record (owner only)
  span_id parent_span_id = 0;        // the outer transaction's active span when nested
  std::uint64_t ctx_id = 0;          // the execution context it was opened on (thread or fiber)
  int thread_id = 0;                 // the thread it began on
  char thread_name[16] = {};
  bool on_fiber = false;             // ctx_id is a fiber's (is_fiber_ctx_id)
  std::uint32_t max_spans_limit = 0;
  std::uint32_t max_data_limit = 0;
  std::uint32_t description_cap = 0;

  chunked_log<span_record, span_chunk, 256> spans;  // spans[0] is the transaction itself
  chunked_log<data_entry, 32, 64> data;
  // Fiber switches of its context while it was open, in time order (fiber_switch_event). Appended
  // by whichever thread runs the switch, which owns the context at that moment.
  chunked_log<fiber_switch_event, switch_chunk, max_switch_events / switch_chunk> switches;
  string_arena strings;

  std::atomic<transaction_state> state{transaction_state::free};
  std::uint32_t active_index = 0;  // owner only: innermost open span
  transaction_counters counters;     // owner only until finished

  transaction_record* next = nullptr;  // intrusive link for the pool and the finished queue

  // Exclusive holder only: make a recycled record look new while keeping its memory, so a
  // service whose transactions look alike allocates nothing per span in steady state.
  void reset() noexcept {
    spans.clear();
    data.clear();
    switches.clear();
    strings.reset();
    state.store(transaction_state::free, std::memory_order_relaxed);
    active_index = 0;
    counters = {};
    parent_span_id = 0;
    thread_name[0] = '\0';
    on_fiber = false;
    next = nullptr;
  }
};

// ASYNC-SIGNAL-SAFE. The id samples carry for this transaction (sample_record::txn_id): the low
// half of its event id.
inline std::uint64_t txn_id_of(const transaction_record& rec) noexcept { return rec.event_id.low; }

}  // namespace spanprof::detail
