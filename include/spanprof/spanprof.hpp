// spanprof — a profiler for C++ services that joins instrumentation (transactions and spans)
// with sampling. This is the whole public surface:
//
//   spanprof::init(config) / spanprof::shutdown() / spanprof::stats()
//   SPANPROF_TRANSACTION(name)          SPANPROF_TRANSACTION_OP(name, op)
//   SPANPROF_SPAN(op, description)      SPANPROF_FUNCTION()
//   SPANPROF_TRANSACTION_NAMED(var, name, op)   SPANPROF_SPAN_NAMED(var, op, description)
//   SPANPROF_SET_STATUS(status)         SPANPROF_SET_DATA(key, value)   SPANPROF_IS_RECORDING()
//   spanprof::fiber_context, spanprof::fiber_switch_scope, spanprof::switch_to_fiber (fibers;
//   spanprof/boost_context.hpp wires Boost.Context's fibers with them)
//
// Define SPANPROF_DISABLE (Meson: -Dspanprof_disable=true) and every macro compiles to nothing
// and evaluates none of its arguments. Without init() every macro is a cheap no-op.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "detail/collect/collector.hpp"
#include "detail/core/config.hpp"
#include "detail/record/context.hpp"
#include "detail/record/fiber.hpp"
#include "detail/record/records.hpp"
#include "detail/engine/runtime.hpp"

