#pragma once
// Request middleware of the orchestrator: CORS restricted to configured origins (Fetch
// standard CORS protocol), Origin check on WebSocket upgrades, bearer-token authentication
// on every /api route except the public ones (RFC 6750), rate limits (token buckets per
// user, per client IP, for login and for refinements; 429 + Retry-After + the IETF
// RateLimit / RateLimit-Policy fields of draft-ietf-httpapi-ratelimit-headers-11), and
// security headers on every response.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/rate_limit.hpp"
#include "core/server.hpp"

namespace orchestrator::api {

/// Verifies a bearer token and returns the caller's claims as JSON with at least
/// {"user_id": "<uuid>"}. Throws (any std::exception; domain::UnauthenticatedError
/// preferred) when the token is invalid, expired, signed with a disallowed algorithm or names
/// a user that no longer exists (-> 401); domain::IdentityLinkError when the token is valid
/// but may not sign in as the account it names (-> 403 typed by its reason).
using TokenVerifier = std::function<nlohmann::json(const std::string& token)>;

/// True when `user_id` already started a refinement with Idempotency-Key `key` (its request is
/// then a replay: it starts nothing, so it is not charged to the refinement bucket). May throw
/// (a database error): the request is then charged as a new start.
using RefinementKeyCheck = std::function<bool(const std::string& user_id, const std::string& key)>;

/// Request limits, each a token bucket (core/rate_limit.hpp) kept in this process's memory:
/// with several replicas behind a load balancer a client may get up to N times the quota.
/// Policies are advertised in RateLimit-Policy / RateLimit on the responses they apply to.
struct RateLimitOptions {
  /// Every authenticated request (any /api route, WebSocket upgrades included), per user.
  core::ratelimit::Policy user{"user", 600, std::chrono::seconds(60)};
  /// In addition, requests to `refinement_routes` (each starts model work), per user.
  core::ratelimit::Policy refinement{"refinement", 10, std::chrono::seconds(60)};
  /// Every request without an accepted token (public /api routes, probes, /metrics, missing or
  /// rejected tokens), per client IP (see client_address()).
  core::ratelimit::Policy ip{"ip", 300, std::chrono::seconds(60)};
  /// In addition, POST /api/auth/login, per client IP.
  core::ratelimit::Policy login{"login", 10, std::chrono::seconds(60)};
  /// Keys (users, addresses) tracked per policy; beyond this the least recently used bucket is
  /// evicted, so memory stays bounded whatever the traffic.
  std::size_t max_keys = 10000;
  /// Routes charged to `refinement`: method and router pattern.
  std::vector<std::pair<std::string, std::string>> refinement_routes = {{"POST", "/api/workflows/{id}/refinements"},
                                                                        {"POST", "/api/proposals/{id}/retry"}};
};

struct MiddlewareOptions {
  /// Allowed browser origins (exact match of scheme://host[:port]). When non-empty only
  /// these count; when empty, only same-origin requests (Origin == http(s)://<Host>).
  std::vector<std::string> cors_origins;
  /// Paths under /api that need no token.
  std::vector<std::string> public_api_paths = {"/api/auth/login", "/api/openapi.json"};
  /// Token buckets per user, per client IP, for login and for refinements.
  RateLimitOptions rate_limits;
  /// Peer IPs of reverse proxies whose X-Forwarded-For, X-Forwarded-Host and X-Forwarded-Proto
  /// are believed (see client_address(), drop_untrusted_forwarded_fields()).
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
///   Allow-Origin/Methods/Headers/Max-Age for an allowed origin, 403 problem otherwise
///   (not rate limited: answered from memory, and the request that follows is).
/// - WebSocket upgrade with a disallowed Origin: 403 problem.
/// - Over a rate limit (RateLimitOptions): 429 problem (type rate-limited, extension member
///   "violated-policies" as in draft-ietf-httpapi-ratelimit-headers-11 §5.1) + Retry-After.
///   Requests without an accepted token are charged to the client IP's bucket (and login
///   also to the login bucket) before the token is looked at; authenticated ones to the
///   user's bucket (and refinement routes also to the refinement bucket).
/// - /api route without a valid token: 401 problem + WWW-Authenticate: Bearer (RFC 6750 §3);
///   a valid external token that may not sign in (IdentityLinkError): 403 problem.
/// Every response to a request that was charged carries RateLimit-Policy and RateLimit
/// (draft §3, §4) for the buckets it was charged to. A `POST /api/workflows/{id}/refinements`
/// whose Idempotency-Key `key_used` knows is a replay and is not charged to the refinement
/// bucket (only to the user's); without `key_used`, every start is charged.
core::http::Middleware make_middleware(MiddlewareOptions options, TokenVerifier verify,
                                       RefinementKeyCheck key_used = {});

/// The client's IP for per-address limits. The TCP peer, unless the peer is one of
/// `trusted_proxies` and sent X-Forwarded-For: then the right-most entry that is not a
/// trusted proxy (entries to its left are supplied by the client and not believed).
std::string client_address(const core::http::Request& req, const std::vector<std::string>& trusted_proxies);

/// Removes X-Forwarded-Host and X-Forwarded-Proto unless the TCP peer is one of
/// `trusted_proxies`: like X-Forwarded-For, they are believed only from a reverse proxy we
/// trust, so a client cannot choose the host and scheme of the URLs we hand out (the
/// refinement's `websocket_url`). Runs first in the middleware's `before` hook, so handlers may
/// read both fields as trusted.
void drop_untrusted_forwarded_fields(core::http::Request& req, const std::vector<std::string>& trusted_proxies);

}  // namespace orchestrator::api
