// RunManager with a fake runtime over the real EventLog and store: events/seq/end, idempotency,
// queue bound, cancellation by delete, takeover of claimed threads, lost leases, shutdown; runs
// are coroutines on a core::async::Runtime (many more runs than threads).
#include "spec_engine/bus/run_manager.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "../store_fixture.hpp"
#include "../test_host.hpp"

namespace {

using namespace std::chrono_literals;
using spec_engine::bus::EventLog;
using spec_engine::bus::Job;
using spec_engine::bus::RunManager;
using spec_engine::bus::RunManagerOptions;
using spec_engine::bus::SubmitOutcome;
using spec_engine::runtime::RunLimits;
using spec_engine::runtime::ModelSettings;
using spec_engine::runtime::RunEnv;
using spec_engine::runtime::RunObserver;
using spec_engine::runtime::RunRequest;
using spec_engine::runtime::RunResult;
using Task = core::async::Task<RunResult>;

Job job(const std::string& id) {
  Job j;
  j.job_id = id;
  j.trace_id = "tr-" + id;
  j.agent_definition = {{"graph", {{"entryPoint", "a"}}}};
  j.input_payload = {{"messages", "go"}};
  return j;
}

/// Waits without a thread (like a run waiting for its model) until `release` or the run's stop.
core::async::Task<void> wait_for_release(const std::atomic<bool>& release, const RunEnv& env) {
  while (!release && !env.stop.stop_requested()) {
    auto pause = core::async::sleep_for(10ms, env.stop);  // named: GCC 12 (see run.cpp)
    co_await std::move(pause);
  }
}

/// An ExecuteFn whose runs wait without a thread until `release` (then "completed") or their
/// stop token (then "cancelled").
spec_engine::bus::ExecuteFn runs_held_until(std::atomic<bool>& release) {
  return [&release](const RunRequest&, const RunLimits&, const ModelSettings&, RunObserver&, RunEnv& env) -> Task {
    auto wait = wait_for_release(release, env);
    co_await std::move(wait);
    RunResult r;
    r.status = env.stop.stop_requested() ? "cancelled" : "completed";
    co_return r;
  };
}

/// Waits without a thread until the run's stop token fires (like a model call that never ends).
core::async::Task<void> wait_for_stop(const RunEnv& env) {
  core::async::Signal never(env.rt.executor());
  auto stopped = never.wait(env.stop);
  co_await std::move(stopped);
}

class RunManagerTest : public spec_engine::testing::StoreFixture {
 protected:
  void SetUp() override {
    StoreFixture::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    log_ = std::make_unique<EventLog>(*store_, [this](const auto& evs) { hub_.publish(evs); });
    log_->start();
  }
  void TearDown() override {
    if (log_) log_->stop(1s);
  }
  /// Options of a replica named `me`.
  static RunManagerOptions opts(const std::string& me = "me") {
    RunManagerOptions o;
    o.replica_id = me;
    return o;
  }
  /// A thread left by a dead replica: owned by "dead", lease expired, with `status`.
  void leave_dead(const std::string& id, const std::string& status) {
    spec_engine::store::ThreadRecord rec;
    rec.thread_id = rec.job_id = id;
    rec.agent_definition = {{"x", 1}};
    rec.owner = "dead";
    ASSERT_TRUE(store_->create_thread(rec, 0ms));
    ASSERT_TRUE(store_->set_status(id, status));
  }
  /// Claims every expired thread as `me`.
  std::vector<spec_engine::store::Claim> claim(const std::string& me = "me") {
    std::this_thread::sleep_for(5ms);
    return store_->claim_expired(me, 60s, 100);
  }
  /// Options with `runs` run slots and `queue` queue places.
  static RunManagerOptions slots(int runs, std::size_t queue) {
    RunManagerOptions o = opts();
    o.max_concurrent_runs = runs;
    o.max_queue = queue;
    return o;
  }
  /// A run manager on this test's runtime (declared after it, so it is shut down first).
  std::unique_ptr<RunManager> manager(RunManagerOptions o, spec_engine::bus::ExecuteFn exec) {
    return std::make_unique<RunManager>(*store_, *log_, hub_, std::move(o), host_.rt, host_.http, std::move(exec));
  }
  /// A started run manager whose run of thread `id` (submitted, and started on return) waits
  /// without a thread until its stop token fires, then ends "cancelled".
  std::unique_ptr<RunManager> manager_with_a_run_until_stopped(const std::string& id) {
    auto started = std::make_shared<std::atomic<bool>>(false);
    auto exec = [started](const RunRequest&, const RunLimits&, const ModelSettings&, RunObserver&,
                          RunEnv& env) -> Task {
      *started = true;
      auto stopped = wait_for_stop(env);
      co_await std::move(stopped);
      co_return RunResult{"cancelled", {}, {}, {}};
    };
    auto rm = manager(opts(), exec);
    rm->start();
    rm->submit(job(id));
    while (!*started) std::this_thread::sleep_for(1ms);
    return rm;
  }
  /// Waits (at most 5 s) until `rm` has no run in flight; returns how many are left.
  static std::size_t wait_no_runs(const RunManager& rm) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    while (rm.running() > 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(5ms);
    return rm.running();
  }
  /// Waits until the thread reaches a terminal status (or `want`); returns it.
  std::string wait_status(const std::string& id, const std::string& want = "", std::chrono::milliseconds t = 10s) {
    const auto deadline = std::chrono::steady_clock::now() + t;
    std::string s;
    while (std::chrono::steady_clock::now() < deadline) {
      auto rec = store_->get_thread(id);
      s = rec ? rec->status : "<gone>";
      if (want.empty() ? spec_engine::store::is_terminal(s) : s == want) return s;
      std::this_thread::sleep_for(10ms);
    }
    return s;
  }
  spec_engine::bus::EventHub hub_;
  std::unique_ptr<EventLog> log_;
  spec_engine::testing::Host host_{2, 2};
};

TEST_P(RunManagerTest, RunStoresEventsCheckpointAndEnd) {
  std::atomic<int> calls{0};
  auto exec = [&](const RunRequest& req, const RunLimits&, const ModelSettings&, RunObserver& obs, RunEnv&) -> Task {
    ++calls;
    EXPECT_FALSE(req.resume_from);
    EXPECT_EQ(req.input_payload["messages"], "go");
    obs.emit("on_llm_stream", {{"delta", "hi"}});
    const nlohmann::json state = {{"step", 1}};
    auto stored = obs.checkpoint(state);
    co_await std::move(stored);
    obs.emit("on_state_update", {{"files", {{"/a.md", {{"content", {"x"}}}}}}});
    RunResult r;
    r.status = "completed";
    r.result = {{"messages", {"done"}}};
    r.files = {{"/a.md", {{"content", {"x"}}}}};
    co_return r;
  };
  auto sub = hub_.subscribe("j1", host_.rt.executor());
  auto rm_ptr = manager(opts(), exec);
  auto& rm = *rm_ptr;
  rm.start();
  auto res = rm.submit(job("j1"));
  EXPECT_EQ(res.outcome, SubmitOutcome::started);
  EXPECT_EQ(wait_status("j1"), "completed");
  auto again = rm.submit(job("j1"));
  EXPECT_EQ(again.outcome, SubmitOutcome::existing);
  EXPECT_EQ(again.thread_status, "completed");
  rm.shutdown(1s);
  EXPECT_EQ(calls, 1);
  auto events = store_->events_after("j1", 0);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].seq, 1);
  EXPECT_EQ(events[2].event_type, "end");
  EXPECT_EQ(events[2].data["status"], "completed");
  auto t = store_->get_thread("j1");
  EXPECT_EQ(t->last_seq, 3);
  EXPECT_EQ(t->generated_files["/a.md"]["content"][0], "x");
  EXPECT_EQ(t->result["messages"][0], "done");
  EXPECT_TRUE(store_->latest_checkpoint("j1"));
  EXPECT_EQ(t->owner, "me");
  EXPECT_EQ(t->epoch, 1);
  // Published after commit, in order, to the local hub.
  std::vector<std::string> live;
  for (const auto& f : sub->take().events) live.push_back(f.event_type);
  EXPECT_EQ(live, (std::vector<std::string>{"on_llm_stream", "on_state_update", "end"}));
}

