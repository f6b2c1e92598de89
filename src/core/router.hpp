#pragma once
// Path-pattern router shared by both services. Patterns are literal segments
// and "{name}" captures, e.g. "/api/workflows/{id}/draft". No Beast types.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/async.hpp"
#include "core/http_types.hpp"
#include "core/response_stream.hpp"

namespace core::http {

class WsConnection;

/// A plain HTTP handler. Runs on the server's blocking pool, so it may do SQL
/// or call other services synchronously. Exceptions escape as 500 problem details, except
/// core::Unavailable (e.g. core::db::PoolTimeout): 503 with Retry-After.
using Handler = std::function<Response(Request&)>;

/// What a WebSocket route answers to an upgrade request.
struct WsAccept {
  /// If set, the upgrade is refused with this response (e.g. 401/404 problem details).
  std::optional<Response> reject;
  /// Sub-protocol to echo in Sec-WebSocket-Protocol (RFC 6455 §4.2.2), if any.
  std::optional<std::string> subprotocol;
  /// Called on the blocking pool once the handshake completed; the connection is open.
  std::function<void(std::shared_ptr<WsConnection>)> on_open;
  /// Alternative to on_open for code that waits (replay, relaying another stream): started as
  /// a coroutine on the connection's I/O strand once the handshake completed; it must not
  /// block (offload SQL to a blocking pool). Destroyed unfinished when the server stops.
  /// When both are set, on_open runs first, then on_open_async.
  std::function<async::Task<void>(std::shared_ptr<WsConnection>)> on_open_async;
};

/// Decides on an upgrade request; runs on the blocking pool.
using WsHandler = std::function<WsAccept(Request&)>;

/// A streaming HTTP handler: a coroutine on the connection's I/O strand that writes the response
/// incrementally through `out` (see ResponseStream). It must not block (offload SQL with
/// core::async::Runtime::blocking); the middleware's `before` hook has run (on the blocking pool)
/// and may have answered instead. Both references stay valid until the coroutine finishes. An
/// exception before anything was sent becomes a 500 problem; after start() it aborts the
/// connection, so the client sees a truncated body rather than a complete one. Returning without
/// finish() finishes the body; returning without start() or respond() answers 500.
using StreamHandler = std::function<async::Task<void>(Request& request, ResponseStream& out)>;

/// Result of matching a method and path.
struct RouteMatch {
  const Handler* handler = nullptr;      ///< set when a plain route matched
  const WsHandler* ws_handler = nullptr; ///< set when a WebSocket route matched
  const StreamHandler* stream_handler = nullptr;  ///< set when a streaming route matched
  std::map<std::string, std::string> params;
  std::string pattern;                   ///< the matched route's pattern (metrics label), empty if none
  bool path_exists = false;              ///< the path matched some route but not this method (-> 405)
  std::vector<std::string> allowed_methods;
};

/// Route table. Register everything before the server starts; lookups are read-only.
class Router {
 public:
  /// Registers `handler` for `method` ("GET", "POST", ...) and `pattern`.
  void add(std::string method, std::string pattern, Handler handler);
  /// Registers a WebSocket endpoint (GET + Upgrade) at `pattern`.
  void add_ws(std::string pattern, WsHandler handler);
  /// Registers a streaming handler for `method` and `pattern` (listed by routes() like add()).
  void add_stream(std::string method, std::string pattern, StreamHandler handler);
  /// Finds the route for method+path. WebSocket routes match only when `is_upgrade`. A HEAD
  /// request without a HEAD route of its own gets the GET route (RFC 9110 §9.3.2: the server
  /// then sends the GET response's status and header fields without the body), and
  /// `allowed_methods` lists HEAD right after GET wherever GET is allowed.
  RouteMatch match(const std::string& method, const std::string& path, bool is_upgrade) const;

  /// One registered route, for introspection (OpenAPI coverage tests).
  struct RouteInfo {
    std::string method;   ///< "GET", ... ; "WS" for WebSocket routes
    std::string pattern;
  };
  std::vector<RouteInfo> routes() const;

 private:
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<std::string> segments;
    Handler handler;
    WsHandler ws_handler;
    StreamHandler stream_handler;
  };
  /// match() without the HEAD-as-GET rule.
  RouteMatch match_exact(const std::string& method, const std::string& path, bool is_upgrade) const;

  std::vector<Route> routes_;
};

}  // namespace core::http
