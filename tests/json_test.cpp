// writers/json.hpp: the JSON writer's commas, nesting, escaping (through text.hpp), numbers and
// raw fragments. Expected texts are written out by hand; nlohmann::json parses the results
// where validity is the point.
#include <spanprof/detail/writers/json.hpp>

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace {

namespace sd = spanprof::detail;
using json = nlohmann::json;

struct fixture {
  std::string out;
  sd::json_text_stats stats;
  sd::json_writer w{out, stats};
};

}  // namespace

TEST_CASE("json: empty containers") {
  fixture f;
  SUBCASE("object") {
    f.w.begin_object().end_object();
    CHECK(f.out == "{}");
  }
  SUBCASE("array") {
    f.w.begin_array().end_array();
    CHECK(f.out == "[]");
  }
  SUBCASE("empty ones inside others get their commas") {
    f.w.begin_array().begin_object().end_object().begin_array().end_array().begin_object().end_object().end_array();
    CHECK(f.out == "[{},[],{}]");
    CHECK(json::parse(f.out) == json::parse("[{},[],{}]"));
  }
  CHECK(f.w.depth() == 0);
}

TEST_CASE("json: commas between members and elements, none after a key or at the start") {
  fixture f;
  f.w.begin_object();
  f.w.key("a").number(1);
  f.w.key("b").begin_array().number(2).number(3).end_array();
  f.w.key("c").begin_object().key("d").boolean(true).key("e").boolean(false).end_object();
  f.w.key("f").plain_string("x");
  f.w.end_object();
  CHECK(f.out == R"({"a":1,"b":[2,3],"c":{"d":true,"e":false},"f":"x"})");
  const json parsed = json::parse(f.out);
  CHECK(parsed["b"][1] == 3);
  CHECK(parsed["c"]["e"] == false);
}

TEST_CASE("json: each level keeps its own first-member state") {
  fixture f;
  // Deep enough to cross a byte of the bit stack, with members before and after each child.
  constexpr int depth = 20;
  for (int i = 0; i < depth; ++i) f.w.begin_array().number(i);
  for (int i = 0; i < depth; ++i) f.w.number(100 + i).end_array();
  const json parsed = json::parse(f.out);
  json level = parsed;
  for (int i = 0; i < depth; ++i) {
    REQUIRE(level.is_array());
    CHECK(level[0] == i);
    CHECK(level.back() == 100 + depth - 1 - i);
    if (i + 1 < depth) level = level[1];
  }
  CHECK(f.out.starts_with("[0,[1,[2,"));
  CHECK(f.out.ends_with("118],119]"));
}

TEST_CASE("json: keys and strings are escaped: quotes, backslashes, control characters") {
  fixture f;
  const std::string text = std::string("q\"b\\n\nr\rt\tz") + '\0' + "\x01\x1f\x7f";
  f.w.begin_object().key_text(text).string(text).end_object();
  const std::string escaped = R"(q\"b\\n\nr\rt\tz\u0000\u0001\u001f\u007f)";
  CHECK(f.out == "{\"" + escaped + "\":\"" + escaped + "\"}");
  const json parsed = json::parse(f.out);
  REQUIRE(parsed.contains(text));
  CHECK(parsed[text] == text);
  CHECK(f.stats.utf8_repaired == 0);
}

TEST_CASE("json: invalid UTF-8 is repaired and counted; valid multi-byte text is kept") {
  fixture f;
  f.w.begin_array();
  f.w.string("caf\xC3\xA9 \xE2\x82\xAC");  // valid: kept
  f.w.string("bad \xFF end");              // a stray byte
  f.w.string("cut \xE2\x82");              // a sequence cut short
  f.w.string("\xC0\xAF");                 // an overlong '/': two invalid bytes
  f.w.end_array();
  CHECK(f.out == "[\"caf\xC3\xA9 \xE2\x82\xAC\",\"bad \xEF\xBF\xBD end\",\"cut \xEF\xBF\xBD\xEF\xBF\xBD\","
                 "\"\xEF\xBF\xBD\xEF\xBF\xBD\"]");
  CHECK(json::parse(f.out)[0] == "caf\xC3\xA9 \xE2\x82\xAC");
  CHECK(f.stats.utf8_repaired == 3);  // one per string repaired, not per byte

  fixture g;
  g.w.begin_object().key_text("k\xFF").string("v\xFE").end_object();
  const json parsed = json::parse(g.out);  // repaired: valid UTF-8, so nlohmann accepts it
  CHECK(parsed["k\xEF\xBF\xBD"] == "v\xEF\xBF\xBD");
  CHECK(g.stats.utf8_repaired == 2);
}

TEST_CASE("json: a string cut at a cap carries the truncation marker") {
  fixture f;
  f.w.begin_array().string("abc", 10).end_array();
  CHECK(f.out == "[\"abc\xE2\x80\xA6[truncated from 10 bytes]\"]");
}

TEST_CASE("json: integers, addresses and decimal strings") {
  fixture f;
  f.w.begin_array();
  f.w.number(0).number(-42).number(std::numeric_limits<std::int64_t>::min()).number(std::numeric_limits<std::uint64_t>::max());
  f.w.number(std::uint32_t{7}).address(0).address(0x7f00deadbeefull).decimal_string(18446744073709551615ull);
  f.w.end_array();
  CHECK(f.out == "[0,-42,-9223372036854775808,18446744073709551615,7,\"0x0\",\"0x7f00deadbeef\",\"18446744073709551615\"]");
  CHECK(json::parse(f.out)[3] == std::numeric_limits<std::uint64_t>::max());
}

TEST_CASE("json: doubles: shortest round trip, a point when they look integral, strings when not finite") {
  fixture f;
  f.w.begin_array();
  f.w.number(3.0).number(0.1).number(-2.5).number(1e300).number(1e-7).number(123456789012345680.0);
  f.w.number(std::numeric_limits<double>::quiet_NaN()).number(std::numeric_limits<double>::infinity());
  f.w.number(-std::numeric_limits<double>::infinity());
  f.w.fixed(23.84, 1).fixed(2.0, 1).fixed(0.05, 3);
  f.w.end_array();
  CHECK(f.out == R"([3.0,0.1,-2.5,1e+300,1e-07,1.2345678901234568e+17,"nan","inf","-inf",23.8,2.0,0.050])");
  const json parsed = json::parse(f.out);
  CHECK(parsed[0].is_number_float());
  CHECK(parsed[1] == 0.1);
  CHECK(parsed[5] == 123456789012345680.0);
}

TEST_CASE("json: raw fragments and caller-written values take part in the commas") {
  fixture f;
  std::string inner;
  sd::json_writer iw{inner, f.stats};
  iw.begin_array().number(1).number(2).end_array();
  f.w.begin_object();
  f.w.key("inner").raw(inner);
  f.w.key("t").value_with([](std::string& o) { o += "\"2026-01-01T00:00:00.000000Z\""; });
  f.w.key("b").boolean(true);
  f.w.end_object();
  CHECK(f.out == R"({"inner":[1,2],"t":"2026-01-01T00:00:00.000000Z","b":true})");
  CHECK(json::parse(f.out)["inner"][1] == 2);
}

TEST_CASE("json: values at the top level get no commas") {
  fixture f;
  f.w.begin_object().end_object();
  f.w.raw("\n");
  f.w.begin_object().key("a").number(1).end_object();
  CHECK(f.out == "{}\n{\"a\":1}");
}