namespace spanprof {

// Sentry's span statuses: spanprof::status::not_found, ::deadline_exceeded, …
using status = detail::span_status;

// What init() says. `ok` is false when the configuration was refused; the program carries on
// unprofiled and `error` says what was wrong (it also went to the error callback).
struct init_result {
  bool ok = true;
  std::string error;
  explicit operator bool() const noexcept { return ok; }
};

namespace detail {

inline std::string validate(const config& cfg) {
  auto range = [](const char* field, double value, double lo, double hi) -> std::string {
    if (value >= lo && value <= hi) return {};
    return fmt::format("spanprof: {} is {}; expected {}..{}", field, value, lo, hi);
  };
  if (cfg.output_dir.empty()) return "spanprof: output_dir is empty; expected a folder path";
  for (std::string problem :
       {range("traces_sample_rate", cfg.traces_sample_rate, 0.0, 1.0),
        range("sample_rate_hz", cfg.sample_rate_hz, 1, 100000),
        range("max_spans_per_transaction", static_cast<double>(cfg.max_spans_per_transaction), 1,
              static_cast<double>(transaction_record::max_spans - 1)),
        range("max_data_per_transaction", static_cast<double>(cfg.max_data_per_transaction), 0, 2048),
        range("max_description_bytes", static_cast<double>(cfg.max_description_bytes), 16, 1 << 20),
        range("max_name_bytes", static_cast<double>(cfg.max_name_bytes), 8, 4096),
        range("max_pending_transactions", static_cast<double>(cfg.max_pending_transactions), 1, 1 << 20),
        range("max_stack_depth", static_cast<double>(cfg.max_stack_depth), 1, 1024),
        range("ring_capacity_bytes", static_cast<double>(cfg.ring_capacity_bytes), 4096, 1 << 30),
        range("stack_copy_bytes", static_cast<double>(cfg.stack_copy_bytes), 512, 256 * 1024)}) {
    if (!problem.empty()) return problem;
  }
  if (!(cfg.traces_sample_rate == cfg.traces_sample_rate)) return "spanprof: traces_sample_rate is NaN; expected 0..1";
  return {};
}

inline sampler::settings sampler_settings_for(const config& cfg) noexcept {
  sampler::settings s;
  s.mode = cfg.mode;
  s.rate_hz = cfg.sample_rate_hz;
  s.max_depth = cfg.max_stack_depth;
  s.ring_bytes = cfg.ring_capacity_bytes;
  // A record larger than half the ring is never accepted: a small ring gets a smaller copy.
  s.max_stack_copy_bytes = std::min(cfg.stack_copy_bytes, cfg.ring_capacity_bytes / 2 - 512);
  s.chain_existing_handler = cfg.chain_sigprof;
#if defined(SPANPROF_FRAME_POINTERS)
  s.method = cfg.stack_unwinder == unwinder::dwarf ? unwind_method::dwarf : unwind_method::frame_pointers;
#else
  s.method = cfg.stack_unwinder == unwinder::frame_pointers ? unwind_method::frame_pointers : unwind_method::dwarf;
#endif
  return s;
}

// Copies every transaction still open anywhere into the finished queue, as aborted.
inline void abandon_open_transactions(runtime& rt) {
  const std::int64_t end = now_ticks();
  std::lock_guard lock(rt.registry_mutex);
  for_each_listed_context(rt, [&](execution_context* ctx) {
    for (auto& slot : ctx->open) {
      transaction_record* rec = slot.load(std::memory_order_acquire);
      if (rec == nullptr) continue;
      transaction_state expected = transaction_state::open;
      if (!rec->state.compare_exchange_strong(expected, transaction_state::snapshotting, std::memory_order_acq_rel)) continue;
      transaction_record* copy = nullptr;
      try {
        copy = snapshot_open_transaction(rt, *rec, end);
      } catch (...) {
      }
      rec->state.store(transaction_state::abandoned, std::memory_order_release);
      bump(rt.stats.transactions_finished);
      bump(rt.stats.transactions_aborted);
      if (copy == nullptr) {
        bump(rt.stats.transactions_dropped);
        continue;
      }
      rt.pending_finished.fetch_add(1, std::memory_order_relaxed);
      rt.finished.push(copy);
    }
  });
}

}  // namespace detail

// NOT ASYNC-SIGNAL-SAFE. Shuts spanprof down: every finished transaction is written, every
// transaction still open (on any thread) is written as aborted, and the collector stops.
// Idempotent, and safe to call from several threads at once. Also runs at exit.
inline void shutdown() noexcept {
  detail::runtime& rt = detail::the_runtime();
  std::lock_guard lifecycle(rt.lifecycle_mutex);
  if (!rt.running) return;
  detail::g_recording.store(nullptr, std::memory_order_release);  // no new transactions
  rt.stack_sampler.stop();  // before the collector's last drain, so no sample arrives after it
  rt.sampling.store(false, std::memory_order_relaxed);
  rt.sampling_cpu.store(false, std::memory_order_relaxed);
  try {
    detail::abandon_open_transactions(rt);
  } catch (...) {
  }
  rt.stop_requested.store(true, std::memory_order_release);
  rt.wake_word.fetch_add(1, std::memory_order_relaxed);
  detail::futex_wake_one(rt.wake_word);
  if (rt.collector_thread.joinable()) rt.collector_thread.join();
  rt.running = false;
}

// NOT ASYNC-SIGNAL-SAFE. Starts recording. A second init() while running changes nothing and
// returns ok; call shutdown() first to change the configuration.
inline init_result init(const config& cfg) noexcept {
#if defined(SPANPROF_DISABLE)
  (void)cfg;
  return {true, "spanprof: compiled with SPANPROF_DISABLE; nothing is recorded"};
#else
  detail::runtime& rt = detail::the_runtime();
  try {
    std::lock_guard lifecycle(rt.lifecycle_mutex);
    if (rt.running) return {};
    rt.errors.set_callback(cfg.on_error, cfg.log_errors_to_stderr);
    if (std::string problem = detail::validate(cfg); !problem.empty()) {
      rt.report(error_kind::invalid_config, problem);
      return {false, problem};
    }
    if (!cfg.enabled) return {};
    rt.cfg = cfg;
    rt.stats.reset();
    rt.clock.calibrate();
    rt.stop_requested.store(false, std::memory_order_relaxed);
    rt.accepting.store(true, std::memory_order_seq_cst);
    rt.collector_thread = std::thread([&rt] {
      try {
        detail::collector(rt).run();
      } catch (const std::exception& e) {  // only its construction can throw (out of memory)
        rt.report(error_kind::write_failed, std::string("spanprof: the collector could not start: ") + e.what());
      }
    });
    rt.running = true;
    detail::reset_handler_counters();
    if (cfg.sampling) {
      if (std::string problem = rt.stack_sampler.start(detail::sampler_settings_for(cfg)); !problem.empty()) {
        rt.report(error_kind::invalid_config, problem);  // spans still work; sampling stays off
      } else {
        rt.sampling_cpu.store(cfg.mode == sampling_mode::cpu, std::memory_order_relaxed);
        rt.sampling.store(true, std::memory_order_relaxed);
      }
    }
    if (!rt.exit_hooks_registered) {
      // Profiles of transactions still open at exit are written as aborted, like Sentry's flush.
      std::atexit([] { shutdown(); });
      pthread_atfork(nullptr, nullptr, [] {
        detail::g_recording.store(nullptr, std::memory_order_relaxed);
        detail::forget_parent_contexts_after_fork(detail::the_runtime());
      });
      rt.exit_hooks_registered = true;
    }
    detail::g_recording.store(&rt, std::memory_order_release);
    return {};
  } catch (const std::exception& e) {
    std::string problem = std::string("spanprof: init failed: ") + e.what();
    rt.report(error_kind::invalid_config, problem);
    return {false, problem};
  }
#endif
}

// init() with the configuration read from SPANPROF_* environment variables over the defaults.
inline init_result init() noexcept {
  try {
    std::vector<std::string> problems;
    const config cfg = config::from_environment(config{}, &problems);
    // Reported after init(cfg), which installs this configuration's error settings and resets
    // the counters: before it, they reached the previous init's callback and were then zeroed.
    init_result result = init(cfg);
    for (auto& problem : problems) detail::the_runtime().report(error_kind::invalid_config, std::move(problem));
    return result;
  } catch (...) {
    return {false, "spanprof: init failed: out of memory"};
  }
}

// Counters since the last init(). Safe from any thread.
inline counters stats() noexcept {
  counters c = detail::the_runtime().stats.snapshot();
  const auto& h = detail::g_handler_counters;
  c.samples_taken = h.samples_taken.load(std::memory_order_relaxed);
  c.samples_dropped = h.ring_full.load(std::memory_order_relaxed);
  c.samples_truncated = h.truncated.load(std::memory_order_relaxed);
  c.samples_unregistered = h.unregistered.load(std::memory_order_relaxed);
  c.samples_outside_transaction = h.outside_transaction.load(std::memory_order_relaxed);
  c.samples_reentrant = h.reentrant.load(std::memory_order_relaxed);
  return c;
}

// Is spanprof recording (between a successful init() and shutdown())?
inline bool is_running() noexcept { return detail::g_recording.load(std::memory_order_relaxed) != nullptr; }

// Registers the calling thread now instead of at its first transaction (the sampler needs its
// stack bounds; doing it early keeps that work out of the first request). Returns false when
// spanprof is not running.
inline bool register_thread() noexcept {
  detail::runtime* rt = detail::g_recording.load(std::memory_order_acquire);
  return rt != nullptr && detail::register_current_thread(*rt) != nullptr;
}

// ---- fibers ----------------------------------------------------------------------------------
//
// A fiber (a user-level thread: Boost.Context, Boost.Fiber, asio::spawn, a scheduler of your
// own) gets a fiber_context of its own, and whatever thread runs the fiber makes it the running
// context while it does (fiber_switch_scope or switch_to_fiber). Transactions and spans opened
// on the fiber then live on it: they nest there, survive its suspension and its migration to
// another thread, and each sample is charged to the fiber that was running when it was taken (a
// suspended fiber gets none). With Boost.Context, spanprof/boost_context.hpp's profiled_fiber
// does all of this (and tells the sanitizers about each switch).

class fiber_context;
namespace detail {
// For wrappers of fiber libraries (boost_context.hpp): the context behind a fiber_context.
struct fiber_access {
  static execution_context* context_of(const fiber_context& fiber) noexcept;
};
}  // namespace detail

// The profiling state of one fiber: its open transactions and spans, its stack. Movable, not
// copyable; create it with the fiber, destroy it when the fiber is done.
class fiber_context {
 public:
  // A fiber whose stack spanprof is not told: samples taken on it keep only the interrupted pc.
  fiber_context() noexcept : fiber_context(nullptr, 0) {}
  // A fiber running on [stack_lowest, stack_lowest + stack_bytes): the sampler's stack walk and
  // stack copy stay inside it, and a sample whose sp lies outside it is known to have been taken
  // mid-switch (flagged in_switch, charged to no span).
  fiber_context(const void* stack_lowest, std::size_t stack_bytes) noexcept {
#if !defined(SPANPROF_DISABLE)
    ctx_ = detail::acquire_fiber_context(bounds_of(stack_lowest, stack_bytes));
#else
    (void)stack_lowest, (void)stack_bytes;
#endif
  }
  // Transactions still open on the fiber are finished as aborted. It must not be running on
  // another thread; if it runs on this one, the thread's own context runs again.
  ~fiber_context() { detail::release_fiber_context(ctx_); }
  fiber_context(fiber_context&& other) noexcept : ctx_(std::exchange(other.ctx_, nullptr)) {}
  fiber_context& operator=(fiber_context&& other) noexcept {
    if (this != &other) {
      detail::release_fiber_context(ctx_);
      ctx_ = std::exchange(other.ctx_, nullptr);
    }
    return *this;
  }
  fiber_context(const fiber_context&) = delete;
  fiber_context& operator=(const fiber_context&) = delete;

