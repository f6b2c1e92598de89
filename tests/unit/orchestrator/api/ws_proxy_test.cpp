// WebSocket proxy as a subscriber of the thread followers (docs/event-path-and-replicas.md
// "Following a thread"): authorisation and after_seq checked before the upgrade; events forwarded
// unchanged from after_seq; one upstream for many browsers; 1000 after `end`; 1013 for a browser
// that stalls or falls behind (with the after_seq to resume from); 1011 plus an `error` event when
// the engine forgot the run; 1001 at shutdown; the relay ends when the browser leaves.
#include "orchestrator/api/ws_proxy.hpp"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "../../core/span_sink.hpp"
#include "../tracker/fake_engine.hpp"
#include "core/util.hpp"
#include "orchestrator/api/problem.hpp"
#include "orchestrator/store/unit_of_work.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using orchestrator::api::WsProxy;
using orchestrator::api::WsProxyOptions;
using tracker_test::eventually;
using tracker_test::FakeEngine;
using tracker_test::ThreadScript;

namespace {

/// Browser side of a proxied connection, recorded in memory. queued() is the number of frames
/// sent and not yet "written": all of them while the browser stalls, none while it drains.
class FakeConn : public core::http::WsConnection {
 public:
  bool send_text(std::string message) override {
    std::lock_guard lk(mu_);
    if (!open_) return false;
    sent_.push_back(std::move(message));
    return true;
  }
  void close(std::uint16_t code, std::string reason) override {
    std::function<void()> cb;
    {
      std::lock_guard lk(mu_);
      if (!open_) return;
      open_ = false;
      code_ = code;
      reason_ = std::move(reason);
      cb = std::move(on_close_);
    }
    if (cb) cb();
  }
  bool ping(std::string) override { return is_open(); }
  void on_message(std::function<void(const std::string&)>) override {}
  void on_close(std::function<void()> cb) override {
    std::unique_lock lk(mu_);
    if (open_) {
      on_close_ = std::move(cb);
      return;
    }
    lk.unlock();
    if (cb) cb();
  }
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
  /// Waits (in 5 ms steps: test code) until the queue is below the bounds, closed, or timed out.
  core::async::Task<bool> wait_writable(std::size_t max_frames, std::size_t max_bytes,
                                        std::chrono::milliseconds timeout) override {
    const auto end = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (!is_open()) co_return false;
      if (queued() < max_frames && queued_bytes() < max_bytes) co_return true;
      if (std::chrono::steady_clock::now() >= end) co_return false;
      co_await core::async::sleep_for(5ms);
    }
  }
  /// The browser goes away (its side closed the connection).
  void leave() {
    std::function<void()> cb;
    {
      std::lock_guard lk(mu_);
      open_ = false;
      cb = std::move(on_close_);
    }
    if (cb) cb();
  }
  std::vector<std::string> sent() const {
    std::lock_guard lk(mu_);
    return sent_;
  }
  std::vector<long long> seqs() const {
    std::vector<long long> out;
    for (const auto& m : sent()) out.push_back(json::parse(m).value("seq", -1LL));
    return out;
  }
  int code() const {
    std::lock_guard lk(mu_);
    return code_;
  }
  std::string reason() const {
    std::lock_guard lk(mu_);
    return reason_;
  }
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
  std::function<void()> on_close_;
};

json numbered(long long seq) { return {{"event_type", "on_state_update"}, {"data", json::object()}, {"seq", seq}}; }
json end_event(long long seq) { return {{"event_type", "end"}, {"data", {{"status", "completed"}}}, {"seq", seq}}; }

class WsProxyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rt_.start();
    orchestrator::engine_client::EngineClientOptions eo;
    eo.base_url = engine_.url();
    eo.retry = core::RetryPolicy{1, 1ms, 1ms};
    client_ = std::make_unique<orchestrator::engine_client::EngineClient>(eo, rt_);
    orchestrator::follow::FollowOptions fo;
    fo.reconnect_base_delay = 10ms;
    fo.reconnect_max_delay = 50ms;
    hub_ = std::make_unique<orchestrator::follow::FollowHub>(*client_, fo);
  }
  void TearDown() override {
    proxy_.reset();
    hub_.reset();
    client_.reset();
    rt_.stop();
  }
  /// The proxy; `blocking` runs its access re-checks (null: none).
  WsProxy& proxy(WsProxyOptions o = {}, core::async::Runtime* blocking = nullptr) {
    proxy_ = std::make_unique<WsProxy>(
        *hub_,
        [this](const std::string& thread, const std::string& user) -> std::optional<std::string> {
          std::lock_guard lk(access_mu_);  // re-checks run on the blocking pool
          ++checks_;
          if (thread == unanswerable_)
            throw orchestrator::store::DatabaseUnavailable("The database is not reachable right now.",
                                                           std::chrono::seconds(2), false);
          if (user == "u" && thread != denied_) return refinement_traceparent_;
          return std::nullopt;
        },
        o, blocking);
    return *proxy_;
  }
  /// Changes what the access check answers while connections are open.
  void set_access(const std::string& denied, const std::string& unanswerable) {
    std::lock_guard lk(access_mu_);
    denied_ = denied;
    unanswerable_ = unanswerable;
  }
  core::http::WsAccept accept(const std::string& thread, std::optional<std::string> after_seq = std::nullopt,
                              const std::string& user = "u", WsProxy::Subject subject = WsProxy::Subject::refinement) {
    core::http::Request req;
    req.path_params["thread_id"] = thread;
    req.context["user_id"] = user;
    if (after_seq) req.query.emplace("after_seq", *after_seq);
    return proxy_->accept(req, subject);
  }
  /// Opens a proxied connection (as the server would: on_open_async as a coroutine).
  std::shared_ptr<FakeConn> open(const std::string& thread, std::optional<std::string> after_seq = std::nullopt,
                                 bool drains = true) {
    auto a = accept(thread, after_seq);
    EXPECT_FALSE(a.reject.has_value()) << (a.reject ? a.reject->body : "");
    auto conn = std::make_shared<FakeConn>();
    conn->set_drains(drains);
    if (a.on_open_async) rt_.spawn(a.on_open_async(conn));
    return conn;
  }
  std::string live_thread(int events = 0) {
    const std::string id = core::uuid4();
    ThreadScript s;
    s.live = true;
    s.state = json{{"thread_id", id}, {"status", "running"}};
    for (int i = 1; i <= events; ++i) s.events.push_back(numbered(i));
    engine_.set(id, s);
    return id;
  }

  FakeEngine engine_;
  core::async::Runtime rt_{core::async::RuntimeOptions{2, 2, "ws-proxy-test"}};
  std::unique_ptr<orchestrator::engine_client::EngineClient> client_;
  std::unique_ptr<orchestrator::follow::FollowHub> hub_;
  std::unique_ptr<WsProxy> proxy_;
  std::mutex access_mu_;
  std::atomic<int> checks_{0};  ///< access checks so far (the upgrade's and the re-checks)
  std::string denied_ = "none";
  std::string unanswerable_ = "none";  ///< the access check cannot reach the database for this thread
  std::string refinement_traceparent_;  ///< what the access check answers for allowed threads
};

}  // namespace

TEST_F(WsProxyTest, RejectsBeforeTheUpgrade) {
  proxy();
  const std::string thread = core::uuid4();
  denied_ = thread;
  auto no_access = accept(thread);
  ASSERT_TRUE(no_access.reject.has_value());
  EXPECT_EQ(no_access.reject->status, 404);
  EXPECT_NE(no_access.reject->body.find("Refinement thread " + thread + " was not found"), std::string::npos)
      << no_access.reject->body;
  auto run_denied = accept(thread, std::nullopt, "u", WsProxy::Subject::run);
  ASSERT_TRUE(run_denied.reject.has_value());
  EXPECT_EQ(run_denied.reject->status, 404);
  EXPECT_NE(run_denied.reject->body.find("Run thread " + thread + " was not found"), std::string::npos)
      << run_denied.reject->body;
  auto not_uuid = accept("not-a-thread");
  ASSERT_TRUE(not_uuid.reject.has_value());
  EXPECT_EQ(not_uuid.reject->status, 404);
  for (const char* bad : {"-1", "x", "", "3.5"}) {
    auto a = accept(live_thread(), std::string(bad));
    ASSERT_TRUE(a.reject.has_value()) << bad;
    EXPECT_EQ(a.reject->status, 400) << bad;
    EXPECT_NE(a.reject->body.find("after_seq"), std::string::npos) << a.reject->body;
  }
  EXPECT_TRUE(engine_.connects(thread).empty()) << "nothing reaches the engine for a refused upgrade";
}

