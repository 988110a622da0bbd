// The pprof writer (writers/pprof.hpp): real transactions sampled for real (SIGPROF, libdw
// symbolization), the .pb.gz read back with zlib and the small protobuf reader below, and
// checked against what profile.proto and pprof's CheckValid require, and against facts known
// independently: the Chrome trace written for the same transaction (its samples), readelf (the
// build id), this file's own line numbers. The 'pprof_go' cases run go tool pprof itself; they
// are in the 'clients' suite (tests/run_pprof_go_test.sh skips them without go).
#include <doctest/doctest.h>
#include <spanprof/spanprof.hpp>
#include <spanprof/detail/engine/environment.hpp>
#include <spanprof/detail/writers/pprof.hpp>

#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "support/pprof_reader.hpp"
#include "support/sampler_support.hpp"
#include "support/test_support.hpp"
#include "support/text_samples.hpp"

using namespace spanprof_test;

namespace {

using namespace spanprof_test::pprof_reader;

profile read_profile(const std::filesystem::path& file) {
  const std::string raw = read_file(file);
  REQUIRE_MESSAGE(raw.size() > 18, "no gzip stream in ", file.string());
  // The gzip magic: pprof sniffs it to decide whether to decompress.
  CHECK(static_cast<unsigned char>(raw[0]) == 0x1f);
  CHECK(static_cast<unsigned char>(raw[1]) == 0x8b);
  return decode_profile(gunzip(raw));
}

// ---- the workload ----------------------------------------------------------------------------

std::uint64_t samples_taken() { return spanprof::stats().samples_taken; }

int g_hot_first_line = 0, g_hot_last_line = 0;

// Inlined into pprof_test_hot_loop at every optimization level (always_inline is honoured at
// -O0), so the samples that land in it have a two-entry inline chain at one pc.
[[gnu::always_inline]] inline void pprof_test_inlined_step(volatile std::uint64_t& x) {
  for (int i = 0; i < 20000; ++i) x = x * 6364136223846793005ull + 1442695040888963407ull;
}

}  // namespace

// Burn CPU until `samples` more samples were taken: the samples come to the loop rather than
// the loop sleeping for them. The 30 s bound only keeps a broken sampler from hanging the test
// (the checks then fail on the sample counts). The loop is written out in each function, not
// shared, so that the inlined step's caller is the function itself.
constexpr std::int64_t burn_limit_ns = 30'000'000'000;

extern "C" [[gnu::noinline]] void pprof_test_hot_loop(std::uint64_t samples) {
  g_hot_first_line = __LINE__;
  volatile std::uint64_t x = 1;
  const std::uint64_t target = samples_taken() + samples;
  const std::int64_t limit_ns = monotonic_ns() + burn_limit_ns;
  while (samples_taken() < target && monotonic_ns() < limit_ns) {
    for (int round = 0; round < 5; ++round) pprof_test_inlined_step(x);
  }
  g_hot_last_line = __LINE__;
}

extern "C" [[gnu::noinline]] void pprof_test_cold_loop(std::uint64_t samples) {
  volatile std::uint64_t x = 3;
  const std::uint64_t target = samples_taken() + samples;
  const std::int64_t limit_ns = monotonic_ns() + burn_limit_ns;
  while (samples_taken() < target && monotonic_ns() < limit_ns) {
    for (int i = 0; i < 100000; ++i) x = x * 2862933555777941757ull + 3037000493ull;
  }
}

// Spends its time inside the C library (memset), so the transaction's first sample most likely
// has a libc leaf: the main executable's mapping must come first all the same.
extern "C" [[gnu::noinline]] void pprof_test_libc_loop(std::uint64_t samples) {
  static char buffer[1 << 20];
  const std::uint64_t target = samples_taken() + samples;
  const std::int64_t limit_ns = monotonic_ns() + burn_limit_ns;
  for (int fill = 0; samples_taken() < target && monotonic_ns() < limit_ns; ++fill) {
    std::memset(buffer, fill, sizeof buffer);
    asm volatile("" : : "r"(buffer) : "memory");  // the stores must happen
  }
}

