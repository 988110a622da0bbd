// The hand-wired fiber API (spanprof.hpp, record/fiber_switch.hpp and fiber_registry.hpp):
// fiber_context + fiber_switch_scope around raw Boost.Context fibers, switched by the scheduler
// or from inside the fiber, abandoned or destroyed with a transaction open; and what the sampler
// and its handler make of a context's stack bounds. Transactions and samples are read back from
// the files written after shutdown(); the switch events and the handler's in_switch rule, which
// no writer shows yet, through spanprof::detail. profiled_fiber is profiled_fiber_test.cpp's.
#include <doctest/doctest.h>
#include <spanprof/spanprof.hpp>
#include <spanprof/detail/record/thread_registry.hpp>
#include <spanprof/detail/engine/runtime.hpp>
#include <spanprof/detail/sample/sampler.hpp>

#include <boost/context/fiber.hpp>
#include <signal.h>
#include <ucontext.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "support/fiber_support.hpp"
#include "support/sampler_support.hpp"
#include "support/test_support.hpp"

using namespace spanprof_test;
using spanprof::sampling_mode;

// ---- fibers wired by hand: fiber_context + fiber_switch_scope -------------------------------

namespace {

namespace bctx = boost::context;

// A hand-written scheduler over raw Boost.Context fibers: each task owns its fiber_context and
// the scheduler makes it the running one around each resume.
struct raw_task {
  spanprof::fiber_context profile;
  bctx::fiber fiber;
};

}  // namespace

TEST_CASE("fiber: wired by hand, the scheduler switching around resume — transactions stay apart") {
  temp_dir dir;
  std::vector<switch_event_copy> events_a;
  int scheduler_tid = 0;
  {
    spanprof::config cfg = config_for(dir);
    cfg.sampling = false;
    session s(cfg);
    std::thread scheduler([&] {
      scheduler_tid = gettid_now();
      raw_task a, b;
      a.fiber = bctx::fiber{[&](bctx::fiber&& main) {
        SPANPROF_TRANSACTION("raw-a");
        for (int i = 0; i < 3; ++i) {
          SPANPROF_SPAN("step", "a" + std::to_string(i));
          main = std::move(main).resume();
        }
        events_a = switches_of(open_record());
        return std::move(main);
      }};
      b.fiber = bctx::fiber{[&](bctx::fiber&& main) {
        SPANPROF_TRANSACTION("raw-b");
        for (int i = 0; i < 3; ++i) {
          SPANPROF_SPAN("step", "b" + std::to_string(i));
          main = std::move(main).resume();
        }
        return std::move(main);
      }};
      SPANPROF_TRANSACTION("scheduler");  // the thread's own: suspended while a task runs
      while (a.fiber || b.fiber) {
        for (raw_task* t : {&a, &b}) {
          if (!t->fiber) continue;
          spanprof::fiber_switch_scope running(t->profile);
          CHECK(t->profile.is_current());
          t->fiber = std::move(t->fiber).resume();
        }
        CHECK_FALSE(a.profile.is_current());
        SPANPROF_SPAN("scheduler", "tick");  // lands on the scheduler's own transaction
      }
    });
    scheduler.join();
  }
  // Task A ran 4 times: 3 suspensions, each followed by a resumption, all on the scheduler.
  REQUIRE(events_a.size() == 6);
  for (std::size_t i = 0; i < events_a.size(); ++i) {
    CHECK(events_a[i].kind == (i % 2 == 0 ? suspend : resume));
    CHECK(events_a[i].tid == static_cast<std::uint32_t>(scheduler_tid));
    if (i > 0) CHECK(events_a[i - 1].t_ticks <= events_a[i].t_ticks);
  }
  const auto txns = read_transactions(dir.path());
  REQUIRE(txns.size() == 3);
  for (const char* name : {"raw-a", "raw-b"}) {
    const json txn = transaction_named(txns, name);
    REQUIRE(manual_spans(txn).size() == 3);
    for (int i = 0; i < 3; ++i) {
      const json span = span_described(txn, std::string(1, name[4]) + std::to_string(i));
      CHECK(span.at("parent_span_id") == root_span_id(txn));
    }
  }
  const json sched = transaction_named(txns, "scheduler");
  CHECK(manual_spans(sched).size() == 4);  // one tick per round, nothing of the tasks'
  for (const json& span : manual_spans(sched)) CHECK(span.at("description") == "tick");
}

