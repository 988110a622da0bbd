// A call chain built with -fomit-frame-pointer (tests/meson.build): rbp is a general register
// here, so only the DWARF unwinder can walk through these frames. unwind_test.cpp checks it.
#include "support/unwind_raise.hpp"

extern "C" void spanprof_unwind_arm();
extern "C" void spanprof_unwind_disarm();

// Keeps rbp busy as a general register, so a frame-pointer walk would read garbage.
static volatile long g_sink = 0;

extern "C" [[gnu::noinline]] void spanprof_nofp_level1() {
  spanprof_unwind_arm();
  long a = g_sink, b = g_sink + 1, c = g_sink + 2, d = g_sink + 3, e = g_sink + 4, f = g_sink + 5, g = g_sink + 6;
  SPANPROF_TEST_RAISE_SIGUSR2_HERE();
  g_sink = a + b + c + d + e + f + g;
  spanprof_unwind_disarm();
  asm volatile("" ::: "memory");
}

extern "C" [[gnu::noinline]] void spanprof_nofp_level2() {
  spanprof_nofp_level1();
  asm volatile("" ::: "memory");
}

extern "C" [[gnu::noinline]] void spanprof_nofp_level3() {
  spanprof_nofp_level2();
  asm volatile("" ::: "memory");
}
