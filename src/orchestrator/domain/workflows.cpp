#include "orchestrator/domain/workflows.hpp"

#include <set>


#include "core/files.hpp"
#include "core/json_parse.hpp"
#include "core/util.hpp"
#include "orchestrator/domain/access.hpp"
#include "orchestrator/domain/audit.hpp"
#include "orchestrator/domain/error.hpp"
#include "orchestrator/domain/users.hpp"
#include "orchestrator/store/repositories.hpp"
#include "orchestrator/store/runs.hpp"
#include "spec_engine/runtime/run.hpp"

namespace orchestrator::domain {

WorkflowService::WorkflowService(store::Store& store, const TemplateLibrary& templates)
    : store_(store), templates_(templates) {}

namespace {
// Both limits count bytes of UTF-8, like every other text limit of the API (docs/orchestrator-api.md).
constexpr std::size_t kMaxName = 200;
constexpr std::size_t kMaxDescription = 2000;

void validate_description(const std::string& description) {
  if (description.find('\0') != std::string::npos)
    throw InvalidError("description", "description must not contain NUL characters");
  if (description.size() > kMaxDescription)
    throw InvalidError("description", "description must be at most 2000 bytes of UTF-8 (it has " +
                                          std::to_string(description.size()) + ")");
}

/// True when `s` holds nothing but spaces: ASCII space and the Unicode space separators
/// (Zs: U+00A0, U+1680, U+2000..U+200A, U+202F, U+205F, U+3000) and zero-width ones (U+200B,
/// U+FEFF), as UTF-8. (Tabs and line breaks are control characters, refused on their own.)
bool is_blank(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = [&](std::size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0; };
    if (b(0) == 0x20) {
      i += 1;
    } else if (b(0) == 0xC2 && b(1) == 0xA0) {
      i += 2;
    } else if ((b(0) == 0xE1 && b(1) == 0x9A && b(2) == 0x80) ||                                       // U+1680
               (b(0) == 0xE2 && b(1) == 0x80 && ((b(2) >= 0x80 && b(2) <= 0x8B) || b(2) == 0xAF)) ||  // U+2000..200B, 202F
               (b(0) == 0xE2 && b(1) == 0x81 && b(2) == 0x9F) ||                                       // U+205F
               (b(0) == 0xE3 && b(1) == 0x80 && b(2) == 0x80) ||                                       // U+3000
               (b(0) == 0xEF && b(1) == 0xBB && b(2) == 0xBF)) {                                       // U+FEFF
      i += 3;
    } else {
      return false;
    }
  }
  return true;
}
}  // namespace

void validate_workflow_name(const std::string& name) {
  if (name.empty() || name.size() > kMaxName)
    throw InvalidError("name", "name must be 1 to 200 bytes of UTF-8 (it has " + std::to_string(name.size()) + ")");
  for (const char c : name)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      throw InvalidError("name", "name must not contain control characters (NUL, line breaks, tabs, ...)");
  if (is_blank(name)) throw InvalidError("name", "name must not be blank: give it at least one visible character");
}

WorkflowWithDraft WorkflowService::create(const std::string& actor, const CreateWorkflowInput& in) {
  validate_workflow_name(in.name);
  validate_description(in.description);
  if (in.template_name && in.files)
    throw InvalidError("template", "give either a template or files, not both");
  const std::string now = core::now_rfc3339();
  FileMap files;
  if (in.template_name) {
    files = templates_.files(*in.template_name);
    for (auto& [p, f] : files) f.created_at = f.modified_at = now;
  } else if (in.files) {
    files = *in.files;
  }
  validate_totals(files, "files");
  return store_.run([&](store::UnitOfWork& uow) -> WorkflowWithDraft {
    if (!store::users::find_by_id(uow, actor)) throw NotFoundError("user", actor);
    store::WorkflowRecord w{core::uuid4(), in.name, in.description, actor, now, now, "owner"};
    store::Tx tx(uow);
    store::workflows::insert(uow, w);
    store::workflows::upsert_member(uow, w.id, actor, "owner", now);
    store::DraftRecord d{core::uuid4(), w.id, 1, now, now};
    store::drafts::insert_if_missing(uow, d);
    for (const auto& [path, f] : files) store::drafts::upsert_file(uow, d.id, path, f);
    nlohmann::json details{{"name", w.name}, {"files", files.size()}};
    if (in.template_name) details["template"] = *in.template_name;
    audit_append(uow, actor, w.id, "workflow.create", "workflow", w.id, details);
    tx.commit();
    return {w, Draft{d.id, w.id, 1, files, now, now}};
  });
}

