// Replica links against the real services: PostgreSQL LISTEN/NOTIFY (TEST_PG_URL) and NATS
// (TEST_NATS_URL); each skips without its service.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <thread>

#include <soci/soci.h>

#include "core/util.hpp"
#include "spec_engine/bus/event_hub.hpp"
#include "spec_engine/bus/nats_bus.hpp"
#include "spec_engine/bus/nats_link.hpp"
#include "spec_engine/bus/pg_link.hpp"
#include "../test_db.hpp"

namespace {

using namespace std::chrono_literals;
using spec_engine::bus::EventHub;
using spec_engine::store::EventRecord;

/// Polls `pred` for up to `t`.
template <class P>
bool eventually(P pred, std::chrono::milliseconds t = 5000ms) {
  const auto deadline = std::chrono::steady_clock::now() + t;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

/// Threads of this process (proc(5): /proc/self/status "Threads:").
long thread_count() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("Threads:", 0) == 0) return std::stol(line.substr(8));
  }
  return -1;
}

/// Collects remote deletes.
struct Deletes {
  std::mutex mu;
  std::vector<std::string> ids;
  std::function<void(const std::string&)> hook() {
    return [this](const std::string& id) {
      std::lock_guard lk(mu);
      ids.push_back(id);
    };
  }
  std::vector<std::string> get() {
    std::lock_guard lk(mu);
    return ids;
  }
};

TEST(PgLink, NotifiesOtherReplicasAtCommitAndCarriesDeletes) {
  if (!spec_engine::testing::pg_configured()) GTEST_SKIP() << "TEST_PG_URL not set";
  auto tdb = spec_engine::testing::make_postgres();
  spec_engine::store::Store store(*tdb->db);
  core::async::Runtime rt({1, 1, "pg-link-test"});
  EventHub hub_a, hub_b;
  Deletes del_a, del_b;
  spec_engine::bus::PgLink a({tdb->url, "a"}, store, hub_a, del_a.hook());
  spec_engine::bus::PgLink b({tdb->url, "b"}, store, hub_b, del_b.hook());
  a.start();
  b.start();
  ASSERT_TRUE(eventually([&] { return a.listening() && b.listening(); }));
  EXPECT_EQ(b.health(), "ok");
  auto sub_a = hub_a.subscribe("t", rt.executor());
  auto sub_b = hub_b.subscribe("t", rt.executor());

  spec_engine::store::ThreadRecord r;
  r.thread_id = r.job_id = "t";
  r.agent_definition = nlohmann::json::object();
  r.owner = "a";
  ASSERT_TRUE(store.create_thread(r, 60s));
  store.write_batch({{1, spec_engine::store::EventWrite{EventRecord{"t", 1, "e", {}, "ts"}}},
                     {1, spec_engine::store::EventWrite{EventRecord{"t", 2, "e", {}, "ts"}}}},
                    "a");
  std::int64_t seen = 0;
  ASSERT_TRUE(eventually([&] {
    seen = std::max(seen, sub_b->take().stored_up_to);
    return seen == 2;
  }));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(sub_a->take().stored_up_to, 0);  // a replica ignores its own notifications

  a.send_delete("t");
  ASSERT_TRUE(eventually([&] { return del_b.get() == std::vector<std::string>{"t"}; }));
  EXPECT_TRUE(del_a.get().empty());

  // The listener's connection dies: it reconnects, and every stream re-reads the table.
  {
    soci::session sql(tdb->db->pool());
    sql << "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'spec-engine-listener'";
  }
  ASSERT_TRUE(eventually([&] { return sub_b->take().overflow; }, 15000ms));
  ASSERT_TRUE(eventually([&] { return b.listening(); }));
  b.stop();
  a.stop();
  EXPECT_NE(b.health(), "ok");
}

/// NATS settings of replica `who` in a test named `name`: a job stream, subjects and consumer of
/// its own (`tag` is fresh per test run, so reruns on one server never share them).
spec_engine::bus::NatsOptions link_bus(const char* url, const std::string& name, const std::string& tag,
                                       const std::string& who) {
  spec_engine::bus::NatsOptions o;
  o.url = url;
  o.stream = "T_" + name + "_" + tag + "_" + who;
  o.subjects = "agent.execute." + name + tag + who + ".*";
  o.consumer = "c-" + name + "-" + tag + "-" + who;
  return o;
}

