// spanprof: the symbolized frame — what one address turned out to be (function, file:line, how
// sure), and resolved_address, the run of frames one sampled address gives. Writers read these
// types; they need none of libdw, so this file includes none of it.
//
// NOT ASYNC-SIGNAL-SAFE (types only; they hold views into the symbolizer's strings).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace spanprof::detail {

struct module_info;  // module_map.hpp

enum class frame_quality : std::uint8_t {
  dwarf,          // function, file and line from DWARF; inlined frames included
  symtab,         // ELF symbol table (.symtab or .dynsym): function and symbol_offset; file and
                  // line only when a line table covers the address but no DWARF function does
  module_offset,  // no symbol covers the address: function is "<module file name>+0x<offset>"
  unknown,        // no module known to occupy the address at the sample's time
};

struct symbolized_frame {
  std::string_view function;       // demangled; see frame_quality for what it holds otherwise
  std::string_view file;           // full path as the line table names it; empty when unknown
  std::uint32_t line = 0;          // 0 when unknown: never guessed
  std::uint32_t symbol_offset = 0; // symtab frames: looked-up address minus the symbol's start
  frame_quality quality = frame_quality::unknown;
  bool inlined = false;            // an inlined instance: the next frame is the function it was inlined into
};

struct resolved_address {
  std::uintptr_t instruction_addr = 0;  // as sampled
  std::uintptr_t relative_addr = 0;     // instruction_addr - module bias (addr2line's address); 0 without a module
  const module_info* module = nullptr;  // null for unknown frames
  std::span<const symbolized_frame> frames;  // innermost first, never empty
};

}  // namespace spanprof::detail