store::Page<Workflow> WorkflowService::list(const std::string& actor, const store::PageRequest& page) {
  return store_.run([&](store::UnitOfWork& uow) -> store::Page<Workflow> {
    return store::fetch_page(
        page, [&](int n, const auto& after) { return store::workflows::list_for_user(uow, actor, n, after); },
        [](const Workflow& w) { return store::CursorKey{w.created_at, w.id}; });
  });
}

Workflow WorkflowService::get(const std::string& actor, const std::string& workflow_id) {
  return store_.run([&](store::UnitOfWork& uow) -> Workflow {
    return access::require_workflow(uow, workflow_id, actor);
  });
}

Workflow WorkflowService::update(const std::string& actor, const std::string& workflow_id,
                                 const UpdateWorkflowInput& in) {
  if (!in.name && !in.description) throw InvalidError("(body)", "give name and/or description to change");
  if (in.name) validate_workflow_name(*in.name);
  if (in.description) validate_description(*in.description);
  return store_.run([&](store::UnitOfWork& uow) -> Workflow {
    store::Tx tx(uow);
    auto w = access::require_workflow_writer(uow, workflow_id, actor);
    nlohmann::json changes = nlohmann::json::object();
    if (in.name && *in.name != w.name) changes["name"] = {{"from", w.name}, {"to", *in.name}};
    if (in.description && *in.description != w.description)
      changes["description"] = {{"from", w.description}, {"to", *in.description}};
    if (changes.empty()) return w;
    w.name = in.name.value_or(w.name);
    w.description = in.description.value_or(w.description);
    w.updated_at = core::now_rfc3339();
    if (!store::workflows::update(uow, workflow_id, w.name, w.description, w.updated_at))
      throw NotFoundError("workflow", workflow_id);
    audit_append(uow, actor, workflow_id, "workflow.update", "workflow", workflow_id, {{"changes", changes}});
    tx.commit();
    return w;
  });
}

DeletedWorkflow WorkflowService::remove(const std::string& actor, const std::string& workflow_id) {
  return store_.run([&](store::UnitOfWork& uow) -> DeletedWorkflow {
    store::Tx tx(uow);
    const auto w = access::require_workflow_owner(uow, workflow_id, actor, "delete it");
    const std::string now = core::now_rfc3339();
    if (!store::workflows::soft_delete(uow, workflow_id, actor, now)) throw NotFoundError("workflow", workflow_id);
    DeletedWorkflow out;
    const auto t = store::proposals::Transition::resolution(actor, now);
    for (const auto& [id, thread] :
         store::proposals::list_for_workflow_in(uow, workflow_id, store::ProposalStatus::processing)) {
      if (store::proposals::transition(uow, id, {store::ProposalStatus::processing}, store::ProposalStatus::cancelled,
                                       t) != 1)
        continue;
      audit_append(uow, actor, workflow_id, "proposal.cancel", "proposal", id,
                   {{"thread_id", thread}, {"reason", "workflow deleted"}});
      out.cancelled_threads.push_back(thread);
    }
    store::runs::Finish cancelled;
    cancelled.completed_at = now;
    cancelled.error = "cancelled: the workflow was deleted";
    cancelled.mark_cleanup = true;
    for (const auto& [id, thread] : store::runs::list_processing_for_workflow(uow, workflow_id)) {
      if (store::runs::finish(uow, id, store::RunStatus::cancelled, cancelled) != 1) continue;
      audit_append(uow, actor, workflow_id, "run.cancel", "run", id,
                   {{"thread_id", thread}, {"reason", "workflow deleted"}});
      out.cancelled_threads.push_back(thread);
    }
    out.threads_scheduled = static_cast<long long>(out.cancelled_threads.size()) +
                            store::proposals::schedule_workflow_cleanup(uow, workflow_id) +
                            store::runs::schedule_workflow_cleanup(uow, workflow_id);
    audit_append(uow, actor, workflow_id, "workflow.delete", "workflow", workflow_id,
                 {{"name", w.name}, {"cancelled", out.cancelled_threads.size()},
                  {"threads_scheduled", out.threads_scheduled}});
    tx.commit();
    return out;
  });
}

