// The shared library symbolize_test dlopens (built as is, and as objcopy'd copies without debug
// info, without any symbol table, and with its DWARF split off behind a .gnu_debuglink).
// Each entry point returns a return address inside a known function of this library, and
// the line of that call, so the test can check what the symbolizer says about it.
#include <cstdint>

namespace {

// Its caller's return address: a point inside the caller, right after this call.
[[gnu::noinline]] std::uintptr_t return_address_in_caller() {
  return reinterpret_cast<std::uintptr_t>(__builtin_return_address(0));
}

// An exported symbol without a size (as assembly code without .size has), directly before
// hidden_call_site in a section of their own: in the --strip-all copy it is the nearest symbol
// below hidden_call_site's code, and must not lend it its name. Both compilers emit
// file-scope asm ahead of the functions, so it comes first in that section.
asm(".pushsection .text.spanprof_sizeless,\"ax\",@progbits\n"
    ".globl spanprof_symbolize_lib_sizeless\n"
    ".type spanprof_symbolize_lib_sizeless, @function\n"
    "spanprof_symbolize_lib_sizeless:\n"
    "  ret\n"
    ".popsection\n");

// Internal linkage: only in .symtab, so a --strip-all copy has no symbol for it at all.
[[gnu::noinline, gnu::section(".text.spanprof_sizeless")]] std::uintptr_t hidden_call_site(int* call_line) {
  *call_line = __LINE__ + 1;
  std::uintptr_t address = return_address_in_caller();
  asm volatile("" : "+r"(address));  // code after the call: it cannot become a tail call
  return address;
}

}  // namespace

namespace spanprof_symbolize_lib {

// Exported: in .dynsym too, so even the --strip-all copy names it.
[[gnu::noinline]] std::uintptr_t exported_call_site(int* call_line) {
  *call_line = __LINE__ + 1;
  std::uintptr_t address = return_address_in_caller();
  asm volatile("" : "+r"(address));
  return address;
}

}  // namespace spanprof_symbolize_lib

extern "C" [[gnu::visibility("default")]] std::uintptr_t spanprof_symbolize_lib_exported(int* call_line) {
  return spanprof_symbolize_lib::exported_call_site(call_line);
}

extern "C" [[gnu::visibility("default")]] std::uintptr_t spanprof_symbolize_lib_hidden(int* call_line) {
  return hidden_call_site(call_line);
}
