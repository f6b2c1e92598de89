// CORS, Origin checks, bearer authentication, login rate limit and security headers.
#include "orchestrator/api/middleware.hpp"

#include <algorithm>
#include <cmath>
#include <list>
#include <unordered_map>
#include <mutex>

#include "core/log.hpp"
#include "orchestrator/api/problem.hpp"
#include "orchestrator/auth/token_extract.hpp"

namespace orchestrator::api {

using core::http::Request;
using core::http::Response;
using nlohmann::json;

namespace {

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

bool is_upgrade(const Request& req) {
  auto up = req.headers.get("Upgrade");
  return up && core::http::iequals(trim(*up), "websocket");
}

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

/// 401 per RFC 6750 §3: no error code when credentials are absent, invalid_token otherwise.
Response unauthorized(const std::string& detail, bool token_present) {
  Response r = Response::problem(401, "Unauthorized", detail, {{"type", problem_type("unauthenticated")}});
  std::string challenge = "Bearer realm=\"ide-orchestrator\"";
  if (token_present) challenge += ", error=\"invalid_token\", error_description=\"The access token is invalid or expired\"";
  r.headers.set("WWW-Authenticate", challenge);
  return r;
}

/// Token-bucket limiter keyed by client IP. Memory is bounded: beyond `max_keys`
/// addresses the least recently used bucket is evicted (never all of them at once, so
/// address churn cannot reset the limit of an active client).
class RateLimiter {
 public:
  RateLimiter(int capacity, std::chrono::seconds window, std::size_t max_keys)
      : capacity_(capacity), window_(window), max_keys_(std::max<std::size_t>(1, max_keys)) {}
  /// Takes one token for `key`; returns 0 if allowed, else seconds until one is available (>= 1).
  long long take(const std::string& key) {
    std::lock_guard lk(mu_);
    const auto now = std::chrono::steady_clock::now();
    auto [it, fresh] = buckets_.try_emplace(key, Bucket{static_cast<double>(capacity_), now, {}});
    if (fresh) {
      lru_.push_front(key);
      it->second.lru = lru_.begin();
      while (buckets_.size() > max_keys_) {
        buckets_.erase(lru_.back());
        lru_.pop_back();
      }
    } else {
      lru_.splice(lru_.begin(), lru_, it->second.lru);  // most recently used first
    }
    Bucket& b = it->second;
    const double rate = capacity_ / std::max(1.0, static_cast<double>(window_.count()));  // tokens per second
    if (!fresh) {
      const double dt = std::chrono::duration<double>(now - b.at).count();
      b.tokens = std::min<double>(capacity_, b.tokens + dt * rate);
      b.at = now;
    }
    if (b.tokens >= 1.0) {
      b.tokens -= 1.0;
      return 0;
    }
    return std::max<long long>(1, static_cast<long long>(std::ceil((1.0 - b.tokens) / rate)));
  }

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point at;
    std::list<std::string>::iterator lru;  ///< position in lru_
  };
  int capacity_;
  std::chrono::seconds window_;
  std::size_t max_keys_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::list<std::string> lru_;  ///< keys, most recently used first
};

void add_security_headers(const Request& req, Response& r) {
  r.headers.set("X-Content-Type-Options", "nosniff");
  r.headers.set("X-Frame-Options", "DENY");
  r.headers.set("Referrer-Policy", "no-referrer");
  // A handler may set its own policy (the web console's, static_site.hpp); API answers get none.
  if (!r.headers.get("Content-Security-Policy")) {
    r.headers.set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
  }
  r.headers.set("Cross-Origin-Resource-Policy", "same-site");
  if (starts_with(req.path, "/api/") && !r.headers.get("Cache-Control")) r.headers.set("Cache-Control", "no-store");
}

}  // namespace

std::optional<ExtractedToken> extract_token(const Request& req) {
  const std::string authz = req.headers.get("Authorization").value_or("");
  // Browsers cannot set headers on WebSocket upgrades, so only those may carry the token
  // in Sec-WebSocket-Protocol or ?token= (RFC 6750 §2.3 discourages URI tokens elsewhere).
  std::string raw_query, proto;
  if (is_upgrade(req)) {
    const auto q = req.target.find('?');
    if (q != std::string::npos) raw_query = req.target.substr(q + 1);
    proto = req.headers.get("Sec-WebSocket-Protocol").value_or("");
  }
  auto found = auth::find_token(authz, proto, raw_query);
  if (!found) return std::nullopt;
  return ExtractedToken{found->token, found->echo_protocol};
}

bool origin_allowed(const std::string& origin, const std::vector<std::string>& allowed, const Request& req) {
  if (!allowed.empty()) return std::find(allowed.begin(), allowed.end(), origin) != allowed.end();
  if (auto host = req.headers.get("Host")) {
    if (origin == "http://" + *host || origin == "https://" + *host) return true;
  }
  return false;
}

