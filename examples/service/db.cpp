// SQLite: the database file and the queries. Every query runs inside
// SPANPROF_SPAN("db.sql.query", sql) with db.system = sqlite on that span (SPANPROF_SET_DATA
// applies to the innermost open span, which is the query's).
#include "db.hpp"

#include <spanprof/spanprof.hpp>
#include <sqlite3.h>

#include <ctime>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>

namespace service {
namespace {

[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  throw std::runtime_error("sqlite: " + what + ": " + (db != nullptr ? sqlite3_errmsg(db) : "out of memory"));
}

void exec(sqlite3* db, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) != SQLITE_OK) {
    const std::string text = message != nullptr ? message : "?";
    sqlite3_free(message);
    throw std::runtime_error(std::string("sqlite: ") + sql + ": " + text);
  }
}

class statement {
 public:
  statement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) fail(db, sql);
  }
  ~statement() { sqlite3_finalize(stmt_); }
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  statement& bind(int index, long long value) {
    if (sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK) fail(db_, "bind");
    return *this;
  }
  statement& bind(int index, double value) {
    if (sqlite3_bind_double(stmt_, index, value) != SQLITE_OK) fail(db_, "bind");
    return *this;
  }
  statement& bind(int index, const std::string& value) {
    if (sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT) != SQLITE_OK) {
      fail(db_, "bind");
    }
    return *this;
  }
  // true: a row is there; false: done.
  bool step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    fail(db_, "step");
  }
  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  long long integer(int column) const { return sqlite3_column_int64(stmt_, column); }
  double real(int column) const { return sqlite3_column_double(stmt_, column); }
  std::string text(int column) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    return p != nullptr ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column))) : std::string();
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

sqlite3* open(const std::string& path, int flags) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    const std::string message = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw std::runtime_error("sqlite: cannot open " + path + ": " + message);
  }
  sqlite3_busy_timeout(db, 5000);
  return db;
}

std::string iso8601(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// The span of one query: its op and description are what Sentry's SQL integrations write.
#define SERVICE_DB_SPAN(sql)             \
  SPANPROF_SPAN("db.sql.query", (sql)); \
  SPANPROF_SET_DATA("db.system", "sqlite")

}  // namespace

void create_database(const std::string& path, const db_sizes& sizes) {
  std::error_code ec;
  std::filesystem::remove(path, ec);
  if (const auto parent = std::filesystem::path(path).parent_path(); !parent.empty()) {
    std::filesystem::create_directories(parent, ec);
  }
  sqlite3* db = open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  try {
    exec(db, "PRAGMA journal_mode=WAL");
    exec(db,
         "CREATE TABLE teams (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
         "CREATE TABLE members (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL,"
         "  team_id INTEGER NOT NULL REFERENCES teams(id));"
         "CREATE TABLE projects (id INTEGER PRIMARY KEY, name TEXT NOT NULL,"
         "  team_id INTEGER NOT NULL REFERENCES teams(id));"
         "CREATE INDEX projects_team ON projects(team_id);"
         "CREATE TABLE series (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
         "CREATE TABLE points (series_id INTEGER NOT NULL, ts TEXT NOT NULL, value REAL NOT NULL);"
         "CREATE INDEX points_series_ts ON points(series_id, ts);");
    exec(db, "BEGIN");
    {
      statement team(db, "INSERT INTO teams (id, name) VALUES (?, ?)");
      for (int i = 1; i <= sizes.teams; ++i) {
        team.bind(1, static_cast<long long>(i)).bind(2, "team-" + std::to_string(i)).step();
        team.reset();
      }
      statement member(db, "INSERT INTO members (id, name, email, team_id) VALUES (?, ?, ?, ?)");
      for (int i = 1; i <= sizes.members; ++i) {
        member.bind(1, static_cast<long long>(i))
            .bind(2, "member-" + std::to_string(i))
            .bind(3, "member" + std::to_string(i) + "@example.com")
            .bind(4, static_cast<long long>(1 + (i * 7919LL) % sizes.teams))
            .step();
        member.reset();
      }
      statement project(db, "INSERT INTO projects (id, name, team_id) VALUES (?, ?, ?)");
      for (int i = 1; i <= sizes.projects; ++i) {
        project.bind(1, static_cast<long long>(i))
            .bind(2, "project-" + std::to_string(i))
            .bind(3, static_cast<long long>(1 + i % sizes.teams))
            .step();
        project.reset();
      }
      statement series(db, "INSERT INTO series (id, name) VALUES (?, ?)");
      statement point(db, "INSERT INTO points (series_id, ts, value) VALUES (?, ?, ?)");
      const std::time_t start = 1704067200;  // 2024-01-01T00:00:00Z
      for (int s = 1; s <= sizes.series; ++s) {
        series.bind(1, static_cast<long long>(s)).bind(2, "cpu.load.host-" + std::to_string(s)).step();
        series.reset();
        for (int i = 0; i < sizes.timeseries_points; ++i) {
          point.bind(1, static_cast<long long>(s))
              .bind(2, iso8601(start + static_cast<std::time_t>(i) * 60))
              .bind(3, static_cast<double>((i * 37 + s * 11) % 1000) / 10.0)
              .step();
          point.reset();
        }
      }
    }
    exec(db, "COMMIT");
  } catch (...) {
    sqlite3_close(db);
    throw;
  }
  sqlite3_close(db);
}