// Called from the transaction outside any span: gap filling makes a derived span of it.
extern "C" [[gnu::noinline]] void pprof_test_gap_loop(std::uint64_t samples) {
  volatile std::uint64_t x = 5;
  const std::uint64_t target = samples_taken() + samples;
  const std::int64_t limit_ns = monotonic_ns() + burn_limit_ns;
  while (samples_taken() < target && monotonic_ns() < limit_ns) {
    for (int i = 0; i < 100000; ++i) x = x * 3935559000370003845ull + 2691343689449507681ull;
  }
}

namespace {

constexpr std::string_view hot_op = "db.query", hot_description = "SELECT 1";
constexpr std::string_view cold_op = "cache.get";
// Invalid UTF-8 in a label: the file must still decode (protobuf strings are UTF-8).
const std::string cold_description = std::string("key \xff") + "\xc3";
constexpr unsigned rate_hz = 1000;

std::uint64_t g_thread_id = 0;

[[gnu::noinline]] void handle_request() {
  SPANPROF_TRANSACTION("pprof request");
  g_thread_id = static_cast<std::uint64_t>(::syscall(SYS_gettid));
  pprof_test_libc_loop(2);
  {
    SPANPROF_SPAN(hot_op, hot_description);
    pprof_test_hot_loop(30);
  }
  {
    SPANPROF_SPAN(cold_op, cold_description);
    pprof_test_cold_loop(15);
  }
  pprof_test_gap_loop(15);
}

std::int64_t epoch_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// The main executable's GNU build id as readelf prints it ("" if readelf is not available).
std::string build_id_by_readelf() {
  const char* readelf = std::getenv("SPANPROF_READELF");
  const std::string command = std::string(readelf != nullptr ? readelf : "readelf") + " -n /proc/" +
                              std::to_string(::getpid()) + "/exe 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return {};
  std::string text;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) text.append(buffer, n);
  ::pclose(pipe);
  const std::size_t at = text.find("Build ID: ");
  if (at == std::string::npos) return {};
  const std::size_t begin = at + 10;
  return text.substr(begin, text.find_first_of(" \n", begin) - begin);
}

struct recorded {
  temp_dir dir{"spanprof-pprof"};
  std::filesystem::path pprof_file;
  trace_file trace;
  std::int64_t before_ns = 0, after_ns = 0;
};

void record(recorded& out, spanprof::sampling_mode mode) {
  spanprof::config cfg = sampling_config(out.dir, mode, rate_hz);
  cfg.formats = spanprof::output_format::pprof | spanprof::output_format::chrome_trace;
  out.before_ns = epoch_now_ns();
  {
    session s(cfg);
    // On a thread of its own: its id then differs from the process id, which a thread_id label
    // taken from the wrong source would show.
    std::thread worker(handle_request);
    worker.join();
  }
  out.after_ns = epoch_now_ns();
  const auto files = files_ending_with(out.dir.path(), ".pb.gz");
  REQUIRE(files.size() == 1);
  out.pprof_file = files.front();
  const auto traces = read_traces(out.dir.path().string());
  out.trace = trace_named(traces, "pprof request");
}

