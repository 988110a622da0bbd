// writers/flamegraph_svg.hpp: the SVG rendering of folded counts, checked as XML.
#include "support/flame_files.hpp"

using namespace spanprof_test;
namespace sd = spanprof::detail;

TEST_CASE("render_flamegraph_svg: a titled box per frame, escaped names, widths from the counts") {
  const sd::folded_counts counts = {
      {"root;a;b", 2}, {"root;a", 1}, {"root;<script>&\"'", 1}, {"root;bad\xFF" "byte", 0},
      {std::string("root;") + std::string(5000, 'x'), 4}};
  sd::json_text_stats repaired;
  const std::string svg = sd::render_flamegraph_svg(counts, {.title = "GET /a&b <c>"}, repaired);
  INFO(svg.substr(0, 2000));
  CHECK(xml_problem(svg) == "");
  CHECK(svg.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\""));
  // all, root, a, b, <script>, xxxx: six frames; the zero count is not a frame
  CHECK(count_of(svg, "<g class=\"frame\">") == 6);
  CHECK(count_of(svg, "<title>") == 6);
  CHECK(svg.find("<title>all (8 samples, 100.00%)</title>") != std::string::npos);
  CHECK(svg.find("<title>a (3 samples, 37.50%)</title>") != std::string::npos);
  CHECK(svg.find("<title>b (2 samples, 25.00%)</title>") != std::string::npos);
  CHECK(svg.find("&lt;script&gt;&amp;&quot;&apos;") != std::string::npos);
  CHECK(svg.find("<script>") == std::string::npos);
  CHECK(svg.find("GET /a&amp;b &lt;c&gt;") != std::string::npos);
  CHECK(svg.find("bad") == std::string::npos);
  // The long name's label is cut ("..") to fit its box; its title keeps the whole name.
  CHECK(svg.find(std::string(5000, 'x') + " (4 samples") != std::string::npos);
  CHECK(count_of(svg, std::string(5000, 'x')) == 1);
  CHECK(svg.find("x..</text>") != std::string::npos);
  // Deterministic: same input, same bytes.
  sd::json_text_stats again;
  CHECK(sd::render_flamegraph_svg(counts, {.title = "GET /a&b <c>"}, again) == svg);

  SUBCASE("invalid UTF-8 and XML's forbidden characters are replaced and counted") {
    sd::json_text_stats r;
    const std::string bad = sd::render_flamegraph_svg({{"f\xFFg;\x01h\xEF\xBF\xBF", 1}}, {.title = "t"}, r);
    CHECK(xml_problem(bad) == "");
    CHECK(bad.find('\x01') == std::string::npos);
    CHECK(bad.find("\xEF\xBF\xBF") == std::string::npos);
    CHECK(bad.find("f\xEF\xBF\xBDg") != std::string::npos);
    CHECK(r.utf8_repaired >= 2);
  }
  SUBCASE("no samples still gives a valid file") {
    sd::json_text_stats r;
    const std::string empty = sd::render_flamegraph_svg({}, {.title = "t"}, r);
    CHECK(xml_problem(empty) == "");
    CHECK(count_of(empty, "<g class=\"frame\">") == 0);
  }
}