db_connection::db_connection(const std::string& path)
    : db_(open(path, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX)) {}

db_connection::~db_connection() { sqlite3_close(db_); }

std::vector<member_row> db_connection::members() {
  static constexpr const char* sql = "SELECT id, name, email, team_id FROM members ORDER BY id";
  SERVICE_DB_SPAN(sql);
  statement q(db_, sql);
  std::vector<member_row> rows;
  while (q.step()) rows.push_back({q.integer(0), q.text(1), q.text(2), q.integer(3)});
  return rows;
}

std::vector<team_row> db_connection::teams() {
  static constexpr const char* sql = "SELECT id, name FROM teams";
  SERVICE_DB_SPAN(sql);
  statement q(db_, sql);
  std::vector<team_row> rows;
  while (q.step()) rows.push_back({q.integer(0), q.text(1)});
  return rows;
}

std::vector<project_row> db_connection::projects() {
  static constexpr const char* sql = "SELECT id, name, team_id FROM projects";
  SERVICE_DB_SPAN(sql);
  statement q(db_, sql);
  std::vector<project_row> rows;
  while (q.step()) rows.push_back({q.integer(0), q.text(1), q.integer(2)});
  return rows;
}

long long db_connection::member_count() {
  static constexpr const char* sql = "SELECT COUNT(*) FROM members";
  SERVICE_DB_SPAN(sql);
  statement q(db_, sql);
  return q.step() ? q.integer(0) : 0;
}

bool db_connection::member_by_id(long long id, member_row& out, std::string& team_name) {
  static constexpr const char* sql =
      "SELECT m.id, m.name, m.email, m.team_id, t.name FROM members m JOIN teams t ON t.id = m.team_id WHERE m.id = ?";
  SERVICE_DB_SPAN(sql);
  statement q(db_, sql);
  q.bind(1, id);
  if (!q.step()) return false;
  out = {q.integer(0), q.text(1), q.text(2), q.integer(3)};
  team_name = q.text(4);
  return true;
}

std::vector<point_row> db_connection::points(int series_id) {
  static constexpr const char* sql = "SELECT ts, value FROM points WHERE series_id = ? ORDER BY ts";
  SERVICE_DB_SPAN(sql);
  statement q(db_, sql);
  q.bind(1, static_cast<long long>(series_id));
  std::vector<point_row> rows;
  while (q.step()) rows.push_back({q.text(0), q.real(1)});
  return rows;
}

std::string db_connection::series_name(int series_id) {
  static constexpr const char* sql = "SELECT name FROM series WHERE id = ?";
  SERVICE_DB_SPAN(sql);
  statement q(db_, sql);
  q.bind(1, static_cast<long long>(series_id));
  return q.step() ? q.text(0) : std::string();
}

std::vector<member_project_row> db_connection::members_teams_projects_joined() {
  static constexpr const char* sql =
      "SELECT m.id, m.name, m.email, t.name, COALESCE(p.name, '') FROM members m"
      " JOIN teams t ON t.id = m.team_id LEFT JOIN projects p ON p.team_id = t.id ORDER BY m.id, p.id";
  SERVICE_DB_SPAN(sql);
  statement q(db_, sql);
  std::vector<member_project_row> rows;
  while (q.step()) rows.push_back({q.integer(0), q.text(1), q.text(2), q.text(3), q.text(4)});
  return rows;
}

db_pool::db_pool(std::string path, std::size_t size) : path_(std::move(path)) {
  for (std::size_t i = 0; i < size; ++i) all_.push_back(new db_connection(path_));
  idle_ = all_;
}

db_pool::~db_pool() {
  for (db_connection* c : all_) delete c;
}

db_pool::lease db_pool::take() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!idle_.empty()) {
      db_connection* c = idle_.back();
      idle_.pop_back();
      return lease(*this, c);
    }
  }
  // More requests in flight than connections (a fiber never suspends holding one, so only
  // with more threads than the pool was sized for): open one more.
  auto* extra = new db_connection(path_);
  std::lock_guard<std::mutex> lock(mutex_);
  all_.push_back(extra);
  return lease(*this, extra);
}

void db_pool::give_back(db_connection* c) {
  std::lock_guard<std::mutex> lock(mutex_);
  idle_.push_back(c);
}

}  // namespace service
