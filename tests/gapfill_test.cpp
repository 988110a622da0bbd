// gapfill.hpp: gap filling on hand-built spans and samples (docs/gapfill.md §3 hard cases and
// the §5.1 oracle U1–U17), then a randomized accuracy test over seeded synthetic transactions
// with known planted functions (§5.4, run on a simulator as §5.2 describes).
#include <doctest/doctest.h>
#include <spanprof/detail/gapfill/gapfill.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <numeric>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace gf = spanprof::detail::gapfill;

namespace {

constexpr std::int64_t ms(double v) { return static_cast<std::int64_t>(v * 1'000'000.0 + (v >= 0 ? 0.5 : -0.5)); }
constexpr std::int64_t us(double v) { return static_cast<std::int64_t>(v * 1'000.0 + (v >= 0 ? 0.5 : -0.5)); }

// A transaction built by hand: frames, spans, samples. Copyable: input() rebuilds every view
// into this object's own storage.
class scenario {
 public:
  std::uint64_t txn_id = 0x7001;
  std::uint64_t root_id = 0xA0;
  std::uint64_t ctx = 101;
  std::uint32_t tid = 101;
  gf::sample_mode mode = gf::sample_mode::wall;
  std::int64_t interval_ns = ms(10);
  std::vector<gf::span_input> spans;
  std::vector<gf::sample_input> samples;  // stack views are filled by input()
  std::vector<std::vector<std::uint32_t>> stacks;  // parallel to samples
  std::vector<std::pair<std::uint64_t, std::vector<gf::on_thread_interval>>> fibers;
  std::vector<std::tuple<std::uint32_t, std::vector<gf::drop_entry>, std::uint64_t>> drop_reports;

  std::uint32_t frame(std::string_view function, std::string_view file, std::uint32_t line,
                      std::string_view module = "/srv/bin/orders", bool inlined = false) {
    const std::string key = std::string(function) + '|' + std::string(file) + '|' + std::to_string(line) + '|' +
                            std::string(module) + (inlined ? "|i" : "|p");
    if (auto it = frame_index_.find(key); it != frame_index_.end()) return it->second;
    gf::frame f;
    f.function = text(function);
    f.file = text(file);
    f.module = text(module);
    f.line = line;
    f.inlined = inlined;
    const auto index = static_cast<std::uint32_t>(frames_.size());
    frames_.push_back(f);
    frame_index_.emplace(key, index);
    return index;
  }

  // A span opened by `callsite_function` (the macro's __PRETTY_FUNCTION__).
  gf::span_input& span(std::uint64_t id, std::uint64_t parent, double begin_ms, double end_ms, std::string_view op,
                       std::string_view description, std::string_view callsite_function = "void handle_orders(int)",
                       std::string_view callsite_file = "../src/orders.cpp", std::uint32_t callsite_line = 100) {
    gf::span_input s;
    s.id = id;
    s.parent_id = parent;
    s.ctx_id = ctx;
    s.begin_ns = ms(begin_ms);
    s.end_ns = ms(end_ms);
    s.op = text(op);
    s.description = text(description);
    s.callsite_function = text(callsite_function);
    s.callsite_file = text(callsite_file);
    s.callsite_line = callsite_line;
    s.anchor_fp = 0x7ffc0000 + id;
    spans.push_back(s);
    return spans.back();
  }

  gf::sample_input& sample(std::int64_t t_ns, std::uint64_t span_id, std::vector<std::uint32_t> stack,
                           std::uint16_t anchor = gf::anchor_unknown) {
    gf::sample_input s;
    s.t_ns = t_ns;
    s.seq = next_seq_++;
    s.ctx_id = ctx;
    s.txn_id = txn_id;
    s.span_id = span_id;
    s.tid = tid;
    s.anchor_idx = anchor;
    s.mode = mode;
    samples.push_back(s);
    stacks.push_back(std::move(stack));
    return samples.back();
  }

  void remove_samples_if(const std::function<bool(const gf::sample_input&)>& drop) {
    std::vector<gf::sample_input> kept_samples;
    std::vector<std::vector<std::uint32_t>> kept_stacks;
    for (std::size_t i = 0; i < samples.size(); ++i) {
      if (drop(samples[i])) continue;
      kept_samples.push_back(samples[i]);
      kept_stacks.push_back(stacks[i]);
    }
    samples = std::move(kept_samples);
    stacks = std::move(kept_stacks);
  }

  const gf::transaction_input& input() {
    prepared_samples_ = samples;
    for (std::size_t i = 0; i < samples.size(); ++i) prepared_samples_[i].stack = stacks[i];
    prepared_contexts_.clear();
    for (const auto& [id, intervals] : fibers) prepared_contexts_.push_back(gf::context_input{id, intervals});
    prepared_drops_.clear();
    for (const auto& [drop_tid, log, unlogged] : drop_reports) prepared_drops_.push_back(gf::drop_report{drop_tid, log, unlogged});
    input_ = gf::transaction_input{};
    input_.txn_id = txn_id;
    input_.root_span_id = root_id;
    input_.mode = mode;
    input_.sampling_interval_ns = interval_ns;
    input_.spans = spans;
    input_.samples = prepared_samples_;
    input_.frames = frames_;
    input_.contexts = prepared_contexts_;
    input_.drops = prepared_drops_;
    return input_;
  }

  gf::filled_transaction run(const gf::config& cfg = {}) { return gf::run(input(), cfg); }
  [[nodiscard]] const std::vector<gf::frame>& frames() const { return frames_; }

  scenario() = default;
  scenario(const scenario& other) { *this = other; }
  scenario& operator=(const scenario& other) {
    if (this == &other) return *this;
    txn_id = other.txn_id;
    root_id = other.root_id;
    ctx = other.ctx;
    tid = other.tid;
    mode = other.mode;
    interval_ns = other.interval_ns;
    next_seq_ = other.next_seq_;
    texts_.clear();
    frame_index_ = other.frame_index_;
    // Re-home every string view into this object's storage.
    auto rehome = [&](std::string_view v) { return text(v); };
    frames_ = other.frames_;
    for (gf::frame& f : frames_) {
      f.function = rehome(f.function);
      f.file = rehome(f.file);
      f.module = rehome(f.module);
    }
    spans = other.spans;
    for (gf::span_input& s : spans) {
      s.op = rehome(s.op);
      s.description = rehome(s.description);
      s.status = rehome(s.status);
      s.callsite_function = rehome(s.callsite_function);
      s.callsite_file = rehome(s.callsite_file);
    }
    samples = other.samples;
    stacks = other.stacks;
    fibers = other.fibers;
    drop_reports = other.drop_reports;
    return *this;
  }

 private:
  std::string_view text(std::string_view v) {
    texts_.emplace_back(v);
    return texts_.back();
  }

  std::deque<std::string> texts_;
  std::vector<gf::frame> frames_;
  std::map<std::string, std::uint32_t> frame_index_;
  std::uint64_t next_seq_ = 0;
  std::vector<gf::sample_input> prepared_samples_;
  std::vector<gf::context_input> prepared_contexts_;
  std::vector<gf::drop_report> prepared_drops_;
  gf::transaction_input input_;
};

std::vector<const gf::derived_span*> inferred_named(const gf::filled_transaction& r, std::string_view function) {
  std::vector<const gf::derived_span*> out;
  for (const gf::derived_span& d : r.derived_spans) {
    if (d.kind != gf::derived_kind::gap && d.code_function == function) out.push_back(&d);
  }
  return out;
}

std::vector<const gf::derived_span*> of_kind(const gf::filled_transaction& r, gf::derived_kind kind) {
  std::vector<const gf::derived_span*> out;
  for (const gf::derived_span& d : r.derived_spans) {
    if (d.kind == kind) out.push_back(&d);
  }
  return out;
}

std::uint32_t span_index(const scenario& s, std::uint64_t id) {
  for (std::uint32_t i = 0; i < s.spans.size(); ++i) {
    if (s.spans[i].id == id) return i;
  }
  return gf::no_index;
}

// gapfill.md §5.2's structural invariants, checked on any result: derived ⊆ gap ⊆ span,
// children nested, siblings disjoint, weights conserved.
void check_invariants(const gf::filled_transaction& r, const gf::transaction_input& in) {
  for (std::size_t i = 0; i < r.derived_spans.size(); ++i) {
    const gf::derived_span& d = r.derived_spans[i];
    INFO("derived span " << i << ": " << d.description);
    REQUIRE(d.gap_index < r.gaps.size());
    const gf::gap_summary& g = r.gaps[d.gap_index];
    CHECK(d.begin_ns <= d.end_ns);
    CHECK(d.begin_ns >= g.begin_ns);
    CHECK(d.end_ns <= g.end_ns);
    CHECK(d.begin_lo_ns <= d.begin_ns);
    CHECK(d.end_hi_ns >= d.end_ns);
    CHECK(g.begin_ns >= in.spans[g.span_index].begin_ns);
    if (d.parent_index != gf::no_index) {
      const gf::derived_span& p = r.derived_spans[d.parent_index];
      CHECK(d.parent_id == p.id);
      CHECK(d.begin_ns >= p.begin_ns);
      CHECK(d.end_ns <= p.end_ns);
    } else {
      CHECK(d.parent_id == g.span_id);
    }
    if (d.kind != gf::derived_kind::gap) {
      std::uint64_t children = 0;
      for (const gf::derived_span& c : r.derived_spans) {
        if (c.kind != gf::derived_kind::gap && c.parent_index == i) children += c.sample_weight;
      }
      CHECK(d.sample_weight == d.self_weight + children + d.unresolved_weight);
    }
  }
  // Siblings (same parent, inferred) never overlap.
  std::map<std::pair<std::uint64_t, std::uint32_t>, std::vector<const gf::derived_span*>> siblings;
  for (const gf::derived_span& d : r.derived_spans) {
    if (d.kind != gf::derived_kind::gap) siblings[{d.parent_id, d.gap_index}].push_back(&d);
  }
  for (auto& [key, list] : siblings) {
    std::sort(list.begin(), list.end(), [](auto* a, auto* b) { return a->begin_ns < b->begin_ns; });
    for (std::size_t k = 1; k < list.size(); ++k) CHECK(list[k - 1]->end_ns <= list[k]->begin_ns);
  }
  for (std::uint32_t g = 0; g < r.gaps.size(); ++g) {
    const gf::gap_summary& gap = r.gaps[g];
    if (!gap.filled) continue;
    std::uint64_t top = 0;
    for (const gf::derived_span& d : r.derived_spans) {
      if (d.kind != gf::derived_kind::gap && d.gap_index == g && d.parent_index == gf::no_index) top += d.sample_weight;
    }
    CHECK(gap.sample_weight == top + gap.unresolved_weight);
    std::uint64_t tree = 0;
    for (std::uint32_t n = gap.first_node; n < gap.first_node + gap.node_count; ++n) {
      if (r.call_tree_nodes[n].parent == gf::no_index) tree += r.call_tree_nodes[n].total_weight;
    }
    std::uint64_t resolved = 0;
    for (std::size_t i = 0; i < r.placements.size(); ++i) {
      const gf::sample_placement& p = r.placements[i];
      if (p.fate == gf::sample_fate::placed && p.gap_index == g && p.resolved) resolved += in.samples[i].weight;
    }
    CHECK(tree == resolved);
  }
}

// ---- the worked example of gapfill.md §2 (U1) ------------------------------------------------
//
// Txn GET /orders [0, 200] ms, handle_orders() opens db spans [20, 60] and [100, 140]; one
// sample every 10 ms at 5, 15, …, 195. 65…95 show F→join_in_memory→std::sort, 145…195
// F→serialize_response; 5 and 15 show F→parse_request (or parse_request then authenticate).

struct example_options {
  bool same_callee_in_gap0 = true;
  bool samples_in_gap1 = true;
  bool anchors = true;  // frame-pointer unwinding found F's frame; else anchor_unknown
  bool handler_frames = false;  // the handler's frames and __restore_rt leaked into each stack
  std::int64_t shift_ns = 0;    // clock skew between spans and samples
};

constexpr std::uint64_t db1_id = 0xD1;
constexpr std::uint64_t db2_id = 0xD2;

scenario worked_example(const example_options& o = {}) {
  scenario s;
  const std::uint32_t start = s.frame("_start", "", 0);
  const std::uint32_t main_fn = s.frame("main", "/work/app/src/main.cpp", 12);
  const std::uint32_t serve = s.frame("app::serve(app::server&)", "/work/app/src/server.cpp", 55);
  auto f_at = [&](std::uint32_t line) { return s.frame("handle_orders(int)", "/work/app/src/orders.cpp", line); };
  const std::uint32_t join = s.frame("join_in_memory(std::vector<int, std::allocator<int> >&)", "/work/app/src/orders.cpp", 140);
  const std::uint32_t serialize = s.frame("serialize_response(std::string&)", "/work/app/src/orders.cpp", 161);
  const std::uint32_t parse = s.frame("parse_request(request const&)", "/work/app/src/orders.cpp", 71);
  const std::uint32_t authenticate = s.frame("authenticate(request const&)", "/work/app/src/auth.cpp", 19);
  const std::uint32_t db_query = s.frame("db::query(char const*)", "/work/app/src/db.cpp", 31);
  const std::uint32_t recv = s.frame("__libc_recv", "", 0, "/lib/x86_64-linux-gnu/libc.so.6");
  const std::uint32_t handler = s.frame("spanprof::detail::sigprof_handler(int, siginfo_t*, void*)", "/work/include/spanprof/detail/sampler.hpp", 120);
  const std::uint32_t restore = s.frame("__restore_rt", "", 0, "/lib/x86_64-linux-gnu/libc.so.6");

  s.span(s.root_id, 0, 0, 200, "http.server", "GET /orders");
  s.span(db1_id, s.root_id, 20, 60, "db.sql.query", "SELECT * FROM members", "void handle_orders(int)", "../src/orders.cpp", 112);
  s.span(db2_id, s.root_id, 100, 140, "db.sql.query", "SELECT * FROM teams", "void handle_orders(int)", "../src/orders.cpp", 125);

  auto add = [&](double t, std::uint64_t span, std::vector<std::uint32_t> stack, std::uint16_t anchor) {
    if (o.handler_frames) {
      stack.insert(stack.begin(), {handler, restore});
      anchor = static_cast<std::uint16_t>(anchor + 2);
    }
    s.sample(ms(t) + o.shift_ns, span, std::move(stack), o.anchors ? anchor : gf::anchor_unknown);
  };
  const std::vector<std::uint32_t> outer{serve, main_fn, start};
  auto with_outer = [&](std::vector<std::uint32_t> inner) {
    inner.insert(inner.end(), outer.begin(), outer.end());
    return inner;
  };
  add(5, s.root_id, with_outer({parse, f_at(108)}), 1);
  add(15, s.root_id, with_outer({o.same_callee_in_gap0 ? parse : authenticate, f_at(108)}), 1);
  for (double t = 25; t < 60; t += 10) add(t, db1_id, with_outer({recv, db_query, f_at(112)}), 2);
  if (o.samples_in_gap1) {
    std::uint32_t sort_line = 4880;
    for (double t = 65; t < 100; t += 10) {
      const std::uint32_t sort = s.frame("void std::sort<int*>(int*, int*)", "/usr/include/c++/12/bits/stl_algo.h", sort_line++);
      add(t, s.root_id, with_outer({sort, join, f_at(118)}), 2);
    }
  }
  for (double t = 105; t < 140; t += 10) add(t, db2_id, with_outer({recv, db_query, f_at(125)}), 2);
  for (double t = 145; t < 200; t += 10) add(t, s.root_id, with_outer({serialize, f_at(120)}), 1);
  return s;
}

// The parts of a result that do not mention sample times or input order.
struct shape {
  std::vector<gf::derived_span> derived;
  std::vector<gf::gap_summary> gaps;
  std::vector<gf::call_tree_node> nodes;
  std::vector<gf::context_summary> contexts;
  std::vector<gf::span_summary> spans;
  friend bool operator==(const shape&, const shape&) = default;
};
shape shape_of(const gf::filled_transaction& r) { return {r.derived_spans, r.gaps, r.call_tree_nodes, r.contexts, r.spans}; }

}  // namespace

TEST_CASE("gapfill U1: the worked example — join_in_memory fills gap 1, serialize_response gap 2") {
  example_options o;
  SUBCASE("anchor frames found by the handler") { o.anchors = true; }
  SUBCASE("no anchors (libunwind): F found by its call site") { o.anchors = false; }
  scenario s = worked_example(o);
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  CHECK(r.counts.samples_placed == 20);
  CHECK(r.counts.skew_conflicts == 0);
  CHECK(r.counts.boundary_snapped == 0);
  CHECK(r.counts.unresolved_samples == 0);
  REQUIRE(r.contexts.size() == 1);
  CHECK(r.contexts[0].interval_ns == ms(10));

  // Root gaps: [0, 20], [60, 100], [140, 200]; the db spans are leaves (not filled).
  const std::uint32_t root = span_index(s, s.root_id);
  REQUIRE(r.spans[root].gap_count == 3);
  const gf::gap_summary& gap1 = r.gaps[r.spans[root].first_gap + 1];
  CHECK(gap1.begin_ns == ms(60));
  CHECK(gap1.end_ns == ms(100));
  CHECK(gap1.kind == gf::gap_kind::between);
  CHECK_FALSE(r.spans[span_index(s, db1_id)].filled);

  const auto join = inferred_named(r, "join_in_memory");
  REQUIRE(join.size() == 1);
  CHECK(join[0]->kind == gf::derived_kind::inferred);
  CHECK(join[0]->op() == "profile.inferred");
  CHECK(join[0]->begin_ns == ms(60));
  CHECK(join[0]->end_ns == ms(100));
  CHECK(join[0]->sample_count == 4);
  CHECK(join[0]->parent_id == s.root_id);
  CHECK(join[0]->span_id == s.root_id);
  CHECK(r.gaps[join[0]->gap_index].k == 1);
  CHECK(join[0]->description == "join_in_memory (orders.cpp:118)");
  CHECK(join[0]->stack == "join_in_memory;std::sort<int*>");  // std::sort folds into spanprof.stack
  CHECK(join[0]->duration_error_ns == ms(10));
  CHECK(join[0]->begin_lo_ns == ms(60));
  CHECK(join[0]->end_hi_ns == ms(100));
  CHECK(join[0]->duration_min_ns == ms(30));
  CHECK(join[0]->state == gf::run_state::running);
  CHECK(join[0]->code_filepath == "/work/app/src/orders.cpp");
  CHECK(join[0]->code_lineno == 140);
  CHECK(join[0]->tid == s.tid);
  CHECK(inferred_named(r, "std::sort<int*>").empty());

  const auto serialize = inferred_named(r, "serialize_response");
  REQUIRE(serialize.size() == 1);
  CHECK(serialize[0]->begin_ns == ms(140));
  CHECK(serialize[0]->end_ns == ms(200));
  CHECK(serialize[0]->sample_count == 6);
  CHECK(r.gaps[serialize[0]->gap_index].k == 2);
  CHECK(serialize[0]->description == "serialize_response (orders.cpp:120)");

  const auto parse = inferred_named(r, "parse_request");
  REQUIRE(parse.size() == 1);  // gap 0: both samples show the same callee
  CHECK(parse[0]->begin_ns == ms(0));
  CHECK(parse[0]->end_ns == ms(20));

  CHECK(of_kind(r, gf::derived_kind::gap).empty());  // every gap is explained
  CHECK(r.derived_spans.size() == 3);

  // Gap 1's call tree: F (4) → join_in_memory (4) → std::sort (4, all self).
  REQUIRE(gap1.node_count == 3);
  const gf::call_tree_node& f = r.call_tree_nodes[gap1.first_node];
  CHECK(f.parent == gf::no_index);
  CHECK(s.frames()[f.frame].function == "handle_orders(int)");
  CHECK(f.total_weight == 4);
  CHECK(f.self_weight == 0);
  const gf::call_tree_node& sort = r.call_tree_nodes[gap1.first_node + 2];
  CHECK(s.frames()[sort.frame].function == "void std::sort<int*>(int*, int*)");
  CHECK(sort.self_weight == 4);
  CHECK(sort.depth == 2);
  CHECK(r.call_tree_nodes[sort.parent].total_weight == 4);

  // Every sample of gap 1 is labelled with the join span and trimmed at F.
  for (std::size_t i = 0; i < r.placements.size(); ++i) {
    const gf::sample_placement& p = r.placements[i];
    if (s.samples[i].t_ns < ms(60) || s.samples[i].t_ns > ms(100)) continue;
    CHECK(p.derived_index == static_cast<std::uint32_t>(join[0] - r.derived_spans.data()));
    CHECK(p.trimmed_count == 3);  // std::sort, join_in_memory, handle_orders
  }
}

TEST_CASE("gapfill U1: gap 0 with two different callees gets an `unexplained` gap span") {
  example_options o;
  o.same_callee_in_gap0 = false;
  scenario s = worked_example(o);
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  CHECK(inferred_named(r, "parse_request").empty());  // one sample each: never a span
  CHECK(inferred_named(r, "authenticate").empty());
  const auto gaps = of_kind(r, gf::derived_kind::gap);
  REQUIRE(gaps.size() == 1);
  CHECK(gaps[0]->reason == gf::gap_reason::unexplained);
  CHECK(gaps[0]->op() == "profile.gap");
  CHECK(gaps[0]->description == "unexplained");
  CHECK(gaps[0]->begin_ns == 0);
  CHECK(gaps[0]->end_ns == ms(20));
  CHECK(gaps[0]->sample_count == 2);
  CHECK(gaps[0]->parent_id == s.root_id);
  CHECK(r.gaps[gaps[0]->gap_index].unresolved_weight == 2);
}

TEST_CASE("gapfill U2 / §3 no samples in a gap: gap span `uninstrumented, unsampled`") {
  example_options o;
  o.samples_in_gap1 = false;
  scenario s = worked_example(o);
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  CHECK(inferred_named(r, "join_in_memory").empty());
  const auto gaps = of_kind(r, gf::derived_kind::gap);
  REQUIRE(gaps.size() == 1);
  CHECK(gaps[0]->reason == gf::gap_reason::unsampled);
  CHECK(gaps[0]->description == "uninstrumented, unsampled");
  CHECK(gaps[0]->begin_ns == ms(60));
  CHECK(gaps[0]->end_ns == ms(100));
  CHECK(gaps[0]->expected_samples == doctest::Approx(4.0));
  CHECK(gaps[0]->sample_count == 0);
  CHECK(r.gaps[gaps[0]->gap_index].k == 1);
  // No derived span in that gap.
  for (const gf::derived_span& d : r.derived_spans) {
    if (d.kind != gf::derived_kind::gap) CHECK(d.gap_index != gaps[0]->gap_index);
  }
}

TEST_CASE("gapfill U3 / §3 gap shorter than Δ: no gap span, counted in short_gaps_ns") {
  scenario s;
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 90);
  const std::uint32_t tiny = s.frame("tiny_step()", "/work/app/src/orders.cpp", 30);
  s.span(s.root_id, 0, 0, 100, "http.server", "GET /orders");
  s.span(0xC1, s.root_id, 0, 50, "db.sql.query", "A");
  s.span(0xC2, s.root_id, 55, 100, "db.sql.query", "B");
  for (double t = 5; t < 50; t += 10) s.sample(ms(t), 0xC1, {f});
  s.sample(ms(52), s.root_id, {tiny, f});
  for (double t = 65; t < 100; t += 10) s.sample(ms(t), 0xC2, {f});
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  const std::uint32_t root = span_index(s, s.root_id);
  REQUIRE(r.spans[root].gap_count == 1);
  const gf::gap_summary& gap = r.gaps[r.spans[root].first_gap];
  CHECK(gap.begin_ns == ms(50));
  CHECK(gap.end_ns == ms(55));
  CHECK(gap.is_short);
  CHECK(r.spans[root].short_gaps_ns == ms(5));
  CHECK(of_kind(r, gf::derived_kind::gap).empty());
  CHECK(inferred_named(r, "tiny_step").empty());
  // Its one sample stays placed in that gap (profile, labels).
  const gf::sample_placement& p = r.placements[5];
  CHECK(p.fate == gf::sample_fate::placed);
  CHECK(p.gap_index == r.spans[root].first_gap);
  CHECK(p.resolved);
}

TEST_CASE("gapfill U4 / §3 sample straddling a span edge: snapped to the adjacent gap") {
  scenario s = worked_example();
  const std::uint32_t parse = s.frame("parse_request(request const&)", "/work/app/src/orders.cpp", 71);
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 108);
  // The root was still the active span when the signal arrived, but the clock read is 0.5 µs
  // into db span 1 (C.begin + 0.5 µs): it belongs to the gap before C.
  s.sample(ms(20) + us(0.5), s.root_id, {parse, f});
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  CHECK(r.counts.boundary_snapped == 1);
  CHECK(r.counts.skew_conflicts == 0);
  const gf::sample_placement& p = r.placements.back();
  CHECK(p.fate == gf::sample_fate::placed);
  CHECK(p.boundary_snapped);
  CHECK(p.span_index == span_index(s, s.root_id));
  CHECK(r.gaps[p.gap_index].k == 0);
  CHECK(p.placed_t_ns == ms(20));
  // The derived span it joins ends at the gap's edge, not inside db span 1.
  const auto parse_spans = inferred_named(r, "parse_request");
  REQUIRE(parse_spans.size() == 1);
  CHECK(parse_spans[0]->sample_count == 3);
  CHECK(parse_spans[0]->end_ns == ms(20));
  CHECK(parse_spans[0]->end_hi_ns == ms(20));
}

