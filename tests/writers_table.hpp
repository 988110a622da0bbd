// Every output writer, in one table: the property test, the corpus the real clients check
// (writers_corpus.cpp, run_writers_corpus_test.sh) and the writers benchmark all iterate it, so
// adding a writer is one line here. `checker` is the tools/ program that validates its files:
// the corpus script fails for a format whose checker is missing, and the property test fails
// for a writer without format-specific checks.
#pragma once

#include <spanprof/detail/writers/chrome_trace.hpp>
#include <spanprof/detail/writers/sentry_transaction.hpp>

#include <string>
#include <string_view>

namespace spanprof_test {

struct writer_entry {
  std::string_view name;
  std::string_view extension;  // what the collector appends to the file stem
  std::string (*write)(const spanprof::detail::finished_transaction&, spanprof::detail::json_text_stats&);
  std::string_view checker;    // tools/<checker> FILE...
};

inline constexpr writer_entry all_writers[] = {
    {"chrome_trace", ".trace.json", &spanprof::detail::write_chrome_trace, "check-chrome-trace"},
    {"sentry_transaction", ".transaction.json", &spanprof::detail::write_sentry_transaction, "check-sentry-transaction"},
};

}  // namespace spanprof_test
