// The service's SQLite side: creating the database file, a small pool of connections, and
// the queries, each inside a `db.sql.query` span. No Beast or Asio here.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <vector>

struct sqlite3;

namespace service {

struct db_sizes {
  int members = 1000;
  int teams = 50;
  int projects = 400;
  int timeseries_points = 5000;  // points per series
  int series = 4;
};

struct member_row {
  long long id = 0;
  std::string name;
  std::string email;
  long long team_id = 0;
};
struct team_row {
  long long id = 0;
  std::string name;
};
struct project_row {
  long long id = 0;
  std::string name;
  long long team_id = 0;
};
struct point_row {
  std::string timestamp;  // ISO-8601, "2024-03-01T12:34:56Z"
  double value = 0;
};
// One row of the members × teams × projects join.
struct member_project_row {
  long long member_id = 0;
  std::string member_name;
  std::string email;
  std::string team_name;
  std::string project_name;  // empty: the member's team has no project
};

// Creates (or recreates) `path` with the given sizes. Deterministic content (a fixed seed).
// Throws std::runtime_error on failure: at start-up only.
void create_database(const std::string& path, const db_sizes& sizes);

// One SQLite connection, used by one fiber at a time (SQLITE_OPEN_NOMUTEX: SQLite's
// multi-thread mode; the pool's mutex orders the uses from different threads).
class db_connection {
 public:
  explicit db_connection(const std::string& path);
  ~db_connection();
  db_connection(const db_connection&) = delete;
  db_connection& operator=(const db_connection&) = delete;

  std::vector<member_row> members();
  std::vector<team_row> teams();
  std::vector<project_row> projects();
  long long member_count();
  bool member_by_id(long long id, member_row& out, std::string& team_name);
  std::vector<point_row> points(int series_id);
  std::string series_name(int series_id);
  // The fixed variant of GET /api/users: one JOIN does what join_members_teams_projects does.
  std::vector<member_project_row> members_teams_projects_joined();

 private:
  sqlite3* db_ = nullptr;
};

// A few connections shared by the fibers: a request takes one for its lifetime and gives it
// back; the fiber never suspends while it holds one, so pool size = thread count suffices.
class db_pool {
 public:
  db_pool(std::string path, std::size_t size);
  ~db_pool();
  db_pool(const db_pool&) = delete;
  db_pool& operator=(const db_pool&) = delete;

  class lease {
   public:
    lease(db_pool& pool, db_connection* c) : pool_(&pool), c_(c) {}
    ~lease() { pool_->give_back(c_); }
    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;
    db_connection& operator*() const { return *c_; }
    db_connection* operator->() const { return c_; }

   private:
    db_pool* pool_;
    db_connection* c_;
  };
  lease take();

 private:
  void give_back(db_connection* c);
  std::string path_;
  std::mutex mutex_;
  std::vector<db_connection*> idle_;
  std::vector<db_connection*> all_;
};

}  // namespace service
