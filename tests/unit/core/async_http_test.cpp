// AsyncHttpClient: keep-alive reuse, retry of idempotent requests on a connection the server
// closed while idle, cancellation by stop token (streaming body and WebSocket read), many
// concurrent requests on two I/O threads, and the WebSocket client against the core server.
#include "core/http_client.hpp"
#include "core/server.hpp"
#include "core/ws.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

using namespace core::http;
using core::async::Runtime;
using core::async::RuntimeOptions;
using core::async::Task;
using namespace std::chrono_literals;

namespace {

class AsyncClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rt.start();
    Router r;
    r.add("GET", "/hello", [](Request&) { return Response::text(200, "hello"); });
    r.add("POST", "/echo", [](Request& req) { return Response::text(200, req.body); });
    r.add_ws("/ws/echo", [](Request&) {
      WsAccept a;
      a.on_open = [](std::shared_ptr<WsConnection> c) {
        std::weak_ptr<WsConnection> w = c;
        c->on_message([w](const std::string& m) {
          if (auto cc = w.lock()) cc->send_text("echo:" + m);
        });
      };
      return a;
    });
    // "ping:X" -> text "a", a ping carrying X, text "b"; "big" -> "refused" when a 126-byte ping
    // is refused; anything else -> "ok".
    r.add_ws("/ws/ping", [](Request&) {
      WsAccept a;
      a.on_open = [](std::shared_ptr<WsConnection> c) {
        std::weak_ptr<WsConnection> w = c;
        c->on_message([w](const std::string& m) {
          auto cc = w.lock();
          if (!cc) return;
          if (m.rfind("ping:", 0) == 0) {
            cc->send_text("a");
            cc->ping(m.substr(5));
            return;
          }
          if (m == "big") {
            try {
              cc->ping(std::string(126, 'x'));
            } catch (const std::invalid_argument&) {
              cc->send_text("refused");
            }
            return;
          }
          cc->send_text("ok");
        });
      };
      return a;
    });
    // "N" -> one text message of N bytes.
    r.add_ws("/ws/size", [](Request&) {
      WsAccept a;
      a.on_open = [](std::shared_ptr<WsConnection> c) {
        std::weak_ptr<WsConnection> w = c;
        c->on_message([w](const std::string& m) {
          if (auto cc = w.lock()) cc->send_text(std::string(std::stoul(m), 'x'));
        });
      };
      return a;
    });
    ServerOptions o;
    o.idle_timeout = std::chrono::seconds(1);  // the server drops idle keep-alive connections after 1 s
    server = std::make_unique<Server>(o, std::move(r));
    server->start();
  }
  void TearDown() override {
    server->stop();
    rt.stop();
  }
  std::string url(const std::string& path, const char* scheme = "http") {
    return std::string(scheme) + "://127.0.0.1:" + std::to_string(server->port()) + path;
  }

  Runtime rt{RuntimeOptions{2, 2, "client-test"}};
  std::unique_ptr<Server> server;
};

}  // namespace

TEST_F(AsyncClientTest, SequentialRequestsReuseOneConnection) {
  AsyncHttpClient client(rt);
  for (int i = 0; i < 10; ++i) {
    ClientRequest req;
    req.url = url("/hello");
    auto res = client.request_blocking(req);
    EXPECT_EQ(res.status, 200);
    EXPECT_EQ(res.body, "hello");
  }
  EXPECT_EQ(client.connections_opened(), 1u);
  EXPECT_EQ(client.idle_connections(), 1u);
}

TEST_F(AsyncClientTest, IdempotentRequestRetriesWhenTheServerClosedTheIdleConnection) {
  AsyncClientOptions o;
  o.idle_keepalive = 60s;  // the client would reuse it; the server (1 s) has closed it by then
  AsyncHttpClient client(rt, o);
  ClientRequest get;
  get.url = url("/hello");
  EXPECT_EQ(client.request_blocking(get).status, 200);
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(client.request_blocking(get).body, "hello");
  EXPECT_EQ(client.connections_opened(), 2u);

  // A POST that is not marked idempotent is not sent twice: it fails as `closed`.
  ClientRequest post;
  post.method = "POST";
  post.url = url("/echo");
  post.body = "x";
  EXPECT_EQ(client.request_blocking(post).body, "x");
  std::this_thread::sleep_for(1500ms);
  try {
    client.request_blocking(post);
    ADD_FAILURE() << "expected a closed connection";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.kind(), ClientErrorKind::closed) << e.what();
  }
  post.idempotent = true;
  EXPECT_EQ(client.request_blocking(post).body, "x");
}

TEST_F(AsyncClientTest, ManyConcurrentRequestsOnTwoIoThreads) {
  AsyncHttpClient client(rt);
  constexpr int kN = 300;
  auto one = [](AsyncHttpClient& c, std::string u, std::atomic<int>& ok) -> Task<void> {
    ClientRequest req;
    req.url = std::move(u);
    auto res = co_await c.request(req);
    if (res.status == 200 && res.body == "hello") ++ok;
  };
  auto all = [&](std::atomic<int>& ok) -> Task<void> {
    std::atomic<int> done{0};
    for (int i = 0; i < kN; ++i) {
      rt.spawn(one(client, url("/hello"), ok), [&done](std::exception_ptr) { ++done; });
    }
    while (done.load() < kN) co_await core::async::sleep_for(5ms);
  };
  std::atomic<int> ok{0};
  rt.run_sync(all(ok));
  EXPECT_EQ(ok.load(), kN);
  EXPECT_LE(client.idle_connections(), 32u);
}

