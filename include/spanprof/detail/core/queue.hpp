// spanprof: the lock-free hand-offs between application threads and the collector.
//
// Both are intrusive Treiber stacks whose consumers only ever take *everything* at once
// (`exchange(nullptr)`). With no single-node pop there is no ABA problem, so plain
// pointer CAS suffices and nothing needs a double-width atomic or a lock.
#pragma once

#include <atomic>
#include <cstddef>

namespace spanprof::detail {

template <class Node>
class intrusive_stack {
 public:
  static_assert(std::atomic<Node*>::is_always_lock_free);

  // Any thread. Lock-free.
  void push(Node* node) noexcept { push_chain(node, node); }

  // Any thread: pushes first..last already linked through `next`.
  void push_chain(Node* first, Node* last) noexcept {
    Node* head = head_.load(std::memory_order_relaxed);
    do {
      last->next = head;
    } while (!head_.compare_exchange_weak(head, first, std::memory_order_release, std::memory_order_relaxed));
  }

  // Any thread: the whole stack, newest first.
  [[nodiscard]] Node* take_all() noexcept { return head_.exchange(nullptr, std::memory_order_acquire); }

  [[nodiscard]] bool empty() const noexcept { return head_.load(std::memory_order_relaxed) == nullptr; }

 private:
  std::atomic<Node*> head_{nullptr};
};

// Reverses a chain taken from an intrusive_stack, so the oldest comes first.
template <class Node>
Node* reverse_chain(Node* head) noexcept {
  Node* reversed = nullptr;
  while (head != nullptr) {
    Node* next = head->next;
    head->next = reversed;
    reversed = head;
    head = next;
  }
  return reversed;
}

}  // namespace spanprof::detail
