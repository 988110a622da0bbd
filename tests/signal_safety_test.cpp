// Async-signal safety of the SIGPROF handler, proven by tests: sampling at 1 kHz while threads
// hammer malloc/free, std::mutex, exceptions, dlopen/dlclose, fork and blocking syscalls; errno
// preserved across handlers; no heap allocation inside the handler (counting malloc).
#include <doctest/doctest.h>
#include <spanprof/spanprof.hpp>
#include <spanprof/detail/sample/sampler.hpp>

#include <dlfcn.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/sampler_support.hpp"
#include "support/build_kind.hpp"
#include "support/test_support.hpp"

using namespace spanprof_test;

constexpr bool sanitized = under_sanitizer;
constexpr int scale = sanitized ? 5 : 1;  // sanitized binaries run several times slower: fewer iterations

// ---- counting allocator (not under ASan/TSan: they own malloc) --------------------------------

std::atomic<std::uint64_t> g_allocations_in_handler{0};
std::atomic<std::uint64_t> g_allocations_total{0};

#if !SPANPROF_TEST_ASAN && !SPANPROF_TEST_TSAN
extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void __libc_free(void*);
void* __libc_memalign(std::size_t, std::size_t);
}

namespace {
// ASYNC-SIGNAL-SAFE: one initial-exec TLS load and relaxed atomics.
inline void note_allocation() noexcept {
  g_allocations_total.fetch_add(1, std::memory_order_relaxed);
  const spanprof::detail::thread_sampler* ts = spanprof::detail::t_sampler;
  if (ts != nullptr && ts->in_handler != 0) g_allocations_in_handler.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

extern "C" {
void* malloc(std::size_t n) {
  note_allocation();
  return __libc_malloc(n);
}
void* calloc(std::size_t n, std::size_t size) {
  note_allocation();
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t n) {
  note_allocation();
  return __libc_realloc(p, n);
}
void free(void* p) {
  note_allocation();
  __libc_free(p);
}
void* aligned_alloc(std::size_t alignment, std::size_t n) {
  note_allocation();
  return __libc_memalign(alignment, n);
}
void* memalign(std::size_t alignment, std::size_t n) {
  note_allocation();
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, std::size_t alignment, std::size_t n) {
  note_allocation();
  void* p = __libc_memalign(alignment, n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
}

void* operator new(std::size_t n) {
  if (void* p = malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept { return malloc(n == 0 ? 1 : n); }
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept { return malloc(n == 0 ? 1 : n); }
void* operator new(std::size_t n, std::align_val_t a) {
  if (void* p = aligned_alloc(static_cast<std::size_t>(a), (n + static_cast<std::size_t>(a) - 1) & ~(static_cast<std::size_t>(a) - 1))) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n, std::align_val_t a) { return operator new(n, a); }
void operator delete(void* p) noexcept { free(p); }
void operator delete[](void* p) noexcept { free(p); }
void operator delete(void* p, std::size_t) noexcept { free(p); }
void operator delete[](void* p, std::size_t) noexcept { free(p); }
void operator delete(void* p, std::align_val_t) noexcept { free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { free(p); }
#endif

namespace {

[[gnu::noinline]] int recurse(int depth) {
  if (depth == 0) {
    burn_cpu(1'000'000);
    return 0;
  }
  const int r = recurse(depth - 1) + 1;
  asm volatile("" ::: "memory");
  return r;
}

}  // namespace

namespace {

// Eight threads, each inside transactions, for a bounded number of iterations. `with_dlopen`
// false replaces the dlopen/dlclose thread with a second malloc/free one.
void hammer(spanprof::unwinder unwinder, bool with_dlopen) {
  temp_dir dir;
  spanprof::config cfg = sampling_config(dir, spanprof::sampling_mode::wall, 1000);
  cfg.formats = spanprof::output_format::none;
  cfg.stack_unwinder = unwinder;
  spanprof::counters after{};
  std::atomic<int> bad_children{0};
  std::atomic<int> dlopen_failures{0};
  {
    session s(cfg);
    std::vector<std::thread> threads;
    std::mutex shared_mutex;
    long shared_counter = 0;
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    constexpr int pipe_bytes = 20'000 / scale;

    auto malloc_free = [] {
      for (int round = 0; round < 200 / scale; ++round) {
        SPANPROF_TRANSACTION("malloc");
        std::vector<void*> blocks;
        for (int i = 0; i < 1000; ++i) {
          blocks.push_back(std::malloc(static_cast<std::size_t>(16 + (i * 37) % 4000)));
          if (i % 3 == 0) {
            std::free(blocks.back());
            blocks.pop_back();
          }
        }
        for (void* p : blocks) std::free(p);
      }
    };
    threads.emplace_back(malloc_free);
    for (int t = 0; t < 2; ++t) {  // std::mutex, contended by two threads
      threads.emplace_back([&] {
        for (int round = 0; round < 200 / scale; ++round) {
          SPANPROF_TRANSACTION("mutex");
          for (int i = 0; i < 1000; ++i) {
            std::lock_guard lock(shared_mutex);
            ++shared_counter;
          }
        }
      });
    }
    threads.emplace_back([] {  // exceptions
      int caught = 0;
      for (int round = 0; round < 100 / scale; ++round) {
        SPANPROF_TRANSACTION("exceptions");
        for (int i = 0; i < 100; ++i) {
          try {
            if (recurse(i % 8) >= 0) throw std::runtime_error("hammer");
          } catch (const std::runtime_error&) {
            ++caught;
          }
        }
      }
      CHECK(caught == (100 / scale) * 100);
    });
    if (!with_dlopen) threads.emplace_back(malloc_free);
    if (with_dlopen) threads.emplace_back([&] {  // dlopen/dlclose
      for (int i = 0; i < 300 / scale; ++i) {
        SPANPROF_TRANSACTION("dlopen");
        void* handle = ::dlopen("libz.so.1", RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr) handle = ::dlopen("libm.so.6", RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr) {
          dlopen_failures.fetch_add(1);
          continue;
        }
        ::dlclose(handle);
      }
    });
    threads.emplace_back([&] {  // fork + _exit
      for (int i = 0; i < 60 / scale; ++i) {
        SPANPROF_TRANSACTION("fork");
        const pid_t pid = ::fork();
        if (pid == 0) {
          void* p = std::malloc(64);
          std::free(p);
          ::_exit(0);
        }
        if (pid < 0) {
          bad_children.fetch_add(1);
          continue;
        }
        int status = 0;
        pid_t waited = -1;
        do {
          waited = ::waitpid(pid, &status, 0);
        } while (waited < 0 && errno == EINTR);
        if (waited != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) bad_children.fetch_add(1);
      }
    });
    threads.emplace_back([&] {  // blocking read on a pipe (a writer feeds it)
      SPANPROF_TRANSACTION("read");
      int got = 0;
      while (got < pipe_bytes) {
        char buffer[64];
        const ssize_t n = ::read(fds[0], buffer, sizeof buffer);
        if (n > 0) got += static_cast<int>(n);
        else if (n < 0 && errno != EINTR) break;
      }
      CHECK(got == pipe_bytes);
    });
    threads.emplace_back([] {  // poll with timeouts (EINTR expected in wall mode)
      for (int round = 0; round < 20; ++round) {
        SPANPROF_TRANSACTION("poll");
        for (int i = 0; i < 10; ++i) ::poll(nullptr, 0, 1);
      }
    });
    // The pipe's writer: not one of the eight, outside any transaction.
    std::thread writer([&] {
      for (int sent = 0; sent < pipe_bytes;) {
        const ssize_t n = ::write(fds[1], "0123456789abcdef", 16 < pipe_bytes - sent ? 16 : static_cast<std::size_t>(pipe_bytes - sent));
        if (n > 0) sent += static_cast<int>(n);
        else if (n < 0 && errno != EINTR) break;
      }
    });
    REQUIRE(threads.size() == 8);
    for (auto& t : threads) t.join();
    writer.join();
    ::close(fds[0]);
    ::close(fds[1]);
    CHECK(shared_counter == 2L * (200 / scale) * 1000);
    after = spanprof::stats();
  }
  MESSAGE("hammer: ", after.samples_taken, " samples taken, ", after.samples_dropped, " dropped, ",
          after.samples_truncated, " truncated, ", after.samples_reentrant, " reentrant");
  CHECK(after.samples_taken > 0);
  CHECK(bad_children.load() == 0);
  CHECK(dlopen_failures.load() == 0);
}

}  // namespace

TEST_CASE("signal_safety: frame pointers — 1 kHz sampling while 8 threads hammer malloc, mutex, exceptions, dlopen, fork, blocking syscalls") {
  hammer(spanprof::unwinder::frame_pointers, /*with_dlopen=*/true);
}

// The DWARF unwinder only copies registers and stack in the handler. Unwinding there instead
// (libunwind's unw_backtrace, which an earlier version used) deadlocked in this very test: on a
// cache miss it takes the loader's lock, which dlclose() on another thread holds while it waits
// for the malloc arena lock of the thread the signal interrupted.
TEST_CASE("signal_safety: dwarf — 1 kHz sampling while 8 threads hammer malloc, mutex, exceptions, dlopen, fork, blocking syscalls") {
  hammer(spanprof::unwinder::dwarf, /*with_dlopen=*/true);
}

TEST_CASE("signal_safety: errno is preserved across the handler") {
  for (const spanprof::sampling_mode mode : {spanprof::sampling_mode::wall, spanprof::sampling_mode::cpu}) {
    CAPTURE(mode_name(mode));
    temp_dir dir;
    spanprof::config cfg = sampling_config(dir, mode, 1000);
    cfg.formats = spanprof::output_format::none;
    std::uint64_t grown = 0;
    long iterations = 0, changed = 0;
    {
      session s(cfg);
      std::thread worker([&] {
        SPANPROF_TRANSACTION("errno");
        const std::uint64_t start = spanprof::stats().samples_taken;
        errno = 12345;
        // Bounded: at most ~10 s of spinning even if no sample ever came.
        for (; iterations < 2'000'000 && spanprof::stats().samples_taken - start < 20; ++iterations) {
          for (int spin = 0; spin < 2000; ++spin) asm volatile("" ::: "memory");
          if (errno != 12345) {
            ++changed;
            errno = 12345;
          }
        }
        grown = spanprof::stats().samples_taken - start;
      });
      worker.join();
    }
    MESSAGE(mode_name(mode), ": ", grown, " samples while errno was set, over ", iterations, " checks");
    CHECK(grown >= 20);
    CHECK(changed == 0);
  }
}

TEST_CASE("signal_safety: the handler never allocates (counting malloc/calloc/realloc/free/operator new)") {
  if (sanitized) {
    MESSAGE("skipped under ASan/TSan: the sanitizer owns malloc, so the test cannot interpose it");
    return;
  }
  temp_dir dir;
  spanprof::config cfg = sampling_config(dir, spanprof::sampling_mode::wall, 1000);
  spanprof::counters after{};
  const std::uint64_t total_before = g_allocations_total.load();
  {
    session s(cfg);
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
      threads.emplace_back([t] {
        const std::int64_t start = thread_cpu_ns();
        while (spanprof::stats().samples_taken < 300 && thread_cpu_ns() - start < 5'000'000'000) {
          SPANPROF_TRANSACTION("no-alloc");
          SPANPROF_SPAN("work", "deep");
          recurse(5 + 20 * t);  // different depths
          std::string s(100, 'x');  // the thread itself allocates, outside the handler
          (void)s;
        }
      });
    }
    for (auto& t : threads) t.join();
    after = spanprof::stats();
  }
  MESSAGE("no-alloc: ", after.samples_taken, " samples; ", g_allocations_total.load() - total_before,
          " allocator calls in the process meanwhile, ", g_allocations_in_handler.load(), " inside the handler");
  CHECK(after.samples_taken >= 300);
  CHECK(g_allocations_total.load() > total_before);  // the interposition is live
  CHECK(g_allocations_in_handler.load() == 0);
}
