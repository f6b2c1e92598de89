// Workflow runs (domain/runs.hpp) on a real database: SQLite always, PostgreSQL when TEST_PG_URL is set.

#include <algorithm>
#include <mutex>
#include <thread>

#include "orchestrator/domain/runs.hpp"
#include "services_fixture.hpp"

/// The service fixture plus runs; refinements and runs share a per-user cap of 2.
template <class Backend>
class Runs : public Services<Backend> {
 protected:
  void SetUp() override {
    Services<Backend>::SetUp();
    if (::testing::Test::IsSkipped() || ::testing::Test::HasFatalFailure()) return;
    runs = std::make_unique<RunService>(this->store(), ProposalLimits{2});
    this->proposals = std::make_unique<ProposalService>(this->store(), ProposalLimits{2});
    CreateWorkflowInput in;
    in.name = "runs";
    in.template_name = "single-agent";
    wf = this->workflows->create(this->alice, in).workflow.id;
  }

  StartRunInput input(RunTarget target = {}) {
    StartRunInput in;
    in.input = "What is a vector clock?";
    in.target = target;
    in.thread_id = core::uuid4();
    return in;
  }

  std::unique_ptr<RunService> runs;
  std::string wf;
};

TYPED_TEST_SUITE(Runs, orchestrator::testing::Backends, orchestrator::testing::BackendNames);

TYPED_TEST(Runs, TheDeployedVersionRunsAndFinishesOnce) {
  EXPECT_THROW(this->runs->start(this->alice, this->wf, this->input()), PreconditionError);  // nothing deployed
  this->workflows->publish(this->alice, this->wf);
  this->workflows->publish(this->alice, this->wf);
  EXPECT_EQ(this->workflows->deploy(this->alice, this->wf, 1).version.number, 1);
  const auto started = this->runs->start(this->alice, this->wf, this->input());
  EXPECT_EQ(started.run.version_number, 1);
  EXPECT_EQ(started.run.status, RunStatus::processing);
  EXPECT_EQ(started.definition["graph"]["entryPoint"], "ResearchAssistant");
  EXPECT_TRUE(started.files.count("/definition.json"));
  // Completion keeps only the files the run added or changed.
  FileMap end = started.files;
  end["/answer.md"] = F({"42"});
  end["/THE_SPEC/plan.md"] = F({"changed"});
  const auto done = this->runs->complete(started.run.thread_id, "The answer is 42.", end);
  ASSERT_TRUE(done.changed);
  EXPECT_EQ(done.run.status, RunStatus::completed);
  EXPECT_EQ(done.run.output, "The answer is 42.");
  ASSERT_TRUE(done.run.files);
  EXPECT_EQ(done.run.files->size(), 2u);
  EXPECT_TRUE(done.run.files->count("/answer.md"));
  // Final states never change: a late failure or a second completion is a no-op.
  EXPECT_FALSE(this->runs->fail(started.run.thread_id, "late", FailureKind::engine_failed).changed);
  EXPECT_FALSE(this->runs->complete(started.run.thread_id, "again", end).changed);
  EXPECT_EQ(this->runs->get(this->alice, this->wf, started.run.id).output, "The answer is 42.");
  EXPECT_THROW(this->runs->complete("no-such-thread", "x", {}), NotFoundError);
  // The list carries no file trees (get has them).
  const auto listed = this->runs->list(this->alice, this->wf).items;
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].output, "The answer is 42.");
  EXPECT_FALSE(listed[0].files);
  EXPECT_TRUE(listed[0].base_files.empty());
  EXPECT_EQ(this->runs->get(this->alice, this->wf, started.run.id).files->size(), 2u);
  EXPECT_FALSE(this->runs->get(this->alice, this->wf, started.run.id).base_files.empty());
}

