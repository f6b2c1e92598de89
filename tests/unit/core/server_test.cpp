// Server round trips on 127.0.0.1 with the real blocking client; client
// streaming and timeouts against raw POSIX-socket servers.
#include "core/http_client.hpp"
#include "core/metrics.hpp"
#include "core/server.hpp"
#include "core/unavailable.hpp"

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "loopback.hpp"

using namespace core::http;
using namespace std::chrono_literals;
using core_test::connect_loopback;
using core_test::RawListener;
using core_test::raw_exchange;
using core_test::send_all;

namespace {

std::string base(const Server& s) { return "http://127.0.0.1:" + std::to_string(s.port()); }

ClientResponse call(const std::string& method, const std::string& url, std::string body = {},
                    Headers headers = {}) {
  ClientRequest r;
  r.method = method;
  r.url = url;
  r.body = std::move(body);
  r.headers = std::move(headers);
  r.timeout = 5s;
  return request(r);
}

Router test_router() {
  Router r;
  r.add("GET", "/items/{id}", [](Request& req) {
    return Response::json(200, {{"id", req.path_params.at("id")},
                                {"q", req.query_param("q").value_or("")},
                                {"request_id", req.request_id},
                                {"traceparent", req.traceparent}});
  });
  r.add("POST", "/echo", [](Request& req) { return Response::text(200, req.body); });
  r.add("GET", "/boom", [](Request&) -> Response { throw std::runtime_error("kaput"); });
  r.add("GET", "/busy", [](Request&) -> Response { throw core::Unavailable("pool exhausted", 3s); });
  r.add("GET", "/private", [](Request&) { return Response::json(200, {{"secret", true}}); });
  return r;
}

/// Reads until the end of the request headers (enough for GET requests).
void read_request_head(int fd) {
  std::string got;
  char buf[1024];
  while (got.find("\r\n\r\n") == std::string::npos) {
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return;
    got.append(buf, static_cast<std::size_t>(n));
  }
}

/// Reads from `fd` into `buf` until it holds `n` bytes or the peer closed. False when closed first.
bool read_at_least(int fd, std::string& buf, std::size_t n) {
  char chunk[4096];
  while (buf.size() < n) {
    const auto got = ::recv(fd, chunk, sizeof chunk, 0);
    if (got <= 0) return false;
    buf.append(chunk, static_cast<std::size_t>(got));
  }
  return true;
}

/// One response on a raw connection: its header section, and the body as framed by its
/// Content-Length when `with_body` (a response to HEAD has none whatever its Content-Length).
struct RawResponse {
  std::string head;
  std::size_t content_length = 0;
  std::string body;
};

/// Takes the next response out of `buf` (reading `fd` as needed); bytes after it stay in `buf`.
RawResponse next_response(int fd, std::string& buf, bool with_body) {
  RawResponse r;
  while (buf.find("\r\n\r\n") == std::string::npos) {
    if (!read_at_least(fd, buf, buf.size() + 1)) return r;
  }
  const auto end = buf.find("\r\n\r\n");
  r.head = buf.substr(0, end);
  buf.erase(0, end + 4);
  const auto cl = r.head.find("Content-Length: ");
  if (cl != std::string::npos) r.content_length = std::stoul(r.head.substr(cl + 16));
  if (with_body) {
    read_at_least(fd, buf, r.content_length);
    r.body = buf.substr(0, r.content_length);
    buf.erase(0, r.content_length);
  }
  return r;
}

}  // namespace

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions o;
    o.max_body_bytes = 1024;
    o.service_name = "test";
    o.blocking_threads = 4;
    Middleware mw;
    mw.before = [](Request& req) -> std::optional<Response> {
      if (req.path == "/private" && req.headers.get("Authorization") != "Bearer good") {
        return Response::problem(401, "Unauthorized", "A valid token is required.");
      }
      return std::nullopt;
    };
    mw.after = [](const Request&, Response& res) { res.headers.set("X-After", "1"); };
    server = std::make_unique<Server>(o, test_router(), mw);
    server->start();
  }
  std::unique_ptr<Server> server;
};