// Submits hold no lock across their SQL, yet concurrent ones never exceed the bounds: with 2 run
// slots and 3 queue places, 16 concurrent submits accept at most 5 and refuse the rest, and a job
// submitted twice at once is recorded once.
TEST_P(RunManagerTest, ConcurrentSubmitsNeverExceedTheBounds) {
  std::atomic<bool> release{false};
  auto exec = runs_held_until(release);
  auto rm_ptr = manager(slots(2, 3), exec);
  auto& rm = *rm_ptr;
  rm.start();
  std::mutex mu;
  std::map<SubmitOutcome, int> outcomes;
  std::vector<std::thread> threads;
  for (int i = 0; i < 16; ++i) {
    threads.emplace_back([&, i] {
      // Jobs 0 and 1 share an id: one of them is recorded, the other is "existing" (or refused).
      const auto r = rm.submit(job(i < 2 ? "twice" : "c" + std::to_string(i)));
      std::lock_guard lk(mu);
      ++outcomes[r.outcome];
    });
  }
  for (auto& t : threads) t.join();
  // Never more than 2 running and 3 queued; one fewer at most when the duplicate held a place
  // for a moment (between its check and finding the row) while the last place was asked for.
  EXPECT_LE(outcomes[SubmitOutcome::started], 5);
  EXPECT_GE(outcomes[SubmitOutcome::started], 4);
  EXPECT_LE(outcomes[SubmitOutcome::existing], 1);
  EXPECT_EQ(outcomes[SubmitOutcome::started] + outcomes[SubmitOutcome::existing] + outcomes[SubmitOutcome::queue_full],
            16);
  EXPECT_EQ(rm.queue_full(), outcomes[SubmitOutcome::started] == 5);
  release = true;
}

