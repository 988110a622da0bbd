// spanprof's example service: an HTTP API over SQLite with two planted performance findings
// (findings.hpp), profiled by spanprof. See README.md ("The example service").
//
//   service --port 0 --db-dir /tmp/svc --output-dir /tmp/svc/profiles
//   service-load --port PORT --mix slow --requests 2000
//
// Flags override the defaults; SPANPROF_* environment variables override the flags (e.g.
// SPANPROF_ENABLED=0 to compare throughput without profiling).
#include <spanprof/spanprof.hpp>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "db.hpp"
#include "findings.hpp"
#include "server.hpp"

namespace {

struct flags {
  service::server_options server;
  service::db_sizes sizes;
  std::string db_dir = "service-data";
  std::string output_dir = "spanprof-profiles";
  unsigned sample_rate_hz = 101;
  bool profiling = true;
  int bench_parse_points = 0;
};

void usage() {
  std::fprintf(stderr,
               "usage: service [--port N] [--threads N] [--db-dir DIR] [--members N] [--teams N]\n"
               "               [--projects N] [--points N] [--series N] [--output-dir DIR]\n"
               "               [--sample-hz N] [--no-profiling] [--bench-parse POINTS]\n");
}

bool parse_int(std::string_view text, long long min, long long max, long long& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && out >= min && out <= max;
}

bool parse_flags(int argc, char** argv, flags& f) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view name = argv[i];
    if (name == "--no-profiling") {
      f.profiling = false;
      continue;
    }
    if (name == "--help" || name == "-h" || i + 1 >= argc) return false;
    const std::string_view value = argv[++i];
    long long n = 0;
    auto number = [&](long long min, long long max) {
      if (parse_int(value, min, max, n)) return true;
      std::fprintf(stderr, "service: %s is %.*s; expected %lld..%lld\n", argv[i - 1], static_cast<int>(value.size()),
                   value.data(), min, max);
      return false;
    };
    if (name == "--port") {
      if (!number(0, 65535)) return false;
      f.server.port = static_cast<unsigned short>(n);
    } else if (name == "--threads") {
      if (!number(2, 256)) return false;
      f.server.threads = static_cast<int>(n);
    } else if (name == "--members") {
      if (!number(1, 10'000'000)) return false;
      f.sizes.members = static_cast<int>(n);
    } else if (name == "--teams") {
      if (!number(1, 1'000'000)) return false;
      f.sizes.teams = static_cast<int>(n);
    } else if (name == "--projects") {
      if (!number(0, 10'000'000)) return false;
      f.sizes.projects = static_cast<int>(n);
    } else if (name == "--points") {
      if (!number(1, 10'000'000)) return false;
      f.sizes.timeseries_points = static_cast<int>(n);
    } else if (name == "--series") {
      if (!number(1, 10'000)) return false;
      f.sizes.series = static_cast<int>(n);
    } else if (name == "--sample-hz") {
      if (!number(1, 100'000)) return false;
      f.sample_rate_hz = static_cast<unsigned>(n);
    } else if (name == "--bench-parse") {
      if (!number(1, 100'000'000)) return false;
      f.bench_parse_points = static_cast<int>(n);
    } else if (name == "--db-dir") {
      f.db_dir = value;
    } else if (name == "--output-dir") {
      f.output_dir = value;
    } else {
      std::fprintf(stderr, "service: unknown flag %.*s\n", static_cast<int>(name.size()), name.data());
      return false;
    }
  }
  return true;
}

// --bench-parse: the two timestamp parsers alone, on the same rows, best of 5 runs each.
int bench_parse(int points) {
  std::vector<service::point_row> rows;
  rows.reserve(static_cast<std::size_t>(points));
  for (int i = 0; i < points; ++i) {
    char ts[32];
    std::snprintf(ts, sizeof ts, "2024-%02d-%02dT%02d:%02d:%02dZ", 1 + i % 12, 1 + i % 28, i % 24, i % 60, (i * 7) % 60);
    rows.push_back({ts, static_cast<double>(i)});
  }
  auto best_ns = [&](auto parse) {
    double best = 1e30;
    std::size_t parsed = 0;
    for (int run = 0; run < 5; ++run) {
      const auto start = std::chrono::steady_clock::now();
      parsed = parse(rows).size();
      const std::chrono::duration<double, std::nano> took = std::chrono::steady_clock::now() - start;
      best = std::min(best, took.count());
    }
    if (parsed != rows.size()) std::fprintf(stderr, "service: parsed %zu of %zu\n", parsed, rows.size());
    return best;
  };
  const double slow = best_ns(service::parse_timestamps_with_get_time);
  const double fixed = best_ns(service::parse_timestamps_fixed_format);
  std::printf("parse_timestamps_with_get_time: %.1f ns/timestamp\n", slow / points);
  std::printf("parse_timestamps_fixed_format:  %.1f ns/timestamp\n", fixed / points);
  std::printf("ratio: %.1fx\n", slow / fixed);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  flags f;
  if (!parse_flags(argc, argv, f)) {
    usage();
    return 2;
  }
  if (f.bench_parse_points > 0) return bench_parse(f.bench_parse_points);

  const std::string db_path = (std::filesystem::path(f.db_dir) / "service.sqlite3").string();
  try {
    service::create_database(db_path, f.sizes);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "service: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "service: database %s: %d members, %d teams, %d projects, %d series x %d points\n",
               db_path.c_str(), f.sizes.members, f.sizes.teams, f.sizes.projects, f.sizes.series,
               f.sizes.timeseries_points);

  spanprof::config defaults;
  defaults.enabled = f.profiling;
  defaults.output_dir = f.output_dir;
  defaults.sample_rate_hz = f.sample_rate_hz;
  // The default formats plus the Sentry envelope: it carries each transaction's sampled
  // profile, which spanprof-report reads.
  defaults.formats = defaults.formats | spanprof::output_format::sentry_envelope;
  const spanprof::config cfg = spanprof::config::from_environment(defaults);
  if (auto started = spanprof::init(cfg); !started) {
    std::fprintf(stderr, "service: profiling off: %s\n", started.error.c_str());
  }

  int rc = 0;
  try {
    service::db_pool pool(db_path, static_cast<std::size_t>(f.server.threads));
    rc = service::run_server(f.server, pool);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "service: %s\n", e.what());
    rc = 1;
  }

  spanprof::shutdown();  // every finished transaction written before we exit
  const spanprof::counters stats = spanprof::stats();
  const auto n = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  std::fprintf(stderr, "service: stopped; transactions %llu finished, %llu written; files %llu; errors %llu; profiles in %s\n",
               n(stats.transactions_finished), n(stats.transactions_written), n(stats.files_written), n(stats.errors),
               cfg.output_dir.c_str());
  // What the sampler delivered, and every way a sample was lost: a thin profile says why here.
  std::fprintf(stderr, "service: samples %llu taken, %llu dropped (ring full), %llu outside a transaction, %llu reentrant\n",
               n(stats.samples_taken), n(stats.samples_dropped), n(stats.samples_outside_transaction),
               n(stats.samples_reentrant));
  return rc;
}
