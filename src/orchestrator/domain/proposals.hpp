#pragma once
// Proposals: the result of one refinement run, reviewed by a person (see
// docs/orchestrator-api.md#proposals, #hybrid-event-processing).
//
// State machine (anything else -> PreconditionError {"current_status"}):
//   processing -> completed   finalise()          (tracker; idempotent)
//   processing -> failed      finalise_failed()   (tracker; idempotent), fail_stale() (TTL)
//   processing -> cancelled   cancel()
//   completed  -> approved    approve()           (files applied to the draft)
//   completed  -> rejected    reject()
//   failed     -> rejected    reject()
// Every transition is a conditional UPDATE ... WHERE status IN (...) whose affected-row
// count decides the winner, so racing approve/reject calls have exactly one winner on
// SQLite and PostgreSQL. approve/reject/cancel/fail_stale set engine_cleanup_pending: the
// tracker deletes the engine thread (list_pending_cleanup / mark_cleaned). Proposals that stay
// `failed` (nobody rejects them) are scheduled the same way once they are older than the
// orphan TTL (schedule_failed_cleanup).
//
// Visibility: a proposal is visible to users in proposal_access (the creator gets
// "owner"; the workflow owner gets "reviewer") who are still members of the workflow;
// invisible -> NotFoundError("proposal").

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "orchestrator/store/unit_of_work.hpp"
#include "orchestrator/domain/diff.hpp"
#include "orchestrator/domain/drafts.hpp"
#include "orchestrator/domain/files.hpp"
#include "orchestrator/domain/merge.hpp"
#include "orchestrator/store/records.hpp"
#include "orchestrator/store/tx.hpp"

namespace orchestrator::domain {

using Proposal = store::ProposalRecord;
using store::ProposalStatus;

/// POST /api/workflows/{id}/refinements input.
struct CreateProposalInput {
  std::string user_prompt;                       ///< 1..20000 bytes
  std::optional<std::string> context_file_path;  ///< an absolute workflow path
  std::optional<std::string> context_selection;  ///< <= 20000 bytes
  std::string thread_id;  ///< engine thread/job id chosen by the caller (1..128 of [A-Za-z0-9_-])
  /// Tracker lease written with the row: the replica that records the proposal and invokes the
  /// engine holds it (lease_owner, expiring lease_ttl from now), so another replica's sweeper
  /// cannot take over a proposal whose invoke is still in flight (the engine would not know the
  /// thread yet, and the proposal would be failed as gone). "" = no lease (no tracker).
  std::string lease_owner;
  std::chrono::seconds lease_ttl{0};  ///< with lease_owner; at least 1 s
  /// W3C traceparent of the starting request, stored with the proposal ("" = none).
  std::string traceparent;
  /// The request's Idempotency-Key (draft-ietf-httpapi-idempotency-key-header-06), 1..255
  /// characters of visible ASCII; nullopt = none. Stored with the proposal: see create().
  std::optional<std::string> idempotency_key;
};

/// What ProposalService::create() did.
struct CreatedProposal {
  /// The proposal recorded now, or (replayed) the one recorded before with the same
  /// Idempotency-Key, as it is now (without its file trees, as find_summary).
  Proposal proposal;
  bool replayed = false;  ///< true: nothing was written; do not start another engine run
};

/// GET /api/proposals/{id}: the proposal plus a per-file change summary of what the run
/// changed relative to the files it started from (base_files -> base_files overlaid with
/// generated_files: added | modified | unchanged with +/- line counts; "deleted" never
/// occurs because proposals do not delete, see proposal_changes). Empty while there are no
/// generated files.
struct ProposalDetail {
  Proposal proposal;
  std::vector<FileChange> changes;
};

/// Result of approve(): the approved proposal and the draft after the files were applied.
struct ApproveResult {
  Proposal proposal;
  Draft draft;
  std::vector<std::string> applied_paths;  ///< paths written or deleted in the draft
};

/// Result of retry(): the new proposal (processing, on the current draft) and the one it re-runs
/// as it is after the call (a completed one is rejected as superseded).
struct RetryResult {
  Proposal proposal;
  Proposal previous;
};

/// Result of finalise()/finalise_failed()/restore_completed(): `changed` is false for the
/// idempotent no-op (the proposal had already left `processing`). From finalise() and
/// finalise_failed() the proposal comes without its file trees (generated_files nullopt,
/// base_files empty): the tracker has the files it passed, and reading them back parsed both
/// trees once more per finished refinement; restore_completed() returns them.
struct FinaliseResult {
  bool changed = false;
  Proposal proposal;
};

/// A proposal and its engine thread (e.g. one waiting for deletion, or one to track).
struct CleanupItem {
  std::string proposal_id, thread_id;
};
using ProposalThread = CleanupItem;

/// Why a proposal failed (stored in proposals.failure_kind). Only `engine_unreachable` is not
/// final: the engine may have finished the run after all (ProposalService::restore_completed).
enum class FailureKind {
  engine_failed,       ///< the engine reported the run failed or cancelled
  engine_gone,         ///< the engine no longer knows the thread (404)
  engine_unreachable,  ///< the engine could not be reached (the run may still have completed)
  engine_rejected,     ///< the engine refused the job
  expired,             ///< still processing after the orphan TTL
  invalid_result,      ///< the engine's files could not be stored
};
/// Stored name, e.g. "engine_unreachable".
const char* to_string(FailureKind k);

/// Limits applied by ProposalService.
struct ProposalLimits {
  /// Refinements and workflow runs one user may have in `processing` at once; <= 0 = no cap
  /// (see run_quota.hpp).
  int max_concurrent_runs_per_user = 0;
};

/// Proposal operations. Thread-safe.
class ProposalService {
 public:
  /// Keeps a reference to `store` (must outlive the service); each call runs its database work
  /// as units of work (store::Store::run). No database access here; never throws.
  explicit ProposalService(store::Store& store, ProposalLimits limits = {});

