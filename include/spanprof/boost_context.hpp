// spanprof + Boost.Context: spanprof::profiled_fiber, a boost::context::fiber that spanprof
// follows. Include this header (and link Boost.Context) only if you use Boost.Context; the core
// header spanprof.hpp does not depend on Boost.
//
// It is a drop-in for boost::context::fiber: construct it with a function
// `profiled_fiber fn(profiled_fiber&& caller)`, switch with `f = std::move(f).resume()`, in either
// direction (resume and yield are the same operation in Boost.Context). On top of Boost's switch
// it
//   - gives each fiber its own spanprof::fiber_context, with the fiber's stack bounds taken from
//     the stack allocator, and makes it the running context whenever the fiber runs, on
//     whatever thread resumes it: transactions and spans opened in the fiber belong to it, and
//     samples are charged to the fiber that was running;
//   - finishes the fiber's open transactions as aborted when the fiber is destroyed while
//     suspended (Boost then unwinds its stack) or ends with them still open;
//   - in ASan and TSan builds, tells the sanitizers about every switch
//     (__sanitizer_start/finish_switch_fiber, __tsan_create/switch_to/destroy_fiber): the fcontext
//     build of Boost.Context that Debian ships does not (its BOOST_USE_ASAN/TSAN need ucontext).
//
// How a switch is charged (fiber.hpp): the side that arrives on a stack makes its own context the
// running one, right after the jump; nothing is stored before it. So the handle to resume carries
// no spanprof state, and the cost over Boost's jump is two TLS loads and a store per switch
// (plus a timestamp when either side has a transaction open). A sample taken between the jump
// and that store sees the sp of the new stack with the previous context: flagged in_switch.
//
// Not wrapped: resume_with(), and `preallocated` stacks.
#pragma once

#include <boost/context/fiber.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

#include "spanprof.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define SPANPROF_DETAIL_FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPANPROF_DETAIL_FIBER_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define SPANPROF_DETAIL_FIBER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SPANPROF_DETAIL_FIBER_TSAN 1
#endif
#endif
#if defined(SPANPROF_DETAIL_FIBER_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(SPANPROF_DETAIL_FIBER_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

// Sanitizer builds carry more per handle (see profiled_fiber::target_), so the two flavours are
// different types, in different inline namespaces: a program that mixes sanitized and plain
// translation units gets a link error instead of two layouts of one class.
#if defined(SPANPROF_DETAIL_FIBER_ASAN) || defined(SPANPROF_DETAIL_FIBER_TSAN)
#define SPANPROF_DETAIL_FIBER_SANITIZERS 1
#define SPANPROF_DETAIL_FIBER_ABI fiber_abi_sanitized
#else
#define SPANPROF_DETAIL_FIBER_ABI fiber_abi_plain
#endif

