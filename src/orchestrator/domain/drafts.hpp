#pragma once
// Drafts: the one mutable working copy of a workflow's files, with a revision counter for
// optimistic concurrency (docs/orchestrator-api.md#workflows-drafts-and-versions: GET /api/workflows/{id}/draft,
// PUT /api/workflows/{id}/draft/files {files, base_revision}, DELETE /api/drafts/{id}).

#include <string>
#include <vector>

#include "orchestrator/store/unit_of_work.hpp"
#include "orchestrator/domain/files.hpp"

namespace orchestrator::domain {

/// GET /api/workflows/{id}/draft shape.
struct Draft {
  std::string id, workflow_id;
  long long revision = 1;  ///< increments on every change
  FileMap files;
  std::string created_at, updated_at;
};

/// Draft operations. Thread-safe.
class DraftService {
 public:
  /// Keeps a reference to `store` (must outlive the service); each call runs its database work
  /// as units of work (store::Store::run). No database access here; never throws.
  explicit DraftService(store::Store& store);

  /// The workflow's draft. If it has none (never created or deleted), one is created at
  /// revision 1 from the latest version's files (empty without versions). NotFoundError for
  /// an invisible workflow.
  Draft get(const std::string& actor, const std::string& workflow_id);

  /// Replaces the draft's file set with `files` if the draft is still at `base_revision`
  /// (revision + 1 and the new draft returned). Files whose content is unchanged keep their
  /// timestamps; changed files keep created_at and get modified_at = now; new files get now.
  /// ConflictError {"current_revision"} when the revision moved; ForbiddenError for viewers;
  /// NotFoundError for invisible workflows. Audits "draft.update".
  Draft put_files(const std::string& actor, const std::string& workflow_id, const FileMap& files,
                  long long base_revision);

  /// Like put_files but only upserts `upserts` and removes `deletes` (other files untouched).
  Draft patch_files(const std::string& actor, const std::string& workflow_id, const FileMap& upserts,
                    const std::vector<std::string>& deletes, long long base_revision);

  /// Deletes a draft by id (its files too; resolved proposals keep their rows). NotFoundError
  /// if the draft is invisible; PreconditionError while a proposal on it is processing or
  /// completed (reject or cancel it first). Audits "draft.delete".
  void remove(const std::string& actor, const std::string& draft_id);

  /// Internal (used by proposals in the same transaction): the workflow's draft, created if
  /// missing from the latest version's files.
  static Draft ensure(store::UnitOfWork& uow, const std::string& workflow_id);

 private:
  Draft write(const std::string& actor, const std::string& workflow_id, const FileMap& upserts,
              const std::vector<std::string>& deletes, bool replace, long long base_revision);
  store::Store& store_;
};

}  // namespace orchestrator::domain
