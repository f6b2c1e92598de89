#include "orchestrator/domain/access.hpp"

#include "orchestrator/domain/error.hpp"
#include "orchestrator/store/repositories.hpp"

namespace orchestrator::domain::access {

store::WorkflowRecord require_workflow(store::UnitOfWork& uow, const std::string& workflow_id, const std::string& user_id) {
  auto w = store::workflows::find_for_user(uow, workflow_id, user_id);
  if (!w) throw NotFoundError("workflow", workflow_id);
  return *w;
}

store::WorkflowRecord require_workflow_writer(store::UnitOfWork& uow, const std::string& workflow_id,
                                              const std::string& user_id) {
  auto w = require_workflow(uow, workflow_id, user_id);
  if (w.role != "owner" && w.role != "editor")
    throw ForbiddenError("your role on workflow " + workflow_id + " is '" + w.role + "'; editing needs owner or editor");
  return w;
}

store::WorkflowRecord require_workflow_owner(store::UnitOfWork& uow, const std::string& workflow_id,
                                             const std::string& user_id, const std::string& what) {
  auto w = require_workflow(uow, workflow_id, user_id);
  if (w.role != "owner")
    throw ForbiddenError("your role on workflow " + workflow_id + " is '" + w.role +
                         "'; only the owner of a workflow can " + what);
  return w;
}

store::ProposalRecord require_proposal(store::UnitOfWork& uow, const std::string& proposal_id, const std::string& user_id) {
  auto p = store::proposals::find(uow, proposal_id);
  if (!p || !store::proposals::has_access(uow, proposal_id, user_id) ||
      !store::workflows::find_for_user(uow, p->workflow_id, user_id))
    throw NotFoundError("proposal", proposal_id);
  return *p;
}

std::optional<std::string> watch_thread(store::UnitOfWork& uow, const std::string& thread_id,
                                        const std::string& user_id) {
  return store::streams::watch_access(uow, thread_id, user_id);
}

}  // namespace orchestrator::domain::access
