// spanprof-report: the short text summary printed on stdout.
#pragma once

#include <string>

#include "aggregate.hpp"

namespace spanprof::report {

// Per endpoint, slowest p95 first: its count, p50/p95, error rate and its top gap culprit with
// file:line; then what was skipped. `max_endpoints` bounds the list.
std::string text_summary(const run& current, const run* baseline, std::size_t max_endpoints = 10);

}  // namespace spanprof::report
