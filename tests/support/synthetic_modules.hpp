// Synthetic loader lists for module_map::apply and symbolizer::apply: modules that were never
// loaded, at addresses of the test's choosing, so the map's rules for a changing address space
// can be checked exactly (module_map, symbolize).
#pragma once

#include <spanprof/detail/symbolize/loader.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace spanprof_test {

// One synthetic module for module_map::apply.
inline spanprof::detail::observed_module synthetic(std::string name, std::uintptr_t start, std::uintptr_t end) {
  spanprof::detail::observed_module m;
  m.loader_name = name;
  m.path = std::move(name);
  m.bias = start;
  m.image_size = end - start;
  m.executable_ranges = {{start, end}};
  return m;
}

inline spanprof::detail::loader_snapshot snapshot(std::uint64_t loads, std::uint64_t unloads,
                                                 std::vector<spanprof::detail::observed_module> modules) {
  return {loads, unloads, std::move(modules)};
}

}  // namespace spanprof_test