namespace spanprof {
inline namespace SPANPROF_DETAIL_FIBER_ABI {
class profiled_fiber;
}  // namespace SPANPROF_DETAIL_FIBER_ABI

namespace detail {
inline namespace SPANPROF_DETAIL_FIBER_ABI {

#if defined(SPANPROF_DETAIL_FIBER_SANITIZERS)
inline constexpr bool fiber_sanitizers = true;
#else
inline constexpr bool fiber_sanitizers = false;
#endif

struct boost_fiber_state;

// What the sanitizers must be told about the stack a switch goes to: its bounds (ASan) and its
// TSan fiber. One per profiled fiber, one per thread for the thread's own stack. Maintained in
// sanitizer builds only.
struct fiber_stack_identity {
  const void* bottom = nullptr;  // lowest address
  std::size_t size = 0;
  void* tsan_fiber = nullptr;
  boost_fiber_state* fiber = nullptr;  // null for a thread's own stack
};

// Sanitizer builds: which stack runs on this thread (null: the thread's own), the thread's own
// stack's identity, and the identity of the stack a switch comes from (written right before the
// jump, read right after it, on the same thread).
inline thread_local fiber_stack_identity* t_running_stack = nullptr;
inline thread_local fiber_stack_identity t_thread_stack{};
inline thread_local fiber_stack_identity* t_switch_from = nullptr;
// TSan: the fiber of a profiled fiber that just ended. Its last switch is announced to TSan by
// the side that arrives, not before the jump: between the end of the fiber's function and
// Boost's final jump, the fiber returns through instrumented frames (ours, Boost's), and TSan
// must count those function exits against the ending fiber's shadow call stack. Counted
// against the next fiber's, they would drain it a few frames per fiber that ends, until TSan
// reads below its bottom (it crashed so after a few thousand fibers).
inline thread_local void* t_ended_tsan_fiber = nullptr;

inline fiber_stack_identity* running_stack() noexcept {
  if (t_running_stack != nullptr) return t_running_stack;
  fiber_stack_identity* own = &t_thread_stack;
#if defined(SPANPROF_DETAIL_FIBER_TSAN)
  if (own->tsan_fiber == nullptr) own->tsan_fiber = __tsan_get_current_fiber();
#endif
  return own;
}

// Right before the jump to `to`'s stack. `fake_stack`: where ASan parks this stack's fake frames
// until it runs again; null when it never will (the fiber is ending), so ASan frees them.
// Forced inline, like after_jump: TSan records function entries and exits, and the one of a
// function that switches TSan's fiber half-way would be counted against two fibers.
[[gnu::always_inline]] inline void before_jump(void** fake_stack, const fiber_stack_identity* to) noexcept {
  fiber_stack_identity* from = running_stack();
  const bool ending = fake_stack == nullptr;
#if defined(SPANPROF_DETAIL_FIBER_ASAN)
  __sanitizer_start_switch_fiber(fake_stack, to->bottom, to->size);
#endif
#if defined(SPANPROF_DETAIL_FIBER_TSAN)
  if (ending) {
    t_ended_tsan_fiber = from->tsan_fiber;  // after_jump switches and destroys it
  } else {
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
  }
#else
  (void)to;
#endif
  t_switch_from = ending ? nullptr : from;  // an ending fiber's identity dies with it
}

// Right after arriving on `self`'s stack. Returns the identity of the stack we came from.
[[gnu::always_inline]] inline fiber_stack_identity* after_jump(void* fake_stack, fiber_stack_identity* self) noexcept {
#if defined(SPANPROF_DETAIL_FIBER_TSAN)
  if (void* ended = t_ended_tsan_fiber; ended != nullptr) {
    t_ended_tsan_fiber = nullptr;
    __tsan_switch_to_fiber(self->tsan_fiber, 0);
    __tsan_destroy_fiber(ended);
  }
#endif
  fiber_stack_identity* from = t_switch_from;
  t_switch_from = nullptr;
#if defined(SPANPROF_DETAIL_FIBER_ASAN)
  const void* from_bottom = nullptr;
  std::size_t from_size = 0;
  __sanitizer_finish_switch_fiber(fake_stack, &from_bottom, &from_size);
  // A thread's own stack: ASan tells us its bounds the first time we leave it, which is before
  // anyone can switch back to it.
  if (from != nullptr && from->fiber == nullptr && from->bottom == nullptr) {
    from->bottom = from_bottom;
    from->size = from_size;
  }
#else
  (void)fake_stack;
#endif
  t_running_stack = self;
  return from;
}

// The side of a switch that jumps away and later runs again: what it must restore then.
// Forced inline for the same reason as before_jump/after_jump.
struct jump_site {
  execution_context* self = current_context();
  void* fake_stack = nullptr;
  fiber_stack_identity* self_stack = nullptr;

  // Right before the jump to `to`'s stack.
  [[gnu::always_inline]] void depart(const fiber_stack_identity* to) noexcept {
    if constexpr (fiber_sanitizers) {
      self_stack = running_stack();
      before_jump(&fake_stack, to);
    }
  }
  // Right after the jump back, before any other code of ours: the sanitizers first, then the
  // running context. Returns the identity of the stack we came from (sanitizer builds).
  [[gnu::always_inline]] fiber_stack_identity* arrive(execution_context* running) noexcept {
    fiber_stack_identity* from = nullptr;
    if constexpr (fiber_sanitizers) from = after_jump(fake_stack, self_stack);
    switch_running_context(running);
    return from;
  }
  // A thread that had no context when it left may have been registered meanwhile (by a fiber
  // that opened a transaction on it): it comes back to its own context, whatever it is now.
  [[gnu::always_inline]] fiber_stack_identity* arrive() noexcept {
    return arrive(self != nullptr ? self : t_thread_context);
  }
};

// One per profiled fiber, from its construction until its stack is freed (it lives in the entry
// function object, which Boost keeps at the top of the fiber's stack).
struct boost_fiber_state {
  spanprof::fiber_context profile;
  fiber_stack_identity identity;
  fiber_stack_identity* unwind_to = nullptr;  // sanitizer builds: who is destroying this fiber
  bool started = false;
  bool cancelled = false;  // destroyed before it ever ran: resumed once, it returns at once

  boost_fiber_state() noexcept {
    identity.fiber = this;
#if defined(SPANPROF_DETAIL_FIBER_TSAN)
    identity.tsan_fiber = __tsan_create_fiber(0);
#endif
  }
  // Runs on the stack the fiber switched to last (Boost frees a finished fiber from there), or
  // on the creator's if construction failed; never on the fiber's own. A fiber that ran has
  // its TSan fiber destroyed by after_jump (TSan still runs it here); one that never ran (its
  // construction failed) has it destroyed here.
  ~boost_fiber_state() {
#if defined(SPANPROF_DETAIL_FIBER_TSAN)
    if (!started) __tsan_destroy_fiber(identity.tsan_fiber);
#endif
  }
  boost_fiber_state(const boost_fiber_state&) = delete;
  boost_fiber_state& operator=(const boost_fiber_state&) = delete;
};

// Wraps the user's stack allocator to learn the fiber's stack: Boost's stack_context gives its
// top (`sp`) and size. A protected stack counts its guard page in that size; harmless, since
// the handler reads only from the interrupted sp upwards.
template <class StackAlloc>
class recording_stack_allocator {
 public:
  recording_stack_allocator(StackAlloc inner, boost_fiber_state* state) : inner_(std::move(inner)), state_(state) {}

  boost::context::stack_context allocate() {
    boost::context::stack_context sctx = inner_.allocate();
    const char* lowest = static_cast<const char*>(sctx.sp) - sctx.size;
    state_->profile.set_stack(lowest, sctx.size);
    state_->identity.bottom = lowest;
    state_->identity.size = sctx.size;
    return sctx;
  }
  void deallocate(boost::context::stack_context& sctx) noexcept { inner_.deallocate(sctx); }

 private:
  StackAlloc inner_;
  boost_fiber_state* state_;
};

// TSan: Boost's constructor jumps onto the new stack and back (its entry function starts
// there), so TSan must see that code run on the new fiber, or its shadow call stack of the
// creating thread would keep a frame per fiber created. Forced inline, like before_jump: a call
// that switched TSan's fiber half-way would record its exit on the new fiber's empty shadow
// stack, writing below it (TSan crashed in memcpy's interceptor a few fibers later).
class tsan_creation_scope {
 public:
  [[gnu::always_inline]] explicit tsan_creation_scope([[maybe_unused]] boost_fiber_state& state) noexcept {
#if defined(SPANPROF_DETAIL_FIBER_TSAN)
    creator_ = __tsan_get_current_fiber();
    __tsan_switch_to_fiber(state.identity.tsan_fiber, 0);
#endif
  }
  [[gnu::always_inline]] ~tsan_creation_scope() {
#if defined(SPANPROF_DETAIL_FIBER_TSAN)
    __tsan_switch_to_fiber(creator_, 0);
#endif
  }
  tsan_creation_scope(const tsan_creation_scope&) = delete;
  tsan_creation_scope& operator=(const tsan_creation_scope&) = delete;

 private:
  [[maybe_unused]] void* creator_ = nullptr;
};

template <class Fn>
class fiber_entry;

}  // namespace SPANPROF_DETAIL_FIBER_ABI
}  // namespace detail

inline namespace SPANPROF_DETAIL_FIBER_ABI {

// A boost::context::fiber whose transactions, spans and samples spanprof follows (see the top of
// this file). Same interface as boost::context::fiber, minus resume_with(); the function it runs
// is `profiled_fiber fn(profiled_fiber&& caller)`.
class profiled_fiber {
 public:
  profiled_fiber() noexcept = default;

  template <class Fn, class = std::enable_if_t<!std::is_same_v<std::decay_t<Fn>, profiled_fiber> &&
                                               !std::is_same_v<std::decay_t<Fn>, std::allocator_arg_t>>>
  explicit profiled_fiber(Fn&& fn)
      : profiled_fiber(std::allocator_arg, boost::context::fixedsize_stack(), std::forward<Fn>(fn)) {}

  // With a Boost.Context stack allocator (fixedsize_stack, protected_fixedsize_stack,
  // pooled_fixedsize_stack, or your own).
  template <class StackAlloc, class Fn>
  profiled_fiber(std::allocator_arg_t, StackAlloc&& salloc, Fn&& fn) {
    auto state = std::make_unique<detail::boost_fiber_state>();
    detail::boost_fiber_state& s = *state;
    detail::fiber_entry<std::decay_t<Fn>> entry(std::move(state), std::forward<Fn>(fn));
    {
      // Declared after `entry`: if Boost's constructor throws, TSan is back on this stack
      // before the state (and its TSan fiber) is destroyed.
      detail::tsan_creation_scope creating(s);
      impl_ = boost::context::fiber(
          std::allocator_arg,
          detail::recording_stack_allocator<std::decay_t<StackAlloc>>(std::forward<StackAlloc>(salloc), &s),
          std::move(entry));
    }
#if defined(SPANPROF_DETAIL_FIBER_SANITIZERS)
    target_ = &s.identity;
#endif
  }

  // A fiber destroyed while suspended is unwound by Boost (its stack's destructors run); its
  // transactions still open are finished first, as aborted.
  ~profiled_fiber() {
    if (impl_) destroy_suspended();
  }

  profiled_fiber(profiled_fiber&& other) noexcept { swap(other); }
  profiled_fiber& operator=(profiled_fiber&& other) noexcept {
    if (this != &other) {
      profiled_fiber doomed = std::move(other);
      swap(doomed);
    }
    return *this;
  }
  profiled_fiber(const profiled_fiber&) = delete;
  profiled_fiber& operator=(const profiled_fiber&) = delete;

  // Suspends the calling fiber (or thread) and runs this one; returns the handle of whoever
  // switches back (empty if that fiber ended). Resume and yield are this same call.
  // Forced inline, as Boost's own resume() is: called out of line, its `ret` after the stack
  // switch is mispredicted (the return stack buffer holds the other fiber's calls), which cost
  // ~12 ns per round trip here, more than the rest of the hook.
  [[gnu::always_inline]] profiled_fiber resume() && {
    detail::jump_site site;
    site.depart(target());
    boost::context::fiber back;
    try {
      back = std::move(impl_).resume();
    } catch (...) {
      // Nothing but Boost's forced_unwind comes out of a jump: this fiber's handle was destroyed
      // while it was suspended here, and Boost unwinds its stack. Run as ourselves meanwhile,
      // with our transactions already finished (aborted), so that their RAII ends do nothing.
      detail::fiber_stack_identity* from = site.arrive(site.self);
      if (site.self != nullptr && site.self->is_fiber) {
        detail::compiled::abandon_context(site.self);
        if (site.self_stack != nullptr && site.self_stack->fiber != nullptr) site.self_stack->fiber->unwind_to = from;
      }
      throw;
    }
    return profiled_fiber(std::move(back), site.arrive());
  }

  explicit operator bool() const noexcept { return static_cast<bool>(impl_); }
  bool operator!() const noexcept { return !impl_; }

  void swap(profiled_fiber& other) noexcept {
    impl_.swap(other.impl_);
#if defined(SPANPROF_DETAIL_FIBER_SANITIZERS)
    std::swap(target_, other.target_);
#endif
  }

 private:
  template <class Fn>
  friend class detail::fiber_entry;

  profiled_fiber(boost::context::fiber&& impl, [[maybe_unused]] detail::fiber_stack_identity* target) noexcept
      : impl_(std::move(impl)) {
#if defined(SPANPROF_DETAIL_FIBER_SANITIZERS)
    target_ = impl_ ? target : nullptr;
#endif
  }

  // The identity of the stack this handle resumes (sanitizer builds; null otherwise).
  [[nodiscard]] detail::fiber_stack_identity* target() const noexcept {
#if defined(SPANPROF_DETAIL_FIBER_SANITIZERS)
    return target_;
#else
    return nullptr;
#endif
  }

  [[gnu::noinline]] void destroy_suspended() noexcept {
    if constexpr (detail::fiber_sanitizers) {
      detail::boost_fiber_state* fiber = target()->fiber;
      if (fiber != nullptr && !fiber->started) {
        // Never ran: Boost would unwind it without any code of ours on its stack, so the
        // sanitizers would see an unannounced stack. Run it once instead; it returns at once.
        fiber->cancelled = true;
        (void)std::move(*this).resume();  // the handle it returns is empty: the fiber ended
        return;
      }
    }
    detail::jump_site site;
    site.depart(target());
    {
      // Boost jumps to the fiber, throws forced_unwind there (resume() above catches it on the
      // way), and comes back here once its stack is unwound and freed.
      boost::context::fiber doomed = std::move(impl_);
    }
    site.arrive();
  }

  boost::context::fiber impl_;
#if defined(SPANPROF_DETAIL_FIBER_SANITIZERS)
  // The identity of the stack this handle resumes, for the sanitizers. Plain builds do without:
  // a handle there is Boost's one pointer, so returning it from resume() costs what Boost's
  // does (a second word measurably slowed every switch: the 16-byte copy of the returned
  // handle waited on two 8-byte stores).
  detail::fiber_stack_identity* target_ = nullptr;
#endif
};

inline void swap(profiled_fiber& a, profiled_fiber& b) noexcept { a.swap(b); }

}  // namespace SPANPROF_DETAIL_FIBER_ABI

namespace detail {
inline namespace SPANPROF_DETAIL_FIBER_ABI {

// The function Boost runs on the new stack: spanprof's side of starting and ending a fiber
// around the user's function.
template <class Fn>
class fiber_entry {
 public:
  template <class F>
  fiber_entry(std::unique_ptr<boost_fiber_state> state, F&& fn) : state_(std::move(state)), fn_(std::forward<F>(fn)) {}

  boost::context::fiber operator()(boost::context::fiber&& caller) {
    boost_fiber_state& state = *state_;
    state.started = true;
    fiber_stack_identity* from = nullptr;
    if constexpr (fiber_sanitizers) from = after_jump(nullptr, &state.identity);  // no fake stack yet
    switch_running_context(fiber_access::context_of(state.profile));
    profiled_fiber caller_handle(std::move(caller), from);
    if (state.cancelled) return leave(std::move(caller_handle));
    profiled_fiber next;
    try {
      next = std::invoke(fn_, std::move(caller_handle));
    } catch (...) {
      // Boost's forced_unwind (our handle was destroyed while we were suspended): Boost catches
      // it below us and jumps back to the destroyer. Any other exception leaving a fiber ends
      // the program in Boost's entry function, as without spanprof.
      depart_for_good(state.unwind_to);
      throw;
    }
    return leave(std::move(next));
  }

 private:
  // The fiber is done: nothing may run its context any more (it goes back to the pool when
  // Boost frees the stack), and the sanitizers learn that this stack is gone.
  void depart_for_good(const fiber_stack_identity* to) noexcept {
    compiled::abandon_context(fiber_access::context_of(state_->profile));  // transactions left open
    switch_running_context(nullptr);  // whoever arrives next makes itself the running context
    if constexpr (fiber_sanitizers) {
      if (to != nullptr) before_jump(nullptr, to);
    }
  }

  boost::context::fiber leave(profiled_fiber&& next) noexcept {
    depart_for_good(next.target());
    return std::move(next.impl_);
  }

  std::unique_ptr<boost_fiber_state> state_;
  Fn fn_;
};

}  // namespace SPANPROF_DETAIL_FIBER_ABI
}  // namespace detail
}  // namespace spanprof