TYPED_TEST(Runs, AuthorizationIsTheWorkflows) {
  this->workflows->publish(this->alice, this->wf);
  this->workflows->deploy(this->alice, this->wf);
  const auto r = this->runs->start(this->alice, this->wf, this->input()).run;
  // Bob is a stranger: nothing is visible.
  EXPECT_THROW(this->runs->get(this->bob, this->wf, r.id), NotFoundError);
  EXPECT_THROW(this->runs->list(this->bob, this->wf), NotFoundError);
  EXPECT_FALSE(this->runs->can_watch(this->bob, r.thread_id));
  // As a viewer he reads and watches, but neither starts nor cancels.
  this->workflows->set_member(this->alice, this->wf, this->bob, "viewer");
  EXPECT_EQ(this->runs->get(this->bob, this->wf, r.id).id, r.id);
  EXPECT_EQ(this->runs->list(this->bob, this->wf).items.size(), 1u);
  EXPECT_TRUE(this->runs->can_watch(this->bob, r.thread_id));
  EXPECT_THROW(this->runs->start(this->bob, this->wf, this->input()), ForbiddenError);
  EXPECT_THROW(this->runs->cancel(this->bob, this->wf, r.id), ForbiddenError);
  // As an editor he runs the draft.
  this->workflows->set_member(this->alice, this->wf, this->bob, "editor");
  RunTarget draft;
  draft.kind = RunTarget::Kind::draft;
  const auto d = this->runs->start(this->bob, this->wf, this->input(draft)).run;
  EXPECT_FALSE(d.version_number);
  EXPECT_EQ(d.draft_revision, 1);
  // A run is found only under its own workflow.
  CreateWorkflowInput other;
  other.name = "other";
  other.template_name = "single-agent";
  const auto w2 = this->workflows->create(this->alice, other).workflow.id;
  EXPECT_THROW(this->runs->get(this->alice, w2, r.id), NotFoundError);
}

TYPED_TEST(Runs, CancelAndTheSharedCap) {
  this->workflows->publish(this->alice, this->wf);
  this->workflows->deploy(this->alice, this->wf);
  const auto a = this->runs->start(this->alice, this->wf, this->input()).run;
  CreateProposalInput p;
  p.user_prompt = "add an agent";
  p.thread_id = core::uuid4();
  this->proposals->create(this->alice, this->wf, p);  // the second slot of 2
  try {
    this->runs->start(this->alice, this->wf, this->input());
    ADD_FAILURE() << "the cap of 2 is shared by runs and refinements";
  } catch (const LimitExceededError& e) {
    EXPECT_EQ(e.details()["kind"], "run");
    EXPECT_EQ(e.details()["in_progress"], 2);
  }
  const auto c = this->runs->cancel(this->alice, this->wf, a.id);
  EXPECT_EQ(c.status, RunStatus::cancelled);
  EXPECT_TRUE(c.engine_cleanup_pending);
  try {
    this->runs->cancel(this->alice, this->wf, a.id);
    ADD_FAILURE() << "a final run cannot be cancelled";
  } catch (const PreconditionError& e) {
    EXPECT_EQ(e.details()["current_status"], "cancelled");
  }
  auto pending = [&] {
    for (const auto& item : this->runs->list_pending_cleanup(1000))
      if (item.run_id == a.id) return true;
    return false;
  };
  EXPECT_TRUE(pending());
  this->runs->mark_cleaned(a.id);
  EXPECT_FALSE(pending());
  EXPECT_NO_THROW(this->runs->start(this->alice, this->wf, this->input()));  // the slot is free again
}

