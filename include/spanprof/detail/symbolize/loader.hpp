// spanprof: what the dynamic loader says is loaded — its load/unload counters, and every object
// dl_iterate_phdr reports (name, bias, executable ranges, build id read from memory), with the
// file path each one was loaded from.
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only: dl_iterate_phdr takes the loader's lock, and
// reading the objects allocates. module_map.hpp keeps the history of these reports;
// sample/unwind_dwarf.hpp reads the counters to know when its libdw session is stale.
#pragma once

#include <link.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "build_id.hpp"

namespace spanprof::detail {

struct address_range {
  std::uintptr_t start = 0, end = 0;  // [start, end)
  [[nodiscard]] bool contains(std::uintptr_t address) const noexcept { return address >= start && address < end; }
};

// One object as dl_iterate_phdr reports it.
struct observed_module {
  std::string loader_name;    // dlpi_name ("" for the main program)
  std::string path;           // absolute path for code_file; refresh() resolves it
  std::uintptr_t bias = 0;    // dlpi_addr: run-time address minus ELF virtual address
  std::uintptr_t image_vmaddr = 0, image_size = 0;  // lowest PT_LOAD vaddr, span to the highest end
  std::vector<address_range> executable_ranges;     // run-time addresses of the PF_X PT_LOADs
  std::vector<std::uint8_t> build_id;               // NT_GNU_BUILD_ID from the loaded PT_NOTE
  bool is_main_executable = false;
};

struct loader_snapshot {
  std::uint64_t loads = 0, unloads = 0;  // dlpi_adds, dlpi_subs: read in the same locked walk
  std::vector<observed_module> modules;
};

// The loader's load/unload counters (dlpi_adds, dlpi_subs), or false if dl_iterate_phdr
// reported nothing or an entry too short to hold them (glibc before 2.4); both are then 0. Equal
// counters mean nothing was loaded or unloaded in between, for the cost of one loader-lock round.
inline bool read_loader_counters(std::uint64_t& loads, std::uint64_t& unloads) noexcept {
  struct counters {
    std::uint64_t loads = 0, unloads = 0;
    bool present = false;
  } seen;
  const int found = dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t size, void* out) -> int {
        auto& counters_out = *static_cast<counters*>(out);
        if (size >= offsetof(dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
          counters_out.loads = info->dlpi_adds;
          counters_out.unloads = info->dlpi_subs;
          counters_out.present = true;
        }
        return 1;  // the counters are the same in every entry: stop at the first
      },
      &seen);
  loads = seen.loads;
  unloads = seen.unloads;
  return found == 1 && seen.present;
}

// Every loaded object, with its build id read from memory: the module may be unloaded right
// after the walk, and its file on disk may already be another build.
inline bool read_loaded_modules(loader_snapshot& snapshot) {
  struct walk {
    loader_snapshot* out;
    bool first = true, failed = false;
  } state{&snapshot};
  snapshot.modules.clear();
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* raw) -> int {
        auto& walker = *static_cast<walk*>(raw);
        // An exception must not unwind through the loader: it holds its lock around this call.
        try {
          if (walker.first) {
            walker.out->loads = info->dlpi_adds;
            walker.out->unloads = info->dlpi_subs;
          }
          observed_module object;
          object.loader_name = info->dlpi_name != nullptr ? info->dlpi_name : "";
          object.is_main_executable = walker.first && object.loader_name.empty();  // glibc lists the program first, unnamed
          walker.first = false;
          object.bias = info->dlpi_addr;
          std::uintptr_t lowest = UINTPTR_MAX, highest = 0;
          for (int i = 0; i < info->dlpi_phnum; ++i) {
            const ElfW(Phdr)& ph = info->dlpi_phdr[i];
            if (ph.p_type == PT_LOAD) {
              lowest = std::min<std::uintptr_t>(lowest, ph.p_vaddr);
              highest = std::max<std::uintptr_t>(highest, ph.p_vaddr + ph.p_memsz);
              if ((ph.p_flags & PF_X) != 0) {
                object.executable_ranges.push_back({object.bias + ph.p_vaddr, object.bias + ph.p_vaddr + ph.p_memsz});
              }
            } else if (ph.p_type == PT_NOTE && object.build_id.empty()) {
              object.build_id = gnu_build_id_in_notes(reinterpret_cast<const unsigned char*>(object.bias + ph.p_vaddr),
                                                 ph.p_memsz, ph.p_align);
            }
          }
          if (lowest < highest) {
            object.image_vmaddr = lowest;
            object.image_size = highest - lowest;
          }
          walker.out->modules.push_back(std::move(object));
          return 0;
        } catch (...) {
          walker.failed = true;
          return 1;
        }
      },
      &state);
  return !state.failed && !state.first;
}

// The absolute path of a loaded object; the loader name itself when it names no file (the vdso).
inline std::string resolve_module_path(const observed_module& object) {
  if (object.is_main_executable) {
    char buffer[PATH_MAX];
    const ssize_t length = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
    return length > 0 ? std::string(buffer, static_cast<std::size_t>(length)) : std::string("/proc/self/exe");
  }
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(object.loader_name.c_str(), nullptr), &std::free);
  return real != nullptr ? std::string(real.get()) : object.loader_name;
}

}  // namespace spanprof::detail
