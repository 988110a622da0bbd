// spanprof-report: report.html (html_output.hpp).
#include "html_output.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <iterator>

#include "json_output.hpp"

namespace spanprof::report {

namespace {

constexpr std::string_view style = R"CSS(
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1400px}
h1{font-size:1.4em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ccc}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}
.fn{font-family:ui-monospace,monospace;word-break:break-all}.bad{color:#b00}.good{color:#070}
.flame-box{margin:.5em 0}.flame-box input{width:24em}.flame svg,.waterfall svg{display:block;border:1px solid #ddd}
rect.frame{stroke:#fff;stroke-width:.5;cursor:pointer}rect.frame.match{fill:#d0f !important}
.tip{position:fixed;pointer-events:none;background:#fffbe6;border:1px solid #aaa;padding:2px 6px;font-size:12px;display:none;max-width:600px}
.slow{display:flex;gap:1em;flex-wrap:wrap}.slow>div{flex:1 1 600px;min-width:0}
.muted{color:#777}
)CSS";

constexpr std::string_view script = R"JS(
'use strict';
const report = JSON.parse(document.getElementById('report-data').textContent);
const tip = document.getElementById('tip');
const SVG = 'http://www.w3.org/2000/svg';
function el(name, attrs) { const e = document.createElementNS(SVG, name); for (const k in attrs) e.setAttribute(k, attrs[k]); return e; }
function showTip(ev, text) { tip.textContent = text; tip.style.display = 'block'; tip.style.left = (ev.clientX + 12) + 'px'; tip.style.top = (ev.clientY + 12) + 'px'; }
function hideTip() { tip.style.display = 'none'; }
function hue(name) { let h = 0; for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0; return h; }
function warm(name) { const h = hue(name); return `hsl(${10 + h % 40},${70 + h % 20}%,${55 + h % 15}%)`; }
function fmtMs(v) { return v >= 100 ? v.toFixed(0) : v >= 1 ? v.toFixed(1) : v.toFixed(3); }
// The baseline's node at the same path (names from the root), for the differential view.
function indexTree(node, path, out) { const p = path + '\u0001' + node.name; out.set(p, node); for (const c of node.children) indexTree(c, p, out); return out; }

// An interactive flame graph: click a frame to zoom (it then spans the full width; click the
// root to zoom out), type to highlight matching frames, hover for ms, samples and share.
function flame(box, tree, base) {
  const W = Math.max(300, Math.min(1400, box.clientWidth || 1100)), H = 17;
  const holder = box.querySelector('.flame'), search = box.querySelector('input'), count = box.querySelector('.matches');
  const baseIndex = base ? indexTree(base, '', new Map()) : null;
  const total = tree.ms || 1, baseTotal = base ? (base.ms || 1) : 1;
  let focus = tree, focusPath = '';
  function depthOf(n) { let d = 0; for (const c of n.children) d = Math.max(d, depthOf(c)); return d + 1; }
  function color(node, path) {
    if (!baseIndex) return warm(node.name);
    const b = baseIndex.get(path), d = node.ms / total - (b ? b.ms / baseTotal : 0);
    const a = Math.min(1, Math.abs(d) * 5);
    return d >= 0 ? `rgba(220,40,30,${0.15 + 0.85 * a})` : `rgba(30,80,220,${0.15 + 0.85 * a})`;
  }
  function draw() {
    holder.textContent = '';
    const rows = depthOf(focus);
    const svg = el('svg', {width: W, height: rows * H, viewBox: `0 0 ${W} ${rows * H}`});
    const scale = W / (focus.ms || 1);
    function walk(node, x, depth, path) {
      const w = node.ms * scale;
      if (w < 0.3) return;
      const g = el('g', {});
      const r = el('rect', {x: x, y: depth * H, width: w, height: H - 1, fill: color(node, path), class: 'frame', 'data-name': node.name});
      g.appendChild(r);
      if (w > 30) {
        const t = el('text', {x: x + 3, y: depth * H + 12, 'font-size': 11, 'pointer-events': 'none'});
        const chars = Math.floor((w - 6) / 6.5);
        t.textContent = node.name.length > chars ? node.name.slice(0, Math.max(0, chars - 1)) + '…' : node.name;
        g.appendChild(t);
      }
      let text = `${node.name}${node.file ? ' (' + node.file + ':' + node.line + ')' : ''}\n${fmtMs(node.ms)} ms, ${node.samples} samples, ${(100 * node.ms / total).toFixed(1)} % of all`;
      if (baseIndex) { const b = baseIndex.get(path); text += `\nbaseline: ${b ? (100 * b.ms / baseTotal).toFixed(1) : '0.0'} %`; }
      r.addEventListener('mousemove', ev => showTip(ev, text));
      r.addEventListener('mouseleave', hideTip);
      r.addEventListener('click', () => { if (node === focus) { focus = tree; focusPath = ''; } else { focus = node; focusPath = path.slice(0, path.length - node.name.length - 1); } draw(); highlight(); });
      svg.appendChild(g);
      let cx = x;
      for (const c of node.children) { walk(c, cx, depth + 1, path + '\u0001' + c.name); cx += c.ms * scale; }
    }
    walk(focus, 0, 0, focusPath + '\u0001' + focus.name);
    holder.appendChild(svg);
  }
  function highlight() {
    const q = search.value.trim().toLowerCase();
    let n = 0;
    for (const r of holder.querySelectorAll('rect.frame')) {
      const hit = q !== '' && r.getAttribute('data-name').toLowerCase().includes(q);
      r.classList.toggle('match', hit);
      if (hit) n++;
    }
    count.textContent = q === '' ? '' : `${n} matching frames`;
  }
  search.addEventListener('input', highlight);
  draw();
}

// A transaction's spans on its time axis: instrumented spans, gap filling's inferred spans and
// its gaps (with their reason), one row each, indented by depth.
function waterfall(holder, txn) {
  const W = Math.max(500, Math.min(1400, holder.clientWidth || 1100)), H = 18, label = Math.min(380, W * 0.4), rows = txn.spans.slice().sort((a, b) => a.start_ms - b.start_ms || a.depth - b.depth);
  const svg = el('svg', {width: W, height: (rows.length + 1) * H + 4});
  const scale = (W - label - 10) / (txn.duration_ms || 1);
  const colors = {transaction: '#999', span: '#4a7fd4', inferred: '#f08a24', gap: '#ccc'};
  for (let i = 0; i <= 4; i++) {
    const x = label + i * (W - label - 10) / 4;
    svg.appendChild(el('line', {x1: x, x2: x, y1: 0, y2: (rows.length + 1) * H, stroke: '#eee'}));
    const t = el('text', {x: i === 4 ? x - 2 : x + 2, y: (rows.length + 1) * H, 'font-size': 10, fill: '#777', 'text-anchor': i === 4 ? 'end' : 'start'});
    t.textContent = fmtMs(txn.duration_ms * i / 4) + ' ms';
    svg.appendChild(t);
  }
  rows.forEach((s, i) => {
    const y = i * H;
    const name = s.kind === 'gap' ? `gap: ${s.gap_reason || s.description}` : s.kind === 'transaction' ? s.op : `${s.op} ${s.description}`;
    const t = el('text', {x: 4 + 10 * s.depth, y: y + 13, 'font-size': 11});
    const maxChars = Math.floor(label / 6.6) - 2 * s.depth;
    t.textContent = name.length > maxChars ? name.slice(0, maxChars - 1) + '…' : name;
    svg.appendChild(t);
    const r = el('rect', {x: label + s.start_ms * scale, y: y + 2, width: Math.max(1, (s.end_ms - s.start_ms) * scale), height: H - 4,
                          fill: colors[s.kind] || '#4a7fd4', class: 'span ' + s.kind});
    const text = `${s.kind}: ${name}\n${fmtMs(s.start_ms)} – ${fmtMs(s.end_ms)} ms (${fmtMs(s.end_ms - s.start_ms)} ms)` + (s.samples ? `, ${s.samples} samples` : '') + (s.status && s.status !== 'ok' ? `, ${s.status}` : '');
    r.addEventListener('mousemove', ev => showTip(ev, text));
    r.addEventListener('mouseleave', hideTip);
    svg.appendChild(r);
  });
  holder.appendChild(svg);
}

document.querySelectorAll('.flame-box').forEach(box => {
  const [which, kind, index] = box.dataset.src.split(':');
  const runData = report[which];
  if (kind === 'endpoint') {
    const ep = runData.endpoints[+index];
    let base = null;
    if (box.dataset.diff === '1' && report.baseline) { const b = report.baseline.endpoints.find(e => e.name === ep.name); base = b ? b.flame : {name: 'all', ms: 0, samples: 0, children: []}; }
    flame(box, ep.flame, base);
  } else {
    flame(box, runData.slowest[+index].flame, null);
  }
});
document.querySelectorAll('.waterfall').forEach(w => waterfall(w, report.current.slowest[+w.dataset.index]));
)JS";

std::string url_of_file(std::string_view path) {
  std::string out = "file://";
  for (const char ch : path) {
    const auto u = static_cast<unsigned char>(ch);
    if ((u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || ch == '/' || ch == '-' || ch == '_' ||
        ch == '.' || ch == '~') {
      out += ch;
    } else {
      fmt::format_to(std::back_inserter(out), "%{:02X}", u);
    }
  }
  return out;
}

std::string pct(double share) { return fmt::format("{:.1f} %", 100 * share); }
std::string ms(std::int64_t ns) { return fmt::format("{:.1f}", static_cast<double>(ns) / 1e6); }

std::vector<const endpoint*> by_p95(const run& r) {
  std::vector<const endpoint*> order;
  for (const auto& [name, e] : r.endpoints) order.push_back(&e);
  std::sort(order.begin(), order.end(), [](const endpoint* a, const endpoint* b) { return a->percentile(95) > b->percentile(95); });
  return order;
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += ch;
    }
  }
  return out;
}

std::string report_html(const run& r, const run* baseline, const std::string& json) {
  std::string out;
  auto put = [&]<typename... A>(fmt::format_string<A...> format, A&&... args) {
    fmt::format_to(std::back_inserter(out), format, std::forward<A>(args)...);
  };
  auto e = [](std::string_view s) { return html_escape(s); };
  out += "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>spanprof report</title><style>";
  out += style;
  out += "</style></head><body>\n<h1>spanprof report</h1>\n";
  put("<p>{} transactions from {} files over {:.1f} s; <span id=\"skipped\">{} files skipped</span>{}. Percentiles are "
      "nearest-rank over every duration. Flame graphs weigh each sample by the time it stands for (see README).</p>\n",
      r.transactions, r.files_read, r.wall_s(), r.files_skipped, r.duplicates > 0 ? fmt::format(", {} duplicates", r.duplicates) : "");
  if (!r.skipped.empty()) {
    out += "<details><summary>skipped files</summary><ul>";
    for (const skipped_file& s : r.skipped) put("<li><span class=\"fn\">{}</span>: {}</li>", e(s.path), e(s.problem));
    out += "</ul></details>\n";
  }
  // Indices into report.json's endpoints array, which is in the same (p95) order.
  const auto order = by_p95(r);
  out += "<h2>Endpoints</h2>\n<table id=\"endpoints\"><tr><th>transaction</th><th>count</th><th>per s</th><th>p50 ms</th>"
         "<th>p75 ms</th><th>p95 ms</th><th>p99 ms</th><th>max ms</th><th>errors</th><th>top gap culprit</th><th>samples: delivered / configured Hz</th>";
  if (baseline != nullptr) out += "<th>baseline p95 ms</th><th>p95 delta</th>";
  out += "</tr>\n";
  for (std::size_t i = 0; i < order.size(); ++i) {
    const endpoint& ep = *order[i];
    const double n = static_cast<double>(ep.durations_ns.size());
    const auto culprits = ep.ranked_culprits();
    put("<tr><td><a href=\"#ep-{}\">{}</a></td><td class=n>{}</td><td class=n>{:.2f}</td><td class=n>{}</td><td class=n>{}</td>"
        "<td class=n>{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{:.1f} %</td><td class=fn>{}</td><td class=n>{:.0f} / {}</td>",
        i, e(ep.name), ep.durations_ns.size(), r.wall_s() > 0 ? n / r.wall_s() : 0.0, ms(ep.percentile(50)), ms(ep.percentile(75)),
        ms(ep.percentile(95)), ms(ep.percentile(99)), ms(ep.durations_ns.empty() ? 0 : ep.durations_ns.back()),
        n > 0 ? 100.0 * static_cast<double>(ep.errors) / n : 0.0,
        culprits.empty() ? std::string("—") : e(culprits.front()->function) + " (" + e(culprits.front()->call_site) + ")",
        ep.profiled_ns > 0 ? static_cast<double>(ep.samples) / (static_cast<double>(ep.profiled_ns) / 1e9) : 0.0, r.opts.sample_rate_hz);
    if (baseline != nullptr) {
      const auto b = baseline->endpoints.find(ep.name);
      if (b == baseline->endpoints.end()) {
        out += "<td>—</td><td>—</td>";
      } else {
        const double cur = static_cast<double>(ep.percentile(95)), was = static_cast<double>(b->second.percentile(95));
        put("<td class=n>{}</td><td class=\"n {}\">{:+.1f} ms ({:+.0f} %)</td>", ms(b->second.percentile(95)), cur <= was ? "good" : "bad",
            (cur - was) / 1e6, was > 0 ? 100 * (cur - was) / was : 0.0);
      }
    }
    out += "</tr>\n";
  }
  out += "</table>\n";

  for (std::size_t i = 0; i < order.size(); ++i) {
    const endpoint& ep = *order[i];
    put("<section class=\"endpoint\" id=\"ep-{}\"><h2>{}</h2>\n", i, e(ep.name));
    put("<p>{} transactions, p95 {} ms, {:.0f} samples/s delivered of {} Hz configured ({} samples standing for {:.1f} ms of {:.1f} ms profiled).</p>\n",
        ep.durations_ns.size(), ms(ep.percentile(95)),
        ep.profiled_ns > 0 ? static_cast<double>(ep.samples) / (static_cast<double>(ep.profiled_ns) / 1e9) : 0.0, r.opts.sample_rate_hz,
        ep.samples, ep.sample_weight_ns / 1e6, static_cast<double>(ep.profiled_ns) / 1e6);
    const endpoint* base = nullptr;
    if (baseline != nullptr) {
      const auto b = baseline->endpoints.find(ep.name);
      if (b != baseline->endpoints.end()) base = &b->second;
    }
    out += "<h3>Gap culprits: what ran between the spans</h3>\n<table class=\"culprits\"><tr><th>function</th><th>called at</th>"
           "<th>hottest line</th><th>share of endpoint time</th><th>ms</th><th>in transactions</th><th>typical position</th><th>mean confidence</th>";
    if (base != nullptr) out += "<th>baseline share</th><th>delta</th>";
    out += "</tr>\n";
    std::size_t listed = 0;
    for (const culprit* c : ep.ranked_culprits()) {
      if (listed++ == 15) break;
      const double share = ep.total_ns > 0 ? static_cast<double>(c->total_ns) / static_cast<double>(ep.total_ns) : 0.0;
      put("<tr><td class=fn>{}</td><td class=fn>{}</td><td class=fn>{}:{}</td><td class=n>{}</td><td class=n>{}</td><td class=n>{} of {}</td>"
          "<td>{}</td><td class=n>{:.2f}</td>",
          e(c->function), e(c->call_site), e(c->hot_file), c->hot_line, pct(share), ms(c->total_ns), c->transactions,
          ep.durations_ns.size(), e(c->typical_position()), c->occurrences > 0 ? c->confidence_sum / static_cast<double>(c->occurrences) : 0.0);
      if (base != nullptr) {
        double was = 0;
        for (const auto& [key, bc] : base->culprits) {
          if (bc.function == c->function && bc.call_site == c->call_site && base->total_ns > 0) {
            was = static_cast<double>(bc.total_ns) / static_cast<double>(base->total_ns);
          }
        }
        put("<td class=n>{}</td><td class=n>{:+.1f} pts</td>", pct(was), 100 * (share - was));
      }
      out += "</tr>\n";
    }
    if (listed == 0) out += "<tr><td colspan=8 class=muted>no derived spans: nothing un-instrumented was sampled between spans</td></tr>\n";
    out += "</table>\n";
    if (base != nullptr) {
      // Culprits that only the baseline had: what the change removed.
      std::string gone;
      for (const culprit* bc : base->ranked_culprits()) {
        bool present = false;
        for (const auto& [key, c] : ep.culprits) present = present || (c.function == bc->function && c.call_site == bc->call_site);
        if (!present && gone.size() < 2000) {
          gone += fmt::format("<li><span class=fn>{} ({})</span>: {} of the baseline's time</li>", e(bc->function), e(bc->call_site),
                              pct(base->total_ns > 0 ? static_cast<double>(bc->total_ns) / static_cast<double>(base->total_ns) : 0.0));
        }
      }
      if (!gone.empty()) put("<p>Gone since the baseline:</p><ul class=\"gone\">{}</ul>\n", gone);
    }
    out += "<h3>Time by span op (exclusive)</h3>\n<table class=\"by-op\"><tr><th>op</th><th>ms</th><th>share</th></tr>\n";
    std::vector<std::pair<std::string, std::int64_t>> ops(ep.by_op.begin(), ep.by_op.end());
    std::sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    for (const auto& [op, ns] : ops) {
      put("<tr><td>{}</td><td class=n>{}</td><td class=n>{}</td></tr>\n", e(op), ms(ns),
          pct(ep.total_ns > 0 ? static_cast<double>(ns) / static_cast<double>(ep.total_ns) : 0.0));
    }
    out += "</table>\n<details><summary>time by span description</summary><table><tr><th>op description</th><th>ms</th></tr>";
    std::vector<std::pair<std::string, std::int64_t>> descriptions(ep.by_description.begin(), ep.by_description.end());
    std::sort(descriptions.begin(), descriptions.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    if (descriptions.size() > 30) descriptions.resize(30);
    for (const auto& [d, ns] : descriptions) put("<tr><td class=fn>{}</td><td class=n>{}</td></tr>", e(d), ms(ns));
    out += "</table></details>\n";
    if (!ep.gap_reasons.empty()) {
      out += "<p>Unexplained gaps: ";
      for (const auto& [reason, ns] : ep.gap_reasons) put("{} {} ms; ", e(reason), ms(ns));
      out += "</p>\n";
    }
    put("<h3>Flame graph (time-weighted)</h3>\n<div class=\"flame-box\" data-src=\"current:endpoint:{}\"><input type=\"search\" "
        "placeholder=\"search frames\" aria-label=\"search frames\"> <span class=\"matches\"></span><div class=\"flame\"></div></div>\n", i);
    if (baseline != nullptr) {
      put("<h3>Differential flame graph (red: a larger share of the time than in the baseline, blue: smaller)</h3>\n"
          "<div class=\"flame-box diff\" data-diff=\"1\" data-src=\"current:endpoint:{}\"><input type=\"search\" placeholder=\"search frames\">"
          " <span class=\"matches\"></span><div class=\"flame\"></div></div>\n", i);
    }
    out += "</section>\n";
  }

  out += "<h2>Slowest transactions</h2>\n";
  for (std::size_t i = 0; i < r.slowest.size(); ++i) {
    const slow_transaction& s = r.slowest[i];
    put("<section class=\"slowest\" id=\"slow-{}\"><h3>{} — {} ms{} <span class=muted>{}</span></h3>\n<p>files: ", i, e(s.name), ms(s.duration_ns),
        s.status != "ok" ? " (" + e(s.status) + ")" : "", e(s.event_id));
    for (const std::string& f : s.files) {
      const std::size_t slash = f.rfind('/');
      put("<a href=\"{}\">{}</a> ", e(url_of_file(f)), e(slash == std::string::npos ? f : f.substr(slash + 1)));
    }
    put("</p>\n<div class=\"slow\"><div class=\"waterfall\" data-index=\"{}\"></div>"
        "<div class=\"flame-box\" data-src=\"current:slow:{}\"><input type=\"search\" placeholder=\"search frames\"> "
        "<span class=\"matches\"></span><div class=\"flame\"></div></div></div></section>\n", i, i);
  }
  out += "<div class=\"tip\" id=\"tip\"></div>\n<script type=\"application/json\" id=\"report-data\">";
  for (const char ch : json) {
    if (ch == '<') out += "\\u003c";
    else out += ch;
  }
  out += "</script>\n<script>";
  out += script;
  out += "</script>\n</body></html>\n";
  return out;
}

}  // namespace spanprof::report
