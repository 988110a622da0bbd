// Built with -DSPANPROF_DISABLE (tests/meson.build): every macro compiles to nothing and
// evaluates none of its arguments, statement macros still work where a statement or an
// expression is expected, and init() starts nothing.
#include <doctest/doctest.h>
#include <spanprof/spanprof.hpp>

#include "support/test_support.hpp"

#if !defined(SPANPROF_DISABLE)
#error "disabled_test.cpp must be compiled with -DSPANPROF_DISABLE"
#endif

#include <filesystem>
#include <stdexcept>
#include <string>
#include <type_traits>

using namespace spanprof_test;

namespace {

int evaluations = 0;

// Any evaluation of a macro argument is observable: it counts...
const char* counted(const char* text) {
  ++evaluations;
  return text;
}
int counted_int(int value) {
  ++evaluations;
  return value;
}
spanprof::status counted_status(spanprof::status s) {
  ++evaluations;
  return s;
}
// ...or throws.
std::string throwing(const char* what) {
  ++evaluations;
  throw std::runtime_error(what);
}

void every_macro() {
  SPANPROF_TRANSACTION(throwing("SPANPROF_TRANSACTION name"));
  SPANPROF_TRANSACTION_OP(counted("name"), throwing("SPANPROF_TRANSACTION_OP op"));
  SPANPROF_TRANSACTION_NAMED(txn, throwing("SPANPROF_TRANSACTION_NAMED name"), counted("op"));
  txn.set_status(spanprof::status::not_found);
  txn.set_data("key", 1);
  CHECK_FALSE(txn.is_recording());
  SPANPROF_SPAN(counted("op"), throwing("SPANPROF_SPAN description"));
  SPANPROF_SPAN_NAMED(span, throwing("SPANPROF_SPAN_NAMED op"), counted("description"));
  span.set_status(spanprof::status::aborted);
  span.set_data("key", "value");
  CHECK_FALSE(span.is_recording());
  SPANPROF_FUNCTION();
  SPANPROF_SET_STATUS(counted_status(spanprof::status::internal_error));
  SPANPROF_SET_DATA(counted("key"), throwing("SPANPROF_SET_DATA value"));
  SPANPROF_SET_DATA(throwing("SPANPROF_SET_DATA key"), counted_int(3));
  CHECK_FALSE(SPANPROF_IS_RECORDING());
}

}  // namespace

TEST_CASE("disabled: the argument probes work") {
  // Make sure the probes would catch an evaluation: called directly they count and throw.
  evaluations = 0;
  CHECK(std::string(counted("x")) == "x");
  CHECK(counted_int(2) == 2);
  CHECK(counted_status(spanprof::status::ok) == spanprof::status::ok);
  CHECK_THROWS_WITH(throwing("boom"), "boom");
  CHECK(evaluations == 4);
  evaluations = 0;
}

TEST_CASE("disabled: no macro evaluates its arguments") {
  evaluations = 0;
  CHECK_NOTHROW(every_macro());
  CHECK(evaluations == 0);
}

TEST_CASE("disabled: statement macros are expressions") {
  evaluations = 0;
  const bool flag = evaluations == 0;
  // The unnamed macros expand to void expressions, so they fit where a statement is expected
  // without braces, in a comma expression, and in a conditional.
  if (flag) SPANPROF_SPAN("op", throwing("if branch"));
  else SPANPROF_FUNCTION();
  if (!flag) SPANPROF_TRANSACTION(throwing("else branch"));
  else SPANPROF_SET_STATUS(counted_status(spanprof::status::ok));
  for (int i = 0; i < 3; ++i) SPANPROF_SET_DATA("key", counted_int(i));
  while (false) SPANPROF_TRANSACTION_OP(throwing("name"), "op");
  (SPANPROF_SET_STATUS(counted_status(spanprof::status::ok)), SPANPROF_SET_DATA("k", counted_int(1)));
  flag ? SPANPROF_SET_DATA("k", throwing("ternary")) : SPANPROF_SET_STATUS(spanprof::status::ok);
  static_assert(std::is_void_v<decltype(SPANPROF_SPAN("op", "description"))>);
  static_assert(std::is_void_v<decltype(SPANPROF_TRANSACTION("name"))>);
  static_assert(std::is_void_v<decltype(SPANPROF_SET_DATA("k", 1))>);
  // SPANPROF_IS_RECORDING() is a constant expression: code guarded by it compiles away.
  static_assert(!SPANPROF_IS_RECORDING());
  constexpr bool recording = SPANPROF_IS_RECORDING();
  if (SPANPROF_IS_RECORDING()) (void)throwing("guarded by IS_RECORDING");
  CHECK_FALSE(recording);
  CHECK(evaluations == 0);
}

TEST_CASE("disabled: init() returns ok and starts nothing") {
  temp_dir dir;
  spanprof::config cfg;
  cfg.output_dir = dir / "profiles";
  const spanprof::init_result started = spanprof::init(cfg);
  CHECK(started.ok);
  CHECK(static_cast<bool>(started));
  CHECK_FALSE(spanprof::is_running());
  CHECK_FALSE(spanprof::register_thread());
  every_macro();
  // Even the RAII types, used directly, record nothing when nothing was started.
  {
    static constexpr spanprof::detail::span_site site{"direct", __FILE__, __LINE__};
    spanprof::scoped_transaction txn("direct", "test.txn", &site, __builtin_frame_address(0));
    spanprof::scoped_span span("test.op", "direct", &site, __builtin_frame_address(0));
    CHECK_FALSE(txn.is_recording());
    CHECK_FALSE(span.is_recording());
  }
  spanprof::shutdown();
  CHECK_FALSE(std::filesystem::exists(cfg.output_dir));
  CHECK(count_files(dir.path()) == 0);
  const spanprof::counters c = spanprof::stats();
  CHECK(c.transactions_started == 0);
  CHECK(c.files_written == 0);
  CHECK(c.errors == 0);
}
