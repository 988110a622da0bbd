// gapfill names: display names, call-site matching, file spellings, blocking calls.
#include <doctest/doctest.h>
#include "support/gapfill_scenario.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace gapfill_support;

TEST_CASE("gapfill names: display names, call-site matching, file spellings, blocking calls") {
  using namespace gf::names;
  CHECK(display_name("void handle_orders(int)") == "handle_orders");
  CHECK(display_name("join_in_memory(std::vector<int, std::allocator<int> >&)") == "join_in_memory");
  CHECK(display_name("void std::sort<int*>(int*, int*)") == "std::sort<int*>");
  CHECK(display_name("std::vector<int, std::allocator<int> > app::make(int) const") == "app::make");
  CHECK(display_name("void* operator new(unsigned long)") == "operator new");
  CHECK(display_name("app::handler::operator()(request&) const &") == "app::handler::operator()");
  CHECK(display_name("void run(T) [with T = int]") == "run");
  CHECK(display_name("(anonymous namespace)::helper(int)") == "(anonymous namespace)::helper");
  CHECK(display_name("char* app::name[abi:cxx11]() const") == "app::name");
  CHECK(display_name("pthread_cond_wait@@GLIBC_2.3.2") == "pthread_cond_wait");
  CHECK(match_name("std::sort<int*>") == "std::sort");
  CHECK(names_match("handle_orders", "app::handle_orders"));
  // GCC's __PRETTY_FUNCTION__ and the demangler spell anonymous namespaces differently.
  CHECK(names_match("{anonymous}::handle_get_user", "(anonymous namespace)::handle_get_user"));
  CHECK(names_match("{anonymous}::handle_get_user", "app::(anonymous namespace)::handle_get_user"));
  CHECK_FALSE(names_match("{anonymous}::handle_get_user", "(anonymous namespace)::handle_get_users"));
  CHECK_FALSE(names_match("handle_orders", "app::rehandle_orders"));
  CHECK(files_match("../src/orders.cpp", "/work/app/src/orders.cpp"));
  CHECK(files_match("./orders.cpp", "orders.cpp"));
  CHECK_FALSE(files_match("../src/orders.cpp", "/work/app/src/border/orders.cpp.in"));
  CHECK_FALSE(files_match("src/orders.cpp", "/work/app/src/myorders.cpp"));
  CHECK(blocking_call("__libc_recv") == "recv");
  CHECK(blocking_call("__GI___poll") == "poll");
  CHECK(blocking_call("__futex_abstimed_wait_common64") == "futex");
  CHECK(blocking_call("epoll_wait") == "epoll_wait");
  CHECK(blocking_call("read_nocancel") == "read");
  CHECK(blocking_call("memcpy").empty());
  CHECK(is_system_library("/lib/x86_64-linux-gnu/libc.so.6"));
  CHECK_FALSE(is_system_library("/srv/bin/orders"));
}
