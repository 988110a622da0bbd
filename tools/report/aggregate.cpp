// spanprof-report: the aggregates (aggregate.hpp).
#include "aggregate.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <set>
#include <unordered_map>

namespace spanprof::report {

std::int64_t nearest_rank_percentile(const std::vector<std::int64_t>& sorted, double p) {
  const auto n = static_cast<double>(sorted.size());
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * n));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

std::vector<double> sample_weights(const transaction& t, std::int64_t interval_ns, double max_gap_intervals) {
  std::vector<double> weights(t.samples.size(), 0.0);
  std::vector<std::size_t> order(t.samples.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    const sample& x = t.samples[a];
    const sample& y = t.samples[b];
    return x.thread_id != y.thread_id ? x.thread_id < y.thread_id : x.t_ns < y.t_ns;
  });
  std::vector<std::pair<double, double>> suspended;
  for (const span& s : t.spans) {
    if (s.gap && s.gap_reason == "suspended") suspended.emplace_back(static_cast<double>(s.start_ns), static_cast<double>(s.end_ns));
  }
  const double cap = max_gap_intervals * static_cast<double>(interval_ns);
  const auto end = static_cast<double>(t.duration_ns());
  auto stretch = [&](double from, double to) {
    double length = std::max(0.0, to - from);
    for (const auto& [b, e] : suspended) length -= std::max(0.0, std::min(to, e) - std::max(from, b));
    return std::clamp(length, 0.0, cap);
  };
  for (std::size_t k = 0; k < order.size(); ++k) {
    const sample& s = t.samples[order[k]];
    const auto now = static_cast<double>(s.t_ns);
    const bool first = k == 0 || t.samples[order[k - 1]].thread_id != s.thread_id;
    const bool last = k + 1 == order.size() || t.samples[order[k + 1]].thread_id != s.thread_id;
    const double before = first ? stretch(0, now) : stretch(static_cast<double>(t.samples[order[k - 1]].t_ns), now) / 2;
    const double after = last ? stretch(now, end) : stretch(now, static_cast<double>(t.samples[order[k + 1]].t_ns)) / 2;
    weights[order[k]] = before + after;
  }
  return weights;
}

flame_tree::flame_tree(std::size_t max_nodes) : max_nodes_(std::max<std::size_t>(max_nodes, 1)) {
  nodes_.push_back(flame_node{"all", "", 0, 0, 0, {}});
}

void flame_tree::add(const transaction& t, const std::vector<std::uint32_t>& leaf_first_stack, double weight_ns) {
  std::uint32_t at = 0;
  nodes_[0].weight_ns += weight_ns;
  ++nodes_[0].samples;
  for (auto it = leaf_first_stack.rbegin(); it != leaf_first_stack.rend(); ++it) {
    const frame& f = t.frames[*it];
    const std::string_view name = f.function.empty() ? std::string_view("[unknown]") : std::string_view(f.function);
    std::uint32_t next = 0;
    for (const std::uint32_t c : nodes_[at].children) {
      if (nodes_[c].name == name) {
        next = c;
        break;
      }
    }
    if (next == 0) {
      if (nodes_.size() >= max_nodes_) {
        ++over_cap_;
        return;  // charged to `at`, the deepest node it has
      }
      next = static_cast<std::uint32_t>(nodes_.size());
      nodes_.push_back(flame_node{std::string(name), f.file, f.line, 0, 0, {}});
      nodes_[at].children.push_back(next);
    }
    at = next;
    nodes_[at].weight_ns += weight_ns;
    ++nodes_[at].samples;
  }
}

std::string culprit::typical_position() const {
  const auto best = std::max_element(positions.begin(), positions.end(),
                                     [](const auto& a, const auto& b) { return a.second < b.second; });
  return best == positions.end() ? std::string() : best->first;
}

