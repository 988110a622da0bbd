// module_map.hpp: which module held an address at a sample's time, on synthetic loader lists
// (tests/support/synthetic_modules.hpp): modules seen again, unloaded, replaced at the same
// address, and loads and unloads no refresh saw. The last subcase checks that the symbolizer
// turns the map's "changed" into a frame, never a guessed name.
#include <doctest/doctest.h>
#include <spanprof/detail/symbolize/frames.hpp>
#include <spanprof/detail/symbolize/loader.hpp>
#include <spanprof/detail/symbolize/module_map.hpp>
#include <spanprof/detail/symbolize/symbolizer.hpp>

#include <cstdint>
#include <string>

#include "support/synthetic_modules.hpp"

using namespace spanprof::detail;
using spanprof_test::snapshot;
using spanprof_test::synthetic;

TEST_CASE("module map: which module held an address at a sample's time, across loads and unloads") {
  module_map map({"libapp"});
  const observed_module a = synthetic("/lib/liba.so", 0x1000, 0x2000);
  const observed_module b = synthetic("/lib/libb.so", 0x1000, 0x2000);  // same place as a
  const observed_module app = synthetic("/srv/libapp_handlers.so", 0x5000, 0x6000);
  const observed_module c = synthetic("/lib/libc_new.so", 0x8000, 0x9000);
  map.apply(snapshot(2, 0, {a, app}), 100);
  map.apply(snapshot(2, 0, {a, app}), 200);
  REQUIRE(map.modules().size() == 2);  // seen again: the same modules, not new ones
  CHECK(map.modules()[1]->in_app);
  CHECK_FALSE(map.modules()[0]->in_app);

  const auto name_at = [&](std::uintptr_t address, std::int64_t time_ns) -> std::string {
    const module_lookup found = map.find(address, time_ns);
    if (found.status == module_lookup_status::changed) return "changed";
    if (found.status == module_lookup_status::no_module) return "none";
    return found.module->path;
  };

  SUBCASE("unloaded and replaced at the same address between two refreshes: ambiguous in that gap only") {
    map.apply(snapshot(3, 1, {b, app}), 300);
    CHECK(name_at(0x1800, 150) == "/lib/liba.so");  // seen at 100 and 200
    CHECK(name_at(0x1800, 200) == "/lib/liba.so");
    CHECK(name_at(0x1800, 250) == "changed");       // a until some time, b after: unknown which
    CHECK(name_at(0x1800, 300) == "/lib/libb.so");
    CHECK(name_at(0x1800, 350) == "/lib/libb.so");  // after the last refresh: b is still loaded
    CHECK(name_at(0x5800, 250) == "/srv/libapp_handlers.so");
    CHECK(name_at(0x1800, 50) == "/lib/liba.so");   // before the first refresh: only a is known
  }
  SUBCASE("unloaded with nothing in its place: samples taken before the unload still resolve") {
    map.apply(snapshot(2, 1, {app}), 300);
    CHECK(name_at(0x1800, 250) == "/lib/liba.so");
    CHECK_FALSE(map.modules()[0]->loaded());
    CHECK(name_at(0x1800, 350) == "none");
  }
  SUBCASE("a module that appeared elsewhere does not make an unrelated unload ambiguous") {
    map.apply(snapshot(3, 1, {app, c}), 300);
    CHECK(name_at(0x1800, 250) == "/lib/liba.so");
    CHECK(name_at(0x8800, 250) == "/lib/libc_new.so");  // loaded some time before 300: the only candidate
  }
  SUBCASE("a load and unload that no refresh saw make every uncertain address in that gap ambiguous") {
    map.apply(snapshot(4, 2, {app, c}), 300);  // two loads and two unloads, but one new and one gone seen
    CHECK(name_at(0x1800, 250) == "changed");
    CHECK(name_at(0x8800, 250) == "changed");
    CHECK(name_at(0x5800, 250) == "/srv/libapp_handlers.so");  // seen on both sides: certain
    CHECK(name_at(0x8800, 300) == "/lib/libc_new.so");
  }
  SUBCASE("unloaded, then loaded again at the same address: two modules, each for its own time") {
    map.apply(snapshot(2, 1, {app}), 300);
    map.apply(snapshot(3, 1, {a, app}), 400);
    REQUIRE(map.modules().size() == 3);
    CHECK(map.find(0x1800, 150).module == map.modules()[0].get());
    CHECK(map.find(0x1800, 350).module == map.modules()[2].get());
    CHECK(name_at(0x1800, 350) == "/lib/liba.so");
  }
  SUBCASE("the symbolizer reports the ambiguity as a frame, never a guessed name") {
    symbolizer s;
    s.apply(snapshot(2, 0, {a, app}), 100);
    s.apply(snapshot(3, 1, {b, app}), 300);
    const resolved_address r = s.resolve(0x1800, 200, false);
    CHECK(r.module == nullptr);
    REQUIRE(r.frames.size() == 1);
    CHECK(r.frames[0].function == "unknown module (changed)");
    CHECK(r.frames[0].quality == frame_quality::unknown);
    const resolved_address later = s.resolve(0x1800, 300, false);
    REQUIRE(later.module != nullptr);
    CHECK(later.module->path == "/lib/libb.so");
    CHECK(later.frames[0].function == "libb.so+0x800");
  }
}
