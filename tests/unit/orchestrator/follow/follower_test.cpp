// Thread followers against a controllable fake engine (core::http::Server, HTTP + WebSocket):
// one upstream per thread for any number of subscribers, late joiners and after_seq resumes
// served from memory or from a catch-up stream, slow subscribers dropped, reconnect with
// after_seq after a loss and through an outage, terminal state when `end` is missed, a thread
// the engine forgot, and the follower's lifetime (docs/event-path-and-replicas.md).
#include "orchestrator/follow/follower.hpp"

#include <chrono>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "../tracker/fake_engine.hpp"
#include "core/util.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using orchestrator::follow::FollowHub;
using orchestrator::follow::FollowOptions;
using orchestrator::follow::Item;
using orchestrator::follow::SubscribeOptions;
using orchestrator::follow::Subscription;
using tracker_test::ev;
using tracker_test::eventually;
using tracker_test::FakeEngine;
using tracker_test::ThreadScript;

namespace {

json update(long long seq) { return ev("on_state_update", {{"messages", "step " + std::to_string(seq)}}, seq); }

class FollowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    rt_.start();
    orchestrator::engine_client::EngineClientOptions eo;
    eo.base_url = engine_.url();
    eo.request_timeout = 2000ms;
    eo.retry = core::RetryPolicy{1, 1ms, 1ms};
    client_ = std::make_unique<orchestrator::engine_client::EngineClient>(eo, rt_);
  }
  void TearDown() override {
    hub_.reset();
    client_.reset();
    rt_.stop();
  }
  FollowHub& hub(FollowOptions o = fast()) {
    hub_ = std::make_unique<FollowHub>(*client_, o);
    return *hub_;
  }
  static FollowOptions fast() {
    FollowOptions o;
    o.reconnect_base_delay = 20ms;
    o.reconnect_max_delay = 100ms;
    o.quiet_period = 60s;
    return o;
  }
  std::shared_ptr<Subscription> subscribe(const std::string& thread, long long after = 0, SubscribeOptions so = {}) {
    return hub_->subscribe(thread, after, rt_.executor(), std::move(so));
  }
  /// The next item, or nullopt when none came within `limit`.
  std::optional<Item> take(const std::shared_ptr<Subscription>& sub, std::chrono::milliseconds limit = 5000ms) {
    auto stop = std::make_shared<std::stop_source>();
    auto done = std::make_shared<std::promise<Item>>();
    auto fut = done->get_future();
    auto body = [](std::shared_ptr<Subscription> s, std::shared_ptr<std::stop_source> st,
                   std::shared_ptr<std::promise<Item>> d) -> core::async::Task<void> {
      d->set_value(co_await s->next(st->get_token()));
    };
    rt_.spawn(body(sub, stop, done));
    if (fut.wait_for(limit) == std::future_status::ready) {
      Item it = fut.get();
      if (it.kind == Item::Kind::stopped && it.reason == "cancelled") return std::nullopt;
      return it;
    }
    stop->request_stop();
    fut.wait();
    return std::nullopt;
  }
  /// Seqs of the next `n` events (fails the test on anything else).
  std::vector<long long> take_seqs(const std::shared_ptr<Subscription>& sub, int n) {
    std::vector<long long> out;
    for (int i = 0; i < n; ++i) {
      auto it = take(sub);
      if (!it || it->kind != Item::Kind::event) {
        ADD_FAILURE() << "expected event " << i << " of " << n;
        break;
      }
      out.push_back(it->event->seq);
    }
    return out;
  }
  static std::vector<long long> range(long long from, long long to) {
    std::vector<long long> v;
    for (long long i = from; i <= to; ++i) v.push_back(i);
    return v;
  }
  std::string live_thread(int events = 0) {
    const std::string id = core::uuid4();
    ThreadScript s;
    s.live = true;
    s.state = json{{"thread_id", id}, {"status", "running"}};
    for (int i = 1; i <= events; ++i) s.events.push_back(update(i));
    engine_.set(id, s);
    return id;
  }

  /// GET state calls in `window` after the first one (which it waits for, up to 5 s); sets
  /// `total` to the count at the end of the window.
  int probes_after_first(std::chrono::milliseconds window, int& total) {
    EXPECT_TRUE(eventually([&] { return engine_.state_calls() >= 1; }, 5s));
    const int first = engine_.state_calls();
    std::this_thread::sleep_for(window);
    total = engine_.state_calls();
    return total - first;
  }
  /// GET state calls in `window` after the next one beyond `total` (waited for up to 5 s).
  int probes_after_next(int total, std::chrono::milliseconds window) {
    EXPECT_TRUE(eventually([&] { return engine_.state_calls() >= total + 1; }, 5s));
    const int start = engine_.state_calls();
    std::this_thread::sleep_for(window);
    return engine_.state_calls() - start;
  }

  FakeEngine engine_;
  core::async::Runtime rt_{core::async::RuntimeOptions{2, 2, "follow-test"}};
  std::unique_ptr<orchestrator::engine_client::EngineClient> client_;
  std::unique_ptr<FollowHub> hub_;
};

}  // namespace