std::vector<const culprit*> endpoint::ranked_culprits() const {
  std::vector<const culprit*> out;
  out.reserve(culprits.size());
  for (const auto& [key, c] : culprits) out.push_back(&c);
  std::sort(out.begin(), out.end(), [](const culprit* a, const culprit* b) {
    return a->total_ns != b->total_ns ? a->total_ns > b->total_ns : a->function < b->function;
  });
  return out;
}

namespace {

// "name (file.cpp:43)" → "file.cpp:43"; "" when the description has no call site.
std::string call_site_of(std::string_view description) {
  if (description.empty() || description.back() != ')') return {};
  const std::size_t open = description.rfind(" (");
  if (open == std::string_view::npos) return {};
  const std::string_view inside = description.substr(open + 2, description.size() - open - 3);
  const std::size_t colon = inside.rfind(':');
  if (colon == std::string_view::npos || colon + 1 >= inside.size()) return {};
  for (const char ch : inside.substr(colon + 1)) {
    if (ch < '0' || ch > '9') return {};
  }
  return std::string(inside);
}

std::string function_of(const span& s) {
  if (!s.code_function.empty()) return s.code_function;
  const std::size_t open = s.description.rfind(" (");
  return open == std::string::npos ? s.description : s.description.substr(0, open);
}

std::string shorten(std::string_view text, std::size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;  // a UTF-8 boundary
  return std::string(text.substr(0, cut)) + "…";
}

// How sure gap filling was of a derived span, 0..1: 1 - (its duration error / its duration),
// halved when gap filling flagged it low_confidence. A span of n samples at interval Δ lasts
// about nΔ ± Δ, so this is about 1 - 1/n.
double confidence_of(const span& s) {
  const auto d = static_cast<double>(s.duration_ns());
  double c = d > 0 ? 1.0 - static_cast<double>(s.duration_error_ns) / d : 0.0;
  c = std::clamp(c, 0.0, 1.0);
  return s.low_confidence ? c / 2 : c;
}

const std::vector<std::string> sibling_suffixes = {".trace.json", ".transaction.json", ".envelope", ".speedscope.json",
                                                   ".pb.gz", ".folded", ".svg"};

std::string stem_of(const std::string& path) {
  for (const std::string& suffix : {std::string(".envelope"), std::string(".transaction.json")}) {
    if (path.size() > suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return path.substr(0, path.size() - suffix.size());
    }
  }
  return path;
}

}  // namespace

void run::skip(const std::string& path, const std::string& problem) {
  ++files_skipped;
  if (skipped.size() < 100) skipped.push_back({path, problem});
}

