// spanprof: configuration, and how the environment overrides it.
//
// These types are public (namespace spanprof) and re-exported by spanprof.hpp; they live here so
// the internals that read them compile on their own.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

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
  std::size_t ring_capacity_bytes = 256 * 1024;  // per thread; full ⇒ samples dropped and counted
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
  std::function<void(const error&)> on_error;
  bool log_errors_to_stderr = true;  // also print each error (rate-limited) on stderr

  // `base` with every SPANPROF_* variable that is set applied on top (see README):
  // SPANPROF_ENABLED, SPANPROF_OUTPUT_DIR, SPANPROF_FORMATS, SPANPROF_TRACES_SAMPLE_RATE,
  // SPANPROF_SAMPLING, SPANPROF_SAMPLE_RATE_HZ, SPANPROF_MODE, SPANPROF_UNWINDER,
  // SPANPROF_MAX_STACK_DEPTH, SPANPROF_RELEASE, SPANPROF_ENVIRONMENT,
  // SPANPROF_MAX_SPANS. Invalid values are reported in `problems` and leave the field as it was.
  static config from_environment(config base, std::vector<std::string>* problems = nullptr);
  static config from_environment() { return from_environment(config{}); }
};

namespace detail {

inline bool parse_bool(std::string_view text, bool& out) {
  if (text == "1" || text == "true" || text == "on" || text == "yes") return out = true, true;
  if (text == "0" || text == "false" || text == "off" || text == "no") return out = false, true;
  return false;
}

inline bool parse_formats(std::string_view text, output_format& out) {
  output_format result = output_format::none;
  while (!text.empty()) {
    const std::size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item == "chrome" || item == "chrome_trace" || item == "perfetto") {
      result = result | output_format::chrome_trace;
    } else if (item == "sentry" || item == "sentry_transaction") {
      result = result | output_format::sentry_transaction;
    } else if (item == "speedscope") {
      result = result | output_format::speedscope;
    } else if (item == "folded" || item == "collapsed") {
      result = result | output_format::folded;
    } else if (item == "flamegraph" || item == "svg") {
      result = result | output_format::flamegraph;
    } else if (item == "envelope" || item == "sentry_envelope") {
      result = result | output_format::sentry_envelope;
    } else if (item == "pprof") {
      result = result | output_format::pprof;
    } else if (item == "none") {
    } else if (!item.empty()) {
      return false;
    }
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  out = result;
  return true;
}

template <class Number>
bool parse_number(const char* text, double min, double max, Number& out) {
  errno = 0;
  char* end = nullptr;
  const double value = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !std::isfinite(value) || value < min || value > max) return false;
  out = static_cast<Number>(value);
  return true;
}

}  // namespace detail

