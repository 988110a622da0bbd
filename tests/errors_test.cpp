// errors.hpp and the error paths of config.hpp / spanprof.hpp: invalid configuration, the
// SPANPROF_* environment, an output folder that cannot be used, and a callback that throws.
#include <spanprof/spanprof.hpp>

#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "support/error_log.hpp"
#include "support/test_support.hpp"

using spanprof_test::callback_into;
using spanprof_test::count_files;
using spanprof_test::error_log;
using spanprof_test::shutdown_at_scope_exit;
using spanprof_test::temp_dir;

namespace {

namespace fs = std::filesystem;

const char* const spanprof_variables[] = {
    "SPANPROF_ENABLED",     "SPANPROF_OUTPUT_DIR",     "SPANPROF_FORMATS",
    "SPANPROF_TRACES_SAMPLE_RATE", "SPANPROF_SAMPLE_RATE_HZ", "SPANPROF_MODE",
    "SPANPROF_RELEASE",     "SPANPROF_ENVIRONMENT",    "SPANPROF_MAX_SPANS",
};

// Unsets every SPANPROF_* variable for the test, and puts back what was there.
class clean_environment {
 public:
  clean_environment() {
    for (const char* name : spanprof_variables) {
      if (const char* value = std::getenv(name)) saved_.emplace_back(name, value);
      ::unsetenv(name);
    }
  }
  ~clean_environment() {
    for (const char* name : spanprof_variables) ::unsetenv(name);
    for (const auto& [name, value] : saved_) ::setenv(name.c_str(), value.c_str(), 1);
  }
  clean_environment(const clean_environment&) = delete;
  clean_environment& operator=(const clean_environment&) = delete;

 private:
  std::vector<std::pair<std::string, std::string>> saved_;
};

// A base whose every environment-controlled field differs from the defaults.
spanprof::config base_config() {
  spanprof::config cfg;
  cfg.enabled = false;
  cfg.output_dir = "/base/dir";
  cfg.formats = spanprof::output_format::chrome_trace;
  cfg.traces_sample_rate = 0.5;
  cfg.sample_rate_hz = 77;
  cfg.mode = spanprof::sampling_mode::cpu;
  cfg.release = "base@1";
  cfg.environment = "base-env";
  cfg.max_spans_per_transaction = 123;
  return cfg;
}

void check_environment_fields(const spanprof::config& got, const spanprof::config& want) {
  CHECK(got.enabled == want.enabled);
  CHECK(got.output_dir == want.output_dir);
  CHECK(static_cast<unsigned>(got.formats) == static_cast<unsigned>(want.formats));
  CHECK(got.traces_sample_rate == want.traces_sample_rate);
  CHECK(got.sample_rate_hz == want.sample_rate_hz);
  CHECK((got.mode == want.mode));
  CHECK(got.release == want.release);
  CHECK(got.environment == want.environment);
  CHECK(got.max_spans_per_transaction == want.max_spans_per_transaction);
}

}  // namespace