TEST_P(RunManagerTest, QueueBoundAndCancelByRemove) {
  std::atomic<bool> release{false};
  auto exec = runs_held_until(release);
  auto rm_ptr = manager(slots(1, 1), exec);
  auto& rm = *rm_ptr;
  rm.start();
  EXPECT_EQ(rm.submit(job("a")).outcome, SubmitOutcome::started);
  EXPECT_EQ(wait_status("a", "running"), "running");
  EXPECT_EQ(rm.submit(job("b")).outcome, SubmitOutcome::started);
  EXPECT_EQ(rm.submit(job("c")).outcome, SubmitOutcome::queue_full);
  EXPECT_FALSE(store_->get_thread("c"));  // nothing half-written
  EXPECT_TRUE(rm.queue_full());
  EXPECT_EQ(rm.submit(job("a")).outcome, SubmitOutcome::existing);  // duplicates never 429
  EXPECT_TRUE(rm.remove("a"));  // running: cancelled, then deleted
  EXPECT_FALSE(store_->get_thread("a"));
  EXPECT_TRUE(store_->events_after("a", 0).empty());
  EXPECT_FALSE(rm.remove("a"));
  release = true;
  EXPECT_EQ(wait_status("b"), "completed");
  rm.shutdown(1s);
}

TEST_P(RunManagerTest, RuntimeExceptionFailsTheRunWithReason) {
  auto exec = [&](const RunRequest&, const RunLimits&, const ModelSettings&, RunObserver&, RunEnv&) -> Task {
    throw std::logic_error("kaboom");
    co_return RunResult{};
  };
  auto rm_ptr = manager(opts(), exec);
  auto& rm = *rm_ptr;
  rm.start();
  rm.submit(job("x"));
  EXPECT_EQ(wait_status("x"), "failed");
  rm.shutdown(1s);
  auto t = store_->get_thread("x");
  EXPECT_NE(t->error.find("kaboom"), std::string::npos);
  auto events = store_->events_after("x", 0);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].event_type, "error");
  EXPECT_EQ(events[1].event_type, "end");
  EXPECT_EQ(events[1].data["status"], "failed");
  EXPECT_NE(events[1].data["error"].get<std::string>().find("kaboom"), std::string::npos);
}

