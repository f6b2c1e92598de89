// Tracker against a scripted fake engine (core::http::Server, HTTP + WebSocket) and the real
// orchestrator store on SQLite (docs/event-path-and-replicas.md "Proposals through outages"):
// finalisation from the stream or the state, leases across replicas, outages that never fail
// live work, the breaker that never stops a tracker, and the sweeper.
#include "orchestrator/tracker/tracker.hpp"

#include <chrono>
#include <filesystem>
#include <algorithm>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "core/metrics.hpp"
#include "core/util.hpp"
#include "../domain/db_fixture.hpp"
#include "../../core/span_sink.hpp"
#include "fake_engine.hpp"
#include "orchestrator/store/repositories.hpp"
#include "orchestrator/store/runs.hpp"

using namespace std::chrono_literals;
using nlohmann::json;
using orchestrator::store::ProposalRecord;
using orchestrator::store::ProposalStatus;
using orchestrator::store::RunRecord;
using orchestrator::store::RunStatus;
using orchestrator::tracker::FinaliseResult;
using orchestrator::tracker::Tracker;
using orchestrator::tracker::TrackerOptions;
using tracker_test::ev;
using tracker_test::eventually;
using tracker_test::FakeEngine;
using tracker_test::ThreadScript;

namespace {

json file(std::vector<std::string> lines) {
  return {{"content", lines}, {"created_at", "2025-12-18T11:00:00.000000+00:00"},
          {"modified_at", "2025-12-18T11:00:00.000000+00:00"}};
}

/// Numbers events 1..n with `seq` (as our engine does).
std::vector<json> with_seq(std::vector<json> evs) {
  for (std::size_t i = 0; i < evs.size(); ++i) evs[i]["seq"] = static_cast<long long>(i + 1);
  return evs;
}

const json kFilesA = {{"/THE_SPEC/plan.md", file({"# Plan", "draft"})}};
const json kFilesB = {{"/THE_SPEC/plan.md", file({"# Plan", "final"})},
                      {"/THE_CAST/Searcher.md", file({"# Searcher", "Searches the web."})}};

std::vector<json> completed_run() {
  return {ev("on_state_update", {{"messages", "[HumanMessage(content='x')]"}}),
          ev("on_state_update", {{"messages", "..."}, {"files", kFilesA}}),
          ev("on_llm_stream", {{"raw_event", "(AIMessageChunk(content='hi'))"}}),
          ev("on_tool_start", {{"name", "write_file"}}),
          ev("on_state_update", {{"messages", "..."}, {"files", kFilesB}}),
          ev("on_state_update", {{"messages", "... no files this time"}}),
          ev("end", {{"status", "completed"}})};
}

class TrackerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("trk-" + core::random_hex(6));
    std::filesystem::create_directories(dir_);
    core::db::DbConfig cfg;
    cfg.sqlite_path = dir_ / "orch.db";
    cfg.pool_size = 4;
    db_ = std::make_unique<core::db::Database>(cfg);
    store_ = std::make_unique<orchestrator::store::Store>(*db_);
    core::db::migrate(*db_, std::filesystem::path(PROJECT_SOURCE_DIR) / "migrations/orchestrator/sqlite");
    orchestrator::testing::LeasedUnit unit(*db_);
    auto& uow = unit.uow;
    user_id_ = core::uuid4();
    orchestrator::store::UserRecord u{user_id_, "u-" + core::random_hex(4) + "@example.com", "U", "x",
                                      core::now_rfc3339()};
    orchestrator::store::users::insert(uow, u);
    workflow_id_ = core::uuid4();
    orchestrator::store::WorkflowRecord w;
    w.id = workflow_id_;
    w.name = "wf";
    w.owner_id = user_id_;
    w.created_at = w.updated_at = core::now_rfc3339();
    orchestrator::store::workflows::insert(uow, w);

    rt_.start();
    client_ = std::make_unique<orchestrator::engine_client::EngineClient>(client_options(engine_.url()), rt_);
    hub_ = std::make_unique<orchestrator::follow::FollowHub>(*client_, follow_options());
  }
  void TearDown() override {
    tracker_.reset();
    hub_.reset();
    client_.reset();
    rt_.stop();
    store_.reset();
    db_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  static orchestrator::engine_client::EngineClientOptions client_options(const std::string& url) {
    orchestrator::engine_client::EngineClientOptions eo;
    eo.base_url = url;
    eo.request_timeout = 2000ms;
    eo.retry = core::RetryPolicy{2, 1ms, 5ms};
    eo.breaker = core::CircuitBreaker::Options{2, 1h, 3};
    return eo;
  }
  static orchestrator::follow::FollowOptions follow_options() {
    orchestrator::follow::FollowOptions f;
    f.reconnect_base_delay = 10ms;
    f.reconnect_max_delay = 50ms;
    return f;
  }
  TrackerOptions options() {
    TrackerOptions o;
    o.instance_id = "test-replica";
    o.lease_ttl = 3000ms;
    o.sweep_interval = 1h;
    o.on_event = [this](const std::string&, const orchestrator::follow::Event& e) {
      std::lock_guard lk(events_mu_);
      seen_.push_back(json::parse(e.text));
    };
    return o;
  }
  Tracker& tracker(TrackerOptions o) {
    tracker_ = std::make_unique<Tracker>(*store_, *client_, *hub_, std::move(o));
    return *tracker_;
  }
  Tracker& tracker() { return tracker(options()); }

  /// Inserts a processing proposal; returns its id.
  std::string proposal(const std::string& thread_id, std::string created_at = core::now_rfc3339(),
                       std::string traceparent = {}) {
    orchestrator::testing::LeasedUnit unit(*db_);
    auto& uow = unit.uow;
    ProposalRecord p;
    p.traceparent = std::move(traceparent);
    p.id = core::uuid4();
    p.workflow_id = workflow_id_;
    p.thread_id = thread_id;
    p.user_prompt = "add a web-search specialist";
    p.created_at = std::move(created_at);
    p.created_by_user_id = user_id_;
    orchestrator::store::proposals::insert(uow, p);
    return p.id;
  }
  /// Inserts a processing workflow run that started from `base_files`; returns its id.
  std::string run(const std::string& thread_id, const json& base_files = kFilesA,
                  std::string created_at = core::now_rfc3339()) {
    orchestrator::testing::LeasedUnit unit(*db_);
    auto& uow = unit.uow;
    RunRecord r;
    r.id = core::uuid4();
    r.workflow_id = workflow_id_;
    r.thread_id = thread_id;
    r.input = "Brief me on solid-state batteries";
    r.base_files = orchestrator::domain::files_from_json(base_files, "files", core::now_rfc3339());
    r.created_by_user_id = user_id_;
    r.created_at = std::move(created_at);
    orchestrator::store::runs::insert(uow, r);
    return r.id;
  }
  RunRecord load_run(const std::string& id) {
    orchestrator::testing::LeasedUnit unit(*db_);
    auto& uow = unit.uow;
    return *orchestrator::store::runs::find(uow, id);
  }
  /// Waits until the run left `processing`.
  RunRecord wait_run_final(const std::string& id, std::chrono::milliseconds t = 10s) {
    const auto end = std::chrono::steady_clock::now() + t;
    while (std::chrono::steady_clock::now() < end) {
      auto r = load_run(id);
      if (r.status != RunStatus::processing) return r;
      std::this_thread::sleep_for(20ms);
    }
    return load_run(id);
  }
  ProposalRecord load(const std::string& id) {
    orchestrator::testing::LeasedUnit unit(*db_);
    auto& uow = unit.uow;
    return *orchestrator::store::proposals::find(uow, id);
  }
  /// Waits until the proposal left `processing`.
  ProposalRecord wait_final(const std::string& id, std::chrono::milliseconds t = 10s) {
    const auto end = std::chrono::steady_clock::now() + t;
    while (std::chrono::steady_clock::now() < end) {
      auto p = load(id);
      if (p.status != ProposalStatus::processing) return p;
      std::this_thread::sleep_for(20ms);
    }
    return load(id);
  }
  std::vector<json> seen() {
    std::lock_guard lk(events_mu_);
    return seen_;
  }

  FakeEngine engine_;
  std::filesystem::path dir_;
  std::unique_ptr<core::db::Database> db_;
  std::unique_ptr<orchestrator::store::Store> store_;
  core::async::Runtime rt_{core::async::RuntimeOptions{2, 4, "tracker-test"}};
  std::unique_ptr<orchestrator::engine_client::EngineClient> client_;
  std::unique_ptr<orchestrator::follow::FollowHub> hub_;
  std::unique_ptr<Tracker> tracker_;
  std::string user_id_, workflow_id_;
  std::mutex events_mu_;
  std::vector<json> seen_;
};

