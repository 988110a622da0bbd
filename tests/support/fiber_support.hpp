// Helpers shared by the fiber tests (fiber_context_test.cpp, profiled_fiber_test.cpp): the
// known-truth workload whose return addresses tell, from a sample's stack, which fiber ran, the
// spans a transaction's program opened, and the switch events of an open transaction record
// (white-box: no writer shows them yet).
#pragma once

#include <doctest/doctest.h>
#include <spanprof/spanprof.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "sampler_support.hpp"
#include "test_support.hpp"

// Known truth: fiber A works in work_a, fiber B in work_b; both burn CPU in spanprof_test_burn(),
// which records the return address of its call, so a sample's stack tells which was running.
inline std::atomic<std::uintptr_t> g_return_into_a{0};
inline std::atomic<std::uintptr_t> g_return_into_b{0};

extern "C" [[gnu::noinline]] inline void spanprof_fiber_test_work_a(std::int64_t cpu_ns) {
  spanprof_test_burn(cpu_ns, &g_return_into_a);
  asm volatile("" ::: "memory");  // no tail call: work_a's frame stays on the stack
}

extern "C" [[gnu::noinline]] inline void spanprof_fiber_test_work_b(std::int64_t cpu_ns) {
  spanprof_test_burn(cpu_ns, &g_return_into_b);
  asm volatile("" ::: "memory");
}

namespace spanprof_test {

// The spans the program opened (origin "manual"), without the ones the gap filler derives.
inline std::vector<json> manual_spans(const json& txn) {
  std::vector<json> out;
  for (const json& span : txn.at("spans")) {
    if (span.value("origin", std::string()) == "manual") out.push_back(span);
  }
  return out;
}

// The transaction record the running context has open in `slot` (white-box: switch events are
// in no output yet). Only the context's owner may read it, i.e. code running on that context.
// CHECK, not REQUIRE: this runs inside fibers, and an exception must not leave one.
inline const spanprof::detail::transaction_record* open_record(int slot = 0) {
  spanprof::detail::execution_context* ctx = spanprof::detail::current_context();
  CHECK(ctx != nullptr);
  if (ctx == nullptr || ctx->depth <= slot) return nullptr;
  return ctx->open[static_cast<std::size_t>(slot)].load();
}

struct switch_event_copy {
  std::int64_t t_ticks;
  std::uint32_t tid;
  spanprof::detail::fiber_switch_kind kind;
};

inline std::vector<switch_event_copy> switches_of(const spanprof::detail::transaction_record* rec) {
  std::vector<switch_event_copy> out;
  CHECK(rec != nullptr);
  if (rec == nullptr) return out;
  for (std::size_t i = 0; i < rec->switches.size(); ++i) {
    const auto& e = rec->switches[i];
    out.push_back({e.t_ticks, e.tid, e.kind});
  }
  return out;
}

inline constexpr auto suspend = spanprof::detail::fiber_switch_kind::suspend;
inline constexpr auto resume = spanprof::detail::fiber_switch_kind::resume;

}  // namespace spanprof_test
