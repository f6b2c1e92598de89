#pragma once
// Workflow runs (README "Runs"): a run executes one version's /definition.json (the deployed
// version unless the caller names one, or the draft) on the Spec Engine, with the user's
// message and that version's files. The engine thread's stream is followed by the tracker
// (tracker/tracker.hpp), which finalises the run whether or not anyone watches.
//
// State machine (final states never change):
//   processing -> completed   complete()   (tracker; idempotent; output + files recorded)
//   processing -> failed      fail()       (tracker, or the engine job could not be started;
//                                          idempotent; with a FailureKind), fail_stale()
//   processing -> cancelled   cancel()     (the engine thread is deleted, which stops the run);
//                                          also when the workflow is deleted (WorkflowService::remove)
// Transitions are conditional UPDATEs (WHERE status = 'processing'), so exactly one wins.
//
// Engine threads: a cancelled, expired or unstartable run's thread is scheduled for deletion at
// once; a completed or failed run keeps its thread (its stream can be replayed) until it is
// older than the orphan TTL, then schedule_finished_cleanup() schedules it. The tracker's
// sweeper deletes scheduled threads (list_pending_cleanup / mark_cleaned), each once; a run failed
// because the engine was unreachable, again every sweep until the unreachable grace passed.
//
// Authorization is the workflow's (domain/access.hpp): every member (viewers too) may list and
// read runs and watch their streams; starting and cancelling need owner or editor; running the
// draft is an editor's way to test before publishing. Starting counts against the per-user cap
// shared with refinements (run_quota.hpp).

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "orchestrator/domain/files.hpp"
#include "orchestrator/domain/proposals.hpp"
#include "orchestrator/store/runs.hpp"
#include "orchestrator/store/tx.hpp"
#include "orchestrator/store/unit_of_work.hpp"

namespace orchestrator::domain {

using Run = store::RunRecord;
using store::RunStatus;

/// Which version a run executes.
struct RunTarget {
  enum class Kind { deployed, version, draft };
  Kind kind = Kind::deployed;
  long long number = 0;  ///< Kind::version
};

/// POST /api/workflows/{id}/runs input.
struct StartRunInput {
  std::string input;      ///< the user's message, 1..20000 bytes, not only whitespace
  RunTarget target;
  std::string thread_id;  ///< engine thread/job id chosen by the caller (1..128 of [A-Za-z0-9_-])
  /// Tracker lease written with the row, as for proposals (CreateProposalInput::lease_owner):
  /// the replica that records the run and invokes the engine holds it, so another replica's
  /// sweeper cannot take the run over while the invoke is in flight. "" = no lease.
  std::string lease_owner;
  std::chrono::seconds lease_ttl{0};  ///< with lease_owner; at least 1 s
  /// The request's Idempotency-Key (domain/idempotency.hpp); nullopt = none. See start().
  std::optional<std::string> idempotency_key;
};

/// A run and its engine thread (one to track, or one whose thread is to be deleted).
struct RunThread {
  std::string run_id, thread_id;
};

/// A recorded run and what to send to the engine for it.
struct StartedRun {
  Run run;
  nlohmann::json definition;  ///< the parsed /definition.json (the job's agent_definition)
  FileMap files;              ///< the version's (or draft's) files, seeded into the run
  /// true: `run` is the one an earlier request with the same Idempotency-Key started, as it is
  /// now (without file trees); nothing was written, `definition` and `files` are empty, and no
  /// engine job is to be sent.
  bool replayed = false;
};

/// Result of complete()/fail(): `changed` false for the idempotent no-op.
struct RunFinish {
  bool changed = false;
  Run run;
};

/// Run operations. Thread-safe.
class RunService {
 public:
  /// Keeps a reference to `store`; `limits.max_concurrent_runs_per_user` is the shared cap. Every
  /// method is one unit of work or a few (store::Store::run): a dead connection is retried once
  /// when safe, else store::DatabaseUnavailable (503 + Retry-After).
  explicit RunService(store::Store& store, ProposalLimits limits = {});