double proposals_total(const std::string& outcome) {
  return core::metrics::global().counter("ide_orchestrator_proposals_total", "").value({{"outcome", outcome}});
}

double runs_total(const std::string& outcome) {
  return core::metrics::global().counter("ide_orchestrator_runs_total", "").value({{"outcome", outcome}});
}

}  // namespace

TEST_F(TrackerTest, CompletesWithTheLastFilesOfOnStateUpdate) {
  engine_.set("th-1", {with_seq(completed_run())});
  const auto id = proposal("th-1");
  const double before = proposals_total("completed");
  auto& t = tracker();
  t.track(id, "th-1");
  auto p = wait_final(id);
  ASSERT_EQ(p.status, ProposalStatus::completed);
  ASSERT_TRUE(p.generated_files.has_value());
  EXPECT_EQ(orchestrator::domain::files_to_json(*p.generated_files), kFilesB);
  EXPECT_TRUE(p.completed_at.has_value());
  EXPECT_FALSE(p.error.has_value());
  EXPECT_TRUE(t.wait_idle(5s));
  EXPECT_FALSE(load(id).lease_owner.has_value()) << "lease released after finishing";
  EXPECT_EQ(proposals_total("completed"), before + 1);
  EXPECT_GE(core::metrics::global()
                .histogram("ide_orchestrator_refinement_duration_seconds", "")
                .count({{"status", "completed"}}),
            1u);
  EXPECT_EQ(seen().size(), completed_run().size());
}

TEST_F(TrackerTest, FailedRunIsFailedWithTheEnginesError) {
  engine_.set("th-f", {with_seq({ev("on_state_update", {{"files", kFilesA}}),
                                 ev("error", {{"error", "model call failed"}, {"context", "orchestrator"}}),
                                 ev("end", {{"status", "failed"}, {"error", "LLM provider unreachable: connection refused"}})})});
  const auto id = proposal("th-f");
  tracker().track(id, "th-f");
  auto p = wait_final(id);
  ASSERT_EQ(p.status, ProposalStatus::failed);
  ASSERT_TRUE(p.error.has_value());
  EXPECT_NE(p.error->find("LLM provider unreachable: connection refused"), std::string::npos) << *p.error;
  EXPECT_FALSE(p.generated_files.has_value());
}

TEST_F(TrackerTest, ErrorEventAloneDoesNotEndTracking) {
  auto evs = completed_run();
  evs.insert(evs.begin() + 2, ev("error", {{"error", "tool write_file failed; retrying"}, {"context", "tool"}}));
  engine_.set("th-e", {with_seq(evs)});
  const auto id = proposal("th-e");
  tracker().track(id, "th-e");
  auto p = wait_final(id);
  ASSERT_EQ(p.status, ProposalStatus::completed);
  EXPECT_EQ(orchestrator::domain::files_to_json(*p.generated_files), kFilesB);
}

TEST_F(TrackerTest, EndWithoutStatusAfterErrorUsesStateThenError) {
  // Original engine shape: `end` carries {}. The state says failed with its error.
  ThreadScript s;
  s.events = {ev("on_state_update", {{"messages", "m"}}), ev("error", {{"error", "boom"}}), ev("end", json::object())};
  s.state = json{{"thread_id", "th-x"}, {"status", "failed"}, {"error", "Run exceeded the step limit (50 steps)."}};
  engine_.set("th-x", s);
  const auto id = proposal("th-x");
  tracker().track(id, "th-x");
  auto p = wait_final(id);
  ASSERT_EQ(p.status, ProposalStatus::failed);
  EXPECT_NE(p.error->find("step limit"), std::string::npos) << *p.error;
}

TEST_F(TrackerTest, NoFilesInStreamFallsBackToStateGeneratedFiles) {
  ThreadScript s;
  s.events = {ev("on_state_update", {{"messages", "m"}}), ev("end", json::object())};
  s.state = json{{"thread_id", "th-s"}, {"status", "completed"}, {"generated_files", kFilesA}};
  engine_.set("th-s", s);
  const auto id = proposal("th-s");
  tracker().track(id, "th-s");
  auto p = wait_final(id);
  ASSERT_EQ(p.status, ProposalStatus::completed);
  EXPECT_EQ(orchestrator::domain::files_to_json(*p.generated_files), kFilesA);
}

