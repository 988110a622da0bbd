// writers_corpus: writes a seeded corpus of synthetic transactions (synthetic_transaction.hpp)
// in every format of writers_table.hpp into a folder, through the collector's atomic writer
// (output.hpp), for tests/run_writers_corpus_test.sh to open with the real clients.
//
//   writers_corpus OUTPUT_DIR [COUNT]   write COUNT (default 30) transactions in every format
//   writers_corpus --formats            print "name extension checker" per writer, one a line
//
// The first transactions each push one knob to its extreme (1 MiB strings, 500+ frame stacks,
// zero and one sample, many spans, deep nesting, one timestamp on several threads, open and
// zero-length spans); the rest mix knobs by seed. Exit 0, or 1 with the reason on stderr.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include <spanprof/detail/collect/output.hpp>

#include "support/synthetic_transaction.hpp"
#include "support/writers_table.hpp"

namespace {

using spanprof_test::synthetic_knobs;

// At most what the collector keeps of one transaction (collector.hpp, 3000), so the files are
// the size a real one can reach.
constexpr std::size_t max_samples = 3000;

synthetic_knobs knobs_for(std::size_t index, std::uint64_t seed) {
  synthetic_knobs k = spanprof_test::knobs_for_seed(seed);
  switch (index) {
    case 0: k.huge_strings = k.hostile_names = k.invalid_utf8 = true; k.sample_count = spanprof_test::huge_strings_max_samples; break;
    case 1: k.extra_stack_depth = 600; k.max_stack_depth = 1024; k.sample_count = 30; break;
    case 2: k.sample_count = 0; break;
    case 3: k.sample_count = 1; break;
    case 4: k.span_count = 2000; k.nesting_depth = 3; k.sample_count = 1000; break;
    case 5: k.span_count = 300; k.nesting_depth = 250; k.sample_count = 500; break;
    case 6: k.same_timestamp_samples = true; k.thread_count = 4; k.sample_count = max_samples; k.duration_ns = 29'000'000'000; break;
    case 7: k.open_spans = k.zero_length_spans = true; k.span_count = 200; k.sample_count = 300; break;
    case 8: k.hostile_names = k.invalid_utf8 = true; k.max_stack_depth = 12; break;
    default: break;
  }
  if (k.sample_count > max_samples) k.sample_count = max_samples;
  return k;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string_view(argv[1]) == "--formats") {
    for (const auto& w : spanprof_test::all_writers) {
      std::printf("%.*s %.*s %.*s\n", static_cast<int>(w.name.size()), w.name.data(), static_cast<int>(w.extension.size()),
                  w.extension.data(), static_cast<int>(w.checker.size()), w.checker.data());
    }
    return 0;
  }
  if (argc < 2 || argc > 3) {
    std::fprintf(stderr, "usage: %s OUTPUT_DIR [COUNT] | --formats\n", argv[0]);
    return 2;
  }
  const std::size_t count = argc == 3 ? std::strtoull(argv[2], nullptr, 10) : 30;
  try {
    spanprof::detail::output_folder folder;
    std::string error;
    if (!folder.open(argv[1], error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
    std::size_t files = 0;
    std::vector<std::size_t> written(std::size(spanprof_test::all_writers), 0);  // per writer
    for (std::size_t i = 0; i < count; ++i) {
      const std::uint64_t seed = 1000 + i;
      const spanprof_test::synthetic_transaction g(seed, knobs_for(i, seed));
      // The collector's naming: a safe stem from the (hostile) name, then the event id.
      const std::string stem = spanprof::detail::safe_file_stem(g.txn().name()) + "-" +
                               spanprof::detail::to_hex(g.txn().rec.event_id).text;
      for (std::size_t k = 0; k < std::size(spanprof_test::all_writers); ++k) {
        const auto& w = spanprof_test::all_writers[k];
        spanprof::detail::json_text_stats stats;
        const std::string content = w.write(g.txn(), stats);
        // As the collector: no .folded file without samples, no envelope over Sentry's 1 MB.
        if (content.empty()) continue;
        ++written[k];
        if (!folder.write_atomically(stem + std::string(w.extension), content, error)) {
          std::fprintf(stderr, "%s\n", error.c_str());
          return 1;
        }
        ++files;
      }
    }
    std::printf("wrote %zu files (%zu transactions x %zu formats, minus the empty ones) into %s\n", files, count,
                std::size(spanprof_test::all_writers), argv[1]);
    // What the script must find: one line "extension count" per writer.
    std::string expected;
    for (std::size_t k = 0; k < std::size(spanprof_test::all_writers); ++k) {
      expected += std::string(spanprof_test::all_writers[k].extension) + " " + std::to_string(written[k]) + "\n";
    }
    if (!folder.write_atomically("expected-files", expected, error)) {
      std::fprintf(stderr, "%s\n", error.c_str());
      return 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "writers_corpus: %s\n", e.what());
    return 1;
  }
  return 0;
}
