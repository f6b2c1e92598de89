// CORS, Origin checks, bearer authentication, rate limits and security headers.
#include "orchestrator/api/middleware.hpp"

#include <algorithm>

#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/unavailable.hpp"
#include "orchestrator/api/commands.hpp"
#include "orchestrator/api/problem.hpp"
#include "orchestrator/auth/token_extract.hpp"
#include "orchestrator/domain/error.hpp"

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

core::metrics::Counter& limited_counter() {
  static auto& c = core::metrics::global().counter("ide_orchestrator_rate_limited_total",
                                                   "Requests refused with 429, by rate-limit policy");
  return c;
}

/// The buckets of every policy in RateLimitOptions, and the refinement routes.
struct Limiters {
  explicit Limiters(const RateLimitOptions& o)
      : user(o.user, o.max_keys), refinement(o.refinement, o.max_keys), ip(o.ip, o.max_keys),
        login(o.login, o.max_keys) {
    for (const auto& [method, pattern] : o.refinement_routes)
      refinement_routes.add(method, pattern, [](Request&) { return Response{}; });
    keyed_refinement_start.add("POST", "/api/workflows/{id}/refinements", [](Request&) { return Response{}; });
  }
  core::ratelimit::TokenBuckets user, refinement, ip, login;
  core::http::Router refinement_routes;  ///< the same path matching as the real routes
  core::http::Router keyed_refinement_start;  ///< the refinement start, the route an Idempotency-Key replays
};

/// RateLimit-Policy and RateLimit for the buckets the request was charged to (draft §3, §4),
/// listed before any items the handler set (e.g. the concurrency cap of refinements).
void add_rate_limit_headers(const Request& req, Response& r) {
  const auto it = req.context.find("rate_limit");
  if (it == req.context.end() || !it->is_object()) return;
  const auto set = [&](const char* field, const json& items) {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : ", ") + i.get<std::string>();
    const auto existing = r.headers.get(field);
    if (existing && existing->rfind(out, 0) == 0) return;  // already added (an early 429 comes here twice)
    if (existing) out += ", " + *existing;
    r.headers.set(field, out);
  };
  set("RateLimit-Policy", (*it)["policy"]);
  set("RateLimit", (*it)["limit"]);
}

/// Charges `key` to `bucket` and records the RateLimit / RateLimit-Policy items in
/// `req.context["rate_limit"]`; returns the 429 to send ("Too many <what> ..."), or nullopt
/// when the bucket had a token.
std::optional<Response> charge(Request& req, core::ratelimit::TokenBuckets& bucket, const std::string& key,
                               const std::string& what) {
  json& ctx = req.context["rate_limit"];
  if (!ctx.is_object()) ctx = {{"policy", json::array()}, {"limit", json::array()}};
  const auto& p = bucket.policy();
  const auto d = bucket.take(key);
  ctx["policy"].push_back(core::ratelimit::policy_item(p));
  ctx["limit"].push_back(core::ratelimit::limit_item(p, d));
  if (d.allowed) return std::nullopt;
  limited_counter().inc({{"policy", p.name}});
  const long long wait = d.retry_after.count();
  Response r = Response::problem(
      429, "Too Many Requests",
      "Too many " + what + " (at most " + std::to_string(p.quota) + " per " + std::to_string(p.window.count()) +
          " seconds); try again in " + std::to_string(wait) + (wait == 1 ? " second." : " seconds."),
      {{"type", problem_type("rate-limited")}, {"violated-policies", json::array({p.name})}, {"retry_after_seconds", wait}});
  r.headers.set("Retry-After", std::to_string(wait));
  add_rate_limit_headers(req, r);  // also here: early answers to WebSocket upgrades skip `after`
  return r;
}

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

namespace {
bool is_trusted(const std::string& address, const std::vector<std::string>& trusted_proxies) {
  return std::find(trusted_proxies.begin(), trusted_proxies.end(), address) != trusted_proxies.end();
}
}  // namespace

void drop_untrusted_forwarded_fields(Request& req, const std::vector<std::string>& trusted_proxies) {
  if (is_trusted(req.remote_addr, trusted_proxies)) return;
  req.headers.erase("X-Forwarded-Host");
  req.headers.erase("X-Forwarded-Proto");
}

