// Replaces every global operator new/delete with malloc/free-based versions that count the
// allocations of the calling thread, and can run a one-shot hook at a thread's next allocation.
//
// Include from exactly ONE translation unit of a test program: it defines the replaceable
// allocation functions ([new.delete]), which a program may define only once.
//
// Counters are thread_local with constant initialization (no dynamic TLS init, so reading them
// inside operator new cannot itself allocate): the collector thread allocates legitimately while
// a test measures an application thread. All variants are replaced together, including the
// aligned and nothrow ones, so that no allocation bypasses the count and every pointer is freed
// by the same allocator that made it (ASan checks new/delete pairing; with all of them replaced
// it only sees malloc/free, which it intercepts).
//
// TSan's runtime (libclang_rt.tsan_cxx) defines operator new/delete itself, strongly, so a
// replacement does not link there: under TSan nothing is replaced, SPANPROF_TEST_COUNTING_NEW is
// 0, and the tests that need the counts or the hook skip with a message. ASan links fine (its
// operators are only pulled in when the program does not define them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "build_kind.hpp"

#if SPANPROF_TEST_TSAN
#define SPANPROF_TEST_COUNTING_NEW 0
#else
#define SPANPROF_TEST_COUNTING_NEW 1
#endif

namespace spanprof_test {

inline thread_local constinit std::uint64_t t_allocations = 0;
inline thread_local constinit std::uint64_t t_deallocations = 0;
// Called (once, then cleared) at the calling thread's next allocation, before it is made.
using allocation_hook = void (*)();
inline thread_local constinit allocation_hook t_before_next_allocation = nullptr;

// Allocations made by the calling thread so far.
inline std::uint64_t thread_allocations() noexcept { return t_allocations; }

namespace replaced_new {

inline void* allocate(std::size_t size, std::size_t alignment) noexcept {
  ++t_allocations;
  if (const allocation_hook hook = t_before_next_allocation) {
    t_before_next_allocation = nullptr;
    hook();
  }
  if (size == 0) size = 1;
  if (alignment <= alignof(std::max_align_t)) return std::malloc(size);
  void* p = nullptr;
  if (alignment < sizeof(void*)) alignment = sizeof(void*);
  return ::posix_memalign(&p, alignment, size) == 0 ? p : nullptr;
}

inline void* allocate_or_throw(std::size_t size, std::size_t alignment) {
  void* p = allocate(size, alignment);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

inline void release(void* p) noexcept {
  if (p == nullptr) return;
  ++t_deallocations;
  std::free(p);
}

}  // namespace replaced_new
}  // namespace spanprof_test

#if SPANPROF_TEST_COUNTING_NEW

// NOLINTBEGIN(misc-new-delete-overloads)
void* operator new(std::size_t size) { return spanprof_test::replaced_new::allocate_or_throw(size, 0); }
void* operator new[](std::size_t size) { return spanprof_test::replaced_new::allocate_or_throw(size, 0); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept {
  return spanprof_test::replaced_new::allocate(size, 0);
}
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept {
  return spanprof_test::replaced_new::allocate(size, 0);
}
void* operator new(std::size_t size, std::align_val_t al) {
  return spanprof_test::replaced_new::allocate_or_throw(size, static_cast<std::size_t>(al));
}
void* operator new[](std::size_t size, std::align_val_t al) {
  return spanprof_test::replaced_new::allocate_or_throw(size, static_cast<std::size_t>(al));
}
void* operator new(std::size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return spanprof_test::replaced_new::allocate(size, static_cast<std::size_t>(al));
}
void* operator new[](std::size_t size, std::align_val_t al, const std::nothrow_t&) noexcept {
  return spanprof_test::replaced_new::allocate(size, static_cast<std::size_t>(al));
}

void operator delete(void* p) noexcept { spanprof_test::replaced_new::release(p); }
void operator delete[](void* p) noexcept { spanprof_test::replaced_new::release(p); }
void operator delete(void* p, std::size_t) noexcept { spanprof_test::replaced_new::release(p); }
void operator delete[](void* p, std::size_t) noexcept { spanprof_test::replaced_new::release(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { spanprof_test::replaced_new::release(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { spanprof_test::replaced_new::release(p); }
void operator delete(void* p, std::align_val_t) noexcept { spanprof_test::replaced_new::release(p); }
void operator delete[](void* p, std::align_val_t) noexcept { spanprof_test::replaced_new::release(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { spanprof_test::replaced_new::release(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { spanprof_test::replaced_new::release(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  spanprof_test::replaced_new::release(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  spanprof_test::replaced_new::release(p);
}
// NOLINTEND(misc-new-delete-overloads)
#endif  // SPANPROF_TEST_COUNTING_NEW
