// spanprof: switching the context that runs on a thread — the inline half of the fiber API.
//
// The common switch (no transaction on either side) is two TLS loads and a store, inline in
// the caller; a switch that involves a transaction calls into the implementation TU
// (compiled::note_switch). fiber_registry.hpp says how fiber contexts live and die. Part of the
// light public header.
#pragma once

#include <cstddef>

#include "active_state.hpp"
#include "execution_context.hpp"
#include "span_ops.hpp"

namespace spanprof::detail {

// Compiled once, in the implementation TU (engine/implementation.hpp).
namespace compiled {
// The slow half of a switch: records it in the open transactions of both contexts, registers
// the thread for a context that brings a transaction, arms the CPU timer.
void note_switch(execution_context* from, execution_context* to) noexcept;
// A fresh context for a new fiber, with the stack it will run on ({0, 0}: unknown). Null only
// when out of memory (the fiber then runs with no context: its transactions are not recorded).
execution_context* acquire_fiber_context(stack_bounds stack) noexcept;
// Gives a fiber's context back (its open transactions finished as aborted).
void release_fiber_context(execution_context* ctx) noexcept;
// Finishes every transaction still open on `ctx` now, as aborted.
void abandon_context(execution_context* ctx) noexcept;
// Sets the stack of `ctx`, with SIGPROF blocked if it runs on the calling thread.
void set_context_stack(execution_context* ctx, stack_bounds stack) noexcept;
}  // namespace compiled

// ASYNC-SIGNAL-SAFE in its common path (two TLS loads, one store). Makes `to` the context
// running on this thread (null: none). Call it when the thread starts running `to`, right
// before or right after the jump to its stack.
[[gnu::always_inline]] inline void switch_running_context(execution_context* to) noexcept {
  execution_context* from = current_context();
  set_current_context(to);
  const int depths = (from != nullptr ? from->depth : 0) | (to != nullptr ? to->depth : 0);
  if (depths != 0) [[unlikely]] compiled::note_switch(from, to);
}

}  // namespace spanprof::detail
