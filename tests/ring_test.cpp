// sample_ring (ring.hpp): the per-thread SPSC ring the SIGPROF handler pushes into.
#include <doctest/doctest.h>
#include <spanprof/detail/engine/lifecycle.hpp>
#include <spanprof/detail/sample/ring.hpp>

#include <atomic>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>
#include "support/build_kind.hpp"

using spanprof::detail::drop_log_entry;
using spanprof::detail::sample_record;
using spanprof::detail::sample_ring;

namespace {

sample_record header_for(std::uint64_t n) {
  sample_record h{};
  h.t_ticks = static_cast<std::int64_t>(1000 + n);
  h.ctx_id = 7 + n;
  h.txn_id = 0xabc0000 + n;
  h.span_id = 0x5000 + n;
  h.tid = static_cast<std::uint32_t>(40 + n);
  h.weight = static_cast<std::uint32_t>(1 + n % 5);
  h.anchor_idx = static_cast<std::uint16_t>(n % 3);
  h.mode = static_cast<std::uint8_t>(n & 1);
  h.flags = static_cast<std::uint8_t>(n & 2);
  return h;
}

// pcs[k] of sample n: recognisable, so a torn or misplaced record shows.
std::uintptr_t pc_for(std::uint64_t n, std::size_t k) { return static_cast<std::uintptr_t>(n * 1000 + k + 1); }

bool push_sample(sample_ring& ring, std::uint64_t n, std::size_t depth) {
  std::vector<std::uintptr_t> pcs(depth);
  for (std::size_t k = 0; k < depth; ++k) pcs[k] = pc_for(n, k);
  return ring.try_push(header_for(n), pcs.data(), depth);
}

// Every field the producer set, checked against sample n with `depth` pcs.
bool matches(const sample_record& r, std::uint64_t n, std::size_t depth) {
  const sample_record h = header_for(n);
  if (r.kind != spanprof::detail::record_kind::sample || r.depth != depth) return false;
  if (r.size_bytes != sample_ring::record_bytes(depth)) return false;
  if (r.t_ticks != h.t_ticks || r.ctx_id != h.ctx_id || r.txn_id != h.txn_id || r.span_id != h.span_id ||
      r.tid != h.tid || r.weight != h.weight || r.anchor_idx != h.anchor_idx || r.mode != h.mode || r.flags != h.flags) {
    return false;
  }
  for (std::size_t k = 0; k < depth; ++k) {
    if (r.pcs()[k] != pc_for(n, k)) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("ring: push then drain returns every header field and pc, with increasing seq") {
  sample_ring ring(4096);
  CHECK(ring.capacity_bytes() == 4096);
  REQUIRE(push_sample(ring, 0, 3));
  REQUIRE(push_sample(ring, 1, 0));
  REQUIRE(push_sample(ring, 2, 17));
  std::vector<std::size_t> depths{3, 0, 17};
  std::uint64_t seen = 0;
  const std::size_t visited = ring.drain([&](const sample_record& r) {
    CHECK(matches(r, seen, depths[seen]));
    CHECK(r.seq == seen);
    ++seen;
  });
  CHECK(visited == 3);
  CHECK(seen == 3);
  CHECK(ring.drain([](const sample_record&) { FAIL("drained twice"); }) == 0);
  CHECK(ring.dropped_samples() == 0);
}

TEST_CASE("ring: a two-part payload (registers, then a stack copy) arrives as one contiguous record") {
  sample_ring ring(64 * 1024);
  std::vector<std::uintptr_t> registers(18), stack(1000);
  for (std::size_t i = 0; i < registers.size(); ++i) registers[i] = 0x100 + i;
  for (std::size_t i = 0; i < stack.size(); ++i) stack[i] = 0x9000 + i;
  REQUIRE(ring.try_push_parts(header_for(5), registers.data(), registers.size(), stack.data(), stack.size()));
  std::size_t visited = 0;
  ring.drain([&](const sample_record& r) {
    ++visited;
    REQUIRE(r.depth == registers.size() + stack.size());
    CHECK(r.size_bytes == sample_ring::record_bytes(r.depth));
    CHECK(r.txn_id == header_for(5).txn_id);
    for (std::size_t i = 0; i < registers.size(); ++i) CHECK(r.pcs()[i] == registers[i]);
    for (std::size_t i = 0; i < stack.size(); ++i) CHECK(r.pcs()[registers.size() + i] == stack[i]);
  });
  CHECK(visited == 1);
  // A record larger than half the ring is refused (dropped and counted), never split.
  std::vector<std::uintptr_t> huge(5000);
  CHECK_FALSE(ring.try_push_parts(header_for(6), registers.data(), registers.size(), huge.data(), huge.size()));
  CHECK(ring.dropped_samples() == 1);
}

TEST_CASE("ring: capacity rounds up to a power of two, at least 4 KiB") {
  CHECK(sample_ring(1).capacity_bytes() == 4096);
  CHECK(sample_ring(5000).capacity_bytes() == 8192);
  CHECK(sample_ring(65536).capacity_bytes() == 65536);
}

TEST_CASE("ring: wrap-around with padding records over many cycles, random depths") {
  sample_ring ring(4096);
  std::mt19937_64 rng(12345);
  std::uniform_int_distribution<std::size_t> depth_of(0, 100);
  std::uniform_int_distribution<int> burst_of(1, 12);
  std::uint64_t pushed = 0, drained = 0, refused = 0;
  std::vector<std::size_t> depths;
  std::size_t bytes_pushed = 0;
  for (int round = 0; round < 5000; ++round) {
    const int burst = burst_of(rng);
    for (int i = 0; i < burst; ++i) {
      const std::size_t depth = depth_of(rng);
      if (!push_sample(ring, pushed, depth)) {  // full: drain below
        ++refused;
        break;
      }
      depths.push_back(depth);
      bytes_pushed += sample_ring::record_bytes(depth);
      ++pushed;
    }
    ring.drain([&](const sample_record& r) {
      REQUIRE(drained < pushed);
      CHECK(matches(r, drained, depths[drained]));
      CHECK(r.seq == drained);
      ++drained;
    });
    REQUIRE(drained == pushed);
  }
  INFO("bytes pushed ", bytes_pushed);
  CHECK(bytes_pushed > 200 * ring.capacity_bytes());  // wrapped many times
  CHECK(ring.dropped_samples() == refused);  // every refused push counted, nothing else
}

TEST_CASE("ring: a record never wraps — one that does not fit before the end comes after padding") {
  sample_ring ring(4096);
  // 60 records of 64 bytes (depth 0) fill 3840 bytes; drain; then a 1000-byte record must go
  // after a 256-byte padding record at the start, and the drain must skip that padding.
  for (std::uint64_t n = 0; n < 60; ++n) REQUIRE(push_sample(ring, n, 0));
  CHECK(ring.drain([](const sample_record&) {}) == 60);
  const std::size_t depth = (1000 - sizeof(sample_record)) / 8;
  REQUIRE(push_sample(ring, 60, depth));
  std::size_t visited = 0;
  ring.drain([&](const sample_record& r) {
    CHECK(matches(r, 60, depth));
    ++visited;
  });
  CHECK(visited == 1);
}

TEST_CASE("ring: a full ring drops, counts and logs (t, ctx_id); the log keeps the newest 64") {
  sample_ring ring(4096);
  std::uint64_t n = 0;
  while (push_sample(ring, n, 4)) ++n;
  const std::uint64_t fitted = n;
  CHECK(fitted == 4096 / sample_ring::record_bytes(4));
  CHECK(ring.dropped_samples() == 1);
  // 99 more drops (100 in all), each with its own time and context.
  for (std::uint64_t i = 1; i < 100; ++i) CHECK_FALSE(push_sample(ring, fitted + i, 4));
  CHECK(ring.dropped_samples() == 100);
  std::vector<drop_log_entry> log;
  ring.visit_drop_log([&](const drop_log_entry& e) { log.push_back(e); });
  REQUIRE(log.size() == sample_ring::drop_log_size);
  for (std::size_t i = 0; i < log.size(); ++i) {
    const std::uint64_t drop_number = 100 - 64 + i;  // oldest kept first
    const sample_record h = header_for(fitted + drop_number);
    CHECK(log[i].t_ticks == h.t_ticks);
    CHECK(log[i].ctx_id == h.ctx_id);
  }
  // What fitted is intact, and after draining there is room again.
  std::uint64_t seen = 0;
  ring.drain([&](const sample_record& r) {
    CHECK(matches(r, seen, 4));
    ++seen;
  });
  CHECK(seen == fitted);
  CHECK(push_sample(ring, 1'000'000, 4));
  // A record larger than half the ring is refused outright (it could never be placed safely).
  CHECK_FALSE(push_sample(ring, 2'000'000, (4096 / 2) / 8));
}

// The default ring must not be what limits a profile: the collector may be busy writing a
// transaction for a while, and every sample taken meanwhile must fit.
TEST_CASE("ring: by default a thread's ring holds 250 ms of its largest samples, at any rate and unwinder") {
  using spanprof::detail::raw_stack_layout;
  for (const unsigned rate_hz : {101u, 499u, 2000u}) {
    for (const spanprof::unwinder method : {spanprof::unwinder::dwarf, spanprof::unwinder::frame_pointers}) {
      spanprof::config cfg;
      cfg.sample_rate_hz = rate_hz;
      cfg.stack_unwinder = method;
      CHECK(spanprof::detail::validate(cfg).empty());
      const auto settings = spanprof::detail::sampler_settings_for(cfg);
      const bool dwarf = method == spanprof::unwinder::dwarf;
      CHECK(settings.max_stack_copy_bytes == cfg.stack_copy_bytes);  // the copy is not cut to fit
      const std::size_t words = dwarf ? raw_stack_layout::prefix_words + cfg.stack_copy_bytes / 8 : cfg.max_stack_depth;
      sample_ring ring(settings.ring_bytes);
      const std::vector<std::uintptr_t> pcs(words, 0x1234);
      const std::size_t window_samples = rate_hz / 4 + 1;
      std::size_t pushed = 0;
      while (pushed < window_samples && ring.try_push(header_for(pushed), pcs.data(), words)) ++pushed;
      INFO(rate_hz, " Hz, ", std::string(dwarf ? "dwarf" : "frame pointers"), ": ring ", settings.ring_bytes, " bytes");
      CHECK(pushed == window_samples);
    }
  }
  spanprof::config explicit_size;
  explicit_size.ring_capacity_bytes = 64 * 1024;  // a size the user chose is kept
  CHECK(spanprof::detail::sampler_settings_for(explicit_size).ring_bytes == 64 * 1024);
  explicit_size.ring_capacity_bytes = 100;
  CHECK_FALSE(spanprof::detail::validate(explicit_size).empty());
}

TEST_CASE("ring: SPSC stress — producer pushes while the consumer drains; each sample once, in order, intact") {
  sample_ring ring(8192);
  constexpr std::uint64_t total = spanprof_test::under_tsan ? 60'000 : 400'000;
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> drops{0};
  std::thread producer([&] {
    std::vector<std::uintptr_t> pcs(64);
    std::uint64_t n = 0;
    std::uint64_t dropped = 0;
    // Each sample n has a depth derived from n (the consumer recomputes it); a failed push is
    // retried, so every n arrives exactly once.
    while (n < total) {
      const std::size_t depth = static_cast<std::size_t>((n * 2654435761u) % 65);
      for (std::size_t k = 0; k < depth; ++k) pcs[k] = pc_for(n, k);
      if (ring.try_push(header_for(n), pcs.data(), depth)) {
        ++n;
      } else {
        ++dropped;
        std::this_thread::yield();
      }
    }
    drops.store(dropped);
    done.store(true, std::memory_order_release);
  });
  std::uint64_t expected = 0;
  std::uint64_t bad = 0;
  for (;;) {
    const bool finished = done.load(std::memory_order_acquire);
    ring.drain([&](const sample_record& r) {
      const std::size_t depth = static_cast<std::size_t>((expected * 2654435761u) % 65);
      // seq counts successful pushes, so it equals n here.
      if (r.seq != expected || !matches(r, expected, depth)) ++bad;
      ++expected;
    });
    if (finished) break;
  }
  producer.join();
  ring.drain([&](const sample_record&) { ++expected; });
  CHECK(bad == 0);
  CHECK(expected == total);
  CHECK(ring.dropped_samples() == drops.load());
  MESSAGE("SPSC stress: ", total, " samples, ", drops.load(), " full-ring retries");
}
