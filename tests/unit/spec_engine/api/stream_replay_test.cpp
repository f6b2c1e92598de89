// Stream endpoint (an on_open_async coroutine): a late subscriber to a thread with a long
// history receives every stored event, in order, replayed page by page, then the live ones, then
// close 1000 after `end`; news from other replicas (wake-ups without events, gaps, duplicates,
// deletes) never loses or repeats an event.
#include <atomic>
#include <map>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "core/http_client.hpp"
#include "core/server.hpp"
#include "spec_engine/api/routes.hpp"
#include "spec_engine/bus/event_hub.hpp"
#include "spec_engine/store/store.hpp"
#include "../test_db.hpp"

namespace {

using namespace std::chrono_literals;
using spec_engine::store::EventRecord;

class StreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    tdb_ = spec_engine::testing::make_sqlite();
    store_ = std::make_unique<spec_engine::store::Store>(*tdb_->db);
    rt_.start();
  }
  void TearDown() override {
    if (server_) server_->stop();
    rt_.stop();
  }
  void create(const std::string& id, const char* status = spec_engine::store::kRunning) {
    spec_engine::store::ThreadRecord rec;
    rec.thread_id = rec.job_id = id;
    rec.status = status;
    rec.agent_definition = nlohmann::json::object();
    rec.input_payload = nlohmann::json::object();
    ASSERT_TRUE(store_->create_thread(rec));
  }
  void serve(spec_engine::api::ApiContext ctx) {
    ctx.store = store_.get();
    ctx.hub = &hub_;
    ctx.rt = &rt_;
    core::http::Router router;
    spec_engine::api::register_routes(router, ctx);
    core::http::ServerOptions opts;
    opts.blocking_threads = 4;
    server_ = std::make_unique<core::http::Server>(opts, std::move(router));
    server_->start();
  }
  std::unique_ptr<core::http::WsClient> connect(const std::string& id, std::int64_t after = 0) {
    return core::http::WsClient::connect("ws://127.0.0.1:" + std::to_string(server_->port()) +
                                             "/spec-engine/stream/" + id + "?after_seq=" + std::to_string(after),
                                         {}, 5s);
  }
  /// Reads until the server closes; checks seq = expected, expected+1, ...; returns the next expected.
  int read_all(core::http::WsClient& ws, int expected) {
    for (;;) {
      auto m = ws.read(10s);
      if (!m) break;
      auto j = nlohmann::json::parse(*m);
      EXPECT_EQ(j["seq"].get<int>(), expected) << "gap or duplicate";
      if (j["seq"].get<int>() != expected) return expected;
      ++expected;
    }
    return expected;
  }
  /// The ping payloads each of `ids`' streams (opened at once, from the start) sends within
  /// `window`. Control frames are read by a pending read(); nothing else comes, so it is
  /// cancelled at the end of the window.
  std::map<std::string, std::vector<std::string>> pings_of(const std::vector<std::string>& ids,
                                                          std::chrono::milliseconds window) {
    core::http::AsyncHttpClient client(rt_);
    std::mutex mu;
    std::map<std::string, std::vector<std::string>> out;
    std::stop_source stop;
    std::vector<std::thread> readers;
    for (const auto& id : ids) {
      auto ws = rt_.run_sync(client.connect_ws(
          "ws://127.0.0.1:" + std::to_string(server_->port()) + "/spec-engine/stream/" + id, {}, 5s));
      out[id];
      ws->on_ping([&mu, &out, id](std::string_view p) {
        std::lock_guard lk(mu);
        out[id].emplace_back(p);
      });
      readers.emplace_back([this, ws, token = stop.get_token()] {
        EXPECT_THROW(rt_.run_sync(ws->read(token)), core::http::ClientError);
      });
    }
    std::this_thread::sleep_for(window);
    stop.request_stop();
    for (auto& t : readers) t.join();
    std::lock_guard lk(mu);
    return out;
  }
  static EventRecord make(const std::string& id, int seq, const std::string& type = "on_llm_stream",
                          const std::string& filler = "") {
    return EventRecord{id, seq, type, {{"chunk", filler}, {"n", seq}}, "2024-01-01T00:00:00Z"};
  }
  std::unique_ptr<spec_engine::testing::TestDb> tdb_;
  std::unique_ptr<spec_engine::store::Store> store_;
  spec_engine::bus::EventHub hub_;
  core::async::Runtime rt_{{1, 4, "stream-test"}};
  std::unique_ptr<core::http::Server> server_;
};

TEST_F(StreamTest, LateSubscriberGetsLongHistoryCompleteAndInOrder) {
  create("long-thread");
  const std::string filler(2000, 'd');  // ~2 KB per event: several MB of history in total
  constexpr int kStored = 2500;
  constexpr int kTotal = 2700;
  for (int i = 1; i <= kStored; ++i) store_->append_event(make("long-thread", i, "on_llm_stream", filler));
  spec_engine::api::ApiContext ctx;
  ctx.replay_page_size = 50;
  ctx.max_ws_queue = 400;  // low-water mark 100 frames: the replay must wait for the client
  serve(ctx);
  auto ws = connect("long-thread");
  // The run goes on while the subscriber replays: store, then publish, as the event log does.
  std::thread run([&] {
    for (int i = kStored + 1; i <= kTotal; ++i) {
      const auto e = make("long-thread", i, i == kTotal ? "end" : "on_llm_stream", filler);
      if (i == kTotal) {
        store_->finish("long-thread", spec_engine::store::kCompleted, nlohmann::json::object(),
                       nlohmann::json::object(), "", e);
      } else {
        store_->append_event(e);
      }
      hub_.publish(e);
      std::this_thread::sleep_for(1ms);
    }
  });
  int expected = 1;
  for (;;) {
    auto m = ws->read(10s);
    if (!m) break;
    auto j = nlohmann::json::parse(*m);
    ASSERT_EQ(j["seq"].get<int>(), expected) << "gap or duplicate";
    ASSERT_EQ(j["data"]["n"].get<int>(), expected);
    ++expected;
    if (expected % 500 == 0) std::this_thread::sleep_for(50ms);  // a slowish reader
  }
  run.join();
  EXPECT_EQ(expected, kTotal + 1);
  EXPECT_EQ(ws->close_code(), 1000);
}