TEST_F(AsyncClientTest, ConnectRefusedIsAConnectError) {
  AsyncHttpClient client(rt);
  ClientRequest req;
  req.url = "http://127.0.0.1:1/";
  try {
    client.request_blocking(req);
    ADD_FAILURE() << "expected an error";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.kind(), ClientErrorKind::connect) << e.what();
  }
}

TEST_F(AsyncClientTest, StopTokenCancelsAStreamingBodyPromptly) {
  // A raw server that sends the header and one chunk, then nothing for a long time.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  std::thread srv([fd] {
    int c = ::accept(fd, nullptr, nullptr);
    char buf[4096];
    (void)::recv(c, buf, sizeof buf, 0);
    const std::string head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
    (void)::send(c, head.data(), head.size(), MSG_NOSIGNAL);
    std::this_thread::sleep_for(1500ms);
    ::close(c);
  });
  AsyncHttpClient client(rt);
  std::stop_source stop;
  std::atomic<int> chunks{0};
  ClientRequest req;
  req.url = "http://127.0.0.1:" + std::to_string(port) + "/";
  req.timeout = 30s;
  const auto t0 = std::chrono::steady_clock::now();
  std::thread stopper([&] {
    for (int i = 0; i < 200 && chunks.load() == 0; ++i) std::this_thread::sleep_for(5ms);
    stop.request_stop();
  });
  try {
    rt.run_sync(client.request_streaming(req, nullptr, [&](std::string_view) { ++chunks; }, 30s, stop.get_token()));
    ADD_FAILURE() << "expected cancellation";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.kind(), ClientErrorKind::cancelled) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1200ms);
  EXPECT_EQ(chunks.load(), 1);
  stopper.join();
  srv.join();
  ::close(fd);
}

TEST_F(AsyncClientTest, WebSocketEchoAndCancelledRead) {
  AsyncHttpClient client(rt);
  auto ws = rt.run_sync(client.connect_ws(url("/ws/echo", "ws"), {}, 5s));
  rt.run_sync(ws->send("one"));
  auto m = rt.run_sync(ws->read());
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(*m, "echo:one");
  // Nothing more will come: a read is cancelled by its stop token.
  std::stop_source stop;
  std::thread stopper([&] {
    std::this_thread::sleep_for(50ms);
    stop.request_stop();
  });
  try {
    rt.run_sync(ws->read(stop.get_token()));
    ADD_FAILURE() << "expected cancellation";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.kind(), ClientErrorKind::cancelled) << e.what();
  }
  stopper.join();
}

// A server ping's application data reaches the client's on_ping (RFC 6455 §5.5.2), after the
// text frames queued before it; a payload over 125 bytes is refused.
TEST_F(AsyncClientTest, WebSocketPingPayloadReachesTheClient) {
  AsyncHttpClient client(rt);
  auto ws = rt.run_sync(client.connect_ws(url("/ws/ping", "ws"), {}, 5s));
  std::mutex mu;
  std::vector<std::string> pings;
  ws->on_ping([&](std::string_view p) {
    std::lock_guard lk(mu);
    pings.emplace_back(p);
  });
  rt.run_sync(ws->send("ping:queued"));
  EXPECT_EQ(rt.run_sync(ws->read()), std::optional<std::string>("a"));
  rt.run_sync(ws->send("next"));
  EXPECT_EQ(rt.run_sync(ws->read()), std::optional<std::string>("ok"));  // the ping was read on the way
  {
    std::lock_guard lk(mu);
    EXPECT_EQ(pings, std::vector<std::string>{"queued"});
  }
  rt.run_sync(ws->send("big"));
  EXPECT_EQ(rt.run_sync(ws->read()), std::optional<std::string>("refused"));
}

// Messages up to ws_max_message_bytes are read (20 MiB here, over Beast's own 16 MiB: the
// engine's state updates carry a whole file tree); a larger one is a too_large error, not a
// silent close or a "connection closed" that a follower would retry for ever.
TEST_F(AsyncClientTest, WebSocketMessagesUpToTheLimitAreReadALargerOneIsTooLarge) {
  AsyncClientOptions big;
  big.ws_max_message_bytes = std::size_t{20} << 20;
  AsyncHttpClient client(rt, big);
  auto ws = rt.run_sync(client.connect_ws(url("/ws/size", "ws"), {}, 5s));
  const std::size_t twenty_mib = std::size_t{20} << 20;
  rt.run_sync(ws->send(std::to_string(twenty_mib)));
  auto m = rt.run_sync(ws->read());
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->size(), twenty_mib);

  AsyncClientOptions small;
  small.ws_max_message_bytes = 1 << 20;
  AsyncHttpClient limited(rt, small);
  auto ws2 = rt.run_sync(limited.connect_ws(url("/ws/size", "ws"), {}, 5s));
  rt.run_sync(ws2->send(std::to_string(1 << 20)));
  EXPECT_EQ(rt.run_sync(ws2->read()).value_or("").size(), std::size_t{1} << 20);  // exactly the limit
  rt.run_sync(ws2->send(std::to_string((1 << 20) + 1)));
  try {
    rt.run_sync(ws2->read());
    ADD_FAILURE() << "expected too_large";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.kind(), ClientErrorKind::too_large) << e.what();
    EXPECT_NE(std::string(e.what()).find("1048576 bytes"), std::string::npos) << e.what();
  }
  EXPECT_EQ(rt.run_sync(ws2->read()), std::nullopt);  // the connection is over
}

TEST_F(AsyncClientTest, WebSocketHandshakeRefusalCarriesStatus) {
  AsyncHttpClient client(rt);
  try {
    rt.run_sync(client.connect_ws(url("/nope", "ws"), {}, 5s));
    ADD_FAILURE() << "expected refusal";
  } catch (const WsHandshakeError& e) {
    EXPECT_EQ(e.status(), 404);
  }
}
