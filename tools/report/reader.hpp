// spanprof-report: reading one output file into a `transaction` (and nothing else).
//
// Which files: per transaction, its Sentry envelope (`*.envelope`) when there is one, else its
// Sentry transaction event (`*.transaction.json`). The envelope carries both the event (durations,
// status, spans and gap filling's derived spans) and the profile (samples with timestamps, frames,
// stacks), so one file per transaction gives everything; a `.transaction.json` beside an envelope
// is the same event and is not read again. The other formats hold nothing these two lack.
//
// Parsed with simdjson's On-Demand API, one file at a time: the file's bytes and its
// `transaction` are all that is held, whatever the size of the run.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace spanprof::report {

struct span {
  std::string span_id, parent_id, op, description, status;
  std::int64_t start_ns = 0, end_ns = 0;  // since the transaction's start
  bool inferred = false, gap = false;     // gap filling's profile.inferred / profile.gap
  std::string gap_reason;
  std::int64_t sample_count = 0, duration_error_ns = 0;
  bool low_confidence = false;
  std::string code_function, code_filepath;
  std::int64_t code_lineno = 0;
  [[nodiscard]] bool derived() const noexcept { return inferred || gap; }
  [[nodiscard]] std::int64_t duration_ns() const noexcept { return end_ns > start_ns ? end_ns - start_ns : 0; }
};

struct frame {
  std::string function, file;
  std::int64_t line = 0;
};

struct sample {
  std::int64_t t_ns = 0;  // since the transaction's start
  std::string thread_id;
  std::uint32_t stack_id = 0;
};

struct transaction {
  std::string event_id, name, op, status, root_span_id;
  std::int64_t start_epoch_ns = 0, end_epoch_ns = 0;
  std::vector<span> spans;  // instrumented and derived, as written
  bool has_profile = false;
  std::vector<frame> frames;
  std::vector<std::vector<std::uint32_t>> stacks;  // leaf first, indices into frames
  std::vector<sample> samples;
  std::string path;  // the file it was read from
  [[nodiscard]] std::int64_t duration_ns() const noexcept {
    return end_epoch_ns > start_epoch_ns ? end_epoch_ns - start_epoch_ns : 0;
  }
};

// "2026-12-07T11:22:39.745754Z" (any number of fraction digits, Z or ±hh:mm) as ns since the epoch.
std::optional<std::int64_t> parse_rfc3339_ns(std::string_view text);

// Reads `path` into `out`. On failure returns false and sets `problem` (one line: why).
bool read_transaction_file(const std::string& path, simdjson::ondemand::parser& parser, transaction& out,
                           std::string& problem);

}  // namespace spanprof::report
