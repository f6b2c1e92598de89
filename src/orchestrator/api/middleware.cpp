// CORS, Origin checks, bearer authentication, login rate limit and security headers.
#include "orchestrator/api/middleware.hpp"

#include <algorithm>
#include <cmath>
#include <map>
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

/// Token-bucket limiter keyed by client IP.
class RateLimiter {
 public:
  RateLimiter(int capacity, std::chrono::seconds window) : capacity_(capacity), window_(window) {}
  /// Takes one token for `key`; returns 0 if allowed, else seconds until one is available (>= 1).
  long long take(const std::string& key) {
    std::lock_guard lk(mu_);
    const auto now = std::chrono::steady_clock::now();
    if (buckets_.size() > 10000) buckets_.clear();  // bound memory under address churn
    auto [it, fresh] = buckets_.try_emplace(key, Bucket{static_cast<double>(capacity_), now});
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
  };
  int capacity_;
  std::chrono::seconds window_;
  std::mutex mu_;
  std::map<std::string, Bucket> buckets_;
};

void add_security_headers(const Request& req, Response& r) {
  r.headers.set("X-Content-Type-Options", "nosniff");
  r.headers.set("X-Frame-Options", "DENY");
  r.headers.set("Referrer-Policy", "no-referrer");
  r.headers.set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
  r.headers.set("Cross-Origin-Resource-Policy", "same-site");
  if (starts_with(req.path, "/api/") && !r.headers.get("Cache-Control")) r.headers.set("Cache-Control", "no-store");
}

}  // namespace

std::optional<ExtractedToken> extract_token(const Request& req) {
  const auto q = req.target.find('?');
  const std::string raw_query = q == std::string::npos ? std::string() : req.target.substr(q + 1);
  const std::string authz = req.headers.get("Authorization").value_or("");
  const std::string proto = req.headers.get("Sec-WebSocket-Protocol").value_or("");
  auto found = auth::find_token(authz, proto, raw_query);
  if (!found) return std::nullopt;
  return ExtractedToken{found->token, found->echo_protocol};
}

bool origin_allowed(const std::string& origin, const std::vector<std::string>& allowed, const Request& req) {
  if (std::find(allowed.begin(), allowed.end(), origin) != allowed.end()) return true;
  if (auto host = req.headers.get("Host")) {
    if (origin == "http://" + *host || origin == "https://" + *host) return true;
  }
  return false;
}

core::http::Middleware make_middleware(MiddlewareOptions options, TokenVerifier verify) {
  auto opts = std::make_shared<MiddlewareOptions>(std::move(options));
  auto limiter = std::make_shared<RateLimiter>(opts->login_attempts_per_window, opts->login_window);
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
        if (long long wait = limiter->take(req.remote_addr)) {
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
