// unwind.hpp and unwind_dwarf.hpp: the frame-pointer walk and the DWARF unwinder (registers
// and stack copied in the handler, unwound afterwards), from the ucontext of a real signal that
// interrupts a chain of noinline functions built with -fno-omit-frame-pointer (meson sets
// cpp_args and export_dynamic so dladdr names them), and a chain built without frame pointers
// (unwind_nofp.cpp); garbage frame chains; find_anchor; truncation.
#include <doctest/doctest.h>
#include <spanprof/detail/sample/sampler.hpp>
#include <spanprof/detail/sample/frame_pointer_walk.hpp>
#include <spanprof/detail/sample/stack_copy.hpp>
#include <spanprof/detail/sample/unwind_dwarf.hpp>

#include <dlfcn.h>
#include <signal.h>
#include <signal.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include "support/unwind_raise.hpp"
#include "support/build_kind.hpp"

using namespace spanprof::detail;

namespace {

struct captured {
  std::vector<std::uintptr_t> pcs, frames;
  captured_stack info;
};

std::uintptr_t g_frame_of_level2 = 0;  // __builtin_frame_address(0) inside level 2

captured g_fp, g_dwarf;
std::size_t g_max_depth = 64;
stack_bounds g_bounds;
sample_ring* g_raw_ring = nullptr;  // the handler's raw-stack copy lands here, as in sampling

// TSan defers asynchronous signals to its next interception point and hands the handler a copy
// of an older context: a signal taken inside level 1 is not handled there.
using spanprof_test::under_tsan;
#define SKIP_UNDER_TSAN()                                                                          \
  if (under_tsan) {                                                                                \
    MESSAGE("skipped under TSan: it defers signals, so the handler does not run inside level 1"); \
    return;                                                                                        \
  }

// Runs as a signal handler: both unwinders start from the interrupted context, as in sampling.
void unwind_in_handler(int, siginfo_t*, void* raw) {
  const auto& uc = *static_cast<ucontext_t*>(raw);
  g_fp.info = unwind_frame_pointers(uc, g_bounds, g_fp.pcs.data(), g_fp.frames.data(), g_max_depth);
  if (g_raw_ring == nullptr) return;
  std::uintptr_t prefix[raw_stack_layout::prefix_words];
  const std::uintptr_t* stack_words = nullptr;
  std::size_t stack_word_count = 0;
  capture_raw_stack(uc, g_bounds, 0, 16 * 1024, prefix, stack_words, stack_word_count);
  sample_record header{};
  header.tid = 1;
  header.flags = sample_flag_raw_stack;
  (void)g_raw_ring->try_push_parts(header, prefix, raw_stack_layout::prefix_words, stack_words, stack_word_count);
}

// Outside the handler, as the collector does: unwind what the handler copied.
void unwind_raw_copy() {
  dwarf_unwinder unwinder;
  unwinder.note_batch_start();
  std::size_t records = 0;
  g_raw_ring->drain([&](const sample_record& r) {
    g_dwarf.info = unwinder.unwind(r, g_dwarf.pcs.data(), g_dwarf.frames.data(), g_max_depth);
    ++records;
  });
  REQUIRE(records == 1);
}

}  // namespace

// unwind_nofp.cpp, built with -fomit-frame-pointer: the same chain with rbp a general register.
extern "C" void spanprof_nofp_level1();
extern "C" void spanprof_nofp_level2();
extern "C" void spanprof_nofp_level3();

namespace {
struct sigaction g_previous_usr2 {};
}  // namespace

// Installs the test handler; the caller then raises SIGUSR2 itself (raise_sigusr2_here).
extern "C" [[gnu::noinline]] void spanprof_unwind_arm() {
  g_bounds = current_thread_stack();
  g_fp.pcs.assign(g_max_depth + 16, 0);
  g_fp.frames.assign(g_max_depth + 16, 0);
  g_dwarf.pcs.assign(g_max_depth + 16, 0);
  g_dwarf.frames.assign(g_max_depth + 16, 0);
  struct sigaction action {};
  action.sa_sigaction = unwind_in_handler;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  sigaction(SIGUSR2, &action, &g_previous_usr2);
}

