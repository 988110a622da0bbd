// The server (server.hpp). Each connection runs straight-line code on its own fiber (read a
// request, route it, run it, write the response) and suspends at each asynchronous operation;
// the operation's completion handler resumes it on whichever pool thread runs the handler, so
// one request can start on one thread and finish on another.
//
// Why the fiber never starts an operation itself (the race this design avoids): if the fiber
// called async_read() and then switched out, the read could complete and its handler run on
// another thread, resuming the fiber, before this thread had finished switching out of it:
// two threads on one stack. So the fiber only *describes* the operation (connection::await
// stores it in pending_) and switches out; the resumer (connection::resume), back on its own
// stack after the switch returned, is the one that starts it. By then the fiber is fully
// suspended, and the completion handler (which can only run after the start) resumes a fiber
// that nobody runs. The start happens-before the handler (Asio orders them through its queue),
// which orders every write the fiber made before it yielded. Each connection's socket also
// lives on a strand, which serialises the shutdown's cancel with the fiber's use of the socket;
// the fiber's correctness does not rely on the strand.
#include "server.hpp"

#include <spanprof/boost_context.hpp>
#include <spanprof/spanprof.hpp>

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/context/protected_fixedsize_stack.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "routes.hpp"

namespace service {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using spanprof::profiled_fiber;

std::string_view view(beast::string_view s) { return {s.data(), s.size()}; }

spanprof::status status_for_http(int code) {
  switch (code) {
    case 400: return spanprof::status::invalid_argument;
    case 404: return spanprof::status::not_found;
    case 405: return spanprof::status::unimplemented;
    case 413:
    case 431: return spanprof::status::resource_exhausted;
    case 503: return spanprof::status::unavailable;
    default: break;
  }
  if (code >= 500) return spanprof::status::internal_error;
  if (code >= 400) return spanprof::status::invalid_argument;
  return spanprof::status::ok;
}

class server;

class connection : public std::enable_shared_from_this<connection> {
 public:
  connection(tcp::socket socket, server& owner);
  ~connection();
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  // Runs the fiber for the first time (on the connection's strand).
  void start();
  // Shutdown: a connection waiting for its next request is closed; one in the middle of a
  // request finishes it (and then closes, since the server is stopping).
  void close_if_idle();

 private:
  // ---- the resumer's side: runs on a pool thread, on its own stack ----
  void resume();

  // ---- the fiber's side ----
  profiled_fiber run(profiled_fiber&& resumer);
  // Suspends the fiber until the operation `initiate(handler)` completes; ec_ and bytes_ then
  // hold its result. `initiate` is started by the resumer, after the fiber switched out.
  void await(std::function<void(std::function<void(beast::error_code, std::size_t)>)> initiate);
  void serve();
  bool serve_request(http::request<http::string_body>& request);
  void serve_bad_request(int status, std::string_view reason);

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  server& server_;
  profiled_fiber fiber_;    // the suspended fiber, held by the resumer side
  profiled_fiber resumer_;  // inside the fiber: whoever resumed it last, to switch back to
  std::function<void()> pending_;
  beast::error_code ec_;
  std::size_t bytes_ = 0;
  bool idle_ = false;  // waiting for a new request; read and written on the strand only
  std::thread::id resumed_on_;  // the thread of the last resume (ordered like the fiber's state)
};

class server {
 public:
  server(const server_options& options, db_pool& pool)
      : options_(options), pool_(pool), acceptor_(asio::make_strand(io_)), signals_(io_, SIGINT, SIGTERM) {}

  int run() {
    beast::error_code ec;
    const tcp::endpoint endpoint(asio::ip::make_address_v4("127.0.0.1"), options_.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      std::fprintf(stderr, "service: cannot listen on 127.0.0.1:%u: %s\n", options_.port, ec.message().c_str());
      return 1;
    }
    std::printf("listening 127.0.0.1:%u\n", static_cast<unsigned>(acceptor_.local_endpoint().port()));
    std::fflush(stdout);
    signals_.async_wait([this](beast::error_code e, int) {
      if (!e) stop();
    });
    accept();
    std::vector<std::thread> pool;
    for (int i = 0; i < options_.threads; ++i) {
      pool.emplace_back([this] {
        spanprof::register_thread();  // keeps the sampler's set-up out of the first request
        io_.run();
      });
    }
    for (std::thread& t : pool) t.join();
    std::fprintf(stderr,
                 "service: %llu requests, %llu of them finished on another thread than they began on; "
                 "%llu fiber resumes, %llu of them on another thread than the previous one\n",
                 static_cast<unsigned long long>(requests_.load()), static_cast<unsigned long long>(migrated_.load()),
                 static_cast<unsigned long long>(resumes_.load()), static_cast<unsigned long long>(resumes_moved_.load()));
    return 0;
  }