  /// Resolves the target's files and /definition.json and records the run in `processing`
  /// (audits "run.start"). Owner/editor only (ForbiddenError), NotFoundError for an invisible
  /// workflow or unknown version; PreconditionError when the target is the deployment and
  /// nothing is deployed, or the draft and there is none; InvalidError("input" | "thread_id" |
  /// "/definition.json"); LimitExceededError when the actor is at the per-user cap.
  /// With an idempotency_key the actor already used for a run: nothing is written and that run
  /// is returned (StartedRun::replayed) when it was started on the same workflow with the same
  /// input and the same target as named (the deployed version, the draft, or version N: a
  /// request naming version 1 is not the same as one naming the deployed version 1), else
  /// IdempotencyKeyReusedError; InvalidError("Idempotency-Key") as ProposalService::create. The
  /// key is looked up again under the user's row lock, before the per-user cap is checked, so a
  /// concurrent resend is replayed, never refused by the cap.
  StartedRun start(const std::string& actor, const std::string& workflow_id, const StartRunInput& in);

  /// One run of the workflow (NotFoundError("run") if absent or invisible).
  Run get(const std::string& actor, const std::string& workflow_id, const std::string& run_id);
  /// Runs of the workflow, newest first.
  store::Page<Run> list(const std::string& actor, const std::string& workflow_id, const store::PageRequest& page = {});
  /// processing -> cancelled (owner/editor); PreconditionError {"current_status"} once final.
  /// The engine thread is scheduled for deletion (the caller deletes it right away too).
  Run cancel(const std::string& actor, const std::string& workflow_id, const std::string& run_id);
  /// True if `actor` may watch the stream of `thread_id` (access::watch_thread: an account that
  /// exists, is not disabled and is a member of the run's workflow, not deleted).
  bool can_watch(const std::string& actor, const std::string& thread_id);

  // ---- system operations (tracker; no actor)

  /// processing -> completed with the final assistant message and the run's files at its end, of
  /// which the files it added or changed (relative to base_files) are kept. Idempotent.
  /// NotFoundError("thread") if no run has that thread.
  RunFinish complete(const std::string& thread_id, const std::string& output, const FileMap& files);
  /// processing -> failed with `error` (a sentence, truncated to 4000 bytes) and `kind` (stored
  /// as failure_kind, as for proposals). Idempotent. `delete_thread`: also schedule the engine
  /// thread for deletion (a job whose invoke got no answer may still have been accepted:
  /// deleting the thread stops it). NotFoundError("thread") if no run has that thread.
  RunFinish fail(const std::string& thread_id, const std::string& error, FailureKind kind,
                 bool delete_thread = false);
  /// Fails runs still processing after `ttl` (failure_kind expired; their engine thread is
  /// deleted); returns the threads.
  std::vector<std::string> fail_stale(std::chrono::seconds ttl);
  /// Schedules the engine-thread deletion of runs that finished more than `ttl` ago and whose
  /// thread is still kept, at most `limit` per call, each once; returns their thread ids.
  std::vector<std::string> schedule_finished_cleanup(std::chrono::seconds ttl, int limit = 100);
  /// Runs whose engine thread must be deleted, oldest first.
  std::vector<RunThread> list_pending_cleanup(int limit = 100);
  /// The engine confirmed the deletion (recorded in engine_thread_deleted_at); true when
  /// recorded. A run failed as engine_unreachable less than `unsure_for` ago stays pending
  /// (false): the engine may still create its thread from the invoke the orchestrator gave up
  /// on (a DELETE before that finds nothing), so the sweeper deletes it again until that much
  /// time has passed (TrackerOptions::unreachable_grace).
  bool mark_cleaned(const std::string& run_id, std::chrono::milliseconds unsure_for = std::chrono::milliseconds{0});
  /// Every processing run.
  std::vector<Run> list_processing();
  /// Leases, as ProposalService's: one tracker per run across replicas.
  bool try_acquire_lease(const std::string& run_id, const std::string& owner, std::chrono::seconds ttl);
  bool renew_lease(const std::string& run_id, const std::string& owner, std::chrono::seconds ttl);
  void release_lease(const std::string& run_id, const std::string& owner);
  /// Extends every lease `owner` holds to now + `ttl` in one statement; returns the ids of the
  /// processing runs it still holds (a run missing from the list was lost or left processing).
  std::vector<std::string> renew_leases(const std::string& owner, std::chrono::milliseconds ttl);
  /// Processing runs `owner` may track now (lease free, expired, or its own), oldest first.
  std::vector<RunThread> list_claimable(const std::string& owner, int limit = 1000);

 private:
  RunFinish finish(const std::string& thread_id, RunStatus to, const store::runs::Finish& f, const char* action);
  store::Store& store_;
  ProposalLimits limits_;
};

}  // namespace orchestrator::domain
