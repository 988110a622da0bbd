// spanprof: a flame graph as one self-contained SVG file (<stem>.svg, and per transaction name
// <name-stem>.aggregate.svg), rendered from folded counts (folded.hpp). No scripts, fonts or
// files outside it: it opens in any browser or image viewer and survives being attached to a
// ticket.
//
// Classic layout: the root at the bottom, callees stacked above, each frame's width its share of
// the samples, siblings in name order (so two graphs of one endpoint line up). Each frame box
// is a <g> with a <title> — "name (N samples, P%)", shown on hover — a <rect>, and its label in
// a nested <svg> viewport, which clips the text to the box. Colours come from a hash of the name:
// the same function has the same colour in every graph.
//
// NOT ASYNC-SIGNAL-SAFE. Collector thread only.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "../core/text.hpp"
#include "finished_transaction.hpp"
#include "folded.hpp"

namespace spanprof::detail {

// `text` as XML character data or attribute value: markup characters escaped, invalid UTF-8
// and the code points XML 1.0 forbids (controls other than \t\n\r, U+FFFE, U+FFFF) replaced
// by U+FFFD. Returns whether anything was replaced.
inline bool append_xml_escaped(std::string& out, std::string_view text) {
  const auto escape_ascii = [](std::string& o, unsigned char c) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      case '\t':
      case '\n':
      case '\r': o += ' '; break;
      default:
        if (c < 0x20) {
          o += utf8_replacement_character;
          return true;
        }
        o += static_cast<char>(c);
    }
    return false;
  };
  return append_utf8_repaired(out, text, escape_ascii, utf8_repair_policy::replace_xml_non_characters);
}

struct flamegraph_options {
  std::string_view title = "Flame graph";
  std::string_view count_name = "samples";
  int width_px = 1200;
  int frame_height_px = 16;
  int font_size_px = 12;
  double min_frame_width_px = 0.1;  // narrower frames (and what is above them) are not drawn
};

namespace flamegraph_detail {

struct node {
  std::string_view name;
  std::uint64_t total = 0;
  std::map<std::string_view, std::uint32_t> children;  // by name: siblings in name order
};

// FNV-1a: stable across runs and platforms, unlike std::hash.
inline std::uint32_t name_hash(std::string_view s) noexcept {
  std::uint32_t h = 2166136261u;
  for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
  return h;
}

// flamegraph.pl's warm palette for code, blue for spanprof's span and gap frames, grey for the
// aggregate's overflow, so what the instrumentation says stands apart from what was sampled.
inline std::string colour_of(std::string_view name) {
  const std::uint32_t h = name_hash(name);
  if (name == "[other]") return "rgb(170,170,170)";
  if (name.starts_with("span:")) return fmt::format("rgb({},{},{})", 80 + h % 40, 140 + (h >> 8) % 60, 220 + (h >> 16) % 35);
  return fmt::format("rgb({},{},{})", 205 + h % 50, (h >> 8) % 230, (h >> 16) % 55);
}

// A prefix of `text` of at most `max_bytes`, never cutting a UTF-8 sequence.
inline std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) noexcept {
  if (text.size() <= max_bytes) return text;
  std::size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

}  // namespace flamegraph_detail