TEST_F(ServerTest, JsonHandlerWithParamsAndIds) {
  Headers h;
  h.set("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
  auto r = call("GET", base(*server) + "/items/42?q=hello%20world", {}, h);
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.get("Content-Type"), "application/json");
  EXPECT_EQ(r.headers.get("X-After"), "1");
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["id"], "42");
  EXPECT_EQ(j["q"], "hello world");
  EXPECT_EQ(r.headers.get("X-Request-Id"), j["request_id"].get<std::string>());
  const std::string tp = j["traceparent"];
  EXPECT_EQ(tp.substr(0, 36), "00-0af7651916cd43dd8448eb211c80319c-");
  EXPECT_NE(tp.substr(36, 16), "b7ad6b7169203331");
  auto& reg = core::metrics::global();
  EXPECT_GE(reg.counter("http_requests_total", "")
                .value({{"service", "test"}, {"method", "GET"}, {"route", "/items/{id}"}, {"status", "200"}}),
            1.0);
}

// Regression: the method label used to be the raw request method, so a client could create
// any number of metric series. Non-standard methods are counted as "OTHER".
TEST_F(ServerTest, RequestMetricMethodLabelIsBounded) {
  auto& counter = core::metrics::global().counter("http_requests_total", "");
  const std::string odd = "XYZZY" + std::to_string(::getpid());
  const core::metrics::Labels other{{"service", "test"}, {"method", "OTHER"}, {"route", "unmatched"}, {"status", "405"}};
  const double before = counter.value(other);
  EXPECT_EQ(call(odd, base(*server) + "/items/1").status, 405);
  EXPECT_EQ(call("BREW", base(*server) + "/items/1").status, 405);
  EXPECT_EQ(counter.value(other), before + 2.0);
  EXPECT_EQ(counter.value({{"service", "test"}, {"method", odd}, {"route", "unmatched"}, {"status", "405"}}), 0.0);
  EXPECT_EQ(core::metrics::global().render().find(odd), std::string::npos);
  const double deletes_before =
      counter.value({{"service", "test"}, {"method", "DELETE"}, {"route", "unmatched"}, {"status", "405"}});
  EXPECT_EQ(call("DELETE", base(*server) + "/items/1").status, 405);
  EXPECT_EQ(counter.value({{"service", "test"}, {"method", "DELETE"}, {"route", "unmatched"}, {"status", "405"}}),
            deletes_before + 1.0);
}

TEST_F(ServerTest, NotFoundAndMethodNotAllowed) {
  auto r = call("GET", base(*server) + "/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.headers.get("Content-Type"), "application/problem+json");
  EXPECT_EQ(nlohmann::json::parse(r.body)["status"], 404);

  r = call("DELETE", base(*server) + "/echo");
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(r.headers.get("Allow"), "POST");
  EXPECT_EQ(nlohmann::json::parse(r.body)["title"], "Method Not Allowed");
}

TEST_F(ServerTest, BodyTooLargeIs413) {
  auto r = call("POST", base(*server) + "/echo", std::string(2000, 'x'));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.headers.get("Content-Type"), "application/problem+json");
  r = call("POST", base(*server) + "/echo", std::string(1000, 'y'));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), 1000u);
}

// A body far larger than the socket buffers: the server answers 413 after the header and closes
// in stages (RFC 9112 §9.6), so the client, still writing, reads the 413 rather than a reset
// ("broken pipe"). Fails when the server closes at once (checked).
TEST_F(ServerTest, BodyFarOverTheLimitGets413NotAReset) {
  for (int i = 0; i < 3; ++i) {
    ClientResponse r;
    ASSERT_NO_THROW(r = call("POST", base(*server) + "/echo", std::string(std::size_t{24} << 20, 'x')));
    EXPECT_EQ(r.status, 413);
    EXPECT_EQ(nlohmann::json::parse(r.body)["limit"], 1024);
  }
  EXPECT_EQ(call("POST", base(*server) + "/echo", "small").status, 200);
}

// The client's side of the same case against a server that answers early and closes at once
// (an older server, or a proxy): the write fails with a reset or broken pipe, and the answer
// already in the socket is read and returned instead (RFC 9112 §9.5). Fails without it (checked).
TEST(ClientEarlyAnswer, AnAnswerSentBeforeTheBodyWasReadIsReturned) {
  RawListener l;
  std::thread srv([&] {
    int c = ::accept(l.fd, nullptr, nullptr);
    read_request_head(c);
    send_all(c, "HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n"
                "Connection: close\r\n\r\ntoo big\n");
    ::close(c);  // unread body: the kernel resets the connection
  });
  ClientResponse r;
  EXPECT_NO_THROW(r = call("POST", "http://127.0.0.1:" + std::to_string(l.port) + "/",
                           std::string(std::size_t{24} << 20, 'x')));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.body, "too big\n");
  srv.join();
}