TYPED_TEST(Runs, LeasesAndStaleRuns) {
  this->workflows->publish(this->alice, this->wf);
  this->workflows->deploy(this->alice, this->wf);
  const auto r = this->runs->start(this->alice, this->wf, this->input()).run;
  EXPECT_TRUE(this->runs->try_acquire_lease(r.id, "replica-a", 30s));
  EXPECT_FALSE(this->runs->try_acquire_lease(r.id, "replica-b", 30s));
  EXPECT_TRUE(this->runs->renew_lease(r.id, "replica-a", 30s));
  EXPECT_FALSE(this->runs->renew_lease(r.id, "replica-b", 30s));
  this->runs->release_lease(r.id, "replica-a");
  EXPECT_TRUE(this->runs->try_acquire_lease(r.id, "replica-b", 30s));
  // The database is shared by the suite's tests: look at this test's run only.
  auto processing = [&] {
    for (const auto& p : this->runs->list_processing())
      if (p.id == r.id) return true;
    return false;
  };
  EXPECT_TRUE(processing());
  for (const auto& t : this->runs->fail_stale(1h)) EXPECT_NE(t, r.thread_id);
  const auto failed = this->runs->fail_stale(0s);
  EXPECT_NE(std::find(failed.begin(), failed.end(), r.thread_id), failed.end());
  const auto after = this->runs->get(this->alice, this->wf, r.id);
  EXPECT_EQ(after.status, RunStatus::failed);
  EXPECT_FALSE(after.lease_owner);
  EXPECT_FALSE(processing());
}

TYPED_TEST(Runs, RenewAllLeasesClaimAndFailedStarts) {
  this->workflows->publish(this->alice, this->wf);
  this->workflows->deploy(this->alice, this->wf);
  const auto a = this->runs->start(this->alice, this->wf, this->input()).run;
  const auto b = this->runs->start(this->alice, this->wf, this->input()).run;
  const std::string owner = "replica-" + core::random_hex(4);  // the database is shared by the suite
  auto claimable = [&](const std::string& who) {
    std::vector<std::string> ids;
    for (const auto& item : this->runs->list_claimable(who)) ids.push_back(item.run_id);
    return ids;
  };
  auto has = [](const std::vector<std::string>& v, const std::string& id) {
    return std::find(v.begin(), v.end(), id) != v.end();
  };
  EXPECT_TRUE(has(claimable(owner), a.id)) << "an unleased run can be claimed";
  ASSERT_TRUE(this->runs->try_acquire_lease(a.id, owner, 30s));
  ASSERT_TRUE(this->runs->try_acquire_lease(b.id, owner, 30s));
  EXPECT_TRUE(has(claimable(owner), a.id)) << "its own lease";
  EXPECT_FALSE(has(claimable("someone-else"), a.id)) << "a live lease of another replica";
  auto held = this->runs->renew_leases(owner, 60000ms);
  std::sort(held.begin(), held.end());
  std::vector<std::string> both{a.id, b.id};
  std::sort(both.begin(), both.end());
  EXPECT_EQ(held, both) << "one statement renews every lease the owner holds";
  // An invoke that got no answer: failed, and the engine thread scheduled for deletion.
  EXPECT_TRUE(this->runs->fail(b.thread_id, "The engine could not be reached", FailureKind::engine_unreachable, true)
                  .changed);
  EXPECT_EQ(this->runs->renew_leases(owner, 60000ms), std::vector<std::string>{a.id}) << "b left processing";
  auto pending = [&](const std::string& id) {
    for (const auto& item : this->runs->list_pending_cleanup(1000))
      if (item.run_id == id) return true;
    return false;
  };
  EXPECT_TRUE(pending(b.id));
  EXPECT_TRUE(this->runs->fail(a.thread_id, "The engine rejected the job", FailureKind::engine_rejected).changed);
  EXPECT_FALSE(pending(a.id)) << "a rejected job left nothing on the engine";
  const auto failed_b = this->runs->get(this->alice, this->wf, b.id);
  EXPECT_EQ(failed_b.status, RunStatus::failed);
  EXPECT_EQ(failed_b.failure_kind, "engine_unreachable");
  EXPECT_EQ(this->runs->get(this->alice, this->wf, a.id).failure_kind, "engine_rejected");
}

