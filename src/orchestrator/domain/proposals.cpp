#include "orchestrator/domain/proposals.hpp"

#include <algorithm>

#include "core/util.hpp"
#include "orchestrator/domain/access.hpp"
#include "orchestrator/domain/audit.hpp"
#include "orchestrator/domain/error.hpp"
#include "orchestrator/domain/idempotency.hpp"
#include "orchestrator/domain/run_quota.hpp"
#include "orchestrator/store/repositories.hpp"

namespace orchestrator::domain {

namespace {

constexpr std::size_t kMaxPrompt = 20000;
constexpr std::size_t kMaxError = 4000;

std::string later(std::chrono::seconds d) { return core::to_rfc3339(std::chrono::system_clock::now() + d); }

[[noreturn]] void already_retried(const std::string& proposal_id, const std::string& retry_id) {
  throw ConflictError("proposal " + proposal_id + " was already re-run as proposal " + retry_id +
                          "; follow that one (or retry it if it failed)",
                      {}, {{"retry_proposal_id", retry_id}});
}

[[noreturn]] void illegal(const Proposal& p, const std::string& op, const std::string& allowed) {
  throw PreconditionError("proposal " + p.id + " is " + store::to_string(p.status) + "; only " + allowed +
                              " proposals can be " + op,
                          {{"current_status", store::to_string(p.status)}});
}

std::vector<ProposalThread> threads_of(const std::vector<std::pair<std::string, std::string>>& rows) {
  std::vector<ProposalThread> out;
  out.reserve(rows.size());
  for (const auto& [id, thread] : rows) out.push_back({id, thread});
  return out;
}

}  // namespace

const char* to_string(FailureKind k) {
  switch (k) {
    case FailureKind::engine_failed: return "engine_failed";
    case FailureKind::engine_gone: return "engine_gone";
    case FailureKind::engine_unreachable: return "engine_unreachable";
    case FailureKind::engine_rejected: return "engine_rejected";
    case FailureKind::expired: return "expired";
    case FailureKind::invalid_result: return "invalid_result";
  }
  return "engine_failed";
}

void check_thread_id(const std::string& t) {
  const bool ok = !t.empty() && t.size() <= 128 &&
                  std::all_of(t.begin(), t.end(), [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '_'; });
  if (!ok) throw InvalidError("thread_id", "thread_id must be 1 to 128 characters of letters, digits, '-' or '_'");
}

ProposalService::ProposalService(store::Store& store, ProposalLimits limits) : store_(store), limits_(limits) {}

CreatedProposal ProposalService::create(const std::string& actor, const std::string& workflow_id,
                                        const CreateProposalInput& in) {
  if (in.user_prompt.find_first_not_of(" \t\r\n") == std::string::npos)
    throw InvalidError("user_prompt", "user_prompt must not be empty");
  if (in.user_prompt.size() > kMaxPrompt) throw InvalidError("user_prompt", "user_prompt is longer than 20000 bytes");
  if (in.context_file_path) validate_path(*in.context_file_path, "context_file_path");
  if (in.context_selection && in.context_selection->size() > kMaxPrompt)
    throw InvalidError("context_selection", "context_selection is longer than 20000 bytes");
  check_thread_id(in.thread_id);
  if (in.idempotency_key) check_idempotency_key(*in.idempotency_key);
  // The proposal an earlier request with this key recorded, when it was the same request.
  const auto replay = [&](store::UnitOfWork& uow) -> std::optional<CreatedProposal> {
    if (!in.idempotency_key) return std::nullopt;
    auto old = store::proposals::find_by_idempotency_key(uow, actor, *in.idempotency_key);
    if (!old) return std::nullopt;
    if (old->workflow_id != workflow_id || old->user_prompt != in.user_prompt ||
        old->context_file_path != in.context_file_path || old->context_selection != in.context_selection)
      throw IdempotencyKeyReusedError(*in.idempotency_key, "proposal", old->id);
    return CreatedProposal{std::move(*old), true};
  };
  const auto created = store_.run([&](store::UnitOfWork& uow) -> std::optional<CreatedProposal> {
    const auto wf = access::require_workflow_writer(uow, workflow_id, actor);
    store::Tx tx(uow);
    // The user's row lock (the one the cap check takes) first: a concurrent request with the key
    // then commits before this one looks, and is replayed rather than counted against the cap.
    if (in.idempotency_key) store::users::lock(uow, uow.dialect(), actor);
    if (auto again = replay(uow)) return again;
    auto p = insert(uow, actor, wf, in);
    if (!p) return std::nullopt;  // a concurrent request recorded the key first (PostgreSQL)
    tx.commit();
    return CreatedProposal{std::move(*p), false};
  });
  if (created) return *created;
  // Read it once that request committed (the insert waited for it).
  return store_.run([&](store::UnitOfWork& uow) -> CreatedProposal {
    if (auto again = replay(uow)) return *again;
    throw ConflictError("Idempotency-Key " + *in.idempotency_key +
                        " is being used by another request that has not finished; try again");
  });
}

bool ProposalService::key_used(const std::string& actor, const std::string& key) {
  return store_.run(
      [&](store::UnitOfWork& uow) { return store::proposals::find_by_idempotency_key(uow, actor, key).has_value(); });
}

std::optional<Proposal> ProposalService::insert(store::UnitOfWork& uow, const std::string& actor,
                                                const store::WorkflowRecord& wf, const CreateProposalInput& in) {
  require_run_slot(uow, uow.dialect(), actor, RunKind::refinement, limits_.max_concurrent_runs_per_user);
  if (store::proposals::find_by_thread(uow, in.thread_id))
    throw ConflictError("thread " + in.thread_id + " already belongs to a proposal");
  const auto draft = DraftService::ensure(uow, wf.id);
  Proposal p;
  p.id = core::uuid4();
  p.workflow_id = wf.id;
  p.draft_id = draft.id;
  p.thread_id = in.thread_id;
  p.status = ProposalStatus::processing;
  p.user_prompt = in.user_prompt;
  p.context_file_path = in.context_file_path;
  p.context_selection = in.context_selection;
  p.base_files = draft.files;
  p.created_at = core::now_rfc3339();
  p.created_by_user_id = actor;
  p.traceparent = in.traceparent;
  p.idempotency_key = in.idempotency_key;
  if (!in.lease_owner.empty()) {
    p.lease_owner = in.lease_owner;
    p.lease_expires_at = later(std::max(in.lease_ttl, std::chrono::seconds{1}));
  }
  if (!store::proposals::insert(uow, p)) return std::nullopt;
  store::proposals::grant_access(uow, p.id, actor, "owner", p.created_at);
  if (wf.owner_id != actor) store::proposals::grant_access(uow, p.id, wf.owner_id, "reviewer", p.created_at);
  audit_append(uow, actor, wf.id, "proposal.create", "proposal", p.id,
               {{"thread_id", p.thread_id}, {"draft_revision", draft.revision}});
  return p;
}

RetryResult ProposalService::retry(const std::string& actor, const std::string& proposal_id,
                                   const std::string& thread_id, const std::string& traceparent) {
  check_thread_id(thread_id);
  return store_.run([&](store::UnitOfWork& uow) -> RetryResult {
    store::Tx tx(uow);
    const auto old = access::require_proposal(uow, proposal_id, actor);
    const auto wf = access::require_workflow_writer(uow, old.workflow_id, actor);
    if (const auto done = store::proposals::find_retry(uow, proposal_id)) already_retried(proposal_id, *done);
    const std::string now = core::now_rfc3339();
    if (old.status == ProposalStatus::completed) {
      // Superseded: re-running on the current draft replaces the result waiting for review.
      const auto t = store::proposals::Transition::resolution(actor, now);
      if (store::proposals::transition(uow, proposal_id, {ProposalStatus::completed}, ProposalStatus::rejected, t) != 1)
        illegal(*store::proposals::find(uow, proposal_id), "retried", "failed, cancelled, rejected or completed");
    } else if (old.status != ProposalStatus::failed && old.status != ProposalStatus::cancelled &&
               old.status != ProposalStatus::rejected) {
      illegal(old, "retried", "failed, cancelled, rejected or completed");
    }
    CreateProposalInput in;
    in.user_prompt = old.user_prompt;
    in.context_file_path = old.context_file_path;
    in.context_selection = old.context_selection;
    in.thread_id = thread_id;
    in.traceparent = traceparent;
    const Proposal p = *insert(uow, actor, wf, in);  // no Idempotency-Key: always inserted
    if (!store::proposals::insert_retry(uow, proposal_id, p.id, now))
      already_retried(proposal_id, store::proposals::find_retry(uow, proposal_id).value_or(""));
    if (old.status == ProposalStatus::completed)
      audit_append(uow, actor, old.workflow_id, "proposal.reject", "proposal", proposal_id,
                   {{"thread_id", old.thread_id}, {"reason", "superseded by a retry on the current draft"},
                    {"retry", p.id}});
    audit_append(uow, actor, old.workflow_id, "proposal.retry", "proposal", p.id,
                 {{"retry_of", proposal_id}, {"thread_id", p.thread_id}});
    RetryResult out{p, *store::proposals::find(uow, proposal_id)};
    tx.commit();
    return out;
  });
}

ProposalDetail ProposalService::get(const std::string& actor, const std::string& proposal_id) {
  return store_.run([&](store::UnitOfWork& uow) -> ProposalDetail {
    ProposalDetail d{access::require_proposal(uow, proposal_id, actor), {}};
    if (d.proposal.generated_files && !d.proposal.generated_files->empty()) {
      FileMap after = d.proposal.base_files;  // base overlaid with the proposal's upserts
      for (const auto& [path, change] : proposal_changes(d.proposal.base_files, *d.proposal.generated_files))
        if (change) after[path] = *change;
      d.changes = summarize_changes(d.proposal.base_files, after);
    }
    return d;
  });
}

Proposal ProposalService::get_by_thread(const std::string& actor, const std::string& thread_id) {
  return store_.run([&](store::UnitOfWork& uow) -> Proposal {
    const auto p = store::proposals::find_by_thread(uow, thread_id);
    if (!p) throw NotFoundError("thread", thread_id);
    try {
      return access::require_proposal(uow, p->id, actor);
    } catch (const NotFoundError&) {
      throw NotFoundError("thread", thread_id);
    }
  });
}

std::optional<std::string> ProposalService::watch(const std::string& actor, const std::string& thread_id) {
  return store_.run([&](store::UnitOfWork& uow) { return access::watch_thread(uow, thread_id, actor); });
}

std::string ProposalService::diff(const std::string& actor, const std::string& proposal_id) {
  return store_.run([&](store::UnitOfWork& uow) -> std::string {
    const auto p = access::require_proposal(uow, proposal_id, actor);
    if (!p.generated_files)
      throw PreconditionError("proposal " + p.id + " has no generated files yet (status " + store::to_string(p.status) +
                                  ")",
                              {{"current_status", store::to_string(p.status)}});
    FileMap draft;
    if (const auto d = store::drafts::find_by_workflow(uow, p.workflow_id)) draft = store::drafts::load_files(uow, d->id);
    std::string out;
    for (const auto& [path, change] : proposal_changes(p.base_files, *p.generated_files)) {
      const auto cur = draft.find(path);
      out += unified_file_diff(path, cur == draft.end() ? nullptr : &cur->second, change ? &*change : nullptr);
    }
    return out;
  });
}

store::Page<Proposal> ProposalService::list(const std::string& actor, const std::string& workflow_id,
                                            const store::PageRequest& page) {
  return store_.run([&](store::UnitOfWork& uow) -> store::Page<Proposal> {
    access::require_workflow(uow, workflow_id, actor);
    return store::fetch_page(
        page,
        [&](int n, const auto& after) { return store::proposals::list_for_user(uow, workflow_id, actor, n, after); },
        [](const Proposal& p) { return store::CursorKey{p.created_at, p.id}; });
  });
}

store::Page<Proposal> ProposalService::list_visible(const std::string& actor,
                                                    const std::vector<ProposalStatus>& statuses,
                                                    const store::PageRequest& page) {
  return store_.run([&](store::UnitOfWork& uow) -> store::Page<Proposal> {
    return store::fetch_page(
        page,
        [&](int n, const auto& after) { return store::proposals::list_visible(uow, actor, statuses, n, after); },
        [](const Proposal& p) { return store::CursorKey{p.created_at, p.id}; });
  });
}

void ProposalService::grant_access(const std::string& actor, const std::string& proposal_id,
                                   const std::string& user_id, const std::string& access_type) {
  if (access_type != "reviewer" && access_type != "viewer")
    throw InvalidError("access_type", "access_type must be 'reviewer' or 'viewer'");
  return store_.run([&](store::UnitOfWork& uow) {
    const auto p = access::require_proposal(uow, proposal_id, actor);
    if (!store::workflows::find_for_user(uow, p.workflow_id, user_id)) throw NotFoundError("user", user_id);
    store::Tx tx(uow);
    store::proposals::grant_access(uow, proposal_id, user_id, access_type, core::now_rfc3339());
    audit_append(uow, actor, p.workflow_id, "proposal.grant", "proposal", proposal_id,
                 {{"user_id", user_id}, {"access_type", access_type}});
    tx.commit();
  });
}

ApproveResult ProposalService::approve(const std::string& actor, const std::string& proposal_id) {
  return store_.run([&](store::UnitOfWork& uow) -> ApproveResult {
    const auto seen = access::require_proposal(uow, proposal_id, actor);
    access::require_workflow_writer(uow, seen.workflow_id, actor);
    store::Tx tx(uow);
    const std::string now = core::now_rfc3339();
    const auto t = store::proposals::Transition::resolution(actor, now);
    // 1. Claim: exactly one racing decision sees one affected row.
    if (store::proposals::transition(uow, proposal_id, {ProposalStatus::completed}, ProposalStatus::approved, t) != 1) {
      const auto cur = store::proposals::find(uow, proposal_id);
      illegal(cur ? *cur : seen, "approved", "completed");
    }
    const auto p = *store::proposals::find(uow, proposal_id);
    // 2. Lock the draft (revision bump) and three-way merge per file.
    const auto draft_rec = p.draft_id ? store::drafts::find(uow, *p.draft_id) : std::nullopt;
    if (!draft_rec) throw PreconditionError("the proposal's draft was deleted; start a new refinement");
    store::drafts::bump_revision(uow, draft_rec->id, std::nullopt, now);
    const FileMap current = store::drafts::load_files(uow, draft_rec->id);
    const MergeResult merge = merge_proposal(p.base_files, p.generated_files.value_or(FileMap{}), current);
    const FileChanges& changes = merge.changes;
    const std::vector<std::string>& conflicts = merge.conflicts;
    std::vector<std::string> applied;
    if (!conflicts.empty()) {
      std::string list;
      for (const auto& c : conflicts) list += (list.empty() ? "" : ", ") + c;
      const std::string retry = "/api/proposals/" + p.id + "/retry";
      throw ConflictError("the draft changed since this proposal started; these files were changed in both places: " +
                              list + ". Nothing was applied: re-run the refinement on the current draft with the same "
                              "prompt (POST " + retry + "), reject the proposal, or edit the draft and try again.",
                          conflicts, {{"retry", {{"method", "POST"}, {"href", retry}}}});
    }
    // The shared totals (core/files.hpp) hold for the draft as it will be; checked before any write.
    const FileMap& result = merge.merged;
    try {
      validate_totals(result, "files", "the draft");
    } catch (const InvalidError& e) {
      throw PreconditionError(std::string("applying this proposal is refused: ") + e.what() +
                              ". Nothing was applied: remove files from the draft or reject the proposal.");
    }
    for (const auto& [path, change] : changes) {
      const auto c = current.find(path);
      if (!change) {
        if (c != current.end()) store::drafts::delete_file(uow, draft_rec->id, path), applied.push_back(path);
        continue;
      }
      if (c != current.end() && c->second.same_content(*change)) continue;
      FileEntry e{change->content, c != current.end() ? c->second.created_at : change->created_at,
                  change->modified_at.empty() ? now : change->modified_at};
      if (e.created_at.empty()) e.created_at = now;
      store::drafts::upsert_file(uow, draft_rec->id, path, e);
      applied.push_back(path);
    }
    store::workflows::touch(uow, p.workflow_id, now);
    audit_append(uow, actor, p.workflow_id, "proposal.approve", "proposal", p.id,
                 {{"thread_id", p.thread_id}, {"applied", applied}, {"draft_revision", draft_rec->revision + 1}});
    const auto rec = store::drafts::find(uow, draft_rec->id);
    ApproveResult r{p, Draft{rec->id, rec->workflow_id, rec->revision, store::drafts::load_files(uow, rec->id),
                             rec->created_at, rec->updated_at},
                    applied};
    tx.commit();
    return r;
  });
}

Proposal ProposalService::decide(const std::string& actor, const std::string& proposal_id,
                                 const std::vector<ProposalStatus>& from, ProposalStatus to, const char* action,
                                 const std::string& reason) {
  return store_.run([&](store::UnitOfWork& uow) -> Proposal {
    const auto seen = access::require_proposal(uow, proposal_id, actor);
    access::require_workflow_writer(uow, seen.workflow_id, actor);
    store::Tx tx(uow);
    const auto t = store::proposals::Transition::resolution(actor, core::now_rfc3339());
    if (store::proposals::transition(uow, proposal_id, from, to, t) != 1) {
      const auto cur = store::proposals::find(uow, proposal_id);
      std::string allowed;
      for (auto s : from) allowed += (allowed.empty() ? "" : " or ") + std::string(store::to_string(s));
      illegal(cur ? *cur : seen, store::to_string(to), allowed);
    }
    nlohmann::json details{{"thread_id", seen.thread_id}};
    if (!reason.empty()) details["reason"] = core::utf8_truncate(reason, 2000);
    audit_append(uow, actor, seen.workflow_id, action, "proposal", proposal_id, details);
    auto p = *store::proposals::find(uow, proposal_id);
    tx.commit();
    return p;
  });
}

Proposal ProposalService::reject(const std::string& actor, const std::string& proposal_id, const std::string& reason) {
  return decide(actor, proposal_id, {ProposalStatus::completed, ProposalStatus::failed}, ProposalStatus::rejected,
                "proposal.reject", reason);
}

Proposal ProposalService::cancel(const std::string& actor, const std::string& proposal_id) {
  return decide(actor, proposal_id, {ProposalStatus::processing}, ProposalStatus::cancelled, "proposal.cancel", "");
}

FinaliseResult ProposalService::finish(const std::string& thread_id, ProposalStatus to,
                                       const std::optional<FileMap>& files, const std::optional<std::string>& error,
                                       std::optional<FailureKind> kind) {
  return store_.run([&](store::UnitOfWork& uow) -> FinaliseResult {
    const auto p = store::proposals::find_summary_by_thread(uow, thread_id);  // the trees are read once, below
    if (!p) throw NotFoundError("thread", thread_id);
    if (p->status != ProposalStatus::processing) return {false, *p};
    store::Tx tx(uow);
    store::proposals::Transition t;
    t.completed_at = core::now_rfc3339();
    t.generated_files = files;
    t.clear_lease = true;  // a finished proposal has no tracker: its tracker need not release the lease apart
    if (error) t.error = core::utf8_truncate(*error, kMaxError);
    if (kind) t.failure_kind = to_string(*kind);
    if (store::proposals::transition(uow, p->id, {ProposalStatus::processing}, to, t) != 1) {
      tx.commit();
      return {false, *store::proposals::find_summary(uow, p->id)};
    }
    nlohmann::json details{{"thread_id", thread_id}};
    if (files) details["files"] = files->size();
    if (error) details["error"] = t.error.value_or("");
    if (kind) details["failure_kind"] = to_string(*kind);
    audit_append(uow, "", p->workflow_id, to == ProposalStatus::completed ? "proposal.completed" : "proposal.failed",
                 "proposal", p->id, details);
    auto out = *store::proposals::find_summary(uow, p->id);
    tx.commit();
    return {true, out};
  });
}

FinaliseResult ProposalService::finalise(const std::string& thread_id, const FileMap& generated_files) {
  return finish(thread_id, ProposalStatus::completed, generated_files, std::nullopt, std::nullopt);
}

FinaliseResult ProposalService::finalise_failed(const std::string& thread_id, const std::string& error,
                                                FailureKind kind) {
  return finish(thread_id, ProposalStatus::failed, std::nullopt, error.empty() ? "engine run failed" : error, kind);
}

FinaliseResult ProposalService::restore_completed(const std::string& thread_id, const FileMap& generated_files) {
  return store_.run([&](store::UnitOfWork& uow) -> FinaliseResult {
    const auto p = store::proposals::find_by_thread(uow, thread_id);
    if (!p) throw NotFoundError("thread", thread_id);
    if (p->status != ProposalStatus::failed || p->failure_kind != to_string(FailureKind::engine_unreachable))
      return {false, *p};
    store::Tx tx(uow);
    store::proposals::Transition t;
    t.completed_at = core::now_rfc3339();
    t.generated_files = generated_files;
    t.clear_error = true;
    // Conditional on `failed`: a rejection (or another replica's restore) since we read it wins.
    if (store::proposals::transition(uow, p->id, {ProposalStatus::failed}, ProposalStatus::completed, t) != 1) {
      tx.commit();
      return {false, *store::proposals::find(uow, p->id)};
    }
    audit_append(uow, "", p->workflow_id, "proposal.restored", "proposal", p->id,
                 {{"thread_id", thread_id},
                  {"files", generated_files.size()},
                  {"previous_error", p->error.value_or("")},
                  {"reason", "the engine reported the run completed after the orchestrator had failed it as unreachable"}});
    auto out = *store::proposals::find(uow, p->id);
    tx.commit();
    return {true, out};
  });
}

std::vector<ProposalThread> ProposalService::list_unreachable_failures(int limit) {
  return store_.run([&](store::UnitOfWork& uow) -> std::vector<ProposalThread> {
    return threads_of(store::proposals::list_failed_of_kind(uow, to_string(FailureKind::engine_unreachable),
                                                            std::max(1, std::min(limit, 1000))));
  });
}

void ProposalService::settle_unreachable_failure(const std::string& proposal_id, FailureKind kind,
                                                 std::chrono::milliseconds failed_at_least) {
  std::optional<std::string> before;
  if (failed_at_least.count() > 0) before = core::to_rfc3339(std::chrono::system_clock::now() - failed_at_least);
  return store_.run([&](store::UnitOfWork& uow) {
    store::proposals::change_failure_kind(uow, proposal_id, to_string(FailureKind::engine_unreachable), to_string(kind),
                                          before);
  });
}

std::vector<std::string> ProposalService::fail_stale(std::chrono::seconds ttl) {
  const std::string before = core::to_rfc3339(std::chrono::system_clock::now() - ttl);
  return store_.run([&](store::UnitOfWork& uow) -> std::vector<std::string> {
    std::vector<std::string> threads;
    for (const auto& [id, thread] : store::proposals::list_processing_before(uow, before)) {
      store::Tx tx(uow);
      store::proposals::Transition t;
      t.completed_at = core::now_rfc3339();
      t.error = "the refinement produced no result within " + std::to_string(ttl.count() / 3600) + " h (" +
                std::to_string(ttl.count()) + " s) and was abandoned";
      t.failure_kind = to_string(FailureKind::expired);
      t.mark_cleanup = true;
      if (store::proposals::transition(uow, id, {ProposalStatus::processing}, ProposalStatus::failed, t) == 1) {
        const auto p = store::proposals::find(uow, id);
        audit_append(uow, "", p ? p->workflow_id : "", "proposal.expired", "proposal", id,
                     {{"thread_id", thread}, {"ttl_seconds", ttl.count()}});
        threads.push_back(thread);
      }
      tx.commit();
    }
    return threads;
  });
}

std::vector<std::string> ProposalService::schedule_failed_cleanup(std::chrono::seconds ttl, int limit) {
  const std::string before = core::to_rfc3339(std::chrono::system_clock::now() - ttl);
  return store_.run([&](store::UnitOfWork& uow) -> std::vector<std::string> {
    std::vector<std::string> threads;
    for (const auto& [id, thread] :
         store::proposals::list_failed_not_cleaned_before(uow, before, std::max(1, std::min(limit, 1000)))) {
      if (store::proposals::schedule_failed_cleanup(uow, id)) threads.push_back(thread);
    }
    return threads;
  });
}

std::vector<CleanupItem> ProposalService::list_pending_cleanup(int limit) {
  return store_.run([&](store::UnitOfWork& uow) -> std::vector<CleanupItem> {
    std::vector<CleanupItem> out;
    for (auto& [id, thread] : store::proposals::list_pending_cleanup(uow, std::max(1, std::min(limit, 1000))))
      out.push_back({id, thread});
    return out;
  });
}

void ProposalService::mark_cleaned(const std::string& proposal_id) {
  return store_.run([&](store::UnitOfWork& uow) {
    store::proposals::clear_cleanup(uow, proposal_id, core::now_rfc3339());
  });
}

std::vector<Proposal> ProposalService::list_processing() {
  return store_.run([&](store::UnitOfWork& uow) -> std::vector<Proposal> {
    return store::proposals::list_processing(uow);
  });
}

bool ProposalService::try_acquire_lease(const std::string& proposal_id, const std::string& owner,
                                        std::chrono::seconds ttl) {
  return store_.run([&](store::UnitOfWork& uow) -> bool {
    return store::proposals::acquire_lease(uow, proposal_id, owner, core::now_rfc3339(), later(ttl));
  });
}

std::string ProposalService::traceparent_of(const std::string& proposal_id) {
  return store_.run([&](store::UnitOfWork& uow) -> std::string {
    const auto p = store::proposals::find(uow, proposal_id);
    return p ? p->traceparent : std::string();
  });
}

bool ProposalService::renew_lease(const std::string& proposal_id, const std::string& owner, std::chrono::seconds ttl) {
  return store_.run([&](store::UnitOfWork& uow) -> bool {
    return store::proposals::renew_lease(uow, proposal_id, owner, later(ttl));
  });
}

void ProposalService::release_lease(const std::string& proposal_id, const std::string& owner) {
  return store_.run([&](store::UnitOfWork& uow) {
    store::proposals::release_lease(uow, proposal_id, owner);
  });
}

std::vector<std::string> ProposalService::renew_leases(const std::string& owner, std::chrono::milliseconds ttl) {
  return store_.run([&](store::UnitOfWork& uow) -> std::vector<std::string> {
    return store::proposals::renew_leases(uow, owner,
                                          core::to_rfc3339(std::chrono::system_clock::now() + ttl));
  });
}

std::vector<ProposalThread> ProposalService::list_claimable(const std::string& owner, int limit) {
  return store_.run([&](store::UnitOfWork& uow) -> std::vector<ProposalThread> {
    return threads_of(store::proposals::list_claimable(uow, owner, core::now_rfc3339(), std::max(1, limit)));
  });
}

}  // namespace orchestrator::domain
