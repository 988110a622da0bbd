// What spanprof's benchmarks share: medians of repeated runs (a single time means nothing on
// these shared machines; ratios of medians measured side by side do) and Google Benchmark flag
// defaults that the user's own flags override.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace spanprof_bench {

// NaN for no values, so that a missing case prints as "nan" instead of a made-up figure.
inline double median(std::vector<double> values) {
  if (values.empty()) return std::nan("");
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

inline double minimum(const std::vector<double>& values) {
  return values.empty() ? std::nan("") : *std::min_element(values.begin(), values.end());
}

// Is `flag_name` among the arguments (as --flag or --flag=value)?
inline bool has_flag(const std::vector<char*>& args, const char* flag_name) {
  const std::size_t length = std::strlen(flag_name);
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (std::strncmp(args[i], flag_name, length) == 0 && (args[i][length] == '=' || args[i][length] == '\0')) {
      return true;
    }
  }
  return false;
}

// Appends each "--flag=value" whose flag the user did not give. The strings must outlive args.
inline void add_default_flags(std::vector<char*>& args, std::initializer_list<char*> defaults) {
  for (char* flag : defaults) {
    const std::string_view text(flag);
    const std::string name(text.substr(0, text.find('=')));
    if (!has_flag(args, name.c_str())) args.push_back(flag);
  }
}

// One benchmark case's per-iteration times, one entry per repetition, for ratios of medians.
struct run_times {
  std::vector<double> real_ns;
  std::vector<double> cpu_ns;

  void add(const benchmark::BenchmarkReporter::Run& run) {
    const double iterations = static_cast<double>(run.iterations);
    real_ns.push_back(run.real_accumulated_time * 1e9 / iterations);
    cpu_ns.push_back(run.cpu_accumulated_time * 1e9 / iterations);
  }
};

// Google Benchmark's console table, plus each repetition handed to record() (aggregates,
// errors and empty runs left out), so that a benchmark can print ratios of medians once all
// its cases have run.
class repetition_reporter : public benchmark::ConsoleReporter {
 public:
  using benchmark::ConsoleReporter::ConsoleReporter;

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.run_type != Run::RT_Iteration || run.error_occurred || run.iterations <= 0) continue;
      record(run);
    }
    benchmark::ConsoleReporter::ReportRuns(runs);
  }

 protected:
  virtual void record(const Run& run) = 0;
};

}  // namespace spanprof_bench
