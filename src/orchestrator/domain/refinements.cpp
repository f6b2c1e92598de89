#include "orchestrator/domain/refinements.hpp"

#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/tracing.hpp"
#include "core/util.hpp"

// GCC 12 reports -Wmismatched-new-delete for coroutines whose frames Asio allocates with its
// recycling allocator (a false positive: the frame's own operator new/delete pair is used).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace orchestrator::domain {

using nlohmann::json;

namespace {

core::metrics::Counter& refinements_counter() {
  static auto& c = core::metrics::global().counter("ide_orchestrator_refinements_started_total",
                                                   "Refinement requests by outcome (accepted | engine_unavailable | engine_rejected)");
  return c;
}

/// Rethrows the engine's error of a failed answer (a plain error when the port gave none).
[[noreturn]] void rethrow(const RefinementEngine::Answer& a) {
  if (a.error) std::rethrow_exception(a.error);
  throw std::runtime_error("the refinement engine failed: " + a.message);
}

}  // namespace

RefinementService::RefinementService(ProposalService& proposals, RefinementEngine& engine, json agent_definition,
                                     RefinementTracker* tracker, core::async::Runtime& runtime)
    : proposals_(proposals),
      engine_(engine),
      agent_(std::move(agent_definition)),
      tracker_(tracker),
      runtime_(runtime) {}

core::async::Task<CreatedProposal> RefinementService::start(RefinementRequest request) {
  CreateProposalInput in;
  in.user_prompt = request.user_prompt;
  in.context_file_path = request.context_file_path;
  in.context_selection = request.context_selection;
  in.thread_id = core::uuid4();
  in.traceparent = request.traceparent;
  in.idempotency_key = request.idempotency_key;
  std::unique_ptr<RefinementTracker::Hold> hold;  // until the engine answered (end of this frame)
  if (tracker_) {
    hold = tracker_->starting(in.thread_id);
    in.lease_owner = tracker_->lease_owner();
    in.lease_ttl = tracker_->lease_ttl();
  }
  // The pool joins before a stopping runtime destroys this frame, so the references stay valid.
  CreatedProposal created = co_await runtime_.blocking(
      [this, &request, &in] { return proposals_.create(request.actor, request.workflow_id, in); });
  if (created.replayed) co_return created;  // the first request with this key started it
  Proposal sent = created.proposal;
  core::async::Task<void> launched = launch(std::move(sent), request.traceparent);
  co_await std::move(launched);
  co_return created;
}

core::async::Task<RetryResult> RefinementService::retry(std::string actor, std::string proposal_id,
                                                        std::string traceparent) {
  const std::string thread_id = core::uuid4();
  std::unique_ptr<RefinementTracker::Hold> hold;
  if (tracker_) hold = tracker_->starting(thread_id);
  RetryResult r = co_await runtime_.blocking([this, &actor, &proposal_id, &thread_id, &traceparent] {
    return proposals_.retry(actor, proposal_id, thread_id, traceparent);
  });
  Proposal sent = r.proposal;
  core::async::Task<void> launched = launch(std::move(sent), traceparent);
  co_await std::move(launched);
  co_return r;
}

core::async::Task<void> RefinementService::launch(Proposal p, std::string traceparent) {
  const auto tc = core::tracing::parse_traceparent(traceparent);
  const std::string trace_id = tc ? tc->trace_id : core::random_hex(16);
  core::async::Task<RefinementEngine::Answer> call =
      engine_.invoke(build_refinement_job(trace_id, p.thread_id, agent_, p.user_prompt, p.context_file_path,
                                          p.context_selection, p.base_files),
                     traceparent);
  const RefinementEngine::Answer answer = co_await std::move(call);
  if (answer.outcome == RefinementEngine::Outcome::accepted) {
    refinements_counter().inc({{"outcome", "accepted"}});
    if (tracker_) tracker_->track(p.id, p.thread_id);
    core::log::info("refinement_started",
                    {{"proposal_id", p.id}, {"thread_id", p.thread_id}, {"workflow_id", p.workflow_id}});
    co_return;
  }
  // Unavailable: the engine may have accepted the job before the answer was lost; the sweeper
  // re-checks unreachable failures and brings the proposal back if the run completed after all.
  const bool unavailable = answer.outcome == RefinementEngine::Outcome::unavailable;
  refinements_counter().inc({{"outcome", unavailable ? "engine_unavailable" : "engine_rejected"}});
  const std::string reason = unavailable ? "The refinement engine was unavailable when the refinement was started."
                                         : "The refinement engine rejected the job: " + answer.message;
  const FailureKind kind = unavailable ? FailureKind::engine_unreachable : FailureKind::engine_rejected;
  co_await runtime_.blocking([this, &p, &reason, kind] { proposals_.finalise_failed(p.thread_id, reason, kind); });
  rethrow(answer);
}

json build_refinement_job(const std::string& trace_id, const std::string& thread_id, const json& agent_definition,
                          const std::string& user_prompt, const std::optional<std::string>& context_file_path,
                          const std::optional<std::string>& context_selection, const FileMap& files) {
  std::string content = user_prompt;
  if (context_file_path) content += "\n\nContext file: " + *context_file_path;
  if (context_selection) content += "\n\nSelected text" + std::string(context_file_path ? " in that file" : "") +
                                    ":\n```\n" + *context_selection + "\n```";
  return build_job(trace_id, thread_id, agent_definition, content, files);
}

json build_job(const std::string& trace_id, const std::string& thread_id, const json& agent_definition,
               const std::string& content, const FileMap& files) {
  return {{"trace_id", trace_id},
          {"job_id", thread_id},
          {"agent_definition", agent_definition},
          {"input_payload",
           {{"messages", json::array({{{"role", "user"}, {"content", content}}})}, {"files", files_to_json(files)}}}};
}

}  // namespace orchestrator::domain
