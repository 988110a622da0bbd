// spanprof: the engine, compiled once per program.
//
// spanprof.hpp includes this file only in the translation unit that defines
// SPANPROF_IMPLEMENTATION (spanprof/engine.cpp, which spanprof_dep, the CMake target and
// pkg-config's libspanprof.a supply). It defines every function the light header declares —
// init(), shutdown(), stats(), transactions, fiber contexts — and pulls in the collector thread,
// the signal handler, unwinding, symbolization, gap filling and the writers, so no other TU
// parses them. Everything else in detail/ is inline, so a test that includes an engine header
// as well links with this TU without duplicate definitions.
#pragma once

#if !defined(SPANPROF_DISABLE)

#include <string>
#include <vector>

#include "../core/config.hpp"
#include "environment.hpp"
#include "lifecycle.hpp"
#include "../record/fiber_registry.hpp"
#include "../record/thread_registry.hpp"
#include "../record/transaction_ops.hpp"

namespace spanprof {

config config::from_environment(config base, std::vector<std::string>* problems) {
  return detail::apply_environment(std::move(base), problems);
}

init_result init(const config& cfg) noexcept { return detail::start_recording(cfg); }
init_result init() noexcept { return detail::start_recording_from_environment(); }
void shutdown() noexcept { detail::stop_recording(); }
counters stats() noexcept { return detail::g_counters.snapshot(); }
bool is_running() noexcept { return detail::g_recording.load(std::memory_order_relaxed) != nullptr; }

bool register_thread() noexcept {
  detail::runtime* rt = detail::g_recording.load(std::memory_order_acquire);
  return rt != nullptr && detail::register_current_thread(*rt) != nullptr;
}

namespace detail::compiled {

transaction_handle begin_transaction(std::string_view name, std::string_view op, const span_site* site,
                                     void* frame_address) noexcept {
  return detail::begin_transaction(name, op, site, frame_address);
}
void end_transaction(const transaction_handle& handle) noexcept { detail::end_transaction(handle); }
void note_cross_context_end() noexcept { detail::note_cross_context_end(); }

// Out of line on purpose: the common switch (no transaction on either side) never calls it.
void note_switch(execution_context* from, execution_context* to) noexcept { detail::note_switch(from, to); }
execution_context* acquire_fiber_context(stack_bounds stack) noexcept { return detail::acquire_fiber_context(stack); }
void release_fiber_context(execution_context* ctx) noexcept { detail::release_fiber_context(ctx); }
void abandon_context(execution_context* ctx) noexcept { detail::abandon_context(ctx); }
void set_context_stack(execution_context* ctx, stack_bounds stack) noexcept { detail::set_context_stack(ctx, stack); }

}  // namespace detail::compiled
}  // namespace spanprof

// What the light header's link check names (spanprof.hpp): defined here, once.
extern "C" const char spanprof_engine_missing__define_SPANPROF_IMPLEMENTATION_in_one_cpp_file_or_link_libspanprof = 0;

#endif  // !SPANPROF_DISABLE

// Defined by every TU that compiles the engine, referenced by none: two of them in one link
// fail with "multiple definition of" this name, which says what is wrong.
extern "C" const char spanprof_engine_defined_twice__define_SPANPROF_IMPLEMENTATION_in_only_one_cpp_file = 0;