  [[nodiscard]] bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }
  [[nodiscard]] const server_options& options() const noexcept { return options_; }
  [[nodiscard]] db_pool& pool() noexcept { return pool_; }

  // A request whose fiber was resumed on another thread (counted for the exit line).
  void count_request(bool migrated) noexcept {
    requests_.fetch_add(1, std::memory_order_relaxed);
    if (migrated) migrated_.fetch_add(1, std::memory_order_relaxed);
  }

  void count_resume(bool moved) noexcept {
    resumes_.fetch_add(1, std::memory_order_relaxed);
    if (moved) resumes_moved_.fetch_add(1, std::memory_order_relaxed);
  }

  void forget(connection* c) {
    std::lock_guard<std::mutex> lock(mutex_);
    connections_.erase(c);
  }

 private:
  void accept() {
    acceptor_.async_accept(asio::make_strand(io_), [this](beast::error_code ec, tcp::socket socket) {
      if (stopping()) return;  // the socket closes; the acceptor is being closed
      if (!ec) {
        auto c = std::make_shared<connection>(std::move(socket), *this);
        {
          std::lock_guard<std::mutex> lock(mutex_);
          connections_.emplace(c.get(), c);
        }
        c->start();
      }
      accept();
    });
  }

  // On a signal: no new connections, idle ones closed, busy ones finish their request. The
  // pool threads return from run() once the last connection is gone.
  void stop() {
    stopping_.store(true, std::memory_order_release);
    asio::post(acceptor_.get_executor(), [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
    });
    std::vector<std::shared_ptr<connection>> live;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (auto& [raw, weak] : connections_) {
        if (auto c = weak.lock()) live.push_back(std::move(c));
      }
    }
    for (auto& c : live) c->close_if_idle();
  }

  server_options options_;
  db_pool& pool_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  asio::signal_set signals_;
  std::atomic<bool> stopping_{false};
  std::atomic<unsigned long long> requests_{0};
  std::atomic<unsigned long long> migrated_{0};
  std::atomic<unsigned long long> resumes_{0};
  std::atomic<unsigned long long> resumes_moved_{0};
  std::mutex mutex_;
  std::unordered_map<connection*, std::weak_ptr<connection>> connections_;
};

connection::connection(tcp::socket socket, server& owner) : stream_(std::move(socket)), server_(owner) {
  // 256 KiB with a guard page: SQLite and the handlers run on this stack.
  fiber_ = profiled_fiber(std::allocator_arg, boost::context::protected_fixedsize_stack(256 * 1024),
                          [this](profiled_fiber&& resumer) { return run(std::move(resumer)); });
}

connection::~connection() { server_.forget(this); }

void connection::start() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] { self->resume(); });
}

void connection::close_if_idle() {
  asio::post(stream_.get_executor(), [self = shared_from_this()] {
    if (self->idle_) self->stream_.socket().cancel();
  });
}

void connection::resume() {
  const std::thread::id here = std::this_thread::get_id();
  server_.count_resume(resumed_on_ != std::thread::id() && resumed_on_ != here);
  resumed_on_ = here;
  fiber_ = std::move(fiber_).resume();  // runs the fiber until it awaits or ends
  if (!fiber_) return;                  // it ended: the connection goes with the last handler
  // The fiber is suspended now, and this thread is back on its own stack: only now may the
  // operation it asked for start (see the top of this file). Nothing of `this` is touched
  // after start(): its completion handler may already be running elsewhere.
  std::function<void()> start_operation = std::move(pending_);
  pending_ = nullptr;
  start_operation();
}