  // The fiber's stack, when it is known only after construction. Call it while the fiber runs
  // on no other thread (before it first runs, typically).
  void set_stack(const void* stack_lowest, std::size_t stack_bytes) noexcept {
    if (ctx_ == nullptr) return;
    const detail::stack_bounds bounds = bounds_of(stack_lowest, stack_bytes);
    if (detail::current_context() != ctx_) {
      ctx_->stack = bounds;
      return;
    }
    // Running here: the two words must change as one for this thread's SIGPROF handler.
    sigset_t block, previous;
    sigemptyset(&block);
    sigaddset(&block, SIGPROF);
    pthread_sigmask(SIG_BLOCK, &block, &previous);
    ctx_->stack = bounds;
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  }

  // Finishes the fiber's open transactions now, as aborted. For a suspended fiber that will
  // never be resumed, or whose stack is about to be unwound (their RAII objects then end
  // nothing); the destructor does it too.
  void abandon() noexcept { detail::abandon_context(ctx_); }

  // The fiber's ctx_id in profiles: its top bit is set, so it never equals a thread id. 0 when
  // spanprof is compiled out, or when there was no memory for the context.
  [[nodiscard]] std::uint64_t id() const noexcept { return ctx_ != nullptr ? ctx_->ctx_id : 0; }

