// text.hpp: UTF-8 validation, JSON string escaping (checked by parsing the result back with
// nlohmann::json), the truncation marker, and file names made from hostile transaction names.
#include <spanprof/detail/core/text.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "support/text_samples.hpp"

namespace {

namespace sd = spanprof::detail;
using json = nlohmann::json;

using spanprof_test::replacement;
using spanprof_test::repeat;
const std::string ellipsis = "\xE2\x80\xA6";     // U+2026, starts the truncation marker

std::string bytes(std::initializer_list<unsigned> values) {
  std::string out;
  for (const unsigned v : values) out += static_cast<char>(v);
  return out;
}


// Printable form for INFO: every byte outside printable ASCII as \xNN.
std::string shown(std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  for (const char raw : text) {
    const auto c = static_cast<unsigned char>(raw);
    if (c >= 0x20 && c < 0x7F && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xF];
    }
  }
  return out;
}

// Independent of text.hpp: nlohmann refuses to serialize a string that is not valid UTF-8.
bool is_valid_utf8(const std::string& text) {
  try {
    (void)json(text).dump();
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

struct escaped {
  std::string raw;     // what append_json_escaped appended
  std::string parsed;  // that, quoted, read back by nlohmann::json
  bool replaced;
};

escaped escape(std::string_view input) {
  escaped e;
  e.replaced = sd::append_json_escaped(e.raw, input);
  try {
    e.parsed = json::parse('"' + e.raw + '"').get<std::string>();
  } catch (const json::parse_error& error) {
    FAIL_CHECK("not a valid JSON string: ", shown(e.raw), " (", std::string(error.what()), ")");
  }
  return e;
}

// The promises safe_file_stem makes, whatever the input.
void check_safe_stem(const std::string& stem, std::size_t max_bytes) {
  INFO("stem \"", shown(stem), "\", max ", max_bytes);
  CHECK_FALSE(stem.empty());
  CHECK(stem.size() <= max_bytes);
  CHECK(stem != ".");
  CHECK(stem != "..");
  CHECK(stem.find('/') == std::string::npos);
  CHECK(stem.find('\0') == std::string::npos);
  CHECK(stem.front() != '.');
  for (const char c : stem) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                         c == '_' || c == '-';
    INFO("character \\x", static_cast<unsigned>(static_cast<unsigned char>(c)));
    CHECK(allowed);
  }
}

}  // namespace

TEST_CASE("utf8_sequence_length follows RFC 3629") {
  struct example {
    const char* what;
    std::string input;
    std::size_t expected;
  };
  const example examples[] = {
      {"ASCII", "A", 1},
      {"NUL", std::string(1, '\0'), 1},
      {"DEL", bytes({0x7F}), 1},
      {"U+0080, smallest 2-byte", bytes({0xC2, 0x80}), 2},
      {"U+00E9", bytes({0xC3, 0xA9}), 2},
      {"U+07FF, largest 2-byte", bytes({0xDF, 0xBF}), 2},
      {"U+0800, smallest 3-byte", bytes({0xE0, 0xA0, 0x80}), 3},
      {"U+20AC", bytes({0xE2, 0x82, 0xAC}), 3},
      {"U+D7FF, just below the surrogates", bytes({0xED, 0x9F, 0xBF}), 3},
      {"U+E000, just above the surrogates", bytes({0xEE, 0x80, 0x80}), 3},
      {"U+FFFF", bytes({0xEF, 0xBF, 0xBF}), 3},
      {"U+10000, smallest 4-byte", bytes({0xF0, 0x90, 0x80, 0x80}), 4},
      {"U+1F600", bytes({0xF0, 0x9F, 0x98, 0x80}), 4},
      {"U+10FFFF, largest code point", bytes({0xF4, 0x8F, 0xBF, 0xBF}), 4},
      {"only the first sequence counts", bytes({0xC3, 0xA9, 0x41, 0x42}), 2},
      {"overlong NUL (C0 80)", bytes({0xC0, 0x80}), 0},
      {"overlong 2-byte (C1 BF)", bytes({0xC1, 0xBF}), 0},
      {"overlong 3-byte (E0 80 80)", bytes({0xE0, 0x80, 0x80}), 0},
      {"overlong 3-byte (E0 9F BF)", bytes({0xE0, 0x9F, 0xBF}), 0},
      {"overlong 4-byte (F0 80 80 80)", bytes({0xF0, 0x80, 0x80, 0x80}), 0},
      {"overlong 4-byte (F0 8F BF BF)", bytes({0xF0, 0x8F, 0xBF, 0xBF}), 0},
      {"surrogate U+D800 (ED A0 80)", bytes({0xED, 0xA0, 0x80}), 0},
      {"surrogate U+DFFF (ED BF BF)", bytes({0xED, 0xBF, 0xBF}), 0},
      {"U+110000 (F4 90 80 80)", bytes({0xF4, 0x90, 0x80, 0x80}), 0},
      {"lead F5", bytes({0xF5, 0x80, 0x80, 0x80}), 0},
      {"lead F7", bytes({0xF7, 0xBF, 0xBF, 0xBF}), 0},
      {"5-byte form", bytes({0xF8, 0x88, 0x80, 0x80, 0x80}), 0},
      {"FE", bytes({0xFE}), 0},
      {"FF", bytes({0xFF}), 0},
      {"truncated 2-byte", bytes({0xC3}), 0},
      {"truncated 3-byte (1 of 3)", bytes({0xE2}), 0},
      {"truncated 3-byte (2 of 3)", bytes({0xE2, 0x82}), 0},
      {"truncated 4-byte (3 of 4)", bytes({0xF0, 0x9F, 0x98}), 0},
      {"2-byte lead then ASCII", bytes({0xC3, 0x41}), 0},
      {"3-byte lead, bad third byte", bytes({0xE2, 0x82, 0x41}), 0},
      {"4-byte lead, bad fourth byte", bytes({0xF0, 0x9F, 0x98, 0xC3}), 0},
      {"lone continuation 80", bytes({0x80}), 0},
      {"lone continuation BF", bytes({0xBF, 0x41}), 0},
  };
  for (const example& e : examples) {
    INFO(std::string(e.what), ": ", shown(e.input));
    CHECK(sd::utf8_sequence_length(e.input) == e.expected);
  }
}

