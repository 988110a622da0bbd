// spanprof: symbolization — sampled addresses to module, function, file:line and inlined frames,
// plus the build ids a server needs to symbolicate them again.
//
// NOT ASYNC-SIGNAL-SAFE, and not thread-safe: collector thread only. It takes the dynamic
// loader's lock (dl_iterate_phdr), opens files, allocates, and drives elfutils' libdw, which is
// none of those things. One symbolizer belongs to one thread.
//
// - module_map: every object dl_iterate_phdr ever reported, with the refresh times between which
//   it was seen loaded. A refresh costs one callback when nothing was loaded or unloaded since
//   the last one (dlpi_adds/dlpi_subs). An address goes to a module only when that module
//   certainly, or alone possibly, occupied it at the sample's time; otherwise it is reported as
//   "unknown module (changed)", never under a guessed name.
// - symbolizer: one libdwfl session per module, opened when the module is first seen and kept
//   open, so a library dlclose'd (or replaced on disk) before its samples are symbolized still
//   resolves from the file that was loaded, checked against the build id read from memory.
//   Per address: DWARF (function, file, line, inlined chain) → ELF symbol → module+offset. The
//   results are cached in a flat hash map keyed by address, cleared when full.
#pragma once

#include <cxxabi.h>
#include <dwarf.h>
#include <elf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace spanprof::detail {

enum class frame_quality : std::uint8_t {
  dwarf,          // function, file and line from DWARF; inlined frames included
  symtab,         // ELF symbol table (.symtab or .dynsym): function and symbol_offset, no file/line
  module_offset,  // no symbol covers the address: function is "<module file name>+0x<offset>"
  unknown,        // no module known to occupy the address at the sample's time
};

struct symbolized_frame {
  std::string_view function;       // demangled; see frame_quality for what it holds otherwise
  std::string_view file;           // full path as the line table names it; empty when unknown
  std::uint32_t line = 0;          // 0 when unknown: never guessed
  std::uint32_t symbol_offset = 0; // symtab frames: looked-up address minus the symbol's start
  frame_quality quality = frame_quality::unknown;
  bool inlined = false;            // an inlined instance: the next frame is the function it was inlined into
};

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

inline constexpr std::int64_t time_before_everything_ns = std::numeric_limits<std::int64_t>::min();
inline constexpr std::int64_t time_after_everything_ns = std::numeric_limits<std::int64_t>::max();

struct module_info : observed_module {
  std::uint32_t id = 0;       // index in module_map::modules()
  std::string build_id_hex;   // Sentry's code_id; "" without a build id
  std::uintptr_t image_addr = 0;
  bool in_app = false;        // the main executable, or its path contains a configured substring
  // Seen loaded at every refresh in [first_seen_ns, last_seen_ns]; not seen at absent_before_ns
  // (the refresh before; time_before_everything_ns if it was there at the first refresh), nor
  // at gone_ns (time_after_everything_ns while it is loaded).
  std::int64_t absent_before_ns = time_before_everything_ns, first_seen_ns = 0, last_seen_ns = 0;
  std::int64_t gone_ns = time_after_everything_ns;

  [[nodiscard]] bool loaded() const noexcept { return gone_ns == time_after_everything_ns; }
  [[nodiscard]] bool certainly_loaded_at(std::int64_t time_ns) const noexcept {
    return time_ns >= first_seen_ns && time_ns <= last_seen_ns;
  }
  [[nodiscard]] bool contains(std::uintptr_t address) const noexcept {
    return std::any_of(executable_ranges.begin(), executable_ranges.end(),
                       [&](const address_range& r) { return r.contains(address); });
  }
  [[nodiscard]] std::string_view file_name() const noexcept {
    const std::string_view p = path;
    const auto slash = p.rfind('/');
    return slash == std::string_view::npos ? p : p.substr(slash + 1);
  }
};

inline void append_hex(std::string& out, std::uint64_t value) {
  char digits[16];
  int n = 0;
  do {
    digits[n++] = "0123456789abcdef"[value & 0xF];
    value >>= 4;
  } while (value != 0);
  while (n > 0) out.push_back(digits[--n]);
}

inline std::string hex_address(std::uint64_t value) {
  std::string out = "0x";
  append_hex(out, value);
  return out;
}

inline std::string bytes_to_hex(std::span<const std::uint8_t> bytes) {
  std::string out;
  for (const std::uint8_t b : bytes) {
    out.push_back("0123456789abcdef"[b >> 4]);
    out.push_back("0123456789abcdef"[b & 0xF]);
  }
  return out;
}

// Sentry's debug_id for an ELF image: the first 16 bytes of the GNU build id (zero-padded when
// shorter) read as a GUID whose first three fields (4, 2 and 2 bytes) are little-endian, so
// they are byte-swapped for display. sentry-native does exactly this in
// src/modulefinder/sentry_modulefinder_linux.c (sentry__procmaps_read_ids_from_elf: memcpy of
// MIN(size, 16) bytes into a nil uuid, then htonl/htons on the three fields), and its test
// build_id_parser expects code_id 1c304742f114215453a8a777f6cdb3a2b8505e11 to give debug_id
// 4247301c-14f1-5421-53a8-a777f6cdb3a2; Relay's NativeDebugImage docs show the same mapping.
// Empty without a build id (Sentry's fallback hashes .text, which is not mapped with the image).
inline std::string debug_id_from_build_id(std::span<const std::uint8_t> build_id) {
  if (build_id.empty()) return {};
  std::uint8_t guid[16] = {};
  std::copy_n(build_id.begin(), std::min<std::size_t>(build_id.size(), 16), guid);
  std::reverse(guid, guid + 4);
  std::reverse(guid + 4, guid + 6);
  std::reverse(guid + 6, guid + 8);
  const std::string hex = bytes_to_hex(guid);
  return hex.substr(0, 8) + '-' + hex.substr(8, 4) + '-' + hex.substr(12, 4) + '-' + hex.substr(16, 4) + '-' +
         hex.substr(20);
}