TEST_F(StreamTest, WakeUpsGapsAndDuplicatesFromOtherReplicasAreDeliveredExactlyOnce) {
  create("t");
  serve({});
  auto ws = connect("t");
  std::thread other([&] {
    for (int i = 1; i <= 60; ++i) {
      const auto e = make("t", i, i == 60 ? "end" : "on_state_update");
      if (i == 60) {
        store_->finish("t", spec_engine::store::kCompleted, {}, {}, "", e);
      } else {
        store_->append_event(e);
      }
      // Another replica stored it; this one hears of it in a mix of ways.
      if (i % 3 == 0) hub_.wake("t", i);                    // PostgreSQL NOTIFY: read the table
      if (i % 3 == 1) hub_.publish(e);                      // NATS: the event itself
      if (i % 5 == 0) hub_.publish(e);                      // ...sometimes twice
      if (i % 7 == 0) hub_.publish(make("t", i - 3));       // ...or late
      // i % 3 == 2 and not published: a gap the next news reveals
      std::this_thread::sleep_for(2ms);
    }
  });
  EXPECT_EQ(read_all(*ws, 1), 61);
  other.join();
  EXPECT_EQ(ws->close_code(), 1000);
}

TEST_F(StreamTest, SilenceSendsTheStreamBackToTheTable) {
  create("t");
  spec_engine::api::ApiContext ctx;
  ctx.stream_silence = 100ms;
  serve(ctx);
  auto ws = connect("t");
  // Stored by another replica whose news never arrives (a lost NATS message).
  store_->append_event(make("t", 1));
  store_->finish("t", spec_engine::store::kCompleted, {}, {}, "", make("t", 2, "end"));
  EXPECT_EQ(read_all(*ws, 1), 3);
  EXPECT_EQ(ws->close_code(), 1000);
}

// A silent stream pings the thread's status after each of its checks (the first right after the
// replay, then one per silent period), so a client tells a live stream of a waiting run from a
// wedged one without asking GET state.
TEST_F(StreamTest, SilentStreamPingsTheThreadStatus) {
  create("q", spec_engine::store::kQueued);
  spec_engine::api::ApiContext ctx;
  ctx.stream_silence = 100ms;
  serve(ctx);
  // Pings at about 0, 0.2 and 0.6 s: the checks of a queued thread back off.
  const auto pings = pings_of({"q"}, 900ms).at("q");
  EXPECT_GE(pings.size(), 2u) << "one after the replay, then one per silent period";
  for (const auto& p : pings) EXPECT_EQ(p, "queued");
}

// A thread queued for a run slot is checked (and pinged) less and less often: each check that
// finds it queued doubles the wait, up to 4 silent periods; a running thread is checked once
// per silent period. Both streams are watched over the same second.
TEST_F(StreamTest, QueuedThreadIsCheckedLessOftenThanARunningOne) {
  create("q", spec_engine::store::kQueued);
  create("r", spec_engine::store::kRunning);
  spec_engine::api::ApiContext ctx;
  ctx.stream_silence = 50ms;
  serve(ctx);
  const auto pings = pings_of({"q", "r"}, 1200ms);
  const auto queued = pings.at("q").size(), running = pings.at("r").size();
  // Running: one per 50 ms (~24). Queued: at 0, 0.1, 0.3, 0.5, 0.7, ... s (~7).
  EXPECT_GE(queued, 3u) << "a queued thread is still checked";
  EXPECT_LE(queued * 2, running) << "queued " << queued << ", running " << running;
}

// The back-off delays, never loses: a queued thread whose run starts on another replica while
// that replica's news is lost (NATS) is found by the backed-off check and replayed from the table.
TEST_F(StreamTest, BackedOffQueuedStreamStillFindsEventsWhoseNewsWasLost) {
  create("q", spec_engine::store::kQueued);
  spec_engine::api::ApiContext ctx;
  ctx.stream_silence = 50ms;
  serve(ctx);
  auto ws = connect("q");
  std::this_thread::sleep_for(400ms);  // checked queued several times: waits of 100, then 200 ms
  store_->append_event(make("q", 1));  // no news through the hub
  store_->finish("q", spec_engine::store::kCompleted, {}, {}, "", make("q", 2, "end"));
  EXPECT_EQ(read_all(*ws, 1), 3);
  EXPECT_EQ(ws->close_code(), 1000);
}

TEST_F(StreamTest, EndAtOrBeforeAfterSeqClosesAtOnceAndDeletesClose) {
  create("done");
  store_->append_event(make("done", 1));
  store_->finish("done", spec_engine::store::kCompleted, {}, {}, "", make("done", 2, "end"));
  create("del");
  serve({});
  auto ws = connect("done", 2);
  EXPECT_FALSE(ws->read(5s));
  EXPECT_EQ(ws->close_code(), 1000);

  auto ws2 = connect("del");
  std::this_thread::sleep_for(100ms);  // subscribed
  ASSERT_TRUE(store_->delete_thread("del"));
  hub_.drop_thread("del");
  EXPECT_FALSE(ws2->read(5s));
  EXPECT_EQ(ws2->close_code(), 1000);
}

}  // namespace