TEST_F(TrackerTest, DroppedStreamResumesWithAfterSeqWithoutDuplicates) {
  ThreadScript s;
  s.events = with_seq(completed_run());
  s.drop_after = {3, 2};  // first connection: 3 events; second: 2 more; third: the rest
  s.state = json{{"thread_id", "th-d"}, {"status", "running"}};
  engine_.set("th-d", s);
  const auto id = proposal("th-d");
  tracker().track(id, "th-d");
  auto p = wait_final(id);
  ASSERT_EQ(p.status, ProposalStatus::completed);
  EXPECT_EQ(orchestrator::domain::files_to_json(*p.generated_files), kFilesB);
  EXPECT_EQ(engine_.connects("th-d"), (std::vector<long long>{0, 3, 5}));
  auto evs = seen();
  ASSERT_EQ(evs.size(), completed_run().size());
  for (std::size_t i = 0; i < evs.size(); ++i) EXPECT_EQ(evs[i].at("seq"), static_cast<long long>(i + 1));
}

TEST_F(TrackerTest, DroppedStreamWithoutSeqResumesByPosition) {
  ThreadScript s;
  s.events = completed_run();  // no seq, like the recorded Python streams
  s.drop_after = {4};
  s.state = json{{"thread_id", "th-n"}, {"status", "running"}};
  engine_.set("th-n", s);
  const auto id = proposal("th-n");
  tracker().track(id, "th-n");
  auto p = wait_final(id);
  ASSERT_EQ(p.status, ProposalStatus::completed);
  EXPECT_EQ(orchestrator::domain::files_to_json(*p.generated_files), kFilesB);
  EXPECT_EQ(engine_.connects("th-n"), (std::vector<long long>{0, 4}));
  EXPECT_EQ(seen().size(), completed_run().size());
}

TEST_F(TrackerTest, ReplayedEventsWithSeqAreSkipped) {
  ThreadScript s;
  s.events = with_seq(completed_run());
  s.drop_after = {4};
  s.ignore_after_seq = true;  // an engine that replays from the start on reconnect
  s.state = json{{"thread_id", "th-r"}, {"status", "running"}};
  engine_.set("th-r", s);
  const auto id = proposal("th-r");
  tracker().track(id, "th-r");
  ASSERT_EQ(wait_final(id).status, ProposalStatus::completed);
  EXPECT_EQ(seen().size(), completed_run().size()) << "duplicates were processed";
}

TEST_F(TrackerTest, BrokenStreamWithTerminalStateFinalisesFromState) {
  ThreadScript s;
  s.events = with_seq(completed_run());
  s.drop_after = {2, 0, 0, 0};
  s.state = json{{"thread_id", "th-t"}, {"status", "completed"}, {"generated_files", kFilesB}};
  engine_.set("th-t", s);
  const auto id = proposal("th-t");
  tracker().track(id, "th-t");
  auto p = wait_final(id);
  ASSERT_EQ(p.status, ProposalStatus::completed);
  EXPECT_EQ(orchestrator::domain::files_to_json(*p.generated_files), kFilesB);
  // The first loss (after events) is answered by a reconnect alone; the second connection
  // breaks without an event, so GET state is asked, and since that stream did not close
  // normally, one more connection asks for missed events before the state's verdict is taken.
  EXPECT_EQ(engine_.connects("th-t"), (std::vector<long long>{0, 2, 2}));
}

TEST_F(TrackerTest, FailedStateWithoutEndFailsWithTheStatesErrorBeforeAnEarlierErrorEvent) {
  // The stream breaks before `end` (twice); GET state says failed: its error is the reason.
  ThreadScript s;
  s.events = with_seq({ev("on_state_update", {{"files", kFilesA}}), ev("error", {{"error", "tool failed; retrying"}})});
  s.drop_after = {2, 0};
  s.state = json{{"thread_id", "th-fs"}, {"status", "failed"}, {"error", {{"message", "quota exhausted"}}}};
  engine_.set("th-fs", s);
  const auto id = proposal("th-fs");
  tracker().track(id, "th-fs");
  auto p = wait_final(id);
  ASSERT_EQ(p.status, ProposalStatus::failed);
  EXPECT_EQ(p.error.value_or(""), "The refinement run failed on the engine: quota exhausted");
  EXPECT_EQ(p.failure_kind.value_or(""), "engine_failed");
  EXPECT_FALSE(p.generated_files.has_value());
}

TEST_F(TrackerTest, CancelledStateWithoutEndOrErrorFallsBackToTheLastErrorEvent) {
  ThreadScript s;
  s.events = with_seq({ev("error", {{"error", "first"}}), ev("error", {{"error", "model call failed"}})});
  s.drop_after = {2, 0};
  s.state = json{{"thread_id", "th-cs"}, {"status", "cancelled"}};
  engine_.set("th-cs", s);
  const auto id = proposal("th-cs");
  tracker().track(id, "th-cs");
  auto p = wait_final(id);
  ASSERT_EQ(p.status, ProposalStatus::failed);
  EXPECT_EQ(p.error.value_or(""), "The refinement run was cancelled on the engine: model call failed");
}

TEST_F(TrackerTest, UnknownEngineThreadFailsTheProposal) {
  const auto id = proposal("th-unknown");
  tracker().track(id, "th-unknown");
  auto p = wait_final(id);
  ASSERT_EQ(p.status, ProposalStatus::failed);
  ASSERT_TRUE(p.error.has_value());
  EXPECT_NE(p.error->find("no longer knows thread th-unknown"), std::string::npos) << *p.error;
  EXPECT_EQ(p.failure_kind.value_or(""), "engine_gone");
}

