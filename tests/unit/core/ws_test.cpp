// WebSocket server + client: ordered delivery, close codes, callbacks,
// upgrade refusal, sub-protocol echo, shutdown with open sockets.
#include "core/http_client.hpp"
#include "core/server.hpp"
#include "core/ws.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

using namespace core::http;
using namespace std::chrono_literals;

namespace {

/// Collects messages from the server-side callback for the test thread.
struct Inbox {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> msgs;
  void push(const std::string& m) {
    std::lock_guard lk(mu);
    msgs.push_back(m);
    cv.notify_all();
  }
  bool wait_for(std::size_t n, std::chrono::milliseconds t) {
    std::unique_lock lk(mu);
    return cv.wait_for(lk, t, [&] { return msgs.size() >= n; });
  }
};

template <class Pred>
bool eventually(Pred p, std::chrono::milliseconds t = 3000ms) {
  const auto end = std::chrono::steady_clock::now() + t;
  while (std::chrono::steady_clock::now() < end) {
    if (p()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return p();
}

}  // namespace

class WsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    Router r;
    r.add_ws("/stream/{n}", [this](Request& req) {
      WsAccept a;
      const int n = std::stoi(req.path_params.at("n"));
      a.on_open = [this, n](std::shared_ptr<WsConnection> c) {
        c->on_close([this] { ++closed; });
        for (int i = 0; i < n; ++i) c->send_text("msg-" + std::to_string(i));
        c->close(1000, "done");
      };
      return a;
    });
    r.add_ws("/echo", [this](Request& req) {
      WsAccept a;
      if (auto proto = req.headers.get("Sec-WebSocket-Protocol")) a.subprotocol = "v1";
      a.on_open = [this](std::shared_ptr<WsConnection> c) {
        std::weak_ptr<WsConnection> w = c;
        c->on_message([this, w](const std::string& m) {
          inbox.push(m);
          if (auto s = w.lock()) s->send_text("echo:" + m);
        });
        c->on_close([this] { ++closed; });
      };
      return a;
    });
    // Asynchronous open: sends `n` frames of 1 KiB, never more than 4 queued at once.
    r.add_ws("/paced/{n}", [this](Request& req) {
      WsAccept a;
      const int n = std::stoi(req.path_params.at("n"));
      a.on_open_async = [this, n](std::shared_ptr<WsConnection> c) -> core::async::Task<void> {
        for (int i = 0; i < n; ++i) {
          if (!co_await c->wait_writable(4, 1 << 20, 5s)) co_return;
          max_queued = std::max<std::size_t>(max_queued.load(), c->queued() + 1);
          c->send_text(std::to_string(i) + std::string(1024, '.'));
        }
        c->close(1000, "done");
      };
      return a;
    });
    r.add_ws("/secure", [](Request& req) {
      WsAccept a;
      if (req.headers.get("Authorization") != "Bearer ok") {
        a.reject = Response::problem(401, "Unauthorized", "A valid token is required.");
      }
      return a;
    });
    ServerOptions o;
    o.ws_ping_interval = 1s;
    o.ws_max_message_bytes = 1u << 20;
    server = std::make_unique<Server>(o, std::move(r));
    server->start();
  }
  std::string url(const std::string& path) const { return "ws://127.0.0.1:" + std::to_string(server->port()) + path; }

  std::unique_ptr<Server> server;
  Inbox inbox;
  std::atomic<int> closed{0};
  std::atomic<std::size_t> max_queued{0};
};

TEST_F(WsTest, AsyncOpenIsPacedByTheClient) {
  auto c = WsClient::connect(url("/paced/300"), {}, 5s);
  for (int i = 0; i < 300; ++i) {
    auto m = c->read(5s);
    ASSERT_TRUE(m.has_value()) << "message " << i;
    EXPECT_EQ(m->substr(0, m->find('.')), std::to_string(i));
  }
  EXPECT_FALSE(c->read(5s).has_value());
  EXPECT_EQ(c->close_code(), 1000);
  EXPECT_LE(max_queued.load(), 4u);
}