TEST_CASE("fiber: wired by hand from inside the fiber (asio::spawn style) — running scope, suspended scope around each yield") {
  temp_dir dir;
  {
    spanprof::config cfg = config_for(dir);
    cfg.sampling = false;
    session s(cfg);
    std::thread scheduler([&] {
      auto body = [](const char* name) {
        return [name](bctx::fiber&& main) {
          spanprof::fiber_context profile;
          spanprof::fiber_switch_scope running(profile);
          {
            SPANPROF_TRANSACTION(name);
            for (int i = 0; i < 3; ++i) {
              SPANPROF_SPAN("step", std::string(name) + "-" + std::to_string(i));
              spanprof::fiber_switch_scope suspended(nullptr);  // the thread's own context meanwhile
              main = std::move(main).resume();
            }
          }
          return std::move(main);
        };
      };
      bctx::fiber a{body("inner-a")};
      bctx::fiber b{body("inner-b")};
      SPANPROF_TRANSACTION("loop");
      while (a || b) {
        if (a) a = std::move(a).resume();
        if (b) b = std::move(b).resume();
        SPANPROF_SPAN("loop", "tick");
      }
    });
    scheduler.join();
  }
  const auto txns = read_transactions(dir.path());
  REQUIRE(txns.size() == 3);
  for (const char* name : {"inner-a", "inner-b"}) {
    const json txn = transaction_named(txns, name);
    CHECK(manual_spans(txn).size() == 3);
    for (int i = 0; i < 3; ++i) CHECK(has_span_described(txn, std::string(name) + "-" + std::to_string(i)));
  }
  const json loop = transaction_named(txns, "loop");
  CHECK(manual_spans(loop).size() == 4);
  for (const json& span : manual_spans(loop)) CHECK(span.at("description") == "tick");
}

TEST_CASE("fiber: wired by hand, a suspended fiber given up — abandon(), then its RAII ends do nothing: aborted, no cross-context end") {
  temp_dir dir;
  spanprof::counters after{};
  {
    spanprof::config cfg = config_for(dir);
    cfg.sampling = false;
    session s(cfg);
    std::thread scheduler([&] {
      // The fiber is told to give up and returns, running the RAII ends of its transaction and
      // span, as a library that cancels fibers (or Boost's forced unwinding) would. Returning
      // rather than destroying it keeps this raw, unannotated Boost fiber clean under ASan.
      raw_task t;
      bool cancelled = false;
      t.fiber = bctx::fiber{[&](bctx::fiber&& main) {
        SPANPROF_TRANSACTION("raw-doomed");
        SPANPROF_SPAN("step", "left open");
        main = std::move(main).resume();
        CHECK(cancelled);
        return std::move(main);
      }};
      {
        spanprof::fiber_switch_scope running(t.profile);
        t.fiber = std::move(t.fiber).resume();
      }
      t.profile.abandon();  // finished now, as aborted
      cancelled = true;
      spanprof::fiber_switch_scope running(t.profile);  // its code runs as itself
      t.fiber = std::move(t.fiber).resume();
      CHECK_FALSE(t.fiber);
    });
    scheduler.join();
    after = spanprof::stats();
  }
  CHECK(after.transactions_aborted == 1);
  CHECK(after.cross_context_ends == 0);
  const auto txns = read_transactions(dir.path());
  REQUIRE(txns.size() == 1);
  CHECK(transaction_named(txns, "raw-doomed").at("contexts").at("trace").at("status") == "aborted");
}

