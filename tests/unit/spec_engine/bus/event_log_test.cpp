// EventLog over a real store (SQLite, and PostgreSQL with TEST_PG_URL): delta coalescing,
// numbering, group commit, checkpoint durability, fencing, publish after commit.
#include "spec_engine/bus/event_log.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <regex>
#include <thread>

#include <soci/soci.h>

#include "core/metrics.hpp"
#include "../store_fixture.hpp"

namespace {

using namespace std::chrono_literals;
using spec_engine::bus::Completion;
using spec_engine::bus::EventLog;
using spec_engine::bus::EventLogOptions;
using spec_engine::bus::Fenced;
using spec_engine::store::EventRecord;

/// spec_engine_event_batches_total{outcome=`outcome`} in the global registry.
double batches(const std::string& outcome) {
  const std::regex re("spec_engine_event_batches_total\\{outcome=\"" + outcome + "\"\\} ([0-9.e+]+)");
  std::smatch m;
  const std::string text = core::metrics::global().render();
  return std::regex_search(text, m, re) ? std::stod(m[1]) : 0.0;
}

/// Sum of spec_engine_event_batches_total{outcome="ok"} in the global registry.
double ok_batches() { return batches("ok"); }

class EventLogTest : public spec_engine::testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    rt_.start();
  }
  /// Waits for the write `begin(done)` starts to be durable (bus::await_durable, the one way to
  /// wait for durability) from this test's thread; rethrows its error.
  void durable(std::function<void(Completion)> begin) {
    auto wait = spec_engine::bus::await_durable(std::move(begin));
    rt_.run_sync(std::move(wait));
  }
  std::unique_ptr<EventLog> make(EventLogOptions o = {}) {
    return std::make_unique<EventLog>(*store_, [this](const std::vector<EventRecord>& evs) {
      // Published only after commit: every event is in the table already.
      for (const auto& e : evs) {
        const auto stored = store_->events_after(e.thread_id, e.seq - 1, 1);
        EXPECT_TRUE(!stored.empty() && stored[0].seq == e.seq) << "published before stored: " << e.seq;
      }
      std::lock_guard lk(mu_);
      for (const auto& e : evs) published_.push_back(e);
    }, o);
  }
  static nlohmann::json delta(const std::string& node, const std::string& text) {
    return {{"node", node}, {"delta", text}};
  }
  core::async::Runtime rt_{core::async::RuntimeOptions{1, 1, "event-log-test"}};
  std::mutex mu_;
  std::vector<EventRecord> published_;
};

TEST_P(EventLogTest, DeltasAreMergedAndFlushedBeforeAnyOtherEventLosingNothing) {
  create("t");
  EventLogOptions o;
  o.delta_flush = 10s;  // only "another event" flushes here
  auto log = make(o);
  log->start();
  auto run = log->open("t", 1, 0);
  std::string all;
  for (int i = 0; i < 20; ++i) {
    const std::string piece = "w" + std::to_string(i) + " ";
    all += piece;
    run->emit("on_llm_stream", delta("main", piece));
  }
  run->emit("on_llm_stream", delta("sub", "other node"));  // another node: its own event
  run->emit("on_tool_start", {{"tool", "ls"}});
  run->emit("on_llm_stream", delta("main", "tail"));
  durable([&](Completion d) { run->checkpoint({{"step", 1}}, std::move(d)); });
  auto events = store_->events_after("t", 0);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].event_type, "on_llm_stream");
  EXPECT_EQ(events[0].data["delta"], all);
  EXPECT_EQ(events[0].data["node"], "main");
  EXPECT_EQ(events[1].data["delta"], "other node");
  EXPECT_EQ(events[2].event_type, "on_tool_start");
  EXPECT_EQ(events[3].data["delta"], "tail");  // flushed by the checkpoint, which covers it
  for (std::size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].seq, static_cast<std::int64_t>(i + 1));
  log->stop(1s);
  std::lock_guard lk(mu_);
  ASSERT_EQ(published_.size(), 4u);
  EXPECT_EQ(published_[3].seq, 4);
}

