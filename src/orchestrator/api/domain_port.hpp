#pragma once
// The operations the HTTP handlers need from the domain layer, in one interface so
// handlers stay "parse, call the domain, render" and can be tested with a fake.
// Implemented by DomainAdapter (domain_adapter.cpp) over the domain services.
// Every method that takes `user_id` enforces visibility: a resource the user may not
// see throws domain::NotFoundError (-> 404). Errors are domain::Error subclasses.

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "orchestrator/domain/diff.hpp"
#include "orchestrator/domain/files.hpp"
#include "orchestrator/domain/proposals.hpp"
#include "orchestrator/domain/runs.hpp"
#include "orchestrator/store/records.hpp"
#include "orchestrator/store/tx.hpp"

namespace orchestrator::api {

/// A draft with its files.
struct DraftView {
  store::DraftRecord draft;
  domain::FileMap files;
};

/// A workflow as the caller sees it, with its draft when one exists.
struct WorkflowView {
  store::WorkflowRecord workflow;
  std::optional<DraftView> draft;
};

/// A proposal with its per-file change summary (generated files vs. the current draft).
struct ProposalView {
  store::ProposalRecord proposal;
  std::vector<domain::FileChange> changes;
};

/// A version with its files (files empty in lists).
struct VersionView {
  store::VersionRecord version;
  domain::FileMap files;
  bool created = true;  ///< publish: false when the unchanged draft returned the latest version
};

/// GET /api/me: the signed-in user and the external identities linked to the account.
struct ProfileView {
  store::UserRecord user;
  std::vector<store::IdentityRecord> identities;
};

/// PUT /api/workflows/{id}/members/{user}: the member after the change.
struct MemberView {
  store::MemberRecord member;
  bool added = false;  ///< the user was not a member before (201)
};

/// Result of a successful login.
struct LoginResult {
  std::string token;
  std::string expires_at;  ///< RFC 3339
  store::UserRecord user;
};

/// The domain operations used by the API.
class DomainPort {
 public:
  virtual ~DomainPort() = default;

  /// Checks e-mail + password; throws UnauthenticatedError with a generic message.
  virtual LoginResult login(const std::string& email, const std::string& password) = 0;
  /// Verifies a token (signature, alg allow-list, exp, iss, aud); returns {"user_id", ...claims}.
  /// Throws UnauthenticatedError.
  virtual nlohmann::json verify_token(const std::string& token) = 0;

  /// Template names and descriptions: [{"name", "description"}].
  virtual nlohmann::json templates() = 0;
  /// Creates a workflow (owner = user) from `template_name` or `files` (exactly one may be given;
  /// neither = empty draft). Throws InvalidError naming "template"/"files"/"name".
  virtual WorkflowView create_workflow(const std::string& user_id, const std::string& name,
                                       const std::string& description, const std::optional<std::string>& template_name,
                                       const std::optional<nlohmann::json>& files) = 0;
  /// Workflows the user is a member of, newest first (InvalidError "limit"/"cursor").
  virtual store::Page<store::WorkflowRecord> list_workflows(const std::string& user_id,
                                                            const store::PageRequest& page) = 0;
  /// One workflow with its draft.
  virtual WorkflowView get_workflow(const std::string& user_id, const std::string& workflow_id) = 0;

  /// Changes name and/or description (at least one given; same limits as create). Owner/editor.
  virtual store::WorkflowRecord update_workflow(const std::string& user_id, const std::string& workflow_id,
                                                const std::optional<std::string>& name,
                                                const std::optional<std::string>& description) = 0;
  /// Soft-deletes the workflow (owner only); returns the engine threads of proposals that were
  /// processing (cancelled now; every thread of the workflow is scheduled for deletion).
  virtual std::vector<std::string> delete_workflow(const std::string& user_id, const std::string& workflow_id) = 0;
  /// Members of the workflow (any member may list), most recently added first.
  virtual store::Page<store::MemberRecord> list_members(const std::string& user_id, const std::string& workflow_id,
                                                        const store::PageRequest& page) = 0;
  /// Adds or changes a member (`member` = user id or e-mail; role editor|viewer; owner only).
  virtual MemberView set_member(const std::string& user_id, const std::string& workflow_id,
                                const std::string& member, const std::string& role) = 0;
  /// Removes a member (owner: anyone but themself; others: only themselves).
  virtual void remove_member(const std::string& user_id, const std::string& workflow_id,
                             const std::string& member) = 0;
  /// The caller's account and linked identities.
  virtual ProfileView me(const std::string& user_id) = 0;

