// symbolize_bench: how fast the collector turns sampled addresses into frames.
//
// WHAT IS MEASURED
//   warm_lookup       symbolizer::resolve on 4,096 distinct return addresses that are already
//                     cached (the steady state: a profile batch revisits the same hot
//                     addresses). items_per_second is look-ups per second. Target >= 10 M/s.
//   cold (printed after the table)
//                     5,000 distinct addresses spread evenly over the executable segments of
//                     this program (every function of it gets some), symbolized by a fresh
//                     symbolizer: construction, refresh (dl_iterate_phdr, opening every loaded
//                     module), indexing the DWARF it needs, 5,000 resolves. Next to it, in the
//                     same run and interleaved round by round, `addr2line -a -i -f -C -e
//                     <this program>` (binutils) on the same 5,000 relative addresses, as one
//                     process reading them from a file (-a only marks where each address's
//                     answer starts, so the two can be compared). The ratio of the medians is
//                     the figure to quote; the program also prints how often the innermost
//                     function and line agree with addr2line's.
//
// HOW TO RUN (an optimized build; a debug build measures the compiler)
//   meson setup build/bench-rel -Dbuildtype=release -Dbuild_tests=false   (keeps -g: DWARF needed)
//   ninja -C build/bench-rel && build/bench-rel/bench/symbolize_bench
//   meson test -C build/bench-rel --benchmark --verbose symbolize_bench
// Options: --cold-rounds=N (default 5), --addr2line=PATH (default $SPANPROF_ADDR2LINE, else
// addr2line from PATH), --elf=PATH (the cold part symbolizes that ELF file instead of this
// program, as if it were loaded: a bigger binary, e.g. build/tests/api_test, is a more realistic
// profile target; only its file is read), and Google Benchmark's own flags. Sanitizer builds
// run a smoke version.
#include <spanprof/detail/symbolize/build_id.hpp>
#include <spanprof/detail/symbolize/frames.hpp>
#include <spanprof/detail/symbolize/loader.hpp>
#include <spanprof/detail/symbolize/module_map.hpp>
#include <spanprof/detail/symbolize/symbolizer.hpp>

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "../tests/support/build_kind.hpp"

constexpr bool sanitized = spanprof_test::under_sanitizer;

namespace {

using namespace spanprof::detail;

constexpr std::size_t warm_address_count = 4096;  // a power of two: the loop masks its index
constexpr std::size_t cold_address_count = 5000;

std::int64_t monotonic_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

const module_info& main_module(const symbolizer& s) {
  for (const auto& m : s.modules().modules()) {
    if (m->is_main_executable) return *m;
  }
  std::fprintf(stderr, "symbolize_bench: the module map has no main executable\n");
  std::exit(1);
}

std::size_t code_bytes(const module_info& m) {
  std::size_t total = 0;
  for (const address_range& r : m.executable_ranges) total += r.end - r.start;
  return total;
}

// `count` distinct addresses evenly spread over the module's executable segments.
std::vector<std::uintptr_t> spread_addresses(const module_info& m, std::size_t count) {
  const std::size_t total = code_bytes(m);
  std::vector<std::uintptr_t> out;
  if (total < count) return out;
  for (std::size_t i = 0; i < count; ++i) {
    std::size_t offset = i * (total / count);
    for (const address_range& r : m.executable_ranges) {
      if (offset < r.end - r.start) {
        out.push_back(r.start + offset);
        break;
      }
      offset -= r.end - r.start;
    }
  }
  return out;
}

void warm_lookup(benchmark::State& state) {
  symbolizer s;
  const std::int64_t sampled_ns = monotonic_now_ns();
  s.refresh(sampled_ns);
  const std::vector<std::uintptr_t> pcs = spread_addresses(main_module(s), warm_address_count);
  if (pcs.size() != warm_address_count) {
    state.SkipWithError("this program has too little code to spread the addresses over");
    return;
  }
  for (const std::uintptr_t pc : pcs) (void)s.resolve(pc, sampled_ns, true);  // fill the cache
  const std::uint64_t misses_before = s.misses();
  std::size_t i = 0;
  for (auto _ : state) {
    resolved_address r = s.resolve(pcs[i], sampled_ns, true);
    benchmark::DoNotOptimize(r);
    i = (i + 1) & (warm_address_count - 1);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  if (s.misses() != misses_before) state.SkipWithError("a warm look-up missed the cache");
}
BENCHMARK(warm_lookup);

// An ELF file described as if the loader had mapped it at a made-up bias: symbolization reads
// only the file, never the memory at those addresses.
bool module_from_file(const std::string& path, observed_module& m) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  elf_version(EV_CURRENT);
  Elf* elf = elf_begin(fd, ELF_C_READ_MMAP, nullptr);
  GElf_Ehdr header{};
  std::size_t count = 0;
  bool ok = elf != nullptr && gelf_getehdr(elf, &header) != nullptr && elf_getphdrnum(elf, &count) == 0;
  m = observed_module{};
  m.loader_name = m.path = path;
  m.bias = ok && header.e_type == ET_DYN ? 0x7f0000000000 : 0;
  for (std::size_t i = 0; ok && i < count; ++i) {
    GElf_Phdr ph{};
    if (gelf_getphdr(elf, static_cast<int>(i), &ph) == nullptr || ph.p_type != PT_LOAD) continue;
    if ((ph.p_flags & PF_X) != 0) m.executable_ranges.push_back({m.bias + ph.p_vaddr, m.bias + ph.p_vaddr + ph.p_memsz});
  }
  const void* id = nullptr;
  const ssize_t id_size = ok ? dwelf_elf_gnu_build_id(elf, &id) : -1;
  if (id_size > 0) m.build_id.assign(static_cast<const std::uint8_t*>(id), static_cast<const std::uint8_t*>(id) + id_size);
  if (elf != nullptr) elf_end(elf);
  ::close(fd);
  return ok && !m.executable_ranges.empty();
}

struct first_frame {
  std::string function;
  unsigned line = 0;
};

struct cold_round {
  double ours_ms = 0, addr2line_ms = 0;
  std::vector<first_frame> ours, theirs;
};

double elapsed_ms(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - since).count();
}

