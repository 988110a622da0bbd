// spanprof: text hygiene for the writers — UTF-8 repair, JSON string escaping, file names.
//
// NOT ASYNC-SIGNAL-SAFE (appends to std::string). Runs on the collector only: the hot path
// copies bytes as they are and leaves every check to here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace spanprof::detail {

// Length of the valid UTF-8 sequence at the start of `s`, or 0 if it is not one (overlong
// forms, surrogates and code points above U+10FFFF are invalid, as RFC 3629 says).
inline std::size_t utf8_sequence_length(std::string_view s) noexcept {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b0 = byte(0);
  if (b0 < 0x80) return 1;
  auto continuation = [&](std::size_t i) { return i < s.size() && (byte(i) & 0xC0) == 0x80; };
  if (b0 >= 0xC2 && b0 <= 0xDF) return continuation(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (!continuation(1) || !continuation(2)) return 0;
    if (b0 == 0xE0 && byte(1) < 0xA0) return 0;   // overlong
    if (b0 == 0xED && byte(1) >= 0xA0) return 0;  // UTF-16 surrogate
    return 3;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (!continuation(1) || !continuation(2) || !continuation(3)) return 0;
    if (b0 == 0xF0 && byte(1) < 0x90) return 0;   // overlong
    if (b0 == 0xF4 && byte(1) >= 0x90) return 0;  // above U+10FFFF
    return 4;
  }
  return 0;
}

// Which valid UTF-8 sequences are still replaced: XML 1.0 forbids the non-characters U+FFFE
// and U+FFFF, JSON and protobuf accept every scalar value.
enum class utf8_repair_policy { keep_valid, replace_xml_non_characters };

inline constexpr std::string_view utf8_replacement_character = "\xEF\xBF\xBD";  // U+FFFD

// Appends `text` to `out` with every byte that is not part of a valid UTF-8 sequence (and, by
// `policy`, every forbidden sequence) replaced by U+FFFD; valid sequences are copied as they
// are. Each ASCII byte goes through `on_ascii(out, c)` instead, which escapes it for the format
// and returns whether it replaced it. Returns whether anything was replaced. The one repair
// loop of every writer: JSON, protobuf strings, folded names, XML.
template <class OnAscii>
inline bool append_utf8_repaired(std::string& out, std::string_view text, OnAscii on_ascii,
                                 utf8_repair_policy policy = utf8_repair_policy::keep_valid) {
  bool replaced = false;
  std::size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      replaced |= on_ascii(out, c);
      ++i;
      continue;
    }
    const std::size_t n = utf8_sequence_length(text.substr(i));
    const bool non_character = policy == utf8_repair_policy::replace_xml_non_characters && n == 3 && c == 0xEF &&
                               static_cast<unsigned char>(text[i + 1]) == 0xBF &&
                               static_cast<unsigned char>(text[i + 2]) >= 0xBE;
    if (n == 0 || non_character) {
      out += utf8_replacement_character;
      replaced = true;
      i += n == 0 ? 1 : n;
    } else {
      out.append(text.data() + i, n);
      i += n;
    }
  }
  return replaced;
}

// The same with ASCII copied as it is: protobuf `string` fields must be UTF-8 (protoc --decode
// rejects anything else) and need no escaping.
inline bool append_utf8_repaired(std::string& out, std::string_view text) {
  return append_utf8_repaired(out, text, [](std::string& o, unsigned char c) {
    o += static_cast<char>(c);
    return false;
  });
}

// Appends `text` to `out` as the inside of a JSON string: valid UTF-8 is kept, every invalid
// byte becomes U+FFFD, control characters are escaped. Returns whether anything was replaced.
inline bool append_json_escaped(std::string& out, std::string_view text) {
  return append_utf8_repaired(out, text, [](std::string& o, unsigned char c) {
    static constexpr char hex[] = "0123456789abcdef";
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\r': o += "\\r"; break;
      case '\t': o += "\\t"; break;
      case '\b': o += "\\b"; break;
      case '\f': o += "\\f"; break;
      default:
        if (c < 0x20 || c == 0x7F) {
          o += "\\u00";
          o += hex[c >> 4];
          o += hex[c & 0xF];
        } else {
          o += static_cast<char>(c);
        }
    }
    return false;
  });
}

// Counts what a JSON writer repaired, so the collector can report it.
struct json_text_stats {
  std::uint64_t utf8_repaired = 0;
};

// Appends `"text"` (quoted), plus the truncation marker when the text was cut at a cap.
inline void append_json_string(std::string& out, std::string_view text, json_text_stats& stats,
                               std::size_t original_size = 0) {
  out += '"';
  if (append_json_escaped(out, text)) ++stats.utf8_repaired;
  if (original_size > text.size()) {
    out += "\xE2\x80\xA6[truncated from ";
    out += std::to_string(original_size);
    out += " bytes]";
  }
  out += '"';
}

// A file name made from a transaction name: only [A-Za-z0-9._-] survive, runs of anything else
// become one '_', a leading '.' becomes '_' (no hidden files, no "." or ".."), and it is cut at
// `max_bytes`. The result can never name a path outside the output folder: it has no '/', no
// NUL, and is never "." or "..". Empty input gives "transaction".
inline std::string safe_file_stem(std::string_view name, std::size_t max_bytes = 80) {
  std::string stem;
  bool last_was_underscore = false;
  for (const char raw : name) {
    if (stem.size() >= max_bytes) break;
    const auto c = static_cast<unsigned char>(raw);
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '-' || c == '_';
    if (keep && !(c == '.' && stem.empty())) {
      stem += static_cast<char>(c);
      last_was_underscore = c == '_';
    } else if (!last_was_underscore) {
      stem += '_';
      last_was_underscore = true;
    }
  }
  while (!stem.empty() && stem.back() == '_') stem.pop_back();
  if (stem.empty()) stem = "transaction";
  return stem;
}

}  // namespace spanprof::detail