void run::add(const transaction& t) {
  if (!t.event_id.empty() && !event_ids.insert(t.event_id).second) {
    ++duplicates;
    return;
  }
  ++transactions;
  const std::uint64_t serial = ++transaction_serial;
  if (transactions == 1 || t.start_epoch_ns < first_start_ns) first_start_ns = t.start_epoch_ns;
  if (transactions == 1 || t.end_epoch_ns > last_end_ns) last_end_ns = t.end_epoch_ns;

  std::string key = t.name;
  if (endpoints.find(key) == endpoints.end() && endpoints.size() >= opts.max_endpoints) key = "[other]";
  auto [it, inserted] = endpoints.try_emplace(key, opts.max_flame_nodes);
  endpoint& e = it->second;
  if (inserted) {
    e.name = key;
    e.op = t.op;
  }
  const std::int64_t duration = t.duration_ns();
  e.durations_ns.push_back(duration);
  e.total_ns += duration;
  if (t.status != "ok") ++e.errors;
  ++e.statuses[t.status];

  // Exclusive time per op: each instrumented span minus its instrumented children.
  std::unordered_map<std::string_view, std::int64_t> child_ns;  // parent span id → its children's time
  std::unordered_map<std::string_view, const span*> by_id;
  for (const span& s : t.spans) {
    if (s.derived()) continue;
    child_ns[s.parent_id] += s.duration_ns();
    by_id[s.span_id] = &s;
  }
  auto child_time = [&](const std::string& id) {
    const auto c = child_ns.find(id);
    return c == child_ns.end() ? std::int64_t{0} : c->second;
  };
  e.by_op["(no span)"] += std::max<std::int64_t>(0, duration - child_time(t.root_span_id));
  for (const span& s : t.spans) {
    if (s.derived()) continue;
    const std::int64_t self = std::max<std::int64_t>(0, s.duration_ns() - child_time(s.span_id));
    e.by_op[s.op] += self;
    std::string description = s.op + " " + shorten(s.description, 200);
    if (e.by_description.find(description) == e.by_description.end() && e.by_description.size() >= opts.max_descriptions) {
      description = "[other]";
    }
    e.by_description[description] += self;
  }

  // Gap culprits: the derived spans directly under an instrumented span (the ones nested inside
  // another derived span are parts of it, and would count its time twice).
  std::unordered_map<std::string_view, bool> derived_ids;
  for (const span& s : t.spans) {
    if (s.derived()) derived_ids[s.span_id] = true;
  }
  for (const span& s : t.spans) {
    if (!s.derived() || derived_ids.count(s.parent_id) != 0) continue;
    if (s.gap) {
      e.gap_reasons[s.gap_reason.empty() ? "unexplained" : s.gap_reason] += s.duration_ns();
      continue;
    }
    const std::string function = function_of(s), site = call_site_of(s.description);
    std::string ckey = function + '\x1f' + site;
    if (e.culprits.find(ckey) == e.culprits.end() && e.culprits.size() >= opts.max_culprits) continue;
    culprit& c = e.culprits[ckey];
    if (c.occurrences == 0) {
      c.function = function;
      c.call_site = site;
      c.hot_file = s.code_filepath;
      c.hot_line = s.code_lineno;
    }
    ++c.occurrences;
    if (c.last_transaction != serial) {
      ++c.transactions;
      c.last_transaction = serial;
    }
    c.total_ns += s.duration_ns();
    c.samples += s.sample_count;
    c.confidence_sum += confidence_of(s);
    // Its position: after the latest instrumented sibling that ended before it began (µs
    // timestamps, so up to 1 µs of overlap is rounding).
    const span* before = nullptr;
    for (const span& o : t.spans) {
      if (o.derived() || o.parent_id != s.parent_id || o.end_ns > s.start_ns + 1000) continue;
      if (before == nullptr || o.end_ns > before->end_ns) before = &o;
    }
    std::string position = before != nullptr ? "after " + before->op + " " + shorten(before->description, 120) : "before the first span";
    if (s.parent_id != t.root_span_id) {
      const auto p = by_id.find(s.parent_id);
      if (p != by_id.end()) position += " (in " + p->second->op + " " + shorten(p->second->description, 60) + ")";
    }
    if (c.positions.size() < 32 || c.positions.count(position) != 0) ++c.positions[position];
  }

  // Samples, weighted by the time each stands for.
  std::vector<double> weights;
  if (t.has_profile && !t.samples.empty()) {
    weights = sample_weights(t, opts.interval_ns(), opts.max_gap_intervals);
    ++e.profiled_transactions;
    e.profiled_ns += duration;
    for (std::size_t i = 0; i < t.samples.size(); ++i) {
      e.flame.add(t, t.stacks[t.samples[i].stack_id], weights[i]);
      e.sample_weight_ns += weights[i];
    }
    e.samples += t.samples.size();
  }

  // The slowest, each kept whole enough for its own view.
  auto faster = [](const slow_transaction& a, const slow_transaction& b) { return a.duration_ns > b.duration_ns; };
  if (opts.slowest == 0 || (slowest.size() >= opts.slowest && duration <= slowest.front().duration_ns)) return;
  slow_transaction st;
  st.name = t.name;
  st.event_id = t.event_id;
  st.status = t.status;
  st.duration_ns = duration;
  st.start_epoch_ns = t.start_epoch_ns;
  std::unordered_map<std::string_view, int> depth;
  depth[t.root_span_id] = 0;
  st.spans.push_back({t.name, t.op, t.status, "transaction", "", 0, duration, 0, 0});
  // Spans come parent before child in the event (spanprof writes them so); derived after all.
  for (int pass = 0; pass < 2; ++pass) {
    for (const span& s : t.spans) {
      if (s.derived() != (pass == 1)) continue;
      const auto d = depth.find(s.parent_id);
      const int level = d == depth.end() ? 1 : d->second + 1;
      depth[s.span_id] = level;
      st.spans.push_back({s.op, shorten(s.description, 300), s.status, s.gap ? "gap" : s.inferred ? "inferred" : "span",
                          s.gap_reason, s.start_ns, s.end_ns, s.sample_count, level});
    }
  }
  for (std::size_t i = 0; i < t.samples.size(); ++i) st.flame.add(t, t.stacks[t.samples[i].stack_id], weights[i]);
  std::error_code ec;
  const std::string stem = stem_of(t.path);
  for (const std::string& suffix : sibling_suffixes) {
    const std::filesystem::path p = stem + suffix;
    if (std::filesystem::exists(p, ec)) st.files.push_back(std::filesystem::absolute(p, ec).string());
  }
  if (slowest.size() >= opts.slowest) {
    std::pop_heap(slowest.begin(), slowest.end(), faster);
    slowest.pop_back();
  }
  slowest.push_back(std::move(st));
  std::push_heap(slowest.begin(), slowest.end(), faster);
}

