// Middleware rules: CORS preflight, WebSocket Origin, bearer authentication (RFC 6750),
// rate limits (per user, per IP, login, refinements), security headers.
#include "orchestrator/api/middleware.hpp"

#include <gtest/gtest.h>

#include "orchestrator/domain/error.hpp"

namespace {

using core::http::Request;
using core::http::Response;
using orchestrator::api::make_middleware;
using orchestrator::api::MiddlewareOptions;

core::http::Middleware mw(int login_limit = 10) {
  MiddlewareOptions o;
  o.cors_origins = {"https://ide.example.com"};
  o.rate_limits.login.quota = login_limit;
  return make_middleware(o, [](const std::string& token) -> nlohmann::json {
    if (token != "good") throw orchestrator::domain::UnauthenticatedError("invalid token signature");
    return {{"user_id", "11111111-1111-4111-8111-111111111111"}};
  });
}

Request req(std::string method, std::string path) {
  Request r;
  r.method = std::move(method);
  r.path = path;
  r.target = path;
  r.remote_addr = "127.0.0.1";
  r.headers.set("Host", "127.0.0.1:8080");
  return r;
}

TEST(Middleware, ApiNeedsToken) {
  auto m = mw();
  auto r = req("GET", "/api/workflows");
  auto out = m.before(r);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->status, 401);
  EXPECT_EQ(out->headers.get("WWW-Authenticate").value_or(""), "Bearer realm=\"ide-orchestrator\"");
}

TEST(Middleware, BadTokenIsInvalidToken) {
  auto m = mw();
  auto r = req("GET", "/api/workflows");
  r.headers.set("Authorization", "Bearer nope");
  auto out = m.before(r);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->status, 401);
  EXPECT_NE(out->headers.get("WWW-Authenticate")->find("error=\"invalid_token\""), std::string::npos);
  EXPECT_EQ(out->body.find("nope"), std::string::npos) << "the token must never be echoed";
}

// "Sign in again" is advised once, and only where it can help.
TEST(Middleware, RejectedTokenAdvisesSigningInOnlyWhereItHelps) {
  auto m = make_middleware(MiddlewareOptions{}, [](const std::string& token) -> nlohmann::json {
    using orchestrator::domain::UnauthenticatedError;
    if (token == "disabled")
      throw UnauthenticatedError("this account is disabled; ask an administrator to enable it", false);
    if (token == "old") throw UnauthenticatedError("this token was issued before the account's password changed");
    throw UnauthenticatedError("token expired");
  });
  const auto detail = [&](const std::string& token) {
    auto r = req("GET", "/api/workflows");
    r.headers.set("Authorization", "Bearer " + token);
    const auto out = m.before(r);
    EXPECT_TRUE(out && out->status == 401);
    return out ? nlohmann::json::parse(out->body)["detail"].get<std::string>() : std::string();
  };
  EXPECT_EQ(detail("disabled"),
            "Your sign-in token was rejected (this account is disabled; ask an administrator to enable it).");
  EXPECT_EQ(detail("old"),
            "Your sign-in token was rejected (this token was issued before the account's password changed); sign in "
            "again.");
  EXPECT_EQ(detail("stale"), "Your sign-in token was rejected (token expired); sign in again.");
}

TEST(Middleware, GoodTokenSetsUser) {
  auto m = mw();
  auto r = req("GET", "/api/workflows");
  r.headers.set("Authorization", "Bearer good");
  EXPECT_FALSE(m.before(r));
  EXPECT_EQ(r.context["user_id"], "11111111-1111-4111-8111-111111111111");
}

TEST(Middleware, TokenInSubprotocolIsEchoedAsMarker) {
  auto m = mw();
  auto r = req("GET", "/api/ws/refinements/x");
  r.headers.set("Upgrade", "websocket");
  r.headers.set("Sec-WebSocket-Protocol", "bearer, good");
  EXPECT_FALSE(m.before(r));
  EXPECT_EQ(r.context["ws_subprotocol"], "bearer");
}

