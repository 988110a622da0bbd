// spanprof: the frame-pointer unwinder, run inside the SIGPROF handler.
//
// This whole file is ASYNC-SIGNAL-SAFE: it may be called from within a signal handler, so
// anything added here must be too. It starts from the `ucontext_t` the kernel handed the
// handler, so neither the handler nor the signal trampoline (`__restore_rt`) ever appears: a
// walk of the rbp chain, each step checked against the stack's bounds and alignment and
// required to move outwards, so a garbage rbp (code built without frame pointers) stops the
// walk instead of faulting. ~2 ns a frame.
#pragma once

#include <ucontext.h>

#include <cstddef>
#include <cstdint>

#include "../record/active_state.hpp"  // stack_bounds

namespace spanprof::detail {

enum class unwind_method : std::uint8_t { frame_pointers, dwarf };

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