TEST_CASE("config::from_environment applies each SPANPROF_* variable") {
  clean_environment env;
  struct example {
    const char* variable;
    const char* value;
    std::function<void(spanprof::config&)> expect;  // applied to the base: what must come out
  };
  using formats = spanprof::output_format;
  const example examples[] = {
      {"SPANPROF_ENABLED", "1", [](spanprof::config& c) { c.enabled = true; }},
      {"SPANPROF_ENABLED", "on", [](spanprof::config& c) { c.enabled = true; }},
      {"SPANPROF_ENABLED", "false", [](spanprof::config&) {}},
      {"SPANPROF_OUTPUT_DIR", "/var/profiles", [](spanprof::config& c) { c.output_dir = "/var/profiles"; }},
      {"SPANPROF_FORMATS", "sentry", [](spanprof::config& c) { c.formats = formats::sentry_transaction; }},
      {"SPANPROF_FORMATS", "chrome, sentry",
       [](spanprof::config& c) { c.formats = formats::chrome_trace | formats::sentry_transaction; }},
      {"SPANPROF_FORMATS", "none", [](spanprof::config& c) { c.formats = formats::none; }},
      {"SPANPROF_TRACES_SAMPLE_RATE", "0.25", [](spanprof::config& c) { c.traces_sample_rate = 0.25; }},
      {"SPANPROF_TRACES_SAMPLE_RATE", "0", [](spanprof::config& c) { c.traces_sample_rate = 0; }},
      {"SPANPROF_TRACES_SAMPLE_RATE", "1", [](spanprof::config& c) { c.traces_sample_rate = 1; }},
      {"SPANPROF_SAMPLE_RATE_HZ", "250", [](spanprof::config& c) { c.sample_rate_hz = 250; }},
      {"SPANPROF_MODE", "wall", [](spanprof::config& c) { c.mode = spanprof::sampling_mode::wall; }},
      {"SPANPROF_MODE", "cpu", [](spanprof::config&) {}},
      {"SPANPROF_RELEASE", "api@2.0.1", [](spanprof::config& c) { c.release = "api@2.0.1"; }},
      {"SPANPROF_ENVIRONMENT", "staging", [](spanprof::config& c) { c.environment = "staging"; }},
      {"SPANPROF_MAX_SPANS", "100", [](spanprof::config& c) { c.max_spans_per_transaction = 100; }},
      {"SPANPROF_MAX_SPANS", "16383", [](spanprof::config& c) { c.max_spans_per_transaction = 16383; }},
  };
  for (const example& e : examples) {
    INFO(std::string(e.variable), "=\"", std::string(e.value), "\"");
    REQUIRE(::setenv(e.variable, e.value, 1) == 0);
    std::vector<std::string> problems;
    const spanprof::config got = spanprof::config::from_environment(base_config(), &problems);
    ::unsetenv(e.variable);
    spanprof::config want = base_config();
    e.expect(want);
    CHECK(problems.empty());
    check_environment_fields(got, want);
  }
  SUBCASE("with nothing set, the base comes back unchanged") {
    std::vector<std::string> problems;
    check_environment_fields(spanprof::config::from_environment(base_config(), &problems), base_config());
    CHECK(problems.empty());
  }
}

TEST_CASE("config::from_environment reports a bad value and keeps the field") {
  clean_environment env;
  struct example {
    const char* variable;
    const char* value;
  };
  const example examples[] = {
      {"SPANPROF_ENABLED", "maybe"},          {"SPANPROF_ENABLED", ""},
      {"SPANPROF_OUTPUT_DIR", ""},            {"SPANPROF_FORMATS", "chrome,xml"},
      {"SPANPROF_FORMATS", "Chrome"},         {"SPANPROF_TRACES_SAMPLE_RATE", "2"},
      {"SPANPROF_TRACES_SAMPLE_RATE", "-0.1"}, {"SPANPROF_TRACES_SAMPLE_RATE", "nan"},
      {"SPANPROF_TRACES_SAMPLE_RATE", "inf"}, {"SPANPROF_TRACES_SAMPLE_RATE", "half"},
      {"SPANPROF_TRACES_SAMPLE_RATE", "0.5x"}, {"SPANPROF_TRACES_SAMPLE_RATE", ""},
      {"SPANPROF_SAMPLE_RATE_HZ", "0"},       {"SPANPROF_SAMPLE_RATE_HZ", "-5"},
      {"SPANPROF_SAMPLE_RATE_HZ", "1e9"},     {"SPANPROF_MODE", "both"},
      {"SPANPROF_MODE", "WALL"},              {"SPANPROF_MAX_SPANS", "0"},
      {"SPANPROF_MAX_SPANS", "lots"},         {"SPANPROF_MAX_SPANS", "16384"},  // README: 1..16383
  };
  for (const example& e : examples) {
    INFO(std::string(e.variable), "=\"", std::string(e.value), "\"");
    REQUIRE(::setenv(e.variable, e.value, 1) == 0);
    std::vector<std::string> problems;
    const spanprof::config got = spanprof::config::from_environment(base_config(), &problems);
    check_environment_fields(got, base_config());
    REQUIRE(problems.size() == 1);
    INFO("problem: ", problems[0]);
    CHECK(problems[0].rfind("spanprof: ", 0) == 0);
    CHECK(problems[0].find(e.variable) != std::string::npos);
    CHECK(problems[0].find(std::string("\"") + e.value + "\"") != std::string::npos);
    // Without a problems vector the value is still ignored.
    check_environment_fields(spanprof::config::from_environment(base_config()), base_config());
    ::unsetenv(e.variable);
  }
}

