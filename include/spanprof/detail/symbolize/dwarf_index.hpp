// spanprof: the indexes that find an address's function and inlined-call chain in a module's
// DWARF without walking DIEs per address — the code ranges of every CU, per CU its functions and
// the scopes around each subprogram DIE, per function its inlined calls — and the walks that
// build them, once each, on first use.
//
// NOT ASYNC-SIGNAL-SAFE: allocates and reads DWARF through libdw. Collector thread only.
#pragma once

#include <dwarf.h>
#include <elfutils/libdw.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace spanprof::detail {

struct function_range {
  Dwarf_Addr start, end;
  Dwarf_Off die_offset;
};
inline constexpr std::uint32_t no_scope = UINT32_MAX;  // directly in the CU
struct die_scope {
  Dwarf_Off die_offset;
  std::uint32_t scope;  // index into cu_index::scopes of the enclosing namespace/class/function
};
// A function's inlined calls with their code ranges and nesting: built on the function's
// first address, so each further address finds its chain without walking DIEs (clang writes
// no DW_AT_sibling: each walk would re-read every subtree it steps over).
struct inlined_call {
  Dwarf_Off die_offset;
  std::uint32_t caller;  // index of the enclosing inlined call; no_scope: the function itself
  std::uint32_t depth;
};
struct inlined_range {
  Dwarf_Addr start, end;
  std::uint32_t call;
};
struct inline_tree {
  std::vector<inlined_call> calls;
  std::vector<inlined_range> ranges;
};
// One CU's functions, and where each subprogram DIE sits (for names DWARF gives unqualified).
struct cu_index {
  std::vector<function_range> functions;  // by start address
  std::vector<die_scope> scopes;          // namespaces, classes, functions entered; DIE order
  std::vector<die_scope> subprograms;     // every subprogram DIE entered; DIE (= offset) order
};

inline void add_ranges(Dwarf_Die* die, std::vector<function_range>& into) {
  Dwarf_Addr base = 0, start = 0, end = 0;
  for (ptrdiff_t offset = 0; (offset = dwarf_ranges(die, offset, &base, &start, &end)) > 0;) {
    // Code discarded at link time keeps its DWARF with address 0 (or a -1/-2 tombstone).
    if (start != 0 && start < end) into.push_back({start, end, dwarf_dieoffset(die)});
  }
}
inline void sort_ranges(std::vector<function_range>& ranges) {
  std::sort(ranges.begin(), ranges.end(), [](const function_range& lhs, const function_range& rhs) { return lhs.start < rhs.start; });
}
// Ranges do not overlap in sound DWARF; a few steps back tolerate the odd exception.
inline const function_range* find_range(const std::vector<function_range>& ranges, Dwarf_Addr at) noexcept {
  auto it = std::upper_bound(ranges.begin(), ranges.end(), at, [](Dwarf_Addr address, const function_range& range) { return address < range.start; });
  for (int steps = 0; it != ranges.begin() && steps < 8; ++steps) {
    --it;
    if (at < it->end) return &*it;
  }
  return nullptr;
}

// Once per CU, on its first use. Code-bearing subprograms sit at the top, in namespaces, and
// (GCC) in local classes inside functions and their blocks; only those DIEs are entered. The
// rest (inlined-call trees, call sites, variables, parameters, enumerations) is most of a CU
// and holds no function definitions. Depth first, children before siblings: DIE order.
inline void index_cu(Dwarf_Die& cu, cu_index& index) {
  std::vector<std::pair<Dwarf_Die, std::uint32_t>> stack;  // a DIE and its enclosing scope
  Dwarf_Die child;
  if (dwarf_child(&cu, &child) == 0) stack.emplace_back(child, no_scope);
  while (!stack.empty()) {
    auto [die, scope] = stack.back();
    stack.pop_back();
    Dwarf_Die next;
    if (dwarf_siblingof(&die, &next) == 0) stack.emplace_back(next, scope);
    const int tag = dwarf_tag(&die);
    if (tag == DW_TAG_subprogram) {
      add_ranges(&die, index.functions);
      index.subprograms.push_back({dwarf_dieoffset(&die), scope});
    }
    const bool names_a_scope = tag == DW_TAG_subprogram || tag == DW_TAG_namespace || tag == DW_TAG_class_type ||
                               tag == DW_TAG_structure_type || tag == DW_TAG_union_type;
    if ((names_a_scope || tag == DW_TAG_lexical_block) && dwarf_child(&die, &next) == 0) {
      if (names_a_scope) {
        index.scopes.push_back({dwarf_dieoffset(&die), scope});
        scope = static_cast<std::uint32_t>(index.scopes.size() - 1);
      }
      stack.emplace_back(next, scope);
    }
  }
  sort_ranges(index.functions);
}

// Every inlined call in the function, through the blocks around them. Once per function.
inline void index_inlined_calls(Dwarf_Die& subprogram, inline_tree& tree) {
  std::vector<std::pair<Dwarf_Die, std::uint32_t>> stack;  // a DIE and its enclosing inlined call
  Dwarf_Die child;
  if (dwarf_child(&subprogram, &child) == 0) stack.emplace_back(child, no_scope);
  while (!stack.empty()) {
    auto [die, caller] = stack.back();
    stack.pop_back();
    Dwarf_Die next;
    if (dwarf_siblingof(&die, &next) == 0) stack.emplace_back(next, caller);
    const int tag = dwarf_tag(&die);
    if (tag == DW_TAG_inlined_subroutine) {
      const auto call = static_cast<std::uint32_t>(tree.calls.size());
      tree.calls.push_back({dwarf_dieoffset(&die), caller, caller == no_scope ? 1 : tree.calls[caller].depth + 1});
      Dwarf_Addr base = 0, start = 0, end = 0;
      for (ptrdiff_t offset = 0; (offset = dwarf_ranges(&die, offset, &base, &start, &end)) > 0;) {
        if (start < end) tree.ranges.push_back({start, end, call});
      }
      caller = call;
    } else if (tag != DW_TAG_lexical_block && tag != DW_TAG_try_block && tag != DW_TAG_catch_block) {
      continue;  // parameters, variables, call sites: no inlined calls inside
    }
    if (dwarf_child(&die, &next) == 0) stack.emplace_back(next, caller);
  }
}

// Through abstract_origin and specification to the DIE that declares it (bounded: corrupt
// DWARF may loop).
inline Dwarf_Die declaration_of(Dwarf_Die die) {
  for (int hops = 0; hops < 8; ++hops) {
    Dwarf_Attribute attr;
    Dwarf_Die next;
    if (dwarf_formref_die(dwarf_attr(&die, DW_AT_abstract_origin, &attr), &next) == nullptr &&
        dwarf_formref_die(dwarf_attr(&die, DW_AT_specification, &attr), &next) == nullptr) {
      break;
    }
    die = next;
  }
  return die;
}

}  // namespace spanprof::detail