TEST(NatsLink, EventsReachWatchingReplicasAndDeletesReachAllOthers) {
  const char* url = std::getenv("TEST_NATS_URL");
  if (url == nullptr || *url == '\0') GTEST_SKIP() << "TEST_NATS_URL not set";
  const std::string tag = core::random_hex(4);
  spec_engine::bus::NatsBus nats_a(link_bus(url, "LINK", tag, "a")), nats_b(link_bus(url, "LINK", tag, "b"));
  nats_a.connect();
  nats_b.connect();
  core::async::Runtime rt({1, 1, "nats-link-test"});
  EventHub hub_a, hub_b;
  Deletes del_a, del_b;
  spec_engine::bus::NatsLinkOptions lo;
  lo.events_prefix = "spec.events." + tag + ".";
  lo.control_prefix = "spec.control." + tag + ".";
  spec_engine::bus::NatsLink a(nats_a, hub_a, del_a.hook(), lo), b(nats_b, hub_b, del_b.hook(), lo);
  hub_b.set_watch_hooks([&](const std::string& id) { b.watch(id); }, [&](const std::string& id) { b.unwatch(id); });
  a.start();
  b.start();
  EXPECT_EQ(a.health(), "ok");
  auto sub = hub_b.subscribe("t.1", rt.executor());  // a "." in the id becomes "_" in the subject
  std::this_thread::sleep_for(200ms);  // the subscription reaches the server
  a.published({EventRecord{"t.1", 1, "on_state_update", {{"k", "v"}}, "ts"}, EventRecord{"other", 1, "e", {}, "ts"},
               EventRecord{"t.1", 2, "end", {{"status", "completed"}}, "ts"}});
  std::vector<spec_engine::bus::Frame> frames;
  ASSERT_TRUE(eventually([&] {
    for (auto& f : sub->take().events) frames.push_back(f);
    return frames.size() >= 2;
  }));
  EXPECT_EQ(frames[0].seq, 1);
  EXPECT_EQ(frames[1].event_type, "end");
  EXPECT_EQ(nlohmann::json::parse(*frames[0].text)["data"]["k"], "v");

  // A message nested deeper than the bounded parser allows (core/json_parse.hpp) is not handed
  // to the streams; the next event on the subject still is (NATS keeps one publisher's order).
  const std::string subject = spec_engine::bus::status_subject(lo.events_prefix, "t.1");
  const std::string deep = std::string(200, '[') + std::string(200, ']');
  ASSERT_TRUE(nats_a.publish(subject, R"({"seq": 3, "event_type": "e", "data": )" + deep + "}"));
  ASSERT_TRUE(nats_a.publish(subject, R"({"seq": 4, "event_type": "e", "data": {}})"));
  frames.clear();
  ASSERT_TRUE(eventually([&] {
    for (auto& f : sub->take().events) frames.push_back(f);
    return !frames.empty();
  }));
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].seq, 4);
  hub_b.unsubscribe(sub);  // unwatch: nothing more arrives
  auto sub2 = hub_b.subscribe("other", rt.executor());
  std::this_thread::sleep_for(200ms);
  a.send_delete("t.1");
  ASSERT_TRUE(eventually([&] { return del_b.get() == std::vector<std::string>{"t.1"}; }));
  EXPECT_TRUE(del_a.get().empty());  // no echo
  b.stop();
  a.stop();
  nats_a.close(1000ms);
  nats_b.close(1000ms);
}

// A replica watches a thread's subject for every thread it streams (thousands under load): the
// subscriptions share cnats' delivery pool instead of starting a delivery thread each, so the
// engine's thread count stays independent of its streams (docs/event-path-and-replicas.md).
TEST(NatsLink, WatchingManyThreadsStartsNoThreadPerThread) {
  const char* url = std::getenv("TEST_NATS_URL");
  if (url == nullptr || *url == '\0') GTEST_SKIP() << "TEST_NATS_URL not set";
  const std::string tag = core::random_hex(4);
  spec_engine::bus::NatsBus nats_a(link_bus(url, "MANY", tag, "a")), nats_b(link_bus(url, "MANY", tag, "b"));
  nats_a.connect();
  nats_b.connect();
  core::async::Runtime rt({1, 1, "nats-many-test"});
  EventHub hub_b;
  Deletes del_a, del_b;
  spec_engine::bus::NatsLinkOptions lo;
  lo.events_prefix = "spec.events." + tag + ".";
  lo.control_prefix = "spec.control." + tag + ".";
  EventHub hub_a;
  spec_engine::bus::NatsLink a(nats_a, hub_a, del_a.hook(), lo), b(nats_b, hub_b, del_b.hook(), lo);
  hub_b.set_watch_hooks([&](const std::string& id) { b.watch(id); }, [&](const std::string& id) { b.unwatch(id); });
  a.start();
  b.start();
  std::this_thread::sleep_for(200ms);
  const long before = thread_count();
  constexpr int kThreads = 200;
  std::vector<std::shared_ptr<spec_engine::bus::Subscription>> subs;
  for (int i = 0; i < kThreads; ++i) subs.push_back(hub_b.subscribe("many-" + std::to_string(i), rt.executor()));
  std::this_thread::sleep_for(300ms);  // the subscriptions reach the server
  a.published({EventRecord{"many-0", 1, "on_state_update", {{"k", "first"}}, "ts"},
               EventRecord{"many-199", 1, "on_state_update", {{"k", "last"}}, "ts"}});
  std::vector<spec_engine::bus::Frame> first, last;
  ASSERT_TRUE(eventually([&] {
    for (auto& f : subs.front()->take().events) first.push_back(f);
    for (auto& f : subs.back()->take().events) last.push_back(f);
    return !first.empty() && !last.empty();
  }));
  EXPECT_EQ(nlohmann::json::parse(*last[0].text)["data"]["k"], "last");
  const long during = thread_count();
  EXPECT_LT(during - before, 8) << kThreads << " watched threads started " << during - before << " OS threads";
  for (auto& s : subs) hub_b.unsubscribe(s);
  b.stop();
  a.stop();
  nats_a.close(1000ms);
  nats_b.close(1000ms);
}

}  // namespace
