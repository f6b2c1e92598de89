// Workflow runs: see runs.hpp.
#include "orchestrator/domain/runs.hpp"

#include <algorithm>

#include "core/util.hpp"
#include "orchestrator/domain/access.hpp"
#include "orchestrator/domain/audit.hpp"
#include "orchestrator/domain/error.hpp"
#include "orchestrator/domain/idempotency.hpp"
#include "orchestrator/domain/run_quota.hpp"
#include "orchestrator/domain/workflows.hpp"
#include "orchestrator/store/repositories.hpp"

namespace orchestrator::domain {

namespace {

constexpr std::size_t kMaxInput = 20000;
constexpr std::size_t kMaxError = 4000;

std::string later(std::chrono::seconds d) { return core::to_rfc3339(std::chrono::system_clock::now() + d); }

/// The run, if it belongs to `workflow_id` (which the caller may see); NotFoundError otherwise.
Run require_run(store::UnitOfWork& uow, const std::string& workflow_id, const std::string& run_id) {
  auto r = store::runs::find(uow, run_id);
  if (!r || r->workflow_id != workflow_id) throw NotFoundError("run", run_id);
  return *r;
}

std::vector<RunThread> run_threads(const std::vector<std::pair<std::string, std::string>>& rows) {
  std::vector<RunThread> out;
  out.reserve(rows.size());
  for (const auto& [id, thread] : rows) out.push_back({id, thread});
  return out;
}

/// The target a run start named, as stored with its Idempotency-Key: "deployed", "draft" or N.
std::string target_text(const RunTarget& t) {
  switch (t.kind) {
    case RunTarget::Kind::draft: return "draft";
    case RunTarget::Kind::version: return std::to_string(t.number);
    case RunTarget::Kind::deployed: break;
  }
  return "deployed";
}

}  // namespace

RunService::RunService(store::Store& store, ProposalLimits limits) : store_(store), limits_(limits) {}

StartedRun RunService::start(const std::string& actor, const std::string& workflow_id, const StartRunInput& in) {
  if (in.input.find_first_not_of(" \t\r\n") == std::string::npos)
    throw InvalidError("input", "input must be a non-empty message for the workflow's entry agent");
  if (in.input.size() > kMaxInput) throw InvalidError("input", "input is longer than 20000 bytes");
  check_thread_id(in.thread_id);
  if (in.idempotency_key) check_idempotency_key(*in.idempotency_key);
  // The run an earlier request with this key started, when it was the same request.
  const auto replay = [&](store::UnitOfWork& uow) -> std::optional<StartedRun> {
    if (!in.idempotency_key) return std::nullopt;
    auto old = store::runs::find_by_idempotency_key(uow, actor, *in.idempotency_key);
    if (!old) return std::nullopt;
    if (old->workflow_id != workflow_id || old->input != in.input || old->idempotency_target != target_text(in.target))
      throw IdempotencyKeyReusedError(*in.idempotency_key, "run", old->id);
    StartedRun again;
    again.run = std::move(*old);
    again.replayed = true;
    return again;
  };
  auto started = store_.run([&](store::UnitOfWork& uow) -> std::optional<StartedRun> {
    access::require_workflow_writer(uow, workflow_id, actor);
    if (auto again = replay(uow)) return again;  // spares resolving the target for a plain resend
    StartedRun out;
    Run& r = out.run;
    // Resolve what runs (reads only), then record the run in one transaction with the cap check.
    if (in.target.kind == RunTarget::Kind::draft) {
      const auto draft = store::drafts::find_by_workflow(uow, workflow_id);
      if (!draft) throw PreconditionError("the workflow has no draft to run");
      out.files = store::drafts::load_files(uow, draft->id);
      r.draft_revision = draft->revision;
      out.definition = runnable_definition(out.files, "the draft");
    } else {
      std::optional<store::VersionRecord> v;
      if (in.target.kind == RunTarget::Kind::version) {
        v = version_by_number(uow, workflow_id, in.target.number);
      } else {
        const auto dep = store::deployments::find(uow, workflow_id);
        if (!dep)
          throw PreconditionError("no version of this workflow is deployed; deploy one (POST /api/workflows/" +
                                  workflow_id + "/deploy) or name a version (\"version\": N, or \"draft\")");
        v = version_by_number(uow, workflow_id, dep->version_number);
      }
      out.files = store::versions::load_files(uow, v->id);
      r.version_id = v->id;
      r.version_number = v->number;
      out.definition = runnable_definition(out.files, "version " + std::to_string(v->number));
    }
    store::Tx tx(uow);
    // As ProposalService::create: the user's row lock, then the key, then the cap.
    if (in.idempotency_key) {
      store::users::lock(uow, uow.dialect(), actor);
      if (auto again = replay(uow)) return again;
    }
    require_run_slot(uow, uow.dialect(), actor, RunKind::run, limits_.max_concurrent_runs_per_user);
    if (store::runs::find_by_thread(uow, in.thread_id) || store::proposals::find_by_thread(uow, in.thread_id))
      throw ConflictError("thread " + in.thread_id + " is already in use");
    r.id = core::uuid4();
    r.workflow_id = workflow_id;
    r.thread_id = in.thread_id;
    r.status = RunStatus::processing;
    r.input = in.input;
    r.created_by_user_id = actor;
    r.created_at = core::now_rfc3339();
    r.base_files = out.files;
    if (!in.lease_owner.empty()) {
      r.lease_owner = in.lease_owner;
      r.lease_expires_at = later(std::max(in.lease_ttl, std::chrono::seconds{1}));
    }
    r.idempotency_key = in.idempotency_key;
    if (in.idempotency_key) r.idempotency_target = target_text(in.target);
    if (!store::runs::insert(uow, r)) return std::nullopt;  // a concurrent request recorded the key first
    nlohmann::json details{{"thread_id", r.thread_id}};
    if (r.version_number)
      details["version"] = *r.version_number;
    else
      details["draft_revision"] = r.draft_revision.value_or(0);
    audit_append(uow, actor, workflow_id, "run.start", "run", r.id, details);
    tx.commit();
    return out;
  });
  if (started) return std::move(*started);
  // Read it once that request committed (the insert waited for it), as ProposalService::create.
  return store_.run([&](store::UnitOfWork& uow) -> StartedRun {
    if (auto again = replay(uow)) return std::move(*again);
    throw ConflictError("Idempotency-Key " + *in.idempotency_key +
                        " is being used by another request that has not finished; try again");
  });
}

Run RunService::get(const std::string& actor, const std::string& workflow_id, const std::string& run_id) {
  return store_.run([&](store::UnitOfWork& uow) {
    access::require_workflow(uow, workflow_id, actor);
    return require_run(uow, workflow_id, run_id);
  });
}

store::Page<Run> RunService::list(const std::string& actor, const std::string& workflow_id,
                                  const store::PageRequest& page) {
  return store_.run([&](store::UnitOfWork& uow) -> store::Page<Run> {
    access::require_workflow(uow, workflow_id, actor);
    return store::fetch_page(
        page, [&](int n, const auto& after) { return store::runs::list(uow, workflow_id, n, after); },
        [](const Run& r) { return store::CursorKey{r.created_at, r.id}; });
  });
}

Run RunService::cancel(const std::string& actor, const std::string& workflow_id, const std::string& run_id) {
  return store_.run([&](store::UnitOfWork& uow) {
    access::require_workflow(uow, workflow_id, actor);
    const Run seen = require_run(uow, workflow_id, run_id);
    access::require_workflow_writer(uow, workflow_id, actor);
    store::Tx tx(uow);
    store::runs::Finish f;
    f.completed_at = core::now_rfc3339();
    f.error = "cancelled by a user";
    f.mark_cleanup = true;
    if (store::runs::finish(uow, run_id, RunStatus::cancelled, f) != 1) {
      const auto cur = store::runs::find(uow, run_id).value_or(seen);
      throw PreconditionError("run " + run_id + " is " + store::to_string(cur.status) +
                                  "; only processing runs can be cancelled",
                              {{"current_status", store::to_string(cur.status)}});
    }
    audit_append(uow, actor, workflow_id, "run.cancel", "run", run_id, {{"thread_id", seen.thread_id}});
    auto r = *store::runs::find(uow, run_id);
    tx.commit();
    return r;
  });
}

bool RunService::can_watch(const std::string& actor, const std::string& thread_id) {
  return store_.run([&](store::UnitOfWork& uow) { return access::watch_thread(uow, thread_id, actor).has_value(); });
}

RunFinish RunService::finish(const std::string& thread_id, RunStatus to, const store::runs::Finish& f,
                             const char* action) {
  return store_.run([&](store::UnitOfWork& uow) -> RunFinish {
    const auto r = store::runs::find_by_thread(uow, thread_id);
    if (!r) throw NotFoundError("thread", thread_id);
    if (r->status != RunStatus::processing) return {false, *r};
    store::Tx tx(uow);
    if (store::runs::finish(uow, r->id, to, f) != 1) {
      tx.commit();
      return {false, *store::runs::find(uow, r->id)};
    }
    nlohmann::json details{{"thread_id", thread_id}};
    if (f.files) details["files"] = f.files->size();
    if (f.error) details["error"] = *f.error;
    if (f.failure_kind) details["failure_kind"] = *f.failure_kind;
    audit_append(uow, "", r->workflow_id, action, "run", r->id, details);
    auto out = *store::runs::find(uow, r->id);
    tx.commit();
    return {true, out};
  });
}

RunFinish RunService::complete(const std::string& thread_id, const std::string& output, const FileMap& files) {
  const std::optional<Run> r = store_.run([&](store::UnitOfWork& uow) { return store::runs::find_by_thread(uow, thread_id); });
  if (!r) throw NotFoundError("thread", thread_id);
  store::runs::Finish f;
  f.completed_at = core::now_rfc3339();
  f.output = output;
  f.files.emplace();
  for (const auto& [path, change] : proposal_changes(r->base_files, files))  // added or changed only
    if (change) (*f.files)[path] = *change;
  return finish(thread_id, RunStatus::completed, f, "run.completed");
}

RunFinish RunService::fail(const std::string& thread_id, const std::string& error, FailureKind kind,
                          bool delete_thread) {
  store::runs::Finish f;
  f.completed_at = core::now_rfc3339();
  f.mark_cleanup = delete_thread;
  f.failure_kind = to_string(kind);
  f.error = core::utf8_truncate(error.empty() ? "the engine run failed" : error, kMaxError);
  return finish(thread_id, RunStatus::failed, f, "run.failed");
}

std::vector<std::string> RunService::fail_stale(std::chrono::seconds ttl) {
  const std::string before = core::to_rfc3339(std::chrono::system_clock::now() - ttl);
  std::vector<std::pair<std::string, std::string>> stale;
  stale = store_.run([&](store::UnitOfWork& uow) { return store::runs::list_processing_before(uow, before); });
  std::vector<std::string> threads;
  for (const auto& [id, thread] : stale) {
    store::runs::Finish f;
    f.completed_at = core::now_rfc3339();
    f.error = "the run produced no result within " + std::to_string(ttl.count()) + " s and was abandoned";
    f.failure_kind = to_string(FailureKind::expired);
    f.mark_cleanup = true;
    if (finish(thread, RunStatus::failed, f, "run.expired").changed) threads.push_back(thread);
  }
  return threads;
}

std::vector<std::string> RunService::schedule_finished_cleanup(std::chrono::seconds ttl, int limit) {
  const std::string before = core::to_rfc3339(std::chrono::system_clock::now() - ttl);
  return store_.run([&](store::UnitOfWork& uow) {
      return store::runs::schedule_finished_cleanup(uow, before, std::max(1, std::min(limit, 1000)));
  });
}

std::vector<RunThread> RunService::list_pending_cleanup(int limit) {
  return store_.run([&](store::UnitOfWork& uow) {
    return run_threads(store::runs::list_pending_cleanup(uow, std::max(1, std::min(limit, 1000))));
  });
}

bool RunService::mark_cleaned(const std::string& run_id, std::chrono::milliseconds unsure_for) {
  const auto now = std::chrono::system_clock::now();
  const std::string unsure_after = core::to_rfc3339(now - unsure_for);
  return store_.run([&](store::UnitOfWork& uow) {
    return store::runs::clear_cleanup(uow, run_id, core::to_rfc3339(now), unsure_after);
  });
}

std::vector<Run> RunService::list_processing() {
  return store_.run([&](store::UnitOfWork& uow) {
    return store::runs::list_processing(uow);
  });
}

bool RunService::try_acquire_lease(const std::string& run_id, const std::string& owner, std::chrono::seconds ttl) {
  return store_.run([&](store::UnitOfWork& uow) {
    return store::runs::acquire_lease(uow, run_id, owner, core::now_rfc3339(), later(ttl));
  });
}

bool RunService::renew_lease(const std::string& run_id, const std::string& owner, std::chrono::seconds ttl) {
  return store_.run([&](store::UnitOfWork& uow) {
    return store::runs::renew_lease(uow, run_id, owner, later(ttl));
  });
}

void RunService::release_lease(const std::string& run_id, const std::string& owner) {
  return store_.run([&](store::UnitOfWork& uow) {
    store::runs::release_lease(uow, run_id, owner);
  });
}

std::vector<std::string> RunService::renew_leases(const std::string& owner, std::chrono::milliseconds ttl) {
  return store_.run([&](store::UnitOfWork& uow) {
    return store::runs::renew_leases(uow, owner, core::to_rfc3339(std::chrono::system_clock::now() + ttl));
  });
}

std::vector<RunThread> RunService::list_claimable(const std::string& owner, int limit) {
  return store_.run([&](store::UnitOfWork& uow) {
    return run_threads(store::runs::list_claimable(uow, owner, core::now_rfc3339(), std::max(1, limit)));
  });
}

}  // namespace orchestrator::domain
