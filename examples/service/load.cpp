// service-load: a small load generator for the example service, on Beast's synchronous client.
// C connections (one thread each, keep-alive) send a round-robin mix of routes until N requests
// or T seconds are done, then it prints throughput and latency percentiles per route (text, or
// JSON with --json) to compare with spanprof-report's. Loopback only.
//
//   service-load --port PORT --mix slow --connections 4 --requests 2000
//   service-load --port PORT --mix fixed --duration 10 --json
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using clock_type = std::chrono::steady_clock;

struct options {
  unsigned short port = 0;
  int connections = 4;
  long long requests = 0;  // 0: run for `duration_s`
  double duration_s = 0;
  std::string mix = "slow";  // slow | fixed | both
  int max_user_id = 1000;
  int series = 4;
  bool json = false;
};

// One request of the mix: the route template it hits (the service's transaction name), the
// variant, and the URL.
struct request_kind {
  std::string route;
  std::string variant;  // "slow", "fixed" or "-" (no variants)
  std::string target;   // with {id}/{series} filled per request
};

std::vector<request_kind> mix_of(const std::string& mix) {
  std::vector<request_kind> kinds;
  auto add = [&](const char* variant, const char* suffix) {
    kinds.push_back({"GET /api/timeseries", variant, std::string("/api/timeseries?series={series}") + suffix});
    kinds.push_back({"GET /api/users", variant, std::string("/api/users") + (*suffix != 0 ? "?fixed=1" : "")});
  };
  if (mix == "slow" || mix == "both") add("slow", "");
  if (mix == "fixed" || mix == "both") add("fixed", "&fixed=1");
  kinds.push_back({"GET /api/users/{id}", "-", "/api/users/{id}"});
  return kinds;
}

std::string fill(std::string target, long long n, const options& o) {
  auto replace = [&](std::string_view key, long long value) {
    if (const std::size_t at = target.find(key); at != std::string::npos) target.replace(at, key.size(), std::to_string(value));
  };
  replace("{series}", 1 + n % o.series);
  replace("{id}", 1 + (n * 7) % o.max_user_id);
  return target;
}

struct results {
  std::mutex mutex;
  std::map<std::string, std::vector<double>> latency_ms;  // "route [variant]" → latencies
  std::map<int, long long> statuses;
  long long errors = 0;
};

void run_connection(const options& o, const std::vector<request_kind>& kinds, int index, std::atomic<long long>& issued,
                    clock_type::time_point deadline, results& out) {
  asio::io_context io;
  std::map<std::string, std::vector<double>> latency;
  std::map<int, long long> statuses;
  long long errors = 0;
  std::unique_ptr<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  for (long long k = index;; ++k) {
    if (o.requests > 0) {
      if (issued.fetch_add(1) >= o.requests) break;
    } else if (clock_type::now() >= deadline) {
      break;
    }
    const request_kind& kind = kinds[static_cast<std::size_t>(k) % kinds.size()];
    try {
      if (!stream) {
        stream = std::make_unique<beast::tcp_stream>(io);
        stream->connect(tcp::endpoint(asio::ip::make_address_v4("127.0.0.1"), o.port));
        const timeval timeout{30, 0};  // a hung server fails the run instead of hanging it
        ::setsockopt(stream->socket().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        ::setsockopt(stream->socket().native_handle(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        buffer.clear();
      }
      http::request<http::empty_body> request{http::verb::get, fill(kind.target, k, o), 11};
      request.set(http::field::host, "127.0.0.1");
      request.keep_alive(true);
      const auto start = clock_type::now();
      http::write(*stream, request);
      http::response<http::string_body> response;
      http::read(*stream, buffer, response);
      const std::chrono::duration<double, std::milli> took = clock_type::now() - start;
      latency[kind.route + " [" + kind.variant + "]"].push_back(took.count());
      ++statuses[static_cast<int>(response.result_int())];
      if (!response.keep_alive()) stream.reset();
    } catch (const std::exception& e) {
      ++errors;
      if (errors <= 3) std::fprintf(stderr, "service-load: %s: %s\n", kind.target.c_str(), e.what());
      stream.reset();
      if (errors > 100) break;
    }
  }
  std::lock_guard<std::mutex> lock(out.mutex);
  for (auto& [key, values] : latency) {
    auto& all = out.latency_ms[key];
    all.insert(all.end(), values.begin(), values.end());
  }
  for (auto& [status, count] : statuses) out.statuses[status] += count;
  out.errors += errors;
}

// Nearest-rank percentile of sorted values.
double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)];
}