TEST_P(RunManagerTest, ClaimedThreadsResumeFromTheirCheckpoint) {
  // A dead replica left "r" running with a checkpoint and two events, "q" queued.
  leave_dead("r", "running");
  store_->append_event({"r", 1, "on_state_update", {}, "ts"});
  store_->append_event({"r", 2, "on_llm_stream", {}, "ts"});
  store_->save_checkpoint("r", 2, {{"step", 7}});
  leave_dead("q", "queued");
  std::mutex mu;
  std::map<std::string, std::optional<nlohmann::json>> seen;
  auto exec = [&](const RunRequest& req, const RunLimits&, const ModelSettings&, RunObserver& obs, RunEnv&) -> Task {
    {
      std::lock_guard lk(mu);
      seen[req.thread_id] = req.resume_from;
    }
    obs.emit("on_state_update", {});
    RunResult r;
    r.status = "completed";
    co_return r;
  };
  auto rm_ptr = manager(slots(4, 64), exec);
  auto& rm = *rm_ptr;
  rm.start();
  EXPECT_EQ(rm.free_slots(), 4u);
  auto claims = claim();
  ASSERT_EQ(claims.size(), 2u);
  for (const auto& c : claims) rm.adopt(c);
  EXPECT_EQ(wait_status("r"), "completed");
  EXPECT_EQ(wait_status("q"), "completed");
  rm.shutdown(1s);
  std::lock_guard lk(mu);
  ASSERT_TRUE(seen["r"]);
  EXPECT_EQ((*seen["r"])["step"], 7);
  EXPECT_FALSE(seen["q"]);  // never checkpointed: starts from the beginning
  auto events = store_->events_after("r", 0);
  ASSERT_EQ(events.size(), 4u);  // seq continues after the stored ones
  EXPECT_EQ(events[2].seq, 3);
  EXPECT_EQ(events[3].event_type, "end");
  EXPECT_EQ(store_->get_thread("r")->epoch, 2);
}

TEST_P(RunManagerTest, RecoveryFailModeAndGiveUp) {
  leave_dead("r", "running");
  store_->save_checkpoint("r", 0, {{"files", {{"/f", {{"content", {"1"}}}}}}});
  RunManagerOptions o = opts();
  o.recovery = "fail";
  std::atomic<int> calls{0};
  auto never_called = [&](auto&, auto&, auto&, auto&, auto&) -> Task {
    ++calls;
    co_return RunResult{"completed", {}, {}, {}};
  };
  auto rm_ptr = manager(o, never_called);
  auto& rm = *rm_ptr;
  auto claims = claim();
  ASSERT_EQ(claims.size(), 1u);
  rm.adopt(claims[0]);  // never blocks: the failing is stored by a coroutine
  EXPECT_EQ(wait_status("r"), "failed");
  auto t = store_->get_thread("r");
  EXPECT_EQ(t->status, "failed");
  EXPECT_NE(t->error.find("restart"), std::string::npos);
  EXPECT_EQ(t->generated_files["/f"]["content"][0], "1");
  auto events = store_->events_after("r", 0);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].event_type, "error");
  EXPECT_EQ(events[1].event_type, "end");
  EXPECT_EQ(events[1].data["status"], "failed");
  EXPECT_EQ(calls, 0);

  // Resume mode gives up after max_recoveries claims.
  leave_dead("g", "running");
  RunManagerOptions r = opts();
  r.max_recoveries = 0;
  auto rm2 = manager(r, never_called);
  claims = claim();
  ASSERT_EQ(claims.size(), 1u);
  rm2->adopt(claims[0]);
  EXPECT_EQ(wait_status("g"), "failed");
  EXPECT_NE(store_->get_thread("g")->error.find("giving up"), std::string::npos);
  EXPECT_EQ(calls, 0);
}

