#pragma once
// Authorization rules shared by the services (docs/orchestrator-api.md#authorization): a workflow is visible
// to its members (the owner is a member with role "owner"); a proposal is visible to
// users listed in proposal_access. Anything invisible is NotFoundError, never 403.
// Writes need role owner|editor (ForbiddenError for viewers, who can already see it);
// membership changes, renames and deletion of the workflow itself are the owner's.

#include <optional>
#include <string>


#include "orchestrator/store/records.hpp"
#include "orchestrator/store/unit_of_work.hpp"

namespace orchestrator::domain::access {

/// The workflow as seen by `user_id`; NotFoundError("workflow", id) if absent or not a member.
store::WorkflowRecord require_workflow(store::UnitOfWork& uow, const std::string& workflow_id, const std::string& user_id);
/// As require_workflow, plus ForbiddenError unless the role is owner or editor.
store::WorkflowRecord require_workflow_writer(store::UnitOfWork& uow, const std::string& workflow_id,
                                              const std::string& user_id);
/// As require_workflow, plus ForbiddenError unless the role is owner; `what` completes the
/// sentence "only the owner of a workflow can ..." (e.g. "delete it").
store::WorkflowRecord require_workflow_owner(store::UnitOfWork& uow, const std::string& workflow_id,
                                             const std::string& user_id, const std::string& what);
/// The proposal if `user_id` is in its proposal_access and still a member of its workflow;
/// NotFoundError("proposal", id) otherwise.
store::ProposalRecord require_proposal(store::UnitOfWork& uow, const std::string& proposal_id, const std::string& user_id);
/// Whether `user_id` may watch the engine thread `thread_id` (a WebSocket stream): an account
/// that exists and is not disabled, and the proposal rule above for a proposal's thread or
/// membership of the workflow for a run's. The proposal's W3C traceparent ("" = none; always ""
/// for a run) when allowed, nullopt otherwise. One indexed query without file trees: the proxy
/// asks at every upgrade and again every recheck interval per open stream.
std::optional<std::string> watch_thread(store::UnitOfWork& uow, const std::string& thread_id,
                                        const std::string& user_id);

}  // namespace orchestrator::domain::access