TEST_F(FollowTest, ManySubscribersShareOneUpstreamAndSeeEveryEventOnceInOrder) {
  auto& h = hub();
  const auto thread = live_thread(3);
  std::vector<std::shared_ptr<Subscription>> subs;
  for (int i = 0; i < 40; ++i) subs.push_back(subscribe(thread));
  for (long long s = 4; s <= 10; ++s) engine_.append(thread, update(s));
  engine_.append(thread, ev("end", {{"status", "completed"}}, 11));
  for (auto& sub : subs) {
    EXPECT_EQ(take_seqs(sub, 11), range(1, 11));
    auto fin = take(sub);
    ASSERT_TRUE(fin);
    EXPECT_EQ(fin->kind, Item::Kind::ended);
  }
  EXPECT_EQ(engine_.connects(thread).size(), 1u) << "one upstream for 40 subscribers";
  EXPECT_EQ(h.stats().upstreams_opened, 1u);
  EXPECT_EQ(h.stats().catch_ups_opened, 0u);
  EXPECT_TRUE(eventually([&] { return h.stats().followers == 0; })) << "a follower ends after `end`";
}

// An event over the engine client's size limit ends the thread for its subscribers with
// too_large (not a lost connection retried for ever); a subscriber that comes later gets the
// same final word from a new follower.
TEST_F(FollowTest, AnEventOverTheSizeLimitEndsTheThreadWithTooLarge) {
  orchestrator::engine_client::EngineClientOptions eo;
  eo.base_url = engine_.url();
  eo.request_timeout = 2000ms;
  eo.retry = core::RetryPolicy{1, 1ms, 1ms};
  eo.max_event_bytes = 4096;
  client_ = std::make_unique<orchestrator::engine_client::EngineClient>(eo, rt_);
  auto& h = hub();
  const auto thread = live_thread(2);
  auto sub = subscribe(thread);
  EXPECT_EQ(take_seqs(sub, 2), range(1, 2));
  engine_.append(thread, ev("on_state_update", {{"files", {{"/big.md", {{"content", {std::string(5000, 'x')}}}}}}}, 3));
  auto fin = take(sub);
  ASSERT_TRUE(fin);
  EXPECT_EQ(fin->kind, Item::Kind::too_large);
  EXPECT_NE(fin->reason.find("4096 bytes"), std::string::npos) << fin->reason;
  EXPECT_TRUE(eventually([&] { return h.stats().followers == 0; })) << "the follower ends";
  auto later = subscribe(thread, 2);
  auto again = take(later);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->kind, Item::Kind::too_large);
  EXPECT_EQ(h.stats().upstreams_opened, 2u) << "no reconnect loop";
}

TEST_F(FollowTest, LateJoinerAndResumeAreServedFromMemory) {
  auto& h = hub();
  const auto thread = live_thread();
  auto first = subscribe(thread);
  for (long long s = 1; s <= 12; ++s) engine_.append(thread, update(s));
  EXPECT_EQ(take_seqs(first, 12), range(1, 12));
  auto late = subscribe(thread, 0);
  auto resumed = subscribe(thread, 7);
  EXPECT_EQ(take_seqs(late, 12), range(1, 12));
  EXPECT_EQ(take_seqs(resumed, 5), range(8, 12));
  engine_.append(thread, update(13));
  for (auto* s : {&first, &late, &resumed}) EXPECT_EQ(take_seqs(*s, 1), std::vector<long long>{13});
  EXPECT_EQ(engine_.connects(thread), std::vector<long long>{0});
  EXPECT_EQ(h.stats().catch_ups_opened, 0u);
  EXPECT_EQ(h.stats().subscribers, 3u);
}