TEST_CASE("fiber: a fiber_context destroyed with a transaction open finishes it as aborted") {
  temp_dir dir;
  {
    spanprof::config cfg = config_for(dir);
    cfg.sampling = false;
    session s(cfg);
    std::thread thread([] {
      static constexpr spanprof::detail::span_site site{"site", __FILE__, __LINE__};
      auto profile = std::make_unique<spanprof::fiber_context>();
      std::optional<spanprof::scoped_transaction> txn;
      {
        spanprof::fiber_switch_scope running(*profile);
        txn.emplace("context-destroyed", "task", &site, __builtin_frame_address(0));
        CHECK(txn->is_recording());
      }
      profile.reset();  // the fiber is gone
      CHECK(spanprof::detail::current_context() == spanprof::detail::t_thread_context);
    });
    thread.join();
  }
  const auto txns = read_transactions(dir.path());
  REQUIRE(txns.size() == 1);
  CHECK(transaction_named(txns, "context-destroyed").at("contexts").at("trace").at("status") == "aborted");
}

// ---- what the sampler sees ------------------------------------------------------------------

TEST_CASE("fiber: samples on a stack that is not the running context's keep only their pc") {
  // A fiber_context told the wrong stack: every sample taken while it runs has its sp outside
  // those bounds, so the handler must neither walk nor copy (the bounds are what keeps it from
  // reading unmapped memory) and keeps only the pc. The thread's own context, as a control,
  // gives full stacks.
  temp_dir dir;
  alignas(16) static char not_the_stack[8192];
  {
    session s(sampling_config(dir, sampling_mode::wall));
    std::thread thread([&] {
      {
        spanprof::fiber_context wrong(not_the_stack, sizeof not_the_stack);
        spanprof::fiber_switch_scope running(wrong);
        SPANPROF_TRANSACTION("wrong-stack");
        spanprof_fiber_test_work_a(80'000'000);
      }
      {
        spanprof::fiber_context unknown;  // no stack given at all
        spanprof::fiber_switch_scope running(unknown);
        SPANPROF_TRANSACTION("unknown-stack");
        spanprof_fiber_test_work_a(80'000'000);
      }
      SPANPROF_TRANSACTION("own-stack");
      spanprof_fiber_test_work_a(80'000'000);
    });
    thread.join();
  }
  const auto traces = read_traces(dir.path());
  for (const std::string name : {"wrong-stack", "unknown-stack"}) {
    const trace_file& t = trace_named(traces, name);
    std::size_t deeper = 0;
    for (const sample_event& smp : t.samples) deeper += smp.stack.size() > 1 ? 1 : 0;
    MESSAGE(name, ": ", t.samples.size(), " samples, ", deeper, " with more than the pc");
    // ~80 expected at 1 kHz; a loaded machine and the sanitizers delay the ticker, and the
    // counts only need to show that sampling ran.
    CHECK(t.samples.size() >= (signals_deferred ? 5u : 10u));
    CHECK(deeper == 0);
  }
  const trace_file& own = trace_named(traces, "own-stack");
  std::size_t in_a = 0;
  for (const sample_event& smp : own.samples) in_a += stack_contains(smp, g_return_into_a.load()) ? 1 : 0;
  CHECK(own.samples.size() >= (signals_deferred ? 5u : 10u));
  if (!signals_deferred) CHECK(in_a * 10 >= own.samples.size() * 8);
}

