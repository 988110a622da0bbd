// spanprof: a thread's own execution context — registered at its first use, freed at its exit.
//
// Engine only. Registration is not on the per-span path: once per thread.
#pragma once

#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <mutex>

#include "../engine/runtime.hpp"
#include "span_ops.hpp"

namespace spanprof::detail {

inline void finish_open_transactions_at_exit(execution_context& ctx) noexcept;  // transaction_ops.hpp

// Owns the thread's context; its destructor runs at thread exit.
struct context_owner {
  execution_context* ctx = nullptr;
  ~context_owner() {
    if (ctx == nullptr) return;
    finish_open_transactions_at_exit(*ctx);
    runtime& rt = the_runtime();
    rt.stack_sampler.unregister_current_thread();  // before ctx (its active_state) is freed
    {
      std::lock_guard lock(rt.registry_mutex);
      std::erase(rt.contexts, ctx);
      if (ctx->free_cache != nullptr) {
        transaction_record* last = ctx->free_cache;
        while (last->next != nullptr) last = last->next;
        rt.free_records.push_chain(ctx->free_cache, last);
      }
    }
    set_current_context(nullptr);  // whatever ran last: the thread is gone
    t_thread_context = nullptr;
    delete ctx;
  }
};

// Registers the calling thread and returns its own context. Not on the per-span path: once per
// thread, at its first transaction (or an explicit spanprof::register_thread(), or the first
// switch to a fiber with a transaction open). A fiber may be running: it stays the running one.
inline execution_context* register_current_thread(runtime& rt) noexcept {
  if (t_thread_context != nullptr) return t_thread_context;
  try {
    thread_local context_owner owner;
    auto* ctx = new execution_context;
    ctx->thread_id = static_cast<int>(::syscall(SYS_gettid));
    ctx->ctx_id = static_cast<std::uint64_t>(ctx->thread_id);
    if (pthread_getname_np(pthread_self(), ctx->thread_name, sizeof ctx->thread_name) != 0) ctx->thread_name[0] = '\0';
    {
      std::lock_guard lock(rt.registry_mutex);
      rt.contexts.push_back(ctx);
    }
    owner.ctx = ctx;
    t_thread_context = ctx;
    if (current_context() == nullptr) set_current_context(ctx);
    return ctx;
  } catch (...) {
    return nullptr;  // out of memory: this thread stays unprofiled
  }
}

}  // namespace spanprof::detail

// Defines finish_open_transactions_at_exit, which ~context_owner calls (the two files need each
// other: a transaction registers its thread, a thread's exit finishes its transactions).
#include "transaction_ops.hpp"