TEST_F(FollowTest, OlderEventsThanKeptComeFromAPrivateCatchUpStream) {
  auto o = fast();
  o.buffer_bytes = 600;  // a few events only
  auto& h = hub(o);
  const auto thread = live_thread();
  auto first = subscribe(thread);
  for (long long s = 1; s <= 30; ++s) {
    engine_.append(thread, update(s));
    EXPECT_EQ(take_seqs(first, 1), std::vector<long long>{s});
  }
  auto late = subscribe(thread, 0);
  EXPECT_EQ(take_seqs(late, 30), range(1, 30)) << "catch-up, then memory, without gap or duplicate";
  engine_.append(thread, update(31));
  EXPECT_EQ(take_seqs(late, 1), std::vector<long long>{31});
  EXPECT_EQ(h.stats().catch_ups_opened, 1u);
  EXPECT_EQ(h.stats().upstreams_opened, 1u);
  EXPECT_TRUE(eventually([&] { return engine_.open_streams(thread) == 1; })) << "the catch-up stream was closed";
}

TEST_F(FollowTest, CatchUpStreamIsClosedOnReachingMemoryWhileEventsKeepComing) {
  // The late subscriber never finds memory empty (an event is always waiting), so it never
  // waits: the catch-up stream must still be let go once it is no longer needed.
  auto o = fast();
  o.buffer_bytes = 600;
  auto& h = hub(o);
  const auto thread = live_thread();
  auto first = subscribe(thread);
  for (long long s = 1; s <= 30; ++s) {
    engine_.append(thread, update(s));
    EXPECT_EQ(take_seqs(first, 1), std::vector<long long>{s});
  }
  auto late = subscribe(thread, 0);
  engine_.append(thread, update(31));
  EXPECT_EQ(take_seqs(first, 1), std::vector<long long>{31});  // 31 is in memory before `late` reads
  EXPECT_EQ(take_seqs(late, 31), range(1, 31));
  EXPECT_EQ(h.stats().catch_ups_opened, 1u);
  EXPECT_TRUE(eventually([&] { return engine_.open_streams(thread) == 1; })) << "the catch-up stream was closed";
}

TEST_F(FollowTest, SubscriberThatFallsBehindIsDroppedOthersAreNot) {
  hub();
  const auto thread = live_thread();
  std::atomic<int> dropped{0};
  SubscribeOptions so;
  so.max_behind_frames = 3;
  so.on_too_slow = [&] { ++dropped; };
  auto slow = subscribe(thread, 0, so);
  auto fast_sub = subscribe(thread, 0);
  for (long long s = 1; s <= 6; ++s) engine_.append(thread, update(s));
  EXPECT_EQ(take_seqs(fast_sub, 6), range(1, 6));
  ASSERT_TRUE(eventually([&] { return dropped.load() == 1; }));
  // A dropped subscriber is told at once (it resumes with after_seq).
  auto it = take(slow);
  ASSERT_TRUE(it);
  EXPECT_EQ(it->kind, Item::Kind::too_slow);
  EXPECT_EQ(slow->last_seq(), 0);
  // Resuming where it was gets everything, from memory.
  auto again = subscribe(thread, slow->last_seq());
  EXPECT_EQ(take_seqs(again, 6), range(1, 6));
}