TEST(Middleware, PublicPathsAndProbes) {
  auto m = mw();
  for (const char* p : {"/api/openapi.json", "/health", "/ready", "/metrics"}) {
    auto r = req("GET", p);
    EXPECT_FALSE(m.before(r)) << p;
  }
}

TEST(Middleware, PreflightAllowedAndRefused) {
  auto m = mw();
  auto ok = req("OPTIONS", "/api/workflows");
  ok.headers.set("Origin", "https://ide.example.com");
  ok.headers.set("Access-Control-Request-Method", "POST");
  auto a = m.before(ok);
  ASSERT_TRUE(a);
  EXPECT_EQ(a->status, 204);
  EXPECT_EQ(a->headers.get("Access-Control-Allow-Origin").value_or(""), "https://ide.example.com");
  EXPECT_TRUE(a->headers.get("Access-Control-Max-Age"));
  // PATCH /api/workflows/{id} (rename) from an allowed origin passes its preflight.
  EXPECT_EQ(a->headers.get("Access-Control-Allow-Methods").value_or(""),
            "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
  auto bad = req("OPTIONS", "/api/workflows");
  bad.headers.set("Origin", "https://evil.example.net");
  bad.headers.set("Access-Control-Request-Method", "POST");
  auto b = m.before(bad);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->status, 403);
  EXPECT_FALSE(b->headers.get("Access-Control-Allow-Origin"));
}

TEST(Middleware, WebSocketOriginChecked) {
  auto m = mw();
  auto r = req("GET", "/api/ws/refinements/x");
  r.headers.set("Upgrade", "websocket");
  r.headers.set("Origin", "https://evil.example.net");
  r.headers.set("Authorization", "Bearer good");
  auto out = m.before(r);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->status, 403);
}

TEST(Middleware, CorsHeadersOnlyForAllowedOrigins) {
  auto m = mw();
  auto r = req("GET", "/api/workflows");
  r.headers.set("Origin", "https://evil.example.net");
  Response res;
  m.after(r, res);
  EXPECT_FALSE(res.headers.get("Access-Control-Allow-Origin"));
  EXPECT_EQ(res.headers.get("X-Content-Type-Options").value_or(""), "nosniff");
  r.headers.set("Origin", "https://ide.example.com");
  Response res2;
  m.after(r, res2);
  EXPECT_EQ(res2.headers.get("Access-Control-Allow-Origin").value_or(""), "https://ide.example.com");
}

TEST(Middleware, LoginRateLimited) {
  auto m = mw(3);
  int limited = 0;
  for (int i = 0; i < 5; ++i) {
    auto r = req("POST", "/api/auth/login");
    if (auto out = m.before(r)) {
      EXPECT_EQ(out->status, 429);
      EXPECT_TRUE(out->headers.get("Retry-After"));
      ++limited;
    }
  }
  EXPECT_EQ(limited, 2);
}

}  // namespace

namespace {

// RFC 6750 §2.3: URI query tokens only where a browser has no other way (WebSocket upgrades).
TEST(Middleware, QueryAndSubprotocolTokensOnlyOnWebSocketUpgrades) {
  auto m = mw();
  auto plain = req("GET", "/api/workflows");
  plain.target = "/api/workflows?token=good";
  auto out = m.before(plain);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->status, 401);
  auto proto = req("GET", "/api/workflows");
  proto.headers.set("Sec-WebSocket-Protocol", "bearer, good");
  out = m.before(proto);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->status, 401);
  auto ws = req("GET", "/api/ws/refinements/x");
  ws.target = "/api/ws/refinements/x?token=good&after_seq=0";
  ws.headers.set("Upgrade", "websocket");
  EXPECT_FALSE(m.before(ws));
  EXPECT_EQ(ws.context["user_id"], "11111111-1111-4111-8111-111111111111");
}

