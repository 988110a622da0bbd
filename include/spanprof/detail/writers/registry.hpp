// spanprof: every output format in one table — its Config flag, the suffix of its files, the
// function that writes one transaction, and the tools/ program that validates its files. The
// collector, the property test, the corpus the real clients check and the writers benchmark all
// read it, so adding a format is one line here.
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "../core/config.hpp"
#include "../core/text.hpp"
#include "chrome_trace.hpp"
#include "finished_transaction.hpp"
#include "flamegraph_svg.hpp"
#include "folded.hpp"
#include "pprof.hpp"
#include "sentry_profile.hpp"
#include "sentry_transaction.hpp"
#include "speedscope.hpp"

namespace spanprof::detail {

using transaction_writer = std::string (*)(const finished_transaction&, json_text_stats&);

struct format_entry {
  std::string_view name;
  output_format format;
  std::string_view extension;  // what the collector appends to the file stem
  transaction_writer write;
  std::string_view checker;  // tools/<checker> FILE...
  // One call, one file: the collector writes these straight from the table. The folded formats
  // share one fold and feed the aggregates, and the envelope needs a fresh profile id and its
  // problems reported, so the collector calls those itself; `write` here is their plain form.
  bool standalone = true;
};

namespace registry_detail {

// Their last parameters (links to the envelope, speedscope's options) have defaults, which a
// function pointer cannot carry.
inline std::string sentry_transaction(const finished_transaction& txn, json_text_stats& stats) {
  return write_sentry_transaction(txn, stats);
}
inline std::string speedscope(const finished_transaction& txn, json_text_stats& stats) {
  return write_speedscope(txn, stats);
}

// A fixed, valid uuid4 per transaction (the collector draws a random one), sent "now" = at its end.
inline std::string envelope(const finished_transaction& txn, json_text_stats& stats) {
  trace_id profile_id = txn.rec.event_id;
  profile_id.high = (profile_id.high & ~std::uint64_t{0xF000}) | 0x4000;
  profile_id.low = (profile_id.low & ~(std::uint64_t{0xC} << 60)) | (std::uint64_t{0x8} << 60);
  return write_sentry_envelope(txn, profile_id, txn.epoch_ns(txn.end_ns(0)), stats).envelope;
}
// Empty for a transaction without samples: the collector then writes no .folded file.
inline std::string folded(const finished_transaction& txn, json_text_stats& stats) {
  return write_folded(fold_transaction(txn, stats));
}
inline std::string flamegraph_title(const finished_transaction& txn) {
  return std::string(txn.name()) + " (" + to_hex(txn.rec.event_id).text + ")";
}
inline std::string flamegraph(const finished_transaction& txn, json_text_stats& stats) {
  return render_flamegraph_svg(fold_transaction(txn, stats), {.title = flamegraph_title(txn)}, stats);
}

}  // namespace registry_detail

inline constexpr format_entry all_formats[] = {
    {"chrome_trace", output_format::chrome_trace, ".trace.json", &write_chrome_trace, "check-chrome-trace"},
    {"sentry_transaction", output_format::sentry_transaction, ".transaction.json", &registry_detail::sentry_transaction,
     "check-sentry-transaction"},
    {"sentry_envelope", output_format::sentry_envelope, ".envelope", &registry_detail::envelope,
     "check-sentry-envelope", false},
    {"speedscope", output_format::speedscope, ".speedscope.json", &registry_detail::speedscope, "check-speedscope"},
    {"pprof", output_format::pprof, ".pb.gz", &write_pprof, "check-pprof"},
    {"folded", output_format::folded, ".folded", &registry_detail::folded, "check-folded", false},
    {"flamegraph", output_format::flamegraph, ".svg", &registry_detail::flamegraph, "check-folded", false},
};

}  // namespace spanprof::detail
