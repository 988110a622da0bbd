// spanprof-report: report.json (json_output.hpp).
#include "json_output.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>

namespace spanprof::report {

namespace {

// Length of the valid UTF-8 sequence at text[i], 0 if invalid.
std::size_t utf8_length(std::string_view text, std::size_t i) {
  const auto c = static_cast<unsigned char>(text[i]);
  std::size_t n = 0;
  std::uint32_t min = 0;
  if (c < 0x80) return 1;
  if ((c & 0xE0) == 0xC0) n = 2, min = 0x80;
  else if ((c & 0xF0) == 0xE0) n = 3, min = 0x800;
  else if ((c & 0xF8) == 0xF0) n = 4, min = 0x10000;
  else return 0;
  if (i + n > text.size()) return 0;
  std::uint32_t cp = c & (0xFF >> (n + 1));
  for (std::size_t k = 1; k < n; ++k) {
    const auto b = static_cast<unsigned char>(text[i + k]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

double ms(std::int64_t ns) { return static_cast<double>(ns) / 1e6; }
double ms(double ns) { return ns / 1e6; }

struct writer {
  std::string& out;
  void key(std::string_view k) {
    append_json_string(out, k);
    out += ':';
  }
  void str(std::string_view k, std::string_view v) {
    key(k);
    append_json_string(out, v);
  }
  template <typename T>
  void num(std::string_view k, T v) {
    key(k);
    fmt::format_to(std::back_inserter(out), "{}", v);
  }
  void real(std::string_view k, double v) {
    key(k);
    fmt::format_to(std::back_inserter(out), "{:.6f}", std::isfinite(v) ? v : 0.0);
  }
};

// The flame tree, pruned of nodes under 0.05 % of the root (their time stays in their parent).
void append_flame(std::string& out, const flame_tree& tree, std::uint32_t at, double min_ns, int depth) {
  const flame_node& n = tree.nodes()[at];
  writer w{out};
  out += '{';
  w.str("name", n.name);
  out += ',';
  if (!n.file.empty()) {
    w.str("file", n.file);
    out += ',';
    w.num("line", n.line);
    out += ',';
  }
  w.real("ms", ms(n.weight_ns));
  out += ',';
  w.num("samples", n.samples);
  out += ",\"children\":[";
  bool first = true;
  if (depth < 256) {
    for (const std::uint32_t c : n.children) {
      if (tree.nodes()[c].weight_ns < min_ns) continue;
      if (!first) out += ',';
      first = false;
      append_flame(out, tree, c, min_ns, depth + 1);
    }
  }
  out += "]}";
}

void append_flame(std::string& out, const flame_tree& tree) {
  append_flame(out, tree, 0, tree.nodes()[0].weight_ns * 0.0005, 0);
}

void append_endpoint(std::string& out, const run& r, const endpoint& e) {
  writer w{out};
  out += '{';
  w.str("name", e.name);
  out += ',';
  w.str("op", e.op);
  out += ',';
  w.num("count", e.durations_ns.size());
  out += ',';
  const double wall = r.wall_s();
  w.real("throughput_per_s", wall > 0 ? static_cast<double>(e.durations_ns.size()) / wall : 0.0);
  out += ",\"duration_ms\":{";
  const std::pair<const char*, double> ps[] = {{"p50", 50}, {"p75", 75}, {"p95", 95}, {"p99", 99}};
  for (const auto& [name, p] : ps) {
    w.real(name, ms(e.percentile(p)));
    out += ',';
  }
  w.real("max", ms(e.durations_ns.empty() ? 0 : e.durations_ns.back()));
  out += ',';
  w.real("mean", e.durations_ns.empty() ? 0.0 : ms(e.total_ns) / static_cast<double>(e.durations_ns.size()));
  out += ',';
  w.real("total", ms(e.total_ns));
  out += "},";
  w.num("errors", e.errors);
  out += ',';
  w.real("error_rate", e.durations_ns.empty() ? 0.0 : static_cast<double>(e.errors) / static_cast<double>(e.durations_ns.size()));
  out += ",\"statuses\":{";
  bool first = true;
  for (const auto& [status, count] : e.statuses) {
    if (!first) out += ',';
    first = false;
    w.num(status, count);
  }
  out += "},\"time_by_op_ms\":{";
  first = true;
  for (const auto& [op, ns] : e.by_op) {
    if (!first) out += ',';
    first = false;
    w.real(op, ms(ns));
  }
  out += "},\"time_by_description\":[";
  std::vector<std::pair<std::string, std::int64_t>> descriptions(e.by_description.begin(), e.by_description.end());
  std::sort(descriptions.begin(), descriptions.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (descriptions.size() > 50) descriptions.resize(50);
  first = true;
  for (const auto& [d, ns] : descriptions) {
    if (!first) out += ',';
    first = false;
    out += '{';
    w.str("description", d);
    out += ',';
    w.real("ms", ms(ns));
    out += '}';
  }
  out += "],\"gap_reasons_ms\":{";
  first = true;
  for (const auto& [reason, ns] : e.gap_reasons) {
    if (!first) out += ',';
    first = false;
    w.real(reason, ms(ns));
  }
  out += "},\"culprits\":[";
  first = true;
  std::size_t listed = 0;
  for (const culprit* c : e.ranked_culprits()) {
    if (listed++ == 50) break;
    if (!first) out += ',';
    first = false;
    out += '{';
    w.str("function", c->function);
    out += ',';
    w.str("call_site", c->call_site);
    out += ',';
    w.str("hot_file", c->hot_file);
    out += ',';
    w.num("hot_line", c->hot_line);
    out += ',';
    w.real("total_ms", ms(c->total_ns));
    out += ',';
    w.real("share", e.total_ns > 0 ? static_cast<double>(c->total_ns) / static_cast<double>(e.total_ns) : 0.0);
    out += ',';
    w.num("transactions", c->transactions);
    out += ',';
    w.num("occurrences", c->occurrences);
    out += ',';
    w.real("mean_samples", c->occurrences > 0 ? static_cast<double>(c->samples) / static_cast<double>(c->occurrences) : 0.0);
    out += ',';
    w.real("mean_confidence", c->occurrences > 0 ? c->confidence_sum / static_cast<double>(c->occurrences) : 0.0);
    out += ',';
    w.str("typical_position", c->typical_position());
    out += '}';
  }
  out += "],\"sampling\":{";
  w.num("configured_hz", r.opts.sample_rate_hz);
  out += ',';
  w.real("delivered_hz", e.profiled_ns > 0 ? static_cast<double>(e.samples) / (static_cast<double>(e.profiled_ns) / 1e9) : 0.0);
  out += ',';
  w.num("samples", e.samples);
  out += ',';
  w.num("profiled_transactions", e.profiled_transactions);
  out += ',';
  w.real("sample_weight_ms", ms(e.sample_weight_ns));
  out += ',';
  w.real("profiled_duration_ms", ms(e.profiled_ns));
  out += ',';
  w.num("flame_nodes_over_cap", e.flame.over_cap());
  out += "},\"flame\":";
  append_flame(out, e.flame);
  out += '}';
}

void append_run(std::string& out, const run& r) {
  writer w{out};
  out += "{\"inputs\":[";
  for (std::size_t i = 0; i < r.inputs.size(); ++i) {
    if (i > 0) out += ',';
    append_json_string(out, r.inputs[i]);
  }
  out += "],";
  w.num("files_read", r.files_read);
  out += ',';
  w.num("files_skipped", r.files_skipped);
  out += ',';
  w.num("duplicates", r.duplicates);
  out += ',';
  w.num("transactions", r.transactions);
  out += ',';
  w.real("wall_s", r.wall_s());
  out += ",\"skipped\":[";
  for (std::size_t i = 0; i < r.skipped.size(); ++i) {
    if (i > 0) out += ',';
    out += '{';
    w.str("path", r.skipped[i].path);
    out += ',';
    w.str("problem", r.skipped[i].problem);
    out += '}';
  }
  out += "],\"endpoints\":[";
  // Slowest p95 first: the order of the summary and the page.
  std::vector<const endpoint*> order;
  for (const auto& [name, e] : r.endpoints) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const endpoint* a, const endpoint* b) { return a->percentile(95) > b->percentile(95); });
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (i > 0) out += ',';
    append_endpoint(out, r, *order[i]);
  }
  out += "],\"slowest\":[";
  for (std::size_t i = 0; i < r.slowest.size(); ++i) {
    const slow_transaction& s = r.slowest[i];
    if (i > 0) out += ',';
    out += '{';
    w.str("name", s.name);
    out += ',';
    w.str("event_id", s.event_id);
    out += ',';
    w.str("status", s.status);
    out += ',';
    w.real("duration_ms", ms(s.duration_ns));
    out += ',';
    w.num("start_epoch_ns", s.start_epoch_ns);
    out += ",\"files\":[";
    for (std::size_t k = 0; k < s.files.size(); ++k) {
      if (k > 0) out += ',';
      append_json_string(out, s.files[k]);
    }
    out += "],\"spans\":[";
    for (std::size_t k = 0; k < s.spans.size(); ++k) {
      const waterfall_span& sp = s.spans[k];
      if (k > 0) out += ',';
      out += '{';
      w.str("kind", sp.kind);
      out += ',';
      w.str("op", sp.op);
      out += ',';
      w.str("description", sp.description);
      out += ',';
      w.str("status", sp.status);
      out += ',';
      if (!sp.reason.empty()) {
        w.str("gap_reason", sp.reason);
        out += ',';
      }
      w.real("start_ms", ms(sp.start_ns));
      out += ',';
      w.real("end_ms", ms(sp.end_ns));
      out += ',';
      w.num("samples", sp.samples);
      out += ',';
      w.num("depth", sp.depth);
      out += '}';
    }
    out += "],\"flame\":";
    append_flame(out, s.flame);
    out += '}';
  }
  out += "]}";
}

}  // namespace

void append_json_string(std::string& out, std::string_view text) {
  out += '"';
  for (std::size_t i = 0; i < text.size();) {
    const char ch = text[i];
    const auto u = static_cast<unsigned char>(ch);
    if (u >= 0x80) {
      const std::size_t n = utf8_length(text, i);
      if (n == 0) {
        out += "\xEF\xBF\xBD";
        ++i;
      } else {
        out.append(text.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (u < 0x20) fmt::format_to(std::back_inserter(out), "\\u{:04x}", u);
        else out += ch;
    }
    ++i;
  }
  out += '"';
}

std::string report_json(const run& current, const run* baseline) {
  std::string out;
  out += "{\"schema\":\"spanprof-report/1\",\"percentile_method\":\"nearest-rank\",\"current\":";
  append_run(out, current);
  if (baseline != nullptr) {
    out += ",\"baseline\":";
    append_run(out, *baseline);
    // Side by side, per endpoint present in the current run.
    out += ",\"comparison\":[";
    bool first = true;
    writer w{out};
    for (const auto& [name, e] : current.endpoints) {
      const auto b = baseline->endpoints.find(name);
      if (!first) out += ',';
      first = false;
      out += '{';
      w.str("name", name);
      out += ',';
      const double p95 = ms(e.percentile(95));
      w.real("p95_ms", p95);
      if (b != baseline->endpoints.end()) {
        const double bp95 = ms(b->second.percentile(95));
        out += ',';
        w.real("baseline_p95_ms", bp95);
        out += ',';
        w.real("p95_delta_ms", p95 - bp95);
        out += ',';
        w.real("p95_delta_ratio", bp95 > 0 ? (p95 - bp95) / bp95 : 0.0);
      }
      out += ",\"culprits\":[";
      // Every culprit of either run, by the larger share.
      std::map<std::string, std::pair<double, double>> shares;
      auto share = [](const culprit& c, const endpoint& ep) {
        return ep.total_ns > 0 ? static_cast<double>(c.total_ns) / static_cast<double>(ep.total_ns) : 0.0;
      };
      std::map<std::string, const culprit*> named;
      for (const auto& [key, c] : e.culprits) {
        shares[key].first = share(c, e);
        named[key] = &c;
      }
      if (b != baseline->endpoints.end()) {
        for (const auto& [key, c] : b->second.culprits) {
          shares[key].second = share(c, b->second);
          named.try_emplace(key, &c);
        }
      }
      std::vector<std::pair<std::string, std::pair<double, double>>> rows(shares.begin(), shares.end());
      std::sort(rows.begin(), rows.end(), [](const auto& x, const auto& y) {
        return std::max(x.second.first, x.second.second) > std::max(y.second.first, y.second.second);
      });
      if (rows.size() > 20) rows.resize(20);
      for (std::size_t i = 0; i < rows.size(); ++i) {
        if (i > 0) out += ',';
        const culprit& c = *named[rows[i].first];
        out += '{';
        w.str("function", c.function);
        out += ',';
        w.str("call_site", c.call_site);
        out += ',';
        w.real("share", rows[i].second.first);
        out += ',';
        w.real("baseline_share", rows[i].second.second);
        out += ',';
        w.real("share_delta", rows[i].second.first - rows[i].second.second);
        out += '}';
      }
      out += "]}";
    }
    out += ']';
  }
  out += "}\n";
  return out;
}

}  // namespace spanprof::report
