// spanprof: module_session — the libdwfl session open for one module, and its DWARF indexes
// (dwarf_index.hpp), built lazily. One per module, opened when the module is first seen and kept
// open, so a library dlclose'd (or replaced on disk) before its samples are symbolized still
// resolves from the file that was loaded, checked against the build id read from memory.
//
// NOT ASYNC-SIGNAL-SAFE: opens files, allocates, and drives libdw. Collector thread only.
#pragma once

#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <unordered_map>
#include <vector>

#include "debug_files.hpp"
#include "dwarf_index.hpp"
#include "module_map.hpp"

namespace spanprof::detail {

// Ends a libdwfl session (and closes the files it holds) when its module_session goes.
struct dwfl_closer {
  void operator()(Dwfl* dwfl) const noexcept { dwfl_end(dwfl); }
};
// What is open for one module, and its lazily built indexes (libdw has its own caches of
// CUs, lines and symbols behind them).
struct module_session {
  std::unique_ptr<Dwfl, dwfl_closer> dwfl;
  Dwfl_Module* module = nullptr;  // null: no usable file, so module+offset frames only
  bool dwarf_indexed = false;
  Dwarf* dwarf = nullptr;
  Dwarf_Addr dwarf_bias = 0;
  std::vector<function_range> cu_ranges;  // die_offset is the CU DIE's
  std::unordered_map<Dwarf_Off, cu_index> cu_indexes;  // by CU DIE offset, built on first use
  std::unordered_map<Dwarf_Off, inline_tree> inline_trees;  // by subprogram DIE offset, on first use
};

// Opens the file module `m` was loaded from; leaves `s` without a module when there is no usable
// file (module+offset frames only). use_debuginfod: see symbolizer_options.
inline void open_module(const module_info& info, module_session& session, bool use_debuginfod) {
  static const Dwfl_Callbacks local_callbacks{dwfl_build_id_find_elf, find_debuginfo_locally, nullptr, nullptr};
  static const Dwfl_Callbacks standard_callbacks{dwfl_build_id_find_elf, dwfl_standard_find_debuginfo, nullptr, nullptr};
  // The running executable through /proc/self/exe: that is the loaded file even if it was
  // deleted or replaced since. Its real path still names it, for .gnu_debuglink look-ups.
  const int fd = ::open(info.is_main_executable ? "/proc/self/exe" : info.path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  session.dwfl.reset(dwfl_begin(use_debuginfod ? &standard_callbacks : &local_callbacks));
  if (session.dwfl == nullptr) {
    ::close(fd);
    return;
  }
  dwfl_report_begin(session.dwfl.get());
  Dwfl_Module* mod = dwfl_report_elf(session.dwfl.get(), info.path.c_str(), info.path.c_str(), fd, info.bias, true);
  dwfl_report_end(session.dwfl.get(), nullptr, nullptr);
  if (mod == nullptr) {
    ::close(fd);  // consumed only on success
    session.dwfl.reset();
    return;
  }
  // The file must be the build that was loaded, at the bias it was loaded at: a library
  // rebuilt on disk after loading would otherwise lend its names to the old code.
  const unsigned char* id = nullptr;
  GElf_Addr id_vaddr = 0;
  const int id_size = dwfl_module_build_id(mod, &id, &id_vaddr);
  Dwarf_Addr elf_bias = 0;
  const bool same_build = info.build_id.empty() || (id_size == static_cast<int>(info.build_id.size()) &&
                                                 std::memcmp(id, info.build_id.data(), info.build_id.size()) == 0);
  if (!same_build || dwfl_module_getelf(mod, &elf_bias) == nullptr || elf_bias != info.bias) {
    session.dwfl.reset();
    return;
  }
  session.module = mod;
}

// The address ranges of every CU, from the CU DIEs alone (clang writes no .debug_aranges,
// which dwfl_module_addrdie would need). Once per module.
inline void index_compile_units(module_session& session) {
  session.dwarf_indexed = true;
  session.dwarf = dwfl_module_getdwarf(session.module, &session.dwarf_bias);
  if (session.dwarf == nullptr) return;
  Dwarf_Addr bias = 0;
  for (Dwarf_Die* cu = nullptr; (cu = dwfl_module_nextcu(session.module, cu, &bias)) != nullptr;) {
    add_ranges(cu, session.cu_ranges);
  }
  sort_ranges(session.cu_ranges);
}

inline cu_index& cu_index_of(module_session& session, Dwarf_Die& cu) {
  auto [it, inserted] = session.cu_indexes.try_emplace(dwarf_dieoffset(&cu));
  if (inserted) index_cu(cu, it->second);
  return it->second;
}

}  // namespace spanprof::detail