TEST_P(EventLogTest, DeltasFlushAfterTheTimeLimitAndAtTheSizeLimit) {
  create("t");
  EventLogOptions o;
  o.delta_flush = 40ms;
  o.delta_flush_bytes = 100;
  auto log = make(o);
  log->start();
  auto run = log->open("t", 1, 0);
  run->emit("on_llm_stream", delta("n", "alone"));
  const auto t0 = std::chrono::steady_clock::now();
  while (store_->events_after("t", 0).empty() && std::chrono::steady_clock::now() - t0 < 5s)
    std::this_thread::sleep_for(5ms);
  ASSERT_EQ(store_->events_after("t", 0).size(), 1u);  // flushed by time, no other event needed
  for (int i = 0; i < 30; ++i) run->emit("on_llm_stream", delta("n", std::string(10, 'x')));  // 300 bytes
  log->stop(1s);
  auto events = store_->events_after("t", 0);
  std::string text;
  for (std::size_t i = 1; i < events.size(); ++i) {
    EXPECT_LE(events[i].data["delta"].get<std::string>().size(), 100u);
    text += events[i].data["delta"].get<std::string>();
  }
  EXPECT_EQ(text, std::string(300, 'x'));
  EXPECT_GE(events.size(), 4u);  // 100-byte pieces
}

TEST_P(EventLogTest, ManyRunsShareFewTransactions) {
  constexpr int kRuns = 20, kEvents = 10;
  for (int r = 0; r < kRuns; ++r) create("r" + std::to_string(r));
  auto log = make();
  std::vector<std::shared_ptr<EventLog::Run>> runs;
  for (int r = 0; r < kRuns; ++r) runs.push_back(log->open("r" + std::to_string(r), 1, 0));
  for (int i = 0; i < kEvents; ++i)
    for (auto& run : runs) run->emit("on_state_update", {{"i", i}});
  const double before = ok_batches();
  log->start();  // everything queued so far goes in one group commit
  log->stop(5s);
  EXPECT_LE(ok_batches() - before, 2.0);
  for (int r = 0; r < kRuns; ++r) {
    auto events = store_->events_after("r" + std::to_string(r), 0);
    ASSERT_EQ(events.size(), static_cast<std::size_t>(kEvents));
    for (int i = 0; i < kEvents; ++i) EXPECT_EQ(events[i].data["i"], i);
  }
}

// Group commit: a write waits until the oldest queued one has waited the window, then the
// writes of all runs go in one transaction; stopping commits at once. Fails with the window
// ignored (the first event is published at once, in a batch of its own).
TEST_P(EventLogTest, GroupCommitWaitsForTheWindowThenCommitsAllRunsTogether) {
  create("g1");
  create("g2");
  EventLogOptions o;
  o.group_commit = 800ms;
  auto log = make(o);
  log->start();
  auto a = log->open("g1", 1, 0);
  auto b = log->open("g2", 1, 0);
  const double before = ok_batches();
  const auto t0 = std::chrono::steady_clock::now();
  a->emit("on_state_update", {{"i", 1}});
  b->emit("on_state_update", {{"i", 2}});
  const auto published = [this] {
    std::lock_guard lk(mu_);
    return published_.size();
  };
  while (published() < 2 && std::chrono::steady_clock::now() - t0 < 10s) std::this_thread::sleep_for(5ms);
  const auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_EQ(published(), 2u);
  EXPECT_GE(waited, 790ms);
  EXPECT_EQ(ok_batches() - before, 1.0);

  a->emit("on_state_update", {{"i", 3}});
  const auto t1 = std::chrono::steady_clock::now();
  log->stop(5s);  // does not wait for the window
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 700ms);
  EXPECT_EQ(store_->events_after("g1", 0).size(), 2u);
}

