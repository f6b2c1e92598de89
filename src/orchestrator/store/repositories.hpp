#pragma once
// SQL repositories: thin functions over a unit of work (store/unit_of_work.hpp), one code path
// for SQLite and PostgreSQL. They do no authorization and no state-machine checks (the
// domain services do); multi-row writes are the caller's to wrap in a store::Tx.
// All throw the database driver's error on failures (a dead connection is handled by
// Store::run; store::is_database_error tells the driver's errors apart).

#include <optional>
#include <string>
#include <vector>

#include "orchestrator/store/records.hpp"
#include "orchestrator/store/tx.hpp"

namespace orchestrator::store {

namespace users {
/// Inserts; returns false if the e-mail is taken (unique constraint checked first).
bool insert(UnitOfWork& uow, const UserRecord& u);
/// The user with exactly this e-mail (case-sensitive match), or nullopt.
std::optional<UserRecord> find_by_email(UnitOfWork& uow, const std::string& email);
/// The user with this id (UUID text), or nullopt.
std::optional<UserRecord> find_by_id(UnitOfWork& uow, const std::string& id);
/// Serialises writers acting for one user until the transaction ends: SELECT ... FOR UPDATE
/// of the users row on PostgreSQL; a no-op on SQLite, whose store::Tx (BEGIN IMMEDIATE)
/// already holds the database write lock. Call inside a store::Tx.
void lock(UnitOfWork& uow, core::db::Dialect dialect, const std::string& id);
/// The user id linked to the external identity (issuer, subject), or nullopt.
std::optional<std::string> find_identity(UnitOfWork& uow, const std::string& issuer, const std::string& subject);
/// True if `user_id` is linked to some subject of `issuer`.
bool has_identity_from(UnitOfWork& uow, const std::string& user_id, const std::string& issuer);
/// Inserts the link; throws soci::soci_error when (issuer, subject) is already linked (primary
/// key) or the user does not exist (foreign key).
void insert_identity(UnitOfWork& uow, const IdentityRecord& r);
/// External identities linked to `user_id`, oldest first.
std::vector<IdentityRecord> list_identities(UnitOfWork& uow, const std::string& user_id);
/// Every user, oldest first (created_at, id), keyset after `after`; fetches `limit` rows.
std::vector<UserRecord> list(UnitOfWork& uow, int limit, const std::optional<CursorKey>& after);
/// disabled_at = `at` (disable) or NULL (enable, `at` = nullopt). False if the user does not exist.
bool set_disabled(UnitOfWork& uow, const std::string& id, const std::optional<std::string>& at);
/// Replaces the password hash and sets tokens_not_before = `not_before` (RFC 3339). False if the
/// user does not exist.
bool set_password(UnitOfWork& uow, const std::string& id, const std::string& password_hash,
                  const std::string& not_before);
}  // namespace users

namespace workflows {
/// Inserts the workflows row (`role` is ignored; add members with upsert_member). Throws
/// soci::soci_error on a duplicate id or an unknown owner_id (foreign key).
void insert(UnitOfWork& uow, const WorkflowRecord& w);
/// Adds or updates a member's role ("owner" | "editor" | "viewer").
void upsert_member(UnitOfWork& uow, const std::string& workflow_id, const std::string& user_id,
                   const std::string& role, const std::string& at);
/// The workflow as seen by `user_id` (role filled), or nullopt if absent or not a member.
std::optional<WorkflowRecord> find_for_user(UnitOfWork& uow, const std::string& id, const std::string& user_id);
/// Workflows `user_id` belongs to, newest first, keyset after `after`; fetches `limit` rows.
/// find_for_user and list_for_user never return soft-deleted workflows (deleted_at set).
std::vector<WorkflowRecord> list_for_user(UnitOfWork& uow, const std::string& user_id, int limit,
                                          const std::optional<CursorKey>& after);
/// Members of a workflow with their e-mail and name, most recently added first (added_at DESC,
/// user_id DESC), keyset on (added_at, user_id).
std::vector<MemberRecord> list_members(UnitOfWork& uow, const std::string& workflow_id, int limit,
                                       const std::optional<CursorKey>& after);
/// The member row of `user_id` in the workflow, or nullopt.
std::optional<MemberRecord> find_member(UnitOfWork& uow, const std::string& workflow_id,
                                        const std::string& user_id);
/// Deletes the member row; true if there was one.
bool remove_member(UnitOfWork& uow, const std::string& workflow_id, const std::string& user_id);
/// Sets name, description and updated_at = `at` of a workflow that is not deleted; true if it changed a row.
bool update(UnitOfWork& uow, const std::string& id, const std::string& name, const std::string& description,
            const std::string& at);
/// Soft delete: deleted_at = `at`, deleted_by = `by` unless already deleted; true if this call deleted it.
bool soft_delete(UnitOfWork& uow, const std::string& id, const std::string& by, const std::string& at);
/// Sets updated_at = `at` (RFC 3339 UTC); no-op if the workflow does not exist.
void touch(UnitOfWork& uow, const std::string& id, const std::string& at);
}  // namespace workflows

namespace drafts {
/// The workflow's draft (at most one per workflow), or nullopt if it has none.
std::optional<DraftRecord> find_by_workflow(UnitOfWork& uow, const std::string& workflow_id);
/// The draft with this id, or nullopt.
std::optional<DraftRecord> find(UnitOfWork& uow, const std::string& id);
/// Locks the draft row until the transaction ends (a no-op UPDATE: PostgreSQL row lock; SQLite's
/// store::Tx already holds the write lock). Call inside a store::Tx.
void lock(UnitOfWork& uow, const std::string& id);
/// INSERT ... ON CONFLICT (workflow_id) DO NOTHING; true if this call created it.
bool insert_if_missing(UnitOfWork& uow, const DraftRecord& d);
/// revision = revision + 1 (only if revision == *expected when given); true if a row changed.
/// On PostgreSQL this also locks the draft row until the transaction ends.
bool bump_revision(UnitOfWork& uow, const std::string& id, std::optional<long long> expected,
                   const std::string& at);
/// All files of the draft, keyed by absolute path (engine file shape, docs/orchestrator-api.md#shapes);
/// empty if none. Throws std::runtime_error if stored content is corrupt.
domain::FileMap load_files(UnitOfWork& uow, const std::string& draft_id);
/// Inserts the file or, if `path` exists, replaces its content and modified_at (created_at is
/// kept). Does not validate the path or bump the revision (see bump_revision).
void upsert_file(UnitOfWork& uow, const std::string& draft_id, const std::string& path,
                 const domain::FileEntry& f);
/// Deletes one file of the draft; no-op if absent. Does not bump the revision.
void delete_file(UnitOfWork& uow, const std::string& draft_id, const std::string& path);
/// Deletes every file of the draft (the draft row stays). Does not bump the revision.
void delete_all_files(UnitOfWork& uow, const std::string& draft_id);
/// Deletes the draft and its files; proposals keep their row (draft_id set to NULL).
void remove(UnitOfWork& uow, const std::string& id);
}  // namespace drafts

namespace versions {
/// max(number) + 1 for the workflow (1 for the first).
long long next_number(UnitOfWork& uow, const std::string& workflow_id);
/// Inserts the versions row. Throws soci::soci_error if (workflow_id, number) is taken
/// (unique constraint), e.g. when a concurrent publish won the number from next_number.
void insert(UnitOfWork& uow, const VersionRecord& v);
/// Adds one file to a version. Throws soci::soci_error if `path` already exists in it.
void insert_file(UnitOfWork& uow, const std::string& version_id, const std::string& path,
                 const domain::FileEntry& f);
/// Newest first (created_at DESC, id DESC), keyset on (created_at, id).
std::vector<VersionRecord> list(UnitOfWork& uow, const std::string& workflow_id, int limit,
                                const std::optional<CursorKey>& after);
/// The version `number` of the workflow, or nullopt.
std::optional<VersionRecord> find_by_number(UnitOfWork& uow, const std::string& workflow_id, long long number);
/// The workflow's highest-numbered version, or nullopt if none was published.
std::optional<VersionRecord> latest(UnitOfWork& uow, const std::string& workflow_id);
/// All files of the version, keyed by absolute path; empty if none. Throws std::runtime_error
/// if stored content is corrupt.
domain::FileMap load_files(UnitOfWork& uow, const std::string& version_id);
}  // namespace versions

namespace proposals {
/// Inserts the proposals row with engine_cleanup_pending = 0 and the lease columns of `p`
/// (NULL when unset); completed_at, resolved_at and resolved_by_user_id are not written
/// (NULL). Returns false, inserting nothing, when `p.idempotency_key` is set and its creator
/// already has a proposal with that key (find_by_idempotency_key gives it). Throws
/// soci::soci_error on a duplicate id or thread_id (unique).
bool insert(UnitOfWork& uow, const ProposalRecord& p);
/// The proposal `user_id` created with this Idempotency-Key (migration 0009), without its file
/// trees (as find_summary), or nullopt.
std::optional<ProposalRecord> find_by_idempotency_key(UnitOfWork& uow, const std::string& user_id,
                                                      const std::string& key);
/// Adds or updates a proposal_access row; `access_type` is "owner" | "reviewer" | "viewer"
/// (CHECK constraint; anything else throws soci::soci_error). `at` is RFC 3339 UTC.
void grant_access(UnitOfWork& uow, const std::string& proposal_id, const std::string& user_id,
                  const std::string& access_type, const std::string& at);
/// True if `user_id` has any proposal_access row for the proposal.
bool has_access(UnitOfWork& uow, const std::string& proposal_id, const std::string& user_id);
/// The proposal with this id, or nullopt; base_files is empty while generated_files is unset
/// (nothing compares the base before there is a result). Throws std::runtime_error on a corrupt
/// stored status.
std::optional<ProposalRecord> find(UnitOfWork& uow, const std::string& id);
/// The proposal linked to this engine thread id (unique), or nullopt.
std::optional<ProposalRecord> find_by_thread(UnitOfWork& uow, const std::string& thread_id);
/// find / find_by_thread without the file trees (generated_files nullopt, base_files empty):
/// for status checks and bookkeeping that read no files.
std::optional<ProposalRecord> find_summary(UnitOfWork& uow, const std::string& id);
std::optional<ProposalRecord> find_summary_by_thread(UnitOfWork& uow, const std::string& thread_id);
/// Proposals of a workflow that `user_id` has access to, newest first. Like list_visible, the
/// rows carry no file trees (generated_files nullopt, base_files empty): use find for those.
std::vector<ProposalRecord> list_for_user(UnitOfWork& uow, const std::string& workflow_id,
                                          const std::string& user_id, int limit,
                                          const std::optional<CursorKey>& after);
/// Proposals `user_id` has access to (proposal_access) in workflows that are not deleted and
/// of which the user is still a member, newest first; `statuses` empty = any status. No file
/// trees (generated_files nullopt, base_files empty).
std::vector<ProposalRecord> list_visible(UnitOfWork& uow, const std::string& user_id,
                                         const std::vector<ProposalStatus>& statuses, int limit,
                                         const std::optional<CursorKey>& after);
/// (id, thread_id) of the workflow's proposals in `status`, oldest first.
std::vector<std::pair<std::string, std::string>> list_for_workflow_in(UnitOfWork& uow,
                                                                      const std::string& workflow_id,
                                                                      ProposalStatus status);
/// engine_cleanup_pending = 1 for every proposal of the workflow that is not processing and whose
/// engine thread is neither deleted nor already scheduled; returns how many were scheduled.
long long schedule_workflow_cleanup(UnitOfWork& uow, const std::string& workflow_id);
/// Records that `retry_id` re-runs `proposal_id` (proposal_retries). Returns false, writing
/// nothing, when the proposal was already retried (primary key).
bool insert_retry(UnitOfWork& uow, const std::string& proposal_id, const std::string& retry_id,
                  const std::string& at);
/// The id of the proposal that re-runs `proposal_id`, or nullopt.
std::optional<std::string> find_retry(UnitOfWork& uow, const std::string& proposal_id);
/// Count of processing/completed proposals on a draft.
long long count_open_for_draft(UnitOfWork& uow, const std::string& draft_id);
/// Count of processing proposals created by `user_id`.
long long count_processing_by_user(UnitOfWork& uow, const std::string& user_id);
/// Conditional state change: UPDATE ... WHERE id = :id AND status IN (from...). Sets the
/// given optional columns too. Returns rows affected (0 = someone else moved it first).
struct Transition {
  std::optional<std::string> completed_at, resolved_at, resolved_by_user_id, error;
  std::optional<std::string> failure_kind;  ///< failure_kind column (see ProposalRecord)
  std::optional<domain::FileMap> generated_files;
  bool mark_cleanup = false;  ///< engine_cleanup_pending = 1, lease cleared
  bool clear_lease = false;   ///< lease_owner = NULL and lease_expires_at = NULL (the row leaves processing)
  bool clear_error = false;   ///< error = NULL and failure_kind = NULL (a failure taken back)
  /// A decision by `user_id` at `at` (approve, reject, cancel): resolved_at/by set and the
  /// engine thread scheduled for deletion.
  static Transition resolution(const std::string& user_id, const std::string& at) {
    Transition t;
    t.resolved_at = at;
    t.resolved_by_user_id = user_id;
    t.mark_cleanup = true;
    return t;
  }
};
/// See Transition above. `from` must be non-empty; `to` and `from` follow
/// docs/orchestrator-api.md#proposals (not checked here).
long long transition(UnitOfWork& uow, const std::string& id, const std::vector<ProposalStatus>& from,
                     ProposalStatus to, const Transition& t);
/// (id, thread_id) with engine_cleanup_pending = 1, oldest first.
std::vector<std::pair<std::string, std::string>> list_pending_cleanup(UnitOfWork& uow, int limit);
/// Sets engine_cleanup_pending = 0 and engine_thread_deleted_at = `at` once the engine thread
/// was deleted (docs/orchestrator-api.md#proposals).
void clear_cleanup(UnitOfWork& uow, const std::string& id, const std::string& at);
/// (id, thread_id) of failed proposals that completed before `before` (RFC 3339), have no
/// cleanup pending and whose engine thread was never deleted; oldest first, at most `limit`.
std::vector<std::pair<std::string, std::string>> list_failed_not_cleaned_before(UnitOfWork& uow,
                                                                                const std::string& before, int limit);
/// engine_cleanup_pending = 1 if the proposal is still `failed` with no deletion recorded;
/// true if this call scheduled it.
bool schedule_failed_cleanup(UnitOfWork& uow, const std::string& id);
/// (id, thread_id) of processing proposals created before `before`.
std::vector<std::pair<std::string, std::string>> list_processing_before(UnitOfWork& uow,
                                                                        const std::string& before);
/// Every proposal in status processing, oldest first (for tracker resume on start-up).
std::vector<ProposalRecord> list_processing(UnitOfWork& uow);
/// Lease columns: acquire if free, expired or already ours (and status processing).
bool acquire_lease(UnitOfWork& uow, const std::string& id, const std::string& owner, const std::string& now,
                   const std::string& expires);
/// Extends a lease we hold; false if we no longer hold it (or the proposal left processing).
bool renew_lease(UnitOfWork& uow, const std::string& id, const std::string& owner, const std::string& expires);
/// Clears the lease if `owner` holds it; no-op otherwise.
void release_lease(UnitOfWork& uow, const std::string& id, const std::string& owner);
/// Extends every lease `owner` holds on a processing proposal to `expires`, in ONE statement
/// (UPDATE ... RETURNING id, SQLite >= 3.35 and PostgreSQL); returns the ids still held.
std::vector<std::string> renew_leases(UnitOfWork& uow, const std::string& owner, const std::string& expires);
/// (id, thread_id) of processing proposals `owner` may track: lease free, expired before `now`,
/// or already `owner`'s; oldest first, at most `limit`.
std::vector<std::pair<std::string, std::string>> list_claimable(UnitOfWork& uow, const std::string& owner,
                                                                const std::string& now, int limit);
/// (id, thread_id) of failed proposals with failure_kind = `kind` whose engine thread is neither
/// scheduled for deletion nor deleted; oldest first, at most `limit`.
std::vector<std::pair<std::string, std::string>> list_failed_of_kind(UnitOfWork& uow, const std::string& kind,
                                                                     int limit);
/// failure_kind `from` -> `to` on a failed proposal; true if this call changed it. With
/// `failed_before` (RFC 3339 UTC), only a proposal that failed (completed_at) at or before it.
bool change_failure_kind(UnitOfWork& uow, const std::string& id, const std::string& from, const std::string& to,
                         const std::optional<std::string>& failed_before = std::nullopt);
}  // namespace proposals

namespace streams {
/// Whether `user_id` may watch the engine thread `thread_id`, in one indexed query (the rules of
/// domain::access, docs/orchestrator-api.md#authorization): the account exists and is not
/// disabled, and the thread is a proposal's (a proposal_access row, membership of its
/// workflow, the workflow not deleted) or a run's (membership of its workflow, not deleted).
/// Returns the proposal's traceparent ("" = none, and always "" for a run) when allowed,
/// nullopt otherwise. Reads no file trees.
std::optional<std::string> watch_access(UnitOfWork& uow, const std::string& thread_id, const std::string& user_id);
}  // namespace streams

namespace audit {
/// Appends one audit_log row (`details` stored as JSON text). Throws soci::soci_error on a
/// duplicate id.
void insert(UnitOfWork& uow, const AuditRecord& a);
/// Entries of a workflow, newest first.
std::vector<AuditRecord> list(UnitOfWork& uow, const std::string& workflow_id, int limit,
                              const std::optional<CursorKey>& after);
}  // namespace audit

}  // namespace orchestrator::store
