// DomainPort over the orchestrator domain services: type mapping only.
#include "orchestrator/api/domain_adapter.hpp"

#include "core/util.hpp"
#include "orchestrator/auth/jwt.hpp"
#include "orchestrator/domain/drafts.hpp"
#include "orchestrator/domain/error.hpp"
#include "orchestrator/domain/proposals.hpp"
#include "orchestrator/domain/runs.hpp"
#include "orchestrator/domain/templates.hpp"
#include "orchestrator/domain/users.hpp"
#include "orchestrator/domain/workflows.hpp"

namespace orchestrator::api {

using nlohmann::json;

namespace {

DraftView view(const domain::Draft& d) {
  DraftView v;
  v.draft.id = d.id;
  v.draft.workflow_id = d.workflow_id;
  v.draft.revision = d.revision;
  v.draft.created_at = d.created_at;
  v.draft.updated_at = d.updated_at;
  v.files = d.files;
  return v;
}

store::UserRecord record(const domain::User& u) {
  store::UserRecord r;
  r.id = u.id;
  r.email = u.email;
  r.name = u.name;
  r.created_at = u.created_at;
  r.disabled_at = u.disabled_at;
  return r;
}

auth::JwtConfig jwt_config(const JwtSettings& s) {
  auth::JwtConfig c;
  c.hs256_secret = s.hs256_secret;
  c.rs256_public_key_pem = s.rs256_public_key_pem;
  c.external_issuer = s.external_issuer;
  c.external_audience = s.external_audience;
  c.lifetime = s.ttl;
  return c;
}

}  // namespace

struct DomainAdapter::Impl {
  Impl(store::Store& d, const JwtSettings& jwt, domain::ProposalLimits limits)
      : db(d),
        jwt(jwt_config(jwt)),
        templates(domain::TemplateLibrary::load_default()),
        users(d),
        workflows(d, templates),
        drafts(d),
        proposals(d, limits),
        runs(d, limits) {}
  store::Store& db;
  auth::JwtService jwt;
  domain::TemplateLibrary templates;
  domain::UserService users;
  domain::WorkflowService workflows;
  domain::DraftService drafts;
  domain::ProposalService proposals;
  domain::RunService runs;
};

DomainAdapter::DomainAdapter(store::Store& store, const JwtSettings& jwt, domain::ProposalLimits limits)
    : impl_(std::make_unique<Impl>(store, jwt, limits)) {}
DomainAdapter::~DomainAdapter() = default;

std::string DomainAdapter::create_user(store::Store& store, const std::string& email, const std::string& name,
                                       const std::string& password) {
  domain::UserService users(store);
  return users.create(email, name, password).id;
}

LoginResult DomainAdapter::login(const std::string& email, const std::string& password) {
  const domain::User u = impl_->users.authenticate(email, password);
  const auth::IssuedToken t = impl_->jwt.issue(u.id, u.email);
  return LoginResult{t.token, t.expires_at, record(u)};
}

json DomainAdapter::verify_token(const std::string& token) {
  const auth::Claims c = impl_->jwt.verify(token);
  if (c.alg == "RS256") {
    // External identity provider: its subject is not our user id; (iss, sub) is linked to one.
    const domain::User u = impl_->users.sign_in_external({c.iss, c.sub, c.email, c.email_verified});
    return {{"user_id", u.id}, {"email", u.email}, {"iss", c.iss}, {"exp", c.exp}, {"alg", c.alg},
            {"external_subject", c.sub}};
  }
  // Our own token names the user; one whose account is gone or disabled, or whose password
  // changed after the token was issued, is no longer valid (401 on every route, rather than
  // 404s or foreign-key failures further down).
  impl_->users.require_token_user(c.sub, c.iat);
  return {{"user_id", c.sub}, {"email", c.email}, {"iss", c.iss}, {"exp", c.exp}, {"alg", c.alg}};
}

json DomainAdapter::templates() {
  json out = json::array();
  for (const auto& n : impl_->templates.names()) {
    out.push_back({{"name", n}, {"files", impl_->templates.files(n).size()}});
  }
  return out;
}

WorkflowView DomainAdapter::create_workflow(const std::string& user_id, const std::string& name,
                                            const std::string& description,
                                            const std::optional<std::string>& template_name,
                                            const std::optional<json>& files) {
  domain::CreateWorkflowInput in;
  in.name = name;
  in.description = description;
  in.template_name = template_name;
  if (files) in.files = domain::files_from_json(*files, "files", core::now_rfc3339());
  auto r = impl_->workflows.create(user_id, in);
  return WorkflowView{r.workflow, view(r.draft)};
}

store::Page<store::WorkflowRecord> DomainAdapter::list_workflows(const std::string& user_id,
                                                                 const store::PageRequest& page) {
  return impl_->workflows.list(user_id, page);
}

WorkflowView DomainAdapter::get_workflow(const std::string& user_id, const std::string& workflow_id) {
  WorkflowView v{impl_->workflows.get(user_id, workflow_id), std::nullopt};
  v.draft = view(impl_->drafts.get(user_id, workflow_id));
  return v;
}

store::WorkflowRecord DomainAdapter::update_workflow(const std::string& user_id, const std::string& workflow_id,
                                                     const std::optional<std::string>& name,
                                                     const std::optional<std::string>& description) {
  return impl_->workflows.update(user_id, workflow_id, {name, description});
}

std::vector<std::string> DomainAdapter::delete_workflow(const std::string& user_id, const std::string& workflow_id) {
  return impl_->workflows.remove(user_id, workflow_id).cancelled_threads;
}

store::Page<store::MemberRecord> DomainAdapter::list_members(const std::string& user_id,
                                                             const std::string& workflow_id,
                                                             const store::PageRequest& page) {
  return impl_->workflows.list_members(user_id, workflow_id, page);
}

MemberView DomainAdapter::set_member(const std::string& user_id, const std::string& workflow_id,
                                     const std::string& member, const std::string& role) {
  const auto c = impl_->workflows.set_member(user_id, workflow_id, member, role);
  return MemberView{c.member, c.added};
}

void DomainAdapter::remove_member(const std::string& user_id, const std::string& workflow_id,
                                  const std::string& member) {
  impl_->workflows.remove_member(user_id, workflow_id, member);
}

ProfileView DomainAdapter::me(const std::string& user_id) {
  const auto p = impl_->users.profile(user_id);
  return ProfileView{record(p.user), p.identities};
}

VersionView DomainAdapter::get_version(const std::string& user_id, const std::string& workflow_id, long long number) {
  auto v = impl_->workflows.get_version(user_id, workflow_id, number);
  return VersionView{v.info, v.files};
}

store::Page<store::ProposalRecord> DomainAdapter::list_my_proposals(const std::string& user_id,
                                                                    const std::vector<store::ProposalStatus>& statuses,
                                                                    const store::PageRequest& page) {
  return impl_->proposals.list_visible(user_id, statuses, page);
}

store::Page<store::VersionRecord> DomainAdapter::list_versions(const std::string& user_id,
                                                               const std::string& workflow_id,
                                                               const store::PageRequest& page) {
  return impl_->workflows.list_versions(user_id, workflow_id, page);
}

VersionView DomainAdapter::publish_version(const std::string& user_id, const std::string& workflow_id,
                                           std::optional<long long> base_revision) {
  // The revision is compared inside publish's transaction (no check-then-act race).
  auto v = impl_->workflows.publish(user_id, workflow_id, base_revision);
  return VersionView{v.info, v.files, v.created};
}

json DomainAdapter::deploy(const std::string& user_id, const std::string& workflow_id,
                          std::optional<long long> number) {
  auto d = impl_->workflows.deploy(user_id, workflow_id, number);
  return {{"workflow_id", workflow_id},
          {"version", {{"id", d.version.id}, {"number", d.version.number}, {"created_at", d.version.created_at},
                       {"created_by", d.version.created_by}}},
          {"definition", d.definition},
          {"deployed_at", d.deployed_at},
          {"deployed_by", d.deployed_by},
          {"status", "deployed"}};
}

DraftView DomainAdapter::get_draft(const std::string& user_id, const std::string& workflow_id) {
  return view(impl_->drafts.get(user_id, workflow_id));
}

DraftView DomainAdapter::ensure_draft(const std::string& user_id, const std::string& workflow_id) {
  return view(impl_->drafts.get(user_id, workflow_id));
}

DraftView DomainAdapter::put_draft_files(const std::string& user_id, const std::string& workflow_id,
                                         const json& files, long long base_revision) {
  auto patch = domain::draft_patch_from_json(files, "files", core::now_rfc3339());
  return view(impl_->drafts.patch_files(user_id, workflow_id, patch.upserts, patch.deletes, base_revision));
}

void DomainAdapter::delete_draft(const std::string& user_id, const std::string& draft_id) {
  impl_->drafts.remove(user_id, draft_id);
}

bool DomainAdapter::refinement_key_used(const std::string& user_id, const std::string& key) {
  return impl_->proposals.key_used(user_id, key);
}

ProposalView DomainAdapter::get_proposal(const std::string& user_id, const std::string& proposal_id) {
  auto d = impl_->proposals.get(user_id, proposal_id);
  return ProposalView{d.proposal, d.changes};
}

store::Page<store::ProposalRecord> DomainAdapter::list_proposals(const std::string& user_id,
                                                                 const std::string& workflow_id,
                                                                 const store::PageRequest& page) {
  return impl_->proposals.list(user_id, workflow_id, page);
}

std::string DomainAdapter::proposal_diff(const std::string& user_id, const std::string& proposal_id) {
  return impl_->proposals.diff(user_id, proposal_id);
}

std::pair<ProposalView, DraftView> DomainAdapter::approve(const std::string& user_id, const std::string& proposal_id) {
  auto r = impl_->proposals.approve(user_id, proposal_id);
  const auto detail = impl_->proposals.get(user_id, proposal_id);
  return {ProposalView{r.proposal, detail.changes}, view(r.draft)};
}

ProposalView DomainAdapter::reject(const std::string& user_id, const std::string& proposal_id) {
  auto p = impl_->proposals.reject(user_id, proposal_id);
  const auto detail = impl_->proposals.get(user_id, proposal_id);
  return ProposalView{p, detail.changes};
}

ProposalView DomainAdapter::cancel(const std::string& user_id, const std::string& proposal_id) {
  auto p = impl_->proposals.cancel(user_id, proposal_id);
  const auto detail = impl_->proposals.get(user_id, proposal_id);
  return ProposalView{p, detail.changes};
}

std::optional<std::string> DomainAdapter::watch_thread(const std::string& user_id, const std::string& thread_id) {
  // The upgrade's middleware has checked the account already; the proxy's re-checks of an open
  // stream ask here alone, so the one query also refuses a deleted or disabled account.
  return impl_->proposals.watch(user_id, thread_id);
}

domain::StartedRun DomainAdapter::start_run(const std::string& user_id, const std::string& workflow_id,
                                            const domain::StartRunInput& in) {
  return impl_->runs.start(user_id, workflow_id, in);
}

void DomainAdapter::fail_run(const std::string& thread_id, const std::string& error, domain::FailureKind kind,
                             bool delete_thread) {
  impl_->runs.fail(thread_id, error, kind, delete_thread);
}

store::RunRecord DomainAdapter::get_run(const std::string& user_id, const std::string& workflow_id,
                                        const std::string& run_id) {
  return impl_->runs.get(user_id, workflow_id, run_id);
}

store::Page<store::RunRecord> DomainAdapter::list_runs(const std::string& user_id, const std::string& workflow_id,
                                                       const store::PageRequest& page) {
  return impl_->runs.list(user_id, workflow_id, page);
}

store::RunRecord DomainAdapter::cancel_run(const std::string& user_id, const std::string& workflow_id,
                                           const std::string& run_id) {
  return impl_->runs.cancel(user_id, workflow_id, run_id);
}

}  // namespace orchestrator::api
