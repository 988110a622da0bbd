// writers/sentry_profile.hpp through the public API: transactions recorded with the macros and
// sampled for real (SIGPROF, the default unwinder, libdw), written by the collector as
// .envelope files, read back with our own parse of the envelope framing plus nlohmann::json.
#include <doctest/doctest.h>
#include <spanprof/spanprof.hpp>
#include <spanprof/detail/engine/environment.hpp>
#include <spanprof/detail/writers/sentry_profile.hpp>

#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "support/sampler_support.hpp"
#include "support/test_support.hpp"

using namespace spanprof_test;

namespace {

struct envelope_item {
  json header;
  std::string payload;  // exactly `length` bytes
  json body;
};

struct envelope {
  json header;
  std::vector<envelope_item> items;
  [[nodiscard]] const envelope_item* item(std::string_view type) const {
    for (const auto& i : items) {
      if (i.header.at("type") == type) return &i;
    }
    return nullptr;
  }
};

// The framing of formats.md §1, parsed here independently of the writer: a header line, then per
// item a header line with `length` and exactly that many payload bytes followed by '\n'. A wrong
// length lands the parse in the middle of a payload and fails it.
envelope parse_envelope(const std::string& text) {
  envelope env;
  std::size_t pos = text.find('\n');
  REQUIRE(pos != std::string::npos);
  env.header = json::parse(text.substr(0, pos));
  ++pos;
  while (pos < text.size()) {
    const std::size_t eol = text.find('\n', pos);
    REQUIRE(eol != std::string::npos);
    envelope_item item;
    item.header = json::parse(text.substr(pos, eol - pos));
    REQUIRE(item.header.contains("length"));
    const auto length = item.header.at("length").get<std::size_t>();
    pos = eol + 1;
    REQUIRE(pos + length <= text.size());
    item.payload = text.substr(pos, length);
    pos += length;
    // The payload ends exactly where `length` says: the next byte is the separator.
    INFO("item ", item.header.dump());
    REQUIRE(pos < text.size());
    CHECK(text[pos] == '\n');
    ++pos;
    item.body = json::parse(item.payload);  // strict: throws on invalid UTF-8 or trailing bytes
    env.items.push_back(std::move(item));
  }
  return env;
}

envelope read_only_envelope(const temp_dir& dir) {
  const auto files = files_ending_with(dir.path(), ".envelope");
  REQUIRE(files.size() == 1);
  return parse_envelope(read_file(files.front()));
}

std::uint64_t u64_of(const json& decimal_string) {
  REQUIRE(decimal_string.is_string());
  const std::string text = decimal_string.get<std::string>();
  REQUIRE(std::regex_match(text, std::regex("0|[1-9][0-9]*")));
  return std::stoull(text);
}

spanprof::config envelope_config(const temp_dir& dir, unsigned hz) {
  spanprof::config cfg = config_for(dir);
  cfg.formats = spanprof::output_format::sentry_envelope | spanprof::output_format::sentry_transaction;
  cfg.sampling = true;
  cfg.mode = spanprof::sampling_mode::wall;
  cfg.sample_rate_hz = hz;
  cfg.release = "sentry-profile-test@1.0";
  cfg.log_errors_to_stderr = false;
  return cfg;
}

// Burns CPU until `more` samples were taken since the call (or 5 s of CPU passed: a safety
// bound, after which the test's own checks fail loudly).
void burn_until_samples(std::uint64_t more) {
  const std::uint64_t target = spanprof::stats().samples_taken + more;
  const std::int64_t start = thread_cpu_ns();
  volatile std::uint64_t x = 1;
  while (spanprof::stats().samples_taken < target && thread_cpu_ns() - start < 5'000'000'000) {
    for (int i = 0; i < 10000; ++i) x = x * 6364136223846793005ull + 1442695040888963407ull;
  }
}

int g_leaf_first_line = 0, g_leaf_last_line = 0;

}  // namespace

// The function the samples land in, and its caller: names a test can find among the frames.
extern "C" [[gnu::noinline]] void spanprof_test_profile_leaf(std::uint64_t samples) {
  g_leaf_first_line = __LINE__;
  burn_until_samples(samples);
  g_leaf_last_line = __LINE__;
  asm volatile("" ::: "memory");
}

