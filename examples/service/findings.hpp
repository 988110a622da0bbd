// The two planted findings, each in its own un-instrumented function so that gap filling can
// name it, and each with its fix beside it. [[gnu::noinline]] keeps every one a frame of its own
// in the samples.
#pragma once

#include <cstdint>
#include <vector>

#include "db.hpp"

namespace service {

struct parsed_point {
  std::int64_t epoch_seconds = 0;
  double value = 0;
};

// Finding 1, post-processing slower than the query: every timestamp through std::get_time on
// an std::istringstream imbued with a locale (a stream, a locale facet lookup and a format
// interpreter per row).
[[gnu::noinline]] std::vector<parsed_point> parse_timestamps_with_get_time(const std::vector<point_row>& rows);
// Its fix: the format is fixed ("YYYY-MM-DDTHH:MM:SSZ"), so read the digits at their positions
// with std::from_chars.
[[gnu::noinline]] std::vector<parsed_point> parse_timestamps_fixed_format(const std::vector<point_row>& rows);

// Finding 2, a join done in application code between db spans: members × teams × projects in
// nested loops, where one SQL JOIN (db_connection::members_teams_projects_joined) does it.
[[gnu::noinline]] std::vector<member_project_row> join_members_teams_projects(const std::vector<member_row>& members,
                                                                             const std::vector<team_row>& teams,
                                                                             const std::vector<project_row>& projects);

}  // namespace service