inline config config::from_environment(config base, std::vector<std::string>* problems) {
  auto complain = [&](const char* variable, const char* value, const char* expected) {
    if (problems != nullptr) {
      problems->push_back(std::string("spanprof: ") + variable + " is \"" + value + "\"; expected " + expected);
    }
  };
  if (const char* v = std::getenv("SPANPROF_ENABLED")) {
    if (!detail::parse_bool(v, base.enabled)) complain("SPANPROF_ENABLED", v, "1/0, true/false, on/off");
  }
  if (const char* v = std::getenv("SPANPROF_OUTPUT_DIR")) {
    if (*v == '\0') complain("SPANPROF_OUTPUT_DIR", v, "a folder path"); else base.output_dir = v;
  }
  if (const char* v = std::getenv("SPANPROF_FORMATS")) {
    if (!detail::parse_formats(v, base.formats)) complain("SPANPROF_FORMATS", v, "a comma list of chrome, sentry, envelope, speedscope, pprof, folded, flamegraph, none");
  }
  if (const char* v = std::getenv("SPANPROF_TRACES_SAMPLE_RATE")) {
    if (!detail::parse_number(v, 0.0, 1.0, base.traces_sample_rate)) complain("SPANPROF_TRACES_SAMPLE_RATE", v, "a number in 0..1");
  }
  if (const char* v = std::getenv("SPANPROF_SAMPLE_RATE_HZ")) {
    if (!detail::parse_number(v, 1.0, 100000.0, base.sample_rate_hz)) complain("SPANPROF_SAMPLE_RATE_HZ", v, "1..100000");
  }
  if (const char* v = std::getenv("SPANPROF_MODE")) {
    const std::string_view mode = v;
    if (mode == "wall") base.mode = sampling_mode::wall;
    else if (mode == "cpu") base.mode = sampling_mode::cpu;
    else complain("SPANPROF_MODE", v, "wall or cpu");
  }
  if (const char* v = std::getenv("SPANPROF_SAMPLING")) {
    if (!detail::parse_bool(v, base.sampling)) complain("SPANPROF_SAMPLING", v, "1/0, true/false, on/off");
  }
  if (const char* v = std::getenv("SPANPROF_UNWINDER")) {
    const std::string_view name = v;
    if (name == "auto") base.stack_unwinder = unwinder::automatic;
    else if (name == "fp" || name == "frame_pointers") base.stack_unwinder = unwinder::frame_pointers;
    else if (name == "dwarf") base.stack_unwinder = unwinder::dwarf;
    else complain("SPANPROF_UNWINDER", v, "auto, fp or dwarf");
  }
  if (const char* v = std::getenv("SPANPROF_MAX_STACK_DEPTH")) {
    if (!detail::parse_number(v, 1.0, 1024.0, base.max_stack_depth)) complain("SPANPROF_MAX_STACK_DEPTH", v, "1..1024");
  }
  if (const char* v = std::getenv("SPANPROF_RELEASE")) base.release = v;
  if (const char* v = std::getenv("SPANPROF_ENVIRONMENT")) base.environment = v;
  if (const char* v = std::getenv("SPANPROF_MAX_SPANS")) {
    // 16383, as init() accepts (transaction_record::max_spans - 1) and the README documents.
    if (!detail::parse_number(v, 1.0, 16383.0, base.max_spans_per_transaction)) complain("SPANPROF_MAX_SPANS", v, "1..16383");
  }
  return base;
}

// What spanprof::stats() returns: counters since the last init().
struct counters {
  std::uint64_t transactions_started = 0;
  std::uint64_t transactions_finished = 0;
  std::uint64_t transactions_not_sampled = 0;   // traces_sample_rate said no
  std::uint64_t transactions_collected = 0;     // taken by the collector (written or not)
  std::uint64_t transactions_written = 0;       // every requested format written
  std::uint64_t transactions_dropped = 0;       // collector queue full, or finished after shutdown
  std::uint64_t transactions_aborted = 0;       // still open at shutdown or thread exit
  std::uint64_t spans_started = 0;              // not counted on the hot path: summed at finish
  std::uint64_t spans_dropped = 0;              // over max_spans_per_transaction
  std::uint64_t spans_auto_closed = 0;          // open when their parent or transaction ended
  std::uint64_t spans_closed_out_of_order = 0;
  std::uint64_t cross_context_ends = 0;         // span/transaction ended on another thread or fiber
  std::uint64_t nested_transactions = 0;
  std::uint64_t strings_truncated = 0;
  std::uint64_t invalid_utf8_repaired = 0;      // strings with bytes replaced by U+FFFD on output
  std::uint64_t files_written = 0;
  std::uint64_t errors = 0;                     // every report through on_error
  std::uint64_t api_misuse = 0;
  std::uint64_t samples_taken = 0;                // pushed into a ring by the SIGPROF handler
  std::uint64_t samples_dropped = 0;              // ring full (also in each profile's metadata)
  std::uint64_t samples_truncated = 0;            // stack deeper than max_stack_depth, or unwinding failed
  std::uint64_t samples_unregistered = 0;         // SIGPROF on a thread spanprof does not know
  std::uint64_t samples_outside_transaction = 0;  // arrived between transactions
  std::uint64_t samples_reentrant = 0;            // arrived while the handler ran
  std::uint64_t samples_orphaned = 0;             // their transaction was never written (dropped)
  std::uint64_t aggregate_stacks_over_cap = 0;    // per-name aggregate full: counted as "[other]"
  std::uint64_t aggregate_names_over_cap = 0;     // transactions of names beyond the aggregate cap
  std::uint64_t profiles_omitted = 0;             // envelopes sent without a profile: Sentry would reject it
  std::uint64_t profile_samples_dropped = 0;      // left out of Sentry profiles (outside the transaction, past 30 s, too big, alone on a thread)
};

}  // namespace spanprof
