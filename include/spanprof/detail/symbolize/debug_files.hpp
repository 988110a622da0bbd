// spanprof: finding a module's separate debug file on this machine, never over the network:
// libdwfl's find_debuginfo callback (find_debuginfo_locally) and the .gnu_debuglink CRC check.
//
// NOT ASYNC-SIGNAL-SAFE: opens and reads files. libdwfl calls it from the collector thread,
// inside dwfl_module_getdwarf, when a module is first looked up in (module_session.hpp).
#pragma once

#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace spanprof::detail {

// CRC-32 (IEEE, reflected), the checksum .gnu_debuglink stores for its debug file.
inline bool file_crc32_matches(int fd, std::uint32_t expected) noexcept {
  std::uint32_t crc = 0xFFFFFFFFu;
  unsigned char buffer[16384];
  for (off_t at = 0;;) {
    const ssize_t bytes_read = ::pread(fd, buffer, sizeof buffer, at);
    if (bytes_read < 0) return false;
    if (bytes_read == 0) break;
    for (ssize_t i = 0; i < bytes_read; ++i) {
      crc ^= buffer[i];
      for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    at += bytes_read;
  }
  return ~crc == expected;
}

// Dwfl's find_debuginfo callback without the network: the build-id tree first (the standard
// callback; /usr/lib/debug/.build-id/xx/yyyy.debug, where Debian's -dbgsym packages install),
// then the .gnu_debuglink name beside the file, in its .debug/ folder and under
// /usr/lib/debug/<its folder> (what dwfl_standard_find_debuginfo also searches), accepting a
// file only if its build id (or, without one, its CRC) matches.
inline int find_debuginfo_locally(Dwfl_Module* mod, void** userdata, const char* modname, Dwarf_Addr base,
                                  const char* file_name, const char* debuglink_file, GElf_Word debuglink_crc,
                                  char** debuginfo_file_name) noexcept {
  const int by_id = dwfl_build_id_find_debuginfo(mod, userdata, modname, base, file_name, debuglink_file,
                                                 debuglink_crc, debuginfo_file_name);
  if (by_id >= 0 || file_name == nullptr || debuglink_file == nullptr || *debuglink_file == '\0') return by_id;
  try {
    const std::string_view main_file = file_name;
    const auto slash = main_file.rfind('/');
    const std::string dir(slash == std::string_view::npos ? "." : main_file.substr(0, slash));
    struct stat main_stat {};
    const bool have_main_stat = ::stat(file_name, &main_stat) == 0;
    const unsigned char* wanted_id = nullptr;
    GElf_Addr id_vaddr = 0;
    const int wanted_id_size = dwfl_module_build_id(mod, &wanted_id, &id_vaddr);
    for (const std::string& candidate : {dir + "/" + debuglink_file, dir + "/.debug/" + debuglink_file,
                                         "/usr/lib/debug" + dir + "/" + debuglink_file}) {
      const int fd = ::open(candidate.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;
      struct stat candidate_stat {};
      bool accepted = ::fstat(fd, &candidate_stat) == 0 &&
                      !(have_main_stat && candidate_stat.st_dev == main_stat.st_dev && candidate_stat.st_ino == main_stat.st_ino);
      if (accepted && wanted_id_size > 0) {
        Elf* elf = elf_begin(fd, ELF_C_READ_MMAP, nullptr);
        const void* id = nullptr;
        const ssize_t id_size = elf != nullptr ? dwelf_elf_gnu_build_id(elf, &id) : -1;
        accepted = id_size == wanted_id_size && std::memcmp(id, wanted_id, static_cast<std::size_t>(id_size)) == 0;
        if (elf != nullptr) elf_end(elf);
      } else if (accepted) {
        accepted = file_crc32_matches(fd, debuglink_crc);
      }
      if (accepted) {
        *debuginfo_file_name = ::strdup(candidate.c_str());
        return fd;
      }
      ::close(fd);
    }
  } catch (...) {
  }
  return -1;
}

}  // namespace spanprof::detail
