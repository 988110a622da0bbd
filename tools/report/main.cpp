// spanprof-report: per-endpoint percentiles, gap culprits and time-weighted flame graphs from
// spanprof's output folders (README.md, section "spanprof-report").
//
//   spanprof-report [--out DIR] [--baseline DIR...] [--slowest N] [--sample-rate-hz HZ] [--quiet] DIR...
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

#include "report.hpp"

namespace {

int usage(const char* problem) {
  if (problem != nullptr) std::fprintf(stderr, "spanprof-report: %s\n", problem);
  std::fprintf(stderr,
               "usage: spanprof-report [--out DIR] [--baseline DIR...] [--slowest N] [--sample-rate-hz HZ] [--quiet] DIR...\n"
               "  DIR...            spanprof output folders (several processes or restarts), read recursively\n"
               "  --out DIR         where report.json and report.html go (default: spanprof-report)\n"
               "  --baseline DIR    a run before the change, compared side by side (repeatable)\n"
               "  --slowest N       slowest transactions shown one by one (default 10)\n"
               "  --sample-rate-hz  the rate the runs were sampled at (SPANPROF_SAMPLE_RATE_HZ, default 101)\n"
               "  --quiet           no line per skipped file\n");
  return 2;
}

bool write_file(const std::filesystem::path& path, const std::string& text) {
  const std::filesystem::path temp = path.string() + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out.write(text.data(), static_cast<std::streamsize>(text.size()))) return false;
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  return !ec;
}

}  // namespace

int main(int argc, char** argv) {
  namespace rep = spanprof::report;
  std::vector<std::string> inputs, baselines;
  std::string out_dir = "spanprof-report";
  rep::options opts;
  bool quiet = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> const char* { return i + 1 < argc ? argv[++i] : nullptr; };
    if (arg == "--out") {
      const char* v = value();
      if (v == nullptr) return usage("--out needs a folder");
      out_dir = v;
    } else if (arg == "--baseline") {
      const char* v = value();
      if (v == nullptr) return usage("--baseline needs a folder");
      baselines.emplace_back(v);
    } else if (arg == "--slowest" || arg == "--sample-rate-hz") {
      const char* v = value();
      char* end = nullptr;
      const long n = v == nullptr ? -1 : std::strtol(v, &end, 10);
      if (v == nullptr || *end != '\0' || n < 0 || n > 1'000'000 || (arg == "--sample-rate-hz" && n == 0)) {
        return usage(arg == "--slowest" ? "--slowest needs a count 0..1000000" : "--sample-rate-hz needs 1..1000000");
      }
      if (arg == "--slowest") opts.slowest = static_cast<std::size_t>(n);
      else opts.sample_rate_hz = n;
    } else if (arg == "--quiet") {
      quiet = true;
    } else if (arg == "--help" || arg == "-h") {
      usage(nullptr);
      return 0;
    } else if (!arg.empty() && arg[0] == '-') {
      return usage(("unknown option " + std::string(arg)).c_str());
    } else {
      inputs.emplace_back(arg);
    }
  }
  if (inputs.empty()) return usage("no output folder given");

  rep::run current(opts);
  rep::read_run(inputs, current, quiet);
  rep::run baseline(opts);
  if (!baselines.empty()) rep::read_run(baselines, baseline, quiet);
  const rep::run* base = baselines.empty() ? nullptr : &baseline;

  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  const std::string json = rep::report_json(current, base);
  const std::filesystem::path json_path = std::filesystem::path(out_dir) / "report.json";
  const std::filesystem::path html_path = std::filesystem::path(out_dir) / "report.html";
  if (!write_file(json_path, json) || !write_file(html_path, rep::report_html(current, base, json))) {
    std::fprintf(stderr, "spanprof-report: cannot write %s\n", out_dir.c_str());
    return 1;
  }
  std::fputs(rep::text_summary(current, base).c_str(), stdout);
  std::printf("report: %s\n", std::filesystem::absolute(html_path, ec).c_str());
  return current.transactions > 0 ? 0 : 1;
}
