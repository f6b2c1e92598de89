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
  /// Allowed browser origins (exact match of scheme://host[:port]); empty = none.
  std::vector<std::string> cors_origins;
  /// Paths under /api that need no token.
  std::vector<std::string> public_api_paths = {"/api/auth/login", "/api/openapi.json"};
  /// Login attempts allowed per client IP per window (token bucket refilling evenly).
  int login_attempts_per_window = 10;
  std::chrono::seconds login_window{60};
  /// Access-Control-Max-Age for preflight answers, seconds.
  int cors_max_age_seconds = 600;
};

/// Where the token was found in a request (for the WebSocket sub-protocol echo).
struct ExtractedToken {
  std::string token;
  std::optional<std::string> echo_protocol;  ///< marker to echo when the token came in Sec-WebSocket-Protocol
};

/// Finds a bearer token with the auth layer's convention (auth/token_extract.hpp):
/// Authorization: Bearer <t> (RFC 6750 §2.1), then Sec-WebSocket-Protocol
/// "bearer, <t>" / "access_token, <t>", then the `token` query parameter (§2.3).
/// nullopt when none is present.
std::optional<ExtractedToken> extract_token(const core::http::Request& req);

/// True if `origin` may call the API: listed in `allowed`, or the same origin as the
/// request's Host (http(s)://<Host>).
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

}  // namespace orchestrator::api