TEST_F(ServerTest, ChunkedBodyOverLimitIs413) {
  std::string req = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 3; ++i) req += "200\r\n" + std::string(512, 'z') + "\r\n";
  req += "0\r\n\r\n";
  EXPECT_EQ(raw_exchange(server->port(), req).substr(0, 12), "HTTP/1.1 413");
}

// RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400; HTTP/1.0 needs none.
TEST_F(ServerTest, Http11WithoutHostIs400) {
  const auto exchange = [&](const std::string& req) { return raw_exchange(server->port(), req); };
  const std::string no_host = exchange("GET /items/7 HTTP/1.1\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(no_host.substr(0, 12), "HTTP/1.1 400") << no_host;
  EXPECT_NE(no_host.find("Host header field"), std::string::npos) << no_host;
  EXPECT_EQ(exchange("GET /items/7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").substr(0, 12), "HTTP/1.1 200");
  EXPECT_EQ(exchange("GET /items/7 HTTP/1.0\r\n\r\n").substr(0, 12), "HTTP/1.0 200");
}

TEST_F(ServerTest, OversizedHeaderSectionIs431) {
  core::http::ClientRequest req;
  req.url = base(*server) + "/echo";
  req.method = "POST";
  req.headers.set("X-Big", std::string(20000, 'h'));
  const auto r = core::http::request(req);
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.headers.get("Content-Type"), "application/problem+json");
  EXPECT_EQ(nlohmann::json::parse(r.body)["status"], 431);
  // The server keeps serving.
  EXPECT_EQ(call("POST", base(*server) + "/echo", "ok").status, 200);
}

TEST_F(ServerTest, HandlerExceptionIs500Problem) {
  auto r = call("GET", base(*server) + "/boom");
  EXPECT_EQ(r.status, 500);
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["type"], "about:blank");
  EXPECT_EQ(j["status"], 500);
  EXPECT_EQ(j["detail"].get<std::string>().find("kaput"), std::string::npos);  // no internals leaked
}

// A handler out of a local resource (e.g. no database session within the bounded wait) is a
// 503 with Retry-After (RFC 9110 §15.6.4), not a 500.
TEST_F(ServerTest, UnavailableIs503WithRetryAfter) {
  auto r = call("GET", base(*server) + "/busy");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.headers.get("Retry-After").value_or(""), "3");
  auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["status"], 503);
  EXPECT_NE(j["detail"].get<std::string>().find("retry after 3 s"), std::string::npos);
}

TEST_F(ServerTest, MiddlewareShortCircuit) {
  auto r = call("GET", base(*server) + "/private");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.headers.get("X-After"), "1");
  Headers h;
  h.set("Authorization", "Bearer good");
  r = call("GET", base(*server) + "/private", {}, h);
  EXPECT_EQ(r.status, 200);
}

TEST_F(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  const int fd = connect_loopback(server->port());
  ASSERT_GE(fd, 0);
  for (int i = 0; i < 3; ++i) {
    const std::string body = "ping" + std::to_string(i);
    send_all(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
                     body);
    std::string got;
    char buf[4096];
    while (got.find("\r\n\r\n" + body) == std::string::npos) {
      auto n = ::recv(fd, buf, sizeof buf, 0);
      ASSERT_GT(n, 0) << "connection closed after " << i << " responses";
      got.append(buf, static_cast<std::size_t>(n));
    }
    EXPECT_EQ(got.substr(0, 12), "HTTP/1.1 200");
  }
  ::close(fd);
}