TEST_F(FollowTest, OneEventLargerThanTheByteBoundNeverMakesASubscriberSlow) {
  // A state update carrying a big tree of files is larger than a browser's byte bound by itself.
  const auto big = [](long long seq) {
    return ev("on_state_update", {{"messages", std::string(5000, 'x') + std::to_string(seq)}}, seq);
  };
  SubscribeOptions so;
  so.max_behind_bytes = 1000;
  {
    hub();
    const auto thread = live_thread();
    auto sub = subscribe(thread, 0, so);
    for (long long s = 1; s <= 5; ++s) {
      engine_.append(thread, big(s));
      EXPECT_EQ(take_seqs(sub, 1), std::vector<long long>{s});
    }
    // Two of them not yet taken are too far behind.
    std::atomic<int> dropped{0};
    auto slow_opts = so;
    slow_opts.on_too_slow = [&] { ++dropped; };
    auto slow = subscribe(thread, 5, slow_opts);
    engine_.append(thread, big(6));
    EXPECT_EQ(take_seqs(sub, 1), std::vector<long long>{6});
    EXPECT_EQ(dropped.load(), 0);
    engine_.append(thread, big(7));
    ASSERT_TRUE(eventually([&] { return dropped.load() == 1; }));
    EXPECT_EQ(take_seqs(sub, 1), std::vector<long long>{7});
    auto it = take(slow);
    ASSERT_TRUE(it);
    EXPECT_EQ(it->kind, Item::Kind::too_slow);
  }
  {
    // One such event with small ones after it, not yet taken (the browser is still reading the
    // big one): not slow either; the byte bound leaves the largest event out.
    hub();
    const auto thread = live_thread();
    std::atomic<int> dropped{0};
    auto opts = so;
    opts.on_too_slow = [&] { ++dropped; };
    auto reading = subscribe(thread, 0, opts);
    auto other = subscribe(thread, 0);
    engine_.append(thread, big(1));
    for (long long s = 2; s <= 4; ++s) engine_.append(thread, ev("on_llm_stream", {{"delta", "x"}}, s));
    EXPECT_EQ(take_seqs(other, 4), range(1, 4));  // all four arrived
    EXPECT_EQ(dropped.load(), 0);
    EXPECT_EQ(take_seqs(reading, 4), range(1, 4));
  }
  {
    // Memory holds one such event: the older one is evicted and read from a catch-up stream,
    // so a subscriber that has not taken either yet is one event behind, not two.
    auto o = fast();
    o.buffer_bytes = 8000;
    auto& h = hub(o);
    const auto thread = live_thread();
    auto sub = subscribe(thread, 0, so);
    engine_.append(thread, big(1));
    engine_.append(thread, big(2));
    EXPECT_EQ(take_seqs(sub, 2), range(1, 2));
    EXPECT_LE(h.stats().catch_ups_opened, 1u);
  }
}

TEST_F(FollowTest, SubscriberThatKeepsUpIsNeverDropped) {
  hub();
  const auto thread = live_thread();
  SubscribeOptions so;
  so.max_behind_frames = 2;
  auto sub = subscribe(thread, 0, so);
  for (long long s = 1; s <= 50; ++s) {
    engine_.append(thread, update(s));
    EXPECT_EQ(take_seqs(sub, 1), std::vector<long long>{s});
  }
}

TEST_F(FollowTest, LostUpstreamReconnectsWithAfterSeqWithoutGapOrDuplicate) {
  hub();
  const auto thread = live_thread();
  auto sub = subscribe(thread);
  for (long long s = 1; s <= 5; ++s) engine_.append(thread, update(s));
  EXPECT_EQ(take_seqs(sub, 5), range(1, 5));
  engine_.drop(thread);
  ASSERT_TRUE(eventually([&] { return engine_.connects(thread).size() == 2; }));
  for (long long s = 6; s <= 8; ++s) engine_.append(thread, update(s));
  EXPECT_EQ(take_seqs(sub, 3), range(6, 8));
  EXPECT_EQ(engine_.connects(thread), (std::vector<long long>{0, 5}));
  EXPECT_EQ(engine_.state_calls(), 0) << "the reconnect is the check: no GET state after a loss";
}

TEST_F(FollowTest, EngineOutageIsRiddenOutWithoutLimit) {
  auto& h = hub();
  const auto thread = live_thread();
  auto sub = subscribe(thread);
  engine_.append(thread, update(1));
  EXPECT_EQ(take_seqs(sub, 1), std::vector<long long>{1});
  engine_.set_unavailable(true);
  // Many failed reconnects (backoff capped at 100 ms here), and the subscriber is still waiting.
  ASSERT_TRUE(eventually([&] { return engine_.refused_streams() >= 8; }, 10s));
  EXPECT_FALSE(take(sub, 200ms).has_value()) << "nothing ends while the engine is away";
  // A connection the engine refuses says nothing new: the same engine is not asked GET state.
  EXPECT_EQ(engine_.state_calls(), 0);
  engine_.append(thread, update(2));
  engine_.append(thread, ev("end", {{"status", "completed"}}, 3));
  engine_.set_unavailable(false);
  EXPECT_EQ(take_seqs(sub, 2), range(2, 3));
  auto fin = take(sub);
  ASSERT_TRUE(fin);
  EXPECT_EQ(fin->kind, Item::Kind::ended);
  EXPECT_EQ(engine_.connects(thread).back(), 1);
  // The subscriber may see `ended` a moment before the follower has left the hub.
  EXPECT_TRUE(eventually([&] { return h.stats().followers == 0u; }));
}