// A function's name without the suffixes GCC gives the copies it makes of it (".constprop.0",
// ".isra.0", ".part.0", ".cold"; demangled: " [clone .constprop.0]"), whose samples belong
// with the function's, and without a symbol version ("memcpy@@GLIBC_2.14", as glibc's .symtab
// spells some). Other dots are kept ("_GLOBAL__sub_I_file.cpp").
inline std::string_view without_compiler_suffixes(std::string_view name) noexcept {
  if (const auto at = name.find(" [clone ."); at != std::string_view::npos) name = name.substr(0, at);
  std::size_t cut = std::min(name.size(), name.find('@'));
  for (const std::string_view suffix : {".constprop.", ".isra.", ".part.", ".cold", ".localalias", ".lto_priv."}) {
    const auto at = name.find(suffix);
    if (at != std::string_view::npos && at > 0 && at < cut) cut = at;
  }
  return name.substr(0, cut);
}

// The descriptor of the first NT_GNU_BUILD_ID note named "GNU" in a PT_NOTE segment; every
// length is checked against the segment, so a malformed note ends the search instead of a read
// past it.
inline std::vector<std::uint8_t> gnu_build_id_in_notes(const unsigned char* notes, std::size_t size_bytes,
                                                       std::size_t alignment) {
  const std::size_t align = alignment == 8 ? 8 : 4;  // the ELF gABI allows only these two
  const auto padded = [align](std::size_t n) { return (n + align - 1) & ~(align - 1); };
  std::size_t at = 0;
  while (size_bytes - at >= sizeof(Elf64_Nhdr)) {  // Elf32_Nhdr and Elf64_Nhdr are both 3 words
    Elf64_Nhdr header;
    std::memcpy(&header, notes + at, sizeof header);
    at += sizeof header;
    const std::size_t name_at = at;
    if (padded(header.n_namesz) > size_bytes - at) break;
    at += padded(header.n_namesz);
    if (header.n_descsz > size_bytes - at) break;
    if (header.n_type == NT_GNU_BUILD_ID && header.n_namesz == 4 && std::memcmp(notes + name_at, "GNU", 4) == 0) {
      return {notes + at, notes + at + header.n_descsz};
    }
    if (padded(header.n_descsz) > size_bytes - at) break;
    at += padded(header.n_descsz);
  }
  return {};
}

// The loader's load/unload counters, or false if dl_iterate_phdr reported nothing.
inline bool read_loader_counters(std::uint64_t& loads, std::uint64_t& unloads) noexcept {
  std::uint64_t counters[2] = {0, 0};
  const int found = dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* out) -> int {
        static_cast<std::uint64_t*>(out)[0] = info->dlpi_adds;
        static_cast<std::uint64_t*>(out)[1] = info->dlpi_subs;
        return 1;  // the counters are the same in every entry: stop at the first
      },
      counters);
  loads = counters[0];
  unloads = counters[1];
  return found == 1;
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
        auto& s = *static_cast<walk*>(raw);
        // An exception must not unwind through the loader: it holds its lock around this call.
        try {
          if (s.first) {
            s.out->loads = info->dlpi_adds;
            s.out->unloads = info->dlpi_subs;
          }
          observed_module m;
          m.loader_name = info->dlpi_name != nullptr ? info->dlpi_name : "";
          m.is_main_executable = s.first && m.loader_name.empty();  // glibc lists the program first, unnamed
          s.first = false;
          m.bias = info->dlpi_addr;
          std::uintptr_t lowest = UINTPTR_MAX, highest = 0;
          for (int i = 0; i < info->dlpi_phnum; ++i) {
            const ElfW(Phdr)& ph = info->dlpi_phdr[i];
            if (ph.p_type == PT_LOAD) {
              lowest = std::min<std::uintptr_t>(lowest, ph.p_vaddr);
              highest = std::max<std::uintptr_t>(highest, ph.p_vaddr + ph.p_memsz);
              if ((ph.p_flags & PF_X) != 0) {
                m.executable_ranges.push_back({m.bias + ph.p_vaddr, m.bias + ph.p_vaddr + ph.p_memsz});
              }
            } else if (ph.p_type == PT_NOTE && m.build_id.empty()) {
              m.build_id = gnu_build_id_in_notes(reinterpret_cast<const unsigned char*>(m.bias + ph.p_vaddr),
                                                 ph.p_memsz, ph.p_align);
            }
          }
          if (lowest < highest) {
            m.image_vmaddr = lowest;
            m.image_size = highest - lowest;
          }
          s.out->modules.push_back(std::move(m));
          return 0;
        } catch (...) {
          s.failed = true;
          return 1;
        }
      },
      &state);
  return !state.failed && !state.first;
}

