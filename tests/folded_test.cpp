// writers/folded.hpp: frame names, aggregation caps, and the .folded files (and their flame
// graphs) the collector writes, checked against the Chrome trace of the same transactions.
// flamegraph.pl and xmllint run in the 'clients' suite.
#include "support/flame_files.hpp"

using namespace spanprof_test;
namespace sd = spanprof::detail;

TEST_CASE("folded_frame_name: the separator, line breaks, trailing numbers and bad UTF-8 are repaired") {
  sd::json_text_stats stats;
  CHECK(sd::folded_frame_name("a;b;c", stats) == "a:b:c");
  CHECK(sd::folded_frame_name("x\ny\rz\tw", stats) == "x y z w");
  CHECK(sd::folded_frame_name("std::vector<int> const&", stats) == "std::vector<int> const&");  // spaces stay
  CHECK(sd::folded_frame_name("retry 7", stats) == "retry_7");
  CHECK(sd::folded_frame_name("retry 7 3", stats) == "retry 7_3");
  CHECK(sd::folded_frame_name("ratio 1.5", stats) == "ratio_1.5");
  CHECK(sd::folded_frame_name("wide  12", stats) == "wide__12");
  CHECK(sd::folded_frame_name("retry 7\n", stats) == "retry_7");  // the newline is trailing space
  CHECK(sd::folded_frame_name("x7", stats) == "x7");
  CHECK(sd::folded_frame_name("version 1.2.3", stats) == "version 1.2.3");  // not a number to flamegraph.pl
  CHECK(sd::folded_frame_name("ends in dot .", stats) == "ends in dot .");
  CHECK(sd::folded_frame_name("", stats) == "[unknown]");
  CHECK(sd::folded_frame_name("  ", stats) == "[unknown]");
  CHECK(stats.utf8_repaired == 0);
  CHECK(sd::folded_frame_name("caf\xC3\xA9", stats) == "caf\xC3\xA9");
  CHECK(stats.utf8_repaired == 0);
  CHECK(sd::folded_frame_name("bad\xFF", stats) == "bad\xEF\xBF\xBD");
  CHECK(stats.utf8_repaired == 1);
}

TEST_CASE("folded_frame_name: any name gives a frame both flamegraph.pl and speedscope read back whole") {
  const unsigned seed = std::random_device{}();
  INFO("seed ", seed);
  std::mt19937 rng(seed);
  const std::string alphabet = "ab ;\n\r\t0123456789.\xFF";
  static const std::regex line_re(R"(^(.*)\s+?(\d+(?:\.\d*)?)$)");
  static const std::regex speedscope_re(R"(^(.*) (\d+)$)");
  for (int round = 0; round < 500; ++round) {
    std::string raw;
    const std::size_t length = rng() % 12;
    for (std::size_t i = 0; i < length; ++i) raw += alphabet[rng() % alphabet.size()];
    sd::json_text_stats stats;
    const std::string frame = sd::folded_frame_name(raw, stats);
    INFO("raw ", json(std::string(raw.begin(), raw.end())).dump(-1, ' ', false, json::error_handler_t::replace));
    CHECK(frame.find(';') == std::string::npos);
    CHECK(frame.find_first_of("\n\r\t") == std::string::npos);
    const std::string line = "root;" + frame + " 5";
    std::smatch m, s;
    REQUIRE(std::regex_match(line, m, line_re));
    CHECK(m[1].str() == "root;" + frame);
    CHECK(m[2].str() == "5");
    CHECK_FALSE(std::regex_match(m[1].str(), line_re));
    REQUIRE(std::regex_match(line, s, speedscope_re));
    CHECK(s[1].str() == "root;" + frame);
  }
}