std::string client_address(const Request& req, const std::vector<std::string>& trusted_proxies) {
  const auto trusted = [&](const std::string& a) {
    return std::find(trusted_proxies.begin(), trusted_proxies.end(), a) != trusted_proxies.end();
  };
  if (!trusted(req.remote_addr)) return req.remote_addr;
  const auto xff = req.headers.get("X-Forwarded-For");
  if (!xff) return req.remote_addr;
  std::vector<std::string> hops;
  std::size_t start = 0;
  while (start <= xff->size()) {
    const auto comma = xff->find(',', start);
    const auto end = comma == std::string::npos ? xff->size() : comma;
    hops.push_back(trim(xff->substr(start, end - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  // Right to left: each trusted proxy vouches for the hop before it; the first untrusted
  // (or empty/garbled) entry is the client. Entries further left are client-controlled.
  std::string client = req.remote_addr;
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    if (it->empty()) break;
    client = *it;
    if (!trusted(*it)) break;
  }
  return client;
}

core::http::Middleware make_middleware(MiddlewareOptions options, TokenVerifier verify) {
  auto opts = std::make_shared<MiddlewareOptions>(std::move(options));
  auto limiter = std::make_shared<RateLimiter>(opts->login_attempts_per_window, opts->login_window,
                                               opts->login_rate_limit_max_clients);
  core::http::Middleware m;

  m.before = [opts, limiter, verify](Request& req) -> std::optional<Response> {
    const auto origin = req.headers.get("Origin");
    // CORS preflight (Fetch standard §3.2.2): answered before authentication (no token is sent).
    if (req.method == "OPTIONS" && origin && req.headers.get("Access-Control-Request-Method")) {
      if (!origin_allowed(*origin, opts->cors_origins, req)) {
        return Response::problem(403, "Forbidden",
                                 "Origin " + *origin + " is not allowed to call this API; ask the operator to add it "
                                 "to --cors-origins.", {{"type", problem_type("origin-not-allowed")}});
      }
      Response r;
      r.status = 204;
      r.headers.set("Access-Control-Allow-Origin", *origin);
      r.headers.set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
      r.headers.set("Access-Control-Allow-Headers", "Authorization, Content-Type, traceparent, tracestate");
      r.headers.set("Access-Control-Max-Age", std::to_string(opts->cors_max_age_seconds));
      r.headers.set("Vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
      return r;
    }
    // Browsers do not apply CORS to WebSockets: check Origin ourselves (RFC 6455 §10.2).
    if (origin && is_upgrade(req) && !origin_allowed(*origin, opts->cors_origins, req)) {
      return Response::problem(403, "Forbidden",
                               "WebSocket connections from origin " + *origin + " are not allowed.",
                               {{"type", problem_type("origin-not-allowed")}});
    }
    if (!starts_with(req.path, "/api/")) return std::nullopt;  // probes and metrics are public
    const bool is_public = std::find(opts->public_api_paths.begin(), opts->public_api_paths.end(), req.path) !=
                           opts->public_api_paths.end();
    if (is_public) {
      if (req.path == "/api/auth/login" && req.method == "POST") {
        if (long long wait = limiter->take(client_address(req, opts->trusted_proxies))) {
          Response r = Response::problem(429, "Too Many Requests",
                                         "Too many sign-in attempts from your address; try again in " +
                                             std::to_string(wait) + " seconds.",
                                         {{"type", problem_type("rate-limited")}});
          r.headers.set("Retry-After", std::to_string(wait));
          return r;
        }
      }
      return std::nullopt;
    }
    auto tok = extract_token(req);
    if (!tok || tok->token.empty()) {
      return unauthorized("Sign in first: send the token from POST /api/auth/login as 'Authorization: Bearer <token>'.",
                          false);
    }
    try {
      json claims = verify(tok->token);
      req.context["user_id"] = claims.at("user_id").get<std::string>();
      req.context["claims"] = claims;
      if (tok->echo_protocol) req.context["ws_subprotocol"] = *tok->echo_protocol;
    } catch (const std::exception& e) {
      std::string why = e.what();
      if (why.empty() || why.find("json") != std::string::npos) why = "the token is not valid";
      return unauthorized("Your sign-in token was rejected (" + why + "); sign in again.", true);
    }
    return std::nullopt;
  };

  m.after = [opts](const Request& req, Response& r) {
    add_security_headers(req, r);
    if (auto origin = req.headers.get("Origin"); origin && origin_allowed(*origin, opts->cors_origins, req) &&
                                                 !r.headers.get("Access-Control-Allow-Origin")) {
      r.headers.set("Access-Control-Allow-Origin", *origin);
      r.headers.set("Access-Control-Expose-Headers", "Retry-After, X-Request-Id, WWW-Authenticate");
      r.headers.add("Vary", "Origin");
    }
  };
  return m;
}

}  // namespace orchestrator::api