TEST_F(WsTest, ServerSendsInOrderThenCloses) {
  auto c = WsClient::connect(url("/stream/50"), {}, 5s);
  for (int i = 0; i < 50; ++i) {
    auto m = c->read(5s);
    ASSERT_TRUE(m.has_value()) << "message " << i;
    EXPECT_EQ(*m, "msg-" + std::to_string(i));
  }
  EXPECT_FALSE(c->read(5s).has_value());
  EXPECT_EQ(c->close_code(), 1000);
  EXPECT_TRUE(eventually([&] { return closed.load() == 1; }));
  EXPECT_TRUE(eventually([&] { return server->websocket_count() == 0; }));
}

TEST_F(WsTest, ClientMessagesReachCallbackAndReadTimeoutKeepsConnection) {
  auto c = WsClient::connect(url("/echo"), {}, 5s);
  try {
    (void)c->read(200ms);
    ADD_FAILURE() << "expected a read timeout";
  } catch (const ClientError& e) {
    EXPECT_EQ(e.kind(), ClientErrorKind::timeout);
  }
  c->send("hello");
  c->send("world");
  ASSERT_TRUE(inbox.wait_for(2, 3s));
  EXPECT_EQ(inbox.msgs[0], "hello");
  EXPECT_EQ(inbox.msgs[1], "world");
  EXPECT_EQ(c->read(3s), "echo:hello");
  EXPECT_EQ(c->read(3s), "echo:world");
  EXPECT_EQ(server->websocket_count(), 1u);
  c->close();
  EXPECT_TRUE(eventually([&] { return closed.load() == 1 && server->websocket_count() == 0; }));
}

TEST_F(WsTest, RejectedUpgradeCarriesStatusAndBody) {
  try {
    WsClient::connect(url("/secure"), {}, 5s);
    FAIL() << "expected WsHandshakeError";
  } catch (const WsHandshakeError& e) {
    EXPECT_EQ(e.status(), 401);
    EXPECT_EQ(nlohmann::json::parse(e.body())["title"], "Unauthorized");
  }
  Headers h;
  h.set("Authorization", "Bearer ok");
  auto c = WsClient::connect(url("/secure"), h, 5s);
  c->close();
}

TEST_F(WsTest, SubprotocolIsEchoed) {
  Headers h;
  h.set("Sec-WebSocket-Protocol", "v1");
  auto c = WsClient::connect(url("/echo"), h, 5s);
  c->send("x");
  EXPECT_EQ(c->read(3s), "echo:x");
  c->close();
}

// RFC 6455 §7.4.1: a message over the limit is answered with close 1009, and the peer reads it
// (it used to see an abrupt 1006: the socket was closed while it was still sending).
TEST_F(WsTest, MessageTooBigClosesWith1009) {
  auto c = WsClient::connect(url("/echo"), {}, 5s);
  const std::string at_limit(1u << 20, 'a');
  c->send(at_limit);
  const auto echoed = c->read(5s);
  ASSERT_TRUE(echoed.has_value());
  EXPECT_EQ(echoed->size(), at_limit.size() + 5);
  c->send(std::string(20u << 20, 'b'));  // 20 MiB, as a client did
  EXPECT_FALSE(c->read(10s).has_value());
  EXPECT_EQ(c->close_code(), 1009);
  EXPECT_TRUE(eventually([&] { return closed.load() == 1; }));
  ASSERT_TRUE(inbox.wait_for(1, 1s));
  EXPECT_EQ(inbox.msgs.size(), 1u);  // the big message never reached the handler
  EXPECT_TRUE(eventually([&] { return server->websocket_count() == 0; }));
}

TEST_F(WsTest, PlainGetOnWebSocketRouteIsRefused) {
  ClientRequest r;
  r.url = "http://127.0.0.1:" + std::to_string(server->port()) + "/echo";
  auto res = request(r);
  EXPECT_EQ(res.status, 426);
  // HEAD is allowed wherever GET is (RFC 9110 §9.3.2): the same 426, without a body.
  r.method = "HEAD";
  res = request(r);
  EXPECT_EQ(res.status, 426);
  EXPECT_EQ(res.headers.get("Upgrade"), "websocket");
  EXPECT_EQ(res.body, "");
  r.method = "POST";
  res = request(r);
  EXPECT_EQ(res.status, 405);
  EXPECT_EQ(res.headers.get("Allow"), "GET, HEAD");
}

