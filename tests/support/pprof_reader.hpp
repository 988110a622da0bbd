// A test-only reader of pprof's profile.proto (gzip + protobuf wire format), independent of the
// writer's encoder: enough of the message to check what profile.proto and pprof's CheckValid
// require. Used by pprof_test and writers_property_test.
#pragma once

#include <doctest/doctest.h>
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace spanprof_test::pprof_reader {

// ---- reading the file back -------------------------------------------------------------------

inline std::string gunzip(const std::string& data) {
  z_stream zs{};
  REQUIRE(inflateInit2(&zs, 15 + 16) == Z_OK);  // gzip only: a zlib or raw stream fails here
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buffer[16384];
  int rc = Z_OK;
  while (rc == Z_OK) {
    zs.next_out = reinterpret_cast<Bytef*>(buffer);
    zs.avail_out = sizeof buffer;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.append(buffer, sizeof buffer - zs.avail_out);
  }
  const bool trailing = zs.avail_in != 0;
  inflateEnd(&zs);
  REQUIRE_MESSAGE(rc == Z_STREAM_END, "gzip stream does not end cleanly: zlib says ", rc);
  CHECK_FALSE(trailing);
  return out;
}

// A protobuf wire-format reader, test-only: just enough for profile.proto (varints and
// length-delimited fields; repeated scalars packed or not). Any malformation fails the test.
class wire_reader {
 public:
  explicit wire_reader(std::string_view data) : data_(data) {}
  [[nodiscard]] bool done() const noexcept { return pos_ >= data_.size(); }
  std::uint64_t varint() {
    std::uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      REQUIRE_MESSAGE(pos_ < data_.size(), "varint runs past the end of its message");
      const auto byte = static_cast<unsigned char>(data_[pos_++]);
      value |= std::uint64_t{byte & 0x7Fu} << shift;
      if ((byte & 0x80) == 0) return value;
    }
    FAIL("varint longer than 10 bytes");
    return 0;
  }
  std::string_view bytes() {
    const std::uint64_t n = varint();
    REQUIRE_MESSAGE(n <= data_.size() - pos_, "length-delimited field runs past the end of its message");
    const std::string_view out = data_.substr(pos_, n);
    pos_ += n;
    return out;
  }
  // Next field: its number and wire type.
  std::pair<std::uint32_t, std::uint32_t> tag() {
    const std::uint64_t t = varint();
    REQUIRE_MESSAGE((t >> 3) != 0, "field number 0");
    return {static_cast<std::uint32_t>(t >> 3), static_cast<std::uint32_t>(t & 7)};
  }
  // A repeated integer field, either encoding.
  template <class Int>
  void repeated(std::uint32_t type, std::vector<Int>& out) {
    if (type == 0) {
      out.push_back(static_cast<Int>(varint()));
      return;
    }
    REQUIRE(type == 2);
    wire_reader packed(bytes());
    while (!packed.done()) out.push_back(static_cast<Int>(packed.varint()));
  }
  std::int64_t scalar(std::uint32_t type) {
    REQUIRE_MESSAGE(type == 0, "a scalar field that is not a varint");
    return static_cast<std::int64_t>(varint());
  }
  void skip(std::uint32_t type) {
    if (type == 0) (void)varint();
    else if (type == 2) (void)bytes();
    else if (type == 1) pos_ += 8;
    else if (type == 5) pos_ += 4;
    else FAIL("unknown wire type ", type);
  }

 private:
  std::string_view data_;
  std::size_t pos_ = 0;
};

struct value_type { std::int64_t type = 0, unit = 0; };
struct label { std::int64_t key = 0, str = 0, num = 0, num_unit = 0; };
struct sample {
  std::vector<std::uint64_t> location_ids;
  std::vector<std::int64_t> values;
  std::vector<label> labels;
};
struct mapping {
  std::uint64_t id = 0, memory_start = 0, memory_limit = 0, file_offset = 0;
  std::int64_t filename = 0, build_id = 0;
  bool has_functions = false, has_filenames = false, has_line_numbers = false, has_inline_frames = false;
};
struct line { std::uint64_t function_id = 0; std::int64_t line = 0; };
struct location {
  std::uint64_t id = 0, mapping_id = 0, address = 0;
  std::vector<line> lines;
};
struct function { std::uint64_t id = 0; std::int64_t name = 0, system_name = 0, filename = 0, start_line = 0; };

struct profile {
  std::vector<value_type> sample_types;
  std::vector<sample> samples;
  std::vector<mapping> mappings;
  std::vector<location> locations;
  std::vector<function> functions;
  std::vector<std::string> strings;
  std::int64_t drop_frames = 0, time_nanos = 0, duration_nanos = 0, period = 0, default_sample_type = 0;
  int time_nanos_fields = 0;
  value_type period_type;
  std::vector<std::int64_t> comments;

  // The string at `index` (fails the test on an index out of range, as pprof's decoder does).
  [[nodiscard]] const std::string& str(std::int64_t index) const {
    REQUIRE_MESSAGE(index >= 0, "negative string index");
    REQUIRE_MESSAGE(static_cast<std::size_t>(index) < strings.size(), "string index ", index, " out of range");
    return strings[static_cast<std::size_t>(index)];
  }
  [[nodiscard]] const location* location_by_id(std::uint64_t id) const {
    for (const location& l : locations) if (l.id == id) return &l;
    return nullptr;
  }
  [[nodiscard]] const function* function_by_id(std::uint64_t id) const {
    for (const function& f : functions) if (f.id == id) return &f;
    return nullptr;
  }
  [[nodiscard]] const mapping* mapping_by_id(std::uint64_t id) const {
    for (const mapping& m : mappings) if (m.id == id) return &m;
    return nullptr;
  }
  // Label `key` of `s` as a string ("" if absent).
  [[nodiscard]] std::string label_str(const sample& s, std::string_view key) const {
    for (const label& l : s.labels) if (str(l.key) == key && l.str != 0) return str(l.str);
    return {};
  }
  [[nodiscard]] std::int64_t label_num(const sample& s, std::string_view key) const {
    for (const label& l : s.labels) if (str(l.key) == key) return l.num;
    return -1;
  }
};