TEST_P(EventLogTest, FinishStoresEndAndOutcomeTogether) {
  create("t");
  auto log = make();
  log->start();
  auto run = log->open("t", 1, 5);  // seq continues after 5
  run->emit("on_llm_stream", delta("n", "bye"));
  std::int64_t end_seq = 0;
  durable([&](Completion d) {
    end_seq = run->finish("failed", nullptr, {{"/f", "x"}}, "boom", std::nullopt, std::move(d));
  });
  EXPECT_EQ(end_seq, 7);
  auto t = store_->get_thread("t");
  EXPECT_EQ(t->status, "failed");
  EXPECT_EQ(t->error, "boom");
  EXPECT_EQ(t->last_seq, 7);
  auto events = store_->events_after("t", 0);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].event_type, "end");
  EXPECT_EQ(events[1].data, (nlohmann::json{{"status", "failed"}, {"error", "boom"}}));
  log->stop(1s);
}

TEST_P(EventLogTest, AFailingBatchIsRetriedUntilStoredLosingAndReorderingNothing) {
  create("t");
  EventLogOptions o;
  o.max_backoff = 100ms;
  auto log = make(o);
  log->start();
  auto run = log->open("t", 1, 0);
  // The database refuses every batch for a while: the events table is gone.
  soci::session admin(tdb_->db->pool());
  admin << "ALTER TABLE events RENAME TO events_away";
  const double errors_before = batches("error");
  run->emit("on_state_update", {{"step", 1}});
  run->emit("on_tool_start", {{"tool", "ls"}});
  const nlohmann::json state = {{"files", {{"/big.md", std::string(100000, 'x')}}}};
  std::promise<std::exception_ptr> stored;
  run->checkpoint(state, [&](std::exception_ptr e) { stored.set_value(e); });
  auto done = stored.get_future();
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (batches("error") < errors_before + 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_GE(batches("error"), errors_before + 2);  // tried more than once
  EXPECT_EQ(done.wait_for(0ms), std::future_status::timeout);
  EXPECT_FALSE(store_->latest_checkpoint("t"));  // nothing half-written, nothing published
  {
    std::lock_guard lk(mu_);
    EXPECT_TRUE(published_.empty());
  }
  run->emit("on_tool_end", {{"tool", "ls"}});  // queued behind the failing batch
  admin << "ALTER TABLE events_away RENAME TO events";
  ASSERT_EQ(done.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(done.get(), nullptr);
  log->stop(5s);
  const auto events = store_->events_after("t", 0);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].event_type, "on_state_update");
  EXPECT_EQ(events[1].event_type, "on_tool_start");
  EXPECT_EQ(events[2].event_type, "on_tool_end");
  for (std::size_t i = 0; i < events.size(); ++i) EXPECT_EQ(events[i].seq, static_cast<std::int64_t>(i + 1));
  EXPECT_EQ(*store_->latest_checkpoint("t"), state);  // the retried write is the whole write
  std::lock_guard lk(mu_);
  ASSERT_EQ(published_.size(), 3u);
  EXPECT_EQ(published_[2].event_type, "on_tool_end");
}

TEST_P(EventLogTest, UsageFollowsTheCheckpointsThenTheOutcome) {
  create("t");
  auto log = make();
  log->start();
  auto run = log->open("t", 1, 0);
  EXPECT_EQ(store_->get_thread("t")->to_state_json()["usage"],
            (nlohmann::json{{"input_tokens", 0}, {"output_tokens", 0}}));
  durable([&](Completion d) { run->checkpoint({{"step", 1}, {"tokens", {{"prompt", 120}, {"completion", 30}}}}, std::move(d)); });
  EXPECT_EQ(store_->get_thread("t")->usage.input_tokens, 120);
  EXPECT_EQ(store_->get_thread("t")->usage.output_tokens, 30);
  // The run's outcome carries its final usage (a last model call after the last checkpoint).
  durable([&](Completion d) {
    run->finish("failed", nullptr, {}, "token limit reached", spec_engine::runtime::TokenUsage{300, 45}, std::move(d));
  });
  auto t = store_->get_thread("t");
  EXPECT_EQ(t->to_state_json()["usage"], (nlohmann::json{{"input_tokens", 300}, {"output_tokens", 45}}));
  log->stop(1s);
  // Read back by a fresh store (a restarted engine) the usage is the same.
  spec_engine::store::Store again(*tdb_->db);
  EXPECT_EQ(again.get_thread("t")->usage.input_tokens, 300);
}

