// Every output writer, in one table: the property test, the corpus the real clients check
// (writers_corpus.cpp, run_writers_corpus_test.sh) and the writers benchmark all iterate it, so
// adding a writer is one line here. `checker` is the tools/ program that validates its files:
// the corpus script fails for a format whose checker is missing, and the property test fails
// for a writer without format-specific checks.
#pragma once

#include <spanprof/detail/writers/chrome_trace.hpp>
#include <spanprof/detail/writers/flamegraph_svg.hpp>
#include <spanprof/detail/writers/folded.hpp>
#include <spanprof/detail/writers/pprof.hpp>
#include <spanprof/detail/writers/sentry_profile.hpp>
#include <spanprof/detail/writers/sentry_transaction.hpp>
#include <spanprof/detail/writers/speedscope.hpp>

#include <string>
#include <string_view>

namespace spanprof_test {

struct writer_entry {
  std::string_view name;
  std::string_view extension;  // what the collector appends to the file stem
  std::string (*write)(const spanprof::detail::finished_transaction&, spanprof::detail::json_text_stats&);
  std::string_view checker;    // tools/<checker> FILE...
};

// The writers whose collector call is more than one function, called as the collector does.
namespace writers_table_detail {
namespace sd = spanprof::detail;

inline std::string transaction(const sd::finished_transaction& txn, sd::json_text_stats& stats) {
  return sd::write_sentry_transaction(txn, stats);
}
inline std::string envelope(const sd::finished_transaction& txn, sd::json_text_stats& stats) {
  // A fixed, valid uuid4 per transaction (the collector draws a random one), sent "now" = at its end.
  sd::trace_id profile_id = txn.rec.event_id;
  profile_id.high = (profile_id.high & ~std::uint64_t{0xF000}) | 0x4000;
  profile_id.low = (profile_id.low & ~(std::uint64_t{0xC} << 60)) | (std::uint64_t{0x8} << 60);
  return sd::write_sentry_envelope(txn, profile_id, txn.epoch_ns(txn.end_ns(0)), stats).envelope;
}
inline std::string speedscope(const sd::finished_transaction& txn, sd::json_text_stats& stats) {
  return sd::write_speedscope(txn, stats);
}
// Empty for a transaction without samples: the collector then writes no .folded file.
inline std::string folded(const sd::finished_transaction& txn, sd::json_text_stats& stats) {
  return sd::write_folded(sd::fold_transaction(txn, stats));
}
inline std::string flamegraph(const sd::finished_transaction& txn, sd::json_text_stats& stats) {
  const std::string title = std::string(txn.name()) + " (" + sd::to_hex(txn.rec.event_id).text + ")";
  return sd::render_flamegraph_svg(sd::fold_transaction(txn, stats), {.title = title}, stats);
}
}  // namespace writers_table_detail

inline constexpr writer_entry all_writers[] = {
    {"chrome_trace", ".trace.json", &spanprof::detail::write_chrome_trace, "check-chrome-trace"},
    {"sentry_transaction", ".transaction.json", &writers_table_detail::transaction, "check-sentry-transaction"},
    {"sentry_envelope", ".envelope", &writers_table_detail::envelope, "check-sentry-envelope"},
    {"speedscope", ".speedscope.json", &writers_table_detail::speedscope, "check-speedscope"},
    {"pprof", ".pb.gz", &spanprof::detail::write_pprof, "check-pprof"},
    {"folded", ".folded", &writers_table_detail::folded, "check-folded"},
    {"flamegraph", ".svg", &writers_table_detail::flamegraph, "check-folded"},
};

}  // namespace spanprof_test