TEST_F(TrackerTest, EngineOutageNeverFailsTheProposal) {
  ThreadScript s;
  s.live = true;
  s.events = with_seq({ev("on_state_update", {{"files", kFilesA}})});
  s.state = json{{"thread_id", "th-out"}, {"status", "running"}};
  engine_.set("th-out", s);
  const auto id = proposal("th-out");
  tracker().track(id, "th-out");
  ASSERT_TRUE(eventually([&] { return seen().size() == 1; }));
  engine_.set_unavailable(true);
  // Down for a while: many reconnects fail, the proposal stays processing.
  ASSERT_TRUE(eventually([&] { return engine_.refused_streams() >= 10; }, 10s));
  EXPECT_EQ(load(id).status, ProposalStatus::processing);
  EXPECT_EQ(load(id).lease_owner.value_or(""), "test-replica");
  // Back: the run had gone on meanwhile; the tracker resumes after seq 1 and completes.
  engine_.append("th-out", ev("on_state_update", {{"files", kFilesB}}, 2));
  engine_.append("th-out", ev("end", {{"status", "completed"}}, 3));
  engine_.set_unavailable(false);
  auto p = wait_final(id);
  ASSERT_EQ(p.status, ProposalStatus::completed);
  EXPECT_EQ(orchestrator::domain::files_to_json(*p.generated_files), kFilesB);
  EXPECT_EQ(engine_.connects("th-out").back(), 1);
  EXPECT_EQ(seen().size(), 3u);
}

TEST_F(TrackerTest, OpenBreakerDoesNotStopATracker) {
  // New refinements fail until the breaker opens (threshold 2 here, open for an hour).
  ThreadScript s;
  s.events = with_seq(completed_run());
  engine_.set("th-b", s);
  engine_.set_unavailable(true);
  for (int i = 0; i < 3; ++i) EXPECT_THROW(client_->invoke(json{{"job_id", "x"}}), orchestrator::engine_client::EngineUnavailable);
  ASSERT_EQ(client_->breaker_state(), "open");
  engine_.set_unavailable(false);
  const auto id = proposal("th-b");
  tracker().track(id, "th-b");
  auto p = wait_final(id);
  ASSERT_EQ(p.status, ProposalStatus::completed);
  EXPECT_EQ(orchestrator::domain::files_to_json(*p.generated_files), kFilesB);
  EXPECT_EQ(client_->breaker_state(), "open") << "the tracker neither consulted nor closed it";
}

TEST_F(TrackerTest, LeasesAreRenewedAndALostLeaseStopsTracking) {
  ThreadScript s;
  s.live = true;
  s.events = with_seq({ev("on_state_update", {{"messages", "m"}})});
  s.state = json{{"thread_id", "th-lease"}, {"status", "running"}};
  engine_.set("th-lease", s);
  const auto id = proposal("th-lease");
  auto o = options();
  o.lease_ttl = 600ms;  // renewed every 200 ms
  auto& t = tracker(o);
  t.start();
  t.track(id, "th-lease");
  ASSERT_TRUE(eventually([&] { return load(id).lease_owner.value_or("") == "test-replica"; }));
  const auto first = load(id).lease_expires_at.value_or("");
  ASSERT_TRUE(eventually([&] { return load(id).lease_expires_at.value_or("") > first; }, 3s)) << "renewed";
  {
    // Another replica took the proposal over (e.g. after a pause longer than the TTL).
    soci::session sql(db_->pool());
    // A named value: SOCI reads bound temporaries after they are destroyed.
    const std::string expires = core::to_rfc3339(std::chrono::system_clock::now() + 1h);
    sql << "UPDATE proposals SET lease_owner = 'other', lease_expires_at = :e WHERE id = :id", soci::use(expires),
        soci::use(id);
  }
  ASSERT_TRUE(t.wait_idle(3s)) << "tracking stopped once the lease was lost";
  auto p = load(id);
  EXPECT_EQ(p.status, ProposalStatus::processing);
  EXPECT_EQ(p.lease_owner.value_or(""), "other") << "the new owner's lease is untouched";
  EXPECT_TRUE(eventually([&] { return engine_.open_streams("th-lease") == 0; })) << "upstream closed";
}

TEST_F(TrackerTest, UnreachableFailureIsRestoredWhenTheEngineCompletedTheRun) {
  const auto done = proposal("th-ok");
  const auto failed = proposal("th-bad");
  const auto forgotten = proposal("th-lost");
  const auto running = proposal("th-run");
  auto o = options();
  o.unreachable_grace = 0ms;  // a missing thread is final at once (the grace: the next test)
  auto& t = tracker(std::move(o));
  for (const auto& [pid, thread] : std::vector<std::pair<std::string, std::string>>{
           {done, "th-ok"}, {failed, "th-bad"}, {forgotten, "th-lost"}, {running, "th-run"}}) {
    ASSERT_EQ(t.finalise_failed(pid, "The refinement engine was unavailable when the refinement was started.",
                                orchestrator::domain::FailureKind::engine_unreachable),
              FinaliseResult::applied);
  }
  engine_.set("th-ok", {{}, {}, false, false, json{{"status", "completed"}, {"generated_files", kFilesB}}});
  engine_.set("th-bad", {{}, {}, false, false, json{{"status", "failed"}, {"error", "boom"}}});
  engine_.set("th-run", {{}, {}, false, false, json{{"status", "running"}}});
  const double before = proposals_total("restored");
  t.sweep_once();
  auto p = load(done);
  ASSERT_EQ(p.status, ProposalStatus::completed);
  EXPECT_EQ(orchestrator::domain::files_to_json(*p.generated_files), kFilesB);
  EXPECT_FALSE(p.error.has_value());
  EXPECT_FALSE(p.failure_kind.has_value());
  EXPECT_EQ(proposals_total("restored"), before + 1);
  {
    orchestrator::testing::LeasedUnit unit(*db_);
    auto& uow = unit.uow;
    auto audit = orchestrator::store::audit::list(uow, workflow_id_, 50, std::nullopt);
    const auto it = std::find_if(audit.begin(), audit.end(), [&](const auto& a) {
      return a.action == "proposal.restored" && a.subject_id == done;
    });
    ASSERT_NE(it, audit.end());
    EXPECT_NE(it->details.value("previous_error", "").find("unavailable"), std::string::npos) << it->details.dump();
  }
  EXPECT_EQ(load(failed).status, ProposalStatus::failed);
  EXPECT_EQ(load(failed).failure_kind.value_or(""), "engine_failed") << "settled: not asked again";
  EXPECT_EQ(load(forgotten).failure_kind.value_or(""), "engine_gone");
  EXPECT_EQ(load(running).failure_kind.value_or(""), "engine_unreachable") << "asked again next sweep";
  // Idempotent: a second sweep changes nothing that was settled.
  t.sweep_once();
  EXPECT_EQ(load(done).status, ProposalStatus::completed);
  EXPECT_EQ(proposals_total("restored"), before + 1);
}