// A fresh symbolizer from nothing to 5,000 answers, timed whole. `file_module`: the --elf
// module, reported instead of reading the loader's list.
void symbolize_cold(const std::vector<std::uintptr_t>& pcs, const observed_module* file_module, cold_round& round) {
  const auto start = std::chrono::steady_clock::now();
  symbolizer s;
  const std::int64_t sampled_ns = monotonic_now_ns();
  if (file_module != nullptr) {
    s.apply(loader_snapshot{1, 0, {*file_module}}, sampled_ns);
  } else {
    s.refresh(sampled_ns);
  }
  round.ours.clear();
  round.ours.reserve(pcs.size());
  for (const std::uintptr_t pc : pcs) {
    // Leaf look-ups (no -1): addr2line is given exactly these addresses.
    const resolved_address r = s.resolve(pc, sampled_ns, false);
    round.ours.push_back({std::string(r.frames[0].function), r.frames[0].line});
  }
  round.ours_ms = elapsed_ms(start);
}

// addr2line on the same addresses; false if it could not be run.
bool addr2line_cold(const std::string& addr2line, const std::string& module_path, const std::string& address_file,
                    std::size_t address_count, cold_round& round) {
  const std::string command =
      "'" + addr2line + "' -a -i -f -C -e '" + module_path + "' < '" + address_file + "'";
  const auto start = std::chrono::steady_clock::now();
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return false;
  std::string output;
  char buffer[65536];
  for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  const int status = ::pclose(pipe);
  round.addr2line_ms = elapsed_ms(start);
  if (status != 0) return false;
  // "0x<address>", then function / file:line pairs, innermost first.
  round.theirs.clear();
  std::size_t expecting = 0;  // 0: an address line; 1: the first function; 2: its file:line
  for (std::size_t at = 0; at < output.size();) {
    std::size_t end = output.find('\n', at);
    if (end == std::string::npos) end = output.size();
    const std::string_view line(output.data() + at, end - at);
    at = end + 1;
    if (line.starts_with("0x")) {
      round.theirs.emplace_back();
      expecting = 1;
    } else if (expecting == 1) {
      round.theirs.back().function = line == "??" ? "" : std::string(line);
      expecting = 2;
    } else if (expecting == 2) {
      const auto colon = line.rfind(':');
      round.theirs.back().line = colon == std::string_view::npos ? 0 : static_cast<unsigned>(std::strtoul(line.data() + colon + 1, nullptr, 10));
      expecting = 0;
    }
  }
  return round.theirs.size() == address_count;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values.empty() ? 0.0 : values[values.size() / 2];
}

bool take_flag(std::vector<char*>& args, const char* name, std::string* value) {
  const std::size_t length = std::strlen(name);
  for (auto it = args.begin(); it != args.end(); ++it) {
    if (std::strncmp(*it, name, length) == 0 && (*it)[length] == '=') {
      *value = *it + length + 1;
      args.erase(it);
      return true;
    }
  }
  return false;
}