// The facts of one recorded profile, checked for both sampling modes.
void check_profile(const recorded& rec, spanprof::sampling_mode mode) {
  const profile p = read_profile(rec.pprof_file);
  const std::string time_type = mode == spanprof::sampling_mode::cpu ? "cpu" : "wall";
  INFO("mode ", time_type, ", file ", rec.pprof_file.string());

  // What pprof's decoder and CheckValid enforce.
  REQUIRE_FALSE(p.strings.empty());
  CHECK(p.strings[0].empty());
  REQUIRE(p.sample_types.size() == 2);
  CHECK(p.str(p.sample_types[0].type) == "samples");
  CHECK(p.str(p.sample_types[0].unit) == "count");
  CHECK(p.str(p.sample_types[1].type) == time_type);
  CHECK(p.str(p.sample_types[1].unit) == "nanoseconds");
  CHECK(p.str(p.period_type.type) == time_type);
  CHECK(p.str(p.period_type.unit) == "nanoseconds");
  CHECK(p.str(p.default_sample_type) == time_type);
  CHECK(p.period == 1'000'000'000 / rate_hz);
  CHECK(p.time_nanos_fields == 1);
  std::set<std::uint64_t> ids;
  for (const mapping& m : p.mappings) {
    CHECK(m.id != 0);
    CHECK(ids.insert(m.id).second);
    CHECK(m.memory_start < m.memory_limit);
    (void)p.str(m.filename);
    (void)p.str(m.build_id);
  }
  ids.clear();
  for (const location& l : p.locations) {
    CHECK(l.id != 0);
    CHECK(ids.insert(l.id).second);
    CHECK((l.mapping_id == 0 || p.mapping_by_id(l.mapping_id) != nullptr));
    CHECK_FALSE(l.lines.empty());
    for (const line& ln : l.lines) CHECK(p.function_by_id(ln.function_id) != nullptr);
    if (const mapping* m = p.mapping_by_id(l.mapping_id)) {
      CHECK(l.address >= m->memory_start);
      CHECK(l.address < m->memory_limit);
    }
  }
  ids.clear();
  for (const function& f : p.functions) {
    CHECK(f.id != 0);
    CHECK(ids.insert(f.id).second);
    CHECK_FALSE(p.str(f.name).empty());
    (void)p.str(f.system_name);
    (void)p.str(f.filename);
  }
  // The sampler's losses, as the Chrome trace reports them, in the comments.
  bool dropped_comment = false;
  const std::string dropped = "samples dropped (ring full): " + std::to_string(rec.trace.other.at("samples_dropped").get<std::uint64_t>());
  for (const std::int64_t c : p.comments) dropped_comment = dropped_comment || p.str(c) == dropped;
  CHECK(dropped_comment);

  // Every sample of the transaction, counted once: the Chrome trace written alongside lists them.
  std::int64_t count = 0, time_ns = 0;
  for (const sample& s : p.samples) {
    REQUIRE(s.values.size() == 2);
    CHECK(s.values[0] >= 1);
    count += s.values[0];
    time_ns += s.values[1];
    for (const std::uint64_t id : s.location_ids) CHECK(p.location_by_id(id) != nullptr);
  }
  CHECK(count == static_cast<std::int64_t>(rec.trace.samples.size()));
  std::int64_t weight = 0;
  for (const sample_event& e : rec.trace.samples) weight += static_cast<std::int64_t>(e.weight);
  CHECK(time_ns == weight * p.period);

  // The transaction's time, from clocks read around it.
  CHECK(p.time_nanos >= rec.before_ns);
  CHECK(p.time_nanos <= rec.after_ns);
  CHECK(p.duration_nanos > 0);
  CHECK(p.time_nanos + p.duration_nanos <= rec.after_ns);

  // The main executable: its mapping carries the build id readelf reads from the file.
  const std::string exe = std::filesystem::canonical("/proc/self/exe").string();
  const mapping* main_mapping = nullptr;
  for (const mapping& m : p.mappings) {
    if (p.str(m.filename) == exe) main_mapping = &m;
  }
  REQUIRE_MESSAGE(main_mapping != nullptr, "no mapping named ", exe);
  CHECK(main_mapping == &p.mappings.front());  // pprof's "File:" is the first mapping
  const std::string build_id = build_id_by_readelf();
  if (build_id.empty()) {
    MESSAGE("readelf printed no build id: the mapping's build id is not compared");
  } else {
    CHECK(p.str(main_mapping->build_id) == build_id);
  }
  // This test is built with debug information and symbolized from it: pprof must not redo it.
  CHECK(main_mapping->has_functions);
  CHECK(main_mapping->has_filenames);
  CHECK(main_mapping->has_line_numbers);
  CHECK(main_mapping->has_inline_frames);

  if (signals_deferred) {
    MESSAGE("TSan defers signals: sampled stacks are stale, frames and labels are not checked");
    return;
  }
  // The hot function, with this file and a line inside its body; the inlined step as a second
  // line of the same location, innermost first.
  const function* hot = nullptr;
  const function* inlined = nullptr;
  for (const function& f : p.functions) {
    if (p.str(f.name) == "pprof_test_hot_loop") hot = &f;
    if (p.str(f.name).find("pprof_test_inlined_step") != std::string::npos) inlined = &f;
  }
  REQUIRE(hot != nullptr);
  CHECK(p.str(hot->filename).ends_with("tests/pprof_test.cpp"));
  std::set<std::uint64_t> hot_locations;
  bool plausible_line = false, inline_chain = false;
  for (const location& l : p.locations) {
    for (std::size_t k = 0; k < l.lines.size(); ++k) {
      if (l.lines[k].function_id != hot->id) continue;
      hot_locations.insert(l.id);
      plausible_line = plausible_line || (l.lines[k].line > g_hot_first_line && l.lines[k].line < g_hot_last_line);
      // Inlined first, caller last: the step comes before the hot loop in the same location.
      if (inlined != nullptr && k > 0 && l.lines[k - 1].function_id == inlined->id) {
        inline_chain = true;
        CHECK(k == l.lines.size() - 1);
      }
    }
  }
  CHECK(plausible_line);
  REQUIRE_MESSAGE(inlined != nullptr, "no function pprof_test_inlined_step: inlined frames are missing");
  CHECK(inline_chain);
  CHECK(p.str(inlined->filename).ends_with("tests/pprof_test.cpp"));

  // Labels: every sample names the transaction, trace, span and thread; the hot loop's samples
  // carry the span they ran in.
  std::int64_t hot_samples = 0, cold_samples = 0;
  const std::string trace_id = rec.trace.other.at("trace_id").get<std::string>();
  for (const sample& s : p.samples) {
    CHECK(p.label_str(s, "transaction") == "pprof request");
    CHECK(p.label_str(s, "trace_id") == trace_id);
    CHECK(is_lower_hex(p.label_str(s, "span_id"), 16));
    CHECK(p.label_num(s, "thread_id") == static_cast<std::int64_t>(g_thread_id));
    CHECK(p.label_num(s, "thread_id") != static_cast<std::int64_t>(::getpid()));
    const bool in_hot = !s.location_ids.empty() && hot_locations.count(s.location_ids.front()) != 0;
    if (!in_hot) {
      if (p.label_str(s, "span_op") == cold_op) {
        cold_samples += s.values[0];
        CHECK(p.label_str(s, "span_description") == "key \xEF\xBF\xBD\xEF\xBF\xBD");
      }
      continue;
    }
    hot_samples += s.values[0];
    CHECK(p.label_str(s, "span_op") == hot_op);
    CHECK(p.label_str(s, "span_description") == hot_description);
    // The span id is the db span's, as the Chrome trace names it.
    bool known_span = false;
    for (const span_event& e : rec.trace.spans) known_span = known_span || (e.name == hot_description && e.span_id == p.label_str(s, "span_id"));
    CHECK(known_span);
  }
  CHECK(hot_samples >= 2);
  CHECK(cold_samples >= 1);

  // Samples in the un-instrumented function are labelled with the derived span gap filling
  // made of it (named after the function).
  const function* gap = nullptr;
  for (const function& f : p.functions) {
    if (p.str(f.name) == "pprof_test_gap_loop") gap = &f;
  }
  REQUIRE(gap != nullptr);
  std::int64_t gap_samples = 0, gap_samples_labelled = 0;
  for (const sample& s : p.samples) {
    if (s.location_ids.empty()) continue;
    const location* leaf = p.location_by_id(s.location_ids.front());
    if (leaf == nullptr || leaf->lines.empty() || leaf->lines.back().function_id != gap->id) continue;
    gap_samples += s.values[0];
    CHECK(p.label_str(s, "span_op") == "function");  // the transaction's own op: no span of ours
    if (p.label_str(s, "derived_span").find("pprof_test_gap_loop") != std::string::npos) gap_samples_labelled += s.values[0];
  }
  CHECK(gap_samples >= 2);
  CHECK(gap_samples_labelled == gap_samples);
}

}  // namespace