bool parse_flags(int argc, char** argv, options& o) {
  for (int i = 1; i + 1 < argc || (i < argc && std::string_view(argv[i]) == "--json"); ++i) {
    const std::string_view name = argv[i];
    if (name == "--json") {
      o.json = true;
      continue;
    }
    const std::string_view value = argv[++i];
    long long n = 0;
    const bool numeric = std::from_chars(value.data(), value.data() + value.size(), n).ec == std::errc();
    if (name == "--port" && numeric && n > 0 && n < 65536) {
      o.port = static_cast<unsigned short>(n);
    } else if (name == "--connections" && numeric && n > 0 && n <= 1024) {
      o.connections = static_cast<int>(n);
    } else if (name == "--requests" && numeric && n > 0) {
      o.requests = n;
    } else if (name == "--duration" && numeric && n > 0) {
      o.duration_s = static_cast<double>(n);
    } else if (name == "--max-user-id" && numeric && n > 0) {
      o.max_user_id = static_cast<int>(n);
    } else if (name == "--series" && numeric && n > 0) {
      o.series = static_cast<int>(n);
    } else if (name == "--mix" && (value == "slow" || value == "fixed" || value == "both")) {
      o.mix = value;
    } else {
      std::fprintf(stderr, "service-load: bad flag %.*s %.*s\n", static_cast<int>(name.size()), name.data(),
                   static_cast<int>(value.size()), value.data());
      return false;
    }
  }
  return o.port != 0 && (o.requests > 0) != (o.duration_s > 0);
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  if (!parse_flags(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: service-load --port N (--requests N | --duration SECONDS) [--connections C]\n"
                 "                    [--mix slow|fixed|both] [--max-user-id N] [--series N] [--json]\n");
    return 2;
  }
  const std::vector<request_kind> kinds = mix_of(o.mix);
  results out;
  std::atomic<long long> issued{0};
  const auto start = clock_type::now();
  const auto deadline = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(o.duration_s));
  std::vector<std::thread> threads;
  for (int c = 0; c < o.connections; ++c) {
    threads.emplace_back([&, c] { run_connection(o, kinds, c, issued, deadline, out); });
  }
  for (std::thread& t : threads) t.join();
  const double elapsed_s = std::chrono::duration<double>(clock_type::now() - start).count();

  long long total = 0;
  for (auto& [key, values] : out.latency_ms) {
    std::sort(values.begin(), values.end());
    total += static_cast<long long>(values.size());
  }
  const double throughput = static_cast<double>(total) / elapsed_s;
  if (o.json) {
    std::printf("{\"mix\":\"%s\",\"connections\":%d,\"elapsed_s\":%.3f,\"requests\":%lld,\"errors\":%lld,"
                "\"throughput_rps\":%.1f,\"statuses\":{",
                o.mix.c_str(), o.connections, elapsed_s, total, out.errors, throughput);
    bool first = true;
    for (const auto& [status, count] : out.statuses) {
      std::printf("%s\"%d\":%lld", first ? "" : ",", status, count);
      first = false;
    }
    std::printf("},\"routes\":[");
    first = true;
    for (const auto& [key, v] : out.latency_ms) {
      std::printf("%s{\"route\":\"%s\",\"count\":%zu,\"p50_ms\":%.3f,\"p75_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f,"
                  "\"max_ms\":%.3f}",
                  first ? "" : ",", key.c_str(), v.size(), percentile(v, 50), percentile(v, 75), percentile(v, 95),
                  percentile(v, 99), v.empty() ? 0.0 : v.back());
      first = false;
    }
    std::printf("]}\n");
  } else {
    std::printf("%lld requests in %.2f s over %d connections: %.1f requests/s, %lld errors\n", total, elapsed_s,
                o.connections, throughput, out.errors);
    std::printf("statuses:");
    for (const auto& [status, count] : out.statuses) std::printf(" %d×%lld", status, count);
    std::printf("\n%-36s %7s %9s %9s %9s %9s %9s\n", "route [variant]", "count", "p50 ms", "p75 ms", "p95 ms", "p99 ms",
                "max ms");
    for (const auto& [key, v] : out.latency_ms) {
      std::printf("%-36s %7zu %9.2f %9.2f %9.2f %9.2f %9.2f\n", key.c_str(), v.size(), percentile(v, 50),
                  percentile(v, 75), percentile(v, 95), percentile(v, 99), v.empty() ? 0.0 : v.back());
    }
  }
  return out.errors == 0 ? 0 : 1;
}