TYPED_TEST(Runs, FailedRunsSayWhyOthersHaveNoFailureKind) {
  this->workflows->publish(this->alice, this->wf);
  this->workflows->deploy(this->alice, this->wf);
  const auto gone = this->runs->start(this->alice, this->wf, this->input()).run;
  const auto stale = this->runs->start(this->alice, this->wf, this->input()).run;
  EXPECT_FALSE(this->runs->get(this->alice, this->wf, gone.id).failure_kind) << "processing";
  const auto r = this->runs->fail(gone.thread_id, "The engine no longer knows thread x.", FailureKind::engine_gone);
  ASSERT_TRUE(r.changed);
  EXPECT_EQ(r.run.failure_kind, "engine_gone");
  // A second failure changes nothing, not even the kind.
  EXPECT_FALSE(this->runs->fail(gone.thread_id, "again", FailureKind::invalid_result).changed);
  EXPECT_EQ(this->runs->get(this->alice, this->wf, gone.id).failure_kind, "engine_gone");
  for (const auto& t : this->runs->fail_stale(0s)) (void)t;
  const auto expired = this->runs->get(this->alice, this->wf, stale.id);
  EXPECT_EQ(expired.status, RunStatus::failed);
  EXPECT_EQ(expired.failure_kind, "expired");
  EXPECT_TRUE(expired.engine_cleanup_pending);
  // Completed and cancelled runs have none.
  const auto done = this->runs->start(this->alice, this->wf, this->input()).run;
  EXPECT_FALSE(this->runs->complete(done.thread_id, "ok", {}).run.failure_kind);
  const auto cancelled = this->runs->start(this->alice, this->wf, this->input()).run;
  EXPECT_FALSE(this->runs->cancel(this->alice, this->wf, cancelled.id).failure_kind);
}

TYPED_TEST(Runs, ARunIsRecordedHoldingItsReplicasLease) {
  this->workflows->publish(this->alice, this->wf);
  this->workflows->deploy(this->alice, this->wf);
  const std::string owner = "replica-" + core::random_hex(4);
  auto in = this->input();
  in.lease_owner = owner;
  in.lease_ttl = 30s;
  const auto r = this->runs->start(this->alice, this->wf, in).run;
  EXPECT_EQ(r.lease_owner, owner);
  ASSERT_TRUE(r.lease_expires_at);
  EXPECT_GT(*r.lease_expires_at, core::to_rfc3339(std::chrono::system_clock::now() + 20s));
  EXPECT_FALSE(this->runs->try_acquire_lease(r.id, "another-replica", 30s)) << "another replica's sweeper keeps off";
  for (const auto& item : this->runs->list_claimable("another-replica")) EXPECT_NE(item.run_id, r.id);
  EXPECT_TRUE(this->runs->try_acquire_lease(r.id, owner, 30s)) << "the recording replica tracks it";
  EXPECT_FALSE(this->runs->start(this->alice, this->wf, this->input()).run.lease_owner) << "no owner, no lease";
}