TEST(Middleware, ConfiguredOriginsReplaceTheHostFallback) {
  auto r = req("GET", "/api/ws/refinements/x");  // Host: 127.0.0.1:8080
  EXPECT_FALSE(orchestrator::api::origin_allowed("http://127.0.0.1:8080", {"https://ide.example.com"}, r));
  EXPECT_TRUE(orchestrator::api::origin_allowed("https://ide.example.com", {"https://ide.example.com"}, r));
  EXPECT_TRUE(orchestrator::api::origin_allowed("http://127.0.0.1:8080", {}, r));
  EXPECT_FALSE(orchestrator::api::origin_allowed("https://evil.example.net", {}, r));
  auto m = mw();  // --cors-origins https://ide.example.com
  r.headers.set("Upgrade", "websocket");
  r.headers.set("Origin", "http://127.0.0.1:8080");
  r.headers.set("Authorization", "Bearer good");
  auto out = m.before(r);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->status, 403);
}

/// Login attempts from `addr` (as TCP peer) until the first 429; returns how many passed.
int logins_until_limited(core::http::Middleware& m, const std::string& addr, int max = 20) {
  for (int i = 0; i < max; ++i) {
    auto r = req("POST", "/api/auth/login");
    r.remote_addr = addr;
    if (auto out = m.before(r)) return out->status == 429 ? i : -1;
  }
  return max;
}

TEST(Middleware, LoginLimiterEvictsLeastRecentlyUsedOnly) {
  MiddlewareOptions o;
  o.rate_limits.login = {"login", 3, std::chrono::seconds(3600)};
  o.rate_limits.max_keys = 4;
  auto m = make_middleware(o, [](const std::string&) -> nlohmann::json { return {{"user_id", "u"}}; });
  EXPECT_EQ(logins_until_limited(m, "10.0.0.1"), 3);  // the attacker is limited
  // Churn through new addresses, the attacker keeps trying in between (stays recently used).
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(logins_until_limited(m, "10.1.0." + std::to_string(i), 1), 1);
    auto r = req("POST", "/api/auth/login");
    r.remote_addr = "10.0.0.1";
    auto out = m.before(r);
    ASSERT_TRUE(out) << "churn " << i << " reset the attacker's bucket";
    EXPECT_EQ(out->status, 429);
  }
}

TEST(Middleware, ClientAddressFromTrustedProxiesOnly) {
  using orchestrator::api::client_address;
  const std::vector<std::string> trusted = {"10.0.0.1", "10.0.0.2"};
  auto r = req("POST", "/api/auth/login");
  r.remote_addr = "203.0.113.9";
  r.headers.set("X-Forwarded-For", "198.51.100.7");
  EXPECT_EQ(client_address(r, trusted), "203.0.113.9");  // untrusted peer: header ignored
  r.remote_addr = "10.0.0.1";
  EXPECT_EQ(client_address(r, trusted), "198.51.100.7");
  r.headers.set("X-Forwarded-For", "1.2.3.4, 198.51.100.7, 10.0.0.2");  // left-most is spoofable
  EXPECT_EQ(client_address(r, trusted), "198.51.100.7");
  r.headers.set("X-Forwarded-For", "10.0.0.2");
  EXPECT_EQ(client_address(r, trusted), "10.0.0.2");
  r.headers.set("X-Forwarded-For", "1.2.3.4, ");
  EXPECT_EQ(client_address(r, trusted), "10.0.0.1");
  EXPECT_EQ(client_address(r, {}), "10.0.0.1");

  MiddlewareOptions o;
  o.rate_limits.login = {"login", 2, std::chrono::seconds(3600)};
  o.trusted_proxies = {"10.0.0.1"};
  auto m = make_middleware(o, [](const std::string&) -> nlohmann::json { return {{"user_id", "u"}}; });
  // Two clients behind the same proxy have separate buckets.
  for (const char* client : {"198.51.100.1", "198.51.100.2"}) {
    int passed = 0;
    for (int i = 0; i < 4; ++i) {
      auto lr = req("POST", "/api/auth/login");
      lr.remote_addr = "10.0.0.1";
      lr.headers.set("X-Forwarded-For", client);
      if (!m.before(lr)) ++passed;
    }
    EXPECT_EQ(passed, 2) << client;
  }
}