// The orchestrator gave up on an invoke (engine_unreachable) that the engine, waiting for its
// database, accepted later: until unreachable_grace has passed since the failure, "no such
// thread" is not final, and the thread that appears restores the proposal.
TEST_F(TrackerTest, AThreadMissingSoonAfterAnUnreachableFailureIsAskedForAgain) {
  const auto late = proposal("th-late");
  auto o = options();
  o.unreachable_grace = 1h;
  auto& t = tracker(std::move(o));
  ASSERT_EQ(t.finalise_failed(late, "The refinement engine was unavailable when the refinement was started.",
                              orchestrator::domain::FailureKind::engine_unreachable),
            FinaliseResult::applied);
  t.sweep_once();  // the engine answers 404: it has not created the thread yet
  EXPECT_EQ(load(late).failure_kind.value_or(""), "engine_unreachable") << "not settled as gone within the grace";
  engine_.set("th-late", {{}, {}, false, false, json{{"status", "completed"}, {"generated_files", kFilesB}}});
  t.sweep_once();
  const auto p = load(late);
  ASSERT_EQ(p.status, ProposalStatus::completed) << p.error.value_or("");
  EXPECT_EQ(orchestrator::domain::files_to_json(*p.generated_files), kFilesB);
}

TEST_F(TrackerTest, FinaliseIsIdempotent) {
  const auto id = proposal("th-i");
  auto& t = tracker();
  const double before = proposals_total("completed");
  EXPECT_EQ(t.finalise(id, kFilesA), FinaliseResult::applied);
  EXPECT_EQ(t.finalise(id, kFilesB), FinaliseResult::already_final);
  EXPECT_EQ(t.finalise_failed(id, "late failure"), FinaliseResult::already_final);
  EXPECT_EQ(t.finalise(core::uuid4(), kFilesA), FinaliseResult::missing);
  auto p = load(id);
  EXPECT_EQ(p.status, ProposalStatus::completed);
  EXPECT_EQ(orchestrator::domain::files_to_json(*p.generated_files), kFilesA);
  EXPECT_FALSE(p.error.has_value());
  EXPECT_EQ(proposals_total("completed"), before + 1);
}

TEST_F(TrackerTest, TwoTrackersOnOneProposalFinaliseOnce) {
  // A second replica shares the database: the lease keeps it out while the first tracks.
  ThreadScript s;
  s.events = with_seq(completed_run());
  engine_.set("th-2", s);
  const auto id = proposal("th-2");
  auto& a = tracker();
  auto o2 = options();
  o2.instance_id = "other-replica";
  orchestrator::follow::FollowHub hub_b(*client_, follow_options());  // another replica's followers
  Tracker b(*store_, *client_, hub_b, o2);
  a.track(id, "th-2");
  b.track(id, "th-2");
  ASSERT_EQ(wait_final(id).status, ProposalStatus::completed);
  EXPECT_TRUE(a.wait_idle(5s));
  EXPECT_TRUE(b.wait_idle(5s));
  // Events seen at most once per successful tracker: the loser never streamed or stopped at the lease.
  EXPECT_LE(seen().size(), 2 * completed_run().size());
  b.stop();
}

TEST_F(TrackerTest, StartResumesProcessingProposalsWithExpiredLeases) {
  engine_.set("th-a", {with_seq(completed_run())});
  engine_.set("th-b", {with_seq(completed_run())});
  const auto a = proposal("th-a");
  const auto b = proposal("th-b");
  {
    orchestrator::testing::LeasedUnit unit(*db_);
    auto& uow = unit.uow;
    // th-a: lease of a crashed replica, expired; th-b: lease of a live replica.
    ASSERT_TRUE(orchestrator::store::proposals::acquire_lease(uow, a, "dead", core::now_rfc3339(),
                                                              "2000-01-01T00:00:00.000000Z"));
    ASSERT_TRUE(orchestrator::store::proposals::acquire_lease(uow, b, "alive", core::now_rfc3339(),
                                                              core::to_rfc3339(std::chrono::system_clock::now() + 1h)));
  }
  auto& t = tracker();
  t.start();
  EXPECT_EQ(wait_final(a).status, ProposalStatus::completed);
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(load(b).status, ProposalStatus::processing);
  EXPECT_TRUE(engine_.connects("th-b").empty());
  t.stop();
  EXPECT_EQ(load(b).lease_owner.value_or(""), "alive");
}

TEST_F(TrackerTest, StopReleasesLeasesAndLeavesProposalProcessing) {
  ThreadScript s;
  s.events = {ev("on_state_update", {{"messages", "m"}})};
  s.drop_after = {};
  s.state = json{{"thread_id", "th-l"}, {"status", "running"}};
  // The stream sends one event and closes; state says running: the tracker keeps reconnecting.
  engine_.set("th-l", s);
  const auto id = proposal("th-l");
  auto& t = tracker();
  t.track(id, "th-l");
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(load(id).lease_owner.value_or(""), "test-replica");
  t.stop();
  auto p = load(id);
  EXPECT_EQ(p.status, ProposalStatus::processing);
  EXPECT_FALSE(p.lease_owner.has_value());
}

TEST_F(TrackerTest, SweepFailsOrphansAndDeletesEngineThreadsUntilConfirmed) {
  const auto old = core::to_rfc3339(std::chrono::system_clock::now() - 25h);
  engine_.set("th-old", {with_seq(completed_run())});
  const auto id = proposal("th-old", old);
  engine_.fail_deletes(2);  // retry policy of the client: 2 attempts per sweep -> first sweep fails
  const double before = proposals_total("expired");
  auto& t = tracker();
  t.sweep_once();
  auto p = load(id);
  ASSERT_EQ(p.status, ProposalStatus::failed);
  EXPECT_NE(p.error.value_or("").find("abandoned"), std::string::npos) << p.error.value_or("");
  EXPECT_TRUE(p.engine_cleanup_pending) << "deletion must be retried";
  EXPECT_TRUE(engine_.deleted().empty());
  EXPECT_EQ(proposals_total("expired"), before + 1);

  t.sweep_once();
  EXPECT_FALSE(load(id).engine_cleanup_pending);
  EXPECT_EQ(engine_.deleted(), std::vector<std::string>{"th-old"});
  EXPECT_TRUE(engine_.connects("th-old").empty()) << "an orphan is never tracked again";
}

