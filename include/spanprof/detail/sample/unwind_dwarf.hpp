// spanprof: the collector half of the DWARF unwinder — walks the register and stack copies the
// SIGPROF handler took (capture_raw_stack in stack_copy.hpp) with elfutils libdw's CFI unwinder.
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only. This is how perf's --call-graph=dwarf works:
// the handler copies, the heavy part (finding the FDE, running CFI programs) runs later, on the
// collector, reading unwind tables from the module files and stack words only from the copy.
// So it never touches the interrupted thread's live memory, never takes the loader's lock in a
// handler, and a module unloaded meanwhile costs a truncated stack, never a fault.
#pragma once

#include <elfutils/libdwfl.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ring.hpp"
#include "frame_pointer_walk.hpp"
#include "stack_copy.hpp"
#include "../symbolize/loader.hpp"  // read_loader_counters, shared with the module map

namespace spanprof::detail {

class dwarf_unwinder {
 public:
  dwarf_unwinder() = default;
  dwarf_unwinder(const dwarf_unwinder&) = delete;
  dwarf_unwinder& operator=(const dwarf_unwinder&) = delete;
  ~dwarf_unwinder() { close_session(); }

  // Call before a batch of unwinds: a dlopen/dlclose since the last batch rebuilds the module
  // list (dl_iterate_phdr's load/unload counters tell, for the cost of one loader-lock round).
  void note_batch_start() noexcept {
    std::uint64_t adds = 0, subs = 0;
    read_loader_counters(adds, subs);  // nothing reported: both 0, as at the start
    if (adds != seen_adds_ || subs != seen_subs_) {
      seen_adds_ = adds;
      seen_subs_ = subs;
      close_session();
    }
  }

  // Unwinds one raw-stack record into `pcs` (leaf first; every pc but the leaf is a return
  // address) and `frames` (for each pc, where its frame's rbp would be: CFA − 16, the value
  // find_anchor compares with a span's __builtin_frame_address(0)). At most max_depth frames.
  captured_stack unwind(const sample_record& record, std::uintptr_t* pcs, std::uintptr_t* frames,
                        std::size_t max_depth) noexcept {
    captured_stack out;
    if (record.depth < raw_stack_layout::prefix_words || max_depth == 0) {
      out.truncated = true;
      return out;
    }
    const std::uintptr_t* words = record.pcs();
    current_.registers = words;
    current_.stack_low = words[raw_stack_layout::rsp_index] & ~std::uintptr_t{7};
    current_.stack = words + raw_stack_layout::prefix_words;
    current_.stack_words = record.depth - raw_stack_layout::prefix_words;
    current_.read_outside_copy = false;
    current_.copy_reaches_stack_top = (record.flags & sample_flag_stack_top) != 0;
    current_.pcs = pcs;
    current_.sps = frames;
    current_.depth = 0;
    current_.max_depth = max_depth;
    int result = -1;
    if (open_session()) result = dwfl_getthread_frames(dwfl_, static_cast<pid_t>(record.tid == 0 ? 1 : record.tid), &on_frame, &current_);
    if (current_.depth == 0) {  // no module knows the pc: keep the leaf, it is still a fact
      pcs[0] = words[raw_stack_layout::rip_index];
      frames[0] = current_.stack_low;
      current_.depth = 1;
    }
    out.depth = current_.depth;
    // frames[] holds each frame's sp so far. A frame's CFA is its caller's sp; the outermost
    // frame's caller is beyond the copy, so its end of the copy stands in.
    const std::uintptr_t copy_end = current_.stack_low + current_.stack_words * sizeof(std::uintptr_t);
    for (std::size_t k = 0; k < out.depth; ++k) {
      const std::uintptr_t cfa = k + 1 < out.depth ? frames[k + 1] : copy_end;
      frames[k] = cfa >= 16 ? cfa - 16 : 0;
    }
    const bool stopped_by_depth = result == DWARF_CB_ABORT;
    // libdw ends a walk quietly (0) when a stack read fails, so the read itself is the signal
    // that the copy was too short; an error with the last pc in no module means the chain was
    // lost (unloaded module, JIT code, garbage return address).
    const bool lost_the_chain = current_.read_outside_copy ||
                                (result != 0 && (dwfl_ == nullptr || dwfl_addrmodule(dwfl_, pcs[out.depth - 1]) == nullptr));
    out.truncated = stopped_by_depth || lost_the_chain || (current_.depth == 1 && current_.stack_words == 0);
    return out;
  }

