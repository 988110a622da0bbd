// spanprof: what one span is made of — status, call site, strings, flags, key/value data.
//
// Fields the owner changes after publishing (end, status, flags) are relaxed atomics, which on
// x86-64 compile to the same plain `mov` as a non-atomic store; see transaction_record.hpp for
// who reads them concurrently.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
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

}  // namespace spanprof::detail