TEST_CASE("gapfill U5 / §3 clock skew ε ≤ tol: output identical to ε = 0") {
  scenario reference = worked_example();
  const gf::filled_transaction expected = reference.run();
  for (const std::int64_t skew : {us(50), -us(50), us(99)}) {
    CAPTURE(skew);
    example_options o;
    o.shift_ns = skew;
    scenario s = worked_example(o);
    const gf::filled_transaction r = s.run();
    CHECK(r.counts.skew_conflicts == 0);
    CHECK(shape_of(r) == shape_of(expected));
  }
}

TEST_CASE("gapfill U5 / §3 clock skew ε > tol: ids decide, conflicts counted, spans stay in their gaps") {
  // gapfill.md's U5 says "+2 ms", but every sample of U1 sits 5 ms from every edge, so 2 ms
  // crosses none; 6 ms moves the samples at 15, 55, 95, 135 and 195 across an edge.
  example_options o;
  o.shift_ns = ms(6);
  scenario s = worked_example(o);
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  CHECK(r.counts.skew_conflicts == 5);
  CHECK(r.counts.clock_suspect);  // 5 of 20 > 1 %
  // The db sample now at 61 ms still belongs to db span 1 (the id decides), clamped to its end.
  for (std::size_t i = 0; i < s.samples.size(); ++i) {
    if (s.samples[i].t_ns != ms(61)) continue;
    CHECK(r.placements[i].span_index == span_index(s, db1_id));
    CHECK(r.placements[i].skew_conflict);
    CHECK(r.placements[i].placed_t_ns == ms(60));
  }
  // The root sample now at 101 ms (inside db span 2) goes to the nearest gap, [60, 100].
  const std::uint32_t root = span_index(s, s.root_id);
  const gf::gap_summary& gap1 = r.gaps[r.spans[root].first_gap + 1];
  CHECK(gap1.low_confidence);
  CHECK(gap1.sample_count == 4);
  const auto join = inferred_named(r, "join_in_memory");
  REQUIRE(join.size() == 1);
  CHECK(join[0]->low_confidence);
  CHECK(join[0]->begin_ns >= ms(60));
  CHECK(join[0]->end_ns <= ms(100));
}

