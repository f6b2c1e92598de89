// WebSocket proxy lifecycle and back-pressure (DESIGN.md §5 "WebSocket proxy"): stop()
// interrupts reconnect backoff and joins forwarders; a browser that does not drain
// its queue is closed with 1013 instead of the process buffering the run.
#include "orchestrator/api/ws_proxy.hpp"

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "../tracker/fake_engine.hpp"
#include "core/util.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using orchestrator::api::WsProxy;
using orchestrator::api::WsProxyOptions;

namespace {

/// Browser side of a proxied connection, recorded in memory. queued() is the number of
/// frames sent minus `drained` (the test decides how fast the "browser" reads).
class FakeConn : public core::http::WsConnection {
 public:
  bool send_text(std::string message) override {
    std::lock_guard lk(mu_);
    if (!open_) return false;
    sent_.push_back(std::move(message));
    return true;
  }
  void close(std::uint16_t code, std::string reason) override {
    std::lock_guard lk(mu_);
    if (!open_) return;
    open_ = false;
    code_ = code;
    reason_ = std::move(reason);
  }
  void on_message(std::function<void(const std::string&)>) override {}
  void on_close(std::function<void()>) override {}
  bool is_open() const override {
    std::lock_guard lk(mu_);
    return open_;
  }
  std::size_t queued() const override {
    std::lock_guard lk(mu_);
    return drains_ ? 0 : sent_.size();
  }
  std::size_t queued_bytes() const override {
    std::lock_guard lk(mu_);
    std::size_t n = 0;
    if (!drains_)
      for (const auto& m : sent_) n += m.size();
    return n;
  }
  /// Not used by the thread-per-connection proxy; answers from the current queue state.
  core::async::Task<bool> wait_writable(std::size_t max_frames, std::size_t max_bytes,
                                        std::chrono::milliseconds) override {
    co_return is_open() && queued() < max_frames && queued_bytes() < max_bytes;
  }
  /// Frames sent so far.
  std::size_t sent() const {
    std::lock_guard lk(mu_);
    return sent_.size();
  }
  /// Close code, 0 while open.
  int code() const {
    std::lock_guard lk(mu_);
    return code_;
  }
  std::string reason() const {
    std::lock_guard lk(mu_);
    return reason_;
  }
  /// When false, nothing the proxy sends is ever written (a stalled browser).
  void set_drains(bool d) {
    std::lock_guard lk(mu_);
    drains_ = d;
  }

 private:
  mutable std::mutex mu_;
  bool open_ = true;
  bool drains_ = true;
  int code_ = 0;
  std::string reason_;
  std::vector<std::string> sent_;
};

/// Opens a proxied connection for `thread_id` as user "u" (access always granted).
std::shared_ptr<FakeConn> open_conn(WsProxy& proxy, const std::string& thread_id) {
  core::http::Request req;
  req.path_params["thread_id"] = thread_id;
  req.context["user_id"] = "u";
  auto a = proxy.accept(req);
  EXPECT_FALSE(a.reject.has_value());
  auto conn = std::make_shared<FakeConn>();
  a.on_open(conn);
  return conn;
}

template <class Pred>
bool eventually(Pred p, std::chrono::milliseconds limit = 5000ms) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (p()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return p();
}

TEST(WsProxy, StopInterruptsReconnectBackoffAndJoins) {
  orchestrator::engine_client::EngineClientOptions eo;
  eo.base_url = "http://127.0.0.1:1";  // nothing listens: every stream open fails fast
  eo.request_timeout = 500ms;
  orchestrator::engine_client::EngineClient engine(eo);
  WsProxyOptions o;
  o.reconnect_base_delay = 20s;
  o.reconnect_max_delay = 20s;
  WsProxy proxy(engine, [](const std::string&, const std::string&) { return true; }, o);
  auto conn = open_conn(proxy, core::uuid4());
  ASSERT_TRUE(eventually([&] { return proxy.active() == 1; }));
  std::this_thread::sleep_for(300ms);  // first open failed, now in the 20 s backoff
  const auto t0 = std::chrono::steady_clock::now();
  proxy.stop();
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(took, 2s);
  EXPECT_EQ(proxy.active(), 0);  // joined: the forwarder has finished
  EXPECT_EQ(conn->code(), 1001);
}

TEST(WsProxy, ConnectionsAfterStopAreClosed) {
  orchestrator::engine_client::EngineClientOptions eo;
  eo.base_url = "http://127.0.0.1:1";
  orchestrator::engine_client::EngineClient engine(eo);
  WsProxy proxy(engine, [](const std::string&, const std::string&) { return true; });
  proxy.stop();
  auto conn = open_conn(proxy, core::uuid4());
  EXPECT_EQ(conn->code(), 1001);
  EXPECT_EQ(proxy.active(), 0);
}

std::vector<json> numbered_run(int n) {
  std::vector<json> evs;
  for (int i = 1; i <= n; ++i) evs.push_back({{"event_type", "on_state_update"}, {"data", json::object()}, {"seq", i}});
  evs.push_back({{"event_type", "end"}, {"data", {{"status", "completed"}}}, {"seq", n + 1}});
  return evs;
}

/// A 20-event run (plus `end`) on a fake engine, proxied to a browser connection that does
/// not drain its queue until told to; the proxy allows 4 queued frames for `drain_timeout`.
struct BackPressureRun {
  explicit BackPressureRun(std::chrono::milliseconds drain_timeout)
      : engine(options_for(fake)), proxy(engine, [](const std::string&, const std::string&) { return true; },
                                         proxy_options(drain_timeout)) {
    const std::string thread = core::uuid4();
    fake.set(thread, {numbered_run(20), {}, false, false, std::nullopt});
    conn->set_drains(false);
    core::http::Request req;
    req.path_params["thread_id"] = thread;
    req.context["user_id"] = "u";
    proxy.accept(req).on_open(conn);
  }
  static orchestrator::engine_client::EngineClientOptions options_for(tracker_test::FakeEngine& f) {
    orchestrator::engine_client::EngineClientOptions eo;
    eo.base_url = f.url();
    return eo;
  }
  static WsProxyOptions proxy_options(std::chrono::milliseconds drain_timeout) {
    WsProxyOptions o;
    o.max_queued_frames = 4;
    o.drain_timeout = drain_timeout;
    return o;
  }
  tracker_test::FakeEngine fake;
  orchestrator::engine_client::EngineClient engine;
  WsProxy proxy;
  std::shared_ptr<FakeConn> conn = std::make_shared<FakeConn>();
};

TEST(WsProxy, StalledBrowserIsClosedWith1013) {
  BackPressureRun run(300ms);
  auto& conn = run.conn;
  auto& proxy = run.proxy;
  ASSERT_TRUE(eventually([&] { return !conn->is_open(); }));
  EXPECT_EQ(conn->code(), 1013);
  EXPECT_NE(conn->reason().find("after_seq=5"), std::string::npos) << conn->reason();
  EXPECT_EQ(conn->sent(), 5u);  // stopped reading upstream once the queue exceeded the bound
  proxy.stop();
}

TEST(WsProxy, DrainingBrowserGetsTheWholeRun) {
  BackPressureRun run(5s);
  auto& conn = run.conn;
  auto& proxy = run.proxy;
  ASSERT_TRUE(eventually([&] { return conn->sent() == 5u; }));
  conn->set_drains(true);  // the browser catches up before the drain timeout
  ASSERT_TRUE(eventually([&] { return !conn->is_open(); }));
  EXPECT_EQ(conn->code(), 1000);
  EXPECT_EQ(conn->sent(), 21u);
  proxy.stop();
}

}  // namespace