namespace {

// A valid configuration writing into `dir`, errors to `log` and not to stderr.
spanprof::config quiet_config(const std::string& dir, const std::shared_ptr<error_log>& log) {
  spanprof::config cfg;
  cfg.output_dir = dir;
  cfg.on_error = callback_into(log);
  cfg.log_errors_to_stderr = false;
  return cfg;
}

// A folder that exists but where no file can be created: root ignores mode 0555, so as root
// /proc (access(2) calls it writable for root; creating a file there fails).
std::string unwritable_folder(const temp_dir& base) {
  if (::geteuid() == 0) return "/proc";
  const std::string path = base / "read-only";
  REQUIRE(::mkdir(path.c_str(), 0555) == 0);
  return path;
}

// What fd 2 receives while `body` runs.
template <class Body>
std::string capture_stderr(const std::string& file, Body body) {
  const int saved = ::dup(STDERR_FILENO);
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(saved >= 0);
  REQUIRE(fd >= 0);
  ::dup2(fd, STDERR_FILENO);
  ::close(fd);
  body();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::ifstream in(file);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("an invalid configuration is refused: init fails, reports it, and nothing records") {
  struct example {
    const char* field;
    const char* value;  // as the message shows it
    std::function<void(spanprof::config&)> spoil;
  };
  const example examples[] = {
      {"traces_sample_rate", "2", [](spanprof::config& c) { c.traces_sample_rate = 2; }},
      {"traces_sample_rate", "-0.5", [](spanprof::config& c) { c.traces_sample_rate = -0.5; }},
      {"traces_sample_rate", "nan", [](spanprof::config& c) { c.traces_sample_rate = std::nan(""); }},
      {"sample_rate_hz", "0", [](spanprof::config& c) { c.sample_rate_hz = 0; }},
      {"sample_rate_hz", "200000", [](spanprof::config& c) { c.sample_rate_hz = 200000; }},
      {"output_dir", "empty", [](spanprof::config& c) { c.output_dir.clear(); }},
      {"max_spans_per_transaction", "0", [](spanprof::config& c) { c.max_spans_per_transaction = 0; }},
      {"max_spans_per_transaction", "16384", [](spanprof::config& c) { c.max_spans_per_transaction = 16384; }},
      {"max_description_bytes", "1", [](spanprof::config& c) { c.max_description_bytes = 1; }},
      {"max_pending_transactions", "0", [](spanprof::config& c) { c.max_pending_transactions = 0; }},
  };
  for (const example& e : examples) {
    INFO(std::string(e.field), " = ", std::string(e.value));
    REQUIRE_FALSE(spanprof::is_running());
    temp_dir dir("spanprof-errors");
    auto log = std::make_shared<error_log>();
    spanprof::config cfg = quiet_config(dir / "out", log);
    e.spoil(cfg);
    const spanprof::counters before = spanprof::stats();

    shutdown_at_scope_exit guard;  // in case init() wrongly succeeds
    const spanprof::init_result result = spanprof::init(cfg);
    INFO("error: ", result.error);
    CHECK_FALSE(result.ok);
    CHECK_FALSE(static_cast<bool>(result));
    CHECK(result.error.rfind("spanprof: ", 0) == 0);
    CHECK(result.error.find(std::string(e.field) + " is " + e.value) != std::string::npos);
    CHECK(result.error.find('\n') == std::string::npos);
    const auto reported = log->of_kind(spanprof::error_kind::invalid_config);
    REQUIRE(log->size() == 1);
    REQUIRE(reported.size() == 1);
    CHECK(reported[0].message == result.error);
    CHECK(spanprof::stats().errors == before.errors + 1);

    // Nothing records: the macros are no-ops and no folder appears.
    CHECK_FALSE(spanprof::is_running());
    {
      SPANPROF_TRANSACTION_NAMED(txn, "refused", "task");
      SPANPROF_SPAN_NAMED(span, "op", "description");
      CHECK_FALSE(txn.is_recording());
      CHECK_FALSE(span.is_recording());
      CHECK_FALSE(SPANPROF_IS_RECORDING());
    }
    CHECK(spanprof::stats().transactions_started == before.transactions_started);
    CHECK_FALSE(fs::exists(dir / "out"));
  }
}

TEST_CASE("an output folder that cannot be used: one error, transactions dropped, the program carries on") {
  temp_dir base("spanprof-errors");
  std::ofstream(base / "plain-file") << "not a folder";
  std::string folder;
  SUBCASE("missing, below a regular file") { folder = base / "plain-file/profiles"; }
  SUBCASE("existing, but no file can be created in it") { folder = unwritable_folder(base); }
  INFO("output_dir ", folder);

  REQUIRE_FALSE(spanprof::is_running());
  auto log = std::make_shared<error_log>();
  shutdown_at_scope_exit guard;
  REQUIRE(spanprof::init(quiet_config(folder, log)).ok);
  int recording = 0;
  for (int i = 0; i < 20; ++i) {
    SPANPROF_TRANSACTION_OP("GET /orders", "http.server");
    SPANPROF_SPAN("db.sql.query", "SELECT 1");
    recording += SPANPROF_IS_RECORDING() ? 1 : 0;
  }
  spanprof::shutdown();  // joins the collector: every transaction has been handled

  CHECK(recording == 20);  // transactions still ran
  const spanprof::counters stats = spanprof::stats();
  const auto unavailable = log->of_kind(spanprof::error_kind::output_unavailable);
  CHECK(unavailable.size() == 1);  // once for the spell, not once per transaction
  CHECK(log->of_kind(spanprof::error_kind::write_failed).empty());
  REQUIRE_FALSE(unavailable.empty());
  INFO("error: ", unavailable[0].message);
  CHECK(unavailable[0].message.find(folder) != std::string::npos);
  CHECK(stats.errors >= 1);
  CHECK(stats.errors == log->size());
  CHECK(stats.transactions_finished == 20);
  CHECK(stats.transactions_dropped == 20);
  CHECK(stats.transactions_written == 0);
  CHECK(stats.files_written == 0);

  // The program carries on, and so does spanprof with a usable folder.
  temp_dir good("spanprof-errors");
  REQUIRE(spanprof::init(quiet_config(good / "out", log)).ok);
  {
    SPANPROF_TRANSACTION("after the failure");
  }
  spanprof::shutdown();
  CHECK(spanprof::stats().transactions_written == 1);
  CHECK(count_files(good / "out") == 2);
}

TEST_CASE("a callback that throws does not escape, and is counted") {
  REQUIRE_FALSE(spanprof::is_running());
  shutdown_at_scope_exit guard;
  temp_dir base("spanprof-errors");
  spanprof::config cfg;
  cfg.log_errors_to_stderr = false;
  int calls = 0;
  cfg.on_error = [&calls](const spanprof::error&) {
    ++calls;
    throw std::runtime_error("callback failed");
  };
  SUBCASE("on the caller's thread (init)") {
    cfg.output_dir = base / "out";
    cfg.traces_sample_rate = 2;
    const std::uint64_t errors_before = spanprof::stats().errors;
    CHECK_FALSE(spanprof::init(cfg).ok);  // init is noexcept: an escape would terminate
    CHECK(calls == 1);
    CHECK(spanprof::stats().errors == errors_before + 2);  // the error, and the throw
  }
  SUBCASE("on the collector thread") {
    std::ofstream(base / "plain-file") << "x";
    cfg.output_dir = base / "plain-file/out";
    REQUIRE(spanprof::init(cfg).ok);
    for (int i = 0; i < 5; ++i) {
      SPANPROF_TRANSACTION("request");
    }
    spanprof::shutdown();  // joins the collector: calls is no longer written
    CHECK(calls == 1);
    CHECK(spanprof::stats().errors == 2);
    CHECK(spanprof::stats().transactions_dropped == 5);
  }
  // Leave no callback that captures this test's locals.
  spanprof::config clean;
  clean.traces_sample_rate = 2;
  clean.log_errors_to_stderr = false;
  CHECK_FALSE(spanprof::init(clean).ok);
}

TEST_CASE("spanprof::init() takes the environment and reports a bad variable like any error") {
  clean_environment env;
  temp_dir dir("spanprof-errors");
  REQUIRE_FALSE(spanprof::is_running());
  shutdown_at_scope_exit guard;

  // An earlier configuration's callback must not receive errors of a later init().
  auto earlier = std::make_shared<error_log>();
  REQUIRE(spanprof::init(quiet_config(dir / "earlier", earlier)).ok);
  spanprof::shutdown();

  ::setenv("SPANPROF_OUTPUT_DIR", (dir / "from-env").c_str(), 1);
  ::setenv("SPANPROF_FORMATS", "sentry", 1);
  ::setenv("SPANPROF_TRACES_SAMPLE_RATE", "2", 1);  // bad: the default 1.0 stays
  spanprof::init_result started;
  const std::string logged = capture_stderr(dir / "stderr", [&] { started = spanprof::init(); });
  INFO("stderr: ", logged);
  REQUIRE(started.ok);
  CHECK(spanprof::is_running());
  CHECK(spanprof::stats().errors == 1);
  CHECK(logged.find("SPANPROF_TRACES_SAMPLE_RATE") != std::string::npos);
  CHECK(earlier->size() == 0);
  {
    SPANPROF_TRANSACTION("configured from the environment");
  }
  spanprof::shutdown();
  CHECK(spanprof::stats().transactions_written == 1);
  CHECK(count_files(dir / "from-env") == 1);  // only the Sentry file
}
