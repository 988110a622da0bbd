// The routes. GET /api/timeseries and GET /api/users carry the planted findings
// (findings.hpp); ?fixed=1 takes the fast path of each.
#include "routes.hpp"

#include <charconv>
#include <cstdio>
#include <exception>
#include <map>
#include <vector>

#include "findings.hpp"

namespace service {
namespace {

// The value of `key` in a query string "a=1&b=2"; empty when absent.
std::string_view query_param(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const std::size_t eq = pair.find('=');
    if (pair.substr(0, eq) == key) return eq == std::string_view::npos ? std::string_view("1") : pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

bool parse_number(std::string_view text, long long& out) {
  if (text.empty()) return false;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
      out += escaped;
    } else {
      out += c;
    }
  }
  out += '"';
}

response error_response(int status, std::string_view message) {
  response r;
  r.status = status;
  r.body = "{\"error\":";
  append_json_string(r.body, message);
  r.body += "}\n";
  return r;
}

// GET /api/timeseries: the points of one series, averaged per hour.
response timeseries(const route_match& route, db_pool& pool) {
  auto db = pool.take();
  const std::vector<point_row> rows = db->points(route.series);
  if (rows.empty()) return error_response(404, "no such series");
  // The finding: parsing the timestamps, not the query, is most of this request.
  const std::vector<parsed_point> points =
      route.fixed ? parse_timestamps_fixed_format(rows) : parse_timestamps_with_get_time(rows);
  const std::string name = db->series_name(route.series);
  std::map<std::int64_t, std::pair<double, int>> hours;
  for (const parsed_point& p : points) {
    auto& [sum, count] = hours[p.epoch_seconds / 3600 * 3600];
    sum += p.value;
    ++count;
  }
  response r;
  r.body = "{\"series\":";
  append_json_string(r.body, name);
  r.body += ",\"points\":" + std::to_string(points.size()) + ",\"hourly\":[";
  bool first = true;
  char item[96];
  for (const auto& [hour, acc] : hours) {
    std::snprintf(item, sizeof item, "%s[%lld,%.3f]", first ? "" : ",", static_cast<long long>(hour),
                  acc.first / acc.second);
    r.body += item;
    first = false;
  }
  r.body += "]}\n";
  return r;
}

// GET /api/users: every member with their team and the number of their team's projects.
response users(const route_match& route, db_pool& pool) {
  auto db = pool.take();
  std::vector<member_project_row> rows;
  if (route.fixed) {
    rows = db->members_teams_projects_joined();
  } else {
    const std::vector<member_row> members = db->members();
    const std::vector<team_row> teams = db->teams();
    const std::vector<project_row> projects = db->projects();
    // The finding: the join, in nested loops here, between the queries above and the count.
    rows = join_members_teams_projects(members, teams, projects);
  }
  const long long total = db->member_count();
  response r;
  r.body = "{\"total\":" + std::to_string(total) + ",\"members\":[";
  for (std::size_t i = 0; i < rows.size();) {
    const member_project_row& m = rows[i];
    std::size_t projects = 0;
    std::size_t j = i;
    for (; j < rows.size() && rows[j].member_id == m.member_id; ++j) projects += rows[j].project_name.empty() ? 0 : 1;
    if (i > 0) r.body += ',';
    r.body += "{\"id\":" + std::to_string(m.member_id) + ",\"name\":";
    append_json_string(r.body, m.member_name);
    r.body += ",\"team\":";
    append_json_string(r.body, m.team_name);
    r.body += ",\"projects\":" + std::to_string(projects) + "}";
    i = j;
  }
  r.body += "]}\n";
  return r;
}

// GET /api/users/{id}
response user_by_id(const route_match& route, db_pool& pool) {
  auto db = pool.take();
  member_row m;
  std::string team;
  if (!db->member_by_id(route.id, m, team)) return error_response(404, "no such user");
  response r;
  r.body = "{\"id\":" + std::to_string(m.id) + ",\"name\":";
  append_json_string(r.body, m.name);
  r.body += ",\"email\":";
  append_json_string(r.body, m.email);
  r.body += ",\"team\":";
  append_json_string(r.body, team);
  r.body += "}\n";
  return r;
}

}  // namespace

route_match match_route(std::string_view method, std::string_view target) {
  route_match m;
  const std::size_t question = target.find('?');
  const std::string_view path = target.substr(0, question);
  const std::string_view query = question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  m.fixed = query_param(query, "fixed") == "1";
  constexpr std::string_view users_prefix = "/api/users/";
  long long number = 0;
  if (path == "/api/timeseries") {
    m.kind = route_kind::timeseries;
    m.name = "GET /api/timeseries";
    if (parse_number(query_param(query, "series"), number) && number > 0 && number < 1'000'000) {
      m.series = static_cast<int>(number);
    }
  } else if (path == "/api/users") {
    m.kind = route_kind::users;
    m.name = "GET /api/users";
  } else if (path.starts_with(users_prefix) && parse_number(path.substr(users_prefix.size()), number)) {
    m.kind = route_kind::user_by_id;
    m.name = "GET /api/users/{id}";
    m.id = number;
  } else if (path == "/healthz") {
    m.kind = route_kind::health;
    m.name = "GET /healthz";
  } else {
    m.kind = route_kind::not_found;
    m.name = "GET (unmatched route)";  // one name for every unknown URL, never the URL itself
  }
  if (method != "GET" && m.kind != route_kind::not_found) {
    m.kind = route_kind::method_not_allowed;
    m.name = "(method not allowed)";
  } else if (method != "GET") {
    m.name = "(unmatched route)";
  }
  return m;
}

response handle(const route_match& route, db_pool& pool) noexcept {
  try {
    switch (route.kind) {
      case route_kind::timeseries: return timeseries(route, pool);
      case route_kind::users: return users(route, pool);
      case route_kind::user_by_id: return user_by_id(route, pool);
      case route_kind::health: return response{200, "text/plain", "ok\n"};
      case route_kind::method_not_allowed: return error_response(405, "method not allowed");
      case route_kind::not_found: break;
    }
    return error_response(404, "no such route");
  } catch (const std::exception& e) {
    try {
      return error_response(500, e.what());
    } catch (...) {
    }
  } catch (...) {
  }
  return response{500, "text/plain", {}};
}

}  // namespace service
