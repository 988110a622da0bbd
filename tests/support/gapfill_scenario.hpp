// Hand-built gap-filling inputs for the gapfill_*_test.cpp files: a `scenario` builder (frames,
// spans, samples), gapfill.md §2's worked example, lookups into the output, and the invariants
// every output must satisfy.
#pragma once

#include <doctest/doctest.h>
#include <spanprof/detail/gapfill/gapfill.hpp>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <numeric>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace gapfill_support {

namespace gf = spanprof::detail::gapfill;
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

inline std::vector<const gf::derived_span*> inferred_named(const gf::filled_transaction& r, std::string_view function) {
  std::vector<const gf::derived_span*> out;
  for (const gf::derived_span& d : r.derived_spans) {
    if (d.kind != gf::derived_kind::gap && d.code_function == function) out.push_back(&d);
  }
  return out;
}

inline std::vector<const gf::derived_span*> of_kind(const gf::filled_transaction& r, gf::derived_kind kind) {
  std::vector<const gf::derived_span*> out;
  for (const gf::derived_span& d : r.derived_spans) {
    if (d.kind == kind) out.push_back(&d);
  }
  return out;
}

inline std::uint32_t span_index(const scenario& s, std::uint64_t id) {
  for (std::uint32_t i = 0; i < s.spans.size(); ++i) {
    if (s.spans[i].id == id) return i;
  }
  return gf::no_index;
}

// gapfill.md §5.2's structural invariants, checked on any result: derived ⊆ gap ⊆ span,
// children nested, siblings disjoint, weights conserved.
inline void check_invariants(const gf::filled_transaction& r, const gf::transaction_input& in) {
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

inline constexpr std::uint64_t db1_id = 0xD1;
inline constexpr std::uint64_t db2_id = 0xD2;

inline scenario worked_example(const example_options& o = {}) {
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

}  // namespace gapfill_support
