// spanprof: the bump allocator behind a transaction's strings (op, description, data).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <string_view>

#include "span_record.hpp"  // string_ref

namespace spanprof::detail {

// Bump allocator for the strings of one transaction. Blocks are kept across recycling.
class string_arena {
 public:
  static constexpr std::size_t block_size = 16 * 1024;

  string_arena() = default;
  string_arena(const string_arena&) = delete;
  string_arena& operator=(const string_arena&) = delete;
  ~string_arena() {
    release_oversized();
    for (block* b = head_; b != nullptr;) {
      block* next = b->next;
      ::operator delete(b);
      b = next;
    }
  }

  // Owner only. Copies at most `cap` bytes of `text`, cut back to a UTF-8 character boundary.
  // Never fails loudly: on allocation failure it returns an empty string marked as truncated.
  // The common case (fits the cap and the current block) is inline and branch-light: with a
  // string literal the compiler sees the length and inlines the copy.
  [[gnu::always_inline]] string_ref copy(std::string_view text, std::size_t cap) noexcept {
    const std::size_t size = text.size();
    if (size <= cap && current_ != nullptr && current_->capacity - current_->used >= size) [[likely]] {
      char* dest = current_->bytes() + current_->used;
      current_->used += size;
      std::memcpy(dest, text.data(), size);
      const auto size32 = static_cast<std::uint32_t>(size);
      return {dest, size32, size32};
    }
    return copy_slow(text, cap);
  }

  // Exclusive holder only.
  void reset() noexcept {
    release_oversized();
    current_ = head_;
    if (current_ != nullptr) current_->used = 0;
  }

 private:
  struct block {
    block* next;
    block* oversized_next;
    std::size_t used;
    std::size_t capacity;
    char* bytes() noexcept { return reinterpret_cast<char*>(this + 1); }
  };

  [[gnu::cold]] string_ref copy_slow(std::string_view text, std::size_t cap) noexcept {
    std::size_t keep = text.size() < cap ? text.size() : cap;
    if (keep < text.size()) {
      // Do not cut a multi-byte character in half: back up over continuation bytes.
      while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) --keep;
    }
    string_ref ref;
    ref.original_size = static_cast<std::uint32_t>(text.size() < UINT32_MAX ? text.size() : UINT32_MAX);
    char* dest = allocate(keep);
    if (dest == nullptr) return ref;
    if (keep != 0) std::memcpy(dest, text.data(), keep);
    ref.data = dest;
    ref.size = static_cast<std::uint32_t>(keep);
    return ref;
  }

  char* allocate(std::size_t size) noexcept {
    if (size == 0) return const_cast<char*>("");
    if (size > block_size / 4) {
      // A huge string (a 1 MiB SQL statement, capped by the caller) gets its own block, freed
      // on reset, so one big description does not bloat every recycled record.
      auto* b = static_cast<block*>(::operator new(sizeof(block) + size, std::nothrow));
      if (b == nullptr) return nullptr;
      *b = block{nullptr, oversized_, size, size};
      oversized_ = b;
      return b->bytes();
    }
    while (current_ == nullptr || current_->capacity - current_->used < size) {
      if (current_ != nullptr && current_->next != nullptr) {
        current_ = current_->next;
        current_->used = 0;
        continue;
      }
      auto* b = static_cast<block*>(::operator new(sizeof(block) + block_size, std::nothrow));
      if (b == nullptr) return nullptr;
      *b = block{nullptr, nullptr, 0, block_size};
      if (current_ == nullptr) head_ = b; else current_->next = b;
      current_ = b;
    }
    char* out = current_->bytes() + current_->used;
    current_->used += size;
    return out;
  }

  void release_oversized() noexcept {
    for (block* b = oversized_; b != nullptr;) {
      block* next = b->oversized_next;
      ::operator delete(b);
      b = next;
    }
    oversized_ = nullptr;
  }

  block* head_ = nullptr;
  block* current_ = nullptr;
  block* oversized_ = nullptr;
};

}  // namespace spanprof::detail