TEST_CASE("folded_aggregates: counts merge per name, caps fill [other], rewrites are rate-limited") {
  sd::folded_aggregates agg({.max_names = 2, .max_stacks_per_name = 2, .min_rewrite_interval_ns = 1'000'000'000});
  std::uint64_t stacks_over = 0, names_over = 0;
  REQUIRE(agg.add("GET /a", {{"GET /a;x", 2}, {"GET /a;y", 1}}, stacks_over, names_over) != nullptr);
  auto* a = agg.add("GET /a", {{"GET /a;x", 3}, {"GET /a;z", 4}}, stacks_over, names_over);
  REQUIRE(a != nullptr);
  CHECK(a->stacks.at("GET /a;x") == 5);
  CHECK(a->stacks.at("GET /a;y") == 1);
  CHECK(a->stacks.count("GET /a;z") == 0);
  CHECK(a->other == 4);
  CHECK(stacks_over == 1);
  CHECK(a->with_other().at("GET /a;[other]") == 4);
  CHECK(a->transactions == 2);
  CHECK(a->stem == "GET_a");
  // A second name with the same stem gets its own file.
  auto* b = agg.add("GET ?a", {{"GET ?a;x", 1}}, stacks_over, names_over);
  REQUIRE(b != nullptr);
  CHECK(b->stem != a->stem);
  CHECK(b->stem.starts_with("GET_a-"));
  CHECK(agg.add("GET /c", {{"GET /c", 1}}, stacks_over, names_over) == nullptr);
  CHECK(names_over == 1);

  std::vector<std::string> written;
  auto write = [&](const sd::folded_aggregates::aggregate& x) {
    written.push_back(x.name);
    return true;
  };
  agg.flush(0, false, write);
  CHECK(written.size() == 2);  // never written before: written now
  written.clear();
  agg.add("GET /a", {{"GET /a;x", 1}}, stacks_over, names_over);
  agg.flush(500'000'000, false, write);
  CHECK(written.empty());  // within the interval: held back
  CHECK(agg.any_dirty());
  agg.flush(1'000'000'000, false, write);
  CHECK(written == std::vector<std::string>{"GET /a"});
  CHECK_FALSE(agg.any_dirty());
  written.clear();
  agg.add("GET /a", {{"GET /a;x", 1}}, stacks_over, names_over);
  agg.flush(1'000'000'001, true, write);  // shutdown: everything changed is written
  CHECK(written == std::vector<std::string>{"GET /a"});

  SUBCASE("the bytes of all stacks are capped too") {
    sd::folded_aggregates small({.max_names = 10, .max_stacks_per_name = 100, .max_total_stack_bytes = 10});
    std::uint64_t over = 0, names = 0;
    auto* x = small.add("n", {{"n;aaaa", 1}, {"n;bbbb", 2}, {"n;cccc", 3}}, over, names);  // 6 bytes each
    REQUIRE(x != nullptr);
    CHECK(x->stacks.size() == 1);
    CHECK(x->other == 5);
    CHECK(over == 2);
  }
}

TEST_CASE("folded files: span path roots, escaped names, counts = samples; aggregate = sum of transactions") {
  temp_dir dir;
  spanprof::config cfg = sampling_config(dir, spanprof::sampling_mode::wall, rate_hz);
  cfg.formats = spanprof::output_format::folded | spanprof::output_format::flamegraph | spanprof::output_format::chrome_trace;
  {
    session s(cfg);
    request();
    request();
    other_request();
  }
  // The SVG is written for every transaction; the .folded only when it has samples (a
  // loaded machine may give the short one none).
  std::vector<std::filesystem::path> per_txn_svg;
  for (const auto& f : files_ending_with(dir.path(), ".svg")) {
    if (!f.filename().string().ends_with(".aggregate.svg")) per_txn_svg.push_back(f);
  }
  REQUIRE(per_txn_svg.size() == 3);

  std::map<std::string, std::uint64_t> expected_aggregate;
  bool saw_span_path = false, saw_known_function = false, saw_derived = false;
  // What the Chrome traces (an independent writer) say the sampler saw: samples taken inside
  // the db span, and in the root's own time (where the un-instrumented caller runs). On a
  // loaded machine a stretch can go unsampled; the checks below then have nothing to find.
  std::uint64_t chrome_in_db = 0, chrome_in_root = 0;
  for (const auto& svg_file : per_txn_svg) {
    const auto file = sibling(svg_file, ".svg", ".folded");
    INFO("file ", file.string());
    const std::uint64_t chrome_weight = chrome_all_sample_weight(sibling(svg_file, ".svg", ".trace.json"));
    CHECK(std::filesystem::exists(file) == (chrome_weight > 0));
    const auto counts = chrome_weight > 0 ? parse_folded(read_file(file)) : std::map<std::string, std::uint64_t>{};
    const bool is_get = file.filename().string().starts_with("GET_folded");
    const std::string root = is_get ? "GET /folded" : "POST /other";
    if (is_get) {
      chrome_in_db += chrome_samples_in_span(sibling(svg_file, ".svg", ".trace.json"), hostile_description);
      chrome_in_root += chrome_samples_in_span(sibling(svg_file, ".svg", ".trace.json"), "GET /folded");
    }
    for (const auto& [stack, count] : counts) {
      CHECK((stack == root || stack.starts_with(root + ";")));
      if (stack.starts_with(root + ";" + hostile_description_folded + ";")) saw_span_path = true;
      if (stack.find("request();spanprof_test_folded_caller;spanprof_test_folded_leaf") != std::string::npos) {
        saw_known_function = true;
        // Trimmed at the function that opened the transaction: nothing of the thread above it.
        CHECK(stack.find(";main;") == std::string::npos);
      }
      if (stack.find(";span:profile.inferred ") != std::string::npos) saw_derived = true;
      if (is_get) expected_aggregate[stack] += count;
    }
    // Every sample counted once, with its weight (Chrome trace: an independent writer).
    CHECK(total(counts) == chrome_weight);

    const std::string svg = read_file(svg_file);
    CHECK(xml_problem(svg) == "");
    CHECK(count_of(svg, "<g class=\"frame\">") == count_of(svg, "<title>"));
    if (chrome_weight > 0) {
      CHECK(svg.find("<title>all (" + std::to_string(total(counts)) + " samples, 100.00%)</title>") != std::string::npos);
    } else {
      CHECK(svg.find(">no samples</text>") != std::string::npos);
    }
  }
  MESSAGE("samples in the db spans: ", chrome_in_db, ", in the roots' own time: ", chrome_in_root);
  if (!signals_deferred) {
    // Two or more: gap filling may snap a lone sample at a span's edge into the parent's gap.
    if (chrome_in_db >= 2) CHECK(saw_span_path);
    if (chrome_in_root >= 2) {
      CHECK(saw_known_function);
      CHECK(saw_derived);
    }
  }

  const auto aggregate_file = dir / "GET_folded.aggregate.folded";
  const auto aggregate = parse_folded(read_file(aggregate_file));
  CHECK(aggregate == expected_aggregate);
  CHECK(std::filesystem::exists(dir / "POST_other.aggregate.svg"));
  const std::string aggregate_svg = read_file(dir / "GET_folded.aggregate.svg");
  CHECK(xml_problem(aggregate_svg) == "");
  CHECK(aggregate_svg.find("(2 transactions)") != std::string::npos);
  CHECK(aggregate_svg.find("<title>all (" + std::to_string(total(expected_aggregate)) + " samples, 100.00%)</title>") !=
        std::string::npos);
  CHECK(spanprof::stats().aggregate_stacks_over_cap == 0);
}

TEST_CASE("hostile names: invalid UTF-8, separators and huge descriptions give valid files, repairs counted") {
  temp_dir dir;
  spanprof::config cfg = config_for(dir);
  cfg.sampling = false;  // the span frames alone carry the names
  cfg.log_errors_to_stderr = false;
  cfg.formats = spanprof::output_format::speedscope | spanprof::output_format::folded | spanprof::output_format::flamegraph;
  const std::string huge(100'000, 'q');
  {
    session s(cfg);
    SPANPROF_TRANSACTION("bad \xFF name;<svg> & 7");
    { SPANPROF_SPAN("db\n.query", "x\xC3;y\t 42"); }
    { SPANPROF_SPAN("huge", huge); }
  }
  const auto speedscope = files_ending_with(dir.path(), ".speedscope.json");
  REQUIRE(speedscope.size() == 1);
  const json doc = read_json(speedscope[0]);  // nlohmann rejects invalid UTF-8: parsing is the check
  const json& frames = doc.at("shared").at("frames");
  bool saw_truncated = false;
  for (const json& f : frames) {
    const std::string name = f.at("name").get<std::string>();
    CHECK(name.size() < huge.size());  // cut at max_description_bytes
    saw_truncated |= name.find("[truncated]") != std::string::npos;
  }
  CHECK(saw_truncated);
  for (const json& p : doc.at("profiles")) {
    if (p.at("type") == "evented") CHECK(evented_problem(p.at("events"), frames.size()) == "");
  }
  // No samples: no stacks, and no empty .folded file for flamegraph.pl and speedscope to reject.
  CHECK(files_ending_with(dir.path(), ".folded").empty());
  const auto svgs = files_ending_with(dir.path(), ".svg");
  CHECK(svgs.size() == 2);  // the transaction's and its name's aggregate
  for (const auto& file : svgs) {
    const std::string svg = read_file(file);
    CHECK(xml_problem(svg) == "");
    CHECK(svg.find("&lt;svg&gt; &amp; 7") != std::string::npos);  // the title, escaped
    CHECK(svg.find('\xFF') == std::string::npos);
  }
  CHECK(spanprof::stats().invalid_utf8_repaired > 0);
}