TEST_CASE("fiber: the handler flags a sample whose sp is outside the running context's stack as in_switch, and only that one") {
  // White-box: the handler is called directly with a made-up interrupted context, on a thread
  // registered with the sampler but with spanprof not running (no collector drains the ring).
  REQUIRE_FALSE(spanprof::is_running());
  namespace d = spanprof::detail;
  alignas(16) static std::uintptr_t fiber_stack[512];
  std::vector<std::uint8_t> flags;
  std::vector<std::size_t> depths;
  constexpr std::uint8_t raw_stack = spanprof::detail::sample_flag_raw_stack;
  std::thread thread([&] {
    d::runtime& rt = d::the_runtime();
    d::execution_context* own = d::register_current_thread(rt);
    // CHECK, not REQUIRE: an exception must not leave a std::thread.
    CHECK(own != nullptr);
    if (own == nullptr || rt.stack_sampler.register_current_thread(*own, own->thread_id) == nullptr) return;
    spanprof::fiber_context fiber(fiber_stack, sizeof fiber_stack);
    spanprof::fiber_switch_scope running(fiber);
    d::execution_context* ctx = d::current_context();
    d::publish_active(*ctx, 0x5eed, nullptr);  // as if a transaction were open
    const auto inside = reinterpret_cast<std::uintptr_t>(&fiber_stack[256]);
    std::uintptr_t outside_word = 0;
    const auto outside = reinterpret_cast<std::uintptr_t>(&outside_word);
    for (const std::uintptr_t sp : {outside, inside}) {
      ucontext_t uc{};
      uc.uc_mcontext.gregs[REG_RSP] = static_cast<greg_t>(sp);
      uc.uc_mcontext.gregs[REG_RBP] = static_cast<greg_t>(sp);  // zeros above: the walk ends there
      uc.uc_mcontext.gregs[REG_RIP] = static_cast<greg_t>(reinterpret_cast<std::uintptr_t>(&spanprof_test_burn));
      d::sigprof_handler(SIGPROF, nullptr, &uc);
    }
    d::publish_active(*ctx, 0, nullptr);
    {
      // The thread's own context, sp on the thread's stack: an ordinary sample, not flagged.
      spanprof::fiber_switch_scope own_context(nullptr);
      d::publish_active(*own, 0x5eed, nullptr);
      // A last frame record: [saved rbp = 0][return address], which the walk keeps and stops at.
      alignas(16) std::uintptr_t on_thread_stack[4] = {0, reinterpret_cast<std::uintptr_t>(&spanprof_fiber_test_work_a)};
      const auto sp = reinterpret_cast<std::uintptr_t>(&on_thread_stack[0]);
      ucontext_t uc{};
      uc.uc_mcontext.gregs[REG_RSP] = static_cast<greg_t>(sp);
      uc.uc_mcontext.gregs[REG_RBP] = static_cast<greg_t>(sp);
      uc.uc_mcontext.gregs[REG_RIP] = static_cast<greg_t>(reinterpret_cast<std::uintptr_t>(&spanprof_test_burn));
      d::sigprof_handler(SIGPROF, nullptr, &uc);
      d::publish_active(*own, 0, nullptr);
    }
    rt.stack_sampler.drain([&](const d::sample_record& r) {
      if (r.txn_id != 0x5eed) return;
      flags.push_back(r.flags);
      depths.push_back(r.depth);
    });
  });
  thread.join();
  REQUIRE(flags.size() == 3);
  CHECK((flags[0] & spanprof::detail::sample_flag_in_switch) != 0);  // sp on another stack
  CHECK((flags[1] & spanprof::detail::sample_flag_in_switch) == 0);  // sp on the fiber's
  CHECK((flags[2] & spanprof::detail::sample_flag_in_switch) == 0);  // a thread on its own stack
  CHECK(depths[2] > 1);                                             // walked or copied
  // Outside: the pc alone (frame pointers), or the registers without any stack copy (dwarf).
  // Inside: the dwarf unwinder copies the fiber's stack from sp to its top.
  const std::size_t registers_only = spanprof::detail::raw_stack_layout::prefix_words;
  CHECK(depths[0] == ((flags[0] & raw_stack) != 0 ? registers_only : 1u));
  if ((flags[1] & raw_stack) != 0) CHECK(depths[1] == registers_only + 256);
}
