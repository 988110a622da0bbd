// Strings the text and writer tests build their inputs and expectations from, and the check of
// the hex ids (trace, span, event) every writer prints.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace spanprof_test {

inline const std::string replacement = "\xEF\xBF\xBD";  // U+FFFD, what invalid UTF-8 becomes

inline std::string repeat(const std::string& piece, std::size_t times) {
  std::string out;
  for (std::size_t i = 0; i < times; ++i) out += piece;
  return out;
}

// `length` lowercase hex digits, as spanprof prints ids.
inline bool is_lower_hex(std::string_view text, std::size_t length) {
  return text.size() == length && text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}
// (A std::string would otherwise convert to both string_view and json.)
inline bool is_lower_hex(const std::string& text, std::size_t length) { return is_lower_hex(std::string_view(text), length); }
inline bool is_lower_hex(const nlohmann::json& value, std::size_t length) {
  return value.is_string() && is_lower_hex(value.get<std::string_view>(), length);
}

}  // namespace spanprof_test
