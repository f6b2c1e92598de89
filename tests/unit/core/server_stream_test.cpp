// Streamed responses of the core server (Router::add_stream): chunked transfer coding on the wire,
// incremental delivery, keep-alive after a stream, the handler learning that the client went away
// (closed, stopped reading, server stopping), errors before and after the status line, and many
// concurrent streams. Driven by the blocking client, the async client and raw sockets.
#include "core/http_client.hpp"
#include "core/server.hpp"

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "loopback.hpp"

using namespace core::http;
using core::async::Runtime;
using core::async::RuntimeOptions;
using core::async::Task;
using namespace std::chrono_literals;
using core_test::connect_loopback;
using core_test::raw_exchange;
using core_test::send_all;

namespace {

/// What the handlers report back to the tests.
struct Observed {
  std::atomic<bool> first_seen{false};    // set by the client when the first chunk arrived
  std::atomic<bool> stopped{false};       // a handler saw its stop token triggered
  std::atomic<bool> write_failed{false};  // a handler's write returned false
  std::atomic<int> finished{0};           // handlers that returned
};

/// Waits up to `limit` for `pred`.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 10s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

int query_int(const Request& req, const std::string& name, int fallback) {
  auto v = req.query_param(name);
  return v ? std::stoi(*v) : fallback;
}

Router stream_router(Observed& obs) {
  Router r;
  // n chunks "data: i\n\n", interval_ms apart.
  r.add_stream("GET", "/sse/count", [](Request& req, ResponseStream& out) -> Task<void> {
    const int n = query_int(req, "n", 3);
    const auto interval = std::chrono::milliseconds(query_int(req, "interval_ms", 0));
    Headers h;
    h.set("Content-Type", "text/event-stream");
    h.set("Content-Length", "999");  // replaced by the chunked framing
    if (!co_await out.start(200, h)) co_return;
    for (int i = 0; i < n; ++i) {
      if (i > 0 && interval.count() > 0 && !co_await core::async::sleep_for(interval, out.stop_token())) co_return;
      const std::string event = "data: " + std::to_string(i) + "\n\n";
      if (!co_await out.write(event)) co_return;
    }
    co_await out.finish();
  });
  // One chunk, then the second only once the client has seen the first (or after 10 s, marked).
  r.add_stream("GET", "/sse/gate", [&obs](Request&, ResponseStream& out) -> Task<void> {
    Headers h;
    h.set("Content-Type", "text/plain");
    co_await out.start(200, h);
    const std::string first = "first;";
    co_await out.write(first);
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (!obs.first_seen && std::chrono::steady_clock::now() < end) co_await core::async::sleep_for(2ms);
    const std::string second = obs.first_seen ? "second" : "second-after-timeout";
    co_await out.write(second);
  });
  // One chunk, then waits (up to a minute) for the stop token: only noticing the client leaving ends it.
  r.add_stream("GET", "/sse/idle", [&obs](Request&, ResponseStream& out) -> Task<void> {
    Headers h;
    co_await out.start(200, h);
    const std::string hello = "hello";
    co_await out.write(hello);
    if (!co_await core::async::sleep_for(60s, out.stop_token())) obs.stopped = true;
    ++obs.finished;
  });
  // 64 KiB chunks until a write fails (the client never reads).
  r.add_stream("GET", "/sse/flood", [&obs](Request&, ResponseStream& out) -> Task<void> {
    Headers h;
    co_await out.start(200, h);
    const std::string block(64 * 1024, 'x');
    for (int i = 0; i < 100000; ++i) {
      if (!co_await out.write(block)) {
        obs.write_failed = true;
        obs.stopped = out.stop_token().stop_requested() && out.client_gone();
        break;
      }
    }
    ++obs.finished;
  });
  r.add_stream("GET", "/sse/throw-before", [](Request&, ResponseStream&) -> Task<void> {
    throw std::runtime_error("no stream today");
    co_return;
  });
  r.add_stream("GET", "/sse/throw-after", [](Request&, ResponseStream& out) -> Task<void> {
    Headers h;
    co_await out.start(200, h);
    const std::string partial = "partial";
    co_await out.write(partial);
    throw std::runtime_error("broke mid-stream");
  });
  r.add_stream("GET", "/sse/respond", [](Request& req, ResponseStream& out) -> Task<void> {
    const Response bad = Response::problem(400, "Bad Request", "n must be given", {{"field", "n"}});
    if (!req.query_param("n")) {
      co_await out.respond(bad);
      co_return;
    }
    Headers h;
    co_await out.start(200, h);
  });
  r.add_stream("GET", "/sse/nothing", [](Request&, ResponseStream&) -> Task<void> { co_return; });
  r.add_stream("GET", "/private/sse", [](Request&, ResponseStream& out) -> Task<void> {
    Headers h;
    co_await out.start(200, h);
    const std::string secret = "secret";
    co_await out.write(secret);
  });
  r.add("GET", "/plain", [](Request&) { return Response::text(200, "plain"); });
  return r;
}

class StreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rt.start();
    ServerOptions o;
    o.service_name = "stream-test";
    o.blocking_threads = 2;
    o.stream_write_timeout = 300ms;
    Middleware mw;
    mw.before = [](Request& req) -> std::optional<Response> {
      if (req.path.rfind("/private", 0) == 0 && req.headers.get("Authorization") != "Bearer good") {
        return Response::problem(401, "Unauthorized", "A valid token is required.");
      }
      return std::nullopt;
    };
    mw.after = [](const Request&, Response& res) { res.headers.set("X-After", "1"); };
    server = std::make_unique<Server>(o, stream_router(obs), mw);
    server->start();
  }
  void TearDown() override {
    server->stop();
    rt.stop();
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(server->port()) + path; }

  /// A streaming GET with the blocking client: status, headers and the pieces as they arrived.
  struct Got {
    int status = 0;
    Headers headers;
    std::vector<std::string> pieces;
    std::string body() const {
      std::string b;
      for (const auto& p : pieces) b += p;
      return b;
    }
  };
  Got get_streaming(const std::string& path, Headers headers = {}) {
    ClientRequest req;
    req.url = url(path);
    req.headers = std::move(headers);
    req.timeout = 20s;
    Got g;
    g.status = request_streaming(
        req, [&](int s, const Headers& h) { g.headers = h; (void)s; },
        [&](std::string_view chunk) {
          g.pieces.emplace_back(chunk);
          obs.first_seen = true;
        },
        20s);
    return g;
  }

  Observed obs;
  Runtime rt{RuntimeOptions{2, 2, "stream-client"}};
  std::unique_ptr<Server> server;
};

}  // namespace

