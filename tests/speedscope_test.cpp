// writers/speedscope.hpp: the file the collector writes for a transaction recorded through the
// public macros with real sampling. speedscope's importer itself runs in the 'clients' suite.
#include "support/flame_files.hpp"

using namespace spanprof_test;
namespace sd = spanprof::detail;

TEST_CASE("speedscope file: nested span events, samples root first, weights in ns") {
  temp_dir dir;
  spanprof::config cfg = sampling_config(dir, spanprof::sampling_mode::wall, rate_hz);
  cfg.formats = spanprof::output_format::speedscope | spanprof::output_format::chrome_trace;
  std::int64_t wall_ns = 0;
  {
    session s(cfg);
    const std::int64_t t0 = monotonic_ns();
    request();
    wall_ns = monotonic_ns() - t0;
  }
  const auto files = files_ending_with(dir.path(), ".speedscope.json");
  REQUIRE(files.size() == 1);
  const json doc = read_json(files[0]);
  CHECK(doc.at("$schema") == "https://www.speedscope.app/file-format-schema.json");
  CHECK(doc.at("name") == "GET /folded");
  const json& frames = doc.at("shared").at("frames");
  REQUIRE(frames.is_array());
  for (const json& f : frames) CHECK(f.at("name").is_string());
  auto frame_name = [&](std::int64_t i) { return frames.at(static_cast<std::size_t>(i)).at("name").get<std::string>(); };

  std::size_t evented = 0, sampled = 0;
  bool db_inside_root = false;
  std::size_t with_both = 0, caller_first = 0;  // samples showing the caller and the leaf function
  std::uint64_t weight_sum = 0, sample_count = 0;
  for (const json& p : doc.at("profiles")) {
    CHECK(p.at("unit") == "nanoseconds");
    const std::string name = p.at("name").get<std::string>();
    CHECK((name.starts_with("spans: ") || name.starts_with("samples: ")));
    if (p.at("type") == "evented") {
      ++evented;
      INFO("profile ", p.at("name"));
      CHECK(evented_problem(p.at("events"), frames.size()) == "");
      std::vector<std::string> stack;
      for (const json& e : p.at("events")) {
        if (e.at("type") == "O") {
          const std::string name = frame_name(e.at("frame"));
          if (name == std::string("db.query ") + hostile_description && stack == std::vector<std::string>{"GET /folded"}) {
            db_inside_root = true;
          }
          stack.push_back(name);
        } else {
          stack.pop_back();
        }
      }
      CHECK(p.at("startValue").get<std::int64_t>() <= p.at("events").front().at("at").get<std::int64_t>());
      CHECK(p.at("endValue").get<std::int64_t>() >= p.at("events").back().at("at").get<std::int64_t>());
    } else {
      REQUIRE(p.at("type") == "sampled");
      ++sampled;
      const json& samples = p.at("samples");
      const json& weights = p.at("weights");
      REQUIRE(samples.size() == weights.size());
      for (std::size_t n = 0; n < samples.size(); ++n) {
        CHECK(weights[n].get<std::int64_t>() > 0);
        weight_sum += weights[n].get<std::uint64_t>();
        ++sample_count;
        std::int64_t caller_at = -1, leaf_at = -1;
        for (std::size_t k = 0; k < samples[n].size(); ++k) {
          const std::int64_t idx = samples[n][k].get<std::int64_t>();
          REQUIRE(idx >= 0);
          REQUIRE(static_cast<std::size_t>(idx) < frames.size());
          const std::string name = frame_name(idx);
          if (name == "spanprof_test_folded_caller") caller_at = static_cast<std::int64_t>(k);
          if (name == "spanprof_test_folded_leaf") leaf_at = static_cast<std::int64_t>(k);
        }
        if (caller_at >= 0 && leaf_at >= 0) {
          ++with_both;
          caller_first += caller_at < leaf_at ? 1 : 0;
        }
      }
      CHECK(p.at("endValue").get<std::uint64_t>() - p.at("startValue").get<std::uint64_t>() == [&] {
        std::uint64_t sum = 0;
        for (const json& w : weights) sum += w.get<std::uint64_t>();
        return sum;
      }());
    }
  }
  CHECK(evented >= 1);
  CHECK(db_inside_root);
  MESSAGE("samples ", sample_count, ", weights ", weight_sum / 1000, " us, transaction ", wall_ns / 1000, " us");
  if (signals_deferred) return;
  CHECK(sampled >= 1);
  // Σ weights = samples × interval, each sample seen by an independent writer (Chrome trace)...
  const auto trace = sibling(files[0], ".speedscope.json", ".trace.json");
  const auto [chrome_with_stack, chrome_weight] = chrome_samples(trace);
  // Root first: the caller comes before the function it called, in every sample. Samples of
  // the root's own time are where they run (a loaded machine may leave it unsampled).
  CHECK(caller_first == with_both);
  if (chrome_samples_in_span(trace, "GET /folded") >= 2) CHECK(with_both > 0);
  CHECK(sample_count == chrome_with_stack);
  CHECK(weight_sum == chrome_weight * static_cast<std::uint64_t>(interval_ns));
  // ...and never more time than the transaction lasted (a late timer gives fewer samples, not more).
  CHECK(weight_sum > 0);
  CHECK(static_cast<std::int64_t>(weight_sum) <= wall_ns + 2 * interval_ns);
}
