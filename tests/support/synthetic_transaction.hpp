// A seeded generator of complete finished transactions, for the writers' property test, the
// corpus the real clients check, and the writers benchmark — without running the sampler.
//
// It builds what the collector hands the writers (collector.hpp write_profiles): a
// transaction_record filled the way record/transaction_ops.hpp fills one (spans in the order they were opened,
// parent_index, strings in the record's arena cut at a cap, data entries, auto-closed spans), the
// samples take_samples() would return (time order, leaf-first pcs, truncated at max depth), a tick
// converter, clock, process facts and config, and a transaction_analysis: a frame table with
// inlined frames and frames of unknown modules, per-sample stacks, debug images, and the result
// of the real gap-filling engine run over all of it (transaction_analyzer::fill_gaps).
//
// Knobs select the hostile cases: names with path separators, "..", NUL, control characters,
// quotes, ';', newlines and a trailing " 123"; invalid UTF-8; 1 MiB strings; stacks deeper than
// max depth; 0, 1 or 100,000 samples; many spans, deep nesting, zero-length spans, samples at one
// timestamp, spans left open, several threads. knobs_for_seed() derives a mix from a seed, so a
// failing seed replays exactly.
#pragma once

#include <spanprof/detail/collect/analysis.hpp>
#include <spanprof/detail/record/transaction_record.hpp>
#include <spanprof/detail/writers/finished_transaction.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <deque>
#include <iterator>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace spanprof_test {

namespace sd = spanprof::detail;

struct synthetic_knobs {
  bool hostile_names = false;   // separators, "..", NUL, controls, quotes, ';', newlines, " 123"
  bool invalid_utf8 = false;    // lone lead bytes, surrogates, overlong forms, > U+10FFFF
  bool huge_strings = false;    // a 1 MiB description kept whole, and one cut at the cap
  std::size_t span_count = 8;   // including the transaction's own span
  std::size_t nesting_depth = 3;  // a chain this deep is carved out first, the rest spread around
  bool zero_length_spans = false;
  bool open_spans = false;      // spans left open: closed at the end (auto_closed), or end 0
  std::size_t sample_count = 100;
  bool same_timestamp_samples = false;
  std::size_t thread_count = 1;      // samples' tids (a fiber moving between threads)
  std::size_t max_stack_depth = 128; // config max_stack_depth: deeper stacks are cut, flagged
  std::size_t extra_stack_depth = 0; // recursion frames added to some stacks (500+: deep stacks)
  bool cpu_mode = false;
  std::int64_t duration_ns = 2'000'000'000;
  unsigned sample_rate_hz = 101;
  // Real return addresses (leaf first) to sample instead of synthetic ones; the analysis is then
  // left empty, for a real transaction_analyzer to fill (the benchmark).
  std::vector<std::vector<std::uintptr_t>> real_stacks;
};

// A 1 MiB frame name is repeated in every stack that holds it (folded: once per distinct stack);
// a few samples carry it through every writer as well as fifty, at a tenth of the bytes.
inline constexpr std::size_t huge_strings_max_samples = 8;

