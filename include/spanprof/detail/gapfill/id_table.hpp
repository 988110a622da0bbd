// spanprof gapfill: the 64-bit id → index map the phases use to resolve span and context ids.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "input.hpp"

namespace spanprof::detail::gapfill {

namespace scratch {

inline constexpr std::int64_t minus_infinity = std::numeric_limits<std::int64_t>::min() / 4;
inline constexpr std::int64_t plus_infinity = std::numeric_limits<std::int64_t>::max() / 4;

inline std::uint64_t mix64(std::uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Open addressing, linear probing: 64-bit key → 32-bit value. Rebuilt per transaction. Slot
// key 0 marks an empty slot, so the key 0 itself is kept aside.
class id_table {
 public:
  void reset(std::size_t expected) {
    std::size_t capacity = 16;
    while (capacity < expected * 2) capacity <<= 1;
    keys_.assign(capacity, 0);
    values_.assign(capacity, no_index);
    mask_ = capacity - 1;
    zero_value_ = no_index;
  }
  // Keeps the first value inserted for a key.
  void insert(std::uint64_t key, std::uint32_t value) {
    if (key == 0) {
      if (zero_value_ == no_index) zero_value_ = value;
      return;
    }
    for (std::size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      if (keys_[i] == key) return;
      if (keys_[i] == 0) {
        keys_[i] = key;
        values_[i] = value;
        return;
      }
    }
  }
  [[nodiscard]] std::uint32_t find(std::uint64_t key) const noexcept {
    if (key == 0) return zero_value_;
    if (keys_.empty()) return no_index;
    for (std::size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      if (keys_[i] == key) return values_[i];
      if (keys_[i] == 0) return no_index;
    }
  }

 private:
  std::vector<std::uint64_t> keys_;
  std::vector<std::uint32_t> values_;
  std::size_t mask_ = 0;
  std::uint32_t zero_value_ = no_index;
};

}  // namespace scratch

}  // namespace spanprof::detail::gapfill