void connection::await(std::function<void(std::function<void(beast::error_code, std::size_t)>)> initiate) {
  pending_ = [this, initiate = std::move(initiate)] {
    initiate([self = shared_from_this()](beast::error_code ec, std::size_t bytes) {
      self->ec_ = ec;
      self->bytes_ = bytes;
      self->resume();
    });
  };
  resumer_ = std::move(resumer_).resume();  // suspended here; resumed by the completion handler
}

profiled_fiber connection::run(profiled_fiber&& resumer) {
  resumer_ = std::move(resumer);
  try {
    serve();
  } catch (const std::exception& e) {  // not Boost's forced_unwind, which must pass
    std::fprintf(stderr, "service: connection dropped: %s\n", e.what());
  }
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.socket().close(ignored);
  return std::move(resumer_);
}

void connection::serve() {
  const server_options& options = server_.options();
  while (!server_.stopping()) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(options.header_limit_bytes));
    parser.body_limit(options.body_limit_bytes);
    idle_ = buffer_.size() == 0;
    stream_.expires_after(options.idle_timeout);
    await([this, &parser](auto handler) { http::async_read(stream_, buffer_, parser, std::move(handler)); });
    idle_ = false;
    stream_.expires_never();
    if (ec_ == http::error::end_of_stream || ec_ == asio::error::operation_aborted || ec_ == beast::error::timeout) return;
    if (ec_ == http::error::header_limit) return serve_bad_request(431, "request header fields too large");
    if (ec_ == http::error::body_limit) return serve_bad_request(413, "payload too large");
    if (ec_.category() == http::make_error_code(http::error::bad_method).category()) {
      return serve_bad_request(400, "malformed request");
    }
    if (ec_) return;  // the peer went away
    if (!serve_request(parser.get())) return;
  }
}

// One request: a transaction named after its route template, around the handler and the write.
bool connection::serve_request(http::request<http::string_body>& request) {
  const route_match route = match_route(view(request.method_string()), view(request.target()));
  SPANPROF_TRANSACTION_NAMED(txn, route.name, "http.server");
  txn.set_data("http.request.method", view(request.method_string()));
  txn.set_data("url.query", route.fixed ? "fixed=1" : "");
  response r = handle(route, server_.pool());
  txn.set_data("http.response.status_code", r.status);
  txn.set_status(status_for_http(r.status));
  http::response<http::string_body> reply{static_cast<http::status>(r.status), request.version()};
  reply.set(http::field::server, "spanprof-service");
  reply.set(http::field::content_type, r.content_type);
  reply.keep_alive(request.keep_alive() && !server_.stopping());
  reply.body() = std::move(r.body);
  reply.prepare_payload();
  const std::thread::id began_on = std::this_thread::get_id();
  await([this, &reply](auto handler) { http::async_write(stream_, reply, std::move(handler)); });
  server_.count_request(std::this_thread::get_id() != began_on);
  return !ec_ && reply.keep_alive();
}

// A request Beast could not parse: an answer, then the connection closes.
void connection::serve_bad_request(int status, std::string_view reason) {
  {
    SPANPROF_TRANSACTION_NAMED(txn, "(bad request)", "http.server");
    txn.set_data("http.response.status_code", status);
    txn.set_status(status_for_http(status));
    http::response<http::string_body> reply{static_cast<http::status>(status), 11};
    reply.set(http::field::server, "spanprof-service");
    reply.set(http::field::content_type, "text/plain");
    reply.keep_alive(false);
    reply.body() = std::string(reason) + "\n";
    reply.prepare_payload();
    await([this, &reply](auto handler) { http::async_write(stream_, reply, std::move(handler)); });
  }
  // Lingering close: the client may still be sending (the rest of a huge header or body).
  // Closing with unread data would reset the connection, and the reset can destroy our answer
  // in the client's receive buffer; so stop sending, then drain for at most 2 s.
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
  stream_.expires_after(std::chrono::seconds(2));
  char scratch[4096];
  do {
    await([this, &scratch](auto handler) { stream_.async_read_some(asio::buffer(scratch), std::move(handler)); });
  } while (!ec_);
}

}  // namespace

int run_server(const server_options& options, db_pool& pool) {
  server s(options, pool);
  return s.run();
}

}  // namespace service
