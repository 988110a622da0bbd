// spanprof: build ids as the loader maps them (the NT_GNU_BUILD_ID note of a PT_NOTE segment),
// and the hex text build ids and addresses are written in (code_id, "0x..." image addresses,
// "module+0x..." frames).
//
// NOT ASYNC-SIGNAL-SAFE: the hex helpers allocate. gnu_build_id_in_notes reads only the bytes it
// is given, each length checked first.
#pragma once

#include <elf.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace spanprof::detail {

inline void append_hex(std::string& out, std::uint64_t value) {
  char digits[16];
  int digit_count = 0;
  do {
    digits[digit_count++] = "0123456789abcdef"[value & 0xF];
    value >>= 4;
  } while (value != 0);
  while (digit_count > 0) out.push_back(digits[--digit_count]);
}

inline std::string hex_address(std::uint64_t value) {
  std::string out = "0x";
  append_hex(out, value);
  return out;
}

inline std::string bytes_to_hex(std::span<const std::uint8_t> bytes) {
  std::string out;
  for (const std::uint8_t byte : bytes) {
    out.push_back("0123456789abcdef"[byte >> 4]);
    out.push_back("0123456789abcdef"[byte & 0xF]);
  }
  return out;
}

// The descriptor of the first NT_GNU_BUILD_ID note named "GNU" in a PT_NOTE segment; every
// length is checked against the segment, so a malformed note ends the search instead of a read
// past it.
inline std::vector<std::uint8_t> gnu_build_id_in_notes(const unsigned char* notes, std::size_t size_bytes,
                                                       std::size_t alignment) {
  const std::size_t align = alignment == 8 ? 8 : 4;  // the ELF gABI allows only these two
  const auto padded = [align](std::size_t bytes) { return (bytes + align - 1) & ~(align - 1); };
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

}  // namespace spanprof::detail