TEST(HttpClient, StreamingDeliversChunksIncrementally) {
  RawListener l;
  std::atomic<int> delivered{0};
  std::atomic<bool> second_sent{false};
  std::thread srv([&] {
    int c = ::accept(l.fd, nullptr, nullptr);
    read_request_head(c);
    send_all(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n");
    send_all(c, "6\r\nfirst\n\r\n");
    // The second piece is sent only after the client saw the first one.
    for (int i = 0; i < 500 && delivered.load() == 0; ++i) std::this_thread::sleep_for(10ms);
    second_sent = true;
    send_all(c, "7\r\nsecond\n\r\n0\r\n\r\n");
    std::this_thread::sleep_for(50ms);
    ::close(c);
  });
  ClientRequest r;
  r.url = "http://127.0.0.1:" + std::to_string(l.port) + "/stream";
  r.timeout = 5s;
  std::vector<std::string> pieces;
  std::vector<bool> second_sent_at;
  int seen_status = 0;
  int status = request_streaming(
      r, [&](int s, const Headers& h) {
        seen_status = s;
        EXPECT_EQ(h.get("content-type"), "text/event-stream");
      },
      [&](std::string_view chunk) {
        pieces.emplace_back(chunk);
        second_sent_at.push_back(second_sent.load());
        ++delivered;
      });
  srv.join();
  EXPECT_EQ(status, 200);
  EXPECT_EQ(seen_status, 200);
  std::string all;
  for (auto& p : pieces) all += p;
  EXPECT_EQ(all, "first\nsecond\n");
  ASSERT_GE(pieces.size(), 2u);
  EXPECT_FALSE(second_sent_at[0]) << "first piece must arrive before the server sent the rest";
}

TEST(HttpClient, StreamingIdleTimeout) {
  RawListener l;
  std::thread srv([&] {
    int c = ::accept(l.fd, nullptr, nullptr);
    read_request_head(c);
    send_all(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
    std::this_thread::sleep_for(1500ms);
    ::close(c);
  });
  ClientRequest r;
  r.url = "http://127.0.0.1:" + std::to_string(l.port) + "/";
  r.timeout = 10s;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    request_streaming(r, nullptr, [](std::string_view) {}, 300ms);
    ADD_FAILURE() << "expected timeout";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.kind(), ClientErrorKind::timeout) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1400ms);
  srv.join();
}

TEST(HttpClient, TimeoutWhenServerNeverAnswers) {
  RawListener l;  // listens but never accepts: the kernel completes the handshake, nobody answers
  ClientRequest r;
  r.url = "http://127.0.0.1:" + std::to_string(l.port) + "/";
  r.timeout = 400ms;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    request(r);
    ADD_FAILURE() << "expected timeout";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.kind(), ClientErrorKind::timeout) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
}

TEST(HttpClient, ErrorKinds) {
  ClientRequest r;
  r.url = "not a url";
  try {
    request(r);
    ADD_FAILURE();
  } catch (const ClientError& e) {
    EXPECT_EQ(e.kind(), ClientErrorKind::invalid_url);
  }
  RawListener l;
  const int port = l.port;
  ::close(l.fd);
  l.fd = ::socket(AF_INET, SOCK_STREAM, 0);  // keep the destructor harmless
  r.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  r.timeout = 2s;
  try {
    request(r);
    ADD_FAILURE();
  } catch (const ClientError& e) {
    EXPECT_EQ(e.kind(), ClientErrorKind::connect) << e.what();
  }
  r.url = "http://no-such-host.invalid/";
  try {
    request(r);
    ADD_FAILURE();
  } catch (const ClientError& e) {
    EXPECT_EQ(e.kind(), ClientErrorKind::resolve) << e.what();
  }
}

TEST(HttpClient, ContentLengthBodyAndServerStopIsIdempotent) {
  Router router;
  router.add("POST", "/len", [](Request& req) {
    return Response::json(201, {{"len", req.body.size()}, {"cl", req.headers.get("Content-Length").value_or("")}});
  });
  Server s(ServerOptions{}, std::move(router));
  s.start();
  auto r = call("POST", base(s) + "/len", "hello");
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(nlohmann::json::parse(r.body)["cl"], "5");
  s.stop();
  s.stop();
}

// Host names are looked up on a helper thread bounded by the call's deadline; IP literals
// (IPv4 and bracketed IPv6) are never looked up at all.
TEST_F(ServerTest, NumericHostsSkipLookupAndNamesHonourTheDeadline) {
  const std::string port = std::to_string(server->port());
  EXPECT_EQ(call("GET", "http://127.0.0.1:" + port + "/items/1").status, 200);
  EXPECT_EQ(call("GET", "http://localhost:" + port + "/items/2").status, 200);  // name: helper thread
  ClientRequest r;
  r.url = "http://[::1]:" + port + "/items/3";  // IPv6 literal: no lookup; nothing listens there
  r.timeout = 2s;
  try {
    request(r);
    ADD_FAILURE() << "nothing listens on ::1";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.kind(), ClientErrorKind::connect) << e.what();
  }
  // A lookup that cannot succeed ends by the deadline at the latest (resolve error or timeout).
  r.url = "http://no-such-host.invalid/";
  r.timeout = 300ms;
  const auto t0 = std::chrono::steady_clock::now();
  try {
    request(r);
    ADD_FAILURE();
  } catch (const ClientError& e) {
    EXPECT_TRUE(e.kind() == ClientErrorKind::resolve || e.kind() == ClientErrorKind::timeout) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1500ms);
}