  /// Starts a proposal in `processing`: creates the workflow's draft if missing, snapshots
  /// its files as base_files (seed these into the engine run), grants proposal_access to the
  /// actor ("owner") and the workflow owner ("reviewer"), audits "proposal.create".
  /// Owner/editor only (ForbiddenError), NotFoundError for invisible workflows,
  /// InvalidError("user_prompt" | "context_file_path" | "context_selection" | "thread_id"),
  /// ConflictError when thread_id is already used, LimitExceededError when the actor already
  /// has ProposalLimits::max_concurrent_runs_per_user refinements processing (checked in the
  /// same transaction as the insert, see require_run_slot).
  /// With an idempotency_key the actor already used for a proposal: nothing is written and that
  /// proposal is returned (replayed) when it was started on the same workflow with the same
  /// user_prompt, context_file_path and context_selection, else IdempotencyKeyReusedError.
  /// Two concurrent requests with one key record one proposal between them (the user's row lock,
  /// taken before the key is looked up and the cap checked, and a unique index), and the second
  /// is replayed, never refused by the cap.
  /// InvalidError("Idempotency-Key") for a key that is empty, longer than 255 or not visible ASCII.
  CreatedProposal create(const std::string& actor, const std::string& workflow_id, const CreateProposalInput& in);
  /// Whether `actor` already has a proposal created with this Idempotency-Key (any request).
  bool key_used(const std::string& actor, const std::string& key);

  /// The proposal with its change summary.
  ProposalDetail get(const std::string& actor, const std::string& proposal_id);

  /// The proposal behind an engine thread (for the WebSocket proxy's authorization);
  /// NotFoundError("thread") if unknown or invisible.
  Proposal get_by_thread(const std::string& actor, const std::string& thread_id);
  /// When the actor may watch the stream of `thread_id` (access::watch_thread: an enabled account,
  /// and the rule of get_by_thread for a proposal's thread, membership for a run's): the
  /// proposal's stored W3C traceparent ("" = none, or a run's thread); nullopt otherwise. One
  /// query without file trees: the WebSocket proxy asks at every upgrade and again every
  /// WsProxyOptions::recheck_interval per stream.
  std::optional<std::string> watch(const std::string& actor, const std::string& thread_id);

