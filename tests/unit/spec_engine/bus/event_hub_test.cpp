// EventHub: late subscribers get stored then live events, in order, no gap, no duplicate.
#include "spec_engine/bus/event_hub.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

namespace {

using spec_engine::bus::EventHub;
using spec_engine::store::EventRecord;

/// A fake store: events appended under a lock; the loader reads it.
struct FakeLog {
  std::mutex mu;
  std::vector<EventRecord> events;
  void append(const EventRecord& e) {
    std::lock_guard lk(mu);
    events.push_back(e);
  }
  std::vector<EventRecord> after(std::int64_t seq) {
    std::lock_guard lk(mu);
    std::vector<EventRecord> out;
    for (const auto& e : events) {
      if (e.seq > seq) out.push_back(e);
    }
    return out;
  }
};

EventRecord ev(std::int64_t seq, const std::string& type = "on_llm_stream") { return {"t", seq, type, {}, "ts"}; }

TEST(EventHub, ReplayThenLive) {
  EventHub hub;
  FakeLog log;
  for (int i = 1; i <= 3; ++i) log.append(ev(i));
  std::vector<std::int64_t> got;
  auto id = hub.subscribe("t", 0, [&](std::int64_t a) { return log.after(a); },
                          [&](const EventRecord& e) { got.push_back(e.seq); });
  for (int i = 4; i <= 6; ++i) {
    log.append(ev(i));
    hub.publish(ev(i));
  }
  EXPECT_EQ(got, (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(hub.last_delivered(id), 6);
  hub.unsubscribe(id);
  hub.publish(ev(7));
  EXPECT_EQ(got.size(), 6u);
  EXPECT_EQ(hub.subscriber_count(), 0u);
}

TEST(EventHub, AfterSeqSkipsOlder) {
  EventHub hub;
  FakeLog log;
  for (int i = 1; i <= 5; ++i) log.append(ev(i));
  std::vector<std::int64_t> got;
  hub.subscribe("t", 3, [&](std::int64_t a) { return log.after(a); },
                [&](const EventRecord& e) { got.push_back(e.seq); });
  EXPECT_EQ(got, (std::vector<std::int64_t>{4, 5}));
}

TEST(EventHub, EventsPublishedDuringReplayAreBufferedAndDeduplicated) {
  EventHub hub;
  FakeLog log;
  for (int i = 1; i <= 3; ++i) log.append(ev(i));
  std::vector<std::int64_t> got;
  // The loader runs while the publisher stores and publishes 3 (again), 4 and 5.
  auto loader = [&](std::int64_t a) {
    auto stored = log.after(a);  // sees 1..3
    hub.publish(ev(3));           // stored before, published late: duplicate
    log.append(ev(4));
    hub.publish(ev(4));
    log.append(ev(5));
    hub.publish(ev(5));
    return stored;
  };
  hub.subscribe("t", 0, loader, [&](const EventRecord& e) { got.push_back(e.seq); });
  EXPECT_EQ(got, (std::vector<std::int64_t>{1, 2, 3, 4, 5}));
}

TEST(EventHub, GapIsFilledFromTheStore) {
  EventHub hub;
  FakeLog log;
  std::vector<std::int64_t> got;
  hub.subscribe("t", 0, [&](std::int64_t a) { return log.after(a); },
                [&](const EventRecord& e) { got.push_back(e.seq); });
  log.append(ev(1));
  log.append(ev(2));
  log.append(ev(3));
  hub.publish(ev(3));  // 1 and 2 were stored but their publishes were lost
  EXPECT_EQ(got, (std::vector<std::int64_t>{1, 2, 3}));
}

TEST(EventHub, OtherThreadsAreNotDelivered) {
  EventHub hub;
  int n = 0;
  hub.subscribe("a", 0, nullptr, [&](const EventRecord&) { ++n; });
  hub.publish({"b", 1, "x", {}, ""});
  EXPECT_EQ(n, 0);
  EXPECT_EQ(hub.subscriber_count("a"), 1u);
}

TEST(EventHub, DropThreadCallsOnDrop) {
  EventHub hub;
  int dropped = 0, got = 0;
  hub.subscribe("t", 0, nullptr, [&](const EventRecord&) { ++got; }, [&] { ++dropped; });
  hub.drop_thread("t");
  hub.publish(ev(1));
  EXPECT_EQ(dropped, 1);
  EXPECT_EQ(got, 0);
  EXPECT_EQ(hub.subscriber_count("t"), 0u);
}

TEST(EventHub, CatchUpDeliversWhatWasStoredLater) {
  EventHub hub;
  FakeLog log;
  std::vector<std::int64_t> got;
  auto id = hub.subscribe("t", 0, [&](std::int64_t a) { return log.after(a); },
                          [&](const EventRecord& e) { got.push_back(e.seq); });
  log.append(ev(1));
  log.append(ev(2, "end"));
  hub.catch_up(id);
  hub.publish(ev(2, "end"));  // duplicate of the caught-up one
  EXPECT_EQ(got, (std::vector<std::int64_t>{1, 2}));
}

TEST(EventHub, ManyLateSubscribersUnderConcurrentPublishing) {
  EventHub hub;
  FakeLog log;
  constexpr int kEvents = 2000;
  std::atomic<bool> go{false};
  std::thread publisher([&] {
    while (!go) std::this_thread::yield();
    for (int i = 1; i <= kEvents; ++i) {
      log.append(ev(i));
      hub.publish(ev(i));
    }
  });
  std::vector<std::vector<std::int64_t>> got(8);
  std::vector<std::thread> subs;
  go = true;
  for (int s = 0; s < 8; ++s) {
    subs.emplace_back([&, s] {
      std::this_thread::sleep_for(std::chrono::microseconds(150 * s));
      hub.subscribe("t", 0, [&](std::int64_t a) { return log.after(a); },
                    [&, s](const EventRecord& e) { got[s].push_back(e.seq); });
    });
  }
  publisher.join();
  for (auto& t : subs) t.join();
  for (int s = 0; s < 8; ++s) {
    ASSERT_EQ(got[s].size(), static_cast<std::size_t>(kEvents)) << "subscriber " << s;
    for (int i = 0; i < kEvents; ++i) ASSERT_EQ(got[s][i], i + 1);
  }
}

}  // namespace

namespace {

/// Events of FakeLog after `seq`, at most `limit` (0 = all), as Store::events_after pages them.
std::vector<EventRecord> page_of(FakeLog& log, std::int64_t seq, std::size_t limit) {
  auto all = log.after(seq);
  if (limit > 0 && all.size() > limit) all.resize(limit);
  return all;
}

}  // namespace

// Paged replay: a long history arrives completely and in order, one page at a time, paced by
// the subscriber, while the run keeps publishing; the hand-off to live has no gap or duplicate.
TEST(EventHub, PagedReplayOfLongHistoryWithConcurrentPublishes) {
  EventHub hub;
  FakeLog log;
  constexpr int kStored = 3000;
  constexpr int kTotal = 4000;
  for (int i = 1; i <= kStored; ++i) log.append(ev(i));
  std::vector<std::int64_t> got;
  std::atomic<int> paced{0};
  std::atomic<std::size_t> biggest_page{0};
  std::thread publisher([&] {
    for (int i = kStored + 1; i <= kTotal; ++i) {
      log.append(ev(i));  // stored before published, as the run does
      hub.publish(ev(i));
      if (i % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  auto loader = [&](std::int64_t a, std::size_t limit) {
    auto p = page_of(log, a, limit);
    if (limit != 0) biggest_page = std::max(biggest_page.load(), p.size());
    return p;
  };
  hub.subscribe_paged("t", 0, loader, [&](const EventRecord& e) { got.push_back(e.seq); },
                      [&] {
                        ++paced;
                        return true;
                      },
                      64);
  publisher.join();
  ASSERT_EQ(got.size(), static_cast<std::size_t>(kTotal));
  for (int i = 0; i < kTotal; ++i) ASSERT_EQ(got[static_cast<std::size_t>(i)], i + 1) << "position " << i;
  EXPECT_LE(biggest_page.load(), 64u);
  EXPECT_GE(paced.load(), kStored);
}

TEST(EventHub, PagedReplayStopsWhenPacerGivesUp) {
  EventHub hub;
  FakeLog log;
  for (int i = 1; i <= 100; ++i) log.append(ev(i));
  std::vector<std::int64_t> got;
  int calls = 0;
  auto id = hub.subscribe_paged(
      "t", 0, [&](std::int64_t a, std::size_t limit) { return page_of(log, a, limit); },
      [&](const EventRecord& e) { got.push_back(e.seq); }, [&] { return ++calls <= 10; }, 8);
  EXPECT_EQ(got.size(), 10u);
  log.append(ev(101));
  hub.publish(ev(101));
  EXPECT_EQ(got.size(), 10u);  // abandoned: nothing more
  hub.unsubscribe(id);
  EXPECT_EQ(hub.subscriber_count("t"), 0u);
}