// The SVG of `counts`. Stacks are split on `;` as flamegraph.pl does; every name is escaped
// here, so any folded counts give a valid file. `repaired` counts names with replaced bytes.
inline std::string render_flamegraph_svg(const folded_counts& counts, const flamegraph_options& options,
                                         json_text_stats& repaired) {
  namespace fd = flamegraph_detail;
  std::vector<fd::node> nodes(1);
  nodes[0].name = "all";
  std::size_t max_depth = 0;
  for (const auto& [stack, count] : counts) {
    if (count == 0) continue;
    nodes[0].total += count;
    std::uint32_t at = 0;
    std::size_t depth = 0;
    std::string_view rest = stack;
    while (!rest.empty()) {
      const std::size_t semi = rest.find(';');
      const std::string_view name = rest.substr(0, semi);
      rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
      auto [it, inserted] = nodes[at].children.try_emplace(name, static_cast<std::uint32_t>(nodes.size()));
      if (inserted) nodes.push_back(fd::node{name, 0, {}});
      at = it->second;
      nodes[at].total += count;
      ++depth;
    }
    max_depth = std::max(max_depth, depth);
  }

  const int pad_x = 10, title_h = 40, bottom_h = 12;
  const int width = std::max(options.width_px, 2 * pad_x + 1);
  const int height = title_h + bottom_h + static_cast<int>(max_depth + 1) * options.frame_height_px;
  const double per_count = nodes[0].total == 0 ? 0.0 : static_cast<double>(width - 2 * pad_x) / static_cast<double>(nodes[0].total);
  const double char_px = options.font_size_px * 0.59;  // Verdana's mean advance, as flamegraph.pl assumes

  std::string out;
  out.reserve(1024 + nodes.size() * 300);
  fmt::format_to(std::back_inserter(out),
                 "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"{0}\" height=\"{1}\" "
                 "viewBox=\"0 0 {0} {1}\">\n"
                 "<style>text{{font-family:Verdana,sans-serif;font-size:{2}px;fill:#000}}"
                 "g.frame rect{{stroke:#fff;stroke-width:0.5}}g.frame:hover rect{{stroke:#000}}</style>\n"
                 "<rect x=\"0\" y=\"0\" width=\"{0}\" height=\"{1}\" fill=\"#f8f8f0\"/>\n"
                 "<text x=\"{3}\" y=\"24\" text-anchor=\"middle\" style=\"font-size:17px\">",
                 width, height, options.font_size_px, width / 2);
  if (append_xml_escaped(out, options.title)) ++repaired.utf8_repaired;
  out += "</text>\n";
  if (nodes[0].total == 0) {
    out += "<text x=\"10\" y=\"60\">no samples</text>\n</svg>\n";
    return out;
  }

  // Depth-first, children in name order; an explicit stack, since a recursion as deep as a
  // sampled stack (1024 frames) is not something to do on the collector's stack.
  struct pending {
    std::uint32_t node;
    std::size_t depth;
    double x;
  };
  std::vector<pending> todo{{0, 0, static_cast<double>(pad_x)}};
  std::string label;
  while (!todo.empty()) {
    const pending p = todo.back();
    todo.pop_back();
    const fd::node& n = nodes[p.node];
    const double w = static_cast<double>(n.total) * per_count;
    if (w < options.min_frame_width_px) continue;
    const double y = height - bottom_h - static_cast<double>(p.depth + 1) * options.frame_height_px;
    const double percent = 100.0 * static_cast<double>(n.total) / static_cast<double>(nodes[0].total);
    out += "<g class=\"frame\"><title>";
    if (append_xml_escaped(out, n.name)) ++repaired.utf8_repaired;
    fmt::format_to(std::back_inserter(out), " ({} ", n.total);
    append_xml_escaped(out, options.count_name);
    fmt::format_to(std::back_inserter(out), ", {:.2f}%)</title><rect x=\"{:.2f}\" y=\"{:.0f}\" width=\"{:.2f}\" height=\"{}\" fill=\"{}\" rx=\"2\"/>",
                   percent, p.x, y, w, options.frame_height_px - 1, fd::colour_of(n.name));
    // The label: as many characters as fit (with ".." when cut), inside a viewport that clips
    // whatever the font makes of them to the box.
    const auto fit = static_cast<std::size_t>(std::max(0.0, (w - 6.0) / char_px));
    if (fit >= 3) {
      label.assign(n.name.size() <= fit ? n.name : fd::utf8_prefix(n.name, fit - 2));
      if (label.size() < n.name.size()) label += "..";
      fmt::format_to(std::back_inserter(out), "<svg x=\"{:.2f}\" y=\"{:.0f}\" width=\"{:.2f}\" height=\"{}\"><text x=\"3\" y=\"{}\">",
                     p.x, y, w, options.frame_height_px - 1, options.frame_height_px - 4);
      append_xml_escaped(out, label);
      out += "</text></svg>";
    }
    out += "</g>\n";
    // Children are pushed in reverse name order so they pop (and are laid out) in name order.
    double child_x = p.x;
    std::vector<pending> children;
    children.reserve(n.children.size());
    for (const auto& [name, child] : n.children) {
      children.push_back({child, p.depth + 1, child_x});
      child_x += static_cast<double>(nodes[child].total) * per_count;
    }
    for (auto it = children.rbegin(); it != children.rend(); ++it) todo.push_back(*it);
  }
  out += "</svg>\n";
  return out;
}

}  // namespace spanprof::detail