extern "C" [[gnu::noinline]] void spanprof_unwind_disarm() { sigaction(SIGUSR2, &g_previous_usr2, nullptr); }

extern "C" [[gnu::noinline]] void spanprof_unwind_level1() {
  spanprof_unwind_arm();
  SPANPROF_TEST_RAISE_SIGUSR2_HERE();
  spanprof_unwind_disarm();
  asm volatile("" ::: "memory");
}

extern "C" [[gnu::noinline]] void spanprof_unwind_level2() {
  g_frame_of_level2 = reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0));
  spanprof_unwind_level1();
  asm volatile("" ::: "memory");
}

extern "C" [[gnu::noinline]] void spanprof_unwind_level3() {
  spanprof_unwind_level2();
  asm volatile("" ::: "memory");
}

namespace {

std::string function_of(std::uintptr_t pc) {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(pc), &info) == 0 || info.dli_sname == nullptr) return "?";
  return info.dli_sname;
}

// pc lies inside function `fn` (dladdr's nearest symbol is fn, at fn's address).
bool inside(std::uintptr_t pc, void (*fn)()) {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(pc), &info) == 0) return false;
  return info.dli_saddr == reinterpret_cast<void*>(fn) && pc > reinterpret_cast<std::uintptr_t>(fn);
}

void check_caller_chain(const captured& c, const char* unwinder) {
  INFO(unwinder, ": ", function_of(c.pcs[0]), " <- ", function_of(c.pcs[1]), " <- ", function_of(c.pcs[2]), " <- ",
       function_of(c.pcs[3]));
  REQUIRE(c.info.depth >= 4);
  CHECK(inside(c.pcs[0], spanprof_unwind_level1));  // the interrupted instruction
  CHECK(inside(c.pcs[1], spanprof_unwind_level2));
  CHECK(inside(c.pcs[2], spanprof_unwind_level3));
}

}  // namespace

TEST_CASE("unwind: frame-pointer walk from a signal's ucontext finds the callers") {
  SKIP_UNDER_TSAN();
  g_max_depth = 64;
  spanprof_unwind_level3();
  check_caller_chain(g_fp, "frame pointers");
  // Frame addresses grow towards the callers.
  for (std::size_t k = 1; k < 3; ++k) CHECK(g_fp.frames[k] > g_fp.frames[k - 1]);
  // frames[k] is the rbp of the function running pcs[k]: level 2's is the one it saw itself.
  CHECK(g_fp.frames[1] == g_frame_of_level2);
  CHECK(find_anchor(g_fp.frames.data(), g_fp.info.depth, g_frame_of_level2) == 1);
}

TEST_CASE("unwind: the DWARF unwinder, from the same signal's copy, gives the same caller chain") {
  SKIP_UNDER_TSAN();
  g_max_depth = 64;
  sample_ring ring(256 * 1024);
  g_raw_ring = &ring;
  spanprof_unwind_level3();
  unwind_raw_copy();
  check_caller_chain(g_dwarf, "dwarf");
  // The leaf is the interrupted pc, then the very same return addresses as the frame-pointer
  // walk: neither the handler nor __restore_rt appears.
  for (std::size_t k = 0; k < 3; ++k) {
    CAPTURE(k);
    CHECK(g_dwarf.pcs[k] == g_fp.pcs[k]);
  }
  // Its frame addresses (CFA − 16) equal the rbp values of frames that keep a frame pointer,
  // so a span's anchor is found the same way.
  CHECK(g_dwarf.frames[1] == g_frame_of_level2);
  CHECK(find_anchor(g_dwarf.frames.data(), g_dwarf.info.depth, g_frame_of_level2) == 1);
  // DWARF reaches the outermost frame (libc and the test's main have no frame pointers, so the
  // frame-pointer walk may stop earlier), and says it did.
  CHECK(g_dwarf.info.depth >= g_fp.info.depth);
  CHECK_FALSE(g_dwarf.info.truncated);
  g_raw_ring = nullptr;
}