TEST_CASE("gapfill U6 / §3 fiber yields mid-span and resumes on another thread") {
  scenario s;
  s.ctx = 1'000'000'001;  // fiber ids are disjoint from tids
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t g = s.frame("fetch_and_merge()", "/work/app/src/orders.cpp", 150);
  s.span(s.root_id, 0, 0, 150, "queue.task", "merge");
  s.fibers.push_back({s.ctx, {{0, ms(50), 11}, {ms(80), ms(150), 12}}});
  s.tid = 11;
  for (double t = 5; t < 50; t += 10) s.sample(ms(t), s.root_id, {g, f});
  s.tid = 12;
  for (double t = 85; t < 150; t += 10) s.sample(ms(t), s.root_id, {g, f});
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  REQUIRE(r.contexts.size() == 1);
  CHECK(r.contexts[0].fiber);
  CHECK(r.contexts[0].interval_ns == ms(10));  // the spacing across the yield is not counted
  const auto merged = inferred_named(r, "fetch_and_merge");
  REQUIRE(merged.size() == 1);  // one span across the yield, samples from both threads
  CHECK(merged[0]->sample_count == 12);
  CHECK(merged[0]->begin_ns == 0);
  CHECK(merged[0]->end_ns == ms(150));
  CHECK(merged[0]->suspended_ns == ms(30));
  CHECK(merged[0]->tid == 11);
  const auto gaps = of_kind(r, gf::derived_kind::gap);
  REQUIRE(gaps.size() == 1);  // the suspended segment; the running time is fully explained
  CHECK(gaps[0]->reason == gf::gap_reason::suspended);
  CHECK(gaps[0]->begin_ns == ms(50));
  CHECK(gaps[0]->end_ns == ms(80));
  CHECK(gaps[0]->parent_id == merged[0]->id);  // the fiber yielded inside fetch_and_merge
  CHECK(r.gaps[merged[0]->gap_index].suspended_ns == ms(30));
  CHECK(r.gaps[merged[0]->gap_index].residual_ns == 0);
}

TEST_CASE("gapfill U6 / §3 fiber: a neighbour across a suspension counts on-thread time only") {
  // Short calls (one sample each) until 45 ms, suspended [48, 80), then G from 82 ms. Between
  // the samples at 45 and 82 the fiber ran 5 ms: G's begin is 2.5 ms of running time before 82,
  // i.e. 0.5 ms before the suspension. (Halving wall time would give 18.5 ms, capped to Δ/2 =
  // 5 ms of running time: 45 ms.)
  scenario s;
  s.ctx = 1'000'000'002;
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t g = s.frame("fetch_and_merge()", "/work/app/src/orders.cpp", 150);
  s.span(s.root_id, 0, 0, 120, "queue.task", "merge");
  s.fibers.push_back({s.ctx, {{0, ms(48), 11}, {ms(80), ms(120), 12}}});
  for (int k = 0; k < 5; ++k) {
    const std::uint32_t short_call = s.frame("step" + std::to_string(k) + "()", "/work/app/src/orders.cpp", 60);
    s.sample(ms(5 + 10 * k), s.root_id, {short_call, f});
  }
  for (double t = 82; t < 120; t += 10) s.sample(ms(t), s.root_id, {g, f});
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  const auto merged = inferred_named(r, "fetch_and_merge");
  REQUIRE(merged.size() == 1);
  CHECK(merged[0]->begin_ns == ms(47.5));
  CHECK(merged[0]->end_ns == ms(117));  // last sample 112 + Δ/2
  CHECK(merged[0]->suspended_ns == ms(32));
  CHECK(r.derived_spans.size() == 3);  // fetch_and_merge, the suspension, the unexplained rest
}

