// spanprof: the symbolizer's cache — address_cache, a flat hash map from looked-up address to
// its frames, and frame_store, the blocks those frames live in — so each distinct address is
// symbolized once and a hit allocates nothing.
//
// NOT ASYNC-SIGNAL-SAFE: inserting allocates. Collector thread only.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "frames.hpp"

namespace spanprof::detail {

// A flat open-addressing map from looked-up address to its frames, linear probing, at most half
// full. A hit allocates nothing.
class address_cache {
 public:
  struct entry {
    std::uintptr_t address = 0;  // 0: empty slot (address 0 is never cached)
    const symbolized_frame* frames = nullptr;
    std::uint32_t module_id = 0, frame_count = 0;
  };

  [[nodiscard]] const entry* find(std::uintptr_t address) const noexcept {
    if (slots_.empty()) return nullptr;
    for (std::size_t i = slot_of(address);; i = (i + 1) & (slots_.size() - 1)) {
      if (slots_[i].address == address) return &slots_[i];
      if (slots_[i].address == 0) return nullptr;
    }
  }
  void insert_or_assign(const entry& cached) {
    if ((used_ + 1) * 2 > slots_.size()) grow();
    std::size_t i = slot_of(cached.address);
    while (slots_[i].address != 0 && slots_[i].address != cached.address) i = (i + 1) & (slots_.size() - 1);
    if (slots_[i].address == 0) ++used_;
    slots_[i] = cached;
  }
  void clear() noexcept {
    std::fill(slots_.begin(), slots_.end(), entry{});
    used_ = 0;
  }
  [[nodiscard]] std::size_t size() const noexcept { return used_; }

 private:
  [[nodiscard]] std::size_t slot_of(std::uintptr_t address) const noexcept {
    return static_cast<std::size_t>((address * 0x9E3779B97F4A7C15ull) >> shift_);  // Fibonacci hashing
  }
  void grow() {
    std::vector<entry> old = std::move(slots_);
    const std::size_t count = old.empty() ? 1024 : old.size() * 2;
    slots_.assign(count, entry{});
    shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(count));
    used_ = 0;
    for (const entry& cached : old) {
      if (cached.address != 0) insert_or_assign(cached);
    }
  }

  std::vector<entry> slots_;
  std::size_t used_ = 0;
  unsigned shift_ = 64;
};

// Copies runs of frames into blocks that never move, so every span handed out stays valid
// until clear(), however many addresses are resolved meanwhile.
class frame_store {
 public:
  const symbolized_frame* store(const std::vector<symbolized_frame>& run) {
    if (frame_blocks_.empty() || run.size() > block_size_ - block_used_) {
      block_size_ = std::max<std::size_t>(4096, run.size());
      frame_blocks_.push_back(std::make_unique<symbolized_frame[]>(block_size_));
      block_used_ = 0;
    }
    symbolized_frame* at = frame_blocks_.back().get() + block_used_;
    std::copy(run.begin(), run.end(), at);
    block_used_ += run.size();
    return at;
  }
  void clear() noexcept {
    frame_blocks_.clear();
    block_used_ = block_size_ = 0;
  }

 private:
  std::vector<std::unique_ptr<symbolized_frame[]>> frame_blocks_;  // the cached runs of frames
  std::size_t block_used_ = 0, block_size_ = 0;
};

}  // namespace spanprof::detail
