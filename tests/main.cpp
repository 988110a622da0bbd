// The one doctest main shared by every test binary.
//
// Grouped binaries (tests/meson.build) hold several test files and each meson test runs one
// file's cases through --source-file. A filter that matches nothing would pass with zero cases,
// so main fails a run in which no test case ran. (Placeholders for builds a file does not apply to
// run and say so, rather than doctest::skip(), which doctest counts like a filtered-out case.)
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

namespace {

int g_cases_run = 0;

struct run_case_counter : doctest::IReporter {
  explicit run_case_counter(const doctest::ContextOptions&) {}
  void test_case_start(const doctest::TestCaseData&) override { ++g_cases_run; }
  void test_case_skipped(const doctest::TestCaseData&) override {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
};

}  // namespace

DOCTEST_REGISTER_LISTENER("run_case_counter", 1, run_case_counter);

int main(int argc, char** argv) {
  doctest::Context context(argc, argv);
  const int failed = context.run();
  if (failed != 0 || context.shouldExit()) return failed;  // failures, or --help / --list-*
  if (g_cases_run == 0) {
    std::fputs("no test case ran: a grouped test's --source-file names no file of the binary\n", stderr);
    return 1;
  }
  return 0;
}