TEST_F(WsTest, StopClosesOpenSocketsWith1001) {
  auto c = WsClient::connect(url("/echo"), {}, 5s);
  c->send("x");
  EXPECT_EQ(c->read(3s), "echo:x");
  ASSERT_EQ(server->websocket_count(), 1u);
  // The client keeps reading while the server stops, so it answers the close handshake.
  std::thread stopper([&] { server->stop(); });
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(c->read(5s).has_value());
  stopper.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2500ms);
  EXPECT_EQ(c->close_code(), 1001);
  EXPECT_EQ(closed.load(), 1);
  EXPECT_EQ(server->websocket_count(), 0u);
  server->stop();  // idempotent
}

// Regression: stop() stopped the handler pool (dropping queued on_open callbacks, whose
// connections were then destroyed after the io_context), and a connection kept by another
// thread posted into the destroyed io_context. Now the pool drains while connections are
// already closed, and a late handle is a safe no-op.
TEST(WsShutdownTest, OnOpenRunningAtStopFinishesAndHeldConnectionsStaySafe) {
  std::atomic<int> opened{0};
  std::atomic<bool> stop_called{false};
  std::atomic<bool> stop_returned{false};
  std::atomic<int> refused_after_stop{0};
  std::atomic<int> sends_after_stop{0};
  std::mutex mu;
  std::vector<std::thread> senders;
  // Joins every helper thread however the test ends (a failed assertion must not terminate).
  struct JoinAll {
    std::mutex& mu;
    std::vector<std::thread>& ts;
    ~JoinAll() { join(); }
    void join() {
      std::vector<std::thread> mine;
      {
        std::lock_guard lk(mu);
        mine = std::move(ts);
      }
      for (auto& t : mine) {
        if (t.joinable()) t.join();
      }
    }
  } join_all{mu, senders};
  std::unique_ptr<Server> server;
  auto port = [&] { return std::to_string(server->port()); };
  Router r;
  r.add_ws("/feed", [&](Request&) {
    WsAccept a;
    a.on_open = [&](std::shared_ptr<WsConnection> c) {
      ++opened;
      // Still running when stop() begins: the pool must let it finish, not drop it.
      const auto until = std::chrono::steady_clock::now() + 5s;
      while (!stop_called && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
      std::this_thread::sleep_for(100ms);
      // Another thread keeps the handle and sends until well after stop() returned.
      std::lock_guard lk(mu);
      senders.emplace_back([&, c] {
        const auto end = std::chrono::steady_clock::now() + 5s;
        while (std::chrono::steady_clock::now() < end) {
          const bool stopped = stop_returned.load();
          const bool ok = c->send_text(std::string(256, 'x'));
          (void)c->queued_bytes();
          if (stopped) {
            ++sends_after_stop;
            if (!ok && !c->is_open()) ++refused_after_stop;
            c->close(1000, "late");
            if (sends_after_stop > 200) break;
          }
          std::this_thread::sleep_for(1ms);
        }
      });
    };
    return a;
  });
  ServerOptions o;
  o.blocking_threads = 2;
  o.io_threads = 1;
  server = std::make_unique<Server>(o, std::move(r));
  server->start();
  std::unique_ptr<WsClient> a, b;
  try {
    a = WsClient::connect("ws://127.0.0.1:" + port() + "/feed", {}, 5s);
    b = WsClient::connect("ws://127.0.0.1:" + port() + "/feed", {}, 5s);
  } catch (const std::exception& e) {
    FAIL() << "connect: " << e.what();
  }
  // Clients read in the background so they answer the close handshake.
  auto drain = [](WsClient* c) {
    try {
      while (c->read(3s)) {
      }
    } catch (const std::exception&) {
    }
  };
  std::thread ra(drain, a.get());
  std::thread rb(drain, b.get());
  stop_called = true;
  const auto t0 = std::chrono::steady_clock::now();
  server->stop();
  stop_returned = true;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 6s);
  EXPECT_EQ(opened.load(), 2);
  ra.join();
  rb.join();
  server.reset();  // handles are still held by the sender threads
  join_all.join();
  EXPECT_GT(sends_after_stop.load(), 0);
  EXPECT_EQ(refused_after_stop.load(), sends_after_stop.load());
}
