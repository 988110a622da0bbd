// spanprof: the debug images a Sentry event lists (debug_meta.images[]), one per module the
// stacks touched, and Sentry's debug_id derived from a GNU build id.
//
// NOT ASYNC-SIGNAL-SAFE: allocates. Needs no libdw: writers include it for the type.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "build_id.hpp"
#include "module_map.hpp"

namespace spanprof::detail {

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

inline debug_image debug_image_of(const module_info& info) {
  return {"elf", info.path, info.build_id_hex, debug_id_from_build_id(info.build_id), hex_address(info.image_addr),
          hex_address(info.image_vmaddr), info.image_size};
}

}  // namespace spanprof::detail