TEST_P(EventLogTest, EventsAndCheckpointsGivenAsTextAreStoredAndPublishedAsGiven) {
  create("t");
  EventLogOptions o;
  o.delta_flush = 10s;
  auto log = make(o);
  log->start();
  auto run = log->open("t", 1, 0);
  // Texts as the runtime splices them (members sorted, compact); a delta before them is
  // flushed first and keeps its place.
  const auto data = std::make_shared<const std::string>(R"({"files":{"/a.md":{"content":["x \"q\""]}},"step":1})");
  const auto state =
      std::make_shared<const std::string>(R"({"files":{},"step":1,"tokens":{"completion":2,"prompt":7}})");
  run->emit("on_llm_stream", delta("main", "before"));
  run->emit_text("on_state_update", data);
  durable([&](Completion d) { run->checkpoint_text(state, spec_engine::runtime::TokenUsage{7, 2}, std::move(d)); });
  auto events = store_->events_after("t", 0);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].data["delta"], "before");
  EXPECT_EQ(events[1].seq, 2);
  EXPECT_EQ(events[1].event_type, "on_state_update");
  EXPECT_EQ(spec_engine::store::dump_json(events[1].data), *data);
  auto cp = store_->latest_checkpoint("t");
  ASSERT_TRUE(cp);
  EXPECT_EQ(spec_engine::store::dump_json(*cp), *state);
  EXPECT_EQ(store_->get_thread("t")->usage.input_tokens, 7);
  EXPECT_EQ(store_->get_thread("t")->usage.output_tokens, 2);
  log->stop(1s);
  std::lock_guard lk(mu_);
  ASSERT_EQ(published_.size(), 2u);
  EXPECT_TRUE(published_[1].data.is_null());  // the text is never parsed on the write path
  EXPECT_EQ(published_[1].to_text(), R"({"data":)" + *data +
                                         R"(,"event_type":"on_state_update","seq":2,"thread_id":"t","ts":")" +
                                         published_[1].ts + R"("})");
  EXPECT_EQ(published_[1].to_json()["data"]["step"], 1);
}

