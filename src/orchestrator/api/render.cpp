// JSON renderings of domain objects.
#include "orchestrator/api/render.hpp"

namespace orchestrator::api {

using nlohmann::json;

namespace {
json opt(const std::optional<std::string>& s) { return s ? json(*s) : json(nullptr); }
}  // namespace

json render_user(const store::UserRecord& u) { return {{"id", u.id}, {"email", u.email}, {"name", u.name}}; }

json render_profile(const ProfileView& p) {
  json ids = json::array();
  for (const auto& i : p.identities)
    ids.push_back({{"issuer", i.issuer}, {"subject", i.subject}, {"email", i.email}, {"linked_at", i.created_at}});
  json j = render_user(p.user);
  j["created_at"] = p.user.created_at;
  j["identities"] = ids;
  return j;
}

json render_member(const store::MemberRecord& m) {
  return {{"user_id", m.user_id}, {"email", m.email}, {"name", m.name}, {"role", m.role}, {"added_at", m.added_at}};
}

json render_draft(const DraftView& d) {
  return {{"id", d.draft.id},           {"workflow_id", d.draft.workflow_id},
          {"revision", d.draft.revision}, {"files", domain::files_to_json(d.files)},
          {"created_at", d.draft.created_at}, {"updated_at", d.draft.updated_at}};
}

json render_workflow(const store::WorkflowRecord& w) {
  return {{"id", w.id},           {"name", w.name},       {"description", w.description}, {"owner_id", w.owner_id},
          {"role", w.role},       {"created_at", w.created_at}, {"updated_at", w.updated_at}};
}

json render_workflow(const WorkflowView& w) {
  json j = render_workflow(w.workflow);
  j["draft"] = w.draft ? render_draft(*w.draft) : json(nullptr);
  return j;
}

json render_version(const store::VersionRecord& v) {
  return {{"id", v.id}, {"workflow_id", v.workflow_id}, {"number", v.number}, {"created_by", v.created_by},
          {"created_at", v.created_at}};
}

json render_version(const VersionView& v) {
  json j = render_version(v.version);
  j["files"] = domain::files_to_json(v.files);
  return j;
}

json render_change(const domain::FileChange& c) {
  return {{"path", c.path}, {"change", domain::to_string(c.kind)}, {"lines_added", c.lines_added},
          {"lines_removed", c.lines_removed}};
}

json render_proposal(const store::ProposalRecord& p) {
  return {{"id", p.id},
          {"workflow_id", p.workflow_id},
          {"draft_id", opt(p.draft_id)},
          {"thread_id", p.thread_id},
          {"status", store::to_string(p.status)},
          {"user_prompt", p.user_prompt},
          {"context_file_path", opt(p.context_file_path)},
          {"context_selection", opt(p.context_selection)},
          {"error", opt(p.error)},
          {"created_at", p.created_at},
          {"completed_at", opt(p.completed_at)},
          {"resolved_at", opt(p.resolved_at)},
          {"created_by_user_id", p.created_by_user_id},
          {"resolved_by_user_id", opt(p.resolved_by_user_id)}};
}

json render_proposal(const ProposalView& v) {
  json j = render_proposal(v.proposal);
  j["generated_files"] = v.proposal.generated_files ? domain::files_to_json(*v.proposal.generated_files) : json(nullptr);
  json changes = json::array();
  for (const auto& c : v.changes) changes.push_back(render_change(c));
  j["changes"] = changes;
  return j;
}

json render_run(const store::RunRecord& r, bool with_files) {
  json j = {{"id", r.id},
            {"workflow_id", r.workflow_id},
            {"version", r.version_number ? json(*r.version_number) : json(nullptr)},
            {"draft_revision", r.draft_revision ? json(*r.draft_revision) : json(nullptr)},
            {"thread_id", r.thread_id},
            {"status", store::to_string(r.status)},
            {"input", r.input},
            {"output", opt(r.output)},
            {"error", opt(r.error)},
            {"failure_kind", opt(r.failure_kind)},
            {"stream_available", !r.engine_cleanup_pending && !r.engine_thread_deleted_at},
            {"created_by_user_id", r.created_by_user_id},
            {"created_at", r.created_at},
            {"completed_at", opt(r.completed_at)}};
  if (with_files) j["files"] = r.files ? domain::files_to_json(*r.files) : json(nullptr);
  return j;
}

}  // namespace orchestrator::api
