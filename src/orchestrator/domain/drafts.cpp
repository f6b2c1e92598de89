#include "orchestrator/domain/drafts.hpp"

#include <set>


#include "core/util.hpp"
#include "orchestrator/domain/access.hpp"
#include "orchestrator/domain/audit.hpp"
#include "orchestrator/domain/error.hpp"
#include "orchestrator/store/repositories.hpp"

namespace orchestrator::domain {

DraftService::DraftService(store::Store& store) : store_(store) {}

Draft DraftService::ensure(store::UnitOfWork& uow, const std::string& workflow_id) {
  auto rec = store::drafts::find_by_workflow(uow, workflow_id);
  if (!rec) {
    const std::string now = core::now_rfc3339();
    store::DraftRecord d{core::uuid4(), workflow_id, 1, now, now};
    if (store::drafts::insert_if_missing(uow, d)) {
      if (auto v = store::versions::latest(uow, workflow_id))
        for (const auto& [path, f] : store::versions::load_files(uow, v->id)) store::drafts::upsert_file(uow, d.id, path, f);
    }
    rec = store::drafts::find_by_workflow(uow, workflow_id);
    if (!rec) throw std::runtime_error("draft for workflow " + workflow_id + " vanished while being created");
  }
  Draft out{rec->id, rec->workflow_id, rec->revision, store::drafts::load_files(uow, rec->id), rec->created_at,
            rec->updated_at};
  return out;
}

Draft DraftService::get(const std::string& actor, const std::string& workflow_id) {
  return store_.run([&](store::UnitOfWork& uow) -> Draft {
    access::require_workflow(uow, workflow_id, actor);
    if (auto rec = store::drafts::find_by_workflow(uow, workflow_id))
      return Draft{rec->id, rec->workflow_id, rec->revision, store::drafts::load_files(uow, rec->id), rec->created_at,
                   rec->updated_at};
    store::Tx tx(uow);
    auto d = ensure(uow, workflow_id);
    tx.commit();
    return d;
  });
}

Draft DraftService::put_files(const std::string& actor, const std::string& workflow_id, const FileMap& files,
                              long long base_revision) {
  return write(actor, workflow_id, files, {}, true, base_revision);
}

Draft DraftService::patch_files(const std::string& actor, const std::string& workflow_id, const FileMap& upserts,
                                const std::vector<std::string>& deletes, long long base_revision) {
  for (const auto& p : deletes) validate_path(p, "deletes");
  return write(actor, workflow_id, upserts, deletes, false, base_revision);
}

Draft DraftService::write(const std::string& actor, const std::string& workflow_id, const FileMap& upserts,
                          const std::vector<std::string>& deletes, bool replace, long long base_revision) {
  validate_totals(upserts, "files");
  return store_.run([&](store::UnitOfWork& uow) -> Draft {
    access::require_workflow_writer(uow, workflow_id, actor);
    store::Tx tx(uow);
    auto current = ensure(uow, workflow_id);
    const std::string now = core::now_rfc3339();
    if (!store::drafts::bump_revision(uow, current.id, base_revision, now)) {
      const auto rec = store::drafts::find(uow, current.id);
      const long long cur = rec ? rec->revision : current.revision;
      throw ConflictError("the draft changed since revision " + std::to_string(base_revision) + " (now at revision " +
                              std::to_string(cur) + "); reload it and apply your edit again",
                          {}, {{"current_revision", cur}, {"base_revision", base_revision}});
    }
    std::set<std::string> removed(deletes.begin(), deletes.end());
    if (replace)
      for (const auto& [path, f] : current.files)
        if (!upserts.count(path)) removed.insert(path);
    // The shared totals (core/files.hpp) hold for the draft as it will be, checked before any write.
    FileMap result = current.files;
    for (const auto& path : removed) result.erase(path);
    for (const auto& [path, f] : upserts) result[path] = f;
    validate_totals(result, "files");
    for (const auto& path : removed)
      if (current.files.count(path)) store::drafts::delete_file(uow, current.id, path);
    for (const auto& [path, f] : upserts) {
      const auto it = current.files.find(path);
      if (it != current.files.end() && it->second.same_content(f)) continue;
      FileEntry e{f.content, it != current.files.end() ? it->second.created_at : now, now};
      store::drafts::upsert_file(uow, current.id, path, e);
    }
    store::workflows::touch(uow, workflow_id, now);
    audit_append(uow, actor, workflow_id, "draft.update", "draft", current.id,
                 {{"base_revision", base_revision}, {"revision", base_revision + 1},
                  {"files", upserts.size()}, {"deleted", removed.size()}, {"mode", replace ? "replace" : "patch"}});
    auto rec = store::drafts::find(uow, current.id);
    Draft out{current.id, workflow_id, rec->revision, store::drafts::load_files(uow, current.id), current.created_at,
              rec->updated_at};
    tx.commit();
    return out;
  });
}

void DraftService::remove(const std::string& actor, const std::string& draft_id) {
  return store_.run([&](store::UnitOfWork& uow) {
    const auto rec = store::drafts::find(uow, draft_id);
    if (!rec || !store::workflows::find_for_user(uow, rec->workflow_id, actor)) throw NotFoundError("draft", draft_id);
    access::require_workflow_writer(uow, rec->workflow_id, actor);
    store::Tx tx(uow);
    if (store::proposals::count_open_for_draft(uow, draft_id) > 0)
      throw PreconditionError("the draft has proposals that are processing or awaiting review; reject or cancel them first");
    store::drafts::remove(uow, draft_id);
    audit_append(uow, actor, rec->workflow_id, "draft.delete", "draft", draft_id, {{"revision", rec->revision}});
    tx.commit();
  });
}

}  // namespace orchestrator::domain
