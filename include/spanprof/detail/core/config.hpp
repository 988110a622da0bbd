// spanprof: configuration, and how the environment overrides it.
//
// These types are public (namespace spanprof) and part of the light header spanprof.hpp; the
// parsing of the environment is the engine's (engine/environment.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "callback.hpp"

namespace spanprof {

// Output formats, combinable: `output_format::chrome_trace | output_format::sentry_transaction`.
enum class output_format : unsigned {
  none = 0,
  chrome_trace = 1u << 0,        // <name>-<id>.trace.json: Perfetto / chrome://tracing
  sentry_transaction = 1u << 1,  // <name>-<id>.transaction.json: Sentry's transaction event
  speedscope = 1u << 2,  // <name>-<id>.speedscope.json: spans (evented) + stacks (sampled)
  pprof = 1u << 3,       // <name>-<id>.pb.gz: gzipped profile.proto for go tool pprof
  // <name>-<id>.folded: folded stacks for flamegraph.pl, speedscope, Pyroscope; also the
  // per-name aggregate <name>.aggregate.folded
  folded = 1u << 4,
  // <name>-<id>.svg: a self-contained flame graph; also the per-name <name>.aggregate.svg
  flamegraph = 1u << 5,
  sentry_envelope = 1u << 6,  // <name>-<id>.envelope: the event plus its v1 profile, for Sentry's envelope endpoint
};
constexpr output_format operator|(output_format a, output_format b) noexcept {
  return static_cast<output_format>(static_cast<unsigned>(a) | static_cast<unsigned>(b));
}
constexpr bool has_format(output_format set, output_format f) noexcept {
  return (static_cast<unsigned>(set) & static_cast<unsigned>(f)) != 0;
}

// `wall` samples threads inside a transaction whether running or blocked (Sentry's model; finds
// time spent waiting); `cpu` only while they burn CPU (per-thread CPU-time timers).
enum class sampling_mode { wall, cpu };

// How the sampler walks stacks. `automatic`: frame pointers when this code was built with them
// (Meson option frame_pointers, which defines SPANPROF_FRAME_POINTERS), dwarf otherwise.
// `dwarf` works without frame pointers: the handler copies registers and the top of the stack,
// the collector unwinds the copy with DWARF CFI (elfutils libdw).
enum class unwinder { automatic, frame_pointers, dwarf };

enum class error_kind {
  invalid_config,      // a Config field or environment variable is out of range; default kept
  output_unavailable,  // the output folder cannot be created or written
  write_failed,        // a profile file could not be written
  queue_full,          // the collector fell behind; a finished transaction was dropped
  api_misuse,          // a span or transaction used in a way the API does not allow
  profile_trimmed,     // samples (or a whole Sentry profile) left out because Sentry would reject them
};

struct error {
  error_kind kind;
  std::string message;  // one line, starts with "spanprof: ", names the value and what was expected
};

// What init() says. `ok` is false when the configuration was refused; the program carries on
// unprofiled and `error` says what was wrong (it also went to the error callback).
struct init_result {
  bool ok = true;
  std::string error;
  explicit operator bool() const noexcept { return ok; }
};

struct config {
  bool enabled = true;
  std::string output_dir = "spanprof-profiles";
  output_format formats = output_format::chrome_trace | output_format::sentry_transaction;
  double traces_sample_rate = 1.0;  // fraction of transactions recorded, decided at begin
  bool sampling = true;             // SIGPROF stack sampling of threads inside transactions
  unsigned sample_rate_hz = 101;    // 101, not 100: avoids lock-step with periodic work
  sampling_mode mode = sampling_mode::wall;
  unwinder stack_unwinder = unwinder::automatic;
  std::size_t max_stack_depth = 128;             // deeper stacks are cut and flagged truncated
  // Per thread; a full ring drops samples and counts them. 0: sized from the rate and the
  // unwinder's record size to hold ring_window_ms of samples (sampler.hpp), so the collector
  // may be busy writing a transaction that long without a loss.
  std::size_t ring_capacity_bytes = 0;
  // dwarf unwinder: bytes of stack copied per sample, from the interrupted sp upwards. Frames
  // beyond it are cut (flagged truncated); 16 KiB holds ~100 typical C++ frames.
  std::size_t stack_copy_bytes = 16 * 1024;
  // Frames from modules whose path contains one of these are marked in_app (Sentry's flag for
  // "your code"); the main executable always is.
  std::vector<std::string> in_app_modules;
  // If the program already has a SIGPROF handler, sampling stays off and init() reports it,
  // unless this is true: then spanprof samples and calls that handler after its own.
  bool chain_sigprof = false;
  std::string release;
  std::string environment = "production";
  std::size_t max_spans_per_transaction = 4096;  // further spans are dropped and counted
  std::size_t max_data_per_transaction = 1024;   // key/value entries, likewise
  std::size_t max_description_bytes = 8192;      // longer descriptions are cut, marked "…[truncated]"
  std::size_t max_name_bytes = 200;              // Sentry's limit for transaction names
  std::size_t max_pending_transactions = 4096;   // finished but not yet written; beyond, dropped
  // Called on the thread that hit the error (the collector for I/O), in addition to the stderr
  // line. Must not throw; exceptions are swallowed and counted.
  callback<void(const error&)> on_error;
  bool log_errors_to_stderr = true;  // also print each error (rate-limited) on stderr

  // `base` with every SPANPROF_* variable that is set applied on top (see README):
  // SPANPROF_ENABLED, SPANPROF_OUTPUT_DIR, SPANPROF_FORMATS, SPANPROF_TRACES_SAMPLE_RATE,
  // SPANPROF_SAMPLING, SPANPROF_SAMPLE_RATE_HZ, SPANPROF_MODE, SPANPROF_UNWINDER,
  // SPANPROF_MAX_STACK_DEPTH, SPANPROF_RELEASE, SPANPROF_ENVIRONMENT,
  // SPANPROF_MAX_SPANS. Invalid values are reported in `problems` and leave the field as it was.
  static config from_environment(config base, std::vector<std::string>* problems = nullptr);
  static config from_environment() { return from_environment(config{}); }
};

}  // namespace spanprof