std::string client_address(const Request& req, const std::vector<std::string>& trusted_proxies) {
  const auto trusted = [&](const std::string& a) { return is_trusted(a, trusted_proxies); };
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

core::http::Middleware make_middleware(MiddlewareOptions options, TokenVerifier verify, RefinementKeyCheck key_used) {
  auto opts = std::make_shared<MiddlewareOptions>(std::move(options));
  auto limits = std::make_shared<Limiters>(opts->rate_limits);
  core::http::Middleware m;

  // A refinement start resent with an Idempotency-Key its user already used: a replay.
  auto replays_a_refinement = [key_used, limits](const Request& req, const std::string& user) {
    if (!key_used || !limits->keyed_refinement_start.match(req.method, req.path, false).handler) return false;
    try {
      const auto key = parse_idempotency_key_header(req);
      return key && key_used(user, *key);
    } catch (const std::exception&) {
      return false;  // a bad key (the handler answers 400 and the token goes back) or no database
    }
  };

  m.before = [opts, limits, verify, replays_a_refinement](Request& req) -> std::optional<Response> {
    drop_untrusted_forwarded_fields(req, opts->trusted_proxies);
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
      // Every method a route answers (PATCH renames a workflow; HEAD is answered wherever GET is).
      r.headers.set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
      r.headers.set("Access-Control-Allow-Headers",
                    "Authorization, Content-Type, Idempotency-Key, traceparent, tracestate");
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
    // Without an accepted token, a request is charged to its client address.
    const std::string addr = client_address(req, opts->trusted_proxies);
    const auto by_address = [&] { return charge(req, limits->ip, addr, "requests from your address"); };
    if (!starts_with(req.path, "/api/")) return by_address();  // probes and metrics are public
    const bool is_public = std::find(opts->public_api_paths.begin(), opts->public_api_paths.end(), req.path) !=
                           opts->public_api_paths.end();
    if (is_public) {
      if (auto limited = by_address()) return limited;
      if (req.path == "/api/auth/login" && req.method == "POST")
        return charge(req, limits->login, addr, "sign-in attempts from your address");
      return std::nullopt;
    }
    auto tok = extract_token(req);
    if (!tok || tok->token.empty()) {
      if (auto limited = by_address()) return limited;
      return unauthorized("Sign in first: send the token from POST /api/auth/login as 'Authorization: Bearer <token>'.",
                          false);
    }
    try {
      json claims = verify(tok->token);
      req.context["user_id"] = claims.at("user_id").get<std::string>();
      req.context["claims"] = claims;
      if (tok->echo_protocol) req.context["ws_subprotocol"] = *tok->echo_protocol;
    } catch (const domain::IdentityLinkError& e) {
      if (auto limited = by_address()) return limited;
      return Response::problem(403, "Forbidden", std::string("Your sign-in was refused: ") + e.what() + ".",
                               {{"type", problem_type(e.reason())}});
    } catch (const core::Unavailable& e) {
      // The database could not check the token's account now (store::DatabaseUnavailable):
      // 503 + Retry-After, never a 401 that would sign the user out.
      return to_response(e, req);
    } catch (const std::exception& e) {
      if (auto limited = by_address()) return limited;
      std::string why = e.what();
      if (why.empty() || why.find("json") != std::string::npos) why = "the token is not valid";
      // "Sign in again" only where it can help: not for a disabled or deleted account.
      const auto* unauth = dynamic_cast<const domain::UnauthenticatedError*>(&e);
      const bool sign_in_helps = !unauth || unauth->sign_in_helps();
      return unauthorized("Your sign-in token was rejected (" + why + ")" + (sign_in_helps ? "; sign in again." : "."),
                          true);
    }
    const std::string user = req.context["user_id"].get<std::string>();
    if (auto limited = charge(req, limits->user, user, "requests from your account")) return limited;
    if (limits->refinement_routes.match(req.method, req.path, is_upgrade(req)).handler &&
        !replays_a_refinement(req, user)) {
      auto limited = charge(req, limits->refinement, user, "refinements started by your account");
      if (!limited) req.context["refinement_charged"] = user;
      return limited;
    }
    return std::nullopt;
  };

  m.after = [opts, limits](const Request& req, Response& r) {
    // A refinement the handler refused with a 4xx (invalid, not found, forbidden, a conflict, the
    // concurrency cap), or answered by replaying the one an earlier request with the same
    // Idempotency-Key started, started nothing: its token goes back, so correcting or resending
    // a request does not use up the user's refinements. (The RateLimit header already sent counts
    // it; one token low.)
    if ((r.status >= 400 && r.status < 500) || r.headers.get("Idempotent-Replayed")) {
      if (const auto it = req.context.find("refinement_charged"); it != req.context.end() && it->is_string())
        limits->refinement.give_back(it->get<std::string>());
    }
    add_security_headers(req, r);
    add_rate_limit_headers(req, r);
    if (auto origin = req.headers.get("Origin"); origin && origin_allowed(*origin, opts->cors_origins, req) &&
                                                 !r.headers.get("Access-Control-Allow-Origin")) {
      r.headers.set("Access-Control-Allow-Origin", *origin);
      r.headers.set("Access-Control-Expose-Headers",
                    "Retry-After, X-Request-Id, WWW-Authenticate, RateLimit, RateLimit-Policy, Location, "
                    "Idempotent-Replayed");
      r.headers.add("Vary", "Origin");
    }
  };
  return m;
}

}  // namespace orchestrator::api
