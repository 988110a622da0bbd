// spanprof: what the SIGPROF handler reads of the context running on a thread.
//
// Part of the light public header. The handler reads one initial-exec TLS pointer,
// t_running_context, and takes everything else from the active_state it names.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace spanprof::detail {

struct stack_bounds {
  std::uintptr_t lowest = 0;   // lowest usable address of the stack
  std::uintptr_t highest = 0;  // one past the highest
  [[nodiscard]] bool contains(std::uintptr_t address, std::size_t bytes) const noexcept {
    return address >= lowest && address + bytes <= highest && address + bytes > address;
  }
};

// What the handler reads of an execution context: which transaction and span are active now,
// the frame of the function that opened that span (gapfill.md §1), and the stack the context
// runs on. The owner updates the active fields with relaxed stores plus a signal fence, in the
// order gapfill.md prescribes; the handler runs on the same thread, so it sees either the old
// or the new value of each field. `ctx_id` and `stack` change only while the context runs on no
// thread (a fiber's before it first runs; a thread's at registration).
//
// Keeping the stack here, not per thread, is what makes a fiber switch one store: the handler
// reads t_running_context once and takes everything else from what it points to, so the bounds
// it walks with always belong to the context it charges the sample to.
struct active_state {
  std::uint64_t ctx_id = 0;
  std::atomic<std::uint64_t> txn_id{0};
  std::atomic<std::uint64_t> span_id{0};
  std::atomic<std::uintptr_t> anchor_fp{0};
  // [lowest, highest) of the stack this context runs on; {0, 0} when unknown (a fiber created
  // without its stack): its samples then keep only the interrupted pc.
  stack_bounds stack;
};

// The execution context running on this thread (execution_context in execution_context.hpp derives from
// active_state): the thread's own, a fiber's, or null before the thread was registered. A fiber
// switch is one relaxed store to it plus a signal fence. initial-exec TLS holding a constant-
// initialized atomic: readable from the handler without the lazy allocation a dynamic TLS access
// can do, and readable from the wall-mode ticker through thread_sampler::running.
inline thread_local constinit std::atomic<active_state*> t_running_context
    __attribute__((tls_model("initial-exec"))){nullptr};
static_assert(std::atomic<active_state*>::is_always_lock_free);

}  // namespace spanprof::detail