TEST_F(FollowTest, ClosedStreamWithTerminalStateEndsFromTheState) {
  hub();
  const std::string thread = core::uuid4();
  ThreadScript s;
  s.events = {update(1), update(2)};  // closes normally without `end`
  s.state = json{{"thread_id", thread}, {"status", "completed"}, {"generated_files", json::object()}};
  engine_.set(thread, s);
  auto sub = subscribe(thread);
  EXPECT_EQ(take_seqs(sub, 2), range(1, 2));
  auto fin = take(sub);
  ASSERT_TRUE(fin);
  EXPECT_EQ(fin->kind, Item::Kind::ended);
  ASSERT_TRUE(fin->state);
  EXPECT_EQ(fin->state->at("status"), "completed");
  EXPECT_EQ(engine_.connects(thread), (std::vector<long long>{0, 2})) << "one more connection for missed events";
}

TEST_F(FollowTest, SilentStreamIsCheckedAfterTheQuietPeriod) {
  auto o = fast();
  o.quiet_period = 150ms;
  hub(o);
  const auto thread = live_thread(2);
  auto sub = subscribe(thread);
  EXPECT_EQ(take_seqs(sub, 2), range(1, 2));
  // The engine finished the run but this stream never delivers `end` (a replica that went silent).
  engine_.set_state(thread, json{{"thread_id", thread}, {"status", "failed"}, {"error", "model unreachable"}});
  auto fin = take(sub, 5s);
  ASSERT_TRUE(fin);
  EXPECT_EQ(fin->kind, Item::Kind::ended);
  ASSERT_TRUE(fin->state);
  EXPECT_EQ(fin->state->at("error"), "model unreachable");
  EXPECT_GE(engine_.connects(thread).size(), 2u) << "it reconnected with after_seq before giving up on `end`";
  EXPECT_EQ(engine_.connects(thread).back(), 2);
}

// A run waiting for a slot on the engine is silent for as long as it waits: the quiet-period
// probes back off (doubling up to 8 quiet periods) instead of polling once per quiet period.
TEST_F(FollowTest, QueuedThreadIsProbedLessAndLessOften) {
  auto o = fast();
  o.quiet_period = 100ms;
  hub(o);
  const auto thread = live_thread(0);
  engine_.set_state(thread, json{{"thread_id", thread}, {"status", "queued"}});
  auto sub = subscribe(thread);
  // Without the back-off: one probe per 100 ms (~20). With it: at 0.2, 0.6, 1.4 s after the
  // first (waits of 2, 4, 8 quiet periods), then every 0.8 s.
  int total = 0;
  const int probes = probes_after_first(2000ms, total);
  EXPECT_GE(probes, 2) << "a queued thread is still checked";
  EXPECT_LE(probes, 6) << "a queued thread is not checked every quiet period";
  // Once the engine says it runs, the checks are back at one per quiet period.
  engine_.set_state(thread, json{{"thread_id", thread}, {"status", "running"}});
  EXPECT_GE(probes_after_next(total, 1000ms), 3) << "a running thread's silence is checked every quiet period";
}

// An engine too busy to answer GET state (a probe that times out or is refused) is asked less
// and less often too: a failed probe doubles the wait like a queued answer.
TEST_F(FollowTest, FailedProbesBackOff) {
  auto o = fast();
  o.quiet_period = 100ms;
  hub(o);
  const auto thread = live_thread(0);
  engine_.set_state_unavailable(true);
  auto sub = subscribe(thread);
  int total = 0;
  const int probes = probes_after_first(2000ms, total);
  EXPECT_GE(probes, 2) << "the thread is still checked";
  EXPECT_LE(probes, 6) << "a failing engine is not asked every quiet period";
  EXPECT_FALSE(take(sub, 100ms).has_value()) << "failed probes end nothing";
  // Once the engine answers (running), the checks are back at one per quiet period.
  engine_.set_state_unavailable(false);
  EXPECT_GE(probes_after_next(total, 1000ms), 3) << "an answering engine's silent thread is checked every quiet period";
}

