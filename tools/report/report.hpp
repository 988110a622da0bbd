// spanprof-report as a library: read output folders into bounded aggregates, then write
// report.json, report.html and a text summary. main.cpp is its command line.
//
//   spanprof::report::run current;
//   spanprof::report::read_run({"profiles/"}, current);
//   std::string json = spanprof::report::report_json(current, nullptr);
#pragma once

#include "aggregate.hpp"     // IWYU pragma: export
#include "html_output.hpp"   // IWYU pragma: export
#include "json_output.hpp"   // IWYU pragma: export
#include "reader.hpp"        // IWYU pragma: export
#include "text_summary.hpp"  // IWYU pragma: export
