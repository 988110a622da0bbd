// Which sanitizer, if any, this test binary was built with. g++ defines __SANITIZE_ADDRESS__ /
// __SANITIZE_THREAD__; clang++ 14 answers through __has_feature instead, so both are asked.
// Tests scale their workloads down (sanitized binaries run several times slower) and skip the
// checks a sanitizer invalidates (TSan defers asynchronous signals; both own the allocator).
// The macros are for code that must not even be compiled in a sanitized build (allocator
// replacements); everything else uses the constants.
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define SPANPROF_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPANPROF_TEST_ASAN 1
#endif
#endif
#if !defined(SPANPROF_TEST_ASAN)
#define SPANPROF_TEST_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define SPANPROF_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SPANPROF_TEST_TSAN 1
#endif
#endif
#if !defined(SPANPROF_TEST_TSAN)
#define SPANPROF_TEST_TSAN 0
#endif

namespace spanprof_test {

inline constexpr bool under_asan = SPANPROF_TEST_ASAN == 1;
inline constexpr bool under_tsan = SPANPROF_TEST_TSAN == 1;
inline constexpr bool under_sanitizer = under_asan || under_tsan;
// "ASan", "TSan" or "plain", for messages.
inline constexpr const char* build_kind_name = under_asan ? "ASan" : under_tsan ? "TSan" : "plain";

}  // namespace spanprof_test