TEST_F(TrackerTest, SweepDeletesTheThreadsOfProposalsLeftFailedPastTheTtlOnce) {
  const auto fail = [&](const std::string& thread, const std::string& completed_at) {
    const auto id = proposal(thread);
    soci::session sql(db_->pool());
    sql << "UPDATE proposals SET status = 'failed', error = 'engine run failed', completed_at = :c WHERE id = :i",
        soci::use(completed_at), soci::use(id);
    return id;
  };
  const auto old_id = fail("th-failed-old", core::to_rfc3339(std::chrono::system_clock::now() - 25h));
  const auto new_id = fail("th-failed-new", core::now_rfc3339());
  auto o = options();
  o.orphan_ttl = 24h;
  auto& t = tracker(o);
  t.sweep_once();
  EXPECT_EQ(engine_.deleted(), std::vector<std::string>{"th-failed-old"});
  EXPECT_FALSE(load(old_id).engine_cleanup_pending);
  EXPECT_EQ(load(old_id).status, ProposalStatus::failed);
  EXPECT_FALSE(load(new_id).engine_cleanup_pending) << "a recent failure keeps its thread for inspection";
  t.sweep_once();
  EXPECT_EQ(engine_.deleted(), std::vector<std::string>{"th-failed-old"}) << "deleted once, not every sweep";
}

TEST_F(TrackerTest, SweepResumesUnleasedProcessingProposals) {
  engine_.set("th-u", {with_seq(completed_run())});
  const auto id = proposal("th-u");
  auto& t = tracker();
  t.sweep_once();
  EXPECT_EQ(wait_final(id).status, ProposalStatus::completed);
}

// While the refinement handler invokes the engine, the engine may not know the thread yet: a
// sweep must not follow it then (it would fail the proposal as gone), even with the lease ours.
TEST_F(TrackerTest, SweepLeavesAProposalBeingStartedAlone) {
  const auto id = proposal("th-starting");  // the engine does not know th-starting yet
  auto& t = tracker();
  {
    const auto starting = t.starting("th-starting");
    t.sweep_once();
    EXPECT_EQ(t.active(), 0u);
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(load(id).status, ProposalStatus::processing);
    engine_.set("th-starting", {with_seq(completed_run())});  // the invoke was accepted
    t.track(id, "th-starting");
  }
  EXPECT_EQ(wait_final(id).status, ProposalStatus::completed);
  // The guard is gone: sweeps take such proposals again (a replica that died mid-invoke).
  const auto other = proposal("th-orphan");
  engine_.set("th-orphan", {with_seq(completed_run())});
  { const auto moved = [&] { auto s = t.starting("th-orphan"); return s; }(); }
  t.sweep_once();
  EXPECT_EQ(wait_final(other).status, ProposalStatus::completed);
}

// ---------------------------------------------------------------- workflow runs: same follower and tracker

TEST_F(TrackerTest, RunCompletesWithTheStatesOutputAndTheFilesItChanged) {
  ThreadScript s;
  s.events = with_seq(completed_run());  // last files: kFilesB
  s.state = json{{"thread_id", "th-run"}, {"status", "completed"}, {"generated_files", kFilesB},
                 {"result", {{"messages", {"Here is your briefing."}}, {"output", "Here is your briefing."}}}};
  engine_.set("th-run", s);
  // The run started with the Searcher as the stream ends with it: only plan.md changed.
  const json base = {{"/THE_CAST/Searcher.md", kFilesB["/THE_CAST/Searcher.md"]}};
  const auto id = run("th-run", base);
  const double before = runs_total("completed");
  auto& t = tracker();
  t.track_run(id, "th-run");
  auto r = wait_run_final(id);
  ASSERT_EQ(r.status, RunStatus::completed);
  EXPECT_EQ(r.output.value_or(""), "Here is your briefing.");
  ASSERT_TRUE(r.files.has_value());
  EXPECT_EQ(orchestrator::domain::files_to_json(*r.files),
            (json{{"/THE_SPEC/plan.md", kFilesB["/THE_SPEC/plan.md"]}}));
  EXPECT_FALSE(r.error.has_value());
  EXPECT_TRUE(t.wait_idle(5s));
  EXPECT_FALSE(load_run(id).lease_owner.has_value()) << "lease released after finishing";
  EXPECT_EQ(runs_total("completed"), before + 1);
  EXPECT_EQ(seen().size(), completed_run().size()) << "every event observed once";
  EXPECT_EQ(engine_.connects("th-run").size(), 1u) << "one upstream stream";
}

TEST_F(TrackerTest, RunEndedWithoutEndEventCompletesFromTheState) {
  ThreadScript s;
  s.events = with_seq(completed_run());
  s.drop_after = {2, 0, 0, 0};
  s.state = json{{"thread_id", "th-run-t"}, {"status", "completed"}, {"generated_files", kFilesB},
                 {"result", {{"messages", {"first", "Done: two files."}}}}};
  engine_.set("th-run-t", s);
  const auto id = run("th-run-t");
  tracker().track_run(id, "th-run-t");
  auto r = wait_run_final(id);
  ASSERT_EQ(r.status, RunStatus::completed);
  EXPECT_EQ(r.output.value_or(""), "Done: two files.") << "the last message when there is no output";
  EXPECT_EQ(orchestrator::domain::files_to_json(*r.files), kFilesB);
}

TEST_F(TrackerTest, RunFailedOnTheEngineIsFailedWithItsReason) {
  engine_.set("th-run-f", {with_seq({ev("on_state_update", {{"messages", "m"}}),
                                     ev("end", {{"status", "failed"}, {"error", "Run exceeded the step limit"}})})});
  const auto id = run("th-run-f");
  const double before = runs_total("failed");
  tracker().track_run(id, "th-run-f");
  auto r = wait_run_final(id);
  ASSERT_EQ(r.status, RunStatus::failed);
  EXPECT_NE(r.error.value_or("").find("The run failed on the engine: Run exceeded the step limit"), std::string::npos)
      << r.error.value_or("");
  EXPECT_EQ(r.failure_kind, "engine_failed");
  EXPECT_FALSE(r.output.has_value());
  EXPECT_EQ(runs_total("failed"), before + 1);
}