TEST_CASE("append_json_escaped output parses back to the text") {
  SUBCASE("plain text is copied") {
    const escaped e = escape("GET /users/{id}");
    CHECK(e.raw == "GET /users/{id}");
    CHECK_FALSE(e.replaced);
  }
  SUBCASE("quotes and backslashes") {
    const escaped e = escape(R"(say "hi" \ C:\path)");
    CHECK(e.parsed == R"(say "hi" \ C:\path)");
    CHECK(e.raw == R"(say \"hi\" \\ C:\\path)");
    CHECK_FALSE(e.replaced);
  }
  SUBCASE("every control character and DEL") {
    std::string controls;
    for (int c = 0; c < 0x20; ++c) controls += static_cast<char>(c);
    controls += '\x7F';
    const escaped e = escape(controls);
    CHECK(e.parsed == controls);
    CHECK_FALSE(e.replaced);
    for (const char c : e.raw) {
      INFO("raw byte \\x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      CHECK(static_cast<unsigned char>(c) >= 0x20);
      CHECK(c != '\x7F');
    }
    CHECK(escape("a\nb").raw == "a\\nb");
    CHECK(escape(std::string("a\0b", 3)).raw == "a\\u0000b");
    CHECK(escape("\x1b[0m").raw == "\\u001b[0m");
  }
  SUBCASE("valid multi-byte text is kept byte for byte") {
    const std::string text = "caf\xC3\xA9 \xE2\x82\xAC 10 \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF";
    const escaped e = escape(text);
    CHECK(e.raw == text);
    CHECK(e.parsed == text);
    CHECK_FALSE(e.replaced);
  }
  SUBCASE("every invalid byte becomes U+FFFD") {
    struct example {
      const char* what;
      std::string input;
      std::string expected;
    };
    const example examples[] = {
        {"FF", "a" + bytes({0xFF}) + "b", "a" + replacement + "b"},
        {"overlong C0 80", bytes({0xC0, 0x80}), repeat(replacement, 2)},
        {"surrogate ED A0 80", bytes({0xED, 0xA0, 0x80}), repeat(replacement, 3)},
        {"above U+10FFFF", bytes({0xF4, 0x90, 0x80, 0x80}), repeat(replacement, 4)},
        {"truncated at the end", "ab" + bytes({0xE2, 0x82}), "ab" + repeat(replacement, 2)},
        {"lone continuation", bytes({0x80}) + "x", replacement + "x"},
        {"valid text after an invalid byte", bytes({0xFF, 0xC3, 0xA9}), replacement + "\xC3\xA9"},
        {"invalid byte next to a quote", bytes({0xFE}) + "\"", replacement + "\""},
    };
    for (const example& e : examples) {
      INFO(std::string(e.what), ": ", shown(e.input));
      const escaped out = escape(e.input);
      CHECK(out.parsed == e.expected);
      CHECK(out.replaced);
    }
  }
}

TEST_CASE("append_json_escaped on random bytes always gives valid JSON") {
  std::uint64_t seed = std::random_device{}();
  if (const char* forced = std::getenv("SPANPROF_TEST_SEED")) seed = std::strtoull(forced, nullptr, 10);
  INFO("seed ", seed, " (rerun with SPANPROF_TEST_SEED=", seed, ")");
  std::mt19937_64 rng(seed);
  // Biased towards the bytes that matter: ASCII specials, lead and continuation bytes.
  const std::vector<unsigned> interesting = {0x00, 0x1F, '"', '\\', 'a', 0x7F, 0x80, 0xBF, 0xC0, 0xC2,
                                             0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0xA0, 0x90};
  for (int round = 0; round < 5000; ++round) {
    std::string input;
    const std::size_t length = rng() % 48;
    for (std::size_t i = 0; i < length; ++i) {
      const auto pick = rng();
      input += static_cast<char>(pick % 2 == 0 ? interesting[(pick >> 1) % interesting.size()] : (pick >> 1) % 256);
    }
    INFO("round ", round, ": ", shown(input));
    std::string raw;
    const bool replaced = sd::append_json_escaped(raw, input);
    json parsed;
    REQUIRE_NOTHROW(parsed = json::parse('"' + raw + '"'));
    const std::string text = parsed.get<std::string>();
    // Replaced exactly when the input was not valid UTF-8; otherwise it reads back unchanged.
    CHECK(replaced == !is_valid_utf8(input));
    if (!replaced) CHECK(text == input);
  }
}

TEST_CASE("append_json_string quotes and marks truncation") {
  sd::json_text_stats stats;
  SUBCASE("not truncated") {
    std::string out;
    sd::append_json_string(out, "abc", stats);
    CHECK(out == "\"abc\"");
    out.clear();
    sd::append_json_string(out, "abc", stats, 3);  // original size equal: not cut
    CHECK(out == "\"abc\"");
    CHECK(stats.utf8_repaired == 0);
  }
  SUBCASE("cut at a cap") {
    std::string out;
    sd::append_json_string(out, "abcdef", stats, 1048576);
    CHECK(json::parse(out).get<std::string>() == "abcdef" + ellipsis + "[truncated from 1048576 bytes]");
    CHECK(stats.utf8_repaired == 0);
  }
  SUBCASE("counts one repair per string, not per byte") {
    std::string out;
    sd::append_json_string(out, bytes({0xFF, 0xFF, 0xFF}), stats);
    CHECK(json::parse(out).get<std::string>() == repeat(replacement, 3));
    CHECK(stats.utf8_repaired == 1);
    out.clear();
    sd::append_json_string(out, bytes({0xC0}), stats);
    CHECK(stats.utf8_repaired == 2);
  }
}

TEST_CASE("safe_file_stem") {
  SUBCASE("follows the documented rules") {
    CHECK(sd::safe_file_stem("checkout") == "checkout");
    CHECK(sd::safe_file_stem("a.b-c_D9") == "a.b-c_D9");
    CHECK(sd::safe_file_stem("GET /api/users") == "GET_api_users");          // a run becomes one '_'
    CHECK(sd::safe_file_stem("h\xC3\xA9llo") == "h_llo");                    // é is 2 bytes, one run
    CHECK(sd::safe_file_stem(".hidden") == "_hidden");                       // no hidden files
    CHECK(sd::safe_file_stem("") == "transaction");
    CHECK(sd::safe_file_stem(std::string_view("a\0b", 3)) == "a_b");
    CHECK(sd::safe_file_stem("abcdefghij", 4) == "abcd");
    CHECK(sd::safe_file_stem(std::string(4096, 'x')) == std::string(80, 'x'));  // default cap 80
  }
  SUBCASE("never names anything outside the folder, whatever the input") {
    const std::vector<std::string> hostile = {
        "../../etc/passwd",
        "/",
        "//",
        "..",
        ".",
        "...",
        "./..",
        "",
        " ",
        "a/../../b",
        "/etc/passwd",
        std::string("\0", 1),
        std::string("..\0/x", 5),
        std::string("a\0b/c\0", 6),
        "\n\r\t\x1b[31mred\x7F",
        "\xFF\xFE\xC0\x80",
        std::string(4096, 'a'),
        std::string(4096, '/'),
        std::string(4096, '.'),
        repeat("../", 1400),
        "\xE2\x80\xAE\xE2\x80\x8B caf\xC3\xA9 \xF0\x9F\x98\x80",  // RLO, ZWSP, é, emoji
        "-rf",
    };
    for (const std::size_t max_bytes : {std::size_t{11}, std::size_t{16}, std::size_t{80}, std::size_t{255}}) {
      for (const std::string& name : hostile) {
        INFO("name \"", shown(name.substr(0, 40)), "\" (", name.size(), " bytes)");
        check_safe_stem(sd::safe_file_stem(name, max_bytes), max_bytes);
      }
    }
  }
}