TEST_F(StreamTest, ChunksArriveBeforeTheResponseEnds) {
  // The handler sends its second chunk only after the client has received the first: a server
  // that buffered the body would make the handler wait 10 s and say so in the body.
  const Got g = get_streaming("/sse/gate");
  EXPECT_EQ(g.status, 200);
  EXPECT_EQ(g.body(), "first;second");
  EXPECT_GE(g.pieces.size(), 2u);
  EXPECT_EQ(g.headers.get("Transfer-Encoding"), "chunked");
  EXPECT_EQ(g.headers.get("Content-Type"), "text/plain");
  EXPECT_EQ(g.headers.get("X-After"), "1");  // the middleware's after hook saw the head
  EXPECT_TRUE(g.headers.get("X-Request-Id").has_value());
  EXPECT_FALSE(g.headers.get("Content-Length").has_value());
}

TEST_F(StreamTest, WireFormatIsChunkedTransferCoding) {
  const std::string got =
      raw_exchange(server->port(), "GET /sse/count?n=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << got;
  const auto head_end = got.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  const std::string head = got.substr(0, head_end);
  EXPECT_NE(head.find("Transfer-Encoding: chunked"), std::string::npos) << head;
  EXPECT_EQ(head.find("Content-Length"), std::string::npos) << head;
  // RFC 9112 §7.1: chunk-size (hex) CRLF data CRLF ... last-chunk "0" CRLF, empty trailer CRLF.
  EXPECT_EQ(got.substr(head_end + 4), "9\r\ndata: 0\n\n\r\n9\r\ndata: 1\n\n\r\n0\r\n\r\n");
}

TEST_F(StreamTest, Http10ClientGetsTheBodyEndedByClose) {
  const std::string got = raw_exchange(server->port(), "GET /sse/count?n=3 HTTP/1.0\r\n\r\n");
  ASSERT_EQ(got.rfind("HTTP/1.0 200", 0), 0u) << got;
  const auto head_end = got.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  EXPECT_EQ(got.substr(0, head_end).find("chunked"), std::string::npos);
  EXPECT_EQ(got.substr(head_end + 4), "data: 0\n\ndata: 1\n\ndata: 2\n\n");
}

TEST_F(StreamTest, KeepAliveConnectionServesRequestsAfterAStream) {
  AsyncHttpClient client(rt);
  for (int i = 0; i < 3; ++i) {
    ClientRequest req;
    req.url = url("/sse/count?n=4&interval_ms=5");
    std::string body;
    auto on_status = [](int, const Headers&) {};
    auto on_chunk = [&body](std::string_view c) { body.append(c); };
    const int status = rt.run_sync(client.request_streaming(req, on_status, on_chunk, 5s));
    EXPECT_EQ(status, 200);
    EXPECT_EQ(body, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\n");
    ClientRequest plain;
    plain.url = url("/plain");
    EXPECT_EQ(client.request_blocking(plain).body, "plain");
  }
  EXPECT_EQ(client.connections_opened(), 1u);
}

// RFC 9110 §9.3.2: HEAD on a streaming GET route sends the status and header fields only; the
// handler's stop token ends its wait at once and the connection serves the next request.
TEST_F(StreamTest, HeadSendsTheHeaderFieldsAndStopsTheHandler) {
  const std::string got = raw_exchange(
      server->port(),
      "HEAD /sse/idle HTTP/1.1\r\nHost: x\r\n\r\nGET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(got.rfind("HTTP/1.1 200", 0), 0u) << got;
  const auto head_end = got.find("\r\n\r\n");
  ASSERT_NE(head_end, std::string::npos);
  EXPECT_NE(got.substr(0, head_end).find("X-After: 1"), std::string::npos) << got;
  // No chunk of "hello", no last-chunk: the next bytes are the answer to the GET.
  EXPECT_EQ(got.substr(head_end + 4, 12), "HTTP/1.1 200") << got;
  EXPECT_EQ(got.substr(got.size() - 5), "plain");
  EXPECT_TRUE(eventually([&] { return obs.finished.load() == 1; }, 5s));
  EXPECT_TRUE(obs.stopped.load());

  // A respond() answer to HEAD keeps its Content-Length and drops its body.
  const std::string r = raw_exchange(server->port(), "HEAD /sse/respond HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  ASSERT_EQ(r.rfind("HTTP/1.1 400", 0), 0u) << r;
  EXPECT_NE(r.find("Content-Length: "), std::string::npos) << r;
  EXPECT_EQ(r.substr(r.size() - 4), "\r\n\r\n") << r;
}

TEST_F(StreamTest, HandlerLearnsTheClientLeftWhileItWaits) {
  // The handler sleeps 60 s on its stop token after one chunk; the client aborts after that
  // chunk. Only the server noticing the closed connection can wake the handler early.
  AsyncHttpClient client(rt);
  ClientRequest req;
  req.url = url("/sse/idle");
  auto on_status = [](int, const Headers&) {};
  auto on_chunk = [](std::string_view) { throw std::runtime_error("client leaves"); };
  EXPECT_THROW(rt.run_sync(client.request_streaming(req, on_status, on_chunk, 5s)), std::runtime_error);
  EXPECT_TRUE(eventually([&] { return obs.finished.load() == 1; }));
  EXPECT_TRUE(obs.stopped);
  EXPECT_TRUE(eventually([&] { return server->stream_count() == 0; }));
}

TEST_F(StreamTest, WriteTimesOutWhenTheClientStopsReading) {
  const int fd = connect_loopback(server->port());
  ASSERT_GE(fd, 0);
  const int small = 4096;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
  const std::string req = "GET /sse/flood HTTP/1.1\r\nHost: x\r\n\r\n";
  ::send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  // Never read: the socket buffers fill and a write misses its 300 ms deadline.
  EXPECT_TRUE(eventually([&] { return obs.finished.load() == 1; }, 20s));
  EXPECT_TRUE(obs.write_failed);
  EXPECT_TRUE(obs.stopped);  // the stop token and client_gone() report it as well
  ::close(fd);
  EXPECT_TRUE(eventually([&] { return server->stream_count() == 0; }));
}

TEST_F(StreamTest, ErrorsBeforeTheStatusLineAreProblemDetails) {
  ClientRequest req;
  req.url = url("/sse/throw-before");
  auto r = request(req);
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.headers.get("Content-Type"), "application/problem+json");
  EXPECT_EQ(r.headers.get("X-After"), "1");

  req.url = url("/sse/nothing");
  EXPECT_EQ(request(req).status, 500);

  req.url = url("/sse/respond");
  r = request(req);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(nlohmann::json::parse(r.body)["field"], "n");
  EXPECT_EQ(r.headers.get("X-After"), "1");
  EXPECT_FALSE(r.headers.get("Transfer-Encoding").has_value());
}

TEST_F(StreamTest, FailureAfterTheStatusLineCutsTheBody) {
  // A complete-looking body would hide the failure: the client must see a broken message.
  ClientRequest req;
  req.url = url("/sse/throw-after");
  std::string body;
  auto on_status = [](int, const Headers&) {};
  auto on_chunk = [&body](std::string_view c) { body.append(c); };
  EXPECT_THROW(request_streaming(req, on_status, on_chunk, 5s), ClientError);
  EXPECT_EQ(body, "partial");
}

TEST_F(StreamTest, MiddlewareBeforeHookGuardsStreams) {
  ClientRequest req;
  req.url = url("/private/sse");
  auto r = request(req);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.headers.get("X-After"), "1");
  Headers auth;
  auth.set("Authorization", "Bearer good");
  const Got g = get_streaming("/private/sse", auth);
  EXPECT_EQ(g.status, 200);
  EXPECT_EQ(g.body(), "secret");
}

TEST_F(StreamTest, ManyConcurrentStreamsOnTwoIoThreads) {
  AsyncHttpClient client(rt);
  constexpr int kStreams = 300;
  std::atomic<int> ok{0};
  std::atomic<int> done{0};
  for (int i = 0; i < kStreams; ++i) {
    auto one = [](AsyncHttpClient& c, std::string u, std::atomic<int>& good) -> Task<void> {
      ClientRequest req;
      req.url = std::move(u);
      std::string body;
      auto on_status = [](int, const Headers&) {};
      auto on_chunk = [&body](std::string_view piece) { body.append(piece); };
      const int status = co_await c.request_streaming(req, on_status, on_chunk, 10s);
      if (status == 200 && body == "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n") ++good;
    };
    rt.spawn(one(client, url("/sse/count?n=5&interval_ms=20"), ok), [&done](std::exception_ptr) { ++done; });
  }
  ASSERT_TRUE(eventually([&] { return done.load() == kStreams; }, 60s));
  EXPECT_EQ(ok.load(), kStreams);
}

TEST_F(StreamTest, ServerStopEndsStreamsCleanly) {
  // A handler waiting on its stop token returns when the server stops; its body is finished
  // properly (last-chunk), so the client sees a complete response.
  std::atomic<int> status{0};
  std::string body;
  std::thread client([&] {
    ClientRequest req;
    req.url = url("/sse/idle");
    req.timeout = 20s;
    try {
      auto on_chunk = [&](std::string_view c) {
        body.append(c);
        obs.first_seen = true;
      };
      status = request_streaming(req, [](int, const Headers&) {}, on_chunk, 20s);
    } catch (const std::exception&) {
      status = -1;
    }
  });
  ASSERT_TRUE(eventually([&] { return server->stream_count() == 1; }));
  ASSERT_TRUE(eventually([&] { return obs.first_seen.load(); }));
  server->stop();  // waits up to 3 s for streams, then drops them (the client would see a cut body)
  client.join();
  EXPECT_EQ(status.load(), 200);
  EXPECT_EQ(body, "hello");
  EXPECT_TRUE(obs.stopped);
}