  // Is it the context running on the calling thread?
  [[nodiscard]] bool is_current() const noexcept { return ctx_ != nullptr && detail::current_context() == ctx_; }

 private:
  friend class fiber_switch_scope;
  friend void switch_to_fiber(fiber_context* fiber) noexcept;
  friend struct detail::fiber_access;

  static detail::stack_bounds bounds_of(const void* lowest, std::size_t bytes) noexcept {
    const auto low = reinterpret_cast<std::uintptr_t>(lowest);
    if (low == 0 || bytes == 0 || low + bytes < low) return {};
    return {low, low + bytes};
  }

  detail::execution_context* ctx_ = nullptr;
};

inline detail::execution_context* detail::fiber_access::context_of(const fiber_context& fiber) noexcept { return fiber.ctx_; }

// One-way switch: from now on the calling thread runs `fiber` (nullptr: the thread's own
// context). For fiber libraries with a "this fiber runs next" hook (Boost.Fiber's
// algorithm::pick_next, a scheduler loop): call it right before (or right after) the stack
// switch. Costs two TLS loads and a store unless a transaction is open on either side.
inline void switch_to_fiber(fiber_context* fiber) noexcept {
#if !defined(SPANPROF_DISABLE)
  detail::switch_running_context(fiber != nullptr ? fiber->ctx_ : detail::t_thread_context);
#else
  (void)fiber;
#endif
}

// Scoped switch: for its lifetime the calling thread runs `fiber`; at its end, what ran before
// runs again. Put it around the call that resumes the fiber, in the scheduler:
//     { spanprof::fiber_switch_scope running(task.profile); task.resume(); }
// or, inside a fiber, around a call that suspends it (fiber_switch_scope(nullptr): the thread's
// own context runs meanwhile):
//     { spanprof::fiber_switch_scope suspended(nullptr); n = socket.async_read_some(buf, yield); }
// If the scope began on the thread's own context and ends on another thread (the fiber
// migrated), it ends on that thread's own context.
class fiber_switch_scope {
 public:
  explicit fiber_switch_scope(fiber_context& fiber) noexcept { enter(fiber.ctx_); }
  explicit fiber_switch_scope(std::nullptr_t) noexcept { enter(detail::t_thread_context); }
  ~fiber_switch_scope() {
#if !defined(SPANPROF_DISABLE)
    detail::switch_running_context(previous_was_thread_ ? detail::t_thread_context : previous_);
#endif
  }
  fiber_switch_scope(const fiber_switch_scope&) = delete;
  fiber_switch_scope& operator=(const fiber_switch_scope&) = delete;

