// Helpers shared by the test suites: a private folder per test case (every suite that writes
// files), the written profiles read back with nlohmann::json, and guards that start and stop the
// process-global runtime (api, shutdown, concurrency, alloc, odr, errors, ids, writers).
// spanprof::shutdown() joins the collector, so after it every file is on disk: that is the only
// barrier these tests use.
#pragma once

#include <doctest/doctest.h>
#include <spanprof/spanprof.hpp>
#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace spanprof_test {

using json = nlohmann::json;

// A mkdtemp folder "<prefix>-XXXXXX" under $TMPDIR (else /tmp), removed with everything in it
// when the test case ends, even if a test made folders in it read-only.
class temp_dir {
 public:
  explicit temp_dir(std::string_view prefix = "spanprof-test") {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/";
    pattern.append(prefix).append("-XXXXXX");
    if (::mkdtemp(pattern.data()) == nullptr) FAIL("mkdtemp failed for ", pattern, ": ", std::strerror(errno));
    path_ = pattern;
  }
  ~temp_dir() {
    namespace fs = std::filesystem;
    // Give the owner back its rights on every folder (not through links), so remove_all can
    // empty them. A folder is opened only after it was visited, so 0555 or 0000 is no obstacle.
    std::error_code ignored;
    fs::permissions(path_, fs::perms::owner_all, fs::perm_options::add, ignored);
    std::error_code walk;
    for (fs::recursive_directory_iterator it(path_, walk), end; !walk && it != end; it.increment(walk)) {
      if (fs::is_directory(it->symlink_status(ignored))) {
        fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add, ignored);
      }
    }
    fs::remove_all(path_, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  // The path of `name` inside the folder (`name` may contain slashes).
  [[nodiscard]] std::string operator/(std::string_view name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// The whole content of `file` ("" if it cannot be read).
inline std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every regular file in `dir` whose name ends with `suffix`, sorted.
inline std::vector<std::filesystem::path> files_ending_with(const std::filesystem::path& dir, std::string_view suffix) {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (entry.is_regular_file() && name.size() >= suffix.size() && name.ends_with(suffix)) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

inline std::size_t count_files(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return 0;
  std::size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) n += entry.is_regular_file() ? 1 : 0;
  return n;
}

inline json read_json(const std::filesystem::path& file) {
  std::ifstream in(file);
  REQUIRE_MESSAGE(in.good(), "cannot open ", file.string());
  return json::parse(in);  // throws (and fails the test) on invalid JSON
}

// Nanoseconds of the day of an RFC 3339 time ("YYYY-MM-DDTHH:MM:SS.uuuuuuZ", as the Sentry
// writer prints): only differences within one transaction matter (one straddling midnight
// would fail loudly, not pass).
inline std::int64_t parse_rfc3339_ns(const std::string& text) {
  const int h = std::stoi(text.substr(11, 2)), m = std::stoi(text.substr(14, 2)), s = std::stoi(text.substr(17, 2));
  const std::int64_t us = std::stoll(text.substr(20, 6));
  return ((static_cast<std::int64_t>(h) * 60 + m) * 60 + s) * 1'000'000'000 + us * 1000;
}

enum class derived_spans { drop, keep };

// Every Sentry transaction event written into `dir`. Gap filling adds derived spans
// (origin auto.profile.spanprof) wherever samples happened to land between spans; tests of the
// instrumented spans drop them, gap filling's own tests keep them.
inline std::vector<json> read_transactions(const std::filesystem::path& dir, derived_spans derived = derived_spans::drop) {
  std::vector<json> out;
  for (const auto& file : files_ending_with(dir, ".transaction.json")) {
    json txn = read_json(file);
    if (derived == derived_spans::drop && txn.contains("spans")) {
      json manual = json::array();
      for (json& span : txn["spans"]) {
        if (span.value("origin", std::string()) != "auto.profile.spanprof") manual.push_back(std::move(span));
      }
      txn["spans"] = std::move(manual);
    }
    out.push_back(std::move(txn));
  }
  return out;
}

// The one transaction named `name` (REQUIREs exactly one).
inline json transaction_named(const std::vector<json>& txns, std::string_view name) {
  const json* found = nullptr;
  int matches = 0;
  for (const json& t : txns) {
    if (t.value("transaction", std::string()) == name) {
      found = &t;
      ++matches;
    }
  }
  INFO("transaction ", name);
  REQUIRE(matches == 1);
  return *found;
}

// The one span of `txn` whose description is `description` (REQUIREs exactly one).
inline json span_described(const json& txn, std::string_view description) {
  const json* found = nullptr;
  int matches = 0;
  for (const json& s : txn.at("spans")) {
    if (s.value("description", std::string()) == description) {
      found = &s;
      ++matches;
    }
  }
  INFO("span ", description, " in ", txn.value("transaction", std::string()));
  REQUIRE(matches == 1);
  return *found;
}

inline bool has_span_described(const json& txn, std::string_view description) {
  return std::any_of(txn.at("spans").begin(), txn.at("spans").end(),
                     [&](const json& s) { return s.value("description", std::string()) == description; });
}

inline std::string root_span_id(const json& txn) { return txn.at("contexts").at("trace").at("span_id").get<std::string>(); }
inline std::string trace_id_of(const json& txn) { return txn.at("contexts").at("trace").at("trace_id").get<std::string>(); }

// A configuration writing into `dir` (both formats, errors on stderr unless told otherwise).
inline spanprof::config config_for(const temp_dir& dir) {
  spanprof::config cfg;
  cfg.output_dir = dir.path().string();
  return cfg;
}

// shutdown() when the scope ends, even when a REQUIRE threw: the runtime is process-global.
// For a test that calls init() itself (or expects it to fail); otherwise use session.
struct shutdown_at_scope_exit {
  shutdown_at_scope_exit() = default;
  ~shutdown_at_scope_exit() { spanprof::shutdown(); }
  shutdown_at_scope_exit(const shutdown_at_scope_exit&) = delete;
  shutdown_at_scope_exit& operator=(const shutdown_at_scope_exit&) = delete;
};

// init() for one test case, shutdown() when it ends even if a REQUIRE threw.
class session {
 public:
  explicit session(const spanprof::config& cfg) {
    const spanprof::init_result started = spanprof::init(cfg);
    REQUIRE_MESSAGE(started.ok, started.error);
    REQUIRE(spanprof::is_running());
  }
  ~session() { spanprof::shutdown(); }
  session(const session&) = delete;
  session& operator=(const session&) = delete;
};

}  // namespace spanprof_test
