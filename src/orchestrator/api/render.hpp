#pragma once
// JSON renderings of domain objects for API responses (docs/orchestrator-api.md#shapes:
// files in the engine shape, RFC 3339 UTC timestamps, UUID ids, pages as
// {items, next_cursor}).

#include <nlohmann/json.hpp>

#include "orchestrator/api/domain_port.hpp"

namespace orchestrator::api {

/// {id, email, name} (never the password hash).
nlohmann::json render_user(const store::UserRecord& u);
/// GET /api/me: {id, email, name, created_at, identities: [{issuer, subject, email, linked_at}]}.
nlohmann::json render_profile(const ProfileView& p);
/// {user_id, email, name, role, added_at}.
nlohmann::json render_member(const store::MemberRecord& m);
/// {id, workflow_id, revision, files, created_at, updated_at}.
nlohmann::json render_draft(const DraftView& d);
/// {id, name, description, owner_id, role, created_at, updated_at[, draft]}.
nlohmann::json render_workflow(const store::WorkflowRecord& w);
/// Same as above plus `draft`: render_draft(...) of the workflow's draft, or null when it has none.
nlohmann::json render_workflow(const WorkflowView& w);
/// {id, workflow_id, number, created_by, created_at[, files]}.
/// Without `files` (for lists).
nlohmann::json render_version(const store::VersionRecord& v);
/// With `files` in the engine file shape (docs/orchestrator-api.md#shapes; {} when the view has none).
nlohmann::json render_version(const VersionView& v);
/// {path, change, lines_added, lines_removed}.
nlohmann::json render_change(const domain::FileChange& c);
/// Proposal without files (lists) or with generated_files + changes (details).
/// List form: {id, workflow_id, draft_id|null, thread_id, status, user_prompt, context_file_path|null,
/// context_selection|null, error|null, created_at, completed_at|null, resolved_at|null,
/// created_by_user_id, resolved_by_user_id|null}.
nlohmann::json render_proposal(const store::ProposalRecord& p);
/// Detail form (GET /api/proposals/{id}): the list form plus `generated_files` (engine file
/// shape, null until the proposal completed) and `changes` ([render_change(...)], may be empty).
nlohmann::json render_proposal(const ProposalView& p);

/// Run without files (lists): {id, workflow_id, version (number|null: null = the draft),
/// draft_revision|null, thread_id, status, input, output|null, error|null, failure_kind|null
/// (why a failed run failed: engine_failed, engine_gone, engine_unreachable, engine_rejected,
/// expired, invalid_result), stream_available (false once the engine thread is deleted or
/// scheduled for deletion: the events can no longer be streamed), created_by_user_id,
/// created_at, completed_at|null}. Detail form adds `files` (engine file shape; null until completed).
nlohmann::json render_run(const store::RunRecord& r, bool with_files = false);

/// {items: [render(x)...], next_cursor: string|null}.
template <class T, class F>
nlohmann::json render_page(const store::Page<T>& page, F render) {
  nlohmann::json items = nlohmann::json::array();
  for (const auto& x : page.items) items.push_back(render(x));
  return {{"items", items}, {"next_cursor", page.next_cursor ? nlohmann::json(*page.next_cursor) : nlohmann::json(nullptr)}};
}

}  // namespace orchestrator::api
