#pragma once
// Workflows, their members, immutable versions and deployment (docs/orchestrator-api.md#workflows-drafts-and-versions:
// /api/workflows, /versions, /deploy). Every method takes the acting user's id and
// enforces visibility (domain/access.hpp): invisible -> NotFoundError.

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "orchestrator/store/unit_of_work.hpp"
#include "orchestrator/domain/drafts.hpp"
#include "orchestrator/domain/files.hpp"
#include "orchestrator/domain/templates.hpp"
#include "orchestrator/store/records.hpp"
#include "orchestrator/store/tx.hpp"

namespace orchestrator::domain {

using Workflow = store::WorkflowRecord;  ///< {id, name, description, owner_id, created_at, updated_at, role}
using VersionInfo = store::VersionRecord;  ///< {id, workflow_id, number, created_by, created_at}

/// POST /api/workflows body. Exactly one source of files: `template_name`, `files`, or
/// neither (empty draft).
struct CreateWorkflowInput {
  std::string name;         ///< 1..200 bytes, no control characters (U+0000-U+001F, U+007F)
  std::string description;  ///< 0..2000 bytes, no NUL
  std::optional<std::string> template_name;  ///< "single-agent" | "multi-agent" | other loaded templates
  std::optional<FileMap> files;              ///< initial draft files when no template
};

/// A new workflow and its draft.
struct WorkflowWithDraft {
  Workflow workflow;
  Draft draft;
};

/// A version with its files.
struct Version {
  VersionInfo info;
  FileMap files;
  /// publish() only: false when the draft's files equalled the latest version's, which is
  /// returned instead of a new identical version.
  bool created = true;
};

using Member = store::MemberRecord;  ///< {workflow_id, user_id, email, name, role, added_at}

/// Result of set_member(): the member after the change and whether the membership is new.
struct MemberChange {
  Member member;
  bool added = false;    ///< the user was not a member before
  bool changed = false;  ///< something was written (new member or another role); false = idempotent no-op
};

/// PATCH /api/workflows/{id} body: the fields to change (at least one).
struct UpdateWorkflowInput {
  std::optional<std::string> name;         ///< 1..200 bytes, as in create
  std::optional<std::string> description;  ///< 0..2000 bytes, as in create
};

/// Result of remove(): the engine threads the deletion concerns.
struct DeletedWorkflow {
  std::vector<std::string> cancelled_threads;  ///< threads of proposals and runs that were processing (now cancelled)
  long long threads_scheduled = 0;             ///< engine threads scheduled for deletion (cancelled ones included)
};

/// What deploy() returns: the version that is (or would be) running and its engine
/// definition (the parsed /definition.json).
struct Deployment {
  VersionInfo version;
  nlohmann::json definition;
  std::string deployed_at;
  std::string deployed_by;
};

/// Workflow operations. Thread-safe.
class WorkflowService {
 public:
  WorkflowService(store::Store& store, const TemplateLibrary& templates);

  /// Creates the workflow (actor = owner, also a member with role "owner") and its draft
  /// (revision 1) seeded from the template or given files, in one transaction; audits
  /// "workflow.create". Throws InvalidError("name" | "description" | "template" | "files...").
  WorkflowWithDraft create(const std::string& actor, const CreateWorkflowInput& in);

  /// Workflows the actor is a member of, newest first. InvalidError("limit" | "cursor").
  store::Page<Workflow> list(const std::string& actor, const store::PageRequest& page = {});

  /// One workflow; NotFoundError if invisible.
  Workflow get(const std::string& actor, const std::string& workflow_id);

  /// Changes name and/or description (same rules as create: InvalidError("name" |
  /// "description"); InvalidError("(body)") when neither is given). Owner/editor only
  /// (ForbiddenError for viewers). Audits "workflow.update" {changes: {field: {from, to}}} when
  /// something changed; an update to the current values changes nothing and is not audited.
  Workflow update(const std::string& actor, const std::string& workflow_id, const UpdateWorkflowInput& in);

