// spanprof-report: report.html, one self-contained page (inline CSS, SVG drawn by inline JS, no
// network). Every string from the input is HTML-escaped in the tables, and reaches the scripts
// only as JSON inside a <script type="application/json"> with every '<' written as \u003c, where
// the scripts put it into the page as text (textContent), never as markup.
#pragma once

#include <string>
#include <string_view>

#include "aggregate.hpp"

namespace spanprof::report {

std::string html_escape(std::string_view text);

// `report_json` is what report_json() returned for the same runs (the page's scripts read it).
std::string report_html(const run& current, const run* baseline, const std::string& report_json);

}  // namespace spanprof::report