// A mix of knobs from a seed: every knob shows up often across a few hundred seeds; the costly
// extremes (10^5 samples, 1 MiB strings, 500+ frame stacks) are rare and kept small elsewhere.
inline synthetic_knobs knobs_for_seed(std::uint64_t seed) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 1);
  auto chance = [&](int percent) { return static_cast<int>(rng() % 100) < percent; };
  synthetic_knobs k;
  k.hostile_names = chance(50);
  k.invalid_utf8 = chance(35);
  k.huge_strings = chance(4);
  const int span_shape = static_cast<int>(rng() % 10);
  k.span_count = span_shape == 0 ? 1 : span_shape < 8 ? 2 + rng() % 30 : 100 + rng() % 200;
  k.nesting_depth = chance(15) ? 40 + rng() % 60 : 1 + rng() % 5;
  k.zero_length_spans = chance(30);
  k.open_spans = chance(25);
  const int sample_shape = static_cast<int>(rng() % 10);
  k.sample_count = sample_shape == 0 ? 0 : sample_shape == 1 ? 1 : sample_shape < 9 ? 2 + rng() % 200 : 300 + rng() % 700;
  k.same_timestamp_samples = chance(25);
  k.thread_count = chance(25) ? 2 + rng() % 3 : 1;
  k.max_stack_depth = chance(20) ? 8 + rng() % 24 : 128;
  k.extra_stack_depth = chance(5) ? 500 + rng() % 200 : 0;
  if (k.extra_stack_depth != 0) {
    k.max_stack_depth = 1024;  // config's maximum: the 500+ frames reach the writers
    k.sample_count = std::min<std::size_t>(k.sample_count, 40);
  }
  if (k.huge_strings) k.sample_count = std::min(k.sample_count, huge_strings_max_samples);
  k.cpu_mode = chance(30);
  k.duration_ns = chance(10) ? 1 + static_cast<std::int64_t>(rng() % 1000) : 50'000'000 + static_cast<std::int64_t>(rng() % 9'000'000'000);
  k.sample_rate_hz = chance(80) ? 101 : 1000;
  return k;
}

class synthetic_transaction {
 public:
  synthetic_transaction(std::uint64_t seed, synthetic_knobs knobs)
      : seed_(seed), knobs_(std::move(knobs)), rng_(seed ^ 0x5EED5EED5EEDull), rec_(std::make_unique<sd::transaction_record>()) {
    clock_.calibrate(/*window_ns=*/0);
    build_context();
    build_spans();
    build_data();
    build_frames();
    build_samples();
    txn_.emplace(sd::finished_transaction{*rec_, ticks_, clock_, process_, cfg_, sampled_});
    if (knobs_.real_stacks.empty()) {
      build_analysis();
      txn_->analysis = &analysis_;
    }
  }
  explicit synthetic_transaction(std::uint64_t seed) : synthetic_transaction(seed, knobs_for_seed(seed)) {}
  synthetic_transaction(const synthetic_transaction&) = delete;
  synthetic_transaction& operator=(const synthetic_transaction&) = delete;

  [[nodiscard]] const sd::finished_transaction& txn() const noexcept { return *txn_; }
  [[nodiscard]] sd::finished_transaction& txn() noexcept { return *txn_; }
  [[nodiscard]] sd::transaction_analysis& analysis() noexcept { return analysis_; }
  [[nodiscard]] const synthetic_knobs& knobs() const noexcept { return knobs_; }
  [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }

  // What the generator knows about the strings it planted, for the property checks: whether a
  // span's label (the description, else the op, as written into the record) was valid UTF-8.
  [[nodiscard]] bool label_is_valid_utf8(std::size_t span) const { return label_valid_[span]; }
  [[nodiscard]] bool name_is_valid_utf8() const { return label_valid_[0]; }
  [[nodiscard]] bool any_invalid_utf8() const noexcept { return any_invalid_; }

 private:
  struct piece {
    std::string_view text;
    bool valid_utf8;
  };

  // Hostile and invalid pieces; valid ones never start with a continuation byte, so joining
  // valid pieces keeps a string valid and an invalid piece keeps it invalid.
  static constexpr std::string_view nul_piece{"nul\0byte", 8};
  static constexpr piece hostile_pieces[] = {
      {"../../etc/passwd", true}, {"a/b\\c", true},      {nul_piece, true},           {"ctl\x01\x1f\x7f", true},
      {"\"quoted\"", true},       {"semi;colon", true},  {"new\nline\r\n", true},      {"trailing 123", true},
      {"tab\there", true},        {"\xF0\x9F\x94\xA5 fire", true}, {"<svg>&amp;</svg>", true}, {"%s%n{}", true},
      {" ", true},                {"..", true},          {"caf\xC3\xA9 \xE2\x82\xAC", true},  {"\\u0000", true},
  };
  static constexpr piece invalid_pieces[] = {
      {"\xC3", false},  {"\xFF\xFE", false}, {"\xED\xA0\x80", false}, {"\xF4\x90\x80\x80", false},
      {"\xE0\x80\xAF", false}, {"\x80", false}, {"\xF0\x9F\x94", false},
  };