TEST_P(RunManagerTest, ARunThatLostItsThreadStopsAndWritesNothingMore) {
  std::atomic<int> steps{0};
  auto exec = [&](const RunRequest&, const RunLimits&, const ModelSettings&, RunObserver& obs, RunEnv& env) -> Task {
    while (!env.stop.stop_requested()) {
      obs.emit("on_state_update", {{"step", steps.load()}});
      const nlohmann::json state = {{"step", ++steps}};
      auto stored = obs.checkpoint(state);  // throws Fenced once the thread is taken over
      co_await std::move(stored);
      auto pause = core::async::sleep_for(2ms, env.stop);
      co_await std::move(pause);
    }
    co_return RunResult{"cancelled", {}, {}, {}};
  };
  RunManagerOptions o = opts("a");
  o.lease_ttl = 1ms;  // expires at once: another replica may claim it
  auto rm_ptr = manager(o, exec);
  auto& rm = *rm_ptr;
  rm.start();
  rm.submit(job("t"));
  EXPECT_EQ(wait_status("t", "running"), "running");
  while (steps < 3) std::this_thread::sleep_for(1ms);
  auto claims = claim("b");
  ASSERT_EQ(claims.size(), 1u);
  EXPECT_EQ(claims[0].epoch, 2);
  // The next checkpoint of "a" is fenced: its run stops by itself (without the keeper).
  EXPECT_EQ(wait_no_runs(rm), 0u);
  const auto stored = store_->events_after("t", 0).size();
  std::this_thread::sleep_for(100ms);
  EXPECT_EQ(store_->events_after("t", 0).size(), stored);
  auto t = store_->get_thread("t");
  EXPECT_EQ(t->owner, "b");
  EXPECT_EQ(t->status, "running");  // b's to finish: "a" wrote no end, no outcome
  for (const auto& e : store_->events_after("t", 0)) EXPECT_NE(e.event_type, "end");
  rm.shutdown(1s);
}

TEST_P(RunManagerTest, LoseStopsALocalRunAtOnce) {
  auto rm_ptr = manager_with_a_run_until_stopped("t");
  auto& rm = *rm_ptr;
  EXPECT_EQ(rm.owned_local(), (std::map<std::string, std::int64_t>{{"t", 1}}));
  rm.lose("t", 7, "wrong epoch: ignored");
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(rm.running(), 1u);
  rm.lose("t", 1, "claimed by another replica");
  EXPECT_EQ(wait_no_runs(rm), 0u);
  EXPECT_EQ(store_->get_thread("t")->status, "running");  // nothing written: the new owner finishes it
  rm.shutdown(1s);
}

TEST_P(RunManagerTest, RemoteDeleteStopsTheRunAndClosesStreams) {
  auto rm_ptr = manager_with_a_run_until_stopped("t");
  auto& rm = *rm_ptr;
  auto sub = hub_.subscribe("t", host_.rt.executor());
  ASSERT_TRUE(store_->delete_thread("t"));  // another replica deleted the rows...
  rm.on_remote_delete("t");                 // ...and told us
  EXPECT_TRUE(sub->take().deleted);
  EXPECT_EQ(wait_no_runs(rm), 0u);
  EXPECT_FALSE(store_->get_thread("t"));
  EXPECT_TRUE(store_->events_after("t", 0).empty());
  rm.shutdown(1s);
}