TEST_P(EventLogTest, ARunWhoseThreadWasTakenOverIsFencedAndStopped) {
  create("t", "a");
  auto log = make();
  log->start();
  std::atomic<int> fenced_hook{0};
  auto run = log->open("t", 1, 0, [&] { ++fenced_hook; });
  run->emit("on_state_update", {{"step", 1}});
  durable([&](Completion d) { run->checkpoint({{"step", 1}}, std::move(d)); });
  // Another replica takes the thread over (its lease expired).
  ASSERT_EQ(store_->release_leases("a"), 1);
  auto won = store_->claim_expired("b", 60s, 1);
  ASSERT_EQ(won.size(), 1u);
  run->emit("on_state_update", {{"step", 2}});
  EXPECT_THROW(
      durable([&](Completion d) { run->checkpoint({{"step", 2}}, std::move(d)); }),
      Fenced);
  EXPECT_TRUE(run->fenced());
  // The writer marks the run fenced before it runs the hook, so a write refused in between can
  // reach the caller first.
  for (int i = 0; i < 500 && fenced_hook.load() == 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(fenced_hook, 1);
  run->emit("on_state_update", {{"step", 3}});  // dropped
  EXPECT_THROW(durable([&](Completion d) { run->finish("completed", {}, {}, "", std::nullopt, std::move(d)); }),
               Fenced);
  log->stop(1s);
  auto events = store_->events_after("t", 0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ((*store_->latest_checkpoint("t"))["step"], 1);
  EXPECT_EQ(store_->get_thread("t")->status, "queued");
}

TEST_P(EventLogTest, ALostRunsWritesDoNotFenceTheThreadsNewerRunInTheSameBatch) {
  create("t", "a", 0ms);
  std::this_thread::sleep_for(5ms);
  ASSERT_EQ(store_->claim_expired("a", 60s, 1).size(), 1u);  // this replica claimed it back: epoch 2
  auto log = make();
  std::atomic<int> old_hook{0}, new_hook{0};
  auto lost = log->open("t", 1, 0, [&] { ++old_hook; });
  auto current = log->open("t", 2, 0, [&] { ++new_hook; });
  // Queued before the writer starts, so all of them share its first batch.
  lost->emit("on_state_update", {{"run", "lost"}});
  current->emit("on_state_update", {{"run", "current"}});
  lost->emit("on_state_update", {{"run", "lost"}});
  log->start();
  durable([&](Completion d) { current->checkpoint({{"run", "current"}}, std::move(d)); });
  EXPECT_FALSE(current->fenced());
  EXPECT_TRUE(lost->fenced());
  EXPECT_EQ(old_hook, 1);
  EXPECT_EQ(new_hook, 0);
  log->stop(1s);
  const auto events = store_->events_after("t", 0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data["run"], "current");
  EXPECT_EQ((*store_->latest_checkpoint("t"))["run"], "current");
}

TEST_P(EventLogTest, DeletedThreadFencesItsRun) {
  create("t");
  auto log = make();
  log->start();
  std::promise<void> hook;
  auto run = log->open("t", 1, 0, [&] { hook.set_value(); });
  ASSERT_TRUE(store_->delete_thread("t"));
  run->emit("on_state_update", {});
  EXPECT_EQ(hook.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(store_->events_after("t", 0).empty());
  log->stop(1s);
}

TEST_P(EventLogTest, StopFlushesPendingDeltas) {
  create("t");
  EventLogOptions o;
  o.delta_flush = 60s;
  auto log = make(o);
  log->start();
  auto run = log->open("t", 1, 0);
  run->emit("on_llm_stream", delta("n", "pending"));
  log->stop(1s);
  auto events = store_->events_after("t", 0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].data["delta"], "pending");
  // After stop nothing is accepted, and completions say so.
  EXPECT_THROW(durable([&](Completion d) { run->checkpoint({}, std::move(d)); }),
               std::runtime_error);
}

TEST_P(EventLogTest, CoroutinesAwaitDurabilityWithoutBlocking) {
  create("t");
  auto log = make();
  log->start();
  auto& rt = rt_;
  auto run = log->open("t", 1, 0);
  auto body = [](std::shared_ptr<EventLog::Run> r) -> core::async::Task<int> {
    r->emit("on_state_update", {{"step", 1}});
    auto begin = [r](Completion d) { r->checkpoint({{"step", 1}}, std::move(d)); };
    auto wait = spec_engine::bus::await_durable(std::move(begin));  // named: GCC 12
    co_await std::move(wait);
    co_return 1;
  };
  EXPECT_EQ(rt.run_sync(body(run)), 1);
  EXPECT_EQ((*store_->latest_checkpoint("t"))["step"], 1);
  // A fenced write is rethrown in the coroutine.
  ASSERT_TRUE(store_->delete_thread("t"));
  auto fenced = [](std::shared_ptr<EventLog::Run> r) -> core::async::Task<int> {
    auto begin = [r](Completion d) { r->checkpoint({}, std::move(d)); };
    auto wait = spec_engine::bus::await_durable(std::move(begin));  // named: GCC 12
    try {
      co_await std::move(wait);
    } catch (const Fenced&) {
      co_return 2;
    }
    co_return 0;
  };
  EXPECT_EQ(rt.run_sync(fenced(run)), 2);
  log->stop(1s);
}

INSTANTIATE_TEST_SUITE_P(Dialects, EventLogTest, ::testing::ValuesIn(spec_engine::testing::dialects()),
                         [](const auto& info) { return info.param; });

}  // namespace