  std::uint64_t next() { return rng_(); }
  bool chance(int percent) { return static_cast<int>(next() % 100) < percent; }
  std::size_t below(std::size_t n) { return n == 0 ? 0 : static_cast<std::size_t>(next() % n); }

  // A name for something: plain, or with hostile / invalid pieces mixed in as the knobs say.
  std::string make_name(std::string_view plain, bool& valid) {
    std::string s(plain);
    valid = true;
    if (knobs_.hostile_names && chance(60)) {
      for (std::size_t n = 1 + below(3); n-- > 0;) {
        const piece& p = hostile_pieces[below(std::size(hostile_pieces))];
        s.append(p.text);
      }
      if (chance(30)) s += " 123";  // folded stacks: a trailing number reads as a count
    }
    if (knobs_.invalid_utf8 && chance(40)) {
      const piece& p = invalid_pieces[below(std::size(invalid_pieces))];
      if (chance(50)) s.insert(0, p.text); else s.append(p.text);
      valid = false;
      any_invalid_ = true;
    }
    return s;
  }
  std::string make_name(std::string_view plain) {
    bool ignored = true;
    return make_name(plain, ignored);
  }

  // Strings that must outlive the record's views (sites, module paths) are kept here.
  const char* keep(std::string s) {
    // A span_site holds C strings: a NUL would end them early, so it becomes '0' there.
    std::replace(s.begin(), s.end(), '\0', '0');
    kept_.push_back(std::move(s));
    return kept_.back().c_str();
  }

  void build_context() {
    ticks_.base_ticks = static_cast<std::int64_t>(next() % 1'000'000'000'000ull);
    ticks_.base_ns = 1'000'000'000'000 + static_cast<std::int64_t>(next() % 1'000'000'000'000ull);
    // A TSC-like ratio or plain nanoseconds: the writers must only ever see converted times.
    ticks_.ns_per_tick = chance(50) ? 1.0 : 0.3125;
    process_.pid = 1000 + static_cast<int>(below(30000));
    process_.name = make_name("api-server");
    process_.os_name = "Linux";
    process_.os_version = "6.1.0-18-amd64";
    process_.architecture = "x86_64";
    process_.host_name = make_name("host");
    cfg_.sample_rate_hz = knobs_.sample_rate_hz;
    cfg_.mode = knobs_.cpu_mode ? spanprof::sampling_mode::cpu : spanprof::sampling_mode::wall;
    cfg_.max_stack_depth = knobs_.max_stack_depth;
    cfg_.release = make_name("api-server@1.4.2");
    cfg_.environment = chance(50) ? make_name("production") : std::string();
    rec_->trace = {next() | 1, next()};
    rec_->event_id = {next() | 1, next()};
    rec_->ctx_id = 1 + below(1000);
    rec_->thread_id = 2 + static_cast<int>(below(1'000'000));
    const std::string thread_name = make_name("worker-1");
    // pthread names are at most 15 bytes: the record keeps that much, possibly cutting a
    // multi-byte character in half, which the writers must repair.
    std::memcpy(rec_->thread_name, thread_name.data(), std::min<std::size_t>(thread_name.size(), 15));
    if (thread_name.size() > 15) any_invalid_ = true;  // may have cut a character: not known clean
    rec_->max_spans_limit = static_cast<std::uint32_t>(sd::transaction_record::max_spans);
    rec_->max_data_limit = 64 * 32;
    rec_->description_cap = 8192;
    tids_.push_back(static_cast<std::uint32_t>(rec_->thread_id));
    for (std::size_t t = 1; t < knobs_.thread_count; ++t) tids_.push_back(tids_.front() + static_cast<std::uint32_t>(t) * 7);
  }