TEST_P(RunManagerTest, ShutdownInterruptsAndLeavesRunResumable) {
  auto exec = [&](const RunRequest&, const RunLimits&, const ModelSettings&, RunObserver& obs, RunEnv& env) -> Task {
    const nlohmann::json state = {{"step", 1}};
    auto stored = obs.checkpoint(state);
    co_await std::move(stored);
    auto stopped = wait_for_stop(env);  // like a model call: ends on the stop token
    co_await std::move(stopped);
    co_return RunResult{"cancelled", {}, {}, {}};
  };
  auto rm_ptr = manager(opts(), exec);
  auto& rm = *rm_ptr;
  rm.start();
  rm.submit(job("s"));
  EXPECT_EQ(wait_status("s", "running"), "running");
  rm.shutdown(50ms);
  log_->stop(1s);
  EXPECT_EQ(store_->get_thread("s")->status, "queued");
  EXPECT_TRUE(store_->latest_checkpoint("s"));
  EXPECT_EQ(rm.submit(job("z")).outcome, SubmitOutcome::shutting_down);
}

// Runs are coroutines: 200 runs wait at once (like runs waiting for a model) on a runtime with
// one I/O thread and one blocking thread, then all complete with their events stored.
TEST_P(RunManagerTest, ManyRunsWaitAtOnceWithoutAThreadEach) {
  spec_engine::testing::Host small(1, 1);
  std::atomic<bool> release{false};
  std::atomic<int> waiting{0};
  auto exec = [&](const RunRequest&, const RunLimits&, const ModelSettings&, RunObserver& obs, RunEnv& env) -> Task {
    obs.emit("on_state_update", {{"step", 0}});
    ++waiting;
    auto wait = wait_for_release(release, env);
    co_await std::move(wait);
    obs.emit("on_llm_stream", {{"delta", "done"}});
    co_return RunResult{"completed", {}, {}, {}};
  };
  constexpr int kRuns = 200;
  RunManager rm(*store_, *log_, hub_, slots(kRuns, kRuns), small.rt, small.http, exec);
  rm.start();
  for (int i = 0; i < kRuns; ++i) ASSERT_EQ(rm.submit(job("m" + std::to_string(i))).outcome, SubmitOutcome::started);
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (waiting < kRuns && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(waiting.load(), kRuns);
  EXPECT_EQ(rm.running(), static_cast<std::size_t>(kRuns));
  release = true;
  for (int i = 0; i < kRuns; ++i) {
    const std::string id = "m" + std::to_string(i);
    ASSERT_EQ(wait_status(id, "", 60s), "completed") << id;
    auto events = store_->events_after(id, 0);
    ASSERT_EQ(events.size(), 3u) << id;
    EXPECT_EQ(events[0].event_type, "on_state_update");
    EXPECT_EQ(events[1].event_type, "on_llm_stream");
    EXPECT_EQ(events[2].event_type, "end");
  }
  rm.shutdown(1s);
}

// --max-concurrent-runs bounds the runs in memory; the rest wait in the queue and run later.
TEST_P(RunManagerTest, ConcurrencyLimitQueuesTheRest) {
  std::atomic<int> now{0};
  std::atomic<int> peak{0};
  auto exec = [&](const RunRequest&, const RunLimits&, const ModelSettings&, RunObserver&, RunEnv& env) -> Task {
    const int n = ++now;
    for (int p = peak.load(); n > p && !peak.compare_exchange_weak(p, n);) {
    }
    auto pause = core::async::sleep_for(30ms, env.stop);
    co_await std::move(pause);
    --now;
    co_return RunResult{"completed", {}, {}, {}};
  };
  auto rm_ptr = manager(slots(3, 20), exec);
  auto& rm = *rm_ptr;
  rm.start();
  for (int i = 0; i < 12; ++i) ASSERT_EQ(rm.submit(job("c" + std::to_string(i))).outcome, SubmitOutcome::started);
  EXPECT_LE(rm.running(), 3u);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(wait_status("c" + std::to_string(i)), "completed");
  EXPECT_EQ(peak.load(), 3);
  rm.shutdown(1s);
}

// A job submitted here runs with the documents it was submitted with, and only while its row
// still allows it: a queued job whose thread ended or was deleted elsewhere (another replica's
// DELETE, before its broadcast arrives) before a slot freed never runs.
TEST_P(RunManagerTest, AQueuedJobRunsWithItsOwnDocumentsOnlyWhileItsRowAllowsIt) {
  std::mutex mu;
  std::map<std::string, std::pair<nlohmann::json, nlohmann::json>> ran;  // id -> definition, input
  std::atomic<bool> release{false};
  auto exec = [&](const RunRequest& r, const RunLimits&, const ModelSettings&, RunObserver&, RunEnv& env) -> Task {
    {
      std::lock_guard lk(mu);
      ran[r.thread_id] = {r.definition, r.input_payload};
    }
    if (r.thread_id == "first") {
      auto wait = wait_for_release(release, env);
      co_await std::move(wait);
    }
    co_return RunResult{"completed", {}, {}, {}};
  };
  auto rm = manager(slots(1, 10), exec);
  rm->start();
  ASSERT_EQ(rm->submit(job("first")).outcome, SubmitOutcome::started);
  ASSERT_EQ(wait_status("first", "running"), "running");
  for (const char* id : {"kept", "ended", "deleted"}) {
    Job j = job(id);
    j.input_payload = {{"messages", std::string("input of ") + id}};
    ASSERT_EQ(rm->submit(std::move(j)).outcome, SubmitOutcome::started);
  }
  ASSERT_TRUE(store_->set_status("ended", "cancelled"));
  ASSERT_TRUE(store_->delete_thread("deleted"));
  release = true;
  EXPECT_EQ(wait_status("kept"), "completed");
  EXPECT_EQ(wait_no_runs(*rm), 0u);
  rm->shutdown(1s);
  std::lock_guard lk(mu);
  ASSERT_EQ(ran.count("kept"), 1u);
  EXPECT_EQ(ran["kept"].first, job("kept").agent_definition);
  EXPECT_EQ(ran["kept"].second, (nlohmann::json{{"messages", "input of kept"}}));
  EXPECT_EQ(ran.count("ended"), 0u);
  EXPECT_EQ(ran.count("deleted"), 0u);
  EXPECT_EQ(store_->get_thread("ended")->status, "cancelled");
  EXPECT_FALSE(store_->get_thread("deleted"));
}

// A run's reads wait while every session of the shared pool is taken (the pool's bounded wait
// throws PoolTimeout, which the run retries) instead of failing the run. (Its writes go through
// the event log, which has a connection of its own.)
TEST_P(RunManagerTest, RunReadsWaitForABusyPool) {
  if (GetParam() != "sqlite") GTEST_SKIP() << "one dialect is enough for the pool logic";
  core::db::DbConfig c;
  c.sqlite_path = tdb_->temp_dir / "spec_engine.db";
  c.pool_size = 1;
  c.lease_timeout = 20ms;
  core::db::Database tight(c);
  spec_engine::store::Store store(tight);
  auto holder = std::make_unique<core::db::Session>(tight);  // the only session is taken
  auto exec = [&](const RunRequest&, const RunLimits&, const ModelSettings&, RunObserver& obs, RunEnv&) -> Task {
    obs.emit("on_state_update", {});
    co_return RunResult{"completed", {}, {}, {}};
  };
  spec_engine::bus::RunManager rm(store, *log_, hub_, opts(), host_.rt, host_.http, exec);
  rm.start();
  {
    // Submitting needs a session too: the caller (an HTTP handler) gets PoolTimeout -> 503.
    EXPECT_THROW(rm.submit(job("p")), core::db::PoolTimeout);
    holder.reset();
    EXPECT_EQ(rm.submit(job("p")).outcome, SubmitOutcome::started);
    holder = std::make_unique<core::db::Session>(tight);  // taken again before the run starts
  }
  std::this_thread::sleep_for(100ms);  // the run's start meets the busy pool and retries
  holder.reset();
  EXPECT_EQ(wait_status("p"), "completed");
  rm.shutdown(1s);
  auto events = store_->events_after("p", 0);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].event_type, "end");
}

INSTANTIATE_TEST_SUITE_P(Dialects, RunManagerTest, ::testing::ValuesIn(spec_engine::testing::dialects()),
                         [](const auto& info) { return info.param; });

}  // namespace
