#pragma once
// SQL repositories: thin functions over a borrowed SOCI session, one code path for
// SQLite and PostgreSQL. They do no authorization and no state-machine checks (the
// domain services do); multi-row writes are the caller's to wrap in a store::Tx.
// All throw soci::soci_error on database failures.

#include <optional>
#include <string>
#include <vector>

#include <soci/soci.h>

#include "orchestrator/store/records.hpp"
#include "orchestrator/store/tx.hpp"

namespace orchestrator::store {

namespace users {
/// Inserts; returns false if the e-mail is taken (unique constraint checked first).
bool insert(soci::session& sql, const UserRecord& u);
std::optional<UserRecord> find_by_email(soci::session& sql, const std::string& email);
std::optional<UserRecord> find_by_id(soci::session& sql, const std::string& id);
}  // namespace users

namespace workflows {
void insert(soci::session& sql, const WorkflowRecord& w);
/// Adds or updates a member's role ("owner" | "editor" | "viewer").
void upsert_member(soci::session& sql, const std::string& workflow_id, const std::string& user_id,
                   const std::string& role, const std::string& at);
/// The workflow as seen by `user_id` (role filled), or nullopt if absent or not a member.
std::optional<WorkflowRecord> find_for_user(soci::session& sql, const std::string& id, const std::string& user_id);
/// Workflows `user_id` belongs to, newest first, keyset after `after`; fetches `limit` rows.
std::vector<WorkflowRecord> list_for_user(soci::session& sql, const std::string& user_id, int limit,
                                          const std::optional<CursorKey>& after);
void touch(soci::session& sql, const std::string& id, const std::string& at);
}  // namespace workflows

namespace drafts {
std::optional<DraftRecord> find_by_workflow(soci::session& sql, const std::string& workflow_id);
std::optional<DraftRecord> find(soci::session& sql, const std::string& id);
/// INSERT ... ON CONFLICT (workflow_id) DO NOTHING; true if this call created it.
bool insert_if_missing(soci::session& sql, const DraftRecord& d);
/// revision = revision + 1 (only if revision == *expected when given); true if a row changed.
/// On PostgreSQL this also locks the draft row until the transaction ends.
bool bump_revision(soci::session& sql, const std::string& id, std::optional<long long> expected,
                   const std::string& at);
domain::FileMap load_files(soci::session& sql, const std::string& draft_id);
void upsert_file(soci::session& sql, const std::string& draft_id, const std::string& path,
                 const domain::FileEntry& f);
void delete_file(soci::session& sql, const std::string& draft_id, const std::string& path);
void delete_all_files(soci::session& sql, const std::string& draft_id);
/// Deletes the draft and its files; proposals keep their row (draft_id set to NULL).
void remove(soci::session& sql, const std::string& id);
}  // namespace drafts

namespace versions {
/// max(number) + 1 for the workflow (1 for the first).
long long next_number(soci::session& sql, const std::string& workflow_id);
void insert(soci::session& sql, const VersionRecord& v);
void insert_file(soci::session& sql, const std::string& version_id, const std::string& path,
                 const domain::FileEntry& f);
/// Newest first (by number), keyset on (created_at, id).
std::vector<VersionRecord> list(soci::session& sql, const std::string& workflow_id, int limit,
                                const std::optional<CursorKey>& after);
std::optional<VersionRecord> latest(soci::session& sql, const std::string& workflow_id);
domain::FileMap load_files(soci::session& sql, const std::string& version_id);
}  // namespace versions

namespace proposals {
void insert(soci::session& sql, const ProposalRecord& p);
void grant_access(soci::session& sql, const std::string& proposal_id, const std::string& user_id,
                  const std::string& access_type, const std::string& at);
bool has_access(soci::session& sql, const std::string& proposal_id, const std::string& user_id);
std::optional<ProposalRecord> find(soci::session& sql, const std::string& id);
std::optional<ProposalRecord> find_by_thread(soci::session& sql, const std::string& thread_id);
/// Proposals of a workflow that `user_id` has access to, newest first.
std::vector<ProposalRecord> list_for_user(soci::session& sql, const std::string& workflow_id,
                                          const std::string& user_id, int limit,
                                          const std::optional<CursorKey>& after);
/// Count of processing/completed proposals on a draft.
long long count_open_for_draft(soci::session& sql, const std::string& draft_id);
/// Conditional state change: UPDATE ... WHERE id = :id AND status IN (from...). Sets the
/// given optional columns too. Returns rows affected (0 = someone else moved it first).
struct Transition {
  std::optional<std::string> completed_at, resolved_at, resolved_by_user_id, error;
  std::optional<domain::FileMap> generated_files;
  bool mark_cleanup = false;  ///< engine_cleanup_pending = 1, lease cleared
};
long long transition(soci::session& sql, const std::string& id, const std::vector<ProposalStatus>& from,
                     ProposalStatus to, const Transition& t);
/// (id, thread_id) with engine_cleanup_pending = 1, oldest first.
std::vector<std::pair<std::string, std::string>> list_pending_cleanup(soci::session& sql, int limit);
void clear_cleanup(soci::session& sql, const std::string& id);
/// (id, thread_id) of processing proposals created before `before`.
std::vector<std::pair<std::string, std::string>> list_processing_before(soci::session& sql,
                                                                        const std::string& before);
std::vector<ProposalRecord> list_processing(soci::session& sql);
/// Lease columns: acquire if free, expired or already ours (and status processing).
bool acquire_lease(soci::session& sql, const std::string& id, const std::string& owner, const std::string& now,
                   const std::string& expires);
/// Extends a lease we hold; false if we no longer hold it (or the proposal left processing).
bool renew_lease(soci::session& sql, const std::string& id, const std::string& owner, const std::string& expires);
void release_lease(soci::session& sql, const std::string& id, const std::string& owner);
}  // namespace proposals

namespace audit {
void insert(soci::session& sql, const AuditRecord& a);
/// Entries of a workflow, newest first.
std::vector<AuditRecord> list(soci::session& sql, const std::string& workflow_id, int limit,
                              const std::optional<CursorKey>& after);
}  // namespace audit

}  // namespace orchestrator::store