TEST_F(TrackerTest, RunTheEngineForgotFails) {
  const auto id = run("th-run-gone");
  tracker().track_run(id, "th-run-gone");
  auto r = wait_run_final(id);
  ASSERT_EQ(r.status, RunStatus::failed);
  EXPECT_NE(r.error.value_or("").find("no longer knows thread th-run-gone"), std::string::npos) << r.error.value_or("");
  EXPECT_EQ(r.failure_kind, "engine_gone");
}

TEST_F(TrackerTest, RunWithFilesThatCannotBeStoredFailsAsInvalidResult) {
  ThreadScript s;
  s.events = with_seq({ev("on_state_update", {{"files", {{"relative/path.md", {{"content", "x"}}}}}}),
                       ev("end", {{"status", "completed"}})});
  s.state = json{{"thread_id", "th-run-bad"}, {"status", "completed"}, {"result", {{"output", "done"}}}};
  engine_.set("th-run-bad", s);
  const auto id = run("th-run-bad");
  tracker().track_run(id, "th-run-bad");
  auto r = wait_run_final(id);
  ASSERT_EQ(r.status, RunStatus::failed);
  EXPECT_EQ(r.failure_kind, "invalid_result");
  EXPECT_NE(r.error.value_or("").find("cannot store"), std::string::npos) << r.error.value_or("");
}

TEST_F(TrackerTest, ARunAndAProposalAreTrackedSideBySide) {
  // Jobs are keyed by (kind, id): a run is one more job next to the proposals.
  ThreadScript s;
  s.live = true;
  s.events = with_seq({ev("on_state_update", {{"messages", "m"}})});
  s.state = json{{"thread_id", "th-p"}, {"status", "running"}};
  engine_.set("th-p", s);
  ThreadScript rs = s;
  rs.state = json{{"thread_id", "th-r"}, {"status", "running"}};
  engine_.set("th-r", rs);
  const auto pid = proposal("th-p");
  const auto rid = run("th-r");
  auto& t = tracker();
  t.track(pid, "th-p");
  t.track_run(rid, "th-r");
  t.track_run(rid, "th-r");  // no-op: already tracked
  ASSERT_TRUE(eventually([&] { return t.active() == 2; }));
  ASSERT_TRUE(eventually([&] { return load_run(rid).lease_owner.value_or("") == "test-replica"; }));
  t.stop();
  EXPECT_EQ(load(pid).status, ProposalStatus::processing);
  EXPECT_EQ(load_run(rid).status, RunStatus::processing);
  EXPECT_FALSE(load_run(rid).lease_owner.has_value()) << "stop releases the run's lease too";
}

TEST_F(TrackerTest, RunLeasesAreRenewedAndALostLeaseStopsTracking) {
  ThreadScript s;
  s.live = true;
  s.events = with_seq({ev("on_state_update", {{"messages", "m"}})});
  s.state = json{{"thread_id", "th-run-lease"}, {"status", "running"}};
  engine_.set("th-run-lease", s);
  const auto id = run("th-run-lease");
  auto o = options();
  o.lease_ttl = 600ms;  // renewed every 200 ms
  auto& t = tracker(o);
  t.start();
  t.track_run(id, "th-run-lease");
  ASSERT_TRUE(eventually([&] { return load_run(id).lease_owner.value_or("") == "test-replica"; }));
  const auto first = load_run(id).lease_expires_at.value_or("");
  ASSERT_TRUE(eventually([&] { return load_run(id).lease_expires_at.value_or("") > first; }, 3s)) << "renewed";
  {
    soci::session sql(db_->pool());
    // A named value: SOCI reads bound temporaries after they are destroyed.
    const std::string expires = core::to_rfc3339(std::chrono::system_clock::now() + 1h);
    sql << "UPDATE runs SET lease_owner = 'other', lease_expires_at = :e WHERE id = :id", soci::use(expires),
        soci::use(id);
  }
  ASSERT_TRUE(t.wait_idle(3s)) << "tracking stopped once the lease was lost";
  auto r = load_run(id);
  EXPECT_EQ(r.status, RunStatus::processing);
  EXPECT_EQ(r.lease_owner.value_or(""), "other") << "the new owner's lease is untouched";
  EXPECT_TRUE(eventually([&] { return engine_.open_streams("th-run-lease") == 0; })) << "upstream closed";
}

TEST_F(TrackerTest, SweepFailsOrphanRunsDeletesTheirThreadsAndResumesUnleasedRuns) {
  engine_.set("th-run-old", {with_seq(completed_run())});
  engine_.set("th-run-free", {with_seq(completed_run())});
  engine_.set("th-run-held", {with_seq(completed_run())});
  const auto old = run("th-run-old", kFilesA, core::to_rfc3339(std::chrono::system_clock::now() - 25h));
  const auto free = run("th-run-free");
  const auto held = run("th-run-held");
  {
    orchestrator::testing::LeasedUnit unit(*db_);
    auto& uow = unit.uow;
    ASSERT_TRUE(orchestrator::store::runs::acquire_lease(uow, free, "dead", core::now_rfc3339(),
                                                         "2000-01-01T00:00:00.000000Z"));
    ASSERT_TRUE(orchestrator::store::runs::acquire_lease(uow, held, "alive", core::now_rfc3339(),
                                                         core::to_rfc3339(std::chrono::system_clock::now() + 1h)));
  }
  const double before = runs_total("expired");
  auto& t = tracker();
  t.sweep_once();
  auto o = load_run(old);
  ASSERT_EQ(o.status, RunStatus::failed);
  EXPECT_NE(o.error.value_or("").find("abandoned"), std::string::npos) << o.error.value_or("");
  EXPECT_EQ(o.failure_kind, "expired");
  EXPECT_FALSE(o.engine_cleanup_pending) << "deleted in the same sweep";
  EXPECT_EQ(engine_.deleted(), std::vector<std::string>{"th-run-old"});
  EXPECT_EQ(runs_total("expired"), before + 1);
  EXPECT_EQ(wait_run_final(free).status, RunStatus::completed) << "an expired lease is taken over";
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(load_run(held).status, RunStatus::processing);
  EXPECT_TRUE(engine_.connects("th-run-held").empty()) << "a live replica's run is left to it";
  EXPECT_TRUE(engine_.connects("th-run-old").empty()) << "an orphan is never tracked";
}