  /// Soft-deletes the workflow (owner only, ForbiddenError otherwise): sets deleted_at, so it
  /// disappears from lists and every route answers 404 for it and its proposals and versions.
  /// In the same transaction its processing proposals and runs are cancelled and every engine
  /// thread of its proposals and runs not yet deleted is scheduled for deletion
  /// (engine_cleanup_pending: the tracker's sweeper deletes them, retrying until the engine
  /// confirms). Audits "workflow.delete" {name, cancelled, threads_scheduled} (and
  /// "proposal.cancel" / "run.cancel" per cancelled job). NotFoundError once deleted.
  DeletedWorkflow remove(const std::string& actor, const std::string& workflow_id);

  /// Members with e-mail, name and role, most recently added first. Any member may list
  /// (NotFoundError for others).
  store::Page<Member> list_members(const std::string& actor, const std::string& workflow_id,
                                   const store::PageRequest& page = {});

  /// Adds `user` (a user id, or an e-mail address: anything with '@') as a member with `role`
  /// ("editor" | "viewer", InvalidError("role") otherwise), or changes the role of a member.
  /// Owner only: ForbiddenError for other members, NotFoundError for an invisible workflow or
  /// an unknown user. PreconditionError when `user` is the owner (a workflow always keeps its
  /// owner). Audits "workflow.member" {role, previous_role|null} when something changed.
  MemberChange set_member(const std::string& actor, const std::string& workflow_id, const std::string& user,
                          const std::string& role);

  /// Removes `user` (id or e-mail) from the members. The owner may remove anyone but themself
  /// (PreconditionError: a workflow always keeps its owner); any other member may remove only
  /// themself (leave the workflow), ForbiddenError otherwise. NotFoundError("member") when
  /// the user is not a member. Audits "workflow.member_remove" {role}.
  void remove_member(const std::string& actor, const std::string& workflow_id, const std::string& user);

  /// Versions, newest first.
  store::Page<VersionInfo> list_versions(const std::string& actor, const std::string& workflow_id,
                                         const store::PageRequest& page = {});

  /// One version with files; NotFoundError("version", number) if absent.
  Version get_version(const std::string& actor, const std::string& workflow_id, long long number);

  /// Publishes the draft as version max+1 (files copied, immutable) in one transaction;
  /// the draft stays. Owner/editor only. Audits "workflow.publish".
  /// A draft whose files (paths and contents) equal the latest version's creates nothing: that
  /// version is returned with `created` = false (so a repeated publish is idempotent).
  /// Throws PreconditionError if the workflow has no draft or the draft has no files.
  /// With `expected_revision` (the client's base_revision), the draft's revision is compared
  /// inside the same transaction after the draft row is locked: a mismatch throws
  /// ConflictError with details {"current_revision": N} and nothing is published.
  Version publish(const std::string& actor, const std::string& workflow_id,
                  std::optional<long long> expected_revision = std::nullopt);

  /// Deploys version `number` (default: the latest): checks that its /definition.json is a
  /// runnable engine definition (graph.nodes non-empty, graph.entryPoint names a node) and records
  /// it as the workflow's deployed version, the one runs execute when they name none
  /// (domain/runs.hpp). Redeploying replaces the record. Audits "workflow.deploy" {number}.
  /// Owner/editor only. PreconditionError without versions; NotFoundError("version") for an
  /// unknown number; InvalidError("/definition.json") if not runnable.
  Deployment deploy(const std::string& actor, const std::string& workflow_id,
                    std::optional<long long> number = std::nullopt);

 private:
  store::Store& store_;
  const TemplateLibrary& templates_;
};

/// Checks a workflow name as create() and update() take it (1..200 bytes of UTF-8, no control
/// characters, not blank: not only spaces, Unicode ones included); InvalidError("name").
void validate_workflow_name(const std::string& name);

/// Checks an engine agent definition (docs/engine-api.md#agent-definition); throws InvalidError(field, ...)
/// naming the first problem ("/definition.json: graph.entryPoint ...").
void validate_definition(const nlohmann::json& def, const std::string& field = "/definition.json");

/// The parsed, validated /definition.json of `files` (a version's or the draft's). `what` names
/// them in errors ("version 3", "the draft"). InvalidError("/definition.json") when it is
/// missing, not JSON, or not runnable (validate_definition).
nlohmann::json runnable_definition(const FileMap& files, const std::string& what);

/// Version `number` of the workflow (no access check: the caller did it in the same unit);
/// NotFoundError("version", number) if absent.
VersionInfo version_by_number(store::UnitOfWork& uow, const std::string& workflow_id, long long number);

}  // namespace orchestrator::domain