TEST_CASE("unwind: the DWARF unwinder walks code built without frame pointers") {
  SKIP_UNDER_TSAN();
  g_max_depth = 64;
  sample_ring ring(256 * 1024);
  g_raw_ring = &ring;
  spanprof_nofp_level3();
  unwind_raw_copy();
  INFO("dwarf: ", function_of(g_dwarf.pcs[0]), " <- ", function_of(g_dwarf.pcs[1]), " <- ",
       function_of(g_dwarf.pcs[2]), " <- ", function_of(g_dwarf.pcs[3]));
  REQUIRE(g_dwarf.info.depth >= 4);
  CHECK(inside(g_dwarf.pcs[0], spanprof_nofp_level1));
  CHECK(inside(g_dwarf.pcs[1], spanprof_nofp_level2));
  CHECK(inside(g_dwarf.pcs[2], spanprof_nofp_level3));
  g_raw_ring = nullptr;
}

TEST_CASE("unwind: a stack copy cut short truncates the DWARF walk and says so") {
  SKIP_UNDER_TSAN();
  g_max_depth = 64;
  sample_ring ring(256 * 1024);
  g_raw_ring = &ring;
  spanprof_unwind_level3();
  // Re-push the record with only the first 8 stack words: the walk must stop where the copy
  // ends, flagged, instead of reading beyond it.
  std::vector<std::uintptr_t> payload;
  ring.drain([&](const sample_record& r) { payload.assign(r.pcs(), r.pcs() + r.depth); });
  REQUIRE(payload.size() > raw_stack_layout::prefix_words + 8);
  sample_record header{};
  header.tid = 1;
  header.flags = sample_flag_raw_stack;
  REQUIRE(ring.try_push_parts(header, payload.data(), payload.size(), nullptr, 0));
  unwind_raw_copy();
  const std::size_t full_depth = g_dwarf.info.depth;
  CHECK_FALSE(g_dwarf.info.truncated);
  REQUIRE(ring.try_push_parts(header, payload.data(), raw_stack_layout::prefix_words + 8, nullptr, 0));
  unwind_raw_copy();
  CHECK(g_dwarf.info.truncated);
  CHECK(g_dwarf.info.depth >= 1);
  CHECK(g_dwarf.info.depth < full_depth);
  CHECK(g_dwarf.pcs[0] == g_fp.pcs[0]);
  g_raw_ring = nullptr;
}

TEST_CASE("unwind: max depth truncates and flags it") {
  SKIP_UNDER_TSAN();
  g_max_depth = 2;
  spanprof_unwind_level3();
  CHECK(g_fp.info.depth == 2);
  CHECK(g_fp.info.truncated);
  CHECK(inside(g_fp.pcs[1], spanprof_unwind_level2));
  sample_ring ring(256 * 1024);
  g_raw_ring = &ring;
  spanprof_unwind_level3();
  unwind_raw_copy();
  CHECK(g_dwarf.info.depth == 2);
  CHECK(g_dwarf.info.truncated);
  CHECK(g_dwarf.pcs[0] == g_fp.pcs[0]);
  g_raw_ring = nullptr;
  g_max_depth = 64;
}

namespace {

// A fake stack: frames at word indexes, each [saved rbp][return address].
struct fake_stack {
  alignas(16) std::uintptr_t words[64] = {};
  stack_bounds bounds() const {
    return {reinterpret_cast<std::uintptr_t>(&words[0]), reinterpret_cast<std::uintptr_t>(&words[64])};
  }
  std::uintptr_t at(int i) const { return reinterpret_cast<std::uintptr_t>(&words[i]); }
};

captured_stack walk(std::uintptr_t rip, std::uintptr_t rbp, stack_bounds bounds, std::vector<std::uintptr_t>& pcs,
                    std::size_t max_depth = 16) {
  ucontext_t uc{};
  uc.uc_mcontext.gregs[REG_RIP] = static_cast<greg_t>(rip);
  uc.uc_mcontext.gregs[REG_RBP] = static_cast<greg_t>(rbp);
  pcs.assign(max_depth, 0);
  std::vector<std::uintptr_t> frames(max_depth, 0);
  return unwind_frame_pointers(uc, bounds, pcs.data(), frames.data(), max_depth);
}

}  // namespace