extern "C" [[gnu::noinline]] void spanprof_test_profile_caller(std::uint64_t samples) {
  spanprof_test_profile_leaf(samples);
  asm volatile("" ::: "memory");
}

namespace {

// Records `name` on a fresh thread called "profiled-worker", sampling until `samples` more were
// taken; returns that thread's id.
long record_on_named_thread(const char* name, std::uint64_t samples) {
  std::atomic<long> tid{0};
  std::thread worker([&] {
    pthread_setname_np(pthread_self(), "profiled-worker");  // before spanprof first sees the thread
    tid = static_cast<long>(::gettid());
    SPANPROF_TRANSACTION_OP(name, "http.server");
    spanprof_test_profile_caller(samples);
  });
  worker.join();
  return tid.load();
}

std::size_t index_of_function(const json& frames, const json& stack, std::string_view function) {
  for (std::size_t k = 0; k < stack.size(); ++k) {
    const json& f = frames.at(stack[k].get<std::size_t>());
    if (f.value("function", std::string()).find(function) != std::string::npos) return k;
  }
  return stack.size();
}

}  // namespace

TEST_CASE("sentry_profile: the envelope of a sampled transaction carries its event and a v1 profile Sentry accepts") {
  temp_dir dir("spanprof-sentry-profile");
  long tid = 0;
  {
    session s(envelope_config(dir, 1000));
    tid = record_on_named_thread("GET /profiled", 40);
  }
  if (signals_deferred) {
    MESSAGE("TSan defers signals: sampled stacks are stale, the profile is not checked");
    return;
  }
  const envelope env = read_only_envelope(dir);
  REQUIRE(env.items.size() == 2);
  CHECK(env.items[0].header.at("type") == "transaction");
  CHECK(env.items[1].header.at("type") == "profile");
  const json& tx = env.item("transaction")->body;
  const json& prof = env.item("profile")->body;

  SUBCASE("the envelope header and both items name the same transaction") {
    CHECK(env.header.at("event_id") == tx.at("event_id"));
    CHECK(env.header.at("sdk").at("name") == "spanprof");
    CHECK(std::regex_match(env.header.at("sent_at").get<std::string>(),
                           std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z)")));
    CHECK(prof.at("transaction").at("id") == tx.at("event_id"));
    CHECK(prof.at("transaction").at("trace_id") == tx.at("contexts").at("trace").at("trace_id"));
    CHECK(prof.at("transaction").at("name") == tx.at("transaction"));
    CHECK(tx.at("contexts").at("profile").at("profile_id") == prof.at("event_id"));
    CHECK(std::regex_match(prof.at("event_id").get<std::string>(), std::regex("[0-9a-f]{32}")));
    CHECK(prof.at("event_id") != tx.at("event_id"));
    CHECK(prof.at("timestamp") == tx.at("start_timestamp"));
    CHECK(prof.at("release") == "sentry-profile-test@1.0");
    CHECK(prof.at("release") == tx.at("release"));
    CHECK(prof.at("environment") == tx.at("environment"));
    CHECK(prof.at("version") == "1");
    CHECK(prof.at("platform") == "native");
    // The same transaction as the plain .transaction.json written beside it.
    const auto plain = read_transactions(dir.path(), derived_spans::keep);
    REQUIRE(plain.size() == 1);
    CHECK(plain[0].at("event_id") == tx.at("event_id"));
    CHECK(plain[0].at("contexts").at("trace") == tx.at("contexts").at("trace"));
    CHECK_FALSE(plain[0].at("contexts").contains("profile"));
  }

  SUBCASE("samples: integer stack ids, string thread ids and elapsed times, in order, inside the transaction") {
    const json& p = prof.at("profile");
    const json& meta = prof.at("transaction");
    const std::uint64_t start = u64_of(meta.at("relative_start_ns")), end = u64_of(meta.at("relative_end_ns"));
    CHECK(start < end);
    CHECK(start < 1000);  // the timestamp is the start, cut to the microsecond
    REQUIRE(p.at("samples").size() >= 2);
    std::uint64_t previous = 0;
    std::size_t on_worker = 0;
    for (const json& s : p.at("samples")) {
      INFO("sample ", s.dump());
      REQUIRE(s.at("stack_id").is_number_unsigned());
      CHECK(s.at("stack_id").get<std::size_t>() < p.at("stacks").size());
      const std::uint64_t elapsed = u64_of(s.at("elapsed_since_start_ns"));
      CHECK(elapsed >= previous);
      CHECK(elapsed >= start);
      CHECK(elapsed <= end);
      previous = elapsed;
      on_worker += u64_of(s.at("thread_id")) == static_cast<std::uint64_t>(tid) ? 1 : 0;
    }
    CHECK(on_worker >= 2);
    CHECK(u64_of(meta.at("active_thread_id")) == static_cast<std::uint64_t>(tid));
    CHECK(p.at("thread_metadata").at(std::to_string(tid)).at("name") == "profiled-worker");
    for (const json& stack : p.at("stacks")) {
      for (const json& f : stack) CHECK(f.get<std::size_t>() < p.at("frames").size());
    }
  }

  SUBCASE("the sampled function is a frame with its file and line, below its caller in every stack") {
    const json& p = prof.at("profile");
    const json* leaf = nullptr;
    for (const json& f : p.at("frames")) {
      if (f.value("function", std::string()) == "spanprof_test_profile_leaf") leaf = &f;
    }
    REQUIRE(leaf != nullptr);
    INFO("frame ", leaf->dump());
    CHECK(leaf->at("filename") == "sentry_profile_test.cpp");
    CHECK(leaf->at("abs_path").get<std::string>().ends_with("tests/sentry_profile_test.cpp"));
    const int line = leaf->at("lineno").get<int>();
    CHECK(line >= g_leaf_first_line);
    CHECK(line <= g_leaf_last_line);
    CHECK(leaf->at("in_app") == true);
    CHECK(leaf->at("module") == std::filesystem::canonical("/proc/self/exe").filename().string());
    CHECK(leaf->at("platform") == "native");
    CHECK(std::regex_match(leaf->at("instruction_addr").get<std::string>(), std::regex("0x[0-9a-f]+")));
    // Leaf first: the burning function comes before its caller in every stack holding both.
    std::size_t with_both = 0;
    for (const json& stack : p.at("stacks")) {
      const std::size_t at_leaf = index_of_function(p.at("frames"), stack, "spanprof_test_profile_leaf");
      const std::size_t at_caller = index_of_function(p.at("frames"), stack, "spanprof_test_profile_caller");
      if (at_leaf == stack.size() || at_caller == stack.size()) continue;
      ++with_both;
      CHECK(at_leaf < at_caller);
    }
    CHECK(with_both >= 1);
    // Stacks are written once each.
    std::vector<json> stacks(p.at("stacks").begin(), p.at("stacks").end());
    std::sort(stacks.begin(), stacks.end());
    CHECK(std::adjacent_find(stacks.begin(), stacks.end()) == stacks.end());
  }

  SUBCASE("debug_meta names the test executable with a debug id, as an image type Relay knows") {
    const std::string exe = std::filesystem::canonical("/proc/self/exe").string();
    const json* image = nullptr;
    for (const json& i : prof.at("debug_meta").at("images")) {
      if (std::filesystem::path(i.at("code_file").get<std::string>()).filename() == std::filesystem::path(exe).filename()) image = &i;
    }
    REQUIRE(image != nullptr);
    INFO("image ", image->dump());
    CHECK(std::filesystem::equivalent(image->at("code_file").get<std::string>(), exe));
    CHECK(image->at("type") == "symbolic");
    CHECK(std::regex_match(image->at("debug_id").get<std::string>(),
                           std::regex("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")));
    CHECK(std::regex_match(image->at("image_addr").get<std::string>(), std::regex("0x[0-9a-f]+")));
    CHECK(image->at("image_size").get<std::uint64_t>() > 0);
  }
}

TEST_CASE("sentry_profile: hostile transaction names still give a valid envelope with exact lengths") {
  temp_dir dir("spanprof-sentry-hostile");
  const std::string name = std::string("GET /\xff\xfe{id}\x01 \"quoted\" \\ back\nslash \xE2\x82") + std::string(300, 'x');
  spanprof::config cfg = envelope_config(dir, 1000);
  {
    session s(cfg);
    record_on_named_thread(name.c_str(), 20);
  }
  if (signals_deferred) return;
  const auto files = files_ending_with(dir.path(), ".envelope");
  REQUIRE(files.size() == 1);
  const std::string text = read_file(files.front());
  const envelope env = parse_envelope(text);  // strict UTF-8 JSON per item, exact lengths
  REQUIRE(env.items.size() == 2);
  const json& tx = env.item("transaction")->body;
  const json& prof = env.item("profile")->body;
  const std::string written = tx.at("transaction").get<std::string>();
  CHECK(written.find("\xEF\xBF\xBD") != std::string::npos);  // invalid bytes became U+FFFD
  CHECK(written.find("\"quoted\"") != std::string::npos);
  CHECK(prof.at("transaction").at("name") == tx.at("transaction"));
  // Headers stay single lines whatever the name: 1 envelope header + 2 × (header, payload) lines.
  CHECK(std::count(text.begin(), text.end(), '\n') == 5);
  CHECK(spanprof::stats().invalid_utf8_repaired >= 1);
}

namespace {

struct captured_errors {
  std::mutex mutex;
  std::vector<spanprof::error> errors;
  [[nodiscard]] std::vector<spanprof::error> of_kind(spanprof::error_kind kind) {
    std::lock_guard lock(mutex);
    std::vector<spanprof::error> out;
    for (const auto& e : errors) {
      if (e.kind == kind) out.push_back(e);
    }
    return out;
  }
};

}  // namespace

TEST_CASE("sentry_profile: with fewer than 2 samples the envelope carries the transaction alone, and says so") {
  temp_dir dir("spanprof-sentry-few");
  captured_errors captured;
  spanprof::config cfg = envelope_config(dir, 1000);
  cfg.on_error = [&](const spanprof::error& e) {
    std::lock_guard lock(captured.mutex);
    captured.errors.push_back(e);
  };
  std::uint64_t expected_dropped = 0;
  std::size_t expected_warnings = 1;
  SUBCASE("no samples") {
    // CPU mode at 1 Hz: the first sample needs a second of CPU, and the transaction burns none.
    cfg.mode = spanprof::sampling_mode::cpu;
    cfg.sample_rate_hz = 1;
    session s(cfg);
    record_on_named_thread("GET /no-samples", 0);
  }
  SUBCASE("sampling off: no profile was asked for, so nothing to warn about") {
    cfg.sampling = false;
    expected_warnings = 0;
    session s(cfg);
    record_on_named_thread("GET /unsampled", 0);
  }
  SUBCASE("one sample") {
    // 20 Hz: after the first sample, the next is ~50 ms away, and the transaction ends at once.
    cfg.sample_rate_hz = 20;
    expected_dropped = 1;
    session s(cfg);
    record_on_named_thread("GET /one\nsample", 1);  // the warning stays one line
    if (signals_deferred) return;
  }
  const spanprof::counters c = spanprof::stats();
  const envelope env = read_only_envelope(dir);
  REQUIRE(env.items.size() == 1);
  CHECK(env.items[0].header.at("type") == "transaction");
  const json& tx = env.items[0].body;
  CHECK(env.header.at("event_id") == tx.at("event_id"));
  CHECK_FALSE(tx.at("contexts").contains("profile"));  // no link to a profile that was not sent
  CHECK(c.profiles_omitted == expected_warnings);
  CHECK(c.profile_samples_dropped == expected_dropped);
  const auto warnings = captured.of_kind(spanprof::error_kind::profile_trimmed);
  REQUIRE(warnings.size() == expected_warnings);
  if (expected_warnings == 0) return;
  CHECK(warnings[0].message.find("without a profile") != std::string::npos);
  CHECK(warnings[0].message.find(tx.at("event_id").get<std::string>()) != std::string::npos);
  CHECK(warnings[0].message.find('\n') == std::string::npos);
}

namespace {

namespace sd = spanprof::detail;

// A finished transaction built by hand, for the limits no real recording reaches quickly (30 s,
// 10 MiB, 1 MB): ticks are nanoseconds (based at the start: a double holds an epoch only to
// 256 ns), the epoch is the monotonic time, and every sample's
// stack is its own frame, so the frame table grows with the samples.
struct handmade_transaction {
  static constexpr std::int64_t begin_ns = 1'700'000'000'123'456'789;  // 2023-11-14T22:13:20.123456789Z
  sd::transaction_record rec;
  sd::clock_calibration clock;
  sd::process_info process = sd::process_info::current();
  spanprof::config cfg;
  sd::transaction_samples sampled;
  sd::transaction_analysis analysis;
  std::vector<sd::module_info> modules;

  explicit handmade_transaction(std::int64_t duration_ns) {
    rec.trace = {0x0af7651916cd43ddull, 0x8448eb211c80319cull};
    rec.event_id = {0x4f1c2b7e9a0d4c3eull, 0x8b5a6f7d2e1c0b9aull};
    rec.thread_id = 4243;
    std::strcpy(rec.thread_name, "worker-1");
    sd::span_record* root = rec.spans.prepare_next(16);
    REQUIRE(root != nullptr);
    root->id = 0xb7ad6b7169203331ull;
    root->begin_ticks = begin_ns;
    root->end_ticks.store(begin_ns + duration_ns);
    root->description = rec.strings.copy("GET /synthetic", 200);
    rec.spans.publish_next();
    cfg.release = "synthetic@1";
    analysis.stack_begin.push_back(0);
  }

  // A sample `at_ns` after the start on `tid`, with a one-frame stack (none if `empty`).
  void add_sample(std::int64_t at_ns, std::uint32_t tid = 4243, bool empty = false) {
    sd::collected_sample c;
    c.t_ticks = begin_ns + at_ns;
    c.tid = tid;
    if (!empty) {
      sd::profile_frame f;
      f.function = "work_" + std::to_string(analysis.frames.size()) + std::string(40, 'w');
      f.file = "/src/work.cpp";
      f.line = 7;
      f.instruction_addr = 0x1000 + analysis.frames.size();
      c.pcs.push_back(f.instruction_addr);
      analysis.stack_frames.push_back(static_cast<std::uint32_t>(analysis.frames.size()));
      analysis.frames.push_back(std::move(f));
    }
    analysis.stack_begin.push_back(static_cast<std::uint32_t>(analysis.stack_frames.size()));
    sampled.samples.push_back(std::move(c));
  }

  [[nodiscard]] sd::finished_transaction view() const {
    sd::finished_transaction txn{rec, sd::tick_converter{begin_ns, begin_ns, 1.0}, clock, process, cfg, sampled};
    txn.analysis = &analysis;
    return txn;
  }
};

json profile_of(const handmade_transaction& s, sd::sentry_profile_stats& report, std::size_t max_bytes = sd::sentry_max_profile_bytes) {
  sd::json_text_stats text;
  const std::string out = sd::write_sentry_profile(s.view(), sd::to_hex(sd::trace_id{1, 2}), text, report, max_bytes);
  if (out.empty()) return json();
  CHECK(out.size() <= max_bytes);
  return json::parse(out);
}

std::vector<std::uint64_t> elapsed_of(const json& profile) {
  std::vector<std::uint64_t> out;
  for (const json& s : profile.at("profile").at("samples")) out.push_back(u64_of(s.at("elapsed_since_start_ns")));
  return out;
}

}  // namespace

TEST_CASE("sentry_profile limits: what Relay would discard or reject is left out and counted") {
  constexpr std::int64_t ms = 1'000'000;
  SUBCASE("samples outside the transaction are left out") {
    handmade_transaction s(100 * ms);
    s.add_sample(-5 * ms);
    for (int i = 0; i < 5; ++i) s.add_sample((10 + 10 * i) * ms);
    s.add_sample(150 * ms);
    sd::sentry_profile_stats report;
    const json p = profile_of(s, report);
    REQUIRE(p.is_object());
    CHECK(report.outside_transaction == 2);
    CHECK(report.samples_written == 5);
    CHECK(report.samples_lost() == 2);
    const auto elapsed = elapsed_of(p);
    REQUIRE(elapsed.size() == 5);
    // 789 ns: the start's offset from the microsecond the timestamp names.
    CHECK(p.at("transaction").at("relative_start_ns") == "789");
    CHECK(p.at("transaction").at("relative_end_ns") == std::to_string(789 + 100 * ms));
    CHECK(elapsed.front() == static_cast<std::uint64_t>(789 + 10 * ms));
    CHECK(p.at("timestamp") == "2023-11-14T22:13:20.123456Z");
  }
  SUBCASE("samples later than 30 s are left out, so the last one is within Sentry's limit") {
    handmade_transaction s(40'000 * ms);
    for (int i = 0; i < 40; ++i) s.add_sample((500 + 1000 * i) * ms);
    sd::sentry_profile_stats report;
    const json p = profile_of(s, report);
    REQUIRE(p.is_object());
    CHECK(report.over_duration == 10);
    const auto elapsed = elapsed_of(p);
    REQUIRE(elapsed.size() == 30);
    CHECK(elapsed.back() <= 30'000'000'000ull);
  }
  SUBCASE("a thread with one sample and empty stacks at a thread's edges are left out") {
    handmade_transaction s(100 * ms);
    s.add_sample(5 * ms, 4243, /*empty=*/true);
    s.add_sample(10 * ms);
    s.add_sample(20 * ms, 777);
    s.add_sample(30 * ms);
    s.add_sample(40 * ms, 4243, /*empty=*/true);
    sd::sentry_profile_stats report;
    const json p = profile_of(s, report);
    REQUIRE(p.is_object());
    CHECK(report.idle_edges == 2);
    CHECK(report.lone_thread == 1);
    CHECK(report.samples_written == 2);
    CHECK(p.at("profile").at("thread_metadata").size() == 1);
    CHECK(p.at("profile").at("thread_metadata").at("4243").at("name") == "worker-1");
    for (const json& sample : p.at("profile").at("samples")) CHECK(sample.at("thread_id") == "4243");
    CHECK(p.at("transaction").at("active_thread_id") == "4243");
  }
  SUBCASE("the transaction's thread without samples: the thread that has them is the active one") {
    handmade_transaction s(100 * ms);
    s.add_sample(10 * ms, 99);
    s.add_sample(20 * ms, 99);
    sd::sentry_profile_stats report;
    const json p = profile_of(s, report);
    REQUIRE(p.is_object());
    CHECK(p.at("transaction").at("active_thread_id") == "99");
    CHECK(p.at("profile").at("thread_metadata").at("99").is_object());
    CHECK_FALSE(p.at("profile").at("thread_metadata").at("99").contains("name"));  // not known
  }
  SUBCASE("a profile over the size limit keeps its earliest samples, and fits") {
    handmade_transaction s(1000 * ms);
    for (int i = 0; i < 200; ++i) s.add_sample((1 + 4 * i) * ms);
    sd::sentry_profile_stats whole;
    const json all = profile_of(s, whole);
    REQUIRE(all.is_object());
    const std::size_t full_size = all.dump().size();
    sd::sentry_profile_stats report;
    const json p = profile_of(s, report, full_size / 3);  // CHECKs the size inside
    REQUIRE(p.is_object());
    CHECK(report.over_size > 0);
    CHECK(report.samples_written + report.over_size == 200);
    const auto elapsed = elapsed_of(p);
    REQUIRE(elapsed.size() == report.samples_written);
    CHECK(elapsed.front() == elapsed_of(all).front());
    // Only the frames the kept samples use are written.
    CHECK(p.at("profile").at("frames").size() == report.samples_written);
  }
  SUBCASE("hostile frame, file and thread names are escaped or repaired, never invalid JSON") {
    handmade_transaction s(100 * ms);
    s.add_sample(10 * ms);
    s.add_sample(20 * ms);
    s.analysis.frames[0].function = std::string("op\xff\"erator\"\n\x01<\xE2\x82>") + std::string(5000, 'f');
    s.analysis.frames[1].file = "/src/dir\\with\tbad\xC0\xAFname/\"x\".cpp";
    std::strcpy(s.rec.thread_name, "w\xfe\x01\"");
    sd::sentry_profile_stats report;
    const json p = profile_of(s, report);  // nlohmann's parse rejects invalid UTF-8
    REQUIRE(p.is_object());
    const json& frames = p.at("profile").at("frames");
    REQUIRE(frames.size() == 2);
    const std::string function = frames[0].at("function").get<std::string>();
    // Every invalid byte became U+FFFD; the quote, newline and control character came back intact.
    CHECK(function.starts_with("op\xEF\xBF\xBD\"erator\"\n\x01<\xEF\xBF\xBD"));
    CHECK(function.find(">ffff") != std::string::npos);
    CHECK(frames[1].at("filename") == "\"x\".cpp");
    CHECK(frames[1].at("abs_path").get<std::string>().find("\xEF\xBF\xBD") != std::string::npos);
    CHECK(p.at("profile").at("thread_metadata").at("4243").at("name") == "w\xEF\xBF\xBD\x01\"");
  }
  SUBCASE("nothing left: no profile, and the reason") {
    handmade_transaction s(100 * ms);
    s.add_sample(10 * ms);
    s.add_sample(20 * ms, 777);
    sd::sentry_profile_stats report;
    CHECK(profile_of(s, report).is_null());
    CHECK(report.omitted_because.find("2 or more") != std::string::npos);
    CHECK(report.samples_lost() == 2);
  }
  SUBCASE("no analysis (symbolization failed): no profile") {
    handmade_transaction s(100 * ms);
    s.add_sample(10 * ms);
    s.add_sample(20 * ms);
    sd::finished_transaction txn = s.view();
    txn.analysis = nullptr;
    sd::json_text_stats text;
    sd::sentry_profile_stats report;
    CHECK(sd::write_sentry_profile(txn, sd::to_hex(sd::trace_id{1, 2}), text, report).empty());
    CHECK_FALSE(report.omitted_because.empty());
  }
}

TEST_CASE("sentry_profile limits: a transaction event over 1 MB gives no envelope") {
  handmade_transaction s(100'000'000);
  s.add_sample(10'000'000);
  s.add_sample(20'000'000);
  const std::string description(8000, 'd');
  for (int i = 0; i < 140; ++i) {  // 140 × 8000 bytes of descriptions: over 1 MB of event
    sd::span_record* span = s.rec.spans.prepare_next(1000);
    REQUIRE(span != nullptr);
    span->id = 0x1000 + static_cast<std::uint64_t>(i);
    span->parent_id = s.rec.spans[0].id;
    span->begin_ticks = handmade_transaction::begin_ns + 1000;
    span->end_ticks.store(handmade_transaction::begin_ns + 2000);
    span->description = s.rec.strings.copy(description, 8192);
    s.rec.spans.publish_next();
  }
  sd::json_text_stats text;
  const sd::sentry_envelope_result r = sd::write_sentry_envelope(s.view(), sd::trace_id{1, 2}, handmade_transaction::begin_ns, text);
  CHECK(r.envelope.empty());
  CHECK(r.problem.find("1000000") != std::string::npos);
  SUBCASE("below the limit the same transaction gives an envelope") {
    handmade_transaction small(100'000'000);
    small.add_sample(10'000'000);
    small.add_sample(20'000'000);
    const sd::sentry_envelope_result ok = sd::write_sentry_envelope(small.view(), sd::trace_id{1, 2}, handmade_transaction::begin_ns, text);
    CHECK(ok.problem.empty());
    const envelope env = parse_envelope(ok.envelope);
    CHECK(env.items.size() == 2);
    CHECK(env.header.at("sent_at") == "2023-11-14T22:13:20.123456Z");
  }
}

TEST_CASE("sentry_profile: SPANPROF_FORMATS=envelope selects the envelope") {
  spanprof::output_format formats = spanprof::output_format::none;
  REQUIRE(spanprof::detail::parse_formats("chrome, envelope", formats));
  CHECK(spanprof::has_format(formats, spanprof::output_format::sentry_envelope));
  CHECK(spanprof::has_format(formats, spanprof::output_format::chrome_trace));
  CHECK_FALSE(spanprof::has_format(formats, spanprof::output_format::sentry_transaction));
}