 private:
  void enter([[maybe_unused]] detail::execution_context* to) noexcept {
#if !defined(SPANPROF_DISABLE)
    previous_ = detail::current_context();
    previous_was_thread_ = previous_ == detail::t_thread_context;
    detail::switch_running_context(to);
#endif
  }

  // Unused with SPANPROF_DISABLE.
  [[maybe_unused]] detail::execution_context* previous_ = nullptr;
  [[maybe_unused]] bool previous_was_thread_ = true;
};

namespace detail {

// Shared by the RAII types and the SET_* macros: key/value data on a span.
struct data_setter {
  static void set(const span_handle& h, std::string_view key, std::string_view value) noexcept {
    add_span_data(h, key, [value](data_entry& e, string_arena& strings, std::size_t cap) {
      e.kind = data_kind::string;
      e.text = strings.copy(value, cap);
    });
  }
  static void set(const span_handle& h, std::string_view key, const char* value) noexcept {
    set(h, key, std::string_view(value != nullptr ? value : ""));
  }
  static void set(const span_handle& h, std::string_view key, const std::string& value) noexcept {
    set(h, key, std::string_view(value));
  }
  static void set(const span_handle& h, std::string_view key, bool value) noexcept {
    add_span_data(h, key, [value](data_entry& e, string_arena&, std::size_t) {
      e.kind = data_kind::boolean;
      e.integer = value ? 1 : 0;
    });
  }
  template <class Number, std::enable_if_t<std::is_arithmetic_v<Number> && !std::is_same_v<Number, bool>, int> = 0>
  static void set(const span_handle& h, std::string_view key, Number value) noexcept {
    add_span_data(h, key, [value](data_entry& e, string_arena&, std::size_t) {
      if constexpr (std::is_floating_point_v<Number>) {
        e.kind = data_kind::floating;
        e.floating = static_cast<double>(value);
      } else if constexpr (std::is_unsigned_v<Number>) {
        e.kind = data_kind::unsigned_integer;
        e.integer = static_cast<std::int64_t>(static_cast<std::uint64_t>(value));
      } else {
        e.kind = data_kind::integer;
        e.integer = static_cast<std::int64_t>(value);
      }
    });
  }
};

}  // namespace detail

// RAII transaction: begins on construction on the current thread, finishes at scope exit.
// Use through SPANPROF_TRANSACTION*; not copyable or movable (it belongs to its scope).
// Opened while another transaction is open on the same thread, it is nested: its own
// transaction (its own files) in the outer's trace, whose parent is the outer's innermost open
// span; spans go to it until it finishes, then to the outer again. At most 8 are open per
// thread; a 9th is not recorded and is reported as error_kind::api_misuse. A nested transaction
// that traces_sample_rate leaves unsampled records nothing: spans inside it are no-ops, they do
// not fall through to the outer.
class scoped_transaction {
 public:
  scoped_transaction(std::string_view name, std::string_view op, const detail::span_site* site,
                     void* frame_address) noexcept
      : handle_(detail::begin_transaction(name, op, site, frame_address)) {}
  ~scoped_transaction() { detail::end_transaction(handle_); }
  scoped_transaction(const scoped_transaction&) = delete;
  scoped_transaction& operator=(const scoped_transaction&) = delete;