// The absolute path of a loaded object; the loader name itself when it names no file (the vdso).
inline std::string resolve_module_path(const observed_module& m) {
  if (m.is_main_executable) {
    char buffer[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", buffer, sizeof buffer - 1);
    return n > 0 ? std::string(buffer, static_cast<std::size_t>(n)) : std::string("/proc/self/exe");
  }
  std::unique_ptr<char, decltype(&std::free)> real(::realpath(m.loader_name.c_str(), nullptr), &std::free);
  return real != nullptr ? std::string(real.get()) : m.loader_name;
}

enum class module_lookup_status : std::uint8_t { found, no_module, changed };

struct module_lookup {
  const module_info* module = nullptr;
  module_lookup_status status = module_lookup_status::no_module;
};

class module_map {
 public:
  explicit module_map(std::vector<std::string> in_app_substrings = {}) : in_app_substrings_(std::move(in_app_substrings)) {}

  // Reads the loader's list when its counters moved since the last refresh; otherwise only
  // extends every loaded module's interval to now_ns. Returns true when modules came or went.
  bool refresh(std::int64_t now_ns) {
    std::uint64_t loads = 0, unloads = 0;
    if (!read_loader_counters(loads, unloads)) return false;
    if (refreshed_ && loads == loads_ && unloads == unloads_) {
      now_ns = std::max(now_ns, last_refresh_ns_);
      for (auto& m : modules_) {
        if (m->loaded()) m->last_seen_ns = now_ns;
      }
      last_refresh_ns_ = now_ns;
      return false;
    }
    loader_snapshot snapshot;
    if (!read_loaded_modules(snapshot)) return false;
    for (observed_module& m : snapshot.modules) {
      // realpath and readlink only for modules not already known: a refresh stays cheap.
      if (loaded_match(m) == nullptr) m.path = resolve_module_path(m);
    }
    return apply(snapshot, now_ns);
  }

  // Records what the loader reported at now_ns (refresh() reads it; tests pass synthetic lists).
  // A module is the same as a loaded one when its loader name, bias and build id are.
  bool apply(const loader_snapshot& snapshot, std::int64_t now_ns) {
    if (refreshed_) now_ns = std::max(now_ns, last_refresh_ns_);
    const std::size_t known_before = modules_.size();
    std::vector<bool> seen(known_before, false);
    std::size_t new_modules = 0, gone_modules = 0;
    for (const observed_module& o : snapshot.modules) {
      if (module_info* m = loaded_match(o)) {
        m->last_seen_ns = now_ns;
        seen[m->id] = true;
        continue;
      }
      auto m = std::make_unique<module_info>();
      static_cast<observed_module&>(*m) = o;
      if (m->path.empty()) m->path = o.loader_name;
      m->id = static_cast<std::uint32_t>(modules_.size());
      m->build_id_hex = bytes_to_hex(m->build_id);
      m->image_addr = m->bias + m->image_vmaddr;
      m->in_app = m->is_main_executable ||
                  std::any_of(in_app_substrings_.begin(), in_app_substrings_.end(), [&](const std::string& s) {
                    return !s.empty() && m->path.find(s) != std::string::npos;
                  });
      m->absent_before_ns = refreshed_ ? last_refresh_ns_ : time_before_everything_ns;
      m->first_seen_ns = m->last_seen_ns = now_ns;
      modules_.push_back(std::move(m));
      ++new_modules;
    }
    for (std::size_t id = 0; id < known_before; ++id) {
      if (modules_[id]->loaded() && !seen[id]) {
        modules_[id]->gone_ns = now_ns;
        ++gone_modules;
      }
    }
    // More loads (or unloads) than modules that appeared (or went) means an object came and
    // went between these two refreshes without either seeing it: any address this gap cannot
    // pin to a module seen on both sides of it might have been that object's.
    if (refreshed_ && (snapshot.loads - loads_ > new_modules || snapshot.unloads - unloads_ > gone_modules)) {
      unseen_churn_refresh_ns_.push_back(now_ns);
    }
    loads_ = snapshot.loads;
    unloads_ = snapshot.unloads;
    last_refresh_ns_ = now_ns;
    refreshed_ = true;
    return new_modules != 0 || gone_modules != 0;
  }

  // The module that held `address` at time_ns: one seen loaded at refreshes on both sides of
  // time_ns; else the only one that may have been (seen on one side only) when its gap had no
  // unseen loads or unloads; `changed` when more than one may have been, or that gap had
  // unseen churn; `no_module` when none.
  [[nodiscard]] module_lookup find(std::uintptr_t address, std::int64_t time_ns) const noexcept {
    const module_info* possible = nullptr;
    std::size_t possible_count = 0;
    bool churn = false;
    for (const auto& m : modules_) {
      if (!m->contains(address)) continue;
      if (m->certainly_loaded_at(time_ns)) return {m.get(), module_lookup_status::found};
      if (time_ns > m->absent_before_ns && time_ns < m->first_seen_ns) {
        churn = churn || had_unseen_churn(m->first_seen_ns);
      } else if (time_ns > m->last_seen_ns && time_ns < m->gone_ns) {
        churn = churn || (!m->loaded() && had_unseen_churn(m->gone_ns));
      } else {
        continue;
      }
      possible = m.get();
      ++possible_count;
    }
    if (possible_count == 1 && !churn) return {possible, module_lookup_status::found};
    if (possible_count != 0) return {nullptr, module_lookup_status::changed};
    return {};
  }

  // Every module ever seen, by id; the objects never move while the map lives.
  [[nodiscard]] std::span<const std::unique_ptr<module_info>> modules() const noexcept { return modules_; }

 private:
  [[nodiscard]] module_info* loaded_match(const observed_module& o) const noexcept {
    for (const auto& m : modules_) {
      if (m->loaded() && m->bias == o.bias && m->loader_name == o.loader_name && m->build_id == o.build_id) return m.get();
    }
    return nullptr;
  }
  [[nodiscard]] bool had_unseen_churn(std::int64_t refresh_ns) const noexcept {
    return std::binary_search(unseen_churn_refresh_ns_.begin(), unseen_churn_refresh_ns_.end(), refresh_ns);
  }

  std::vector<std::string> in_app_substrings_;
  std::vector<std::unique_ptr<module_info>> modules_;
  std::vector<std::int64_t> unseen_churn_refresh_ns_;  // refreshes whose preceding gap had unseen churn
  std::uint64_t loads_ = 0, unloads_ = 0;
  std::int64_t last_refresh_ns_ = time_before_everything_ns;
  bool refreshed_ = false;
};

// Sentry debug_meta.images[] entry (Relay's NativeDebugImage). image_size is a number there
// (u64), image_addr and image_vmaddr are "0x..." strings.
struct debug_image {
  std::string type = "elf";
  std::string code_file;     // the module's path
  std::string code_id;       // GNU build id, hex; "" without one
  std::string debug_id;      // debug_id_from_build_id; "" without a build id
  std::string image_addr;    // "0x..." lowest PT_LOAD address in memory
  std::string image_vmaddr;  // "0x..." the same in the file (0 for PIE and shared libraries)
  std::uint64_t image_size = 0;
};

inline debug_image debug_image_of(const module_info& m) {
  return {"elf", m.path, m.build_id_hex, debug_id_from_build_id(m.build_id), hex_address(m.image_addr),
          hex_address(m.image_vmaddr), m.image_size};
}

struct symbolizer_options {
  std::size_t max_cached_addresses = 65536;   // the address cache is cleared when it reaches this
  std::vector<std::string> in_app_modules;    // a module whose path contains one of these is in_app
  // dwfl_standard_find_debuginfo ends with a debuginfod download when DEBUGINFOD_URLS is set
  // (Debian's libdebuginfod-common offers to set it in every login shell): network I/O of
  // unbounded length inside the profiled service. Off unless asked for; local debug files are
  // found either way.
  bool use_debuginfod = false;
};

struct resolved_address {
  std::uintptr_t instruction_addr = 0;  // as sampled
  std::uintptr_t relative_addr = 0;     // instruction_addr - module bias (addr2line's address); 0 without a module
  const module_info* module = nullptr;  // null for unknown frames
  std::span<const symbolized_frame> frames;  // innermost first, never empty
};

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
  void insert_or_assign(const entry& e) {
    if ((used_ + 1) * 2 > slots_.size()) grow();
    std::size_t i = slot_of(e.address);
    while (slots_[i].address != 0 && slots_[i].address != e.address) i = (i + 1) & (slots_.size() - 1);
    if (slots_[i].address == 0) ++used_;
    slots_[i] = e;
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
    for (const entry& e : old) {
      if (e.address != 0) insert_or_assign(e);
    }
  }

  std::vector<entry> slots_;
  std::size_t used_ = 0;
  unsigned shift_ = 64;
};