  std::int64_t ticks_of(std::int64_t ns) const {
    return ticks_.base_ticks + static_cast<std::int64_t>(static_cast<double>(ns - ticks_.base_ns) / ticks_.ns_per_tick);
  }

  struct planned_span {
    std::int64_t begin_ns, end_ns;
    std::uint32_t parent;
    std::size_t depth;
    std::vector<std::uint32_t> children;
  };

  // The span tree first (intervals strictly nested, siblings disjoint), then the records in
  // the order their spans were opened: depth first, by begin time.
  void build_spans() {
    const std::int64_t begin = ticks_.base_ns + 1'000'000 + static_cast<std::int64_t>(below(1'000'000'000));
    const std::int64_t duration = std::max<std::int64_t>(knobs_.duration_ns, 1);
    plan_.push_back({begin, begin + duration, 0, 0, {}});
    // A chain `nesting_depth` deep, each level a little inside the one above.
    std::uint32_t parent = 0;
    for (std::size_t d = 1; d < knobs_.nesting_depth && plan_.size() < knobs_.span_count; ++d) {
      const planned_span& p = plan_[parent];
      const std::int64_t room = p.end_ns - p.begin_ns;
      if (room < 4) break;
      const std::int64_t inset = std::max<std::int64_t>(1, room / 50);
      add_child(parent, p.begin_ns + inset, p.end_ns - inset);
      parent = static_cast<std::uint32_t>(plan_.size() - 1);
    }
    // The rest: children placed in free stretches of random existing spans.
    for (std::size_t attempts = 0; plan_.size() < knobs_.span_count && attempts < knobs_.span_count * 20; ++attempts) {
      const auto host = static_cast<std::uint32_t>(below(plan_.size()));
      const planned_span& h = plan_[host];
      // The free stretch of `host` after its last child (children are kept in begin order).
      const std::int64_t free_begin = h.children.empty() ? h.begin_ns : plan_[h.children.back()].end_ns;
      const std::int64_t free_end = h.end_ns;
      const std::int64_t room = free_end - free_begin;
      if (knobs_.zero_length_spans && chance(15) && room >= 2) {
        const std::int64_t at = free_begin + 1 + static_cast<std::int64_t>(below(static_cast<std::size_t>(room - 1)));
        add_child(host, at, at);
        continue;
      }
      if (room < 10) continue;
      const std::int64_t b = free_begin + 1 + static_cast<std::int64_t>(below(static_cast<std::size_t>(room / 3)));
      const std::int64_t len = 1 + static_cast<std::int64_t>(below(static_cast<std::size_t>((free_end - b) / 2)));
      add_child(host, b, std::min(b + len, free_end - 1));
    }
    // Records, depth first.
    std::vector<std::uint32_t> order;
    std::vector<std::uint32_t> stack{0};
    while (!stack.empty()) {
      const std::uint32_t s = stack.back();
      stack.pop_back();
      order.push_back(s);
      for (auto it = plan_[s].children.rbegin(); it != plan_[s].children.rend(); ++it) stack.push_back(*it);
    }
    record_index_.assign(plan_.size(), 0);
    for (std::uint32_t i = 0; i < order.size(); ++i) record_index_[order[i]] = i;
    // A span left open is on the active chain: its ancestors are open too.
    std::vector<bool> open(plan_.size(), false);
    if (knobs_.open_spans) {
      std::uint32_t s = 0;
      while (!plan_[s].children.empty() && chance(70)) {
        s = plan_[s].children[below(plan_[s].children.size())];
        open[s] = true;
      }
    }
    label_valid_.assign(order.size(), true);
    for (std::uint32_t i = 0; i < order.size(); ++i) {
      const planned_span& p = plan_[order[i]];
      sd::span_record* r = rec_->spans.prepare_next(sd::transaction_record::max_spans);
      if (r == nullptr) break;
      r->id = next() | 1;
      r->parent_index = i == 0 ? 0 : record_index_[p.parent];
      r->parent_id = i == 0 ? (chance(20) ? next() | 1 : 0) : rec_->spans[r->parent_index].id;
      r->ctx_id = rec_->ctx_id;
      r->begin_ticks = ticks_of(p.begin_ns);
      std::int64_t end_ticks = ticks_of(p.end_ns);
      std::uint8_t flags = 0;
      auto status = static_cast<sd::span_status>(below(17));
      if (open[order[i]]) {
        // What shutdown's snapshot does: closed at the transaction's end, flagged.
        end_ticks = ticks_of(plan_[0].end_ns);
        flags |= sd::span_flag_auto_closed;
        status = sd::span_status::deadline_exceeded;
        ++rec_->counters.spans_auto_closed;
      } else if (p.children.empty() && knobs_.open_spans && chance(10)) {
        end_ticks = 0;  // never ended: the writers clamp it to its begin
      }
      if (chance(3)) flags |= sd::span_flag_out_of_order;
      r->end_ticks.store(end_ticks, std::memory_order_relaxed);
      r->status.store(status, std::memory_order_relaxed);
      r->flags.store(flags, std::memory_order_relaxed);
      bool op_valid = true, description_valid = true;
      const std::string op = i == 0 ? make_name("http.server", op_valid) : make_name(chance(50) ? "db.sql.query" : "http.client", op_valid);
      std::string description;
      if (i == 0) {
        description = chance(5) ? std::string() : make_name("GET /users/{id}", description_valid);
      } else if (knobs_.huge_strings && i == 1) {
        description = std::string(1 << 20, 'x');  // 1 MiB, kept whole (no cap)
        description.replace(0, 12, "SELECT huge ");
      } else if (knobs_.huge_strings && i == 2) {
        description = std::string(1 << 20, 'y');  // 1 MiB, cut at the record's cap
      } else {
        description = chance(10) ? std::string() : make_name("SELECT * FROM users WHERE id = ?", description_valid);
      }
      const std::size_t cap = (knobs_.huge_strings && i == 1) ? (2u << 20) : rec_->description_cap;
      r->op = rec_->strings.copy(op, 256);
      r->description = rec_->strings.copy(description, cap);
      const bool labelled_by_description = !r->description.view().empty() || (i == 0);
      label_valid_[i] = labelled_by_description ? description_valid : op_valid;
      if (i == 0 && description.empty()) label_valid_[i] = true;  // "unnamed transaction"
      const std::size_t site_index = order[i] % 12;
      r->site = site_for(site_index);
      r->anchor_fp = 0;
      rec_->spans.publish_next();
    }
  }

  void add_child(std::uint32_t parent, std::int64_t begin, std::int64_t end) {
    plan_.push_back({begin, end, parent, plan_[parent].depth + 1, {}});
    plan_[parent].children.push_back(static_cast<std::uint32_t>(plan_.size() - 1));
  }

  // The function that opened a span (span_site) and the frame the samples show it as: gap
  // filling finds F in a stack by this name.
  const sd::span_site* site_for(std::size_t index) {
    while (sites_.size() <= index) {
      const std::size_t n = sites_.size();
      std::string function = "svc::handler_" + std::to_string(n) + "(int)";
      if (n % 5 == 4) function = make_name(function);  // some hostile call sites too
      site_functions_.push_back(function);
      sites_.push_back({keep("void " + function), keep(make_name("src/handlers/h" + std::to_string(n) + ".cpp")),
                        static_cast<std::uint32_t>(10 + n)});
    }
    return &sites_[index];
  }

  void build_data() {
    static constexpr std::string_view keys[] = {"db.system", "http.status_code", "retries", "ratio", "cached",
                                                "thread.id", "code.function", "spanprof.auto_closed"};
    const std::size_t count = below(std::min<std::size_t>(rec_->spans.size() * 3, 200) + 1);
    for (std::size_t n = 0; n < count; ++n) {
      sd::data_entry* e = rec_->data.prepare_next(rec_->max_data_limit);
      if (e == nullptr) break;
      e->span_index = static_cast<std::uint32_t>(below(rec_->spans.size()));
      const std::string key = chance(70) ? std::string(keys[below(std::size(keys))]) : make_name("user.key");
      e->key = rec_->strings.copy(key, 256);
      e->kind = static_cast<sd::data_kind>(below(5));
      switch (e->kind) {
        case sd::data_kind::string: e->text = rec_->strings.copy(make_name("value"), rec_->description_cap); break;
        case sd::data_kind::integer: e->integer = static_cast<std::int64_t>(next()); break;
        case sd::data_kind::unsigned_integer: e->integer = static_cast<std::int64_t>(next()); break;
        case sd::data_kind::boolean: e->integer = static_cast<std::int64_t>(below(2)); break;
        case sd::data_kind::floating: {
          static constexpr double values[] = {0.5, 3.0, -1e300, 1e-300, std::numeric_limits<double>::quiet_NaN(),
                                              std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(), -0.0};
          e->floating = values[below(std::size(values))];
          break;
        }
      }
      rec_->data.publish_next();
    }
  }

  // One code location: an address and its frames, innermost (inlined) first.
  struct location {
    std::uintptr_t address;
    std::vector<std::uint32_t> frames;
  };

  void build_frames() {
    // Modules: the program (in app), a library with a hostile path, and one without a build id.
    for (int m = 0; m < 3; ++m) {
      sd::module_info& mod = modules_.emplace_back();
      mod.id = static_cast<std::uint32_t>(m);
      mod.path = m == 0 ? "/srv/app/bin/api-server" : m == 1 ? make_name("/usr/lib/x86_64-linux-gnu/lib;odd dir/../libpq.so.5") : "/usr/lib/libc.so.6";
      mod.loader_name = m == 0 ? "" : mod.path;
      mod.is_main_executable = m == 0;
      mod.in_app = m == 0;
      mod.bias = m == 0 ? 0x55d0c0a00000 : 0x7f0000000000 + static_cast<std::uintptr_t>(m) * 0x10000000;
      mod.image_addr = mod.bias;
      mod.image_size = 0x200000;
      if (m != 2) {
        for (int b = 0; b < 20; ++b) mod.build_id.push_back(static_cast<std::uint8_t>(next()));
        for (std::uint8_t b : mod.build_id) mod.build_id_hex += fmt::format("{:02x}", b);
      }
    }
    base_locations_ = {new_location("main", 0, 0), new_location("worker_loop(std::stop_token)", 0, 1)};
    while (site_functions_.size() < 12) site_for(site_functions_.size());
    for (std::size_t n = 0; n < site_functions_.size(); ++n) site_locations_.push_back(new_location(site_functions_[n], 0, 0));
    for (int n = 0; n < 40; ++n) {
      const int module = n % 7 == 6 ? -1 : n % 3;  // -1: no module known at that address
      work_locations_.push_back(new_location(make_name("work::step_" + std::to_string(n) + "(Request const&)"), module,
                                             n % 4 == 0 ? 2 : 0));
    }
    recursion_location_ = new_location("json::parse_value(json::reader&)", 0, 0);
  }

  // A location with `inlined` extra frames inlined into its physical frame. module -1: unknown.
  std::uint32_t new_location(const std::string& function, int module, int inlined) {
    location loc;
    const sd::module_info* mod = module < 0 ? nullptr : &modules_[static_cast<std::size_t>(module)];
    loc.address = (mod != nullptr ? mod->bias + 0x1000 : 0x7ffd00000000) + locations_.size() * 0x40 + below(0x30);
    for (int k = inlined; k >= 0; --k) {
      sd::profile_frame f;
      f.instruction_addr = loc.address;
      f.module = mod;
      f.in_app = mod != nullptr && mod->in_app;
      f.inlined = k > 0;
      if (mod == nullptr) {
        f.quality = sd::frame_quality::unknown;
        f.function = fmt::format("0x{:x}", loc.address);
      } else {
        f.relative_addr = loc.address - mod->bias;
        f.quality = chance(80) ? sd::frame_quality::dwarf : sd::frame_quality::symtab;
        f.function = k > 0 ? make_name("inl::helper_" + std::to_string(k) + "()") : function;
        if (f.quality == sd::frame_quality::dwarf) {
          f.file = make_name("/src/app/" + std::to_string(locations_.size()) + ".cpp");
          f.line = 1 + static_cast<std::uint32_t>(below(5000));
        }
      }
      if (knobs_.huge_strings && locations_.size() == 3 && k == 0) f.function.append(std::size_t{1} << 20, 'f');
      loc.frames.push_back(static_cast<std::uint32_t>(analysis_.frames.size()));
      analysis_.frames.push_back(std::move(f));
    }
    locations_.push_back(std::move(loc));
    return static_cast<std::uint32_t>(locations_.size() - 1);
  }

  // The innermost planned span containing t (children are disjoint and in begin order).
  std::uint32_t innermost_at(std::int64_t t_ns, std::vector<std::uint32_t>& path) const {
    std::uint32_t s = 0;
    path.assign(1, 0);
    for (;;) {
      const auto& kids = plan_[s].children;
      auto it = std::upper_bound(kids.begin(), kids.end(), t_ns,
                                 [&](std::int64_t t, std::uint32_t c) { return t < plan_[c].begin_ns; });
      if (it == kids.begin()) return s;
      const std::uint32_t c = *std::prev(it);
      if (t_ns >= plan_[c].end_ns) return s;
      s = c;
      path.push_back(s);
    }
  }

  void build_samples() {
    const std::int64_t begin = plan_[0].begin_ns, end = plan_[0].end_ns;
    const std::size_t n = knobs_.sample_count;
    std::vector<std::int64_t> times;
    for (std::size_t i = 0; i < n; ++i) {
      const std::int64_t span = end - begin;
      std::int64_t t = begin + (span <= 0 ? 0 : static_cast<std::int64_t>((static_cast<double>(i) + 0.5) / static_cast<double>(n) * static_cast<double>(span)));
      if (knobs_.same_timestamp_samples && i > 0 && chance(30)) t = times.back();
      times.push_back(std::min(t, end));
    }
    std::sort(times.begin(), times.end());
    std::vector<std::uint32_t> path;
    std::vector<std::uint32_t> root_first;
    std::size_t thread_run = 0, tid_index = 0;
    for (std::size_t i = 0; i < n; ++i) {
      sd::collected_sample s;
      s.t_ticks = ticks_of(times[i]);
      s.seq = i;
      s.ctx_id = rec_->ctx_id;
      s.mode = knobs_.cpu_mode ? 1 : 0;
      s.weight = knobs_.cpu_mode && chance(10) ? 2 : 1;
      s.anchor_idx = sd::anchor_unknown;
      // A fiber moves between threads in runs of samples.
      if (tids_.size() > 1 && thread_run-- == 0) {
        tid_index = below(tids_.size());
        thread_run = below(20);
      }
      s.tid = tids_[tid_index];
      const std::uint32_t inner = innermost_at(times[i], path);
      s.span_id = rec_->spans[record_index_[inner]].id;
      if (!knobs_.real_stacks.empty()) {
        s.pcs = knobs_.real_stacks[i % knobs_.real_stacks.size()];
        sampled_.samples.push_back(std::move(s));
        continue;
      }
      // Root first: main, the loop, each span's function down to the innermost, then work.
      root_first.assign(base_locations_.begin(), base_locations_.end());
      for (std::uint32_t p : path) root_first.push_back(site_locations_[p % 12]);
      if (chance(85)) {
        const std::uint32_t planted = work_locations_[(inner * 7 + below(2)) % work_locations_.size()];
        root_first.push_back(planted);
        for (std::size_t extra = below(4); extra-- > 0;) root_first.push_back(work_locations_[below(work_locations_.size())]);
      }
      if (knobs_.extra_stack_depth != 0 && chance(50)) root_first.insert(root_first.end(), knobs_.extra_stack_depth, recursion_location_);
      // Leaf first, cut at max depth like the unwinder (the outermost frames are lost).
      std::vector<std::uint32_t> leaf_first(root_first.rbegin(), root_first.rend());
      if (leaf_first.size() > knobs_.max_stack_depth) {
        leaf_first.resize(knobs_.max_stack_depth);
        s.flags |= sd::sample_flag_truncated;
        ++sampled_.truncated;
      }
      for (std::uint32_t loc : leaf_first) s.pcs.push_back(locations_[loc].address);
      sample_locations_.push_back(std::move(leaf_first));
      sampled_.samples.push_back(std::move(s));
    }
    if (n > 10 && chance(20)) {
      // The ring overflowed a few times while this transaction ran.
      sampled_.dropped = 1 + below(5);
      for (std::uint64_t d = 0; d < sampled_.dropped; ++d) {
        sampled_.drop_log.push_back({ticks_of(begin + static_cast<std::int64_t>(below(static_cast<std::size_t>(std::max<std::int64_t>(end - begin, 1))))), rec_->ctx_id});
      }
    }
  }

  void build_analysis() {
    analysis_.stack_begin.assign(1, 0);
    std::vector<bool> module_used(modules_.size(), false);
    for (const auto& leaf_first : sample_locations_) {
      for (std::uint32_t loc : leaf_first) {
        for (std::uint32_t f : locations_[loc].frames) {
          analysis_.stack_frames.push_back(f);
          if (const sd::module_info* m = analysis_.frames[f].module) module_used[m->id] = true;
        }
      }
      analysis_.stack_begin.push_back(static_cast<std::uint32_t>(analysis_.stack_frames.size()));
    }
    for (std::size_t m = 0; m < modules_.size(); ++m) {
      if (module_used[m]) analysis_.images.push_back(sd::debug_image_of(modules_[m]));
    }
    // The real engine, as the collector runs it (analysis.hpp), on this frame table.
    sd::transaction_analyzer analyzer(sd::symbolizer_options{});
    analyzer.fill_gaps(*txn_, analysis_);
  }

  std::uint64_t seed_;
  synthetic_knobs knobs_;
  std::mt19937_64 rng_;
  std::unique_ptr<sd::transaction_record> rec_;
  sd::tick_converter ticks_;
  sd::clock_calibration clock_;
  sd::process_info process_;
  spanprof::config cfg_;
  sd::transaction_samples sampled_;
  sd::transaction_analysis analysis_;
  std::optional<sd::finished_transaction> txn_;
  std::deque<std::string> kept_;
  std::deque<sd::span_site> sites_;
  std::vector<std::string> site_functions_;
  std::deque<sd::module_info> modules_;
  std::vector<std::uint32_t> tids_;
  std::vector<planned_span> plan_;
  std::vector<std::uint32_t> record_index_;  // plan index → record index
  std::vector<bool> label_valid_;            // by record index
  bool any_invalid_ = false;
  std::vector<location> locations_;
  std::vector<std::uint32_t> base_locations_, site_locations_, work_locations_;
  std::uint32_t recursion_location_ = 0;
  std::vector<std::vector<std::uint32_t>> sample_locations_;  // leaf first, per sample
};

}  // namespace spanprof_test
