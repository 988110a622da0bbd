// The header included from two translation units links into one program, and both see the same
// runtime: a span opened in odr_test_b.cpp belongs to the transaction opened here.
#include <doctest/doctest.h>
#include <spanprof/spanprof.hpp>
#include <spanprof/detail/engine/runtime.hpp>

#include "support/test_support.hpp"

int odr_b_open_span();
const void* odr_b_runtime_address();
const void* odr_b_context_address();

#if defined(SPANPROF_DISABLE)
TEST_CASE("odr: the header links from two translation units (SPANPROF_DISABLE)") {
  CHECK(odr_b_open_span() < 0);  // not recording
  CHECK(odr_b_runtime_address() == &spanprof::detail::the_runtime());
}
#else

using namespace spanprof_test;

TEST_CASE("odr: a span opened in another translation unit joins this transaction") {
  temp_dir dir;
  int line = 0;
  {
    session s(config_for(dir));
    CHECK(odr_b_runtime_address() == &spanprof::detail::the_runtime());
    SPANPROF_TRANSACTION("odr");
    CHECK(odr_b_context_address() == spanprof::detail::current_context());
    CHECK(odr_b_context_address() != nullptr);
    SPANPROF_SPAN("odr.a", "span from a");
    line = odr_b_open_span();
  }
  REQUIRE(line > 0);
  auto txns = read_transactions(dir.path());
  REQUIRE(txns.size() == 1);
  json a = span_described(txns[0], "span from a");
  json b = span_described(txns[0], "span from b");
  CHECK(a["parent_span_id"] == root_span_id(txns[0]));
  CHECK(b["parent_span_id"] == a["span_id"]);
  CHECK(b["trace_id"] == trace_id_of(txns[0]));
  CHECK(b["data"]["tu"] == "b");
  CHECK(b["data"]["code.lineno"] == line);
  const std::string file = b["data"]["code.filepath"];
  CHECK(file.ends_with("odr_test_b.cpp"));
}

#endif  // SPANPROF_DISABLE