TEST_F(TrackerTest, SweepDeletesTheThreadsOfRunsFinishedPastTheTtlOnce) {
  const auto finish = [&](const std::string& thread, const std::string& status, const std::string& completed_at) {
    const auto id = run(thread);
    soci::session sql(db_->pool());
    sql << "UPDATE runs SET status = :s, completed_at = :c WHERE id = :i", soci::use(status), soci::use(completed_at),
        soci::use(id);
    return id;
  };
  const std::string long_ago = core::to_rfc3339(std::chrono::system_clock::now() - 25h);
  const auto old_done = finish("th-run-done-old", "completed", long_ago);
  const auto old_failed = finish("th-run-failed-old", "failed", long_ago);
  const auto recent = finish("th-run-done-new", "completed", core::now_rfc3339());
  auto o = options();
  o.orphan_ttl = 24h;
  auto& t = tracker(o);
  t.sweep_once();
  auto deleted = engine_.deleted();
  std::sort(deleted.begin(), deleted.end());
  EXPECT_EQ(deleted, (std::vector<std::string>{"th-run-done-old", "th-run-failed-old"}));
  for (const auto& id : {old_done, old_failed}) {
    const auto r = load_run(id);
    EXPECT_FALSE(r.engine_cleanup_pending);
    EXPECT_TRUE(r.engine_thread_deleted_at.has_value()) << "the engine's confirmation is recorded";
  }
  EXPECT_EQ(load_run(old_done).status, RunStatus::completed) << "the run's record is kept";
  EXPECT_FALSE(load_run(recent).engine_cleanup_pending) << "a recent run keeps its thread (its stream replays)";
  EXPECT_FALSE(load_run(recent).engine_thread_deleted_at.has_value());
  t.sweep_once();
  EXPECT_EQ(engine_.deleted().size(), 2u) << "deleted once, not every sweep";
}

// A run failed because the engine could not be reached has its thread deleted at once, but the
// engine may create that thread later (it was still handling the invoke the orchestrator gave up
// on): the sweeper deletes it again every sweep until the unreachable grace has passed, then
// records the deletion once.
TEST_F(TrackerTest, AnUnreachableRunsThreadIsDeletedAgainUntilTheGracePassed) {
  const auto id = run("th-run-late");
  {
    soci::session sql(db_->pool());
    const std::string now = core::now_rfc3339();
    sql << "UPDATE runs SET status = 'failed', failure_kind = 'engine_unreachable', completed_at = :c, "
           "engine_cleanup_pending = 1 WHERE id = :i",
        soci::use(now), soci::use(id);
  }
  auto o = options();
  o.unreachable_grace = 3min;
  auto& t = tracker(o);
  t.sweep_once();
  EXPECT_EQ(engine_.deleted(), std::vector<std::string>{"th-run-late"});
  EXPECT_TRUE(load_run(id).engine_cleanup_pending) << "within the grace the deletion is not final";
  EXPECT_FALSE(load_run(id).engine_thread_deleted_at.has_value());
  // The slow engine creates the thread after all: the next sweep deletes it.
  engine_.set_state("th-run-late", json{{"status", "running"}});
  ASSERT_TRUE(engine_.has_thread("th-run-late"));
  t.sweep_once();
  EXPECT_EQ(engine_.deleted().size(), 2u);
  EXPECT_FALSE(engine_.has_thread("th-run-late"));
  // Once the failure is older than the grace, the next deletion is recorded, and it is the last.
  {
    soci::session sql(db_->pool());
    const std::string long_ago = core::to_rfc3339(std::chrono::system_clock::now() - 4min);
    sql << "UPDATE runs SET completed_at = :c WHERE id = :i", soci::use(long_ago), soci::use(id);
  }
  t.sweep_once();
  EXPECT_EQ(engine_.deleted().size(), 3u);
  EXPECT_FALSE(load_run(id).engine_cleanup_pending);
  EXPECT_TRUE(load_run(id).engine_thread_deleted_at.has_value());
  t.sweep_once();
  EXPECT_EQ(engine_.deleted().size(), 3u);
}

// As for proposals: while the run handler invokes the engine, the sweep leaves the run alone.
TEST_F(TrackerTest, SweepLeavesARunBeingStartedAlone) {
  const auto id = run("th-run-starting");  // the engine does not know the thread yet
  auto& t = tracker();
  {
    const auto starting = t.starting("th-run-starting");
    t.sweep_once();
    EXPECT_EQ(t.active(), 0u);
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(load_run(id).status, RunStatus::processing) << "not failed as gone";
    ThreadScript s;
    s.events = with_seq(completed_run());
    s.state = json{{"thread_id", "th-run-starting"}, {"status", "completed"}, {"result", {{"output", "Done."}}}};
    engine_.set("th-run-starting", s);  // the invoke was accepted
    t.track_run(id, "th-run-starting");
  }
  const auto r = wait_run_final(id);
  EXPECT_EQ(r.status, RunStatus::completed);
  EXPECT_EQ(r.output, "Done.");
}

TEST_F(TrackerTest, FollowsTheRunInsideTheTraceStoredWithTheProposal) {
  core::testing::SpanSink sink;
  auto evs = completed_run();
  evs.insert(evs.begin() + 2, ev("error", {{"error", "tool write_file failed; retrying"}}));
  engine_.set("th-trace", {with_seq(evs)});
  const std::string request = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const auto id = proposal("th-trace", core::now_rfc3339(), request);
  auto& t = tracker();
  t.track(id, "th-trace");
  ASSERT_EQ(wait_final(id).status, ProposalStatus::completed);
  ASSERT_TRUE(t.wait_idle(5s));
  const auto track = sink.named("proposal.track");
  ASSERT_EQ(track.size(), 1u);
  EXPECT_EQ(track[0]["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(track[0]["parentSpanId"], "00f067aa0ba902b7");  // the refinement's request
  ASSERT_EQ(track[0]["events"].size(), 1u);
  EXPECT_EQ(track[0]["events"][0]["name"], "engine.error");
  // The engine stream the tracker opened (the fake engine's server span) is in the trace.
  EXPECT_EQ(sink.children(track[0]["spanId"], "GET /spec-engine/stream/").size(), 1u);
  const auto finalise = sink.named("proposal.finalise");
  ASSERT_EQ(finalise.size(), 1u);
  EXPECT_EQ(finalise[0]["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(finalise[0]["parentSpanId"], track[0]["spanId"]);
  EXPECT_FALSE(finalise[0].contains("status"));
}
