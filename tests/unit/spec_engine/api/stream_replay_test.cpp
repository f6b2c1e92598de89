// Stream endpoint: a late subscriber to a thread with a long history receives every stored
// event, in order, replayed page by page, then the live ones, then close 1000 after `end`.
#include <atomic>
#include <thread>

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

TEST(StreamReplay, LateSubscriberGetsLongHistoryCompleteAndInOrder) {
  auto tdb = spec_engine::testing::make_sqlite();
  spec_engine::store::Store store(*tdb->db);
  spec_engine::bus::EventHub hub;
  spec_engine::store::ThreadRecord rec;
  rec.thread_id = rec.job_id = "long-thread";
  rec.status = spec_engine::store::kRunning;
  rec.agent_definition = nlohmann::json::object();
  rec.input_payload = nlohmann::json::object();
  ASSERT_TRUE(store.create_thread(rec));
  const std::string filler(2000, 'd');  // ~2 KB per event: several MB of history in total
  constexpr int kStored = 2500;
  constexpr int kTotal = 2700;
  auto make = [&](int seq, const std::string& type) {
    return EventRecord{"long-thread", seq, type, {{"chunk", filler}, {"n", seq}}, "2024-01-01T00:00:00Z"};
  };
  for (int i = 1; i <= kStored; ++i) store.append_event(make(i, "on_llm_stream"));

  core::http::Router router;
  spec_engine::api::ApiContext ctx;
  ctx.store = &store;
  ctx.hub = &hub;
  ctx.replay_page_size = 50;
  ctx.max_ws_queue = 400;  // low-water mark 100 frames: the replay must wait for the client
  spec_engine::api::register_routes(router, ctx);
  core::http::ServerOptions opts;
  opts.blocking_threads = 4;
  core::http::Server server(opts, std::move(router));
  server.start();

  auto ws = core::http::WsClient::connect(
      "ws://127.0.0.1:" + std::to_string(server.port()) + "/spec-engine/stream/long-thread", {}, 5s);
  // The run goes on while the subscriber replays: store, then publish, as the run manager does.
  std::thread run([&] {
    for (int i = kStored + 1; i <= kTotal; ++i) {
      const auto e = make(i, i == kTotal ? "end" : "on_llm_stream");
      if (i == kTotal) {
        store.finish("long-thread", spec_engine::store::kCompleted, nlohmann::json::object(),
                     nlohmann::json::object(), "", e);
      } else {
        store.append_event(e);
      }
      hub.publish(e);
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
  server.stop();
}

}  // namespace