// The access check cannot reach the database: the upgrade is refused with the orchestrator's
// 503 + Retry-After (database-unavailable), like every other route, not a 404 or a 500.
TEST_F(WsProxyTest, DatabaseUnavailableRefusesTheUpgradeWith503) {
  proxy();
  unanswerable_ = live_thread();
  auto a = accept(unanswerable_);
  ASSERT_TRUE(a.reject.has_value());
  EXPECT_EQ(a.reject->status, 503);
  EXPECT_EQ(a.reject->headers.get("Retry-After").value_or(""), "2");
  EXPECT_EQ(json::parse(a.reject->body)["type"], orchestrator::api::problem_type("database-unavailable"));
  EXPECT_TRUE(engine_.connects(unanswerable_).empty());
}

// Access is checked again while a stream is open: once the caller may no longer watch the
// thread (removed from the workflow, account disabled, workflow deleted) the stream ends with an
// `error` event and 1008; while the database cannot answer, it goes on.
TEST_F(WsProxyTest, AStreamWhoseAccessWasRevokedIsClosedWith1008) {
  WsProxyOptions o;
  o.recheck_interval = 50ms;
  auto& p = proxy(o, &rt_);
  const auto thread = live_thread(2);
  auto conn = open(thread);
  ASSERT_TRUE(eventually([&] { return conn->sent().size() == 2; }));
  set_access("none", thread);  // the database cannot say: the stream stays open
  std::this_thread::sleep_for(300ms);
  ASSERT_TRUE(conn->is_open());
  engine_.append(thread, numbered(3));
  ASSERT_TRUE(eventually([&] { return conn->sent().size() == 3; }));
  set_access(thread, "none");
  ASSERT_TRUE(eventually([&] { return !conn->is_open(); }));
  EXPECT_EQ(conn->code(), 1008);
  EXPECT_EQ(conn->reason(), "access revoked");
  const auto last = json::parse(conn->sent().back());
  EXPECT_EQ(last["event_type"], "error");
  EXPECT_NE(last["data"]["error"].get<std::string>().find("no longer watch"), std::string::npos);
  EXPECT_TRUE(eventually([&] { return p.active() == 0; }));
}

// A stream that ends stops its re-checks: nothing asks for access once it is over.
TEST_F(WsProxyTest, AnEndedStreamIsNotCheckedAgain) {
  WsProxyOptions o;
  o.recheck_interval = 20ms;
  auto& p = proxy(o, &rt_);
  const auto thread = live_thread(1);
  auto conn = open(thread);
  engine_.append(thread, end_event(2));
  ASSERT_TRUE(eventually([&] { return !conn->is_open(); }));
  EXPECT_EQ(conn->code(), 1000);
  ASSERT_TRUE(eventually([&] { return p.active() == 0; }));
  std::this_thread::sleep_for(50ms);  // a re-check already running when the stream ended finishes
  const int after_end = checks_.load();
  std::this_thread::sleep_for(200ms);  // ten intervals
  EXPECT_EQ(checks_.load(), after_end);
}

// Re-checks run every interval while the stream is open.
TEST_F(WsProxyTest, AnOpenStreamIsCheckedEveryInterval) {
  WsProxyOptions o;
  o.recheck_interval = 20ms;
  proxy(o, &rt_);
  auto conn = open(live_thread(1));
  ASSERT_TRUE(eventually([&] { return checks_.load() >= 5; })) << "the upgrade's check and 4 re-checks";
  EXPECT_TRUE(conn->is_open());
}

