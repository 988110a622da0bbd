// What every writer owes the files it writes, through the public API: invalid UTF-8 repaired,
// huge strings cut and marked, hostile names kept inside the output folder (with SPANPROF_DISABLE
// nothing is written: disabled_test.cpp). One writer's own fields: chrome_trace_test.cpp,
// sentry_transaction_test.cpp, speedscope_test.cpp, folded_test.cpp, ...
#include "support/writers_e2e.hpp"

using namespace spanprof_test;  // the checkers of writers_e2e.hpp
namespace fs = std::filesystem;

TEST_CASE("invalid UTF-8 in names, descriptions and data is repaired, and the files still parse") {
  temp_dir dir("spanprof-writers");
  const std::string name = "bad \xFF name";
  const std::string description = "desc \xED\xA0\x80 end";  // a UTF-16 surrogate
  const spanprof::counters stats = record(config_for(dir.path()), [&] {
    SPANPROF_TRANSACTION_OP(name, "task");
    SPANPROF_SPAN_NAMED(span, "op", description);
    span.set_data("value", "\xC0\x80");
  });
  CHECK(stats.invalid_utf8_repaired > 0);
  const std::vector<transaction_files> profiles = read_profiles(dir.path());  // every file parses
  REQUIRE(profiles.size() == 1);
  const std::string repaired_name = "bad " + replacement + " name";
  const std::string repaired_description = "desc " + repeat(replacement, 3) + " end";

  const json& event = profiles[0].transaction;
  CHECK(event.at("transaction") == repaired_name);
  REQUIRE(event.at("spans").size() == 1);
  CHECK(event.at("spans")[0].at("description") == repaired_description);
  CHECK(event.at("spans")[0].at("data").at("value") == repeat(replacement, 2));

  const std::vector<json> slices = slices_of(profiles[0].trace);
  slice_named(slices, repaired_name);
  CHECK(slice_named(slices, repaired_description).at("args").at("data").at("value") == repeat(replacement, 2));
  CHECK(profiles[0].trace_text.find(replacement) != std::string::npos);
  CHECK(profiles[0].transaction_text.find(replacement) != std::string::npos);
}

TEST_CASE("a 1 MiB description is cut at max_description_bytes and marked") {
  temp_dir dir("spanprof-writers");
  spanprof::config cfg = config_for(dir.path());
  std::string huge, expected;
  SUBCASE("ASCII") {
    cfg.max_description_bytes = 4096;
    huge = std::string(1 << 20, 'd');
    expected = std::string(4096, 'd') + truncated_1mib;
  }
  SUBCASE("two-byte characters, cap in the middle of one: cut back to a boundary") {
    cfg.max_description_bytes = 4095;
    huge = repeat("\xC3\xA9", 1 << 19);
    expected = repeat("\xC3\xA9", 2047) + truncated_1mib;
  }
  REQUIRE(huge.size() == 1048576);
  const spanprof::counters stats = record(cfg, [&] {
    SPANPROF_TRANSACTION_OP("big description", "task");
    SPANPROF_SPAN("db.sql.query", huge);
  });
  CHECK(stats.strings_truncated == 1);
  CHECK(stats.invalid_utf8_repaired == 0);
  const std::vector<transaction_files> profiles = read_profiles(dir.path());
  REQUIRE(profiles.size() == 1);
  REQUIRE(profiles[0].transaction.at("spans").size() == 1);
  CHECK(profiles[0].transaction.at("spans")[0].at("description") == expected);
  const std::vector<json> slices = slices_of(profiles[0].trace);
  const json& slice = slice_named(slices, expected);
  CHECK(slice.at("args").at("description") == expected);
}

TEST_CASE("hostile transaction names only ever produce files inside the output folder") {
  temp_dir base("spanprof-writers");
  const fs::path out = base.path() / "l1" / "l2" / "out";
  struct example {
    std::string name;             // as given to the macro
    std::string expected_name;    // as the Sentry event's "transaction" reads back
    std::string expected_stem;    // the file name's start (text.hpp's rules, applied by hand)
  };
  const std::vector<example> examples = {
      {"../../x", "../../x", "_._.._x"},
      {"./../../x", "./../../x", "_.._.._x"},
      {"/etc/passwd", "/etc/passwd", "_etc_passwd"},
      {"a\nb", "a\nb", "a_b"},
      {std::string("nul\0inside", 10), std::string("nul\0inside", 10), "nul_inside"},
      {"..", "..", "_."},
      {".", ".", "transaction"},
      {"", "unnamed transaction", "unnamed_transaction"},
      {"\xFF/..\xFF/x", replacement + "/.." + replacement + "/x", "_.._x"},
      {std::string(4096, 'n'), std::string(200, 'n') + "\xE2\x80\xA6[truncated from 4096 bytes]", std::string(80, 'n')},
  };
  record(config_for(out), [&] {
    for (const example& e : examples) {
      SPANPROF_TRANSACTION_OP(e.name, "task");
    }
  });

  // Nothing anywhere under base but the three folders and, directly in `out`, well-named files.
  static const std::regex file_name(R"(^[A-Za-z0-9._-]+-[0-9a-f]{32}\.(trace|transaction)\.json$)");
  const std::set<fs::path> folders{base.path() / "l1", base.path() / "l1" / "l2", out};
  std::size_t files = 0;
  for (const auto& entry : fs::recursive_directory_iterator(base.path())) {
    INFO("found ", entry.path().string());
    if (entry.is_directory() && !entry.is_symlink()) {
      CHECK(folders.count(entry.path()) == 1);
      continue;
    }
    ++files;
    CHECK(entry.is_regular_file());
    CHECK(entry.path().parent_path() == out);
    CHECK(std::regex_match(entry.path().filename().string(), file_name));
  }
  CHECK(files == 2 * examples.size());

  const std::vector<transaction_files> profiles = read_profiles(out);
  REQUIRE(profiles.size() == examples.size());
  for (const example& e : examples) {
    INFO("expected name of ", e.expected_stem);
    int matches = 0;
    for (const transaction_files& p : profiles) {
      if (p.transaction.at("transaction") != e.expected_name) continue;
      ++matches;
      CHECK(p.stem == e.expected_stem);
      CHECK(p.trace.at("otherData").at("transaction") == e.expected_name);
    }
    CHECK(matches == 1);
  }
}