 private:
  struct walk_state {
    const std::uintptr_t* registers = nullptr;
    std::uintptr_t stack_low = 0;
    const std::uintptr_t* stack = nullptr;
    std::size_t stack_words = 0;
    bool read_outside_copy = false;
    bool copy_reaches_stack_top = false;
    std::uintptr_t* pcs = nullptr;
    std::uintptr_t* sps = nullptr;
    std::size_t depth = 0;
    std::size_t max_depth = 0;
  };

  bool open_session() noexcept {
    if (dwfl_ != nullptr) return true;
    if (session_failed_) return false;
    static char* debuginfo_path = nullptr;
    static const Dwfl_Callbacks callbacks = {
        .find_elf = dwfl_linux_proc_find_elf,
        .find_debuginfo = dwfl_standard_find_debuginfo,
        .section_address = nullptr,
        .debuginfo_path = &debuginfo_path,
    };
    static const Dwfl_Thread_Callbacks thread_callbacks = {
        .next_thread = [](Dwfl*, void*, void**) -> pid_t { return 0; },  // only get_thread is used
        .get_thread = [](Dwfl*, pid_t, void* dwfl_arg, void** thread_arg) -> bool {
          *thread_arg = dwfl_arg;
          return true;
        },
        .memory_read = &read_stack_word,
        .set_initial_registers = &set_initial_registers,
        .detach = nullptr,
        .thread_detach = nullptr,
    };
    dwfl_ = dwfl_begin(&callbacks);
    if (dwfl_ == nullptr) {
      session_failed_ = true;
      return false;
    }
    dwfl_report_begin(dwfl_);
    const bool reported = dwfl_linux_proc_report(dwfl_, ::getpid()) == 0;
    dwfl_report_end(dwfl_, nullptr, nullptr);
    if (!reported || !dwfl_attach_state(dwfl_, nullptr, ::getpid(), &thread_callbacks, &current_)) {
      close_session();
      session_failed_ = true;  // e.g. /proc not mounted: the fp unwinder still works
      return false;
    }
    return true;
  }

  void close_session() noexcept {
    if (dwfl_ != nullptr) dwfl_end(dwfl_);
    dwfl_ = nullptr;
  }

  static bool set_initial_registers(Dwfl_Thread* thread, void* arg) {
    const auto& walk = *static_cast<const walk_state*>(arg);
    Dwarf_Word registers[raw_stack_layout::register_count];
    for (std::size_t i = 0; i < raw_stack_layout::register_count; ++i) registers[i] = walk.registers[i];
    if (!dwfl_thread_state_registers(thread, 0, raw_stack_layout::register_count, registers)) return false;
    dwfl_thread_state_register_pc(thread, registers[raw_stack_layout::rip_index]);
    return true;
  }

  // Stack words come from the copy only; a read beyond it ends the walk: truncated, unless the
  // copy holds the whole stack up to its top (the outermost frame then has no caller).
  static bool read_stack_word(Dwfl*, Dwarf_Addr address, Dwarf_Word* result, void* arg) {
    auto& walk = *static_cast<walk_state*>(arg);
    const std::uintptr_t end = walk.stack_low + walk.stack_words * sizeof(std::uintptr_t);
    if (address < walk.stack_low || address > end || end - address < sizeof(Dwarf_Word)) {
      walk.read_outside_copy = address < walk.stack_low || !walk.copy_reaches_stack_top;
      return false;
    }
    std::memcpy(result, reinterpret_cast<const unsigned char*>(walk.stack) + (address - walk.stack_low), sizeof(Dwarf_Word));
    return true;
  }

  static int on_frame(Dwfl_Frame* frame, void* arg) {
    auto& walk = *static_cast<walk_state*>(arg);
    if (walk.depth == walk.max_depth) return DWARF_CB_ABORT;
    Dwarf_Addr pc = 0;
    bool is_activation = false;
    if (!dwfl_frame_pc(frame, &pc, &is_activation)) return DWARF_CB_ABORT;
    if (walk.depth > 0 && pc == 0) return DWARF_CB_OK;  // the outermost frame's null return address
    Dwarf_Word sp = 0;
    if (dwfl_frame_reg(frame, raw_stack_layout::rsp_index, &sp) != 0) sp = 0;
    walk.pcs[walk.depth] = static_cast<std::uintptr_t>(pc);
    walk.sps[walk.depth] = static_cast<std::uintptr_t>(sp);
    ++walk.depth;
    return DWARF_CB_OK;
  }

  Dwfl* dwfl_ = nullptr;
  bool session_failed_ = false;
  std::uint64_t seen_adds_ = 0;
  std::uint64_t seen_subs_ = 0;
  walk_state current_;
};

}  // namespace spanprof::detail