TEST_CASE("pprof: a sampled transaction as a valid profile.proto, with its frames, mappings and labels") {
  recorded rec;
  SUBCASE("wall mode") {
    record(rec, spanprof::sampling_mode::wall);
    check_profile(rec, spanprof::sampling_mode::wall);
  }
  SUBCASE("cpu mode") {
    record(rec, spanprof::sampling_mode::cpu);
    check_profile(rec, spanprof::sampling_mode::cpu);
  }
}

// ---- the encoder's pieces, as properties over seeded random input ---------------------------

namespace {

// RFC 3629 validity, decoded code point by code point (written apart from the writer's check).
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    int length = 0;
    std::uint32_t cp = 0, min_cp = 0;
    if (b0 < 0x80) length = 1, cp = b0;
    else if ((b0 & 0xE0) == 0xC0) length = 2, cp = b0 & 0x1Fu, min_cp = 0x80;
    else if ((b0 & 0xF0) == 0xE0) length = 3, cp = b0 & 0x0Fu, min_cp = 0x800;
    else if ((b0 & 0xF8) == 0xF0) length = 4, cp = b0 & 0x07u, min_cp = 0x10000;
    else return false;
    if (i + static_cast<std::size_t>(length) > s.size()) return false;
    for (int k = 1; k < length; ++k) {
      const auto b = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3Fu);
    }
    if (length > 1 && cp < min_cp) return false;      // overlong
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;   // surrogate
    if (cp > 0x10FFFF) return false;
    i += static_cast<std::size_t>(length);
  }
  return true;
}

}  // namespace

