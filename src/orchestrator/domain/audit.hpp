#pragma once
// Audit log: who decided what, when (docs/orchestrator-api.md#audit-log).
// Actions written by the services: workflow.create, workflow.publish, workflow.deploy,
// workflow.member, draft.update, draft.delete, proposal.create, proposal.completed,
// proposal.failed, proposal.approve, proposal.reject, proposal.cancel, proposal.expired.

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "orchestrator/store/unit_of_work.hpp"
#include "orchestrator/store/records.hpp"
#include "orchestrator/store/tx.hpp"

namespace orchestrator::domain {

using AuditEntry = store::AuditRecord;  ///< {id, at, user_id?, workflow_id?, action, subject_type, subject_id, details}

/// Appends one entry on `sql` (so it joins the caller's transaction). `user_id` empty for
/// system actions (tracker, TTL sweeper).
void audit_append(store::UnitOfWork& uow, const std::string& user_id, const std::string& workflow_id,
                  const std::string& action, const std::string& subject_type, const std::string& subject_id,
                  const nlohmann::json& details = nlohmann::json::object());

/// Reads and writes the audit log. Thread-safe.
class AuditService {
 public:
  /// Keeps a reference to `store` (must outlive the service); each call runs its database work
  /// as units of work (store::Store::run). No database access here; never throws.
  explicit AuditService(store::Store& store);
  /// Appends in its own statement (outside any transaction).
  void append(const std::string& user_id, const std::string& workflow_id, const std::string& action,
              const std::string& subject_type, const std::string& subject_id,
              const nlohmann::json& details = nlohmann::json::object());
  /// Entries of a workflow, newest first; NotFoundError if the workflow is invisible.
  store::Page<AuditEntry> list(const std::string& actor, const std::string& workflow_id,
                               const store::PageRequest& page = {});

 private:
  store::Store& store_;
};

}  // namespace orchestrator::domain
