// Every output writer, as the tests and benchmarks name it: the collector's own table
// (writers/registry.hpp). The property test, the corpus the real clients check
// (writers_corpus.cpp, run_writers_corpus_test.sh) and the writers benchmark all iterate it.
// `checker` is the tools/ program that validates a format's files: the corpus script fails for
// a format whose checker is missing, and the property test fails for a writer without
// format-specific checks.
#pragma once

#include <spanprof/detail/writers/registry.hpp>

namespace spanprof_test {

using writer_entry = spanprof::detail::format_entry;
inline constexpr const auto& all_writers = spanprof::detail::all_formats;

}  // namespace spanprof_test