store::Page<Member> WorkflowService::list_members(const std::string& actor, const std::string& workflow_id,
                                                  const store::PageRequest& page) {
  return store_.run([&](store::UnitOfWork& uow) -> store::Page<Member> {
    access::require_workflow(uow, workflow_id, actor);
    return store::fetch_page(
        page, [&](int n, const auto& after) { return store::workflows::list_members(uow, workflow_id, n, after); },
        [](const Member& m) { return store::CursorKey{m.added_at, m.user_id}; });
  });
}

MemberChange WorkflowService::set_member(const std::string& actor, const std::string& workflow_id,
                                         const std::string& user, const std::string& role) {
  if (role != "editor" && role != "viewer") throw InvalidError("role", "role must be 'editor' or 'viewer'");
  return store_.run([&](store::UnitOfWork& uow) -> MemberChange {
    store::Tx tx(uow);
    const auto w = access::require_workflow_owner(uow, workflow_id, actor, "change its members");
    const auto target = require_user(uow, user);
    if (target.id == w.owner_id)
      throw PreconditionError("the owner's role cannot be changed: a workflow always keeps its owner",
                              {{"owner_id", w.owner_id}});
    const auto before = store::workflows::find_member(uow, workflow_id, target.id);
    MemberChange out;
    out.added = !before;
    out.changed = !before || before->role != role;
    if (out.changed) {
      store::workflows::upsert_member(uow, workflow_id, target.id, role, core::now_rfc3339());
      audit_append(uow, actor, workflow_id, "workflow.member", "user", target.id,
                   {{"role", role}, {"previous_role", before ? nlohmann::json(before->role) : nlohmann::json(nullptr)}});
    }
    out.member = *store::workflows::find_member(uow, workflow_id, target.id);
    tx.commit();
    return out;
  });
}

void WorkflowService::remove_member(const std::string& actor, const std::string& workflow_id,
                                    const std::string& user) {
  return store_.run([&](store::UnitOfWork& uow) {
    store::Tx tx(uow);
    const auto w = access::require_workflow(uow, workflow_id, actor);
    const auto target = require_user(uow, user);
    if (target.id != actor && w.role != "owner")
      throw ForbiddenError("your role on workflow " + workflow_id + " is '" + w.role +
                           "'; only the owner can remove other members (you may remove yourself)");
    if (target.id == w.owner_id)
      throw PreconditionError("the owner cannot be removed: a workflow always keeps its owner (delete the workflow "
                              "instead)",
                              {{"owner_id", w.owner_id}});
    const auto before = store::workflows::find_member(uow, workflow_id, target.id);
    if (!before || !store::workflows::remove_member(uow, workflow_id, target.id))
      throw NotFoundError("member", user);
    audit_append(uow, actor, workflow_id, "workflow.member_remove", "user", target.id, {{"role", before->role}});
    tx.commit();
  });
}

store::Page<VersionInfo> WorkflowService::list_versions(const std::string& actor, const std::string& workflow_id,
                                                        const store::PageRequest& page) {
  return store_.run([&](store::UnitOfWork& uow) -> store::Page<VersionInfo> {
    access::require_workflow(uow, workflow_id, actor);
    return store::fetch_page(
        page, [&](int n, const auto& after) { return store::versions::list(uow, workflow_id, n, after); },
        [](const VersionInfo& v) { return store::CursorKey{v.created_at, v.id}; });
  });
}

VersionInfo version_by_number(store::UnitOfWork& uow, const std::string& workflow_id, long long number) {
  auto v = store::versions::find_by_number(uow, workflow_id, number);
  if (!v) throw NotFoundError("version", std::to_string(number));
  return *v;
}

Version WorkflowService::get_version(const std::string& actor, const std::string& workflow_id, long long number) {
  return store_.run([&](store::UnitOfWork& uow) -> Version {
    access::require_workflow(uow, workflow_id, actor);
    const VersionInfo v = version_by_number(uow, workflow_id, number);
    return {v, store::versions::load_files(uow, v.id)};
  });
}

