// spanprof: an append-only log in fixed chunks, one writer, readers that never see it move.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <new>

namespace spanprof::detail {

// Append-only log of T in fixed chunks. One writer; readers load `size()` with acquire and may
// then read every element below it while the writer keeps appending.
template <class T, std::size_t ChunkSize, std::size_t MaxChunks>
class chunked_log {
 public:
  static constexpr std::size_t max_size = ChunkSize * MaxChunks;

  chunked_log() = default;
  chunked_log(const chunked_log&) = delete;
  chunked_log& operator=(const chunked_log&) = delete;
  ~chunked_log() {
    for (auto& chunk : chunks_) delete[] chunk.load(std::memory_order_relaxed);
  }

  // Owner only. Returns nullptr past `limit` or when a chunk cannot be allocated; the caller
  // counts the loss. Allocates only the first time a chunk index is reached in this record's
  // life: recycled records keep their chunks.
  T* prepare_next(std::size_t limit) noexcept {
    const std::size_t index = size_.load(std::memory_order_relaxed);
    if (index >= limit || index >= max_size) return nullptr;
    auto& slot = chunks_[index / ChunkSize];
    T* chunk = slot.load(std::memory_order_relaxed);
    if (chunk == nullptr) {
      chunk = new (std::nothrow) T[ChunkSize];
      if (chunk == nullptr) return nullptr;
      slot.store(chunk, std::memory_order_release);
    }
    return &chunk[index % ChunkSize];
  }
  // Owner only: makes the element prepared last visible to readers.
  void publish_next() noexcept { size_.store(size_.load(std::memory_order_relaxed) + 1, std::memory_order_release); }

  [[nodiscard]] std::size_t size() const noexcept { return size_.load(std::memory_order_acquire); }
  T& operator[](std::size_t i) noexcept { return chunks_[i / ChunkSize].load(std::memory_order_acquire)[i % ChunkSize]; }
  const T& operator[](std::size_t i) const noexcept {
    return chunks_[i / ChunkSize].load(std::memory_order_acquire)[i % ChunkSize];
  }

  // Owner or exclusive holder only (the record is not shared any more).
  void clear() noexcept { size_.store(0, std::memory_order_relaxed); }

 private:
  std::atomic<std::size_t> size_{0};
  std::array<std::atomic<T*>, MaxChunks> chunks_{};
};

}  // namespace spanprof::detail