  /// Unified diff (domain/diff.hpp) of generated_files against the workflow's current draft,
  /// files in path order; only paths the proposal changes relative to base_files are shown
  /// (the same rule approve() applies). Empty string when there is nothing to show.
  /// PreconditionError while the proposal has no generated files.
  std::string diff(const std::string& actor, const std::string& proposal_id);

  /// Proposals of a workflow visible to the actor, newest first, without their file trees
  /// (generated_files nullopt, base_files empty; get() has them).
  store::Page<Proposal> list(const std::string& actor, const std::string& workflow_id,
                             const store::PageRequest& page = {});

  /// Proposals the actor may see across all workflows (the same rule as list(): proposal_access
  /// while still a member; deleted workflows excluded), newest first, only those in `statuses`
  /// when non-empty; without file trees, as list(). InvalidError("limit" | "cursor").
  store::Page<Proposal> list_visible(const std::string& actor, const std::vector<ProposalStatus>& statuses,
                                     const store::PageRequest& page = {});

  /// Re-runs a refinement with the same prompt and context on the workflow's CURRENT draft: a
  /// new `processing` proposal (created as by create(), with `thread_id` chosen by the caller)
  /// for a proposal that is failed, cancelled, rejected, or completed (e.g. after its approve
  /// conflicted; it is rejected in the same transaction as superseded by the new one).
  /// Each proposal is re-run at most once: ConflictError {"retry_proposal_id"} when it already
  /// was (racing retries start one refinement); PreconditionError {"current_status"} while it is
  /// processing or once approved. Needs proposal access (NotFoundError) and owner/editor
  /// (ForbiddenError). Audits "proposal.retry" {retry_of} on the new proposal (and
  /// "proposal.reject" {reason, retry} on a superseded one). LimitExceededError as create().
  /// `traceparent` (W3C, of the retry request) is stored with the new proposal.
  RetryResult retry(const std::string& actor, const std::string& proposal_id, const std::string& thread_id,
                    const std::string& traceparent = {});

  /// Grants another workflow member access ("reviewer" | "viewer"). The actor needs access;
  /// the grantee must be a member (else NotFoundError("user")).
  void grant_access(const std::string& actor, const std::string& proposal_id, const std::string& user_id,
                    const std::string& access_type);

  // ---- decisions by a person (actor needs proposal access and owner/editor role)

  /// completed -> approved. In ONE transaction: claims the proposal (conditional UPDATE),
  /// bumps the draft revision and applies the proposal's changes three-way per file against
  /// base_files: the proposal changed a path if generated_files holds it with content other
  /// than base_files (added or modified; paths missing from generated_files are left alone);
  /// the draft changed it if the current draft differs from base_files there. Both changed (to different results) -> ConflictError naming the paths, and
  /// nothing is applied (the proposal stays completed); its details also carry
  /// {"retry": {"method": "POST", "href": "/api/proposals/<id>/retry"}}, the way forward (retry()).
  /// Audits "proposal.approve".
  ApproveResult approve(const std::string& actor, const std::string& proposal_id);

  /// completed | failed -> rejected. `reason` (optional, <= 2000 bytes) goes to the audit log.
  Proposal reject(const std::string& actor, const std::string& proposal_id, const std::string& reason = "");

  /// processing -> cancelled (the tracker then deletes the engine thread).
  Proposal cancel(const std::string& actor, const std::string& proposal_id);

  // ---- system operations (tracker / sweeper; no actor, no visibility checks)

  /// processing -> completed with `generated_files`, clearing the tracker lease in the same
  /// update; second and later calls (or calls after any other transition) are no-ops returning
  /// changed=false. NotFoundError("thread") if unknown.
  FinaliseResult finalise(const std::string& thread_id, const FileMap& generated_files);

  /// processing -> failed with `error` (truncated to 4000 bytes) and `kind`, clearing the lease;
  /// idempotent like finalise().
  FinaliseResult finalise_failed(const std::string& thread_id, const std::string& error,
                                 FailureKind kind = FailureKind::engine_failed);

  /// failed (kind engine_unreachable) -> completed with `generated_files`: the engine finished the
  /// run after all. Clears the error, audits "proposal.restored" with the error it replaces.
  /// changed=false when the proposal is not such a failure (idempotent). NotFoundError("thread").
  FinaliseResult restore_completed(const std::string& thread_id, const FileMap& generated_files);