inline value_type decode_value_type(std::string_view data) {
  value_type v;
  wire_reader r(data);
  while (!r.done()) {
    const auto [field, type] = r.tag();
    if (field == 1) v.type = r.scalar(type);
    else if (field == 2) v.unit = r.scalar(type);
    else r.skip(type);
  }
  return v;
}

inline profile decode_profile(std::string_view data) {
  profile p;
  wire_reader r(data);
  while (!r.done()) {
    const auto [field, type] = r.tag();
    switch (field) {
      case 1: REQUIRE(type == 2); p.sample_types.push_back(decode_value_type(r.bytes())); break;
      case 2: {
        REQUIRE(type == 2);
        sample s;
        wire_reader m(r.bytes());
        while (!m.done()) {
          const auto [f, t] = m.tag();
          if (f == 1) m.repeated(t, s.location_ids);
          else if (f == 2) m.repeated(t, s.values);
          else if (f == 3) {
            REQUIRE(t == 2);
            label l;
            wire_reader lr(m.bytes());
            while (!lr.done()) {
              const auto [lf, lt] = lr.tag();
              if (lf == 1) l.key = lr.scalar(lt);
              else if (lf == 2) l.str = lr.scalar(lt);
              else if (lf == 3) l.num = lr.scalar(lt);
              else if (lf == 4) l.num_unit = lr.scalar(lt);
              else lr.skip(lt);
            }
            s.labels.push_back(l);
          } else m.skip(t);
        }
        p.samples.push_back(std::move(s));
        break;
      }
      case 3: {
        REQUIRE(type == 2);
        mapping mp;
        wire_reader m(r.bytes());
        while (!m.done()) {
          const auto [f, t] = m.tag();
          switch (f) {
            case 1: mp.id = static_cast<std::uint64_t>(m.scalar(t)); break;
            case 2: mp.memory_start = static_cast<std::uint64_t>(m.scalar(t)); break;
            case 3: mp.memory_limit = static_cast<std::uint64_t>(m.scalar(t)); break;
            case 4: mp.file_offset = static_cast<std::uint64_t>(m.scalar(t)); break;
            case 5: mp.filename = m.scalar(t); break;
            case 6: mp.build_id = m.scalar(t); break;
            case 7: mp.has_functions = m.scalar(t) != 0; break;
            case 8: mp.has_filenames = m.scalar(t) != 0; break;
            case 9: mp.has_line_numbers = m.scalar(t) != 0; break;
            case 10: mp.has_inline_frames = m.scalar(t) != 0; break;
            default: m.skip(t);
          }
        }
        p.mappings.push_back(mp);
        break;
      }
      case 4: {
        REQUIRE(type == 2);
        location l;
        wire_reader m(r.bytes());
        while (!m.done()) {
          const auto [f, t] = m.tag();
          if (f == 1) l.id = static_cast<std::uint64_t>(m.scalar(t));
          else if (f == 2) l.mapping_id = static_cast<std::uint64_t>(m.scalar(t));
          else if (f == 3) l.address = static_cast<std::uint64_t>(m.scalar(t));
          else if (f == 4) {
            REQUIRE(t == 2);
            line ln;
            wire_reader lr(m.bytes());
            while (!lr.done()) {
              const auto [lf, lt] = lr.tag();
              if (lf == 1) ln.function_id = static_cast<std::uint64_t>(lr.scalar(lt));
              else if (lf == 2) ln.line = lr.scalar(lt);
              else lr.skip(lt);
            }
            l.lines.push_back(ln);
          } else m.skip(t);
        }
        p.locations.push_back(std::move(l));
        break;
      }
      case 5: {
        REQUIRE(type == 2);
        function fn;
        wire_reader m(r.bytes());
        while (!m.done()) {
          const auto [f, t] = m.tag();
          if (f == 1) fn.id = static_cast<std::uint64_t>(m.scalar(t));
          else if (f == 2) fn.name = m.scalar(t);
          else if (f == 3) fn.system_name = m.scalar(t);
          else if (f == 4) fn.filename = m.scalar(t);
          else if (f == 5) fn.start_line = m.scalar(t);
          else m.skip(t);
        }
        p.functions.push_back(fn);
        break;
      }
      case 6: REQUIRE(type == 2); p.strings.emplace_back(r.bytes()); break;
      case 7: p.drop_frames = r.scalar(type); break;
      case 9: p.time_nanos = r.scalar(type); ++p.time_nanos_fields; break;
      case 10: p.duration_nanos = r.scalar(type); break;
      case 11: REQUIRE(type == 2); p.period_type = decode_value_type(r.bytes()); break;
      case 12: p.period = r.scalar(type); break;
      case 13: r.repeated(type, p.comments); break;
      case 14: p.default_sample_type = r.scalar(type); break;
      default: r.skip(type);
    }
  }
  return p;
}

}  // namespace spanprof_test::pprof_reader