  void set_status(status s) noexcept { detail::set_transaction_status(handle_, s); }
  template <class Value>
  void set_data(std::string_view key, const Value& value) noexcept {
    detail::data_setter::set(root_span(), key, value);
  }
  [[nodiscard]] bool is_recording() const noexcept { return handle_.rec != nullptr; }

 private:
  [[nodiscard]] detail::span_handle root_span() const noexcept { return {handle_.ctx, handle_.rec, handle_.serial, 0}; }
  detail::transaction_handle handle_;
};

// RAII span: a child of the innermost open span of the current thread's transaction.
class scoped_span {
 public:
  scoped_span(std::string_view op, std::string_view description, const detail::span_site* site,
              void* frame_address) noexcept
      : handle_(detail::begin_span(op, description, site, frame_address)) {}
  ~scoped_span() { detail::end_span(handle_); }
  scoped_span(const scoped_span&) = delete;
  scoped_span& operator=(const scoped_span&) = delete;

  void set_status(status s) noexcept { detail::set_span_status(handle_, s); }
  template <class Value>
  void set_data(std::string_view key, const Value& value) noexcept {
    detail::data_setter::set(handle_, key, value);
  }
  [[nodiscard]] bool is_recording() const noexcept { return handle_.rec != nullptr; }

 private:
  detail::span_handle handle_;
};

// What the *_NAMED macros declare when SPANPROF_DISABLE is defined: same calls, no effect.
struct disabled_scope {
  explicit constexpr disabled_scope(std::size_t) noexcept {}
  void set_status(status) const noexcept {}
  template <class Value>
  void set_data(std::string_view, const Value&) const noexcept {}
  [[nodiscard]] bool is_recording() const noexcept { return false; }
};

// Status and data for the innermost open span of the current thread (or its transaction).
inline void set_status(status s) noexcept { detail::set_span_status(detail::current_span(), s); }
template <class Value>
void set_data(std::string_view key, const Value& value) noexcept {
  detail::data_setter::set(detail::current_span(), key, value);
}

}  // namespace spanprof

#define SPANPROF_DETAIL_CAT2(a, b) a##b
#define SPANPROF_DETAIL_CAT(a, b) SPANPROF_DETAIL_CAT2(a, b)
// __COUNTER__, not __LINE__: two macros on one line (e.g. from another macro) must not clash.
#define SPANPROF_DETAIL_UNIQUE(prefix) SPANPROF_DETAIL_CAT(prefix, __COUNTER__)

#if defined(SPANPROF_DISABLE)

// sizeof is an unevaluated operand: the arguments count as used (no -Wunused warnings in the
// caller) and none of them runs.
#define SPANPROF_DETAIL_UNUSED(a, b) static_cast<void>(sizeof(a) + sizeof(b))
#define SPANPROF_TRANSACTION(name) SPANPROF_DETAIL_UNUSED(name, 0)
#define SPANPROF_TRANSACTION_OP(name, op) SPANPROF_DETAIL_UNUSED(name, op)
#define SPANPROF_TRANSACTION_NAMED(var, name, op) \
  [[maybe_unused]] const ::spanprof::disabled_scope var{sizeof(name) + sizeof(op)}