TEST_CASE("gapfill U7 / §3 transactions on two fibers of one thread see only their own samples") {
  // Fibers A and B alternate on thread 11 every 20 ms; each runs its own transaction.
  scenario a;
  a.ctx = 2001;
  a.tid = 11;
  a.txn_id = 0xAAA;
  a.root_id = 0xA0;
  const std::uint32_t fa = a.frame("handle_a()", "/work/app/src/a.cpp", 10);
  const std::uint32_t wa = a.frame("a_work()", "/work/app/src/a.cpp", 40);
  const std::uint32_t fb = a.frame("handle_b()", "/work/app/src/b.cpp", 10);
  const std::uint32_t wb = a.frame("b_work()", "/work/app/src/b.cpp", 40);
  a.span(0xA0, 0, 0, 140, "queue.task", "A", "void handle_a()", "../src/a.cpp", 5);
  a.span(0xB0, 0, 20, 160, "queue.task", "B", "void handle_b()", "../src/b.cpp", 5).ctx_id = 2002;
  std::vector<gf::on_thread_interval> on_a;
  std::vector<gf::on_thread_interval> on_b;
  for (double t = 0; t < 160; t += 20) {
    const bool is_a = static_cast<int>(t / 20) % 2 == 0;
    (is_a ? on_a : on_b).push_back({ms(t), ms(t + 20), 11});
    for (double u = t + 5; u < t + 20; u += 10) {
      gf::sample_input& smp = a.sample(ms(u), is_a ? 0xA0 : 0xB0, is_a ? std::vector<std::uint32_t>{wa, fa} : std::vector<std::uint32_t>{wb, fb});
      smp.ctx_id = is_a ? 2001 : 2002;
      smp.txn_id = is_a ? 0xAAA : 0xBBB;
    }
  }
  a.fibers.push_back({2001, on_a});
  a.fibers.push_back({2002, on_b});
  // Taken while switching from A to B: it goes nowhere.
  a.sample(ms(20), 0xA0, {wa, fa}).flags = gf::sample_flag_in_switch;

  const gf::filled_transaction ra = a.run();
  check_invariants(ra, a.input());
  CHECK(ra.counts.samples_placed == 8);
  CHECK(ra.counts.other_transaction_samples == 8);
  CHECK(ra.counts.switch_samples == 1);
  CHECK(ra.placements.back().fate == gf::sample_fate::in_switch);
  CHECK(inferred_named(ra, "b_work").empty());
  const auto work_a = inferred_named(ra, "a_work");
  REQUIRE(work_a.size() == 1);
  CHECK(work_a[0]->sample_count == 8);
  CHECK(work_a[0]->suspended_ns == ms(60));  // suspended at [20,40), [60,80), [100,120)

  scenario b = a;
  b.txn_id = 0xBBB;
  b.root_id = 0xB0;
  const gf::filled_transaction rb = b.run();
  check_invariants(rb, b.input());
  CHECK(rb.counts.samples_placed == 8);
  CHECK(rb.counts.other_transaction_samples == 9);  // A's eight, and A's switch sample
  CHECK(inferred_named(rb, "a_work").empty());
  REQUIRE(inferred_named(rb, "b_work").size() == 1);
}

TEST_CASE("gapfill §3 nested transaction on the same ctx: its root covers the outer timeline") {
  scenario s;
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t work = s.frame("prepare()", "/work/app/src/orders.cpp", 20);
  const std::uint32_t inner_work = s.frame("inner_job()", "/work/app/src/jobs.cpp", 20);
  s.span(s.root_id, 0, 0, 100, "http.server", "GET /orders");
  s.span(0xC1, s.root_id, 10, 20, "db.sql.query", "A");
  s.span(0x1A0, s.root_id, 40, 70, "queue.task", "inner").nested_transaction_root = true;
  for (double t = 5; t < 100; t += 10) {
    if (t > 10 && t < 20) {
      s.sample(ms(t), 0xC1, {f});
    } else if (t > 40 && t < 70) {
      s.sample(ms(t), 0x1A0, {inner_work, f}).txn_id = 0x7002;  // the inner transaction's
    } else {
      s.sample(ms(t), s.root_id, {work, f});
    }
  }
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  CHECK(r.counts.other_transaction_samples == 3);
  const std::uint32_t root = span_index(s, s.root_id);
  REQUIRE(r.spans[root].gap_count == 3);
  const gf::gap_summary* gaps = &r.gaps[r.spans[root].first_gap];
  CHECK(gaps[0].begin_ns == 0);
  CHECK(gaps[0].end_ns == ms(10));
  CHECK(gaps[1].begin_ns == ms(20));
  CHECK(gaps[1].end_ns == ms(40));
  CHECK(gaps[2].begin_ns == ms(70));
  CHECK(gaps[2].end_ns == ms(100));
  const std::uint32_t nested = span_index(s, 0x1A0);
  CHECK(r.spans[nested].excluded);
  CHECK_FALSE(r.spans[nested].filled);
  CHECK(r.spans[nested].gap_count == 0);
  CHECK(inferred_named(r, "inner_job").empty());
  for (const gf::derived_span& d : r.derived_spans) {
    CHECK((d.end_ns <= ms(40) || d.begin_ns >= ms(70)));  // nothing inside the inner transaction
  }
}

TEST_CASE("gapfill U8 / §3 spans left open at finish: auto-closed at txn.end, gaps as usual") {
  SUBCASE("still open when gapfill runs") {
    scenario s = worked_example();
    s.spans[2].open = true;  // db span 2 never ended: its samples carry its id to the end
    for (std::size_t i = 0; i < s.samples.size(); ++i) {
      if (s.samples[i].t_ns > ms(140)) s.samples[i].span_id = db2_id;
    }
    const gf::filled_transaction r = s.run();
    check_invariants(r, s.input());
    const std::uint32_t db2 = span_index(s, db2_id);
    CHECK(r.spans[db2].auto_closed_here);
    CHECK(r.spans[db2].end_ns == ms(200));
    CHECK(r.spans[db2].status == "deadline_exceeded");
    CHECK(r.counts.spans_auto_closed == 1);
    const std::uint32_t root = span_index(s, s.root_id);
    CHECK(r.spans[root].gap_count == 2);  // [0, 20], [60, 100]: db span 2 covers the rest
    CHECK(inferred_named(r, "serialize_response").empty());
    CHECK(inferred_named(r, "join_in_memory").size() == 1);
  }
  SUBCASE("already auto-closed by the context (deadline_exceeded, auto_closed)") {
    scenario s = worked_example();
    s.spans[2].end_ns = ms(200);
    s.spans[2].status = "deadline_exceeded";
    s.spans[2].auto_closed = true;
    const gf::filled_transaction r = s.run();
    const std::uint32_t db2 = span_index(s, db2_id);
    CHECK_FALSE(r.spans[db2].auto_closed_here);
    CHECK(r.spans[db2].status == "deadline_exceeded");
    CHECK(r.spans[span_index(s, s.root_id)].gap_count == 2);
    CHECK(r.counts.spans_auto_closed == 0);
  }
}

TEST_CASE("gapfill §3 span ended on another ctx: excluded from cover and from filling") {
  scenario s;
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t load = s.frame("load_cache()", "/work/app/src/cache.cpp", 20);
  const std::uint32_t q = s.frame("db::query(char const*)", "/work/app/src/db.cpp", 31);
  s.span(s.root_id, 0, 0, 100, "http.server", "GET /orders");
  s.span(0xC1, s.root_id, 30, 60, "cache.get", "warm").cross_context = true;
  s.span(0xC2, 0xC1, 40, 50, "db.sql.query", "SELECT 1");  // a child of the cross-context span
  for (double t = 5; t < 100; t += 10) {
    if (t > 40 && t < 50) s.sample(ms(t), 0xC2, {q, f});
    else s.sample(ms(t), t > 30 && t < 60 ? 0xC1 : s.root_id, {load, f});
  }
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  const std::uint32_t cross = span_index(s, 0xC1);
  CHECK(r.spans[cross].excluded);
  CHECK_FALSE(r.spans[cross].filled);
  CHECK(r.spans[cross].gap_count == 0);
  // The root's gaps ignore it: only its child covers [40, 50].
  const std::uint32_t root = span_index(s, s.root_id);
  REQUIRE(r.spans[root].gap_count == 2);
  CHECK(r.gaps[r.spans[root].first_gap].end_ns == ms(40));
  CHECK(r.gaps[r.spans[root].first_gap + 1].begin_ns == ms(50));
  // Its samples explain the root's time: load_cache spans [0, 40].
  const auto spans = inferred_named(r, "load_cache");
  REQUIRE(spans.size() == 2);
  CHECK(spans[0]->begin_ns == 0);
  CHECK(spans[0]->end_ns == ms(40));
  CHECK(spans[0]->sample_count == 4);
  CHECK(spans[1]->begin_ns == ms(50));
  CHECK(spans[1]->end_ns == ms(100));
}

TEST_CASE("gapfill U9 / §3 recursion: direct recursion is one span with recursion_depth") {
  scenario s;
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t start = s.frame("main", "/work/app/src/main.cpp", 3);
  s.span(s.root_id, 0, 0, 60, "http.server", "GET /tree");
  s.span(0xC1, s.root_id, 0, 10, "db.sql.query", "A");
  SUBCASE("f recursing up to 50 deep for 30 ms") {
    const std::uint32_t rec = s.frame("walk(node const*)", "/work/app/src/tree.cpp", 44);
    const std::uint32_t rec_leaf = s.frame("walk(node const*)", "/work/app/src/tree.cpp", 41);
    for (const auto& [t, depth] : std::vector<std::pair<double, int>>{{15, 20}, {25, 50}, {35, 35}}) {
      std::vector<std::uint32_t> stack{rec_leaf};
      for (int k = 1; k < depth; ++k) stack.push_back(rec);
      stack.push_back(f);
      stack.push_back(start);
      s.sample(ms(t), s.root_id, stack);
    }
    s.sample(ms(45), s.root_id, {f, start});
    s.sample(ms(55), s.root_id, {f, start});
    const gf::filled_transaction r = s.run();
    check_invariants(r, s.input());
    const auto walk = inferred_named(r, "walk");
    REQUIRE(walk.size() == 1);
    CHECK(walk[0]->recursion_depth == 50);
    CHECK(walk[0]->sample_count == 3);
    CHECK(walk[0]->begin_ns == ms(10));
    CHECK(walk[0]->end_ns == ms(40));
    CHECK(walk[0]->stack == "walk");
    // F's own samples after it: an `F self` span.
    const auto self = of_kind(r, gf::derived_kind::inferred_self);
    REQUIRE(self.size() == 1);
    CHECK(self[0]->code_function == "handle_orders");
    CHECK(self[0]->begin_ns == ms(40));
    CHECK(self[0]->end_ns == ms(60));
    CHECK(self[0]->description == "handle_orders self (orders.cpp:118)");
  }
  SUBCASE("indirect recursion f→g→f→… is bounded by max_inferred_depth") {
    const std::uint32_t even = s.frame("even(int)", "/work/app/src/parity.cpp", 10);
    const std::uint32_t odd = s.frame("odd(int)", "/work/app/src/parity.cpp", 20);
    // Sample k is k levels deep, so every level has its own samples and none is a chain.
    for (int k = 1; k <= 12; ++k) {
      std::vector<std::uint32_t> stack;
      for (int level = k; level >= 1; --level) stack.push_back(level % 2 == 1 ? even : odd);
      stack.push_back(f);
      s.sample(ms(10 + 4 * k), s.root_id, stack);
    }
    gf::config cfg;
    const gf::filled_transaction r = s.run(cfg);
    check_invariants(r, s.input());
    std::uint32_t deepest = 0;
    for (const gf::derived_span& d : r.derived_spans) deepest = std::max(deepest, d.depth);
    CHECK(deepest == cfg.max_inferred_depth);
    CHECK(of_kind(r, gf::derived_kind::inferred).size() == cfg.max_inferred_depth);
    // The deepest span keeps the weight of the levels below it as unresolved.
    for (const gf::derived_span& d : r.derived_spans) {
      if (d.depth == cfg.max_inferred_depth) CHECK(d.unresolved_weight == d.sample_weight - d.self_weight);
    }
  }
}