// RFC 9110 §9.3.2: HEAD gets the GET route's status and header fields, Content-Length of the
// GET body included, and no body. Checked on one keep-alive connection: any body byte after a
// HEAD answer would be read as the start of the next response.
TEST_F(ServerTest, HeadAnswersLikeGetWithoutABody) {
  const int fd = connect_loopback(server->port());
  ASSERT_GE(fd, 0);
  std::string buf;
  send_all(fd, "GET /items/42?q=x HTTP/1.1\r\nHost: x\r\n\r\n");
  const RawResponse get = next_response(fd, buf, true);
  ASSERT_EQ(get.head.substr(0, 12), "HTTP/1.1 200") << get.head;
  ASSERT_GT(get.content_length, 0u);

  // HEAD, then a plain GET pipelined behind it.
  send_all(fd, "HEAD /items/42?q=x HTTP/1.1\r\nHost: x\r\n\r\nGET /items/43 HTTP/1.1\r\nHost: x\r\n\r\n");
  const RawResponse head = next_response(fd, buf, false);
  EXPECT_EQ(head.head.substr(0, 12), "HTTP/1.1 200") << head.head;
  EXPECT_EQ(head.content_length, get.content_length);  // same body length (the ids are per request)
  EXPECT_NE(head.head.find("Content-Type: application/json"), std::string::npos) << head.head;
  EXPECT_NE(head.head.find("X-After: 1"), std::string::npos) << head.head;  // middleware ran
  const RawResponse next = next_response(fd, buf, true);
  EXPECT_EQ(next.head.substr(0, 12), "HTTP/1.1 200") << "body bytes followed the HEAD answer: " << next.head;
  EXPECT_EQ(nlohmann::json::parse(next.body)["id"], "43");

  // Errors too: 404, 405 with Allow, 401 from the middleware, 500 -- each without its body.
  send_all(fd, "HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n");
  auto r = next_response(fd, buf, false);
  EXPECT_EQ(r.head.substr(0, 12), "HTTP/1.1 404") << r.head;
  EXPECT_GT(r.content_length, 0u);
  send_all(fd, "HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n");
  r = next_response(fd, buf, false);
  EXPECT_EQ(r.head.substr(0, 12), "HTTP/1.1 405") << r.head;
  EXPECT_NE(r.head.find("Allow: POST\r\n"), std::string::npos) << r.head;
  send_all(fd, "HEAD /private HTTP/1.1\r\nHost: x\r\n\r\n");
  r = next_response(fd, buf, false);
  EXPECT_EQ(r.head.substr(0, 12), "HTTP/1.1 401") << r.head;
  send_all(fd, "HEAD /boom HTTP/1.1\r\nHost: x\r\n\r\nGET /items/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  r = next_response(fd, buf, false);
  EXPECT_EQ(r.head.substr(0, 12), "HTTP/1.1 500") << r.head;
  r = next_response(fd, buf, true);
  EXPECT_EQ(r.head.substr(0, 12), "HTTP/1.1 200") << r.head;
  // Nothing else on the connection.
  EXPECT_FALSE(read_at_least(fd, buf, 1));
  EXPECT_EQ(buf, "");
  ::close(fd);

  // Where GET is allowed, so is HEAD: the Allow of a 405 says so.
  const auto del = call("DELETE", base(*server) + "/items/1");
  EXPECT_EQ(del.status, 405);
  EXPECT_EQ(del.headers.get("Allow"), "GET, HEAD");
  // The blocking client reads a HEAD answer without waiting for a body.
  const auto h = call("HEAD", base(*server) + "/items/1");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.body, "");
}

// The 413 problem names the limit in bytes (docs/json-input.md).
TEST_F(ServerTest, BodyTooLargeNamesTheLimit) {
  const auto r = call("POST", base(*server) + "/echo", std::string(2000, 'x'));
  ASSERT_EQ(r.status, 413);
  const auto j = nlohmann::json::parse(r.body);
  EXPECT_EQ(j["limit"], 1024);
  EXPECT_EQ(j["status"], 413);
}