TEST_CASE("pprof: varints and int64 fields decode to what was encoded") {
  namespace pw = spanprof::detail::protobuf_wire;
  const std::uint64_t seed = std::random_device{}();
  INFO("seed ", seed);
  std::mt19937_64 random(seed);
  std::vector<std::uint64_t> values = {0, 1, 127, 128, 16383, 16384, (1ull << 63) - 1, 1ull << 63, ~0ull};
  for (int i = 0; i < 2000; ++i) values.push_back(random() >> (random() % 64));
  for (const std::uint64_t v : values) {
    std::string encoded;
    pw::append_varint(encoded, v);
    // 7 bits a byte: the length follows from the highest set bit alone.
    int bits = 0;
    for (std::uint64_t rest = v; rest != 0; rest >>= 1) ++bits;
    CHECK(encoded.size() == static_cast<std::size_t>(bits == 0 ? 1 : (bits + 6) / 7));
    wire_reader reader(encoded);
    CHECK(reader.varint() == v);
    CHECK(reader.done());
  }
  // A negative int64 is its two's complement in ten bytes (int64, not zigzag sint64).
  std::string field;
  pw::append_int64_field(field, 9, -1);
  CHECK(field.size() == 11);
  wire_reader reader(field);
  const auto [number, type] = reader.tag();
  CHECK(number == 9);
  CHECK(type == 0);
  CHECK(reader.scalar(type) == -1);
}

