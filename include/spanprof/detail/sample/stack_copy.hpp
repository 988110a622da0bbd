// spanprof: the DWARF unwinder's half inside the SIGPROF handler — a copy of registers and stack.
//
// This whole file is ASYNC-SIGNAL-SAFE. Works without frame pointers: the handler only copies
// registers and the top of the stack (capture_raw_stack); the collector unwinds the copy with
// DWARF CFI (unwind_dwarf.hpp).
#pragma once

#include <ucontext.h>

#include <cstddef>
#include <cstdint>

#include "../record/active_state.hpp"  // stack_bounds

namespace spanprof::detail {

// The DWARF unwinder's sample: what the handler copies so the collector can unwind later
// (unwind_dwarf.hpp), as perf's --call-graph=dwarf does. Unwinding with DWARF CFI inside the
// handler (libunwind's unw_backtrace) needs the loader's lock on a cache miss, and deadlocks
// against a dlclose() that waits for a malloc lock the interrupted thread holds; a memcpy of
// registers and stack needs nothing. Payload words, in order:
//   [0, 17)  the registers in DWARF numbering (rax rdx rcx rbx rsi rdi rbp rsp r8-r15 rip)
//   [17]     the active span's anchor frame address (the collector locates the anchor)
//   [18, …)  the stack from the interrupted rsp upwards, at most max_stack_copy_bytes
struct raw_stack_layout {
  static constexpr std::size_t register_count = 17;
  static constexpr std::size_t rsp_index = 7;
  static constexpr std::size_t rip_index = 16;
  static constexpr std::size_t anchor_index = 17;
  static constexpr std::size_t prefix_words = 18;
};

// ASYNC-SIGNAL-SAFE. Fills `prefix` (raw_stack_layout) from the interrupted context and says
// which stack words to copy: from rsp to the top of the stack, at most `max_copy_bytes`. A
// stack pointer outside the known bounds (an alternate or unknown stack) copies nothing: the
// collector then reports the leaf alone, flagged truncated.
inline void capture_raw_stack(const ucontext_t& uc, stack_bounds bounds, std::uintptr_t anchor_fp,
                              std::size_t max_copy_bytes, std::uintptr_t* prefix,
                              const std::uintptr_t*& stack_words, std::size_t& stack_word_count) noexcept {
  stack_words = nullptr;
  stack_word_count = 0;
#if defined(__x86_64__)
  static constexpr int dwarf_order[raw_stack_layout::register_count] = {
      REG_RAX, REG_RDX, REG_RCX, REG_RBX, REG_RSI, REG_RDI, REG_RBP, REG_RSP, REG_R8,
      REG_R9,  REG_R10, REG_R11, REG_R12, REG_R13, REG_R14, REG_R15, REG_RIP};
  for (std::size_t i = 0; i < raw_stack_layout::register_count; ++i) {
    prefix[i] = static_cast<std::uintptr_t>(uc.uc_mcontext.gregs[dwarf_order[i]]);
  }
  prefix[raw_stack_layout::anchor_index] = anchor_fp;
  const std::uintptr_t sp = prefix[raw_stack_layout::rsp_index] & ~std::uintptr_t{7};
  if (sp < bounds.lowest || sp >= bounds.highest) return;
  std::size_t bytes = bounds.highest - sp;
  if (bytes > max_copy_bytes) bytes = max_copy_bytes;
  stack_words = reinterpret_cast<const std::uintptr_t*>(sp);
  stack_word_count = bytes / sizeof(std::uintptr_t);
#else
  (void)uc, (void)bounds, (void)anchor_fp, (void)max_copy_bytes;
  for (std::size_t i = 0; i < raw_stack_layout::prefix_words; ++i) prefix[i] = 0;
#endif
}

}  // namespace spanprof::detail
