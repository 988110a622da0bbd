// The planted findings (findings.hpp). Deliberately plain code, as found in real services.
#include "findings.hpp"

#include <charconv>
#include <ctime>
#include <iomanip>
#include <locale>
#include <sstream>
#include <string_view>

namespace service {
namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). Both
// parsers use it, so that their ratio measures the parsing alone.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

std::int64_t epoch_seconds(std::int64_t year, unsigned month, unsigned day, int hour, int minute, int second) {
  return days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
}

int digits(std::string_view text, std::size_t at, std::size_t count) {
  int value = -1;
  if (at + count <= text.size()) std::from_chars(text.data() + at, text.data() + at + count, value);
  return value;
}

}  // namespace

std::vector<parsed_point> parse_timestamps_with_get_time(const std::vector<point_row>& rows) {
  std::vector<parsed_point> out;
  out.reserve(rows.size());
  for (const point_row& row : rows) {
    std::istringstream in(row.timestamp);
    in.imbue(std::locale::classic());
    std::tm tm{};
    in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
    if (in.fail()) continue;
    out.push_back({epoch_seconds(tm.tm_year + 1900, static_cast<unsigned>(tm.tm_mon + 1), static_cast<unsigned>(tm.tm_mday),
                                 tm.tm_hour, tm.tm_min, tm.tm_sec),
                   row.value});
  }
  return out;
}

std::vector<parsed_point> parse_timestamps_fixed_format(const std::vector<point_row>& rows) {
  std::vector<parsed_point> out;
  out.reserve(rows.size());
  for (const point_row& row : rows) {
    const std::string_view t = row.timestamp;  // YYYY-MM-DDTHH:MM:SS...
    const int year = digits(t, 0, 4), month = digits(t, 5, 2), day = digits(t, 8, 2);
    const int hour = digits(t, 11, 2), minute = digits(t, 14, 2), second = digits(t, 17, 2);
    if (year < 0 || month < 1 || day < 1 || hour < 0 || minute < 0 || second < 0) continue;
    out.push_back({epoch_seconds(year, static_cast<unsigned>(month), static_cast<unsigned>(day), hour, minute, second),
                   row.value});
  }
  return out;
}

std::vector<member_project_row> join_members_teams_projects(const std::vector<member_row>& members,
                                                            const std::vector<team_row>& teams,
                                                            const std::vector<project_row>& projects) {
  std::vector<member_project_row> out;
  for (const member_row& m : members) {
    bool any_project = false;
    const team_row* team = nullptr;
    for (const team_row& t : teams) {
      for (const project_row& p : projects) {
        // Every (member, team, project) triple is visited: members × teams × projects.
        if (p.team_id == m.team_id && t.id == p.team_id) {
          out.push_back({m.id, m.name, m.email, t.name, p.name});
          any_project = true;
        }
      }
      if (t.id == m.team_id) team = &t;
    }
    if (!any_project && team != nullptr) out.push_back({m.id, m.name, m.email, team->name, {}});
  }
  return out;
}

}  // namespace service