// CRC-32 (IEEE, reflected), the checksum .gnu_debuglink stores for its debug file.
inline bool file_crc32_matches(int fd, std::uint32_t expected) noexcept {
  std::uint32_t crc = 0xFFFFFFFFu;
  unsigned char buffer[16384];
  for (off_t at = 0;;) {
    const ssize_t n = ::pread(fd, buffer, sizeof buffer, at);
    if (n < 0) return false;
    if (n == 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      crc ^= buffer[i];
      for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    at += n;
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

class symbolizer {
 public:
  explicit symbolizer(symbolizer_options options = {})
      : options_(std::move(options)), map_(options_.in_app_modules) {
    elf_version(EV_CURRENT);  // libelf refuses elf_begin until a version is set
  }

  // Refreshes the module map (see module_map::refresh) and opens every module seen for the first
  // time, so its file stays open after an unload. Call it before resolving a batch whose samples
  // are older than now_ns.
  bool refresh(std::int64_t now_ns) {
    const bool changed = map_.refresh(now_ns);
    open_new_modules();
    return changed;
  }
  // For tests: the same with a synthetic loader list.
  bool apply(const loader_snapshot& snapshot, std::int64_t now_ns) {
    const bool changed = map_.apply(snapshot, now_ns);
    open_new_modules();
    return changed;
  }

  // The frames at `pc` as sampled at sample_time_ns (same clock as refresh). Return addresses
  // (every frame but the leaf) are looked up at pc - 1, inside the call, so the line is the
  // call's. Never fails: unknown addresses give one `unknown` frame. The frames and their
  // strings stay valid until the cache is cleared: clear_cache(), or a miss when
  // max_cached_addresses are cached; cache_generation() counts the clears.
  resolved_address resolve(std::uintptr_t pc, std::int64_t sample_time_ns, bool is_return_address) noexcept {
    resolved_address out;
    out.instruction_addr = pc;
    const std::uintptr_t lookup = is_return_address && pc != 0 ? pc - 1 : pc;
    if (lookup == 0) {
      out.frames = unknown_module_frame_;
      return out;
    }
    const address_cache::entry* hit = cache_.find(lookup);
    if (hit != nullptr) {
      const module_info& m = *map_.modules()[hit->module_id];
      if (m.certainly_loaded_at(sample_time_ns)) return from_cache(out, m, *hit);
    }
    try {
      const module_lookup where = map_.find(lookup, sample_time_ns);
      if (where.status != module_lookup_status::found) {
        out.frames = where.status == module_lookup_status::changed ? changed_module_frame_ : unknown_module_frame_;
        return out;
      }
      const module_info& m = *where.module;
      if (hit != nullptr && hit->module_id == m.id) return from_cache(out, m, *hit);
      ++misses_;
      if (cache_.size() >= std::max<std::size_t>(options_.max_cached_addresses, 1)) clear_cache();
      scratch_.clear();
      symbolize(m, lookup, scratch_);
      const address_cache::entry e{lookup, store_frames(scratch_), m.id, static_cast<std::uint32_t>(scratch_.size())};
      cache_.insert_or_assign(e);
      return from_cache(out, m, e);
    } catch (...) {  // out of memory: report the address as unknown rather than fail the collector
      out = resolved_address{pc, 0, nullptr, unknown_module_frame_};
      return out;
    }
  }

  // The debug_meta.images of the modules these addresses fell in, each once, in first-use order.
  [[nodiscard]] std::vector<debug_image> images_for(std::span<const resolved_address> addresses) const {
    std::vector<debug_image> images;
    std::vector<bool> added(map_.modules().size(), false);
    for (const resolved_address& a : addresses) {
      if (a.module == nullptr || added[a.module->id]) continue;
      added[a.module->id] = true;
      images.push_back(debug_image_of(*a.module));
    }
    return images;
  }

  void clear_cache() noexcept {
    ++cache_generation_;
    cache_.clear();
    frame_blocks_.clear();
    block_used_ = block_size_ = 0;
    strings_.clear();
    interned_.clear();
    demangled_.clear();
    qualified_names_.clear();
  }

  [[nodiscard]] const module_map& modules() const noexcept { return map_; }
  [[nodiscard]] std::size_t cached_addresses() const noexcept { return cache_.size(); }
  [[nodiscard]] std::uint64_t misses() const noexcept { return misses_; }  // addresses symbolized, not served from cache
  [[nodiscard]] std::uint64_t cache_generation() const noexcept { return cache_generation_; }

 private:
  struct dwfl_closer {
    void operator()(Dwfl* d) const noexcept { dwfl_end(d); }
  };
  struct function_range {
    Dwarf_Addr start, end;
    Dwarf_Off die_offset;
  };
  static constexpr std::uint32_t no_scope = UINT32_MAX;  // directly in the CU
  struct die_scope {
    Dwarf_Off die_offset;
    std::uint32_t scope;  // index into cu_index::scopes of the enclosing namespace/class/function
  };
  // A function's inlined calls with their code ranges and nesting: built on the function's
  // first address, so each further address finds its chain without walking DIEs (clang writes
  // no DW_AT_sibling: each walk would re-read every subtree it steps over).
  struct inlined_call {
    Dwarf_Off die_offset;
    std::uint32_t caller;  // index of the enclosing inlined call; no_scope: the function itself
    std::uint32_t depth;
  };
  struct inlined_range {
    Dwarf_Addr start, end;
    std::uint32_t call;
  };
  struct inline_tree {
    std::vector<inlined_call> calls;
    std::vector<inlined_range> ranges;
  };
  // One CU's functions, and where each subprogram DIE sits (for names DWARF gives unqualified).
  struct cu_index {
    std::vector<function_range> functions;  // by start address
    std::vector<die_scope> scopes;          // namespaces, classes, functions entered; DIE order
    std::vector<die_scope> subprograms;     // every subprogram DIE entered; DIE (= offset) order
  };
  // What is open for one module, and its lazily built indexes (libdw has its own caches of
  // CUs, lines and symbols behind them).
  struct module_session {
    std::unique_ptr<Dwfl, dwfl_closer> dwfl;
    Dwfl_Module* module = nullptr;  // null: no usable file, so module+offset frames only
    bool dwarf_indexed = false;
    Dwarf* dwarf = nullptr;
    Dwarf_Addr dwarf_bias = 0;
    std::vector<function_range> cu_ranges;  // die_offset is the CU DIE's
    std::unordered_map<Dwarf_Off, cu_index> cu_indexes;  // by CU DIE offset, built on first use
    std::unordered_map<Dwarf_Off, inline_tree> inline_trees;  // by subprogram DIE offset, on first use
  };

  resolved_address& from_cache(resolved_address& out, const module_info& m, const address_cache::entry& e) const noexcept {
    out.module = &m;
    out.relative_addr = out.instruction_addr - m.bias;
    out.frames = {e.frames, e.frame_count};
    return out;
  }

  // Copies a run of frames into blocks that never move, so every span handed out stays valid
  // until the cache is cleared, however many addresses are resolved meanwhile.
  const symbolized_frame* store_frames(const std::vector<symbolized_frame>& run) {
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

  void open_new_modules() {
    const auto all = map_.modules();
    while (sessions_.size() < all.size()) {
      sessions_.emplace_back();
      open_module(*all[sessions_.size() - 1], sessions_.back());
    }
  }

  void open_module(const module_info& m, module_session& s) {
    static const Dwfl_Callbacks local_callbacks{dwfl_build_id_find_elf, find_debuginfo_locally, nullptr, nullptr};
    static const Dwfl_Callbacks standard_callbacks{dwfl_build_id_find_elf, dwfl_standard_find_debuginfo, nullptr, nullptr};
    // The running executable through /proc/self/exe: that is the loaded file even if it was
    // deleted or replaced since. Its real path still names it, for .gnu_debuglink look-ups.
    const int fd = ::open(m.is_main_executable ? "/proc/self/exe" : m.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    s.dwfl.reset(dwfl_begin(options_.use_debuginfod ? &standard_callbacks : &local_callbacks));
    if (s.dwfl == nullptr) {
      ::close(fd);
      return;
    }
    dwfl_report_begin(s.dwfl.get());
    Dwfl_Module* mod = dwfl_report_elf(s.dwfl.get(), m.path.c_str(), m.path.c_str(), fd, m.bias, true);
    dwfl_report_end(s.dwfl.get(), nullptr, nullptr);
    if (mod == nullptr) {
      ::close(fd);  // consumed only on success
      s.dwfl.reset();
      return;
    }
    // The file must be the build that was loaded, at the bias it was loaded at: a library
    // rebuilt on disk after loading would otherwise lend its names to the old code.
    const unsigned char* id = nullptr;
    GElf_Addr id_vaddr = 0;
    const int id_size = dwfl_module_build_id(mod, &id, &id_vaddr);
    Dwarf_Addr elf_bias = 0;
    const bool same_build = m.build_id.empty() || (id_size == static_cast<int>(m.build_id.size()) &&
                                                   std::memcmp(id, m.build_id.data(), m.build_id.size()) == 0);
    if (!same_build || dwfl_module_getelf(mod, &elf_bias) == nullptr || elf_bias != m.bias) {
      s.dwfl.reset();
      return;
    }
    s.module = mod;
  }

  void symbolize(const module_info& m, std::uintptr_t address, std::vector<symbolized_frame>& out) {
    module_session& s = sessions_[m.id];
    if (s.module != nullptr && (dwarf_frames(s, address, out) || symtab_frame(s.module, address, out))) return;
    std::string name(m.file_name());
    name += "+0x";
    append_hex(name, address - m.bias);
    out.push_back({intern(name), {}, 0, 0, frame_quality::module_offset, false});
  }

  bool symtab_frame(Dwfl_Module* mod, std::uintptr_t address, std::vector<symbolized_frame>& out) {
    GElf_Off offset = 0;
    GElf_Sym sym{};
    const char* name = dwfl_module_addrinfo(mod, address, &offset, &sym, nullptr, nullptr, nullptr);
    // A symbol without a size "covers" everything up to the next one: for a stripped object's
    // internal functions that would be the name of an unrelated exported neighbour.
    if (name == nullptr || *name == '\0' || sym.st_size == 0 || offset >= sym.st_size) return false;
    out.push_back({demangle(name), {}, 0, static_cast<std::uint32_t>(offset), frame_quality::symtab, false});
    return true;
  }

  bool dwarf_frames(module_session& s, std::uintptr_t address, std::vector<symbolized_frame>& out) {
    if (!s.dwarf_indexed) index_compile_units(s);
    if (s.dwarf == nullptr) return false;
    const Dwarf_Addr at = address - s.dwarf_bias;
    const function_range* cu_range = find_range(s.cu_ranges, at);
    Dwarf_Die cu;
    if (cu_range == nullptr || dwarf_offdie(s.dwarf, cu_range->die_offset, &cu) == nullptr) return false;
    const function_range* function = find_range(cu_index_of(s, cu).functions, at);
    Dwarf_Die subprogram;
    if (function == nullptr || dwarf_offdie(s.dwarf, function->die_offset, &subprogram) == nullptr) return false;

    // The concrete chain from the function down to the innermost inlined call holding `at`.
    auto [tree, new_tree] = s.inline_trees.try_emplace(function->die_offset);
    if (new_tree) index_inlined_calls(subprogram, tree->second);
    std::uint32_t innermost = no_scope, deepest = 0;
    for (const inlined_range& r : tree->second.ranges) {
      if (r.start <= at && at < r.end && tree->second.calls[r.call].depth > deepest) {
        innermost = r.call;
        deepest = tree->second.calls[r.call].depth;
      }
    }
    std::vector<Dwarf_Die> chain(deepest + 1, subprogram);  // outermost first
    for (std::uint32_t call = innermost; call != no_scope; call = tree->second.calls[call].caller) {
      if (dwarf_offdie(s.dwarf, tree->second.calls[call].die_offset, &chain[tree->second.calls[call].depth]) == nullptr) {
        return false;
      }
    }
    std::string_view file;
    int line = 0;
    if (Dwarf_Line* row = dwarf_getsrc_die(&cu, at)) {
      file = source_path(cu, dwarf_linesrc(row, nullptr, nullptr));
      if (dwarf_lineno(row, &line) != 0 || line < 0) line = 0;
    }
    for (auto die = chain.rbegin(); die != chain.rend(); ++die) {
      const int tag = dwarf_tag(&*die);
      if (tag != DW_TAG_inlined_subroutine && tag != DW_TAG_subprogram) continue;
      std::string_view name = linkage_name(&*die);
      Dwarf_Addr base = 0, entry = 0, first_end = 0;
      if (name.empty() && tag == DW_TAG_subprogram && dwarf_ranges(&*die, 0, &base, &entry, &first_end) > 0) {
        // GCC gives internal-linkage C++ functions no linkage name; the mangled ELF symbol that
        // starts exactly at the function's entry (its first range: a .cold part's own symbol
        // is a derived "foo.cold") has it. A C function keeps its DWARF name, not an alias.
        GElf_Off offset = 0;
        GElf_Sym sym{};
        const char* symbol = dwfl_module_addrinfo(s.module, entry + s.dwarf_bias, &offset, &sym, nullptr, nullptr, nullptr);
        if (symbol != nullptr && offset == 0 && std::string_view(symbol).starts_with("_Z")) name = demangle(symbol);
      }
      if (name.empty()) name = qualified_dwarf_name(s, &*die);
      out.push_back({name, file, static_cast<std::uint32_t>(line), 0, frame_quality::dwarf,
                     tag == DW_TAG_inlined_subroutine});
      if (tag == DW_TAG_subprogram) break;
      // The frame it was inlined into is at the call site, which the inlined DIE records.
      Dwarf_Attribute attr;
      Dwarf_Word call_file = 0, call_line = 0;
      file = {};
      line = 0;
      Dwarf_Files* files = nullptr;
      std::size_t file_count = 0;
      if (dwarf_formudata(dwarf_attr(&*die, DW_AT_call_file, &attr), &call_file) == 0 &&
          dwarf_getsrcfiles(&cu, &files, &file_count) == 0 && call_file < file_count) {
        file = source_path(cu, dwarf_filesrc(files, call_file, nullptr, nullptr));
      }
      if (dwarf_formudata(dwarf_attr(&*die, DW_AT_call_line, &attr), &call_line) == 0 && call_line <= INT_MAX) {
        line = static_cast<int>(call_line);
      }
    }
    return !out.empty();
  }

  // The address ranges of every CU, from the CU DIEs alone (clang writes no .debug_aranges,
  // which dwfl_module_addrdie would need). Once per module.
  void index_compile_units(module_session& s) {
    s.dwarf_indexed = true;
    s.dwarf = dwfl_module_getdwarf(s.module, &s.dwarf_bias);
    if (s.dwarf == nullptr) return;
    Dwarf_Addr bias = 0;
    for (Dwarf_Die* cu = nullptr; (cu = dwfl_module_nextcu(s.module, cu, &bias)) != nullptr;) {
      add_ranges(cu, s.cu_ranges);
    }
    sort_ranges(s.cu_ranges);
  }

  cu_index& cu_index_of(module_session& s, Dwarf_Die& cu) {
    auto [it, inserted] = s.cu_indexes.try_emplace(dwarf_dieoffset(&cu));
    if (inserted) index_cu(cu, it->second);
    return it->second;
  }

  // Once per CU, on its first use. Code-bearing subprograms sit at the top, in namespaces, and
  // (GCC) in local classes inside functions and their blocks; only those DIEs are entered. The
  // rest (inlined-call trees, call sites, variables, parameters, enumerations) is most of a CU
  // and holds no function definitions. Depth first, children before siblings: DIE order.
  static void index_cu(Dwarf_Die& cu, cu_index& index) {
    std::vector<std::pair<Dwarf_Die, std::uint32_t>> stack;  // a DIE and its enclosing scope
    Dwarf_Die child;
    if (dwarf_child(&cu, &child) == 0) stack.emplace_back(child, no_scope);
    while (!stack.empty()) {
      auto [die, scope] = stack.back();
      stack.pop_back();
      Dwarf_Die next;
      if (dwarf_siblingof(&die, &next) == 0) stack.emplace_back(next, scope);
      const int tag = dwarf_tag(&die);
      if (tag == DW_TAG_subprogram) {
        add_ranges(&die, index.functions);
        index.subprograms.push_back({dwarf_dieoffset(&die), scope});
      }
      const bool names_a_scope = tag == DW_TAG_subprogram || tag == DW_TAG_namespace || tag == DW_TAG_class_type ||
                                 tag == DW_TAG_structure_type || tag == DW_TAG_union_type;
      if ((names_a_scope || tag == DW_TAG_lexical_block) && dwarf_child(&die, &next) == 0) {
        if (names_a_scope) {
          index.scopes.push_back({dwarf_dieoffset(&die), scope});
          scope = static_cast<std::uint32_t>(index.scopes.size() - 1);
        }
        stack.emplace_back(next, scope);
      }
    }
    sort_ranges(index.functions);
  }

  // Every inlined call in the function, through the blocks around them. Once per function.
  static void index_inlined_calls(Dwarf_Die& subprogram, inline_tree& tree) {
    std::vector<std::pair<Dwarf_Die, std::uint32_t>> stack;  // a DIE and its enclosing inlined call
    Dwarf_Die child;
    if (dwarf_child(&subprogram, &child) == 0) stack.emplace_back(child, no_scope);
    while (!stack.empty()) {
      auto [die, caller] = stack.back();
      stack.pop_back();
      Dwarf_Die next;
      if (dwarf_siblingof(&die, &next) == 0) stack.emplace_back(next, caller);
      const int tag = dwarf_tag(&die);
      if (tag == DW_TAG_inlined_subroutine) {
        const auto call = static_cast<std::uint32_t>(tree.calls.size());
        tree.calls.push_back({dwarf_dieoffset(&die), caller, caller == no_scope ? 1 : tree.calls[caller].depth + 1});
        Dwarf_Addr base = 0, start = 0, end = 0;
        for (ptrdiff_t offset = 0; (offset = dwarf_ranges(&die, offset, &base, &start, &end)) > 0;) {
          if (start < end) tree.ranges.push_back({start, end, call});
        }
        caller = call;
      } else if (tag != DW_TAG_lexical_block && tag != DW_TAG_try_block && tag != DW_TAG_catch_block) {
        continue;  // parameters, variables, call sites: no inlined calls inside
      }
      if (dwarf_child(&die, &next) == 0) stack.emplace_back(next, caller);
    }
  }

  static void add_ranges(Dwarf_Die* die, std::vector<function_range>& into) {
    Dwarf_Addr base = 0, start = 0, end = 0;
    for (ptrdiff_t offset = 0; (offset = dwarf_ranges(die, offset, &base, &start, &end)) > 0;) {
      // Code discarded at link time keeps its DWARF with address 0 (or a -1/-2 tombstone).
      if (start != 0 && start < end) into.push_back({start, end, dwarf_dieoffset(die)});
    }
  }
  static void sort_ranges(std::vector<function_range>& ranges) {
    std::sort(ranges.begin(), ranges.end(), [](const function_range& a, const function_range& b) { return a.start < b.start; });
  }
  // Ranges do not overlap in sound DWARF; a few steps back tolerate the odd exception.
  static const function_range* find_range(const std::vector<function_range>& ranges, Dwarf_Addr at) noexcept {
    auto it = std::upper_bound(ranges.begin(), ranges.end(), at, [](Dwarf_Addr a, const function_range& r) { return a < r.start; });
    for (int steps = 0; it != ranges.begin() && steps < 8; ++steps) {
      --it;
      if (at < it->end) return &*it;
    }
    return nullptr;
  }

  // The linkage name, demangled, through abstract_origin/specification; empty without one.
  std::string_view linkage_name(Dwarf_Die* die) {
    Dwarf_Attribute attr;
    const char* linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
    if (linkage == nullptr) linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
    return linkage != nullptr ? demangle(linkage) : std::string_view{};
  }

  // The DWARF name with the namespaces, classes and functions around its declaration, as the
  // demangler writes them but without parameters (DWARF would need its types printed): C
  // functions, main, and internal-linkage functions inlined where no symbol names them.
  std::string_view qualified_dwarf_name(module_session& s, Dwarf_Die* die) {
    const Dwarf_Die named = declaration_of(*die);
    Dwarf_Die declaration = named;
    const auto known = qualified_names_.find(named.addr);
    if (known != qualified_names_.end()) return known->second;
    const char* plain = dwarf_diename(&declaration);
    std::string name = plain != nullptr ? plain : "";
    // Up through the scopes the index recorded; a function's definition may sit apart from its
    // declaration (DW_AT_specification), whose scopes are then the ones that count.
    Dwarf_Die cu;
    bool hopped = plain != nullptr;
    for (int depth = 0; hopped && depth < 64; ++depth) {
      hopped = false;
      if (dwarf_diecu(&declaration, &cu, nullptr, nullptr) == nullptr || dwarf_cu_getdwarf(cu.cu) != s.dwarf) break;
      const cu_index& index = cu_index_of(s, cu);  // (a dwz file's DIEs are not in ours: stop there)
      const Dwarf_Off offset = dwarf_dieoffset(&declaration);
      const auto it = std::lower_bound(index.subprograms.begin(), index.subprograms.end(), offset,
                                       [](const die_scope& d, Dwarf_Off o) { return d.die_offset < o; });
      std::uint32_t scope = it != index.subprograms.end() && it->die_offset == offset ? it->scope : no_scope;
      for (; scope != no_scope; scope = index.scopes[scope].scope) {
        Dwarf_Die enclosing;
        if (dwarf_offdie(s.dwarf, index.scopes[scope].die_offset, &enclosing) == nullptr) break;
        const int tag = dwarf_tag(&enclosing);
        const char* scope_name = dwarf_diename(&enclosing);
        name.insert(0, std::string(scope_name != nullptr ? scope_name : tag == DW_TAG_namespace ? "(anonymous namespace)" : "(anonymous)") + "::");
        const Dwarf_Die declared = tag == DW_TAG_subprogram ? declaration_of(enclosing) : enclosing;
        if (declared.addr != enclosing.addr) {  // go on from where that function is declared
          declaration = declared;
          hopped = true;
          break;
        }
      }
    }
    return qualified_names_.emplace(named.addr, intern(name)).first->second;
  }

  // Through abstract_origin and specification to the DIE that declares it (bounded: corrupt
  // DWARF may loop).
  static Dwarf_Die declaration_of(Dwarf_Die die) {
    for (int hops = 0; hops < 8; ++hops) {
      Dwarf_Attribute attr;
      Dwarf_Die next;
      if (dwarf_formref_die(dwarf_attr(&die, DW_AT_abstract_origin, &attr), &next) == nullptr &&
          dwarf_formref_die(dwarf_attr(&die, DW_AT_specification, &attr), &next) == nullptr) {
        break;
      }
      die = next;
    }
    return die;
  }

  // Keyed by the name's address: libdw's strings stay put while the module's session lives.
  std::string_view demangle(const char* symbol) {
    if (const auto it = demangled_.find(symbol); it != demangled_.end()) return it->second;
    int status = -1;
    std::unique_ptr<char, decltype(&std::free)> plain(abi::__cxa_demangle(symbol, nullptr, nullptr, &status), &std::free);
    const std::string_view name = intern(without_compiler_suffixes(status == 0 && plain != nullptr ? plain.get() : symbol));
    demangled_.emplace(symbol, name);
    return name;
  }

  // Line-table names are absolute or relative to the CU's DW_AT_comp_dir.
  std::string_view source_path(Dwarf_Die& cu, const char* name) {
    if (name == nullptr || *name == '\0' || std::strcmp(name, "???") == 0) return {};  // libdw's "no file"
    if (name[0] == '/') return intern(name);
    Dwarf_Attribute attr;
    const char* dir = dwarf_formstring(dwarf_attr(&cu, DW_AT_comp_dir, &attr));
    return dir != nullptr ? intern(std::string(dir) + "/" + name) : intern(name);
  }

  std::string_view intern(std::string_view text) {
    if (const auto it = interned_.find(text); it != interned_.end()) return *it;
    return *interned_.insert(std::string_view(strings_.emplace_back(text))).first;
  }

  static constexpr symbolized_frame unknown_module_frame_[1] = {{"unknown module", {}, 0, 0, frame_quality::unknown, false}};
  static constexpr symbolized_frame changed_module_frame_[1] = {
      {"unknown module (changed)", {}, 0, 0, frame_quality::unknown, false}};

  symbolizer_options options_;
  module_map map_;
  std::deque<module_session> sessions_;  // by module id
  address_cache cache_;
  std::vector<std::unique_ptr<symbolized_frame[]>> frame_blocks_;  // the cached runs of frames
  std::size_t block_used_ = 0, block_size_ = 0;
  std::vector<symbolized_frame> scratch_;
  std::deque<std::string> strings_;       // never moves its elements: views into them stay valid
  std::unordered_set<std::string_view> interned_;
  std::unordered_map<const char*, std::string_view> demangled_;
  std::unordered_map<const void*, std::string_view> qualified_names_;  // by the declaration DIE's address
  std::uint64_t misses_ = 0, cache_generation_ = 0;
};

}  // namespace spanprof::detail
