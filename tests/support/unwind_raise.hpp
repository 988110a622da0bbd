// Raises SIGUSR2 on the calling thread with a tgkill issued from the calling function itself
// (not libc's wrapper), so the signal is delivered on the syscall's return and the interrupted
// pc lies inside that function. Shared by unwind_test.cpp and unwind_nofp.cpp.
#pragma once

#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SPANPROF_TEST_RAISE_SIGUSR2_HERE()                                                        \
  do {                                                                                            \
    const long spanprof_tid = ::syscall(SYS_gettid);                                             \
    long spanprof_result = 0;                                                                     \
    asm volatile("syscall"                                                                        \
                 : "=a"(spanprof_result)                                                          \
                 : "a"(static_cast<long>(SYS_tgkill)), "D"(static_cast<long>(::getpid())),        \
                   "S"(spanprof_tid), "d"(static_cast<long>(SIGUSR2))                             \
                 : "rcx", "r11", "memory");                                                       \
    (void)spanprof_result;                                                                        \
  } while (0)
