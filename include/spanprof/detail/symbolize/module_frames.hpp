// spanprof: the frames one module's files give an address, best source first — DWARF (function,
// file, line, the inlined chain), then the ELF symbol table, then "<module>+0x<offset>" — and the
// DWARF naming that goes with it (linkage names, qualified names, source paths).
//
// NOT ASYNC-SIGNAL-SAFE: reads DWARF through libdw and allocates. Collector thread only.
#pragma once

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "build_id.hpp"
#include "dwarf_index.hpp"
#include "frames.hpp"
#include "module_map.hpp"
#include "module_session.hpp"
#include "names.hpp"

namespace spanprof::detail {

// The linkage name, demangled, through abstract_origin/specification; empty without one.
inline std::string_view linkage_name(Dwarf_Die* die, name_store& names) {
  Dwarf_Attribute attr;
  const char* linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
  if (linkage == nullptr) linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
  return linkage != nullptr ? names.demangle(linkage) : std::string_view{};
}

// The DWARF name with the namespaces, classes and functions around its declaration, as the
// demangler writes them but without parameters (DWARF would need its types printed): C
// functions, main, and internal-linkage functions inlined where no symbol names them.
inline std::string_view qualified_dwarf_name(module_session& session, Dwarf_Die* die, name_store& names) {
  const Dwarf_Die named = declaration_of(*die);
  Dwarf_Die declaration = named;
  if (const std::string_view* known = names.known_qualified_name(named.addr)) return *known;
  const char* plain = dwarf_diename(&declaration);
  std::string name = plain != nullptr ? plain : "";
  // Up through the scopes the index recorded; a function's definition may sit apart from its
  // declaration (DW_AT_specification), whose scopes are then the ones that count.
  Dwarf_Die cu;
  bool hopped = plain != nullptr;
  for (int depth = 0; hopped && depth < 64; ++depth) {
    hopped = false;
    if (dwarf_diecu(&declaration, &cu, nullptr, nullptr) == nullptr || dwarf_cu_getdwarf(cu.cu) != session.dwarf) break;
    const cu_index& index = cu_index_of(session, cu);  // (a dwz file's DIEs are not in ours: stop there)
    const Dwarf_Off offset = dwarf_dieoffset(&declaration);
    const auto it = std::lower_bound(index.subprograms.begin(), index.subprograms.end(), offset,
                                     [](const die_scope& scope_entry, Dwarf_Off wanted) { return scope_entry.die_offset < wanted; });
    std::uint32_t scope = it != index.subprograms.end() && it->die_offset == offset ? it->scope : no_scope;
    for (; scope != no_scope; scope = index.scopes[scope].scope) {
      Dwarf_Die enclosing;
      if (dwarf_offdie(session.dwarf, index.scopes[scope].die_offset, &enclosing) == nullptr) break;
      const int tag = dwarf_tag(&enclosing);
      const char* scope_name = dwarf_diename(&enclosing);
      name.insert(0, std::string(scope_name != nullptr ? scope_name : tag == DW_TAG_namespace ? "(anonymous namespace)" : "(anonymous)") + "::");
      const Dwarf_Die declared = tag == DW_TAG_subprogram ? declaration_of(enclosing) : enclosing;
      if (declared.addr != enclosing.addr) {  // go on from where that function is declared
        declaration = declared;
        hopped = true;
        break;
      }
    }
  }
  return names.remember_qualified_name(named.addr, name);
}

// Line-table names are absolute or relative to the CU's DW_AT_comp_dir.
inline std::string_view source_path(Dwarf_Die& cu, const char* name, name_store& names) {
  if (name == nullptr || *name == '\0' || std::strcmp(name, "???") == 0) return {};  // libdw's "no file"
  if (name[0] == '/') return names.intern(name);
  Dwarf_Attribute attr;
  const char* dir = dwarf_formstring(dwarf_attr(&cu, DW_AT_comp_dir, &attr));
  return dir != nullptr ? names.intern(std::string(dir) + "/" + name) : names.intern(name);
}

// The line table's file and line for `at` into `frame`; left empty/0 where the table has none.
inline void line_at(Dwarf_Die& cu, Dwarf_Addr at, symbolized_frame& frame, name_store& names) {
  Dwarf_Line* row = dwarf_getsrc_die(&cu, at);
  if (row == nullptr) return;
  frame.file = source_path(cu, dwarf_linesrc(row, nullptr, nullptr), names);
  int line = 0;
  if (dwarf_lineno(row, &line) == 0 && line > 0) frame.line = static_cast<std::uint32_t>(line);
}

// One symtab frame from the ELF symbol that covers `address` (.symtab, else .dynsym); false when none
// certainly does.
inline bool symtab_frame(Dwfl_Module* mod, std::uintptr_t address, std::vector<symbolized_frame>& out, name_store& names) {
  GElf_Off offset = 0;
  GElf_Sym sym{};
  const char* name = dwfl_module_addrinfo(mod, address, &offset, &sym, nullptr, nullptr, nullptr);
  // A symbol without a size "covers" everything up to the next one: for a stripped object's
  // internal functions that would be the name of an unrelated exported neighbour.
  if (name == nullptr || *name == '\0' || sym.st_size == 0 || offset >= sym.st_size) return false;
  out.push_back({names.demangle(name), {}, 0, static_cast<std::uint32_t>(offset), frame_quality::symtab, false});
  return true;
}

// The DWARF frames at `address`, innermost first: the inlined calls holding it, then the function
// they are inlined into; false when no CU or function covers it.
inline bool dwarf_frames(module_session& session, std::uintptr_t address, std::vector<symbolized_frame>& out, name_store& names) {
  if (!session.dwarf_indexed) index_compile_units(session);
  if (session.dwarf == nullptr) return false;
  const Dwarf_Addr at = address - session.dwarf_bias;
  const function_range* cu_range = find_range(session.cu_ranges, at);
  Dwarf_Die cu;
  if (cu_range == nullptr || dwarf_offdie(session.dwarf, cu_range->die_offset, &cu) == nullptr) return false;
  const function_range* function = find_range(cu_index_of(session, cu).functions, at);
  Dwarf_Die subprogram;
  if (function == nullptr || dwarf_offdie(session.dwarf, function->die_offset, &subprogram) == nullptr) {
    // A CU whose line table covers the address but that holds no DIE for its function (clang 14's
    // -gline-tables-only under -fsanitize=address drops some): the ELF symbol names the function,
    // the line table still places it, as addr2line would.
    if (!symtab_frame(session.module, address, out, names)) return false;
    line_at(cu, at, out.back(), names);
    return true;
  }

  // The concrete chain from the function down to the innermost inlined call holding `at`.
  auto [tree, new_tree] = session.inline_trees.try_emplace(function->die_offset);
  if (new_tree) index_inlined_calls(subprogram, tree->second);
  std::uint32_t innermost = no_scope, deepest = 0;
  for (const inlined_range& range : tree->second.ranges) {
    if (range.start <= at && at < range.end && tree->second.calls[range.call].depth > deepest) {
      innermost = range.call;
      deepest = tree->second.calls[range.call].depth;
    }
  }
  std::vector<Dwarf_Die> chain(deepest + 1, subprogram);  // outermost first
  for (std::uint32_t call = innermost; call != no_scope; call = tree->second.calls[call].caller) {
    if (dwarf_offdie(session.dwarf, tree->second.calls[call].die_offset, &chain[tree->second.calls[call].depth]) == nullptr) {
      return false;
    }
  }
  symbolized_frame row;
  line_at(cu, at, row, names);
  std::string_view file = row.file;
  int line = static_cast<int>(row.line);
  for (auto die = chain.rbegin(); die != chain.rend(); ++die) {
    const int tag = dwarf_tag(&*die);
    if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram) continue;
    std::string_view name = linkage_name(&*die, names);
    Dwarf_Addr base = 0, entry = 0, first_end = 0;
    if (name.empty() && tag == DW_TAG_subprogram && dwarf_ranges(&*die, 0, &base, &entry, &first_end) > 0) {
      // GCC gives internal-linkage C++ functions no linkage name; the mangled ELF symbol that
      // starts exactly at the function's entry (its first range: a .cold part's own symbol
      // is a derived "foo.cold") has it. A C function keeps its DWARF name, not an alias.
      GElf_Off offset = 0;
      GElf_Sym sym{};
      const char* symbol = dwfl_module_addrinfo(session.module, entry + session.dwarf_bias, &offset, &sym, nullptr, nullptr, nullptr);
      if (symbol != nullptr && offset == 0 && std::string_view(symbol).starts_with("_Z")) name = names.demangle(symbol);
    }
    if (name.empty()) name = qualified_dwarf_name(session, &*die, names);
    out.push_back({name, file, static_cast<std::uint32_t>(line), 0, frame_quality::dwarf,
                   tag == DW_TAG_inlined_subroutine});
    if (tag == DW_TAG_subprogram) break;
    // The frame it was inlined into is at the call site, which the inlined DIE records.
    Dwarf_Attribute attr;
    Dwarf_Word call_file = 0, call_line = 0;
    file = {};
    line = 0;
    Dwarf_Files* files = nullptr;
    std::size_t file_count = 0;
    if (dwarf_formudata(dwarf_attr(&*die, DW_AT_call_file, &attr), &call_file) == 0 &&
        dwarf_getsrcfiles(&cu, &files, &file_count) == 0 && call_file < file_count) {
      file = source_path(cu, dwarf_filesrc(files, call_file, nullptr, nullptr), names);
    }
    if (dwarf_formudata(dwarf_attr(&*die, DW_AT_call_line, &attr), &call_line) == 0 && call_line <= INT_MAX) {
      line = static_cast<int>(call_line);
    }
  }
  return !out.empty();
}

// Never fails: without a usable file or symbol the frame is "<module file name>+0x<offset>".
inline void symbolize_in_module(const module_info& info, module_session& session, std::uintptr_t address,
                                std::vector<symbolized_frame>& out, name_store& names) {
  if (session.module != nullptr && (dwarf_frames(session, address, out, names) || symtab_frame(session.module, address, out, names))) return;
  std::string name(info.file_name());
  name += "+0x";
  append_hex(name, address - info.bias);
  out.push_back({names.intern(name), {}, 0, 0, frame_quality::module_offset, false});
}

}  // namespace spanprof::detail