TEST_F(WsProxyTest, ForwardsEventsUnchangedAndClosesWith1000AfterEnd) {
  auto& p = proxy();
  const auto thread = live_thread(3);
  auto conn = open(thread);
  engine_.append(thread, numbered(4));
  engine_.append(thread, end_event(5));
  ASSERT_TRUE(eventually([&] { return !conn->is_open(); }));
  EXPECT_EQ(conn->code(), 1000);
  ASSERT_EQ(conn->sent().size(), 5u);
  EXPECT_EQ(conn->sent()[3], numbered(4).dump()) << "the engine's text, unchanged";
  EXPECT_EQ(conn->seqs(), (std::vector<long long>{1, 2, 3, 4, 5}));
  EXPECT_TRUE(eventually([&] { return p.active() == 0; }));
}

TEST_F(WsProxyTest, StreamSpanLinksToTheRefinementAndParentsTheUpstream) {
  core::testing::SpanSink sink;
  refinement_traceparent_ = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  auto& p = proxy();
  const auto thread = live_thread(2);
  core::http::Request req;  // the upgrade request, in a trace of its own
  req.path_params["thread_id"] = thread;
  req.context["user_id"] = "u";
  req.traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  auto a = proxy_->accept(req);
  ASSERT_FALSE(a.reject.has_value());
  auto conn = std::make_shared<FakeConn>();
  rt_.spawn(a.on_open_async(conn));
  ASSERT_TRUE(eventually([&] { return engine_.connects(thread).size() == 1; }));
  engine_.append(thread, end_event(3));
  ASSERT_TRUE(eventually([&] { return p.active() == 0; }));
  const auto spans = sink.named("ws_proxy.stream");
  ASSERT_EQ(spans.size(), 1u);
  const json& s = spans[0];
  EXPECT_EQ(s["traceId"], "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(s["parentSpanId"], "b7ad6b7169203331");
  ASSERT_EQ(s["links"].size(), 1u);
  EXPECT_EQ(s["links"][0]["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(s["links"][0]["spanId"], "00f067aa0ba902b7");
  // The upstream stream this connection started (the fake engine's server span) is its child.
  const auto upstream = sink.children(s["spanId"], "GET /spec-engine/stream/");
  ASSERT_EQ(upstream.size(), 1u);
  EXPECT_EQ(upstream[0]["traceId"], "0af7651916cd43dd8448eb211c80319c");
}

TEST_F(WsProxyTest, ResumesAfterSeqAndManyBrowsersShareOneUpstream) {
  auto& p = proxy();
  const auto thread = live_thread(6);
  std::vector<std::shared_ptr<FakeConn>> conns;
  // The first browser (from the start) subscribes first: had a resuming one (after_seq 4) started
  // the follower, each fresh browser would need a catch-up stream for events 1-4 (by design).
  conns.push_back(open(thread, std::nullopt));
  ASSERT_TRUE(eventually([&] { return p.active() == 1; }));
  for (int i = 1; i < 20; ++i) conns.push_back(open(thread, i % 2 ? std::optional<std::string>("4") : std::nullopt));
  // Every relay subscribes before the run ends (a browser arriving after `end` gets a fresh replay).
  ASSERT_TRUE(eventually([&] { return p.active() == 20; }));
  engine_.append(thread, end_event(7));
  for (std::size_t i = 0; i < conns.size(); ++i) {
    ASSERT_TRUE(eventually([&] { return !conns[i]->is_open(); })) << i;
    EXPECT_EQ(conns[i]->code(), 1000);
    EXPECT_EQ(conns[i]->seqs(), i % 2 ? (std::vector<long long>{5, 6, 7}) : (std::vector<long long>{1, 2, 3, 4, 5, 6, 7}))
        << i;
  }
  EXPECT_EQ(engine_.connects(thread).size(), 1u) << "20 browsers, one upstream stream";
}

TEST_F(WsProxyTest, StalledBrowserIsClosedWith1013AndTheSeqToResumeFrom) {
  WsProxyOptions o;
  o.max_queued_frames = 4;
  o.drain_timeout = 300ms;
  proxy(o);
  const auto thread = live_thread(20);
  auto conn = open(thread, std::nullopt, /*drains=*/false);
  ASSERT_TRUE(eventually([&] { return !conn->is_open(); }));
  EXPECT_EQ(conn->code(), 1013);
  EXPECT_NE(conn->reason().find("after_seq=4"), std::string::npos) << conn->reason();
  EXPECT_EQ(conn->sent().size(), 4u) << "stopped taking events once the connection's queue was full";
}

TEST_F(WsProxyTest, BrowserFallingBehindLiveEventsIsClosedWith1013) {
  WsProxyOptions o;
  o.max_queued_frames = 2;
  o.max_behind_frames = 5;
  o.drain_timeout = 60s;  // the drain wait is not what ends it
  auto& p = proxy(o);
  const auto thread = live_thread();
  auto conn = open(thread, std::nullopt, /*drains=*/false);
  ASSERT_TRUE(eventually([&] { return p.active() == 1; }));
  for (long long s = 1; s <= 10; ++s) engine_.append(thread, numbered(s));
  ASSERT_TRUE(eventually([&] { return !conn->is_open(); }));
  EXPECT_EQ(conn->code(), 1013);
  // The reason names the last event the connection was given: its two queued frames, or fewer
  // when the follower got 5 ahead before the relay queued them (a busy machine).
  const auto given = conn->seqs();
  const long long last = given.empty() ? 0 : given.back();
  EXPECT_LE(last, 2);
  EXPECT_NE(conn->reason().find("after_seq=" + std::to_string(last)), std::string::npos) << conn->reason();
  EXPECT_TRUE(eventually([&] { return p.active() == 0; })) << "the relay ended with the connection";
}

TEST_F(WsProxyTest, DrainingBrowserGetsTheWholeRun) {
  WsProxyOptions o;
  o.max_queued_frames = 4;
  o.drain_timeout = 5s;
  proxy(o);
  const auto thread = live_thread(20);
  engine_.append(thread, end_event(21));
  auto conn = open(thread, std::nullopt, /*drains=*/false);
  ASSERT_TRUE(eventually([&] { return conn->sent().size() == 4u; }));
  conn->set_drains(true);  // the browser catches up before the drain timeout
  ASSERT_TRUE(eventually([&] { return !conn->is_open(); }));
  EXPECT_EQ(conn->code(), 1000);
  EXPECT_EQ(conn->sent().size(), 21u);
}

TEST_F(WsProxyTest, RunTheEngineForgotGetsAnErrorEventAnd1011) {
  proxy();
  auto conn = open(core::uuid4());
  ASSERT_TRUE(eventually([&] { return !conn->is_open(); }));
  EXPECT_EQ(conn->code(), 1011);
  ASSERT_EQ(conn->sent().size(), 1u);
  const auto e = json::parse(conn->sent()[0]);
  EXPECT_EQ(e.at("event_type"), "error");
  EXPECT_NE(e.at("data").at("error").get<std::string>().find("no longer knows"), std::string::npos) << e.dump();
}

TEST_F(WsProxyTest, BrowserLeavingEndsTheRelayAndTheUpstream) {
  auto& p = proxy();
  const auto thread = live_thread(1);
  auto conn = open(thread);
  ASSERT_TRUE(eventually([&] { return conn->sent().size() == 1u && engine_.open_streams(thread) == 1; }));
  conn->leave();
  EXPECT_TRUE(eventually([&] { return p.active() == 0; }));
  EXPECT_TRUE(eventually([&] { return engine_.open_streams(thread) == 0; })) << "no subscriber left: upstream closed";
}

TEST_F(WsProxyTest, ShutdownClosesBrowsersWith1001) {
  auto& p = proxy();
  const auto thread = live_thread(1);
  auto conn = open(thread);
  ASSERT_TRUE(eventually([&] { return conn->sent().size() == 1u; }));
  hub_->stop();
  ASSERT_TRUE(eventually([&] { return !conn->is_open(); }));
  EXPECT_EQ(conn->code(), 1001);
  EXPECT_TRUE(eventually([&] { return p.active() == 0; }));
}
