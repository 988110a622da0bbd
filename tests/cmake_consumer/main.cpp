// The packaging suite's consumer: inits spanprof with the output folder given as argv[1], runs one
// transaction with a span, shuts down, and exits 0 only if a file was written there.
#include <spanprof/spanprof.hpp>

#include <cstdio>
#include <filesystem>

namespace {
int work() {
  SPANPROF_TRANSACTION("consumer_request");
  int sum = 0;
  {
    SPANPROF_SPAN("work", "loop");
    for (int i = 0; i < 1000000; ++i) sum += i % 7;
  }
  return sum;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: consumer OUTPUT_DIR\n");
    return 2;
  }
  spanprof::config cfg = spanprof::config::from_environment();
  cfg.output_dir = argv[1];
  if (auto started = spanprof::init(cfg); !started) {
    std::fprintf(stderr, "spanprof::init failed: %s\n", started.error.c_str());
    return 1;
  }
  const int sum = work();
  spanprof::shutdown();
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(argv[1])) files += entry.is_regular_file();
  std::printf("sum %d, %d file(s) in %s\n", sum, files, argv[1]);
  return files > 0 ? 0 : 1;
}
