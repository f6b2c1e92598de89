#pragma once
// Workflows, their members, immutable versions and deployment (DESIGN.md §5 API:
// /api/workflows, /versions, /deploy). Every method takes the acting user's id and
// enforces visibility (domain/access.hpp): invisible -> NotFoundError.

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/db.hpp"
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
  WorkflowService(core::db::Database& db, const TemplateLibrary& templates);

  /// Creates the workflow (actor = owner, also a member with role "owner") and its draft
  /// (revision 1) seeded from the template or given files, in one transaction; audits
  /// "workflow.create". Throws InvalidError("name" | "description" | "template" | "files...").
  WorkflowWithDraft create(const std::string& actor, const CreateWorkflowInput& in);

  /// Workflows the actor is a member of, newest first. InvalidError("limit" | "cursor").
  store::Page<Workflow> list(const std::string& actor, const store::PageRequest& page = {});

  /// One workflow; NotFoundError if invisible.
  Workflow get(const std::string& actor, const std::string& workflow_id);

  /// Adds/changes a member (role "editor" | "viewer"; owner only). NotFoundError for an
  /// invisible workflow or unknown user, ForbiddenError if the actor is not the owner,
  /// InvalidError("role").
  void set_member(const std::string& actor, const std::string& workflow_id, const std::string& user_id,
                  const std::string& role);

  /// Versions, newest first.
  store::Page<VersionInfo> list_versions(const std::string& actor, const std::string& workflow_id,
                                         const store::PageRequest& page = {});

  /// One version with files; NotFoundError("version", number) if absent.
  Version get_version(const std::string& actor, const std::string& workflow_id, long long number);

  /// Publishes the draft as version max+1 (files copied, immutable) in one transaction;
  /// the draft stays. Owner/editor only. Audits "workflow.publish".
  /// Throws PreconditionError if the workflow has no draft or the draft has no files.
  /// With `expected_revision` (the client's base_revision), the draft's revision is compared
  /// inside the same transaction after the draft row is locked: a mismatch throws
  /// ConflictError with details {"current_revision": N} and nothing is published.
  Version publish(const std::string& actor, const std::string& workflow_id,
                  std::optional<long long> expected_revision = std::nullopt);

  /// Minimal deploy: picks the latest version, checks that its /definition.json is a runnable
  /// engine definition (graph.nodes non-empty, graph.entryPoint names a node), audits
  /// "workflow.deploy" {version, number} and returns it. No infrastructure is touched here
  /// (the API/deploy layer acts on the returned definition). Owner/editor only.
  /// PreconditionError without versions; InvalidError("/definition.json") if not runnable.
  Deployment deploy(const std::string& actor, const std::string& workflow_id);

 private:
  core::db::Database& db_;
  const TemplateLibrary& templates_;
};

/// Checks an engine agent definition (DESIGN.md §4 "Runtime"); throws InvalidError(field, ...)
/// naming the first problem ("/definition.json: graph.entryPoint ...").
void validate_definition(const nlohmann::json& def, const std::string& field = "/definition.json");

}  // namespace orchestrator::domain