TEST_CASE("pprof: every string becomes valid UTF-8, valid ones unchanged, repairs counted") {
  const std::uint64_t seed = std::random_device{}();
  INFO("seed ", seed);
  std::mt19937_64 random(seed);
  spanprof::detail::json_text_stats stats;
  spanprof::detail::pprof_builder builder(stats);
  std::uint64_t invalid_inputs = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string text(random() % 24, '\0');
    // Mostly bytes near the UTF-8 boundaries, where the mistakes are.
    static constexpr unsigned char interesting[] = {0x00, 0x41, 0x7F, 0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0,
                                                    0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0xA0, 0x9F, 0x90, 0x8F};
    for (char& c : text) c = static_cast<char>(random() % 3 == 0 ? random() % 256 : interesting[random() % sizeof interesting]);
    const bool was_valid = valid_utf8(text);
    invalid_inputs += was_valid ? 0 : 1;
    std::string repaired;
    const bool replaced = spanprof::detail::append_utf8_repaired(repaired, text);
    INFO("input bytes: ", doctest::toString(text.size()));
    CHECK(valid_utf8(repaired));
    CHECK(replaced == !was_valid);
    if (was_valid) CHECK(repaired == text);
    const std::int64_t index = builder.string_index(text);
    REQUIRE(static_cast<std::size_t>(index) < builder.strings().size());
    CHECK(builder.strings()[static_cast<std::size_t>(index)] == repaired);
  }
  CHECK(invalid_inputs > 0);
  CHECK(stats.utf8_repaired == invalid_inputs);
  CHECK(builder.strings().front().empty());
}

TEST_CASE("pprof: SPANPROF_FORMATS names it") {
  spanprof::output_format formats{};
  REQUIRE(spanprof::detail::parse_formats("chrome, pprof", formats));
  CHECK(spanprof::has_format(formats, spanprof::output_format::pprof));
  CHECK(spanprof::has_format(formats, spanprof::output_format::chrome_trace));
  CHECK_FALSE(spanprof::has_format(formats, spanprof::output_format::sentry_transaction));
}

namespace {

// `go tool pprof ARGS FILE` with a private HOME and GOCACHE (go wants both writable); its
// output, and its exit status in `status`.
std::string run_go_pprof(const temp_dir& scratch, const std::string& args, const std::string& file, int& status) {
  const std::string command = "HOME=" + scratch / "home" + " GOCACHE=" + scratch / "gocache" +
                              " go tool pprof " + args + " '" + file + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string text;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) text.append(buffer, n);
  status = ::pclose(pipe);
  return text;
}

}  // namespace

// Run by tests/run_pprof_go_test.sh in the 'clients' suite (excluded from the unit run).
TEST_CASE("pprof_go: go tool pprof -tagfocus=span_op selects the span's samples") {
  if (signals_deferred) {
    MESSAGE("TSan defers signals: sampled stacks are stale, not checked");
    return;
  }
  recorded rec;
  record(rec, spanprof::sampling_mode::wall);
  temp_dir scratch("spanprof-pprof-go");
  std::filesystem::create_directory(scratch / "home");
  int status = 0;
  const std::string hot = run_go_pprof(scratch, "-symbolize=none -tagfocus=span_op=" + std::string(hot_op) + " -top",
                                       rec.pprof_file.string(), status);
  INFO("go tool pprof output:\n", hot);
  REQUIRE(status == 0);
  CHECK(hot.find("pprof_test_hot_loop") != std::string::npos);
  CHECK(hot.find("pprof_test_cold_loop") == std::string::npos);
  const std::string cold = run_go_pprof(scratch, "-symbolize=none -tagfocus=span_op=" + std::string(cold_op) + " -top",
                                        rec.pprof_file.string(), status);
  INFO("go tool pprof output (cold):\n", cold);
  REQUIRE(status == 0);
  CHECK(cold.find("pprof_test_cold_loop") != std::string::npos);
  CHECK(cold.find("pprof_test_hot_loop") == std::string::npos);
}

// This file's profile has what the example's lack: an inline chain and a label repaired from
// invalid UTF-8 (protoc --decode rejects a string that is not UTF-8). All three decoders of
// tools/check-pprof must accept it.
TEST_CASE("pprof_go: tools/check-pprof accepts a profile with inline chains and repaired labels") {
  const char* source = std::getenv("SPANPROF_TEST_SOURCE_DIR");
  REQUIRE(source != nullptr);
  recorded rec;
  record(rec, spanprof::sampling_mode::cpu);
  const std::string command = std::string(source) + "/tools/check-pprof '" + rec.pprof_file.string() + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string text;
  char buffer[4096];
  while (std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe)) text.append(buffer, n);
  const int status = ::pclose(pipe);
  INFO("tools/check-pprof:\n", text);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
