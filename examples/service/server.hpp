// The HTTP/1.1 server: Boost.Beast over Boost.Asio, one spanprof::profiled_fiber per
// connection, resumed by Asio's completion handlers on a pool of threads. The only TU that
// includes Beast on the server side (server.cpp); this header does not.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "db.hpp"

namespace service {

struct server_options {
  unsigned short port = 0;  // 0: ephemeral
  int threads = 2;
  std::size_t header_limit_bytes = 8 * 1024;  // larger headers: 431
  std::size_t body_limit_bytes = 64 * 1024;   // larger bodies: 413
  std::chrono::seconds idle_timeout{30};      // a keep-alive connection idle longer is closed
};

// Listens on 127.0.0.1:port, prints "listening 127.0.0.1:PORT" on stdout (one line, flushed)
// once bound, and serves until SIGINT or SIGTERM: then it stops accepting, closes idle
// connections, lets in-flight requests finish and returns 0 once every connection is done.
// Returns 1 if it cannot listen.
int run_server(const server_options& options, db_pool& pool);

}  // namespace service
