// spanprof: execution contexts — a thread or a fiber, with its open transactions.
//
// An execution context owns a stack of open transactions and, inside the innermost one, a
// chain of open spans. Everything here runs on the thread the context is running on, without
// locks (a fiber's context is owned by whichever thread runs the fiber; handing a fiber to
// another thread hands its context over with it). The only other readers are the SIGPROF
// handler, which reads the running context's active_state (its base class), and shutdown(),
// which snapshots open transactions through the protocol described in transaction_record.hpp.
// Part of the light public header.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>

#include "../core/ids.hpp"
#include "active_state.hpp"
#include "transaction_record.hpp"

namespace spanprof::detail {

// The active_state base (ctx_id, the active transaction/span, the stack bounds) is what the
// handler reads; it is a base, not a member, so that the one TLS pointer t_running_context serves
// both the handler and the macros, and a fiber switch is one store.
struct execution_context : active_state {
  static constexpr int max_open_transactions = 8;

  // ctx_id (in active_state): the kernel tid for threads; fiber_ctx_id_bit | n for fibers.
  int thread_id = 0;         // threads: the kernel tid; fibers: 0 (they run on any thread)
  char thread_name[16] = {};
  bool is_fiber = false;
  xoshiro256 rng;  // ids and sampling decisions; owned by this context, so no TLS lookups

  // Open transactions, outermost first. A null slot below `depth` is a transaction that
  // traces_sample_rate left unrecorded: spans inside it are no-ops, not children of the outer.
  std::array<std::atomic<transaction_record*>, max_open_transactions> open{};
  std::array<std::uint64_t, max_open_transactions> open_serial{};
  int depth = 0;

  // Threads only: records taken in bulk from the global pool. Fibers use the cache of the
  // thread they run on, so thousands of fibers do not each hoard records.
  transaction_record* free_cache = nullptr;

  // Fibers only, under runtime::registry_mutex: the list of live fiber contexts that shutdown()
  // walks, and the free list of released ones (fiber_registry.hpp).
  execution_context* registry_prev = nullptr;
  execution_context* registry_next = nullptr;
  bool listed = false;
};

// The thread's own context (null until the thread registers); t_running_context (active_state.hpp)
// is the one running now, this one or a fiber's. initial-exec TLS, a trivially initialized
// pointer.
inline thread_local execution_context* t_thread_context __attribute__((tls_model("initial-exec"))) = nullptr;

}  // namespace spanprof::detail
