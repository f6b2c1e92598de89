#pragma once
// The refinement use case (POST /api/workflows/{id}/refinements, docs/orchestrator-api.md#refinements):
// record the proposal (its draft created if missing, its files snapshotted), invoke the engine
// with those files, fail the proposal when the engine is unavailable or refuses the job, start
// tracking it, count the outcome. The engine and the tracker are ports, so the use case runs in
// tests without sockets. The use case is a coroutine: its SQL runs on a runtime's blocking pool
// and the engine call holds no thread while the engine answers.

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/async.hpp"
#include "orchestrator/domain/files.hpp"
#include "orchestrator/domain/proposals.hpp"

namespace orchestrator::domain {

/// The refinement engine as this use case needs it (implemented over engine_client::EngineClient).
class RefinementEngine {
 public:
  virtual ~RefinementEngine() = default;

  /// How the engine answered an invoke.
  enum class Outcome {
    accepted,     ///< the run was queued
    unavailable,  ///< not reachable (or its breaker is open); it may have queued the run anyway
    rejected,     ///< it refused the job (4xx)
  };
  /// The answer: for a failure, `message` describes it and `error` is the exception the caller
  /// renders (RefinementService rethrows it once the proposal is failed).
  struct Answer {
    Outcome outcome = Outcome::accepted;
    std::string message;
    std::exception_ptr error;
  };

  /// Sends the job (POST /spec-engine/invoke) with the W3C `traceparent` ("" = none). Engine
  /// failures are answers, not exceptions. A coroutine: waiting for the engine holds no thread.
  virtual core::async::Task<Answer> invoke(nlohmann::json job, std::string traceparent) = 0;
};

/// The proposal tracker as this use case needs it (implemented over tracker::Tracker, which
/// follows a proposal's engine thread until it finishes; docs/architecture.md).
class RefinementTracker {
 public:
  virtual ~RefinementTracker() = default;

  /// Held while a proposal is being started (recorded, engine invoke in flight): the tracker's
  /// sweeper leaves the thread alone until the hold is destroyed (the engine may not know the
  /// thread yet, so following it now would fail the proposal as gone).
  class Hold {
   public:
    virtual ~Hold() = default;
  };
  /// Marks `thread_id` as being started here until the returned hold is destroyed.
  virtual std::unique_ptr<Hold> starting(const std::string& thread_id) = 0;
  /// This replica's tracker lease owner id, written with a new proposal so that another
  /// replica's sweeper cannot take the proposal over while the engine is being invoked.
  virtual std::string lease_owner() const = 0;
  /// How long that lease runs from the insert (whole seconds, at least 1).
  virtual std::chrono::seconds lease_ttl() const = 0;
  /// Starts following the proposal's engine thread (once the engine accepted the job).
  virtual void track(const std::string& proposal_id, const std::string& thread_id) = 0;
  /// Starts following a workflow run's engine thread (domain/runs.hpp; once the engine accepted
  /// the job). Runs share the proposals' starting() hold and lease.
  virtual void track_run(const std::string& run_id, const std::string& thread_id) = 0;
};

/// One refinement request (already parsed; validated by ProposalService::create).
struct RefinementRequest {
  std::string actor;        ///< the signed-in user
  std::string workflow_id;  ///< UUID
  std::string user_prompt;
  std::optional<std::string> context_file_path, context_selection;
  std::string traceparent;  ///< the request's W3C traceparent ("" = none): the job's trace_id, stored with the proposal
  std::optional<std::string> idempotency_key;  ///< the request's Idempotency-Key (ProposalService::create)
};

/// Runs refinements. Thread-safe (the services it borrows are).
class RefinementService {
 public:
  /// Borrows `proposals`, `engine`, `tracker` and `runtime` (they must outlive the service and
  /// its coroutines). `agent_definition` is sent with every job; `tracker` may be null
  /// (proposals are not followed and hold no lease: tests). The SQL steps run on `runtime`'s
  /// blocking pool; the coroutines may be awaited on any executor.
  RefinementService(ProposalService& proposals, RefinementEngine& engine, nlohmann::json agent_definition,
                    RefinementTracker* tracker, core::async::Runtime& runtime);

  /// Records the proposal first (so the tracker or a restarted process can always find its
  /// thread; a fresh thread id; holding this replica's tracker lease, and the tracker's
  /// starting() hold until the engine answered), then launch()es it. Errors of
  /// ProposalService::create (InvalidError, NotFoundError, ForbiddenError, LimitExceededError,
  /// store::DatabaseUnavailable, ...) leave nothing behind; engine failures as in launch().
  /// A request replayed by its Idempotency-Key (CreatedProposal::replayed) starts nothing: the
  /// recorded proposal is returned as it is.
  core::async::Task<CreatedProposal> start(RefinementRequest request);

  /// Re-runs a proposal as a new one (ProposalService::retry on a fresh thread id, its errors
  /// unchanged; the tracker's starting() hold as in start()), then launch()es the new one.
  /// Returns both proposals as retry() left them.
  core::async::Task<RetryResult> retry(std::string actor, std::string proposal_id, std::string traceparent);

  /// Invokes the engine for a recorded `processing` proposal (its prompt, context and base files)
  /// and starts tracking it. When the engine is unavailable, the proposal is failed as
  /// engine_unreachable (the sweeper re-checks it: the engine may have queued the run after all);
  /// when it rejects the job, as engine_rejected; then the engine's error is rethrown
  /// (engine_client::EngineUnavailable -> 503, EngineRejected -> 502). Counts every outcome in
  /// ide_orchestrator_refinements_started_total{outcome}.
  core::async::Task<void> launch(Proposal proposal, std::string traceparent);

 private:
  ProposalService& proposals_;
  RefinementEngine& engine_;
  nlohmann::json agent_;
  RefinementTracker* tracker_;
  core::async::Runtime& runtime_;
};

/// Builds an engine job (docs/engine-api.md#invoke): {trace_id, job_id (= thread id),
/// agent_definition, input_payload {messages: [{role: "user", content}], files}}.
nlohmann::json build_job(const std::string& trace_id, const std::string& thread_id,
                         const nlohmann::json& agent_definition, const std::string& content, const FileMap& files);

/// Builds the engine job of a refinement (docs/engine-api.md#invoke): {trace_id, job_id
/// (= thread id), agent_definition, input_payload {messages: [{role: "user", content}],
/// files}}. The user message carries the prompt plus, when given, the context file path
/// and selection.
nlohmann::json build_refinement_job(const std::string& trace_id, const std::string& thread_id,
                                    const nlohmann::json& agent_definition, const std::string& user_prompt,
                                    const std::optional<std::string>& context_file_path,
                                    const std::optional<std::string>& context_selection, const FileMap& files);

}  // namespace orchestrator::domain