// X-Forwarded-Host/-Proto decide the refinement's websocket_url: believed, like
// X-Forwarded-For, only from a trusted proxy; from anyone else the middleware drops them.
TEST(Middleware, ForwardedHostAndProtoFromTrustedProxiesOnly) {
  MiddlewareOptions o;
  o.trusted_proxies = {"10.0.0.1"};
  const auto verify = [](const std::string&) -> nlohmann::json {
    return {{"user_id", "11111111-1111-4111-8111-111111111111"}};
  };
  auto m = make_middleware(o, verify);
  auto forwarded = [](const std::string& peer) {
    auto r = req("POST", "/api/workflows/x/refinements");
    r.remote_addr = peer;
    r.headers.set("Authorization", "Bearer good");
    r.headers.set("X-Forwarded-Host", "evil.example");
    r.headers.set("X-Forwarded-Proto", "https");
    return r;
  };
  auto direct = forwarded("203.0.113.9");
  EXPECT_FALSE(m.before(direct));
  EXPECT_FALSE(direct.headers.get("X-Forwarded-Host"));
  EXPECT_FALSE(direct.headers.get("X-Forwarded-Proto"));
  EXPECT_EQ(direct.headers.get("Host"), "127.0.0.1:8080");
  auto proxied = forwarded("10.0.0.1");
  EXPECT_FALSE(m.before(proxied));
  EXPECT_EQ(proxied.headers.get("X-Forwarded-Host"), "evil.example");
  EXPECT_EQ(proxied.headers.get("X-Forwarded-Proto"), "https");
  // Without --trusted-proxies nobody is trusted, loopback included.
  auto none = make_middleware(MiddlewareOptions{}, verify);
  auto local = forwarded("127.0.0.1");
  EXPECT_FALSE(none.before(local));
  EXPECT_FALSE(local.headers.get("X-Forwarded-Host"));
}

}  // namespace