TEST_CASE("gapfill U10 / §3 inlined frames: a derived span can name an inlined function") {
  SUBCASE("the callee is inlined into F") {
    scenario s = worked_example();
    const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 130);
    const std::uint32_t header = s.frame("parse_header(buffer&)", "/work/app/src/parser.hpp", 20, "/srv/bin/orders", true);
    const std::uint32_t message = s.frame("parse_message(buffer&)", "/work/app/src/parser.hpp", 50, "/srv/bin/orders", true);
    const std::uint32_t serve = s.frame("app::serve(app::server&)", "/work/app/src/server.cpp", 55);
    s.remove_samples_if([](const gf::sample_input& x) { return x.t_ns > ms(60) && x.t_ns < ms(100); });
    // One pc in F's frame expands to three entries: parse_header ← parse_message ← F.
    for (double t = 65; t < 100; t += 10) s.sample(ms(t), s.root_id, {header, message, f, serve}, 0);
    const gf::filled_transaction r = s.run();
    check_invariants(r, s.input());
    const auto parse = inferred_named(r, "parse_message");
    REQUIRE(parse.size() == 1);
    CHECK(parse[0]->description == "parse_message (orders.cpp:130)");  // where F inlined it
    CHECK(parse[0]->stack == "parse_message;parse_header");
    CHECK(parse[0]->code_filepath == "/work/app/src/parser.hpp");
    CHECK(parse[0]->code_lineno == 50);
    CHECK(parse[0]->begin_ns == ms(60));
    CHECK(parse[0]->end_ns == ms(100));
  }
  SUBCASE("F itself is inlined into its caller: the anchor frame is the caller's") {
    scenario s = worked_example();
    const std::uint32_t f_inlined = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118, "/srv/bin/orders", true);
    const std::uint32_t join = s.frame("join_in_memory(std::vector<int, std::allocator<int> >&)", "/work/app/src/orders.cpp", 140);
    const std::uint32_t serve = s.frame("app::serve(app::server&)", "/work/app/src/server.cpp", 55);
    const std::uint32_t main_fn = s.frame("main", "/work/app/src/main.cpp", 12);
    s.remove_samples_if([](const gf::sample_input& x) { return x.t_ns > ms(60) && x.t_ns < ms(100); });
    // Physical frames: join, serve (with F inlined in it), main. F's frame address is serve's.
    for (double t = 65; t < 100; t += 10) s.sample(ms(t), s.root_id, {join, f_inlined, serve, main_fn}, 1);
    const gf::filled_transaction r = s.run();
    check_invariants(r, s.input());
    const auto join_spans = inferred_named(r, "join_in_memory");
    REQUIRE(join_spans.size() == 1);
    CHECK(join_spans[0]->description == "join_in_memory (orders.cpp:118)");
    CHECK(inferred_named(r, "app::serve").empty());
    const gf::gap_summary& gap = r.gaps[join_spans[0]->gap_index];
    CHECK(s.frames()[r.call_tree_nodes[gap.first_node].frame].function == "handle_orders(int)");
    CHECK(r.placements.back().trimmed_count == 2);
  }
}

TEST_CASE("gapfill U11 / §3 sampler frames and __restore_rt never reach the output") {
  scenario plain = worked_example();
  const gf::filled_transaction expected = plain.run();
  example_options o;
  o.handler_frames = true;
  scenario s = worked_example(o);
  const gf::filled_transaction r = s.run();
  CHECK(shape_of(r) == shape_of(expected));
  CHECK(r.counts.self_frames_stripped == 20);  // the counter says they were there
  CHECK(expected.counts.self_frames_stripped == 0);
  for (const gf::sample_placement& p : r.placements) CHECK(p.leaf_skip == 2);
}

TEST_CASE("gapfill U12 / §3 out-of-order drain: same output for any order and batch split") {
  scenario ordered = worked_example();
  const gf::filled_transaction expected = ordered.run();
  std::uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  };
  for (int round = 0; round < 5; ++round) {
    CAPTURE(round);
    scenario s = worked_example();
    std::vector<std::size_t> order(s.samples.size());
    std::iota(order.begin(), order.end(), 0);
    // Shuffle, then split into 3 drain batches delivered last-first.
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[next() % i]);
    const std::size_t third = order.size() / 3;
    std::vector<std::size_t> delivered(order.begin() + 2 * static_cast<std::ptrdiff_t>(third), order.end());
    delivered.insert(delivered.end(), order.begin(), order.begin() + static_cast<std::ptrdiff_t>(third));
    delivered.insert(delivered.end(), order.begin() + static_cast<std::ptrdiff_t>(third), order.begin() + 2 * static_cast<std::ptrdiff_t>(third));
    scenario shuffled = s;
    for (std::size_t i = 0; i < delivered.size(); ++i) {
      shuffled.samples[i] = s.samples[delivered[i]];
      shuffled.stacks[i] = s.stacks[delivered[i]];
    }
    const gf::filled_transaction r = shuffled.run();
    CHECK(shape_of(r) == shape_of(expected));
    CHECK(r.counts == expected.counts);
    for (std::size_t i = 0; i < delivered.size(); ++i) CHECK(r.placements[i] == expected.placements[delivered[i]]);
  }
}

TEST_CASE("gapfill U13 / §3 dropped samples: reason `samples dropped (n)`, runs bridge drop holes") {
  SUBCASE("U2 with drop log entries in 60–100") {
    example_options o;
    o.samples_in_gap1 = false;
    scenario s = worked_example(o);
    s.drop_reports.push_back({s.tid, {{ms(65), s.ctx}, {ms(75), s.ctx}, {ms(85), s.ctx}, {ms(25), 999}}, 0});
    const gf::filled_transaction r = s.run();
    const auto gaps = of_kind(r, gf::derived_kind::gap);
    REQUIRE(gaps.size() == 1);
    CHECK(gaps[0]->reason == gf::gap_reason::samples_dropped);
    CHECK(gaps[0]->samples_dropped == 3);  // the entry of context 999 is not ours
    CHECK_FALSE(gaps[0]->samples_dropped_upper_bound);
    CHECK(gaps[0]->description == "samples dropped (3)");
    CHECK(r.counts.samples_dropped == 4);
  }
  SUBCASE("the log overflowed: an upper bound for gaps before its oldest entry") {
    example_options o;
    o.samples_in_gap1 = false;
    scenario s = worked_example(o);
    s.drop_reports.push_back({s.tid, {{ms(150), s.ctx}}, 7});
    const gf::filled_transaction r = s.run();
    const auto gaps = of_kind(r, gf::derived_kind::gap);
    REQUIRE(gaps.size() == 1);
    CHECK(gaps[0]->samples_dropped == 7);
    CHECK(gaps[0]->samples_dropped_upper_bound);
    CHECK(gaps[0]->description == "samples dropped (up to 7)");
  }
  SUBCASE("a run bridges the hole of dropped samples") {
    scenario s = worked_example();
    s.remove_samples_if([](const gf::sample_input& x) { return x.t_ns == ms(75) || x.t_ns == ms(85); });
    s.drop_reports.push_back({s.tid, {{ms(75), s.ctx}, {ms(85), s.ctx}}, 0});
    const gf::filled_transaction r = s.run();
    check_invariants(r, s.input());
    const auto join = inferred_named(r, "join_in_memory");
    REQUIRE(join.size() == 1);
    CHECK(join[0]->sample_count == 2);
    CHECK(join[0]->begin_ns == ms(60));
    CHECK(join[0]->end_ns == ms(100));
    CHECK(join[0]->merged_over_drop);
    CHECK(r.counts.merged_over_drop == 1);
  }
}

