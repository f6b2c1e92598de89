// The refinement use case (domain::RefinementService) on a real database with a fake engine port
// and a fake tracker port, and the engine job it sends (docs/engine-api.md#invoke,
// docs/orchestrator-api.md#refinements).
#include <atomic>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>

#include "orchestrator/domain/refinements.hpp"

#include "core/metrics.hpp"
#include "core/util.hpp"
#include "db_fixture.hpp"
#include "orchestrator/domain/error.hpp"
#include "orchestrator/domain/users.hpp"
#include "orchestrator/domain/workflows.hpp"

namespace {

using nlohmann::json;

json agent() {
  std::ifstream in(std::string(PROJECT_SOURCE_DIR) + "/config/refinement-agent.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

TEST(RefinementJob, CarriesThreadIdDefinitionPromptAndFiles) {
  orchestrator::domain::FileMap files;
  files["/THE_SPEC/plan.md"] = {{"# Plan", "1. step"}, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"};
  const json job = orchestrator::domain::build_refinement_job("0af7651916cd43dd8448eb211c80319c", "t-1", agent(),
                                                           "Add a reviewer.", std::string("/THE_SPEC/plan.md"),
                                                           std::string("1. step"), files);
  EXPECT_EQ(job["job_id"], "t-1");
  EXPECT_EQ(job["trace_id"], "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(job["agent_definition"]["graph"]["entryPoint"], "orchestrator");
  const auto& msg = job["input_payload"]["messages"][0];
  EXPECT_EQ(msg["role"], "user");
  const std::string content = msg["content"];
  EXPECT_NE(content.find("Add a reviewer."), std::string::npos);
  EXPECT_NE(content.find("/THE_SPEC/plan.md"), std::string::npos);
  EXPECT_NE(content.find("1. step"), std::string::npos);
  EXPECT_EQ(job["input_payload"]["files"]["/THE_SPEC/plan.md"]["content"][0], "# Plan");
}

TEST(RefinementAgent, ExplainsTheLayoutAndUsesOnlyKnownTools) {
  const json a = agent();
  const auto& nodes = a["graph"]["nodes"];
  ASSERT_GE(nodes.size(), 2u);
  const std::string prompt = nodes[0]["data"]["system_prompt"];
  for (const char* p : {"/THE_SPEC/constitution.md", "/THE_SPEC/requirements.md", "/THE_SPEC/plan.md",
                        "/THE_CAST/", "/definition.json", "edit_file", "write_todos"}) {
    EXPECT_NE(prompt.find(p), std::string::npos) << p;
  }
  const std::set<std::string> builtin = {"write_todos", "ls", "read_file", "write_file", "edit_file", "glob", "grep", "task"};
  std::set<std::string> ids;
  for (const auto& n : nodes) ids.insert(n["id"].get<std::string>());
  for (const auto& n : nodes) {
    for (const auto& t : n["data"]["tools"]) {
      EXPECT_TRUE(builtin.count(t.get<std::string>()) || ids.count(t.get<std::string>())) << t;
    }
  }
}

/// The tracker port: which threads are held as starting now, what was tracked; lease "replica-a", 30 s.
class FakeTracker : public orchestrator::domain::RefinementTracker {
 public:
  std::multiset<std::string> held;
  std::vector<std::pair<std::string, std::string>> tracked;
  std::vector<std::pair<std::string, std::string>> tracked_runs;  ///< track_run() calls (never by refinements)
  std::unique_ptr<Hold> starting(const std::string& thread_id) override {
    held.insert(thread_id);
    return std::make_unique<FakeHold>(this, thread_id);
  }
  std::string lease_owner() const override { return "replica-a"; }
  std::chrono::seconds lease_ttl() const override { return std::chrono::seconds(30); }
  void track(const std::string& proposal_id, const std::string& thread_id) override {
    tracked.emplace_back(proposal_id, thread_id);
  }
  void track_run(const std::string& run_id, const std::string& thread_id) override {
    tracked_runs.emplace_back(run_id, thread_id);
  }

 private:
  struct FakeHold : Hold {
    FakeHold(FakeTracker* t, std::string id) : tracker(t), thread(std::move(id)) {}
    ~FakeHold() override { tracker->held.erase(tracker->held.find(thread)); }
    FakeTracker* tracker;
    std::string thread;
  };
};

/// The engine port: records every job (and whether the tracker held its thread as starting
/// while it was sent), takes `delay` to answer (a timer: no thread waits) and answers with
/// `next`. `in_flight` / `most_in_flight` count the calls waiting for their answer. Its
/// coroutines run on the fixture's runtime, whose one I/O thread serializes them.
class FakeEngine : public orchestrator::domain::RefinementEngine {
 public:
  Outcome next = Outcome::accepted;
  std::chrono::milliseconds delay{0};
  const FakeTracker* tracker = nullptr;
  std::vector<json> jobs;
  std::vector<std::string> traceparents;
  std::vector<bool> held_while_sent;
  int in_flight = 0, most_in_flight = 0;
  core::async::Task<Answer> invoke(json job, std::string traceparent) override {
    jobs.push_back(job);
    traceparents.push_back(traceparent);
    held_while_sent.push_back(tracker && tracker->held.count(job["job_id"].get<std::string>()) > 0);
    most_in_flight = std::max(most_in_flight, ++in_flight);
    if (delay.count() > 0) co_await core::async::sleep_for(delay);
    --in_flight;
    if (next == Outcome::accepted) co_return Answer{};
    const std::string what = next == Outcome::unavailable ? "engine down" : "bad job";
    co_return Answer{next, what, std::make_exception_ptr(std::runtime_error(what))};
  }
};

double started(const char* outcome) {
  return core::metrics::global()
      .counter("ide_orchestrator_refinements_started_total", "")
      .value({{"outcome", outcome}});
}

template <class Backend>
class Refinements : public orchestrator::testing::DbTest<Backend> {
 protected:
  void SetUp() override {
    orchestrator::testing::DbTest<Backend>::SetUp();
    if (::testing::Test::IsSkipped() || ::testing::Test::HasFatalFailure()) return;
    using namespace orchestrator::domain;
    users = std::make_unique<UserService>(this->store(), orchestrator::auth::PasswordParams::minimal());
    templates = std::make_unique<TemplateLibrary>(std::filesystem::path(PROJECT_SOURCE_DIR) / "config/templates");
    workflows = std::make_unique<WorkflowService>(this->store(), *templates);
    proposals = std::make_unique<ProposalService>(this->store());
    engine.tracker = &tracker;
    rt.start();
    service = std::make_unique<RefinementService>(*proposals, engine, agent(), &tracker, rt);
    alice = users->create("ref-" + core::random_hex(4) + "@example.com", "Alice", "password-alice").id;
    CreateWorkflowInput in;
    in.name = "wf";
    in.files = FileMap{{"/THE_SPEC/plan.md", FileEntry{{"# Plan"}, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"}}};
    workflow = workflows->create(alice, in).workflow.id;
  }
  /// The runtime stops (its queued SQL done, its coroutines destroyed) before the services go.
  void TearDown() override { rt.stop(); }
  /// start() and retry() run to their end on the runtime (the test thread waits).
  orchestrator::domain::Proposal start(orchestrator::domain::RefinementRequest r) {
    return rt.run_sync(service->start(std::move(r))).proposal;
  }
  orchestrator::domain::RetryResult retry(const std::string& proposal_id) {
    return rt.run_sync(service->retry(alice, proposal_id, ""));
  }
  orchestrator::domain::RefinementRequest request(const std::string& prompt = "Add a reviewer.") {
    return {alice, workflow, prompt, std::string("/THE_SPEC/plan.md"), std::string("# Plan"),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"};
  }
  FakeTracker tracker;
  FakeEngine engine;
  /// One I/O thread and two blocking threads (the SQL steps).
  core::async::Runtime rt{{1, 2, "refinements-test"}};
  std::unique_ptr<orchestrator::domain::UserService> users;
  std::unique_ptr<orchestrator::domain::TemplateLibrary> templates;
  std::unique_ptr<orchestrator::domain::WorkflowService> workflows;
  std::unique_ptr<orchestrator::domain::ProposalService> proposals;
  std::unique_ptr<orchestrator::domain::RefinementService> service;
  std::string alice, workflow;
};
TYPED_TEST_SUITE(Refinements, orchestrator::testing::Backends, orchestrator::testing::BackendNames);

// Accepted: the proposal is recorded before the engine is called (the job carries its thread and
// base files, the request's trace id), holding this replica's tracker lease and the tracker's
// starting() hold while the engine is called (another replica's sweeper, or this one's, leaves it
// alone), then tracked and counted; the hold ends with the call.
TYPED_TEST(Refinements, AcceptedJobIsRecordedSentAndTracked) {
  const double before = started("accepted");
  const auto p = this->start(this->request());
  EXPECT_EQ(p.status, orchestrator::store::ProposalStatus::processing);
  ASSERT_EQ(this->engine.jobs.size(), 1u);
  const json& job = this->engine.jobs[0];
  EXPECT_EQ(job["job_id"], p.thread_id);
  EXPECT_EQ(job["trace_id"], "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(job["input_payload"]["files"]["/THE_SPEC/plan.md"]["content"][0], "# Plan");
  EXPECT_EQ(this->tracker.tracked, (std::vector<std::pair<std::string, std::string>>{{p.id, p.thread_id}}));
  const auto stored = this->proposals->get(this->alice, p.id).proposal;
  EXPECT_EQ(stored.status, orchestrator::store::ProposalStatus::processing);
  EXPECT_EQ(stored.lease_owner.value_or(""), "replica-a");
  EXPECT_TRUE(stored.lease_expires_at.has_value());
  EXPECT_EQ(this->engine.held_while_sent, std::vector<bool>{true});
  EXPECT_TRUE(this->tracker.held.empty());
  EXPECT_EQ(started("accepted"), before + 1);
}

// A retry runs on a fresh thread, held as starting while the engine is called, and is tracked.
TYPED_TEST(Refinements, RetryRunsAFreshThreadHeldWhileStarting) {
  this->engine.next = FakeEngine::Outcome::unavailable;
  EXPECT_THROW(this->start(this->request()), std::runtime_error);
  const auto failed = this->proposals->list(this->alice, this->workflow).items.at(0);
  this->engine.next = FakeEngine::Outcome::accepted;
  const auto r = this->retry(failed.id);
  EXPECT_EQ(r.previous.id, failed.id);
  EXPECT_NE(r.proposal.thread_id, failed.thread_id);
  EXPECT_EQ(this->engine.jobs.back()["job_id"], r.proposal.thread_id);
  EXPECT_EQ(this->engine.held_while_sent, (std::vector<bool>{true, true}));
  EXPECT_TRUE(this->tracker.held.empty());
  EXPECT_EQ(this->tracker.tracked,
            (std::vector<std::pair<std::string, std::string>>{{r.proposal.id, r.proposal.thread_id}}));
}

// Unavailable: the proposal fails as engine_unreachable (re-checked later), nothing is tracked,
// and the engine's own error reaches the caller (rendered 503).
TYPED_TEST(Refinements, UnavailableEngineFailsTheProposalAndRethrows) {
  this->engine.next = FakeEngine::Outcome::unavailable;
  const double before = started("engine_unavailable");
  EXPECT_THROW(
      {
        try {
          this->start(this->request());
        } catch (const std::runtime_error& e) {
          EXPECT_STREQ(e.what(), "engine down");
          throw;
        }
      },
      std::runtime_error);
  EXPECT_TRUE(this->tracker.tracked.empty());
  const auto thread = this->engine.jobs.at(0)["job_id"].template get<std::string>();
  const auto listed = this->proposals->list(this->alice, this->workflow).items;
  const auto it = std::find_if(listed.begin(), listed.end(), [&](const auto& p) { return p.thread_id == thread; });
  ASSERT_NE(it, listed.end());
  EXPECT_EQ(it->status, orchestrator::store::ProposalStatus::failed);
  EXPECT_EQ(it->failure_kind.value_or(""), "engine_unreachable");
  EXPECT_EQ(started("engine_unavailable"), before + 1);
}

// Rejected: failed as engine_rejected with the engine's reason.
TYPED_TEST(Refinements, RejectedJobFailsTheProposalWithTheReason) {
  this->engine.next = FakeEngine::Outcome::rejected;
  EXPECT_THROW(this->start(this->request()), std::runtime_error);
  const auto thread = this->engine.jobs.at(0)["job_id"].template get<std::string>();
  const auto listed = this->proposals->list(this->alice, this->workflow).items;
  const auto it = std::find_if(listed.begin(), listed.end(), [&](const auto& p) { return p.thread_id == thread; });
  ASSERT_NE(it, listed.end());
  EXPECT_EQ(it->failure_kind.value_or(""), "engine_rejected");
  EXPECT_NE(it->error.value_or("").find("bad job"), std::string::npos);
  EXPECT_TRUE(this->tracker.tracked.empty());
}

// A start waiting for the engine holds no thread: with two blocking threads, 12 starts wait for
// a slow engine at once (a start that held its thread while waiting would allow two), and each
// is recorded and tracked once the engine answered.
TYPED_TEST(Refinements, StartsWaitingForTheEngineHoldNoThread) {
  this->engine.delay = std::chrono::milliseconds(1500);
  constexpr int kStarts = 12;
  auto done = std::make_shared<std::atomic<int>>(0);  // outlives this test if it fails early
  for (int i = 0; i < kStarts; ++i) {
    this->rt.spawn(
        [](orchestrator::domain::RefinementService& s,
           orchestrator::domain::RefinementRequest r) -> core::async::Task<void> {
          core::async::Task<orchestrator::domain::CreatedProposal> started = s.start(std::move(r));
          (void)co_await std::move(started);
        }(*this->service, this->request()),
        [done](std::exception_ptr e) {
          EXPECT_TRUE(e == nullptr);
          ++*done;
        });
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (*done < kStarts && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_EQ(done->load(), kStarts);
  EXPECT_GE(this->engine.most_in_flight, kStarts / 2);  // the records overlap the 1.5 s waits
  EXPECT_EQ(this->tracker.tracked.size(), static_cast<std::size_t>(kStarts));
  EXPECT_TRUE(this->tracker.held.empty());
}

// Invalid input never reaches the engine and records nothing.
TYPED_TEST(Refinements, InvalidRequestsReachNoEngine) {
  EXPECT_THROW(this->start(this->request("")), orchestrator::domain::InvalidError);
  auto r = this->request();
  r.workflow_id = core::uuid4();
  EXPECT_THROW(this->start(r), orchestrator::domain::NotFoundError);
  EXPECT_TRUE(this->engine.jobs.empty());
  EXPECT_TRUE(this->proposals->list(this->alice, this->workflow).items.empty());
  EXPECT_TRUE(this->tracker.held.empty());
}

// Idempotency-Key (draft-ietf-httpapi-idempotency-key-header-06): the same request sent again
// with its key returns the recorded proposal and starts nothing; the key with another request is
// refused (IdempotencyKeyReusedError, 422) and leaves nothing behind; keys are per user; a
// replay is answered even when the user has no refinement slot left (it starts none).
TYPED_TEST(Refinements, AnIdempotencyKeySentAgainReplaysTheProposalAndStartsNothing) {
  using orchestrator::domain::IdempotencyKeyReusedError;
  auto r = this->request();
  r.idempotency_key = "key-" + core::uuid4();
  const auto first = this->rt.run_sync(this->service->start(r));
  EXPECT_FALSE(first.replayed);
  ASSERT_EQ(this->engine.jobs.size(), 1u);
  const auto again = this->rt.run_sync(this->service->start(r));
  EXPECT_TRUE(again.replayed);
  EXPECT_EQ(again.proposal.id, first.proposal.id);
  EXPECT_EQ(again.proposal.thread_id, first.proposal.thread_id);
  EXPECT_EQ(this->engine.jobs.size(), 1u);  // no second engine run
  EXPECT_EQ(this->tracker.tracked.size(), 1u);
  EXPECT_EQ(this->proposals->list(this->alice, this->workflow).items.size(), 1u);

  auto other_prompt = r;
  other_prompt.user_prompt = "Add a tester.";
  try {
    this->rt.run_sync(this->service->start(other_prompt));
    ADD_FAILURE() << "a reused key with another prompt was accepted";
  } catch (const IdempotencyKeyReusedError& e) {
    EXPECT_EQ(e.http_status(), 422);
    EXPECT_EQ(e.details()["id"], first.proposal.id);
  }
  auto no_context = r;
  no_context.context_selection.reset();
  EXPECT_THROW(this->rt.run_sync(this->service->start(no_context)), IdempotencyKeyReusedError);
  EXPECT_EQ(this->engine.jobs.size(), 1u);
  EXPECT_EQ(this->proposals->list(this->alice, this->workflow).items.size(), 1u);

  // Another user's key of the same text is another key.
  const std::string bob = this->users->create("bob-" + core::random_hex(4) + "@example.com", "Bob", "password-bob").id;
  orchestrator::domain::CreateWorkflowInput in;
  in.name = "bob's";
  const std::string bobs = this->workflows->create(bob, in).workflow.id;
  auto bobs_request = r;
  bobs_request.actor = bob;
  bobs_request.workflow_id = bobs;
  const auto by_bob = this->rt.run_sync(this->service->start(bobs_request));
  EXPECT_FALSE(by_bob.replayed);
  EXPECT_NE(by_bob.proposal.id, first.proposal.id);
  EXPECT_EQ(this->engine.jobs.size(), 2u);

  // No slot left (a cap of 1 refinement in progress, taken by the first): a replay is still
  // answered, a new key is refused.
  orchestrator::domain::ProposalService capped(this->store(), orchestrator::domain::ProposalLimits{1});
  orchestrator::domain::CreateProposalInput in2;
  in2.user_prompt = r.user_prompt;
  in2.context_file_path = r.context_file_path;
  in2.context_selection = r.context_selection;
  in2.thread_id = core::uuid4();
  in2.idempotency_key = r.idempotency_key;
  EXPECT_TRUE(capped.create(this->alice, this->workflow, in2).replayed);
  in2.idempotency_key = core::uuid4();
  EXPECT_THROW(capped.create(this->alice, this->workflow, in2), orchestrator::domain::LimitExceededError);
}

// Concurrent requests with one key record one proposal between them, at the per-user cap's edge
// (a cap of 1): each looks the key up under the user's row lock before counting, so the others
// are replayed, never refused by the cap (PostgreSQL; SQLite's write lock orders them anyway).
TYPED_TEST(Refinements, ConcurrentRequestsWithOneKeyStartOneRefinement) {
  constexpr int kRequests = 6;
  // Owned by the coroutines too, so that a test that fails early cannot leave them without it.
  struct Capped {
    Capped(orchestrator::store::Store& store, FakeEngine& engine, FakeTracker& tracker, core::async::Runtime& rt)
        : proposals(store, orchestrator::domain::ProposalLimits{1}),
          service(proposals, engine, agent(), &tracker, rt) {}
    orchestrator::domain::ProposalService proposals;
    orchestrator::domain::RefinementService service;
  };
  auto capped = std::make_shared<Capped>(this->store(), this->engine, this->tracker, this->rt);
  auto r = this->request();
  r.idempotency_key = core::uuid4();
  struct Outcomes {
    std::mutex mu;
    std::vector<orchestrator::domain::CreatedProposal> done;
    std::vector<std::string> errors;
  };
  auto out = std::make_shared<Outcomes>();
  for (int i = 0; i < kRequests; ++i) {
    this->rt.spawn(
        [](std::shared_ptr<Capped> s, orchestrator::domain::RefinementRequest req,
           std::shared_ptr<Outcomes> o) -> core::async::Task<void> {
          core::async::Task<orchestrator::domain::CreatedProposal> started = s->service.start(std::move(req));
          auto c = co_await std::move(started);
          std::lock_guard<std::mutex> lk(o->mu);
          o->done.push_back(std::move(c));
        }(capped, r, out),
        [out](std::exception_ptr e) {
          if (!e) return;
          std::lock_guard<std::mutex> lk(out->mu);
          try {
            std::rethrow_exception(e);
          } catch (const std::exception& ex) {
            out->errors.push_back(ex.what());
          }
        });
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    {
      std::lock_guard<std::mutex> lk(out->mu);
      if (out->done.size() + out->errors.size() == kRequests) break;
    }
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::lock_guard<std::mutex> lk(out->mu);
  EXPECT_TRUE(out->errors.empty()) << out->errors.front();
  ASSERT_EQ(out->done.size(), static_cast<std::size_t>(kRequests));
  int fresh = 0;
  for (const auto& c : out->done) {
    fresh += c.replayed ? 0 : 1;
    EXPECT_EQ(c.proposal.id, out->done.front().proposal.id);
  }
  EXPECT_EQ(fresh, 1);
  EXPECT_EQ(this->engine.jobs.size(), 1u);
  EXPECT_EQ(this->proposals->list(this->alice, this->workflow).items.size(), 1u);
}

// Keys the rule refuses (empty, too long, control bytes) are InvalidError("Idempotency-Key").
TYPED_TEST(Refinements, AnUnusableIdempotencyKeyIsRefusedBeforeAnythingIsWritten) {
  for (const std::string& bad : {std::string(), std::string(256, 'k'), std::string("a\x01b"), std::string(" padded")}) {
    auto r = this->request();
    r.idempotency_key = bad;
    try {
      this->start(r);
      ADD_FAILURE() << "accepted key '" << bad << "'";
    } catch (const orchestrator::domain::InvalidError& e) {
      EXPECT_EQ(e.field(), "Idempotency-Key");
    }
  }
  auto r = this->request();
  r.idempotency_key = std::string(255, 'k');  // the longest accepted
  EXPECT_FALSE(this->rt.run_sync(this->service->start(r)).replayed);
  EXPECT_EQ(this->engine.jobs.size(), 1u);
}

}  // namespace
