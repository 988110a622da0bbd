// engine/environment.hpp: the names SPANPROF_FORMATS accepts.
#include <spanprof/spanprof.hpp>
#include <spanprof/detail/engine/environment.hpp>

#include <doctest/doctest.h>

namespace sd = spanprof::detail;

TEST_CASE("parse_formats: the speedscope, folded and flame graph names") {
  spanprof::output_format f{};
  REQUIRE(sd::parse_formats("speedscope, folded,flamegraph", f));
  CHECK(f == (spanprof::output_format::speedscope | spanprof::output_format::folded | spanprof::output_format::flamegraph));
  REQUIRE(sd::parse_formats("collapsed,svg", f));
  CHECK(f == (spanprof::output_format::folded | spanprof::output_format::flamegraph));
  CHECK_FALSE(sd::parse_formats("speedscope,flame", f));
}
