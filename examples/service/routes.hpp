// Routing and the handlers: from a method and a target to a route template and a response. No
// Beast or Asio here; the server (server.cpp) opens the transaction, named after the route
// template, around handle().
#pragma once

#include <string>
#include <string_view>

#include "db.hpp"

namespace service {

enum class route_kind { timeseries, users, user_by_id, health, not_found, method_not_allowed };

struct route_match {
  route_kind kind = route_kind::not_found;
  std::string_view name;  // the transaction name: "GET /api/users/{id}", never the raw URL
  bool fixed = false;     // ?fixed=1: the fast variant of a slow endpoint
  long long id = 0;       // {id}
  int series = 1;         // ?series=N for the time series
};

struct response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
};

route_match match_route(std::string_view method, std::string_view target);
// Runs the route's handler. Never throws: a failure is a 500.
response handle(const route_match& route, db_pool& pool) noexcept;

}  // namespace service
