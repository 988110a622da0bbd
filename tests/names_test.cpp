// names.hpp: function names as frames show them, without the suffixes of GCC's copies of a
// function and without symbol versions.
#include <doctest/doctest.h>
#include <spanprof/detail/symbolize/names.hpp>

using namespace spanprof::detail;

TEST_CASE("names: GCC's copies of a function, and versioned symbols, are named as the function") {
  CHECK(without_compiler_suffixes("(anonymous namespace)::f(int*) [clone .constprop.0]") == "(anonymous namespace)::f(int*)");
  CHECK(without_compiler_suffixes("ns::g(double) [clone .isra.0] [clone .cold]") == "ns::g(double)");
  CHECK(without_compiler_suffixes("main.cold") == "main");
  CHECK(without_compiler_suffixes("parse_header.part.0") == "parse_header");
  CHECK(without_compiler_suffixes("helper.constprop.0.isra.0") == "helper");
  CHECK(without_compiler_suffixes("_GLOBAL__sub_I_symbolize_test.cpp") == "_GLOBAL__sub_I_symbolize_test.cpp");
  CHECK(without_compiler_suffixes("ns::h()") == "ns::h()");
  CHECK(without_compiler_suffixes("memcpy@@GLIBC_2.14") == "memcpy");
  CHECK(without_compiler_suffixes("matherr@GLIBC_2.2.5") == "matherr");
}