TYPED_TEST(Runs, FinishedRunsKeepTheirThreadForTheTtlThenItIsDeletedOnce) {
  this->workflows->publish(this->alice, this->wf);
  this->workflows->deploy(this->alice, this->wf);
  const auto done = this->runs->start(this->alice, this->wf, this->input()).run;
  const auto failed = this->runs->start(this->alice, this->wf, this->input()).run;
  this->runs->complete(done.thread_id, "ok", {});
  this->runs->fail(failed.thread_id, "The run failed on the engine: boom", FailureKind::engine_failed);
  const auto running = this->runs->start(this->alice, this->wf, this->input()).run;  // within the cap of 2
  auto has = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  EXPECT_FALSE(has(this->runs->schedule_finished_cleanup(1h, 1000), done.thread_id)) << "kept within the TTL";
  EXPECT_FALSE(this->runs->get(this->alice, this->wf, done.id).engine_cleanup_pending);
  const auto scheduled = this->runs->schedule_finished_cleanup(0s, 1000);
  EXPECT_TRUE(has(scheduled, done.thread_id));
  EXPECT_TRUE(has(scheduled, failed.thread_id));
  EXPECT_FALSE(has(scheduled, running.thread_id)) << "a processing run keeps its thread";
  EXPECT_FALSE(has(this->runs->schedule_finished_cleanup(0s, 1000), done.thread_id)) << "scheduled once";
  auto pending = [&](const std::string& id) {
    for (const auto& item : this->runs->list_pending_cleanup(1000))
      if (item.run_id == id) return true;
    return false;
  };
  EXPECT_TRUE(pending(done.id));
  this->runs->mark_cleaned(done.id);
  EXPECT_FALSE(pending(done.id));
  const auto cleaned = this->runs->get(this->alice, this->wf, done.id);
  EXPECT_TRUE(cleaned.engine_thread_deleted_at);
  EXPECT_EQ(cleaned.output, "ok") << "the run's record stays";
  EXPECT_FALSE(has(this->runs->schedule_finished_cleanup(0s, 1000), done.thread_id)) << "never deleted twice";
}

TYPED_TEST(Runs, DeletingTheWorkflowCancelsItsRunsAndDeletesTheirThreads) {
  this->workflows->publish(this->alice, this->wf);
  this->workflows->deploy(this->alice, this->wf);
  const auto running = this->runs->start(this->alice, this->wf, this->input()).run;
  const auto done = this->runs->start(this->alice, this->wf, this->input()).run;
  this->runs->complete(done.thread_id, "ok", {});
  const auto deleted = this->workflows->remove(this->alice, this->wf);
  EXPECT_NE(std::find(deleted.cancelled_threads.begin(), deleted.cancelled_threads.end(), running.thread_id),
            deleted.cancelled_threads.end());
  EXPECT_GE(deleted.threads_scheduled, 2);
  EXPECT_THROW(this->runs->get(this->alice, this->wf, running.id), NotFoundError);
  EXPECT_FALSE(this->runs->can_watch(this->alice, running.thread_id));
  std::vector<std::string> pending;
  for (const auto& item : this->runs->list_pending_cleanup(1000)) pending.push_back(item.run_id);
  EXPECT_NE(std::find(pending.begin(), pending.end(), running.id), pending.end());
  EXPECT_NE(std::find(pending.begin(), pending.end(), done.id), pending.end());
  for (const auto& r : this->runs->list_processing()) EXPECT_NE(r.id, running.id) << "cancelled";
  EXPECT_FALSE(this->runs->complete(running.thread_id, "late", {}).changed) << "a cancelled run stays cancelled";
}

TYPED_TEST(Runs, BadInputNamesTheField) {
  this->workflows->publish(this->alice, this->wf);
  this->workflows->deploy(this->alice, this->wf);
  auto in = this->input();
  in.input = "  \n";
  try {
    this->runs->start(this->alice, this->wf, in);
    ADD_FAILURE();
  } catch (const InvalidError& e) {
    EXPECT_EQ(e.field(), "input");
  }
  RunTarget v9;
  v9.kind = RunTarget::Kind::version;
  v9.number = 9;
  EXPECT_THROW(this->runs->start(this->alice, this->wf, this->input(v9)), NotFoundError);
}

