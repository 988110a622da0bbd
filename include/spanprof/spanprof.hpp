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
// Include this header everywhere: it is light (the macros, the RAII types, the fiber API and
// stats(), inline; no fmt, libdw, zlib, <thread> or <mutex>). The engine — collector thread,
// signal handler, unwinding, symbolization, gap filling, writers — is compiled in exactly one
// TU of the program: Meson's spanprof_dep, CMake's spanprof::spanprof and pkg-config's
// `--libs` supply it (libspanprof.a, built from spanprof/engine.cpp); with a bare -I, define
// SPANPROF_IMPLEMENTATION before including this header in one .cpp file (or compile
// spanprof/engine.cpp). Forgetting it fails at link time naming
// spanprof_engine_missing__define_SPANPROF_IMPLEMENTATION_in_one_cpp_file_or_link_libspanprof.
//
// Define SPANPROF_DISABLE (Meson: -Dspanprof_disable=true) and every macro compiles to nothing
// and evaluates none of its arguments; no engine is needed then. Without init() every macro is
// a cheap no-op.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "detail/core/config.hpp"
#include "detail/core/counters.hpp"
#include "detail/record/execution_context.hpp"
#include "detail/record/fiber_switch.hpp"
#include "detail/record/span_ops.hpp"
#include "detail/record/span_record.hpp"
#if defined(SPANPROF_DISABLE)
#include "detail/engine/environment.hpp"  // config::from_environment still reads the variables
#endif

namespace spanprof {

// Sentry's span statuses: spanprof::status::not_found, ::deadline_exceeded, …
using status = detail::span_status;

#if !defined(SPANPROF_DISABLE)

// NOT ASYNC-SIGNAL-SAFE. Starts recording. A second init() while running changes nothing and
// returns ok; call shutdown() first to change the configuration.
init_result init(const config& cfg) noexcept;
// init() with the configuration read from SPANPROF_* environment variables over the defaults.
init_result init() noexcept;
// NOT ASYNC-SIGNAL-SAFE. Shuts spanprof down: every finished transaction is written, every
// transaction still open (on any thread) is written as aborted, and the collector stops.
// Idempotent, and safe to call from several threads at once. Also runs at exit.
void shutdown() noexcept;
// Counters since the last init(). Safe from any thread.
counters stats() noexcept;
// Is spanprof recording (between a successful init() and shutdown())?
bool is_running() noexcept;
// Registers the calling thread now instead of at its first transaction (the sampler needs its
// stack bounds; doing it early keeps that work out of the first request). Returns false when
// spanprof is not running.
bool register_thread() noexcept;

#else

// Compiled out: no engine to link, nothing recorded.
inline init_result init(const config&) noexcept {
  return {true, "spanprof: compiled with SPANPROF_DISABLE; nothing is recorded"};
}
inline init_result init() noexcept { return init(config{}); }
inline void shutdown() noexcept {}
inline counters stats() noexcept { return {}; }
inline bool is_running() noexcept { return false; }
inline bool register_thread() noexcept { return false; }
inline config config::from_environment(config base, std::vector<std::string>* problems) {
  return detail::apply_environment(std::move(base), problems);  // still parsed, as before
}

#endif

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
    ctx_ = detail::compiled::acquire_fiber_context(bounds_of(stack_lowest, stack_bytes));
  }
  // Transactions still open on the fiber are finished as aborted. It must not be running on
  // another thread; if it runs on this one, the thread's own context runs again.
  ~fiber_context() { release(); }
  fiber_context(fiber_context&& other) noexcept : ctx_(std::exchange(other.ctx_, nullptr)) {}
  fiber_context& operator=(fiber_context&& other) noexcept {
    if (this != &other) {
      release();
      ctx_ = std::exchange(other.ctx_, nullptr);
    }
    return *this;
  }
  fiber_context(const fiber_context&) = delete;
  fiber_context& operator=(const fiber_context&) = delete;

  // The fiber's stack, when it is known only after construction. Call it while the fiber runs
  // on no other thread (before it first runs, typically).
  void set_stack(const void* stack_lowest, std::size_t stack_bytes) noexcept {
    if (ctx_ != nullptr) detail::compiled::set_context_stack(ctx_, bounds_of(stack_lowest, stack_bytes));
  }

  // Finishes the fiber's open transactions now, as aborted. For a suspended fiber that will
  // never be resumed, or whose stack is about to be unwound (their RAII objects then end
  // nothing); the destructor does it too.
  void abandon() noexcept {
    if (ctx_ != nullptr) detail::compiled::abandon_context(ctx_);
  }

  // The fiber's ctx_id in profiles: its top bit is set, so it never equals a thread id. 0 when
  // spanprof is compiled out, or when there was no memory for the context.
  [[nodiscard]] std::uint64_t id() const noexcept { return ctx_ != nullptr ? ctx_->ctx_id : 0; }

  // Is it the context running on the calling thread?
  [[nodiscard]] bool is_current() const noexcept { return ctx_ != nullptr && detail::current_context() == ctx_; }

 private:
  friend class fiber_switch_scope;
  friend void switch_to_fiber(fiber_context* fiber) noexcept;
  friend struct detail::fiber_access;

  void release() noexcept {
    if (ctx_ != nullptr) detail::compiled::release_fiber_context(ctx_);
  }

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
      : handle_(detail::compiled::begin_transaction(name, op, site, frame_address)) {}
  ~scoped_transaction() {
    if (handle_.slot >= 0) detail::compiled::end_transaction(handle_);
  }
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

#if !defined(SPANPROF_DISABLE)
// Every TU that uses spanprof references the engine through this symbol, so a program that
// never compiles the engine fails to link with a message that says what to do.
extern "C" const char spanprof_engine_missing__define_SPANPROF_IMPLEMENTATION_in_one_cpp_file_or_link_libspanprof;
namespace spanprof::detail {
[[gnu::used]] static const char* const engine_link_check =
    &spanprof_engine_missing__define_SPANPROF_IMPLEMENTATION_in_one_cpp_file_or_link_libspanprof;
}  // namespace spanprof::detail
#endif

#if defined(SPANPROF_IMPLEMENTATION)
#include "detail/engine/implementation.hpp"
#endif