// Returns false when the comparison could not be made.
bool run_cold_comparison(const std::string& addr2line, const std::string& elf_path, int rounds) {
  symbolizer probe;
  observed_module file_module;
  if (!elf_path.empty()) {
    if (!module_from_file(elf_path, file_module)) {
      std::printf("cold: %s is not an ELF file with executable segments\n", elf_path.c_str());
      return false;
    }
    probe.apply(loader_snapshot{1, 0, {file_module}}, monotonic_now_ns());
  } else {
    probe.refresh(monotonic_now_ns());
  }
  const module_info& main = elf_path.empty() ? main_module(probe) : *probe.modules().modules()[0];
  const std::vector<std::uintptr_t> pcs = spread_addresses(main, cold_address_count);
  if (pcs.size() != cold_address_count) {
    std::printf("cold: this program has only %zu bytes of code, too little for %zu addresses\n", code_bytes(main),
                cold_address_count);
    return false;
  }
  char address_file[] = "/tmp/spanprof-symbolize-bench-XXXXXX";
  const int fd = ::mkstemp(address_file);
  if (fd < 0) return false;
  std::string relative;
  for (const std::uintptr_t pc : pcs) relative += hex_address(pc - main.bias) + "\n";
  const bool written = ::write(fd, relative.data(), relative.size()) == static_cast<ssize_t>(relative.size());
  ::close(fd);

  std::vector<double> ours_ms, theirs_ms;
  cold_round round;
  bool addr2line_ran = written;
  for (int i = 0; i < rounds; ++i) {
    symbolize_cold(pcs, elf_path.empty() ? nullptr : &file_module, round);
    ours_ms.push_back(round.ours_ms);
    if (addr2line_ran) addr2line_ran = addr2line_cold(addr2line, main.path, address_file, pcs.size(), round);
    if (addr2line_ran) theirs_ms.push_back(round.addr2line_ms);
  }
  ::unlink(address_file);

  std::printf("\ncold: %zu distinct addresses spread over %s (%zu KiB of code), %d rounds, medians:\n", pcs.size(),
              main.path.c_str(), code_bytes(main) / 1024, rounds);
  std::printf("  spanprof symbolizer, fresh (%s + index + resolve):%*s%9.2f ms\n",
              elf_path.empty() ? "refresh + open every module" : "open the file", elf_path.empty() ? 6 : 22, "",
              median(ours_ms));
  if (!addr2line_ran) {
    std::printf("  addr2line (%s) could not be run: no comparison\n", addr2line.c_str());
    return false;
  }
  std::printf("  addr2line -a -i -f -C -e <program>, same addresses, one process:     %9.2f ms\n", median(theirs_ms));
  std::printf("  ratio spanprof / addr2line:                                            %9.2f\n",
              median(ours_ms) / median(theirs_ms));
  std::size_t same_function = 0, same_line = 0, both_named = 0;
  for (std::size_t i = 0; i < pcs.size(); ++i) {
    if (round.theirs[i].function.empty() || round.ours[i].function.empty()) continue;
    ++both_named;
    same_function += round.ours[i].function == round.theirs[i].function ? 1 : 0;
    same_line += round.ours[i].line == round.theirs[i].line ? 1 : 0;
  }
  std::printf("  agreement with addr2line where both name a function (%zu): innermost function %zu, line %zu\n",
              both_named, same_function, same_line);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  std::string addr2line = std::getenv("SPANPROF_ADDR2LINE") != nullptr ? std::getenv("SPANPROF_ADDR2LINE") : "addr2line";
  take_flag(args, "--addr2line", &addr2line);
  std::string rounds_text = sanitized ? "1" : "5";
  take_flag(args, "--cold-rounds", &rounds_text);
  std::string elf_path;
  take_flag(args, "--elf", &elf_path);
  static char smoke_min_time[] = "--benchmark_min_time=0.01";
  std::string ignored;
  if (sanitized && !take_flag(args, "--benchmark_min_time", &ignored)) args.push_back(smoke_min_time);
  int args_count = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&args_count, args.data());
  if (benchmark::ReportUnrecognizedArguments(args_count, args.data())) return 1;
  if (sanitized) std::printf("symbolize_bench: sanitizer build: a smoke run, the figures mean nothing\n");
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::fflush(stdout);
  run_cold_comparison(addr2line, elf_path, std::max(1, std::atoi(rounds_text.c_str())));
  return 0;
}
