// spanprof-report: report.json (schema: README.md, section "spanprof-report").
#pragma once

#include <string>
#include <string_view>

#include "aggregate.hpp"

namespace spanprof::report {

// `text` as a JSON string, quotes included; invalid UTF-8 bytes become U+FFFD.
void append_json_string(std::string& out, std::string_view text);

// The whole report as JSON. `baseline` may be null.
std::string report_json(const run& current, const run* baseline);

}  // namespace spanprof::report
