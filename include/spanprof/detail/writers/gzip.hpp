// spanprof: gzip with zlib, for the files that are compressed (pprof's .pb.gz).
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once

#include <zlib.h>

#include <stdexcept>
#include <string>
#include <string_view>

namespace spanprof::detail {

// gzip (RFC 1952) of `data` with zlib. Throws std::runtime_error if zlib fails (out of memory):
// the collector catches it and counts the transaction as dropped.
inline std::string gzip_compress(std::string_view data) {
  z_stream zs{};
  // 15 window bits + 16: a gzip header and trailer rather than zlib's; zlib sets the header's
  // mtime to 0, so identical profiles give identical files.
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("spanprof: zlib deflateInit2 failed");
  }
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(data.size())));
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));  // zlib's API is not const-correct
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  const std::size_t written = zs.total_out;
  deflateEnd(&zs);
  // deflateBound is enough for one Z_FINISH call, so anything but Z_STREAM_END is a failure.
  if (rc != Z_STREAM_END) throw std::runtime_error("spanprof: zlib deflate failed");
  out.resize(written);
  return out;
}

}  // namespace spanprof::detail
