// EventHub: bounded mailboxes, wake-ups, deletes, watch hooks.
#include "spec_engine/bus/event_hub.hpp"

#include <gtest/gtest.h>

#include <thread>

namespace {

using namespace std::chrono_literals;
using spec_engine::bus::EventHub;
using spec_engine::bus::Frame;
using spec_engine::store::EventRecord;

EventRecord ev(const std::string& id, std::int64_t seq, const std::string& type = "e") {
  return {id, seq, type, {{"n", seq}}, "2026-01-01T00:00:00Z"};
}

class EventHubTest : public ::testing::Test {
 protected:
  core::async::Runtime rt_{{1, 1, "hub-test"}};
};

TEST_F(EventHubTest, DeliversStoredEventsOfItsThreadOnlyAsWireFrames) {
  EventHub hub;
  auto a = hub.subscribe("a", rt_.executor());
  auto b = hub.subscribe("b", rt_.executor());
  hub.publish(std::vector<EventRecord>{ev("a", 1), ev("b", 1), ev("a", 2)});
  auto news = a->take();
  ASSERT_EQ(news.events.size(), 2u);
  EXPECT_EQ(news.events[0].seq, 1);
  EXPECT_EQ(news.events[1].seq, 2);
  auto j = nlohmann::json::parse(*news.events[1].text);
  EXPECT_EQ(j["thread_id"], "a");
  EXPECT_EQ(j["seq"], 2);
  EXPECT_EQ(j["data"]["n"], 2);
  EXPECT_EQ(b->take().events.size(), 1u);
  EXPECT_TRUE(a->take().events.empty());  // taken
  hub.unsubscribe(a);
  hub.publish(ev("a", 3));
  EXPECT_TRUE(a->take().events.empty());
  EXPECT_EQ(hub.subscriber_count("a"), 0u);
  EXPECT_EQ(hub.subscriber_count(), 1u);
}

TEST_F(EventHubTest, ASlowSubscriberOverflowsInsteadOfGrowing) {
  EventHub hub({/*max_pending_events=*/10, /*max_pending_bytes=*/1 << 20});
  auto s = hub.subscribe("t", rt_.executor());
  for (int i = 1; i <= 25; ++i) hub.publish(ev("t", i));
  auto news = s->take();
  EXPECT_TRUE(news.overflow);
  EXPECT_TRUE(news.events.empty());  // dropped: the stream reads the table instead
  hub.publish(ev("t", 26));
  news = s->take();
  EXPECT_FALSE(news.overflow);
  ASSERT_EQ(news.events.size(), 1u);
}

TEST_F(EventHubTest, WakeUpsDeletesAndReconnectsAreNews) {
  EventHub hub;
  auto s = hub.subscribe("t", rt_.executor());
  hub.wake("t", 5);
  hub.wake("t", 3);
  hub.wake("other", 9);
  auto news = s->take();
  EXPECT_EQ(news.stored_up_to, 5);
  hub.wake_all();
  EXPECT_TRUE(s->take().overflow);
  hub.drop_thread("t");
  EXPECT_TRUE(s->take().deleted);
}

TEST_F(EventHubTest, SignalWakesTheWaitingStream) {
  rt_.start();
  EventHub hub;
  auto s = hub.subscribe("t", rt_.executor());
  std::thread publisher([&] {
    std::this_thread::sleep_for(30ms);
    hub.publish(ev("t", 1));
  });
  auto wait = [](std::shared_ptr<spec_engine::bus::Subscription> sub) -> core::async::Task<bool> {
    co_return co_await sub->signal().wait(std::chrono::milliseconds(5000));
  };
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(rt_.run_sync(wait(s)));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 4s);
  publisher.join();
  EXPECT_EQ(s->take().events.size(), 1u);
  rt_.stop();
}

TEST_F(EventHubTest, WatchHooksRunForTheFirstAndLastSubscriberOfAThread) {
  EventHub hub;
  std::vector<std::string> calls;
  hub.set_watch_hooks([&](const std::string& id) { calls.push_back("watch " + id); },
                      [&](const std::string& id) { calls.push_back("unwatch " + id); });
  auto a1 = hub.subscribe("a", rt_.executor());
  auto a2 = hub.subscribe("a", rt_.executor());
  auto b = hub.subscribe("b", rt_.executor());
  hub.unsubscribe(a1);
  hub.unsubscribe(a1);  // idempotent
  hub.unsubscribe(a2);
  hub.unsubscribe(b);
  EXPECT_EQ(calls, (std::vector<std::string>{"watch a", "watch b", "unwatch a", "unwatch b"}));
}

}  // namespace
