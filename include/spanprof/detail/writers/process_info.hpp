// spanprof: the process and host facts the writers put in every event (Sentry's
// device/os contexts, Chrome trace and speedscope metadata).
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once

#include <sys/utsname.h>
#include <unistd.h>
#include <fstream>
#include <string>
#include <string_view>


namespace spanprof::detail {

inline constexpr std::string_view spanprof_version = "0.1.0";

struct process_info {
  int pid = 0;
  std::string name;  // /proc/self/comm
  std::string os_name = "Linux";
  std::string os_version;
  std::string architecture;
  std::string host_name;

  static process_info current() {
    process_info info;
    info.pid = static_cast<int>(::getpid());
    std::ifstream comm("/proc/self/comm");
    std::getline(comm, info.name);
    if (info.name.empty()) info.name = "process";
    utsname uts{};
    if (::uname(&uts) == 0) {
      info.os_name = uts.sysname;
      info.os_version = uts.release;
      info.architecture = uts.machine;
      info.host_name = uts.nodename;
    }
    return info;
  }
};

}  // namespace spanprof::detail