void run::finish() {
  for (auto& [name, e] : endpoints) std::sort(e.durations_ns.begin(), e.durations_ns.end());
  std::sort(slowest.begin(), slowest.end(), [](const slow_transaction& a, const slow_transaction& b) {
    return a.duration_ns > b.duration_ns;
  });
}

std::vector<std::string> input_files(const std::vector<std::string>& dirs, std::vector<skipped_file>& unreadable) {
  namespace fs = std::filesystem;
  std::vector<std::string> envelopes, events;
  for (const std::string& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      unreadable.push_back({dir, "not a directory"});
      continue;
    }
    fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end;
    if (ec) {
      unreadable.push_back({dir, ec.message()});
      continue;
    }
    for (; it != end; it.increment(ec)) {
      if (ec) {
        unreadable.push_back({dir, ec.message()});
        break;
      }
      const std::string path = it->path().string();
      auto ends_with = [&](std::string_view suffix) {
        return path.size() > suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
      };
      if (ends_with(".envelope")) envelopes.push_back(path);
      else if (ends_with(".transaction.json")) events.push_back(path);
    }
  }
  std::set<std::string> with_envelope;
  for (const std::string& p : envelopes) with_envelope.insert(stem_of(p));
  std::vector<std::string> out = envelopes;
  for (const std::string& p : events) {
    if (with_envelope.count(stem_of(p)) == 0) out.push_back(p);
  }
  std::sort(out.begin(), out.end());
  return out;
}

void read_run(const std::vector<std::string>& dirs, run& r, bool quiet) {
  r.inputs = dirs;
  std::vector<skipped_file> unreadable;
  const std::vector<std::string> files = input_files(dirs, unreadable);
  for (const skipped_file& u : unreadable) {
    if (!quiet) std::fprintf(stderr, "spanprof-report: skipped %s: %s\n", u.path.c_str(), u.problem.c_str());
    r.skip(u.path, u.problem);
  }
  simdjson::ondemand::parser parser;
  transaction t;
  std::string problem;
  for (const std::string& path : files) {
    if (read_transaction_file(path, parser, t, problem)) {
      ++r.files_read;
      r.add(t);
    } else {
      if (!quiet) std::fprintf(stderr, "spanprof-report: skipped %s: %s\n", path.c_str(), problem.c_str());
      r.skip(path, problem);
    }
  }
  r.finish();
}

}  // namespace spanprof::report