TEST_CASE("gapfill U14 / §3 very long transaction: nothing kept after 30 s, later gaps `profile limit`") {
  scenario s;
  const std::uint32_t f = s.frame("handle_batch()", "/work/app/src/batch.cpp", 60);
  const std::uint32_t work = s.frame("crunch()", "/work/app/src/batch.cpp", 80);
  s.span(s.root_id, 0, 0, 40'000, "queue.task", "nightly", "void handle_batch()", "../src/batch.cpp", 50);
  s.span(0xC1, s.root_id, 10'000, 20'000, "db.sql.query", "A", "void handle_batch()", "../src/batch.cpp", 55);
  s.span(0xC2, s.root_id, 32'000, 35'000, "db.sql.query", "B", "void handle_batch()", "../src/batch.cpp", 57);
  for (double t = 5; t < 40'000; t += 10) {
    const bool in_a = t > 10'000 && t < 20'000;
    const bool in_b = t > 32'000 && t < 35'000;
    s.sample(ms(t), in_a ? 0xC1 : in_b ? 0xC2 : s.root_id, {work, f});
  }
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  CHECK(r.counts.samples_over_cap == 1000);
  CHECK(r.profile_cap_ns == ms(30'000));
  for (std::size_t i = 0; i < s.samples.size(); ++i) {
    CHECK((r.placements[i].fate == gf::sample_fate::over_cap) == (s.samples[i].t_ns >= ms(30'000)));
  }
  for (const gf::derived_span& d : r.derived_spans) {
    if (d.kind != gf::derived_kind::gap) CHECK(d.end_ns <= ms(30'000));
  }
  const auto crunch = inferred_named(r, "crunch");
  REQUIRE(crunch.size() == 2);
  CHECK(crunch[1]->begin_ns == ms(20'000));
  CHECK(crunch[1]->end_ns == ms(30'000));
  const auto gaps = of_kind(r, gf::derived_kind::gap);
  REQUIRE(gaps.size() == 2);
  CHECK(gaps[0]->reason == gf::gap_reason::profile_limit);  // [20 s, 32 s], sampled until 30 s
  CHECK(gaps[0]->begin_ns == ms(20'000));
  CHECK(gaps[1]->reason == gf::gap_reason::profile_limit);  // [35 s, 40 s], no samples
  CHECK(gaps[1]->sample_count == 0);
  CHECK(gaps[1]->description == "profile limit");

  SUBCASE("the sample-count cap alone") {
    gf::config cfg;
    cfg.max_samples_per_txn = 1500;
    const gf::filled_transaction capped = s.run(cfg);
    CHECK(capped.counts.samples_over_cap == 4000 - 1500);
    CHECK(capped.profile_cap_ns == ms(15'005));  // the 1501st sample's time
  }
}

TEST_CASE("gapfill U15 / §3 blocked, CPU mode: on-CPU time from weights, silent gaps `off-CPU`") {
  scenario s;
  s.mode = gf::sample_mode::cpu;
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t crunch = s.frame("crunch()", "/work/app/src/orders.cpp", 30);
  s.span(s.root_id, 0, 0, 250, "http.server", "GET /orders");
  s.span(0xC1, s.root_id, 100, 150, "db.sql.query", "A");
  s.sample(ms(20), s.root_id, {crunch, f});
  s.sample(ms(50), s.root_id, {crunch, f}).weight = 2;  // two expirations merged into one signal
  s.sample(ms(80), s.root_id, {crunch, f});
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  const std::uint32_t root = span_index(s, s.root_id);
  const gf::gap_summary& busy = r.gaps[r.spans[root].first_gap];
  CHECK(busy.on_cpu_ns == ms(40));   // Σ weight·Δ0
  CHECK(busy.off_cpu_ns == ms(60));  // d − on_cpu_ns
  const auto c = inferred_named(r, "crunch");
  REQUIRE(c.size() == 1);
  CHECK(c[0]->on_cpu_ns == ms(40));
  CHECK(c[0]->sample_weight == 4);
  CHECK(c[0]->off_cpu_ns == (c[0]->end_ns - c[0]->begin_ns) - ms(40));
  const gf::gap_summary& idle = r.gaps[r.spans[root].first_gap + 1];
  REQUIRE(idle.gap_span != gf::no_index);
  const gf::derived_span& off = r.derived_spans[idle.gap_span];
  CHECK(off.reason == gf::gap_reason::off_cpu);
  CHECK(off.description == "off-CPU");
  CHECK(off.begin_ns == ms(150));
  CHECK(off.end_ns == ms(250));
  CHECK(idle.off_cpu_ns == ms(100));
}

TEST_CASE("gapfill U16: chain collapse — F→G→H→I with equal counts is one span with the stack") {
  scenario s = worked_example();
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t g = s.frame("G()", "/work/app/src/chain.cpp", 10);
  const std::uint32_t h = s.frame("H()", "/work/app/src/chain.cpp", 20);
  const std::uint32_t i = s.frame("I()", "/work/app/src/chain.cpp", 30);
  s.remove_samples_if([](const gf::sample_input& x) { return x.t_ns > ms(60) && x.t_ns < ms(100); });
  for (double t = 65; t < 100; t += 10) s.sample(ms(t), s.root_id, {i, h, g, f}, 3);
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  const auto spans = inferred_named(r, "G");
  REQUIRE(spans.size() == 1);
  CHECK(spans[0]->stack == "G;H;I");
  CHECK(spans[0]->self_weight == 4);  // at the chain's end, I
  CHECK(inferred_named(r, "H").empty());
  CHECK(inferred_named(r, "I").empty());
}

TEST_CASE("gapfill U17: G G G K G G G gives two G spans; K (one sample) is not emitted") {
  scenario s;
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t g = s.frame("G()", "/work/app/src/g.cpp", 10);
  const std::uint32_t k = s.frame("K()", "/work/app/src/k.cpp", 10);
  s.span(s.root_id, 0, 0, 70, "http.server", "GET /g");
  const std::vector<std::uint32_t> sequence{g, g, g, k, g, g, g};
  for (std::size_t n = 0; n < sequence.size(); ++n) s.sample(ms(5.0 + 10.0 * static_cast<double>(n)), s.root_id, {sequence[n], f});
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  const auto spans = inferred_named(r, "G");
  REQUIRE(spans.size() == 2);
  CHECK(spans[0]->begin_ns == 0);
  CHECK(spans[0]->end_ns == ms(30));
  CHECK(spans[1]->begin_ns == ms(40));
  CHECK(spans[1]->end_ns == ms(70));
  CHECK(inferred_named(r, "K").empty());
  CHECK(r.gaps[spans[0]->gap_index].unresolved_weight == 1);
  CHECK(of_kind(r, gf::derived_kind::gap).empty());  // 10 ms unexplained < 2Δ
}

TEST_CASE("gapfill §3 blocked in a syscall, wall mode: state=blocked, `blocked: <call> ← <fn>`") {
  scenario s = worked_example();
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  const std::uint32_t fetch = s.frame("fetch_user(int)", "/work/app/src/users.cpp", 88);
  const std::uint32_t recv = s.frame("__libc_recv", "", 0, "/lib/x86_64-linux-gnu/libc.so.6");
  const std::uint32_t poll = s.frame("__GI___poll", "", 0, "/lib/x86_64-linux-gnu/libc.so.6");
  const std::uint32_t own_read = s.frame("read", "/work/app/src/users.cpp", 12);  // the app's own `read`
  const std::uint32_t hash = s.frame("hash_row()", "/work/app/src/users.cpp", 40);
  s.remove_samples_if([](const gf::sample_input& x) { return x.t_ns > ms(60) && x.t_ns < ms(100); });
  SUBCASE("every sample in recv") {
    for (double t = 65; t < 100; t += 10) s.sample(ms(t), s.root_id, {recv, fetch, f});
    const gf::filled_transaction r = s.run();
    const auto spans = inferred_named(r, "fetch_user");
    REQUIRE(spans.size() == 1);
    CHECK(spans[0]->state == gf::run_state::blocked);
    CHECK(spans[0]->description == "blocked: recv \xE2\x86\x90 fetch_user (orders.cpp:118)");
  }
  SUBCASE("glibc's internal alias names the public call") {
    for (double t = 65; t < 100; t += 10) s.sample(ms(t), s.root_id, {poll, fetch, f});
    const gf::filled_transaction r = s.run();
    REQUIRE(inferred_named(r, "fetch_user").size() == 1);
    CHECK(inferred_named(r, "fetch_user")[0]->description == "blocked: poll \xE2\x86\x90 fetch_user (orders.cpp:118)");
  }
  SUBCASE("half blocked, half computing: mixed") {
    for (double t = 65; t < 100; t += 10) s.sample(ms(t), s.root_id, {t < 80 ? recv : hash, fetch, f});
    const gf::filled_transaction r = s.run();
    REQUIRE(inferred_named(r, "fetch_user").size() == 1);
    CHECK(inferred_named(r, "fetch_user")[0]->state == gf::run_state::mixed);
    CHECK(inferred_named(r, "fetch_user")[0]->description == "fetch_user (orders.cpp:118)");
  }
  SUBCASE("an application function named read is not a system call") {
    for (double t = 65; t < 100; t += 10) s.sample(ms(t), s.root_id, {own_read, fetch, f});
    const gf::filled_transaction r = s.run();
    REQUIRE(inferred_named(r, "fetch_user").size() == 1);
    CHECK(inferred_named(r, "fetch_user")[0]->state == gf::run_state::running);
  }
}

TEST_CASE("gapfill §3 unwind failure (TRUNCATED): sample kept, fallback trim, counted") {
  scenario s = worked_example();
  const std::uint32_t sort = s.frame("void std::sort<int*>(int*, int*)", "/usr/include/c++/12/bits/stl_algo.h", 4881);
  const std::uint32_t join = s.frame("join_in_memory(std::vector<int, std::allocator<int> >&)", "/work/app/src/orders.cpp", 140);
  const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
  for (std::size_t i = 0; i < s.samples.size(); ++i) {
    if (s.samples[i].t_ns == ms(75)) {
      // The walk stopped right after the leaf: F is not in it, so it cannot be placed in the tree.
      s.stacks[i] = {sort};
      s.samples[i].flags = gf::sample_flag_truncated;
    }
    if (s.samples[i].t_ns == ms(85)) {
      // Stopped above F: the call site still finds F. The anchor index is not trusted.
      s.stacks[i] = {sort, join, f};
      s.samples[i].flags = gf::sample_flag_truncated;
    }
  }
  const gf::filled_transaction r = s.run();
  check_invariants(r, s.input());
  CHECK(r.counts.truncated_samples == 2);
  CHECK(r.counts.unresolved_samples == 1);
  std::size_t at75 = 0;
  std::size_t at85 = 0;
  for (std::size_t i = 0; i < s.samples.size(); ++i) {
    if (s.samples[i].t_ns == ms(75)) at75 = i;
    if (s.samples[i].t_ns == ms(85)) at85 = i;
  }
  CHECK(r.placements[at75].fate == gf::sample_fate::placed);
  CHECK_FALSE(r.placements[at75].resolved);
  CHECK(r.placements[at85].resolved);
  CHECK(r.placements[at85].trimmed_count == 3);
  // The unknown stack neither ends nor extends the run: still one join_in_memory.
  const auto spans = inferred_named(r, "join_in_memory");
  REQUIRE(spans.size() == 1);
  CHECK(spans[0]->sample_count == 3);
  CHECK(spans[0]->begin_ns == ms(60));
  CHECK(spans[0]->end_ns == ms(100));
  CHECK(r.gaps[spans[0]->gap_index].unresolved_weight == 1);
}

TEST_CASE("gapfill §2.3 anchor trim: exact when F recurses through another function") {
  // render() → layout() → render() → paint(): the span was opened by the inner render(). Its
  // anchor (frame address) picks the inner one; the call site alone matches the outermost.
  scenario s;
  const std::uint32_t render_outer = s.frame("render(node const&)", "/work/app/src/ui.cpp", 30);
  const std::uint32_t layout = s.frame("layout(node const&)", "/work/app/src/ui.cpp", 60);
  const std::uint32_t render_inner = s.frame("render(node const&)", "/work/app/src/ui.cpp", 34);
  const std::uint32_t paint = s.frame("paint(node const&)", "/work/app/src/ui.cpp", 90);
  const std::uint32_t main_fn = s.frame("main", "/work/app/src/main.cpp", 3);
  s.span(s.root_id, 0, 0, 40, "ui.render", "frame", "void render(const node&)", "../src/ui.cpp", 20);
  for (double t = 5; t < 40; t += 10) s.sample(ms(t), s.root_id, {paint, render_inner, layout, render_outer, main_fn}, 1);
  SUBCASE("anchor found: paint, called by the render that opened the span") {
    const gf::filled_transaction r = s.run();
    const auto paint_spans = inferred_named(r, "paint");
    REQUIRE(paint_spans.size() == 1);
    CHECK(paint_spans[0]->description == "paint (ui.cpp:34)");
    CHECK(r.placements[0].trimmed_count == 2);
    CHECK(inferred_named(r, "layout").empty());
  }
  SUBCASE("no anchor (libunwind): the outermost render, as §2.3 step 3 says") {
    for (gf::sample_input& x : s.samples) x.anchor_idx = gf::anchor_unknown;
    const gf::filled_transaction r = s.run();
    const auto layout_spans = inferred_named(r, "layout");
    REQUIRE(layout_spans.size() == 1);
    CHECK(layout_spans[0]->stack == "layout;render;paint");
    CHECK(r.placements[0].trimmed_count == 4);
  }
}

TEST_CASE("gapfill §2.3 fallback: no call-site match, F is the end of the common prefix") {
  SUBCASE("the samples diverge below F: same result as U1") {
    example_options o;
    o.anchors = false;
    scenario expected_scenario = worked_example(o);
    const gf::filled_transaction expected = expected_scenario.run();
    scenario s = worked_example(o);
    for (gf::span_input& span : s.spans) span.callsite_function = "auto handle_orders(int)::<lambda()>";
    const gf::filled_transaction r = s.run();
    CHECK(r.derived_spans == expected.derived_spans);
    // The root's samples (and its descendants') diverge below F: trimmed there. Each db span's
    // own samples are all one stack, so for them F cannot be told apart: untrimmed, flagged.
    CHECK(r.counts.low_confidence_trims == 8);
    for (std::size_t i = 0; i < s.samples.size(); ++i) {
      CHECK(r.placements[i].low_confidence_trim == (s.samples[i].span_id != s.root_id));
      if (s.samples[i].span_id == s.root_id) CHECK(r.placements[i].trimmed_count == expected.placements[i].trimmed_count);
    }
  }
  SUBCASE("fewer than two distinct stacks: kept untrimmed, low confidence") {
    scenario s;
    const std::uint32_t f = s.frame("handle_orders(int)", "/work/app/src/orders.cpp", 118);
    const std::uint32_t g = s.frame("G()", "/work/app/src/g.cpp", 10);
    const std::uint32_t main_fn = s.frame("main", "/work/app/src/main.cpp", 3);
    s.span(s.root_id, 0, 0, 40, "http.server", "GET /g", "lambda");
    for (double t = 5; t < 40; t += 10) s.sample(ms(t), s.root_id, {g, f, main_fn});
    const gf::filled_transaction r = s.run();
    check_invariants(r, s.input());
    CHECK(r.counts.low_confidence_trims == 4);
    CHECK(r.placements[0].low_confidence_trim);
    CHECK(r.placements[0].trimmed_count == 3);
    const auto spans = inferred_named(r, "handle_orders");  // the root is now main
    REQUIRE(spans.size() == 1);
    CHECK(spans[0]->low_confidence);
    CHECK(spans[0]->stack == "handle_orders;G");
  }
}

TEST_CASE("gapfill §2.5 limits: min_samples, min_duration_ns, max_inferred_spans (longest kept)") {
  scenario s = worked_example();
  SUBCASE("min_samples = 5 keeps only serialize_response (6 samples)") {
    gf::config cfg;
    cfg.min_samples = 5;
    const gf::filled_transaction r = s.run(cfg);
    check_invariants(r, s.input());
    CHECK(of_kind(r, gf::derived_kind::inferred).size() == 1);
    CHECK(inferred_named(r, "serialize_response").size() == 1);
  }
  SUBCASE("min_duration_ns = 50 ms keeps only serialize_response (60 ms)") {
    gf::config cfg;
    cfg.min_duration_ns = ms(50);
    const gf::filled_transaction r = s.run(cfg);
    CHECK(of_kind(r, gf::derived_kind::inferred).size() == 1);
    CHECK(inferred_named(r, "serialize_response").size() == 1);
  }
  SUBCASE("max_inferred_spans = 2 drops the shortest, its weight unresolved in its gap") {
    gf::config cfg;
    cfg.max_inferred_spans = 2;
    const gf::filled_transaction r = s.run(cfg);
    check_invariants(r, s.input());
    CHECK(r.counts.inferred_spans_over_cap == 1);
    CHECK(inferred_named(r, "parse_request").empty());  // 20 ms, the shortest
    CHECK(inferred_named(r, "join_in_memory").size() == 1);
    CHECK(r.gaps[r.spans[span_index(s, s.root_id)].first_gap].unresolved_weight == 2);
  }
  SUBCASE("fill_leaf_spans fills the db spans too") {
    gf::config cfg;
    cfg.fill_leaf_spans = true;
    const gf::filled_transaction r = s.run(cfg);
    check_invariants(r, s.input());
    const auto query = inferred_named(r, "db::query");
    REQUIRE(query.size() == 2);
    CHECK(query[0]->parent_id == db1_id);
    CHECK(query[0]->state == gf::run_state::blocked);
  }
}

TEST_CASE("gapfill names: display names, call-site matching, file spellings, blocking calls") {
  using namespace gf::names;
  CHECK(display_name("void handle_orders(int)") == "handle_orders");
  CHECK(display_name("join_in_memory(std::vector<int, std::allocator<int> >&)") == "join_in_memory");
  CHECK(display_name("void std::sort<int*>(int*, int*)") == "std::sort<int*>");
  CHECK(display_name("std::vector<int, std::allocator<int> > app::make(int) const") == "app::make");
  CHECK(display_name("void* operator new(unsigned long)") == "operator new");
  CHECK(display_name("app::handler::operator()(request&) const &") == "app::handler::operator()");
  CHECK(display_name("void run(T) [with T = int]") == "run");
  CHECK(display_name("(anonymous namespace)::helper(int)") == "(anonymous namespace)::helper");
  CHECK(display_name("char* app::name[abi:cxx11]() const") == "app::name");
  CHECK(display_name("pthread_cond_wait@@GLIBC_2.3.2") == "pthread_cond_wait");
  CHECK(match_name("std::sort<int*>") == "std::sort");
  CHECK(names_match("handle_orders", "app::handle_orders"));
  // GCC's __PRETTY_FUNCTION__ and the demangler spell anonymous namespaces differently.
  CHECK(names_match("{anonymous}::handle_get_user", "(anonymous namespace)::handle_get_user"));
  CHECK(names_match("{anonymous}::handle_get_user", "app::(anonymous namespace)::handle_get_user"));
  CHECK_FALSE(names_match("{anonymous}::handle_get_user", "(anonymous namespace)::handle_get_users"));
  CHECK_FALSE(names_match("handle_orders", "app::rehandle_orders"));
  CHECK(files_match("../src/orders.cpp", "/work/app/src/orders.cpp"));
  CHECK(files_match("./orders.cpp", "orders.cpp"));
  CHECK_FALSE(files_match("../src/orders.cpp", "/work/app/src/border/orders.cpp.in"));
  CHECK_FALSE(files_match("src/orders.cpp", "/work/app/src/myorders.cpp"));
  CHECK(blocking_call("__libc_recv") == "recv");
  CHECK(blocking_call("__GI___poll") == "poll");
  CHECK(blocking_call("__futex_abstimed_wait_common64") == "futex");
  CHECK(blocking_call("epoll_wait") == "epoll_wait");
  CHECK(blocking_call("read_nocancel") == "read");
  CHECK(blocking_call("memcpy").empty());
  CHECK(is_system_library("/lib/x86_64-linux-gnu/libc.so.6"));
  CHECK_FALSE(is_system_library("/srv/bin/orders"));
}

// ---- §5.4 randomized accuracy, on a simulator -------------------------------------------------
//
// Each seed draws a truth timeline: handle_request() (F) opens 1–5 db spans of 5–40 ms; before,
// between and after them, with probability 0.7, F calls one of eight functions fn0…fn7 for
// 0–60 ms, and 20 % of those call another fnj for part of the time. F's own code runs around
// the calls. Samples are taken at t0 + iΔ + jitter (|jitter| ≤ Δ/4) with the span id and stack
// the truth has at that instant, then noise: 3 % truncated stacks (leaf fragment only), 2 %
// with the handler's frames at the leaf, 2 % dropped into the drop log, samples inside the db
// spans (their own stacks), a clock skew ≤ 40 µs, anchors known for half the transactions
// (frame pointers) and unknown for the others (libunwind); in CPU mode some expirations merge
// (weight 2).
//
// Definitions (gapfill.md §5.4):
//   truth item      (gap k of the root, function, [b, e]) for each top-level planted call;
//                   detectable if e − b ≥ 3Δ.
//   match           a top-level inferred span (kind inferred, parent = root) in gap k that names
//                   the function and overlaps at least half of [b, e]; one span per item.
//   recall          matched detectable items / detectable items.
//   precision       matched top-level inferred spans / all top-level inferred spans (F self
//                   spans are not counted: they name F, not a planted call).
//   attribution     samples farther than tol from every span edge whose (span, gap) is the truth's
//                   / all such samples.
//   duration        matched detectable items whose estimated duration is within
//                   max(2Δ, 10 %) of the truth / matched detectable items.
//   bounds          matched items whose truth [b, e] lies inside [begin_lo, end_hi] / matched
//                   items (§5.2: ≥ 99 % when jitter ≤ Δ/4).

namespace {

class sim_random {
 public:
  explicit sim_random(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Our own integer → real mapping: std:: distributions differ between standard libraries.
  double unit() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  std::int64_t range(std::int64_t lo, std::int64_t hi) { return lo + static_cast<std::int64_t>(unit() * static_cast<double>(hi - lo)); }
  bool chance(double p) { return unit() < p; }

 private:
  std::uint64_t state_;
};

struct planted_call {
  int fn = 0;
  std::int64_t begin = 0;
  std::int64_t end = 0;
  int nested_fn = -1;  // a call to another fnj for part of the time
  std::int64_t nested_begin = 0;
  std::int64_t nested_end = 0;
  std::uint32_t gap = 0;  // gap k of the root
};

struct simulated {
  scenario s;
  std::vector<planted_call> calls;
  std::vector<std::pair<std::int64_t, std::int64_t>> db_spans;
  std::vector<std::uint64_t> db_ids;
  // Truth per sample (parallel to s.samples): span id, root gap k (if in the root), edge distance.
  std::vector<std::tuple<std::uint64_t, std::uint32_t, std::int64_t>> sample_truth;
};

simulated simulate(std::uint64_t seed, gf::sample_mode mode) {
  sim_random rnd(seed);
  simulated sim;
  scenario& s = sim.s;
  s.mode = mode;
  const std::int64_t delta = ms(10);  // 100 Hz
  s.interval_ns = delta;
  const std::uint32_t clone = s.frame("clone3", "", 0, "/lib/x86_64-linux-gnu/libc.so.6");
  const std::uint32_t thread_start = s.frame("start_thread", "", 0, "/lib/x86_64-linux-gnu/libc.so.6");
  const std::uint32_t loop = s.frame("app::worker_loop()", "/work/app/src/server.cpp", 77);
  const std::uint32_t handler = s.frame("spanprof::detail::sigprof_handler(int, siginfo_t*, void*)", "/work/include/spanprof/detail/sampler.hpp", 120);
  const std::uint32_t restore = s.frame("__restore_rt", "", 0, "/lib/x86_64-linux-gnu/libc.so.6");
  const std::uint32_t db_query = s.frame("db::query(char const*)", "/work/app/src/db.cpp", 20);
  const std::uint32_t db_wait = s.frame("db::send_and_wait()", "/work/app/src/db.cpp", 44);
  const std::uint32_t recv = s.frame("recv", "", 0, "/lib/x86_64-linux-gnu/libc.so.6");
  auto f_at = [&](std::uint32_t line) { return s.frame("handle_request(int)", "/work/app/src/handler.cpp", line); };
  auto fn_name = [](int i) { return "fn" + std::to_string(i); };
  auto fn_at = [&](int i, std::uint32_t line) { return s.frame(fn_name(i) + "()", "/work/app/src/work.cpp", line); };
  auto helper = [&](int i, int r) { return s.frame(fn_name(i) + "_step" + std::to_string(r) + "()", "/work/app/src/work.cpp", static_cast<std::uint32_t>(500 + 10 * i + r)); };
  auto fn_base = [](int i) { return static_cast<std::uint32_t>(200 + 20 * i); };

  // Timeline.
  const int db_count = static_cast<int>(rnd.range(1, 6));
  std::int64_t cursor = 0;
  std::vector<std::pair<std::int64_t, std::int64_t>> self_periods;
  for (int slot = 0; slot <= db_count; ++slot) {
    cursor += rnd.range(ms(2), ms(10));
    if (rnd.chance(0.7)) {
      planted_call c;
      c.fn = static_cast<int>(rnd.range(0, 8));
      c.begin = cursor;
      c.end = cursor + rnd.range(0, ms(60));
      c.gap = static_cast<std::uint32_t>(slot);
      if (rnd.chance(0.2)) {
        c.nested_fn = static_cast<int>((c.fn + rnd.range(1, 8)) % 8);
        const std::int64_t d = c.end - c.begin;
        c.nested_begin = c.begin + static_cast<std::int64_t>(rnd.unit() * 0.4 * static_cast<double>(d));
        c.nested_end = c.nested_begin + static_cast<std::int64_t>((0.2 + 0.3 * rnd.unit()) * static_cast<double>(d));
      }
      sim.calls.push_back(c);
      cursor = c.end;
    }
    cursor += rnd.range(ms(2), ms(10));
    if (slot < db_count) {
      const std::int64_t b = cursor;
      cursor += rnd.range(ms(5), ms(40));
      sim.db_spans.emplace_back(b, cursor);
    }
  }
  const std::int64_t end = cursor;
  s.span(s.root_id, 0, 0, 0, "http.server", "GET /work", "void handle_request(int)", "../src/handler.cpp", 30).end_ns = end;
  for (std::size_t k = 0; k < sim.db_spans.size(); ++k) {
    const std::uint64_t id = 0xD00 + k;
    gf::span_input& db = s.span(id, s.root_id, 0, 0, "db.sql.query", "SELECT …", "void handle_request(int)", "../src/handler.cpp", static_cast<std::uint32_t>(60 + k));
    db.begin_ns = sim.db_spans[k].first;
    db.end_ns = sim.db_spans[k].second;
    sim.db_ids.push_back(id);
  }
  const bool anchors = rnd.chance(0.5);
  const std::int64_t skew = rnd.range(-us(40), us(40));
  std::vector<gf::drop_entry> drops;

  // Samples.
  const std::int64_t t0 = rnd.range(0, delta);
  for (std::int64_t i = 0;; ++i) {
    const std::int64_t t = t0 + i * delta + rnd.range(-delta / 4, delta / 4);
    if (t > end) break;
    if (t < 0) continue;
    std::uint64_t span_id = s.root_id;
    std::uint32_t gap = 0;
    std::vector<std::uint32_t> stack;
    std::uint16_t anchor = 0;
    std::int64_t edge_distance = std::min(t, end - t);
    for (std::size_t k = 0; k < sim.db_spans.size(); ++k) {
      const auto [b, e] = sim.db_spans[k];
      edge_distance = std::min({edge_distance, std::abs(t - b), std::abs(t - e)});
      if (t >= e) gap = static_cast<std::uint32_t>(k + 1);
      if (t >= b && t <= e) {
        span_id = sim.db_ids[k];
        stack = {recv, db_wait, db_query, f_at(static_cast<std::uint32_t>(60 + k))};
        anchor = 3;
      }
    }
    if (span_id == s.root_id) {
      const planted_call* call = nullptr;
      for (const planted_call& c : sim.calls) {
        if (t >= c.begin && t < c.end) call = &c;
      }
      if (call == nullptr) {
        stack = {f_at(static_cast<std::uint32_t>(31 + rnd.range(0, 4)))};  // F's own code
        anchor = 0;
      } else {
        const std::uint32_t call_line = static_cast<std::uint32_t>(40 + call->gap);
        const bool nested = call->nested_fn >= 0 && t >= call->nested_begin && t < call->nested_end;
        const int leaf_fn = nested ? call->nested_fn : call->fn;
        if (rnd.chance(0.5)) {
          stack = {fn_at(leaf_fn, fn_base(leaf_fn) + static_cast<std::uint32_t>(rnd.range(0, 4)))};
        } else {
          const int r = static_cast<int>(rnd.range(0, 3));
          stack = {helper(leaf_fn, r), fn_at(leaf_fn, fn_base(leaf_fn) + 5 + static_cast<std::uint32_t>(r))};
        }
        if (nested) stack.push_back(fn_at(call->fn, fn_base(call->fn) + 9));
        stack.push_back(f_at(call_line));
        anchor = static_cast<std::uint16_t>(stack.size() - 1);
      }
    }
    stack.insert(stack.end(), {loop, thread_start, clone});
    if (rnd.chance(0.02)) {  // ring full: dropped, logged
      drops.push_back({t + skew, s.ctx});
      continue;
    }
    std::uint8_t flags = 0;
    if (rnd.chance(0.03)) {  // the unwinder stopped after one or two frames
      stack.resize(static_cast<std::size_t>(rnd.range(1, 3)));
      flags = gf::sample_flag_truncated;
      anchor = gf::anchor_unknown;
    } else if (rnd.chance(0.02)) {
      stack.insert(stack.begin(), {handler, restore});
      anchor = static_cast<std::uint16_t>(anchor + 2);
    }
    gf::sample_input& smp = s.sample(t + skew, span_id, stack, anchors ? anchor : gf::anchor_unknown);
    smp.flags = flags;
    if (mode == gf::sample_mode::cpu && rnd.chance(0.05)) {
      smp.weight = 2;  // this signal stands for two expirations: the next one never comes
      ++i;
    }
    sim.sample_truth.emplace_back(span_id, gap, edge_distance);
  }
  s.drop_reports.push_back({s.tid, drops, 0});
  return sim;
}

struct accuracy {
  std::size_t detectable = 0;
  std::size_t detectable_matched = 0;
  std::size_t top_level = 0;
  std::size_t top_level_matched = 0;
  std::size_t attributable = 0;
  std::size_t attributed = 0;
  std::size_t duration_ok = 0;
  std::size_t matched = 0;
  std::size_t bounds_ok = 0;
  std::size_t transactions = 0;
  [[nodiscard]] double recall() const { return detectable == 0 ? 1.0 : static_cast<double>(detectable_matched) / static_cast<double>(detectable); }
  [[nodiscard]] double precision() const { return top_level == 0 ? 1.0 : static_cast<double>(top_level_matched) / static_cast<double>(top_level); }
  [[nodiscard]] double attribution() const { return attributable == 0 ? 1.0 : static_cast<double>(attributed) / static_cast<double>(attributable); }
  [[nodiscard]] double bounds() const { return matched == 0 ? 1.0 : static_cast<double>(bounds_ok) / static_cast<double>(matched); }
  [[nodiscard]] double duration() const { return detectable_matched == 0 ? 1.0 : static_cast<double>(duration_ok) / static_cast<double>(detectable_matched); }
};

void score(simulated& sim, const gf::filled_transaction& r, accuracy& acc) {
  const scenario& s = sim.s;
  const std::int64_t delta = s.interval_ns;
  const std::uint32_t root = span_index(s, s.root_id);
  ++acc.transactions;
  std::vector<bool> used(r.derived_spans.size(), false);
  for (const planted_call& c : sim.calls) {
    const bool detectable = c.end - c.begin >= 3 * delta;
    acc.detectable += detectable ? 1 : 0;
    const std::string name = "fn" + std::to_string(c.fn);
    for (std::size_t i = 0; i < r.derived_spans.size(); ++i) {
      const gf::derived_span& d = r.derived_spans[i];
      if (used[i] || d.kind != gf::derived_kind::inferred || d.parent_id != s.root_id) continue;
      if (r.gaps[d.gap_index].span_index != root || r.gaps[d.gap_index].k != c.gap || d.code_function != name) continue;
      const std::int64_t overlap = std::min(d.end_ns, c.end) - std::max(d.begin_ns, c.begin);
      if (2 * overlap < c.end - c.begin) continue;
      used[i] = true;
      ++acc.matched;
      if (d.begin_lo_ns <= c.begin && c.end <= d.end_hi_ns) ++acc.bounds_ok;
      if (detectable) {
        ++acc.detectable_matched;
        const std::int64_t truth = c.end - c.begin;
        const std::int64_t error = std::abs((d.end_ns - d.begin_ns) - truth);
        if (error <= std::max<std::int64_t>(2 * delta, truth / 10)) ++acc.duration_ok;
      }
      break;
    }
  }
  for (std::size_t i = 0; i < r.derived_spans.size(); ++i) {
    const gf::derived_span& d = r.derived_spans[i];
    if (d.kind != gf::derived_kind::inferred || d.parent_id != s.root_id) continue;
    ++acc.top_level;
    acc.top_level_matched += used[i] ? 1 : 0;
  }
  const gf::config cfg;
  for (std::size_t i = 0; i < s.samples.size(); ++i) {
    const auto& [span_id, gap, distance] = sim.sample_truth[i];
    if (distance <= cfg.skew_tolerance_ns) continue;
    ++acc.attributable;
    const gf::sample_placement& p = r.placements[i];
    if (p.fate != gf::sample_fate::placed || p.span_index != span_index(s, span_id)) continue;
    if (span_id != s.root_id || r.gaps[p.gap_index].k == gap) ++acc.attributed;
  }
}

}  // namespace

TEST_CASE("gapfill §5.4 randomized accuracy: precision and recall of gap attribution ≥ 0.95") {
  for (const gf::sample_mode mode : {gf::sample_mode::wall, gf::sample_mode::cpu}) {
    accuracy acc;
    gf::gap_filler filler;  // reused across transactions, as the collector does
    gf::filled_transaction r;
    const gf::config cfg;
    for (std::uint64_t seed = 1; seed <= 200; ++seed) {
      CAPTURE(seed);
      simulated sim = simulate(seed * 7919 + (mode == gf::sample_mode::cpu ? 1'000'000 : 0), mode);
      filler.run(sim.s.input(), cfg, r);
      check_invariants(r, sim.s.input());
      score(sim, r, acc);
      if (seed % 4 == 0) {
        // Output invariant under permutation (a reversed drain).
        scenario reversed = sim.s;
        std::reverse(reversed.samples.begin(), reversed.samples.end());
        std::reverse(reversed.stacks.begin(), reversed.stacks.end());
        const gf::filled_transaction again = reversed.run(cfg);
        CHECK(shape_of(again) == shape_of(r));
      }
    }
    MESSAGE(std::string(mode == gf::sample_mode::wall ? "wall" : "cpu") << " mode, " << acc.transactions << " transactions: recall "
            << acc.recall() << " (" << acc.detectable_matched << "/" << acc.detectable << " detectable calls), precision "
            << acc.precision() << " (" << acc.top_level_matched << "/" << acc.top_level << " top-level inferred spans), "
            << "sample attribution " << acc.attribution() << " (" << acc.attributed << "/" << acc.attributable
            << "), duration within max(2Δ, 10 %) " << acc.duration() << ", truth inside the bounds " << acc.bounds()
            << " (" << acc.bounds_ok << "/" << acc.matched << ")");
    CHECK(acc.transactions == 200);
    CHECK(acc.detectable > 100);  // the test means something only with enough detectable calls
    CHECK(acc.recall() >= 0.95);
    CHECK(acc.precision() >= 0.95);
    CHECK(acc.attribution() >= 0.99);
    CHECK(acc.duration() >= 0.95);
    CHECK(acc.bounds() >= 0.99);
  }
}