// Idempotency-Key: the same start sent again returns the recorded run (replayed, nothing written,
// no job to send); the key with another input or target is refused (422) and writes nothing; a
// replay is answered at the per-user cap; a new key starts a new run.
TYPED_TEST(Runs, AnIdempotencyKeySentAgainReplaysTheRun) {
  this->workflows->publish(this->alice, this->wf);
  this->workflows->deploy(this->alice, this->wf);
  auto in = this->input();
  in.idempotency_key = core::uuid4();
  const auto first = this->runs->start(this->alice, this->wf, in);
  EXPECT_FALSE(first.replayed);
  in.thread_id = core::uuid4();  // each request draws a fresh thread id
  const auto again = this->runs->start(this->alice, this->wf, in);
  EXPECT_TRUE(again.replayed);
  EXPECT_EQ(again.run.id, first.run.id);
  EXPECT_EQ(again.run.thread_id, first.run.thread_id);
  EXPECT_TRUE(again.files.empty());
  EXPECT_EQ(this->runs->list(this->alice, this->wf).items.size(), 1u);

  auto other_input = in;
  other_input.input = "And a Lamport clock?";
  EXPECT_THROW(this->runs->start(this->alice, this->wf, other_input), IdempotencyKeyReusedError);
  auto draft_target = in;
  draft_target.target.kind = RunTarget::Kind::draft;
  try {
    this->runs->start(this->alice, this->wf, draft_target);
    ADD_FAILURE() << "the key was accepted for another target";
  } catch (const IdempotencyKeyReusedError& e) {
    EXPECT_EQ(e.details()["resource"], "run");
    EXPECT_EQ(e.details()["id"], first.run.id);
  }
  RunTarget v1;
  v1.kind = RunTarget::Kind::version;
  v1.number = 1;
  auto named = in;
  named.target = v1;  // the deployed version is 1, but the request names another target
  EXPECT_THROW(this->runs->start(this->alice, this->wf, named), IdempotencyKeyReusedError);
  EXPECT_EQ(this->runs->list(this->alice, this->wf).items.size(), 1u);
  auto named_first = named;
  named_first.idempotency_key = core::uuid4();
  EXPECT_FALSE(this->runs->start(this->alice, this->wf, named_first).replayed);
  named_first.target = {};  // and the other way round
  EXPECT_THROW(this->runs->start(this->alice, this->wf, named_first), IdempotencyKeyReusedError);

  // At the cap of 2 (the first run and the one naming version 1): the replay is still answered.
  auto fresh = this->input();
  fresh.idempotency_key = core::uuid4();
  EXPECT_TRUE(this->runs->start(this->alice, this->wf, in).replayed);
  fresh.idempotency_key = core::uuid4();
  fresh.thread_id = core::uuid4();
  EXPECT_THROW(this->runs->start(this->alice, this->wf, fresh), LimitExceededError);
  auto bad = this->input();
  bad.idempotency_key = std::string(256, 'k');
  EXPECT_THROW(this->runs->start(this->alice, this->wf, bad), InvalidError);
}

// Concurrent starts with one key, at the per-user cap's edge (2, one slot taken): one run is
// recorded and every other request is replayed, none refused by the cap (each looks the key up
// under the user's row lock, before counting).
TYPED_TEST(Runs, ConcurrentStartsWithOneKeyRecordOneRunAndReplayTheRest) {
  this->workflows->publish(this->alice, this->wf);
  this->workflows->deploy(this->alice, this->wf);
  this->runs->start(this->alice, this->wf, this->input());  // takes one of the 2 slots
  constexpr int kRequests = 6;
  const std::string key = core::uuid4();
  std::mutex mu;
  std::vector<StartedRun> done;
  std::vector<std::string> errors;
  std::vector<std::thread> threads;
  for (int i = 0; i < kRequests; ++i) {
    threads.emplace_back([&] {
      auto in = this->input();
      in.idempotency_key = key;
      try {
        auto s = this->runs->start(this->alice, this->wf, in);
        std::lock_guard<std::mutex> lk(mu);
        done.push_back(std::move(s));
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lk(mu);
        errors.push_back(e.what());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_TRUE(errors.empty()) << errors.front();
  ASSERT_EQ(done.size(), static_cast<std::size_t>(kRequests));
  int fresh = 0;
  for (const auto& s : done) {
    fresh += s.replayed ? 0 : 1;
    EXPECT_EQ(s.run.id, done.front().run.id);
  }
  EXPECT_EQ(fresh, 1);
  EXPECT_EQ(this->runs->list(this->alice, this->wf).items.size(), 2u);
}
