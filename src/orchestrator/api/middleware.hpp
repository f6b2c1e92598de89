#pragma once
// Request middleware of the orchestrator (DESIGN.md §5, R6): CORS restricted to
// configured origins (Fetch standard CORS protocol), Origin check on WebSocket
// upgrades, bearer-token authentication on every /api route except the public ones
// (RFC 6750), a per-IP rate limit on login, and security headers on every response.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/server.hpp"

namespace orchestrator::api {

/// Verifies a bearer token and returns the caller's claims as JSON with at least
/// {"user_id": "<uuid>"}. Throws (any std::exception; domain::UnauthenticatedError
/// preferred) when the token is invalid, expired or signed with a disallowed algorithm.
using TokenVerifier = std::function<nlohmann::json(const std::string& token)>;

struct MiddlewareOptions {
  /// Allowed browser origins (exact match of scheme://host[:port]). When non-empty only
  /// these count; when empty, only same-origin requests (Origin == http(s)://<Host>).
  std::vector<std::string> cors_origins;
  /// Paths under /api that need no token.
  std::vector<std::string> public_api_paths = {"/api/auth/login", "/api/openapi.json"};
  /// Login attempts allowed per client IP per window (token bucket refilling evenly).
  int login_attempts_per_window = 10;
  std::chrono::seconds login_window{60};
  /// Client addresses tracked by the login limiter; beyond this the least recently used is evicted.
  std::size_t login_rate_limit_max_clients = 10000;
  /// Peer IPs of reverse proxies whose X-Forwarded-For is believed (see client_address()).
  std::vector<std::string> trusted_proxies;
  /// Access-Control-Max-Age for preflight answers, seconds.
  int cors_max_age_seconds = 600;
};

/// Where the token was found in a request (for the WebSocket sub-protocol echo).
struct ExtractedToken {
  std::string token;
  std::optional<std::string> echo_protocol;  ///< marker to echo when the token came in Sec-WebSocket-Protocol
};

/// Finds a bearer token with the auth layer's convention (auth/token_extract.hpp):
/// Authorization: Bearer <t> (RFC 6750 §2.1); on WebSocket upgrade requests only, also
/// Sec-WebSocket-Protocol "bearer, <t>" / "access_token, <t>", then the `token` query
/// parameter (§2.3). Plain HTTP requests must use the Authorization header.
/// nullopt when none is present.
std::optional<ExtractedToken> extract_token(const core::http::Request& req);

/// True if `origin` may call the API: when `allowed` is non-empty, only if listed there;
/// when it is empty, only the same origin as the request's Host (http(s)://<Host>).
bool origin_allowed(const std::string& origin, const std::vector<std::string>& allowed,
                    const core::http::Request& req);

/// Builds the server middleware. On success of authentication the request gets
/// `context["user_id"]`, `context["claims"]` and, for a token carried in
/// Sec-WebSocket-Protocol, `context["ws_subprotocol"]` (the marker to echo). Early answers:
/// - CORS preflight (OPTIONS + Origin + Access-Control-Request-Method): 204 with
///   Allow-Origin/Methods/Headers/Max-Age for an allowed origin, 403 problem otherwise.
/// - WebSocket upgrade with a disallowed Origin: 403 problem.
/// - /api route without a valid token: 401 problem + WWW-Authenticate: Bearer (RFC 6750 §3).
/// - POST /api/auth/login over the per-IP limit: 429 problem + Retry-After.
core::http::Middleware make_middleware(MiddlewareOptions options, TokenVerifier verify);

/// The client's IP for per-address limits. The TCP peer, unless the peer is one of
/// `trusted_proxies` and sent X-Forwarded-For: then the right-most entry that is not a
/// trusted proxy (entries to its left are supplied by the client and not believed).
std::string client_address(const core::http::Request& req, const std::vector<std::string>& trusted_proxies);

}  // namespace orchestrator::api