TEST_CASE("unwind: a well-formed fake chain is walked to its end (return address 0)") {
  fake_stack s;
  s.words[4] = s.at(10), s.words[5] = 0x1001;
  s.words[10] = s.at(20), s.words[11] = 0x1002;
  s.words[20] = 0, s.words[21] = 0;  // outermost
  std::vector<std::uintptr_t> pcs;
  const captured_stack c = walk(0x1000, s.at(4), s.bounds(), pcs);
  CHECK(c.depth == 3);
  CHECK_FALSE(c.truncated);
  CHECK(pcs[0] == 0x1000);
  CHECK(pcs[1] == 0x1001);
  CHECK(pcs[2] == 0x1002);
  const captured_stack cut = walk(0x1000, s.at(4), s.bounds(), pcs, 2);
  CHECK(cut.depth == 2);
  CHECK(cut.truncated);
}

TEST_CASE("unwind: garbage rbp stops the walk safely") {
  fake_stack s;
  std::vector<std::uintptr_t> pcs;
  SUBCASE("rbp 0") {
    const captured_stack c = walk(0x1000, 0, s.bounds(), pcs);
    CHECK(c.depth == 1);
    CHECK(pcs[0] == 0x1000);
  }
  SUBCASE("unaligned rbp") {
    const captured_stack c = walk(0x1000, s.at(4) + 3, s.bounds(), pcs);
    CHECK(c.depth == 1);
  }
  SUBCASE("rbp outside the stack (an unmapped address would fault if read)") {
    CHECK(walk(0x1000, 0x10, s.bounds(), pcs).depth == 1);
    CHECK(walk(0x1000, s.at(64), s.bounds(), pcs).depth == 1);    // one past the end
    CHECK(walk(0x1000, s.at(63), s.bounds(), pcs).depth == 1);    // frame straddles the end
    CHECK(walk(0x1000, ~std::uintptr_t{7}, s.bounds(), pcs).depth == 1);  // address + 16 overflows
  }
  SUBCASE("a chain that goes down instead of up stops, keeping the trusted return address") {
    s.words[10] = s.at(2), s.words[11] = 0x2001;
    const captured_stack c = walk(0x1000, s.at(10), s.bounds(), pcs);
    CHECK(c.depth == 2);
    CHECK(pcs[1] == 0x2001);
    CHECK(c.truncated);
  }
  SUBCASE("a chain pointing at itself stops") {
    s.words[10] = s.at(10), s.words[11] = 0x2001;
    const captured_stack c = walk(0x1000, s.at(10), s.bounds(), pcs);
    CHECK(c.depth == 2);
    CHECK(c.truncated);
  }
  SUBCASE("a chain leaving the stack midway stops there") {
    s.words[10] = 0xdead0000, s.words[11] = 0x2001;
    const captured_stack c = walk(0x1000, s.at(10), s.bounds(), pcs);
    CHECK(c.depth == 2);
    CHECK(pcs[1] == 0x2001);
  }
  SUBCASE("max depth 0 writes nothing") {
    std::uintptr_t pc = 0, fp = 0;
    ucontext_t uc{};
    CHECK(unwind_frame_pointers(uc, s.bounds(), &pc, &fp, 0).depth == 0);
  }
}

TEST_CASE("unwind: find_anchor picks the first frame at or above the span's frame address") {
  const std::uintptr_t frames[] = {100, 200, 300, 400};
  CHECK(find_anchor(frames, 4, 0) == anchor_unknown);  // no span frame
  CHECK(find_anchor(frames, 4, 50) == 0);
  CHECK(find_anchor(frames, 4, 100) == 0);
  CHECK(find_anchor(frames, 4, 101) == 1);
  CHECK(find_anchor(frames, 4, 300) == 2);
  CHECK(find_anchor(frames, 4, 400) == 3);
  CHECK(find_anchor(frames, 4, 401) == anchor_unknown);  // never reached (truncated stack)
  CHECK(find_anchor(frames, 2, 300) == anchor_unknown);
}