Version WorkflowService::publish(const std::string& actor, const std::string& workflow_id,
                                 std::optional<long long> expected_revision) {
  return store_.run([&](store::UnitOfWork& uow) -> Version {
    access::require_workflow_writer(uow, workflow_id, actor);
    store::Tx tx(uow);
    auto draft = store::drafts::find_by_workflow(uow, workflow_id);
    if (!draft) throw PreconditionError("the workflow has no draft to publish");
    const std::string now = core::now_rfc3339();
    // Lock the draft row (PostgreSQL) so concurrent publishes and edits serialise, then
    // re-read it: the revision checked below is the one this transaction publishes.
    store::drafts::lock(uow, draft->id);
    draft = store::drafts::find_by_workflow(uow, workflow_id);
    if (!draft) throw PreconditionError("the workflow has no draft to publish");
    if (expected_revision && draft->revision != *expected_revision) {
      throw ConflictError("The draft is at revision " + std::to_string(draft->revision) + ", not " +
                              std::to_string(*expected_revision) + "; reload it and publish again.",
                          {}, {{"current_revision", draft->revision}});
    }
    const auto files = store::drafts::load_files(uow, draft->id);
    if (files.empty()) throw PreconditionError("the draft has no files; add files before publishing");
    if (const auto latest = store::versions::latest(uow, workflow_id)) {
      auto latest_files = store::versions::load_files(uow, latest->id);
      if (same_contents(files, latest_files)) return {*latest, std::move(latest_files), false};
    }
    VersionInfo v{core::uuid4(), workflow_id, store::versions::next_number(uow, workflow_id), actor, now};
    store::versions::insert(uow, v);
    for (const auto& [path, f] : files) store::versions::insert_file(uow, v.id, path, f);
    store::workflows::touch(uow, workflow_id, now);
    audit_append(uow, actor, workflow_id, "workflow.publish", "version", v.id,
                 {{"number", v.number}, {"draft_revision", draft->revision}, {"files", files.size()}});
    tx.commit();
    return {v, files};
  });
}

void validate_definition(const nlohmann::json& def, const std::string& field) {
  // One rule set for both services: the engine's own validator (docs/engine-api.md#agent-definition),
  // so a definition that deploys is one the engine runs.
  const auto errors = spec_engine::runtime::validate_definition(def, field);
  if (errors.empty()) return;
  // The problem names the field already (problem details' "Field '<field>' ..."): the message
  // is the rule alone.
  std::string message = errors.front().message;
  if (errors.size() > 1) message += " (and " + std::to_string(errors.size() - 1) + " more problem(s))";
  throw InvalidError(errors.front().field, message);
}

nlohmann::json runnable_definition(const FileMap& files, const std::string& what) {
  const auto it = files.find("/definition.json");
  if (it == files.end()) throw InvalidError("/definition.json", what + " has no /definition.json");
  auto parsed = core::json::try_parse(core::files::join_lines(it->second.content));
  if (auto* e = std::get_if<core::json::ParseError>(&parsed))
    throw InvalidError("/definition.json", "/definition.json of " + what + " is not valid JSON: " + e->message);
  const auto& def = std::get<nlohmann::json>(parsed);
  validate_definition(def);
  return def;
}

Deployment WorkflowService::deploy(const std::string& actor, const std::string& workflow_id,
                                   std::optional<long long> number) {
  return store_.run([&](store::UnitOfWork& uow) -> Deployment {
    access::require_workflow_writer(uow, workflow_id, actor);
    std::optional<VersionInfo> v;
    if (number) {
      v = version_by_number(uow, workflow_id, *number);
    } else {
      v = store::versions::latest(uow, workflow_id);
      if (!v) throw PreconditionError("the workflow has no published version; publish the draft first");
    }
    const auto def =
        runnable_definition(store::versions::load_files(uow, v->id), "version " + std::to_string(v->number));
    Deployment d{*v, def, core::now_rfc3339(), actor};
    store::Tx tx(uow);
    store::deployments::upsert(uow, workflow_id, v->id, actor, d.deployed_at);
    audit_append(uow, actor, workflow_id, "workflow.deploy", "version", v->id, {{"number", v->number}});
    tx.commit();
    return d;
  });
}

}  // namespace orchestrator::domain
