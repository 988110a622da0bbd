// spanprof: installing the SIGPROF handler, next to (or instead of refusing) another one.
//
// NOT ASYNC-SIGNAL-SAFE. Once per process: the handler then stays installed, since a SIGPROF
// already on its way must never meet SIG_DFL, whose action is to kill the process.
#pragma once

#include <signal.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <string>

#include "handler.hpp"

namespace spanprof::detail {

// Installs spanprof's handler. Returns an empty string, or why sampling stays off.
inline std::string install_sigprof_handler(bool chain) {
  struct sigaction existing {};
  sigaction(SIGPROF, nullptr, &existing);
  const bool has_handler = (existing.sa_flags & SA_SIGINFO) != 0
                               ? existing.sa_sigaction != nullptr
                               : existing.sa_handler != SIG_DFL && existing.sa_handler != SIG_IGN;
  if (has_handler && !chain) {
    return "spanprof: the program already has a SIGPROF handler (another profiler?); sampling stays off. "
           "Set config.chain_sigprof = true to sample and call that handler after ours";
  }
  g_previous_sigprof = existing;
  g_chain_previous.store(has_handler, std::memory_order_relaxed);
  struct sigaction action {};
  action.sa_sigaction = [](int sig, siginfo_t* info, void* uc) { sigprof_handler(sig, info, uc); };
  // SA_RESTART: most interrupted syscalls resume by themselves; the ones the kernel never
  // restarts (poll, epoll_wait, nanosleep, …) can see EINTR in wall mode (README).
  action.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGPROF, &action, nullptr) != 0) {
    return std::string("spanprof: installing the SIGPROF handler failed: ") + std::strerror(errno);
  }
  return {};
}

}  // namespace spanprof::detail
