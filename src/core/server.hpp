#pragma once
// HTTP/1.1 + WebSocket server on Boost.Beast/Asio coroutines. Beast stays in server.cpp.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/router.hpp"

namespace core::http {

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;                 ///< 0 = pick a free port (see Server::port())
  int io_threads = 2;                     ///< threads running the I/O context
  int blocking_threads = 16;              ///< threads running handlers (SQL, outbound calls)
  std::size_t max_body_bytes = 1 << 20;   ///< larger bodies get 413 problem details
  std::chrono::seconds read_timeout{30};  ///< header+body read deadline per request
  std::chrono::seconds idle_timeout{60};  ///< keep-alive idle deadline
  std::chrono::seconds ws_ping_interval{20};  ///< WebSocket ping cadence; peer dropped after 2 missed pongs
  /// Largest WebSocket message a peer may send; a larger one closes the connection with 1009
  /// "message too big" (RFC 6455 §7.4.1), after the close handshake (read_timeout at most).
  std::size_t ws_max_message_bytes = 16u << 20;
  /// Deadline of one write of a streamed response (Router::add_stream): a client that stops
  /// reading fails the write and the handler's stop token is triggered.
  std::chrono::milliseconds stream_write_timeout{30000};
  std::string service_name = "service";   ///< used in logs and metrics
};

/// Hooks around every request (middleware). `before` may answer early (CORS
/// preflight, auth failure); `after` may add headers. Both run on the blocking pool.
struct Middleware {
  std::function<std::optional<Response>(Request&)> before;
  std::function<void(const Request&, Response&)> after;
};

/// The server. Construct, then start(); stop() closes listeners and open connections.
/// Unknown path -> 404, wrong method -> 405 (with Allow), body too large -> 413,
/// malformed HTTP -> 400; all as problem details. HEAD is answered wherever GET is, by the GET
/// route, with the same status and header fields (Content-Length of the GET body) and no body
/// (RFC 9110 §9.3.2; see Router::match). Each request is logged as one
/// JSON line and counted in http_requests_total / http_request_duration_seconds
/// (a streamed response when it ends, its duration the whole stream).
class Server {
 public:
  Server(ServerOptions options, Router router, Middleware middleware = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds and starts serving on background threads. Throws std::runtime_error if the bind fails.
  void start();
  /// The bound port (useful when options.port was 0). Valid after start().
  std::uint16_t port() const;
  /// Stops accepting, closes connections (WebSockets get close 1001; streaming handlers see their
  /// stop token triggered and get up to 3 s to finish), joins threads. Idempotent.
  void stop();
  /// Number of open WebSocket connections.
  std::size_t websocket_count() const;
  /// Number of streamed responses in progress (Router::add_stream handlers running).
  std::size_t stream_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace core::http
