// What spanprof's error callback received, for tests that check which errors are reported. The
// callback may run on any thread (application or collector), hence the mutex.
#pragma once

#include <spanprof/spanprof.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace spanprof_test {

struct error_log {
  std::mutex mutex;
  std::vector<spanprof::error> errors;

  // A callback appending to this log, which must outlive the runtime's copy of it (until
  // shutdown()); callback_into() shares ownership instead.
  std::function<void(const spanprof::error&)> callback() {
    return [this](const spanprof::error& e) { append(e); };
  }
  void append(const spanprof::error& e) {
    std::lock_guard lock(mutex);
    errors.push_back(e);
  }
  std::vector<spanprof::error> of_kind(spanprof::error_kind kind) {
    std::lock_guard lock(mutex);
    std::vector<spanprof::error> out;
    for (const auto& e : errors) {
      if (e.kind == kind) out.push_back(e);
    }
    return out;
  }
  std::size_t size() {
    std::lock_guard lock(mutex);
    return errors.size();
  }
};

// Shared ownership: the runtime keeps the callback after init(), the test keeps the log.
inline std::function<void(const spanprof::error&)> callback_into(const std::shared_ptr<error_log>& log) {
  return [log](const spanprof::error& e) { log->append(e); };
}

}  // namespace spanprof_test
