#include "orchestrator/domain/audit.hpp"

#include "core/util.hpp"
#include "orchestrator/domain/access.hpp"
#include "orchestrator/store/repositories.hpp"

namespace orchestrator::domain {

void audit_append(store::UnitOfWork& uow, const std::string& user_id, const std::string& workflow_id,
                  const std::string& action, const std::string& subject_type, const std::string& subject_id,
                  const nlohmann::json& details) {
  store::AuditRecord a;
  a.id = core::uuid4();
  a.at = core::now_rfc3339();
  if (!user_id.empty()) a.user_id = user_id;
  if (!workflow_id.empty()) a.workflow_id = workflow_id;
  a.action = action;
  a.subject_type = subject_type;
  a.subject_id = subject_id;
  a.details = details.is_object() ? details : nlohmann::json{{"value", details}};
  store::audit::insert(uow, a);
}

AuditService::AuditService(store::Store& store) : store_(store) {}

void AuditService::append(const std::string& user_id, const std::string& workflow_id, const std::string& action,
                          const std::string& subject_type, const std::string& subject_id,
                          const nlohmann::json& details) {
  return store_.run([&](store::UnitOfWork& uow) {
    audit_append(uow, user_id, workflow_id, action, subject_type, subject_id, details);
  });
}

store::Page<AuditEntry> AuditService::list(const std::string& actor, const std::string& workflow_id,
                                           const store::PageRequest& page) {
  return store_.run([&](store::UnitOfWork& uow) -> store::Page<AuditEntry> {
    access::require_workflow(uow, workflow_id, actor);
    return store::fetch_page(
        page, [&](int n, const auto& after) { return store::audit::list(uow, workflow_id, n, after); },
        [](const AuditEntry& a) { return store::CursorKey{a.at, a.id}; });
  });
}

}  // namespace orchestrator::domain
