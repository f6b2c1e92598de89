#pragma once
// Rows and SQL of deployments and workflow runs (migrations/orchestrator/*/0006_runs.sql).
// Like repositories.hpp: thin functions over a unit of work (store/unit_of_work.hpp), no
// authorization, no state-machine checks (domain/runs.hpp does those); throw the database
// driver's error on failures (a dead connection is handled by Store::run).

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "orchestrator/domain/files.hpp"
#include "orchestrator/store/tx.hpp"

namespace orchestrator::store {

/// deployments row: the version a workflow runs when a run names none.
struct DeploymentRecord {
  std::string workflow_id, version_id, deployed_by, deployed_at;
  long long version_number = 0;  ///< joined from versions
};

/// Run lifecycle: processing -> completed | failed | cancelled (all final).
enum class RunStatus { processing, completed, failed, cancelled };
/// Lower-case name as stored and shown.
const char* to_string(RunStatus s);

/// runs row.
struct RunRecord {
  std::string id, workflow_id;
  std::optional<std::string> version_id;  ///< null for a run of the draft (or a deleted version)
  std::optional<long long> version_number;  ///< null for a run of the draft
  std::optional<long long> draft_revision;  ///< the draft revision a draft run executed
  std::string thread_id;                    ///< engine thread (= engine job_id), unique
  RunStatus status = RunStatus::processing;
  std::string input;                        ///< the user's message
  std::optional<std::string> output;        ///< the final assistant message (completed runs)
  domain::FileMap base_files;               ///< the files the run started with (version or draft)
  std::optional<domain::FileMap> files;     ///< files the run added or changed (completed runs)
  std::optional<std::string> error;         ///< why it failed or was cancelled
  /// Why a failed run failed: a domain::FailureKind name ("engine_gone", ...); null otherwise.
  std::optional<std::string> failure_kind;
  std::string created_by_user_id, created_at;
  std::optional<std::string> completed_at;
  std::optional<std::string> lease_owner, lease_expires_at;
  bool engine_cleanup_pending = false;
  std::optional<std::string> engine_thread_deleted_at;  ///< when the engine confirmed the deletion
  /// Idempotency-Key of the request that started it (migration 0009); nullopt = none sent.
  /// Unique per created_by_user_id.
  std::optional<std::string> idempotency_key;
  /// With idempotency_key: the target the request named, "deployed", "draft" or the version
  /// number (migration 0009).
  std::optional<std::string> idempotency_target;
};

namespace deployments {
/// Records `version_id` as the workflow's deployed version (insert or replace).
void upsert(UnitOfWork& uow, const std::string& workflow_id, const std::string& version_id,
            const std::string& by, const std::string& at);
/// The workflow's deployment, or nullopt when nothing was deployed.
std::optional<DeploymentRecord> find(UnitOfWork& uow, const std::string& workflow_id);
}  // namespace deployments

namespace runs {
/// Inserts the row (status, output, files, error, failure_kind, completed_at, the lease columns
/// and idempotency_key as given; engine_cleanup_pending = 0). Returns false, inserting nothing,
/// when `r.idempotency_key` is set and its creator already has a run with that key. Throws
/// soci::soci_error on a duplicate id or thread_id (unique).
bool insert(UnitOfWork& uow, const RunRecord& r);
/// The run `user_id` started with this Idempotency-Key (migration 0009), without its file trees
/// (as list), or nullopt.
std::optional<RunRecord> find_by_idempotency_key(UnitOfWork& uow, const std::string& user_id, const std::string& key);
/// The run with this id, or nullopt.
std::optional<RunRecord> find(UnitOfWork& uow, const std::string& id);
/// The run of this engine thread, or nullopt.
std::optional<RunRecord> find_by_thread(UnitOfWork& uow, const std::string& thread_id);
/// Runs of a workflow, newest first (created_at DESC, id DESC), keyset after `after`; without
/// their file trees (base_files empty, files nullopt; find has them).
std::vector<RunRecord> list(UnitOfWork& uow, const std::string& workflow_id, int limit,
                            const std::optional<CursorKey>& after);
/// Runs in `processing` started by `user_id` (the per-user cap, domain/run_quota.hpp).
long long count_processing_by_user(UnitOfWork& uow, const std::string& user_id);
/// What a finishing transition writes besides the status.
struct Finish {
  std::string completed_at;
  std::optional<std::string> output, error;
  std::optional<std::string> failure_kind;  ///< failed runs: a domain::FailureKind name
  std::optional<domain::FileMap> files;
  bool mark_cleanup = false;  ///< engine_cleanup_pending = 1 (delete the engine thread)
};
/// processing -> `to` with `f`, clearing the lease; rows changed (0 = it already left processing).
long long finish(UnitOfWork& uow, const std::string& id, RunStatus to, const Finish& f);
/// Every run in processing, oldest first (tracker start-up and takeover).
std::vector<RunRecord> list_processing(UnitOfWork& uow);
/// (id, thread_id) of processing runs created before `before` (RFC 3339).
std::vector<std::pair<std::string, std::string>> list_processing_before(UnitOfWork& uow, const std::string& before);
/// (id, thread_id) with engine_cleanup_pending = 1, oldest first, at most `limit`.
std::vector<std::pair<std::string, std::string>> list_pending_cleanup(UnitOfWork& uow, int limit);
/// engine_cleanup_pending = 0 and engine_thread_deleted_at = `at` (the engine confirmed the
/// deletion); true when done. Not done (false) for a run failed as engine_unreachable at a
/// completed_at after `unsure_after` (RFC 3339): its cleanup stays pending.
bool clear_cleanup(UnitOfWork& uow, const std::string& id, const std::string& at, const std::string& unsure_after);
/// Schedules the engine-thread deletion (engine_cleanup_pending = 1) of at most `limit` runs that
/// finished (completed, failed or cancelled) before `before` (RFC 3339) and whose thread was
/// neither scheduled nor deleted yet, oldest first, in ONE statement; returns their thread ids.
std::vector<std::string> schedule_finished_cleanup(UnitOfWork& uow, const std::string& before, int limit);
/// (id, thread_id) of the workflow's runs in `processing`, oldest first.
std::vector<std::pair<std::string, std::string>> list_processing_for_workflow(UnitOfWork& uow,
                                                                              const std::string& workflow_id);
/// Schedules the engine-thread deletion of every finished run of the workflow whose thread was
/// neither scheduled nor deleted yet; returns how many were scheduled.
long long schedule_workflow_cleanup(UnitOfWork& uow, const std::string& workflow_id);
/// Lease columns, as for proposals (store/sql_helpers.hpp).
bool acquire_lease(UnitOfWork& uow, const std::string& id, const std::string& owner, const std::string& now,
                   const std::string& expires);
bool renew_lease(UnitOfWork& uow, const std::string& id, const std::string& owner, const std::string& expires);
void release_lease(UnitOfWork& uow, const std::string& id, const std::string& owner);
/// Extends every lease `owner` holds on a processing run to `expires`, in ONE statement; returns
/// the ids it still holds.
std::vector<std::string> renew_leases(UnitOfWork& uow, const std::string& owner, const std::string& expires);
/// (id, thread_id) of processing runs `owner` may track: lease free, expired before `now`, or its
/// own; oldest first, at most `limit`.
std::vector<std::pair<std::string, std::string>> list_claimable(UnitOfWork& uow, const std::string& owner,
                                                                const std::string& now, int limit);
}  // namespace runs

}  // namespace orchestrator::store
