// spanprof: Sentry-compatible ids (32-hex trace/event ids, 16-hex span ids).
//
// Ids come from a xoshiro256** generator per execution context, seeded by getrandom(2): no
// lock and no syscall after the context is registered, and ids from different threads do not
// collide in practice (each stream has 256 bits of independent seed).
#pragma once

#include <sys/random.h>

#include <array>
#include <cstdint>
#include <cstring>

#include "ticks.hpp"

namespace spanprof::detail {

struct trace_id {
  std::uint64_t high = 0;
  std::uint64_t low = 0;
  [[nodiscard]] bool is_nil() const noexcept { return high == 0 && low == 0; }
  friend bool operator==(const trace_id&, const trace_id&) = default;
};

// With the version (4) and variant (10xx) bits of a random uuid set: what Sentry expects of
// trace and event ids (Relay refuses the nil uuid, which this can never be).
inline trace_id as_uuid4(trace_id random_bits) noexcept {
  random_bits.high = (random_bits.high & ~0xf000ull) | 0x4000ull;
  random_bits.low = (random_bits.low & 0x3fffffffffffffffull) | 0x8000000000000000ull;
  return random_bits;
}

using span_id = std::uint64_t;  // never 0: 0 means "no span"

class xoshiro256 {
 public:
  xoshiro256() noexcept { seed_from_os(); }
  explicit xoshiro256(std::uint64_t seed) noexcept { seed_from_value(seed); }

  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Uniform in [0, 1): the top 53 bits.
  double next_unit() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) noexcept { return (x << k) | (x >> (64 - k)); }

  void seed_from_os() noexcept {
    std::array<std::uint64_t, 4> seed{};
    std::size_t filled = 0;
    auto* bytes = reinterpret_cast<unsigned char*>(seed.data());
    while (filled < sizeof seed) {
      const ssize_t n = getrandom(bytes + filled, sizeof seed - filled, 0);
      if (n <= 0) break;  // EINTR or ENOSYS: fall back below rather than loop forever
      filled += static_cast<std::size_t>(n);
    }
    if (filled < sizeof seed) {
      // No entropy available: mix time and addresses so threads still differ.
      seed_from_value(static_cast<std::uint64_t>(monotonic_ns()) ^ reinterpret_cast<std::uintptr_t>(this));
      return;
    }
    std::memcpy(state_.data(), seed.data(), sizeof seed);
    if ((state_[0] | state_[1] | state_[2] | state_[3]) == 0) state_[0] = 1;
  }

  void seed_from_value(std::uint64_t seed) noexcept {
    for (auto& word : state_) word = splitmix64(seed);
  }

  static std::uint64_t splitmix64(std::uint64_t& x) noexcept {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }

  std::array<std::uint64_t, 4> state_{};
};

// Lowercase hex, no dashes: what Sentry's ids look like.
inline void write_hex(char* out, std::uint64_t value) noexcept {
  static constexpr char digits[] = "0123456789abcdef";
  for (int i = 15; i >= 0; --i) {
    out[i] = digits[value & 0xf];
    value >>= 4;
  }
}

struct hex16 {
  char text[17];
};
struct hex32 {
  char text[33];
};

inline hex16 to_hex(span_id id) noexcept {
  hex16 h{};
  write_hex(h.text, id);
  return h;
}

inline hex32 to_hex(const trace_id& id) noexcept {
  hex32 h{};
  write_hex(h.text, id.high);
  write_hex(h.text + 16, id.low);
  return h;
}

}  // namespace spanprof::detail
