// Router matching: literals, captures, 405 detection, WebSocket routes.
#include "core/router.hpp"

#include <gtest/gtest.h>

using namespace core::http;

namespace {
Handler ok(int n) {
  return [n](Request&) { return Response::json(200, {{"n", n}}); };
}
}  // namespace

TEST(Router, MatchesLiteralAndCaptures) {
  Router r;
  r.add("GET", "/api/workflows", ok(1));
  r.add("GET", "/api/workflows/{id}", ok(2));
  r.add("GET", "/api/workflows/{id}/draft", ok(3));
  r.add("POST", "/api/workflows/{id}/versions", ok(4));

  auto m = r.match("GET", "/api/workflows/abc/draft", false);
  ASSERT_NE(m.handler, nullptr);
  EXPECT_EQ(m.params.at("id"), "abc");
  EXPECT_EQ(m.pattern, "/api/workflows/{id}/draft");

  m = r.match("GET", "/api/workflows", false);
  ASSERT_NE(m.handler, nullptr);
  Request req;
  EXPECT_EQ((*m.handler)(req).body, R"({"n":1})");

  EXPECT_EQ(r.match("GET", "/api/workflows//draft", false).handler, nullptr);
  EXPECT_EQ(r.match("GET", "/api/other", false).handler, nullptr);
  EXPECT_FALSE(r.match("GET", "/api/other", false).path_exists);
}

TEST(Router, LiteralBeatsCapture) {
  Router r;
  r.add("GET", "/a/{id}", ok(1));
  r.add("GET", "/a/special", ok(2));
  auto m = r.match("GET", "/a/special", false);
  ASSERT_NE(m.handler, nullptr);
  Request req;
  EXPECT_EQ((*m.handler)(req).body, R"({"n":2})");
  EXPECT_TRUE(m.params.empty());
}

TEST(Router, WrongMethodReportsAllowed) {
  Router r;
  r.add("GET", "/x/{id}", ok(1));
  r.add("DELETE", "/x/{id}", ok(2));
  auto m = r.match("POST", "/x/1", false);
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_TRUE(m.path_exists);
  EXPECT_EQ(m.allowed_methods, (std::vector<std::string>{"GET", "HEAD", "DELETE"}));
}

TEST(Router, WebSocketRoutesNeedUpgrade) {
  Router r;
  r.add_ws("/stream/{thread_id}", [](Request&) { return WsAccept{}; });
  auto m = r.match("GET", "/stream/t1", true);
  ASSERT_NE(m.ws_handler, nullptr);
  EXPECT_EQ(m.params.at("thread_id"), "t1");
  auto plain = r.match("GET", "/stream/t1", false);
  EXPECT_EQ(plain.ws_handler, nullptr);
  EXPECT_TRUE(plain.path_exists);
  auto routes = r.routes();
  ASSERT_EQ(routes.size(), 1u);
  EXPECT_EQ(routes[0].method, "WS");
  EXPECT_EQ(routes[0].pattern, "/stream/{thread_id}");
}

TEST(HttpTypes, ProblemDetails) {
  auto r = Response::problem(400, "Bad Request", "name is missing", {{"errors", {{{"field", "name"}}}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.headers.get("content-type"), "application/problem+json");
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["type"], "about:blank");
  EXPECT_EQ(j["title"], "Bad Request");
  EXPECT_EQ(j["status"], 400);
  EXPECT_EQ(j["detail"], "name is missing");
  EXPECT_EQ(j["errors"][0]["field"], "name");
}

TEST(HttpTypes, HeadersCaseInsensitive) {
  Headers h;
  h.add("X-A", "1");
  h.add("x-a", "2");
  EXPECT_EQ(h.get("X-a"), "1");
  EXPECT_EQ(h.get_all("X-A").size(), 2u);
  h.set("X-A", "3");
  EXPECT_EQ(h.get_all("x-a"), std::vector<std::string>{"3"});
  h.erase("X-A");
  EXPECT_FALSE(h.get("x-a"));
  EXPECT_TRUE(iequals("Content-Type", "content-TYPE"));
  Request req;
  req.query.emplace("a", "1");
  EXPECT_EQ(req.query_param("a"), "1");
  EXPECT_FALSE(req.query_param("b"));
}

TEST(Router, StreamRoutesMatchByMethodAndAreListed) {
  Router r;
  r.add_stream("POST", "/v1/chat/completions",
               [](Request&, ResponseStream&) -> core::async::Task<void> { co_return; });
  r.add("GET", "/v1/chat/completions", ok(1));
  auto m = r.match("POST", "/v1/chat/completions", false);
  EXPECT_NE(m.stream_handler, nullptr);
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_EQ(m.pattern, "/v1/chat/completions");
  m = r.match("GET", "/v1/chat/completions", false);
  EXPECT_EQ(m.stream_handler, nullptr);
  EXPECT_NE(m.handler, nullptr);
  m = r.match("DELETE", "/v1/chat/completions", false);
  EXPECT_TRUE(m.path_exists);
  EXPECT_EQ(m.allowed_methods, (std::vector<std::string>{"POST", "GET", "HEAD"}));
  const auto routes = r.routes();
  ASSERT_EQ(routes.size(), 2u);
  EXPECT_EQ(routes[0].method, "POST");
}

// RFC 9110 §9.3.2: HEAD is allowed wherever GET is; without a HEAD route of its own it is
// answered by the GET route, and Allow lists HEAD wherever it lists GET.
TEST(Router, HeadIsAnsweredByTheGetRoute) {
  Router r;
  r.add("GET", "/x/{id}", ok(1));
  r.add("POST", "/x/{id}", ok(2));
  r.add("POST", "/only-post", ok(3));
  r.add_stream("GET", "/s", [](Request&, ResponseStream&) -> core::async::Task<void> { co_return; });
  r.add_ws("/ws/{id}", [](Request&) { return WsAccept{}; });

  auto m = r.match("HEAD", "/x/7", false);
  ASSERT_NE(m.handler, nullptr);
  Request req;
  EXPECT_EQ((*m.handler)(req).body, R"({"n":1})");
  EXPECT_EQ(m.params.at("id"), "7");
  EXPECT_EQ(m.pattern, "/x/{id}");
  EXPECT_NE(r.match("HEAD", "/s", false).stream_handler, nullptr);

  // 405 answers list HEAD right after GET, and never without GET.
  m = r.match("DELETE", "/x/7", false);
  EXPECT_TRUE(m.path_exists);
  EXPECT_EQ(m.allowed_methods, (std::vector<std::string>{"GET", "HEAD", "POST"}));
  m = r.match("HEAD", "/only-post", false);
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_TRUE(m.path_exists);
  EXPECT_EQ(m.allowed_methods, (std::vector<std::string>{"POST"}));
  EXPECT_FALSE(r.match("HEAD", "/nowhere", false).path_exists);

  // A WebSocket route answers only the GET upgrade: HEAD matches nothing but is allowed there
  // (the server answers 426 like a plain GET).
  m = r.match("HEAD", "/ws/1", false);
  EXPECT_EQ(m.ws_handler, nullptr);
  EXPECT_EQ(m.handler, nullptr);
  EXPECT_EQ(m.allowed_methods, (std::vector<std::string>{"GET", "HEAD"}));

  // An explicit HEAD route wins over GET.
  r.add("HEAD", "/x/{id}", ok(4));
  EXPECT_EQ((*r.match("HEAD", "/x/7", false).handler)(req).body, R"({"n":4})");
  // HEAD routes are not invented for introspection.
  EXPECT_EQ(r.routes().size(), 6u);
}
