// spanprof: the two pieces of protobuf's wire format the pprof writer needs — varints and
// length-delimited fields.
//
// Why a hand-written wire encoder and not libprotobuf: libprotobuf needs code generated from
// profile.proto by protoc, compiled and linked into the program, at the exact protobuf version
// of the headers. A header-only library cannot ship that cleanly — the generated .pb.cc would
// have to be compiled in the user's build with a matching protoc, or pinned to one libprotobuf
// ABI. Writing the message needs only two things from the wire format (varints and
// length-delimited fields), which fit in a few lines below; `protoc --decode` and
// `go tool pprof` check the result in tools/check-pprof.
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace spanprof::detail {

namespace protobuf_wire {

enum wire_type : std::uint32_t { varint_type = 0, length_delimited_type = 2 };

inline void append_varint(std::string& out, std::uint64_t value) {
  while (value >= 0x80) {
    out += static_cast<char>((value & 0x7F) | 0x80);
    value >>= 7;
  }
  out += static_cast<char>(value);
}

inline void append_tag(std::string& out, std::uint32_t field, wire_type type) {
  append_varint(out, (std::uint64_t{field} << 3) | type);
}

// int64, uint64 and bool fields all travel as varints; a negative int64 is its two's
// complement (ten bytes), which is how protobuf encodes int64 (not zigzag: that is sint64).
// Zero is the proto3 default and is left out, as protobuf's own encoders do.
inline void append_varint_field(std::string& out, std::uint32_t field, std::uint64_t value) {
  if (value == 0) return;
  append_tag(out, field, varint_type);
  append_varint(out, value);
}
inline void append_int64_field(std::string& out, std::uint32_t field, std::int64_t value) {
  append_varint_field(out, field, static_cast<std::uint64_t>(value));
}

// A string, bytes or embedded message; written even when empty (string_table[0] is "").
inline void append_bytes_field(std::string& out, std::uint32_t field, std::string_view bytes) {
  append_tag(out, field, length_delimited_type);
  append_varint(out, bytes.size());
  out.append(bytes.data(), bytes.size());
}

// A packed repeated varint field (proto3's default encoding for repeated scalars).
template <class Int>
inline void append_packed_field(std::string& out, std::uint32_t field, const std::vector<Int>& values,
                                std::string& scratch) {
  if (values.empty()) return;
  scratch.clear();
  for (const Int v : values) append_varint(scratch, static_cast<std::uint64_t>(v));
  append_bytes_field(out, field, scratch);
}

}  // namespace protobuf_wire

}  // namespace spanprof::detail
