// spanprof: a copyable callable for config.on_error, without <functional>.
//
// std::function would do, but libstdc++'s <functional> brings <unordered_map>, <vector>,
// <array> and the searchers with it (+58 % compile time for a TU that only wants a span):
// the light public header cannot pay that. This holds any copyable callable of the signature
// on the heap, which is fine for a callback set once at init().
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

namespace spanprof {

template <class Signature>
class callback;

template <class... Args>
class callback<void(Args...)> {
 public:
  callback() noexcept = default;
  callback(std::nullptr_t) noexcept {}  // NOLINT: implicit, as std::function's
  template <class Callable, std::enable_if_t<!std::is_same_v<std::decay_t<Callable>, callback> &&
                                                 std::is_invocable_v<Callable&, Args...>, int> = 0>
  callback(Callable&& callable)  // NOLINT: implicit, so `cfg.on_error = [](auto&) {...}` works
      : holder_(new holder<std::decay_t<Callable>>(std::forward<Callable>(callable))) {}

  callback(const callback& other) : holder_(other.holder_ != nullptr ? other.holder_->clone() : nullptr) {}
  callback(callback&& other) noexcept : holder_(std::exchange(other.holder_, nullptr)) {}
  callback& operator=(callback other) noexcept {
    std::swap(holder_, other.holder_);
    return *this;
  }
  ~callback() { delete holder_; }

  explicit operator bool() const noexcept { return holder_ != nullptr; }
  // Precondition: not empty.
  void operator()(Args... args) const { holder_->call(std::forward<Args>(args)...); }

 private:
  struct holder_base {
    virtual ~holder_base() = default;
    virtual void call(Args... args) = 0;
    [[nodiscard]] virtual holder_base* clone() const = 0;
  };
  template <class Callable>
  struct holder final : holder_base {
    template <class From>
    explicit holder(From&& from) : callable(std::forward<From>(from)) {}
    void call(Args... args) override { callable(std::forward<Args>(args)...); }
    [[nodiscard]] holder_base* clone() const override { return new holder(callable); }
    Callable callable;
  };

  holder_base* holder_ = nullptr;
};

}  // namespace spanprof
