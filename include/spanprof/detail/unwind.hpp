// spanprof: stack capture inside the SIGPROF handler, starting from the interrupted context.
//
// This whole file is ASYNC-SIGNAL-SAFE: it may be called from within a signal handler, so
// anything added here must be too. Both unwinders start from the `ucontext_t` the kernel handed
// the handler, so neither the handler nor the signal trampoline (`__restore_rt`) ever appears.
//
// - frame pointers: a walk of the rbp chain, each step checked against the stack's bounds and
//   alignment and required to move outwards, so a garbage rbp (code built without frame
//   pointers) stops the walk instead of faulting. ~2 ns a frame.
// - libunwind (Debian's, local-only): DWARF CFI, works without frame pointers. See
//   unwind_libunwind for why it goes through unw_backtrace's per-thread trace cache.
#pragma once

#include <ucontext.h>

#include <cstddef>
#include <cstdint>

#if defined(SPANPROF_HAVE_LIBUNWIND)
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#endif

namespace spanprof::detail {

enum class unwind_method : std::uint8_t { frame_pointers, libunwind };

struct stack_bounds {
  std::uintptr_t lowest = 0;   // lowest usable address of the stack
  std::uintptr_t highest = 0;  // one past the highest
  [[nodiscard]] bool contains(std::uintptr_t address, std::size_t bytes) const noexcept {
    return address >= lowest && address + bytes <= highest && address + bytes > address;
  }
};

struct captured_stack {
  std::size_t depth = 0;
  bool truncated = false;  // stopped before reaching the outermost frame
};

// ASYNC-SIGNAL-SAFE. Leaf first: pcs[0] is the interrupted pc, the rest return addresses.
// frames[k] is the frame address (rbp) of the function executing pcs[k]; the anchor of a span
// is the first k whose frames[k] >= the span's __builtin_frame_address(0).
inline captured_stack unwind_frame_pointers(const ucontext_t& uc, stack_bounds bounds, std::uintptr_t* pcs,
                                            std::uintptr_t* frames, std::size_t max_depth) noexcept {
  captured_stack out;
  if (max_depth == 0) return out;
#if defined(__x86_64__)
  std::uintptr_t pc = static_cast<std::uintptr_t>(uc.uc_mcontext.gregs[REG_RIP]);
  std::uintptr_t fp = static_cast<std::uintptr_t>(uc.uc_mcontext.gregs[REG_RBP]);
  // Every live frame lies above the interrupted stack pointer. The main thread's reported
  // bounds span its whole rlimit, mostly unmapped: a garbage rbp there would fault.
  const auto sp = static_cast<std::uintptr_t>(uc.uc_mcontext.gregs[REG_RSP]);
  if (sp > bounds.lowest && sp < bounds.highest) bounds.lowest = sp;
#else
  std::uintptr_t pc = 0, fp = 0;
#endif
  while (out.depth < max_depth) {
    pcs[out.depth] = pc;
    frames[out.depth] = fp;
    ++out.depth;
    // A frame is [saved rbp][return address]; both must lie on this stack, 8-byte aligned.
    if ((fp & 7) != 0 || !bounds.contains(fp, 2 * sizeof(std::uintptr_t))) return out;  // end of chain
    const auto* frame = reinterpret_cast<const std::uintptr_t*>(fp);
    const std::uintptr_t next_fp = frame[0];
    pc = frame[1];
    if (pc == 0) return out;  // the outermost frame (_start / clone) ends the chain with 0
    if (next_fp <= fp) {
      // Frames move towards higher addresses; anything else is not a frame chain (code built
      // without frame pointers leaves rbp as a general register). Keep the return address we
      // trust, stop there.
      if (out.depth < max_depth) {
        pcs[out.depth] = pc;
        frames[out.depth] = fp;
        ++out.depth;
      }
      out.truncated = next_fp != 0;
      return out;
    }
    fp = next_fp;
  }
  out.truncated = true;
  return out;
}

#if defined(SPANPROF_HAVE_LIBUNWIND)
// Frames the handler path itself may add above the interrupted one (the handler, a sanitizer's
// interceptor, __restore_rt): the scratch arrays have room for them.
inline constexpr std::size_t libunwind_extra_frames = 16;

// NOT ASYNC-SIGNAL-SAFE: call once on each thread before it can be sampled. unw_backtrace's
// first call on a thread allocates its per-thread trace cache; after that it neither
// allocates nor makes system calls.
inline void prepare_libunwind_for_this_thread() noexcept {
  void* warm[4];
  unw_backtrace(warm, 4);
}

// ASYNC-SIGNAL-SAFE once the thread was prepared (above). Why unw_backtrace and not an
// unw_step loop from the ucontext: Debian's libunwind 1.6 ignores UNW_CACHE_PER_THREAD and takes
// its global cache lock in every unw_step, two rt_sigprocmask system calls per frame (~25 us
// for 50 frames here, gperftools' cost); unw_backtrace's trace cache makes none. It walks from
// the handler, through the signal frame, so we skip up to the interrupted pc. It gives no frame
// addresses: frames[] is zeroed and the span anchor stays unknown (gap filling falls back to
// the call site, gapfill.md §2.3).
inline captured_stack unwind_libunwind(const ucontext_t& uc, std::uintptr_t* pcs, std::uintptr_t* frames,
                                       std::size_t max_depth) noexcept {
  captured_stack out;
  const auto interrupted = static_cast<std::uintptr_t>(uc.uc_mcontext.gregs[REG_RIP]);
  const int limit = static_cast<int>(max_depth + libunwind_extra_frames);
  const int n = unw_backtrace(reinterpret_cast<void**>(pcs), limit);
  int first = 0;
  while (first < n && pcs[first] != interrupted) ++first;
  if (first == n) {  // the signal frame was not recognised: keep nothing rather than garbage
    out.truncated = true;
    return out;
  }
  const std::size_t available = static_cast<std::size_t>(n - first);
  out.depth = available < max_depth ? available : max_depth;
  for (std::size_t k = 0; k < out.depth; ++k) {
    pcs[k] = pcs[static_cast<std::size_t>(first) + k];
    frames[k] = 0;
  }
  out.truncated = available > max_depth || n == limit;  // cut by us, or by the limit we gave it
  return out;
}
#endif

// ASYNC-SIGNAL-SAFE. Index of the span's anchor frame: the first frame, from the leaf, whose
// frame address is at or above `anchor_fp` (stacks grow down, so callers sit higher). 0xFFFF if
// the stack never reaches it (truncated, or the span belongs to another stack).
inline std::uint16_t find_anchor(const std::uintptr_t* frames, std::size_t depth, std::uintptr_t anchor_fp) noexcept {
  if (anchor_fp == 0) return 0xFFFF;
  for (std::size_t k = 0; k < depth; ++k) {
    if (frames[k] >= anchor_fp) return static_cast<std::uint16_t>(k);
  }
  return 0xFFFF;
}

}  // namespace spanprof::detail
