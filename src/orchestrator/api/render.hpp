#pragma once
// JSON renderings of domain objects for API responses (DESIGN.md §5 "Shapes":
// files in the engine shape, RFC 3339 UTC timestamps, UUID ids, pages as
// {items, next_cursor}).

#include <nlohmann/json.hpp>

#include "orchestrator/api/domain_port.hpp"

namespace orchestrator::api {

/// {id, email, name} (never the password hash).
nlohmann::json render_user(const store::UserRecord& u);
/// {id, workflow_id, revision, files, created_at, updated_at}.
nlohmann::json render_draft(const DraftView& d);
/// {id, name, description, owner_id, role, created_at, updated_at[, draft]}.
nlohmann::json render_workflow(const store::WorkflowRecord& w);
nlohmann::json render_workflow(const WorkflowView& w);
/// {id, workflow_id, number, created_by, created_at[, files]}.
nlohmann::json render_version(const store::VersionRecord& v);
nlohmann::json render_version(const VersionView& v);
/// {path, change, lines_added, lines_removed}.
nlohmann::json render_change(const domain::FileChange& c);
/// Proposal without files (lists) or with generated_files + changes (details).
nlohmann::json render_proposal(const store::ProposalRecord& p);
nlohmann::json render_proposal(const ProposalView& p);

/// {items: [render(x)...], next_cursor: string|null}.
template <class T, class F>
nlohmann::json render_page(const store::Page<T>& page, F render) {
  nlohmann::json items = nlohmann::json::array();
  for (const auto& x : page.items) items.push_back(render(x));
  return {{"items", items}, {"next_cursor", page.next_cursor ? nlohmann::json(*page.next_cursor) : nlohmann::json(nullptr)}};
}

}  // namespace orchestrator::api