#define SPANPROF_SPAN(op, description) SPANPROF_DETAIL_UNUSED(op, description)
#define SPANPROF_SPAN_NAMED(var, op, description) \
  [[maybe_unused]] const ::spanprof::disabled_scope var{sizeof(op) + sizeof(description)}
#define SPANPROF_FUNCTION() static_cast<void>(0)
#define SPANPROF_SET_STATUS(status) SPANPROF_DETAIL_UNUSED(status, 0)
#define SPANPROF_SET_DATA(key, value) SPANPROF_DETAIL_UNUSED(key, value)
#define SPANPROF_IS_RECORDING() false

#else

// One static call site per macro expansion (like Tracy's SourceLocationData): the span carries
// a pointer, not three strings. __builtin_FILE/LINE because clang 14 with libstdc++ 12 has no
// std::source_location.
#define SPANPROF_DETAIL_SITE(site_var)                                                       \
  static constexpr ::spanprof::detail::span_site site_var {                                  \
    __PRETTY_FUNCTION__, __builtin_FILE(), __builtin_LINE()                                  \
  }

#define SPANPROF_DETAIL_TRANSACTION(var, site_var, name, op) \
  SPANPROF_DETAIL_SITE(site_var);                            \
  ::spanprof::scoped_transaction var { (name), (op), &site_var, __builtin_frame_address(0) }

#define SPANPROF_DETAIL_SPAN(var, site_var, op, description) \
  SPANPROF_DETAIL_SITE(site_var);                            \
  ::spanprof::scoped_span var { (op), (description), &site_var, __builtin_frame_address(0) }

// A transaction named `name` (op "function") for the rest of the scope.
#define SPANPROF_TRANSACTION(name) \
  SPANPROF_DETAIL_TRANSACTION(SPANPROF_DETAIL_UNIQUE(spanprof_txn_), SPANPROF_DETAIL_UNIQUE(spanprof_site_), name, "function")
// A transaction with a Sentry op, e.g. SPANPROF_TRANSACTION_OP("GET /users", "http.server").
#define SPANPROF_TRANSACTION_OP(name, op) \
  SPANPROF_DETAIL_TRANSACTION(SPANPROF_DETAIL_UNIQUE(spanprof_txn_), SPANPROF_DETAIL_UNIQUE(spanprof_site_), name, op)
// Same, as a variable you can call set_status/set_data on.
#define SPANPROF_TRANSACTION_NAMED(var, name, op) \
  SPANPROF_DETAIL_TRANSACTION(var, SPANPROF_DETAIL_UNIQUE(spanprof_site_), name, op)

// A span for the rest of the scope, e.g. SPANPROF_SPAN("db.sql.query", sql).
#define SPANPROF_SPAN(op, description) \
  SPANPROF_DETAIL_SPAN(SPANPROF_DETAIL_UNIQUE(spanprof_span_), SPANPROF_DETAIL_UNIQUE(spanprof_site_), op, description)
#define SPANPROF_SPAN_NAMED(var, op, description) \
  SPANPROF_DETAIL_SPAN(var, SPANPROF_DETAIL_UNIQUE(spanprof_site_), op, description)
// A span named after the enclosing function (op "function").
#define SPANPROF_FUNCTION()                                                                          \
  SPANPROF_DETAIL_SPAN(SPANPROF_DETAIL_UNIQUE(spanprof_span_), SPANPROF_DETAIL_UNIQUE(spanprof_site_), \
                       "function", __builtin_FUNCTION())

// Status / key-value data of the innermost open span of this thread.
#define SPANPROF_SET_STATUS(status) ::spanprof::set_status(status)
#define SPANPROF_SET_DATA(key, value) ::spanprof::set_data((key), (value))
#define SPANPROF_IS_RECORDING() (::spanprof::detail::current_span().rec != nullptr)

#endif