namespace {

using orchestrator::api::RateLimitOptions;

constexpr const char* kUser = "11111111-1111-4111-8111-111111111111";

core::http::Middleware limited_mw(RateLimitOptions limits) {
  MiddlewareOptions o;
  o.rate_limits = std::move(limits);
  return make_middleware(o, [](const std::string& token) -> nlohmann::json {
    if (token == "idp-unverified")
      throw orchestrator::domain::IdentityLinkError("email-not-verified", "the address is not verified");
    if (token.rfind("good", 0) != 0) throw orchestrator::domain::UnauthenticatedError("invalid token signature");
    return {{"user_id", token == "good" ? kUser : "22222222-2222-4222-8222-222222222222"}};
  });
}

Request authed(std::string method, std::string path, const std::string& token = "good") {
  auto r = req(std::move(method), std::move(path));
  r.headers.set("Authorization", "Bearer " + token);
  return r;
}

/// Runs `before` (and `after` when it passes, as the server does) and returns the response.
Response run(core::http::Middleware& m, Request& r) {
  Response out;
  if (auto early = m.before(r)) out = *early;
  m.after(r, out);
  return out;
}

TEST(RateLimits, PerUserBucketOnEveryApiRouteWithHeaders) {
  RateLimitOptions l;
  l.user = {"user", 3, std::chrono::seconds(60)};
  auto m = limited_mw(l);
  for (int i = 2; i >= 0; --i) {
    auto r = authed(i % 2 ? "GET" : "PUT", i % 2 ? "/api/workflows" : "/api/workflows/x/draft/files");
    const Response out = run(m, r);
    EXPECT_EQ(out.status, 200);
    EXPECT_EQ(out.headers.get("RateLimit-Policy").value_or(""), "\"user\";q=3;w=60");
    EXPECT_EQ(out.headers.get("RateLimit").value_or("").rfind("\"user\";r=" + std::to_string(i) + ";t=", 0), 0u)
        << out.headers.get("RateLimit").value_or("");
  }
  auto r = authed("GET", "/api/proposals/p");
  const Response out = run(m, r);
  EXPECT_EQ(out.status, 429);
  EXPECT_EQ(out.headers.get("Retry-After").value_or(""), "20");
  EXPECT_EQ(out.headers.get("RateLimit").value_or(""), "\"user\";r=0;t=20");
  const auto body = nlohmann::json::parse(out.body);
  EXPECT_EQ(body["violated-policies"], nlohmann::json::array({"user"}));
  EXPECT_EQ(body["type"], "https://agentic-ide.dev/problems/rate-limited");
  // Another user has their own bucket; the WebSocket upgrade of the first user is limited too.
  auto other = authed("GET", "/api/workflows", "good-2");
  EXPECT_EQ(run(m, other).status, 200);
  auto ws = authed("GET", "/api/ws/refinements/x");
  ws.headers.set("Upgrade", "websocket");
  auto early = m.before(ws);
  ASSERT_TRUE(early);
  EXPECT_EQ(early->status, 429);
  EXPECT_TRUE(early->headers.get("RateLimit")) << "WebSocket rejections skip `after`: set on the 429 itself";
}

TEST(RateLimits, RefinementsHaveAStricterBucketOnTopOfTheUserBucket) {
  RateLimitOptions l;
  l.user = {"user", 100, std::chrono::seconds(60)};
  l.refinement = {"refinement", 2, std::chrono::seconds(60)};
  auto m = limited_mw(l);
  for (int i = 0; i < 2; ++i) {
    auto r = authed("POST", "/api/workflows/0b7f6a5e-0000-4000-8000-000000000001/refinements");
    const Response out = run(m, r);
    EXPECT_EQ(out.status, 200);
    EXPECT_EQ(out.headers.get("RateLimit-Policy").value_or(""), "\"user\";q=100;w=60, \"refinement\";q=2;w=60");
  }
  auto r = authed("POST", "/api/workflows/0b7f6a5e-0000-4000-8000-000000000002/refinements");
  const Response out = run(m, r);
  EXPECT_EQ(out.status, 429);
  EXPECT_EQ(out.headers.get("Retry-After").value_or(""), "30");
  EXPECT_NE(out.body.find("refinements"), std::string::npos) << out.body;
  // Other routes (and GET on the same path) are not charged to the refinement bucket.
  auto list = authed("GET", "/api/workflows/0b7f6a5e-0000-4000-8000-000000000002/proposals");
  EXPECT_EQ(run(m, list).status, 200);
  auto get = authed("GET", "/api/workflows/0b7f6a5e-0000-4000-8000-000000000002/refinements");
  EXPECT_EQ(run(m, get).status, 200);
}

// A refinement the handler refuses (400, 404, 409, the concurrency cap's 429) gives its token
// back; one that starts (202) or fails on the engine's side (503) keeps it spent.
TEST(RateLimits, ARefusedRefinementGivesItsTokenBack) {
  RateLimitOptions l;
  l.user = {"user", 100, std::chrono::seconds(60)};
  l.refinement = {"refinement", 2, std::chrono::seconds(60)};
  auto m = limited_mw(l);
  const auto post = [&](int handler_status) {
    auto r = authed("POST", "/api/workflows/0b7f6a5e-0000-4000-8000-000000000001/refinements");
    Response out;
    if (auto early = m.before(r)) {
      out = *early;
    } else {
      out.status = handler_status;
    }
    m.after(r, out);
    return out.status;
  };
  for (int status : {400, 404, 409, 429, 400, 400}) EXPECT_EQ(post(status), status) << "refused: token returned";
  EXPECT_EQ(post(202), 202);
  EXPECT_EQ(post(503), 503);
  EXPECT_EQ(post(202), 429) << "two refinements spent the bucket";
  EXPECT_EQ(post(202), 429) << "the limiter's own 429 returned nothing it had not taken";
}

// A refinement start resent with an Idempotency-Key its user already used is a replay: it is
// not charged to the refinement bucket, even when the bucket is empty, nor are concurrent
// replays. Only that route and only a known key of that user escape the charge: the retry route,
// an unknown key, another user's key and a malformed key are charged as usual.
TEST(RateLimits, ARefinementResentWithAUsedIdempotencyKeyIsNotCharged) {
  RateLimitOptions l;
  l.user = {"user", 100, std::chrono::seconds(60)};
  l.refinement = {"refinement", 1, std::chrono::seconds(60)};
  MiddlewareOptions o;
  o.rate_limits = l;
  auto m = make_middleware(
      o,
      [](const std::string&) -> nlohmann::json {
        return {{"user_id", kUser}};
      },
      [](const std::string& user, const std::string& key) { return user == kUser && key == "used-key"; });
  const auto post = [&](const std::string& path, const std::string& key) {
    auto r = authed("POST", path);
    if (!key.empty()) r.headers.set("Idempotency-Key", key);
    Response out;
    if (auto early = m.before(r)) {
      out = *early;
    } else {
      out.status = 202;
    }
    m.after(r, out);
    return out.status;
  };
  const std::string start = "/api/workflows/0b7f6a5e-0000-4000-8000-000000000001/refinements";
  EXPECT_EQ(post(start, "new-key"), 202);  // spends the only token
  EXPECT_EQ(post(start, "other-new-key"), 429);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(post(start, "used-key"), 202) << "a replay is never charged";
  EXPECT_EQ(post(start, "\"used-key\""), 202) << "the quoted form is the same key";
  EXPECT_EQ(post(start, ""), 429);
  EXPECT_EQ(post(start, "used key, twice"), 429) << "a malformed key is charged (the handler answers 400)";
  EXPECT_EQ(post("/api/proposals/0b7f6a5e-0000-4000-8000-000000000009/retry", "used-key"), 429)
      << "only a refinement start can be a replay";
}

TEST(RateLimits, UnauthenticatedRequestsArePerAddress) {
  RateLimitOptions l;
  l.ip = {"ip", 3, std::chrono::seconds(60)};
  auto m = limited_mw(l);
  // Probes, the public document, a missing token and a rejected token all count for the address.
  auto health = req("GET", "/health");
  EXPECT_EQ(run(m, health).status, 200);
  auto doc = req("GET", "/api/openapi.json");
  EXPECT_EQ(run(m, doc).status, 200);
  auto none = req("GET", "/api/workflows");
  EXPECT_EQ(run(m, none).status, 401);
  auto bad = authed("GET", "/api/workflows", "forged");
  const Response out = run(m, bad);
  EXPECT_EQ(out.status, 429);
  EXPECT_EQ(out.headers.get("RateLimit-Policy").value_or(""), "\"ip\";q=3;w=60");
  // Signed-in users are not charged to their address, and another address is unaffected.
  auto user = authed("GET", "/api/workflows");
  EXPECT_EQ(run(m, user).status, 200);
  auto elsewhere = req("GET", "/health");
  elsewhere.remote_addr = "192.0.2.7";
  EXPECT_EQ(run(m, elsewhere).status, 200);
}

TEST(RateLimits, IdentityLinkRefusalIs403NamingTheReason) {
  auto m = limited_mw({});
  auto r = authed("GET", "/api/workflows", "idp-unverified");
  const Response out = run(m, r);
  EXPECT_EQ(out.status, 403);
  const auto body = nlohmann::json::parse(out.body);
  EXPECT_EQ(body["type"], "https://agentic-ide.dev/problems/email-not-verified");
  EXPECT_NE(body["detail"].get<std::string>().find("not verified"), std::string::npos);
  EXPECT_FALSE(out.headers.get("WWW-Authenticate")) << "signing in again with the same token cannot help";
}

}  // namespace