  /// Failed proposals of kind engine_unreachable whose engine thread still exists (not scheduled
  /// for deletion), oldest first: the ones restore_completed() may bring back.
  std::vector<ProposalThread> list_unreachable_failures(int limit = 100);

  /// Re-labels an engine_unreachable failure once the engine gave its final word (`kind`, e.g.
  /// engine_failed or engine_gone), so it is no longer re-checked. No-op for other proposals, and
  /// for one that failed less than `failed_at_least` ago (it stays engine_unreachable).
  void settle_unreachable_failure(const std::string& proposal_id, FailureKind kind,
                                  std::chrono::milliseconds failed_at_least = std::chrono::milliseconds{0});

  /// Fails every processing proposal created more than `ttl` ago (docs/orchestrator-api.md#proposals: 24 h), marks
  /// their engine threads for cleanup and returns the thread ids.
  std::vector<std::string> fail_stale(std::chrono::seconds ttl);

  /// Schedules the engine-thread deletion of proposals that failed more than `ttl` ago and were
  /// never rejected (so nothing else deletes their thread), at most `limit` per call, each only
  /// once (engine_thread_deleted_at records the confirmed deletion). Returns their thread ids.
  std::vector<std::string> schedule_failed_cleanup(std::chrono::seconds ttl, int limit = 100);

  /// Resolved proposals whose engine thread still has to be deleted, oldest first.
  std::vector<CleanupItem> list_pending_cleanup(int limit = 100);
  /// Clears engine_cleanup_pending after the engine confirmed the deletion (or said 404).
  void mark_cleaned(const std::string& proposal_id);

  /// All processing proposals (tracker start-up: resume one tracker per proposal).
  std::vector<Proposal> list_processing();

  /// Tracker lease (one tracker per proposal across replicas, docs/orchestrator-api.md#hybrid-event-processing): takes the lease
  /// if it is free, expired, or already `owner`'s, and the proposal is processing.
  bool try_acquire_lease(const std::string& proposal_id, const std::string& owner, std::chrono::seconds ttl);
  /// The W3C traceparent stored with the proposal (CreateProposalInput::traceparent); "" when it
  /// has none or is unknown. No access check (the tracker's view).
  std::string traceparent_of(const std::string& proposal_id);
  /// Extends `owner`'s lease; false if it was lost (stop tracking) or the proposal left processing.
  bool renew_lease(const std::string& proposal_id, const std::string& owner, std::chrono::seconds ttl);
  /// Releases `owner`'s lease (no-op if not held).
  void release_lease(const std::string& proposal_id, const std::string& owner);
  /// Extends every lease `owner` holds to now + `ttl` in one statement; returns the ids of the
  /// processing proposals it still holds (a proposal missing from the list was lost or left
  /// processing: stop tracking it).
  std::vector<std::string> renew_leases(const std::string& owner, std::chrono::milliseconds ttl);
  /// Processing proposals `owner` may track now (lease free, expired, or its own), oldest first.
  std::vector<ProposalThread> list_claimable(const std::string& owner, int limit = 1000);

 private:
  /// create() inside the caller's transaction (input already validated); nullopt, writing
  /// nothing, when the actor already has a proposal with in.idempotency_key.
  std::optional<Proposal> insert(store::UnitOfWork& uow, const std::string& actor, const store::WorkflowRecord& wf,
                                 const CreateProposalInput& in);
  Proposal decide(const std::string& actor, const std::string& proposal_id, const std::vector<ProposalStatus>& from,
                  ProposalStatus to, const char* action, const std::string& reason);
  FinaliseResult finish(const std::string& thread_id, ProposalStatus to, const std::optional<FileMap>& files,
                        const std::optional<std::string>& error, std::optional<FailureKind> kind);
  store::Store& store_;
  ProposalLimits limits_;
};

/// Checks an engine thread id chosen by the caller (proposals and runs): 1 to 128 of
/// [A-Za-z0-9_-]; InvalidError("thread_id") otherwise.
void check_thread_id(const std::string& thread_id);

}  // namespace orchestrator::domain