// The engine pings a silent stream with the thread's status after each of its own checks: while
// those pings come the follower asks nothing (10,000 queued threads would otherwise each probe a
// busy engine); when they stop, the quiet-period check is back.
TEST_F(FollowTest, EngineStatusPingsStandInForTheSilenceCheck) {
  auto o = fast();
  o.quiet_period = 500ms;  // pings every 100 ms: five per quiet period
  hub(o);
  const auto thread = live_thread(0);
  engine_.set_state(thread, json{{"thread_id", thread}, {"status", "queued"}});
  engine_.set_ping_status(thread, "queued");
  auto sub = subscribe(thread);
  ASSERT_TRUE(eventually([&] { return engine_.open_streams(thread) == 1; }));
  std::this_thread::sleep_for(2000ms);  // without the pings: a probe within 1 s (phase + quiet)
  EXPECT_EQ(engine_.state_calls(), 0) << "a stream that says its thread is queued is not probed";
  engine_.set_ping_status(thread, "");
  EXPECT_TRUE(eventually([&] { return engine_.state_calls() >= 1; }, 3s)) << "a silent stream without pings is probed";
  EXPECT_EQ(engine_.connects(thread).size(), 1u) << "the pings never broke the stream";
}

TEST_F(FollowTest, ThreadTheEngineForgotIsGone) {
  hub();
  const std::string thread = core::uuid4();
  auto sub = subscribe(thread);
  auto fin = take(sub);
  ASSERT_TRUE(fin);
  EXPECT_EQ(fin->kind, Item::Kind::gone);
  EXPECT_NE(fin->reason.find("no longer knows thread " + thread), std::string::npos) << fin->reason;
  EXPECT_EQ(engine_.state_calls(), 0) << "a 404 handshake already says gone";
}

TEST_F(FollowTest, EventsWithoutSeqAreNumberedByPosition) {
  hub();
  const std::string thread = core::uuid4();
  ThreadScript s;
  s.events = {ev("on_state_update", {{"files", {{"/a.md", {{"content", {"x"}}}}}}}), ev("on_llm_stream", {}),
              ev("end", json::object())};
  s.drop_after = {1};
  s.state = json{{"thread_id", thread}, {"status", "running"}};
  engine_.set(thread, s);
  auto sub = subscribe(thread);
  auto a = take(sub);
  ASSERT_TRUE(a && a->kind == Item::Kind::event);
  EXPECT_EQ(a->event->seq, 1);
  ASSERT_TRUE(a->event->has_files);
  EXPECT_TRUE(orchestrator::follow::files_of(*a->event)->contains("/a.md"));
  EXPECT_EQ(take_seqs(sub, 2), range(2, 3));
  EXPECT_EQ(engine_.connects(thread), (std::vector<long long>{0, 1}));
}

TEST_F(FollowTest, LastSubscriberLeavingStopsTheUpstream) {
  auto& h = hub();
  const auto thread = live_thread(1);
  auto a = subscribe(thread);
  auto b = subscribe(thread);
  EXPECT_EQ(take_seqs(a, 1), std::vector<long long>{1});
  ASSERT_TRUE(eventually([&] { return engine_.open_streams(thread) == 1; }));
  a.reset();
  EXPECT_EQ(h.stats().followers, 1u);
  b.reset();
  // The subscription may outlive the caller's reference for a moment (a wake-up in flight holds it).
  EXPECT_TRUE(eventually([&] { return h.stats().followers == 0u; })) << "the follower is dropped";
  EXPECT_TRUE(eventually([&] { return engine_.open_streams(thread) == 0; })) << "upstream closed";
  // A new subscriber starts a new follower.
  auto c = subscribe(thread);
  EXPECT_EQ(take_seqs(c, 1), std::vector<long long>{1});
  EXPECT_EQ(engine_.connects(thread).size(), 2u);
}

TEST_F(FollowTest, StopEndsEverySubscription) {
  auto& h = hub();
  const auto thread = live_thread();
  auto sub = subscribe(thread);
  ASSERT_TRUE(eventually([&] { return engine_.open_streams(thread) == 1; }));
  h.stop();
  auto fin = take(sub);
  ASSERT_TRUE(fin);
  EXPECT_EQ(fin->kind, Item::Kind::stopped);
  auto after = subscribe(thread);
  auto fin2 = take(after);
  ASSERT_TRUE(fin2);
  EXPECT_EQ(fin2->kind, Item::Kind::stopped);
}