  /// Published versions of a workflow, newest first.
  virtual store::Page<store::VersionRecord> list_versions(const std::string& user_id, const std::string& workflow_id,
                                                          const store::PageRequest& page) = 0;
  /// One version with its files (NotFound "version").
  virtual VersionView get_version(const std::string& user_id, const std::string& workflow_id, long long number) = 0;
  /// Publishes the draft as the next version (conflict if base_revision given and stale); an
  /// unchanged draft returns the latest version with `created` false.
  virtual VersionView publish_version(const std::string& user_id, const std::string& workflow_id,
                                      std::optional<long long> base_revision) = 0;
  /// Deploys version `number` (default: the latest; checks its /definition.json) and records it as
  /// the version runs execute; returns {workflow_id, version, definition, deployed_at,
  /// deployed_by, status: "deployed"}.
  virtual nlohmann::json deploy(const std::string& user_id, const std::string& workflow_id,
                                std::optional<long long> number) = 0;

  /// The workflow's draft (NotFound "draft" when it has none).
  virtual DraftView get_draft(const std::string& user_id, const std::string& workflow_id) = 0;
  /// The draft, created (empty) if missing.
  virtual DraftView ensure_draft(const std::string& user_id, const std::string& workflow_id) = 0;
  /// Upserts files (JSON null value = delete) if the draft is at `base_revision`, else ConflictError.
  virtual DraftView put_draft_files(const std::string& user_id, const std::string& workflow_id,
                                    const nlohmann::json& files, long long base_revision) = 0;
  /// Deletes a draft by id (PreconditionError while a proposal on it is open).
  virtual void delete_draft(const std::string& user_id, const std::string& draft_id) = 0;

  /// Whether the user already started a refinement with this Idempotency-Key (a resend of it is
  /// a replay: the rate limiter does not charge it). May throw store::DatabaseUnavailable.
  virtual bool refinement_key_used(const std::string& user_id, const std::string& key) = 0;
  /// One proposal with generated files and its per-file change summary (base -> generated).
  virtual ProposalView get_proposal(const std::string& user_id, const std::string& proposal_id) = 0;
  /// Proposals of a workflow the user may see, newest first.
  virtual store::Page<store::ProposalRecord> list_proposals(const std::string& user_id, const std::string& workflow_id,
                                                            const store::PageRequest& page) = 0;
  /// Proposals the user may see across workflows, newest first, only `statuses` when non-empty.
  virtual store::Page<store::ProposalRecord> list_my_proposals(const std::string& user_id,
                                                               const std::vector<store::ProposalStatus>& statuses,
                                                               const store::PageRequest& page) = 0;
  /// GNU unified diff of the current draft -> generated files (only paths the proposal
  /// changes); empty when nothing to show. PreconditionError while there are no generated files.
  virtual std::string proposal_diff(const std::string& user_id, const std::string& proposal_id) = 0;
  /// Applies the generated files to the draft (three-way; ConflictError naming paths); exactly one
  /// of racing approve/reject wins (PreconditionError for the loser).
  virtual std::pair<ProposalView, DraftView> approve(const std::string& user_id, const std::string& proposal_id) = 0;
  /// completed | failed -> rejected (PreconditionError otherwise; loses races like approve).
  virtual ProposalView reject(const std::string& user_id, const std::string& proposal_id) = 0;
  /// processing -> cancelled (docs/orchestrator-api.md#proposals); PreconditionError once it left processing,
  /// NotFoundError when the caller may not see it. The engine thread is scheduled for deletion.
  virtual ProposalView cancel(const std::string& user_id, const std::string& proposal_id) = 0;
  /// When the user may watch `thread_id` (in proposal_access for the proposal of the thread, or a
  /// member of the workflow of the run on the thread): the traceparent stored with that proposal
  /// ("" when none, and for runs). nullopt otherwise, and for an account that no longer exists
  /// or is disabled.
  virtual std::optional<std::string> watch_thread(const std::string& user_id, const std::string& thread_id) = 0;

  /// Records a new `processing` run (domain/runs.hpp: RunService::start) and returns it with the
  /// definition and files to send to the engine. A non-empty `in.lease_owner` (this replica's
  /// tracker) holds the run's tracker lease from the start, as for proposals.
  virtual domain::StartedRun start_run(const std::string& user_id, const std::string& workflow_id,
                                       const domain::StartRunInput& in) = 0;
  /// Marks the run of `thread_id`, whose engine job could not be started, failed with `error`;
  /// `kind` records why (engine_unreachable | engine_rejected). `delete_thread`: the engine may
  /// have accepted the job anyway, so its thread is deleted by the tracker's sweeper (which
  /// stops it).
  virtual void fail_run(const std::string& thread_id, const std::string& error, domain::FailureKind kind,
                        bool delete_thread) = 0;
  /// One run of the workflow (any member).
  virtual store::RunRecord get_run(const std::string& user_id, const std::string& workflow_id,
                                   const std::string& run_id) = 0;
  /// Runs of the workflow, newest first (any member).
  virtual store::Page<store::RunRecord> list_runs(const std::string& user_id, const std::string& workflow_id,
                                                  const store::PageRequest& page) = 0;
  /// processing -> cancelled (owner/editor); the caller deletes the engine thread.
  virtual store::RunRecord cancel_run(const std::string& user_id, const std::string& workflow_id,
                                      const std::string& run_id) = 0;
};

}  // namespace orchestrator::api
