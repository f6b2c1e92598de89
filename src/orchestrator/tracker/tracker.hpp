#pragma once
// Server-side proposal and run tracker (docs/event-path-and-replicas.md "Proposals through
// outages"). Follows the engine thread of every `processing` proposal, and of every
// `processing` workflow run (domain/runs.hpp), whether or not a browser is connected, as a
// subscriber of the thread's follower (follow/follower.hpp), keeps the LAST `on_state_update`
// event that carries `data.files` (whose files it parses only at the end), and on `end`
// finalises the job: completed with those files (the engine state's generated_files when the
// stream carried none), or failed with the engine's
// reason. A terminal state whose `end` was missed finalises from the state; a thread the engine
// no longer knows (404) fails with that reason. Proposals and runs are one kind of job each and
// differ only in their persistence: a proposal goes through domain::ProposalService, a run
// through domain::RunService, which also records the run's final assistant message (the engine
// state's result.output, fetched when the stream did not bring the state).
//
// Outages never fail live work: while the engine cannot be reached the follower keeps
// reconnecting (capped backoff), and the proposal or run stays `processing` until the engine
// answers or the orphan TTL passes. The engine client's circuit breaker is not consulted here.
//
// Replicas: a proposal or run is tracked by the replica holding its lease (lease_owner /
// lease_expires_at of its row), which the replica that records it holds from the insert on
// (Starting guards it here until the engine accepted the job). One lease keeper renews every lease this replica holds in one
// statement per table per lease_ttl/3 and stops tracking jobs whose lease was lost. A sweeper,
// every sweep_interval: fails orphans (proposals and runs processing longer than orphan_ttl),
// deletes engine threads of resolved proposals (and of proposals left failed past orphan_ttl)
// and of cancelled, expired or unstartable runs (and of runs finished longer than orphan_ttl
// ago), re-checks proposals failed only because the engine was
// unreachable (completed runs are brought back to `completed`, audit-logged), and tracks
// processing proposals and runs whose lease is free or expired (a dead replica's). Everything
// runs as coroutines on the engine client's runtime; SQL runs on its blocking pool. No thread
// per job.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/async.hpp"
#include "core/task_group.hpp"
#include "orchestrator/domain/proposals.hpp"
#include "orchestrator/domain/runs.hpp"
#include "orchestrator/engine_client/engine_client.hpp"
#include "orchestrator/follow/follower.hpp"

namespace orchestrator::tracker {

/// Tuning of the tracker. Durations are wall-clock; defaults suit production.
struct TrackerOptions {
  /// Identifies this replica in lease columns; empty = "<hostname>-<pid>-<random>".
  std::string instance_id;
  /// Lease length (>= 300 ms); every held lease is renewed each lease_ttl/3. Another replica
  /// takes over a proposal whose lease expired (crash) at its next sweep.
  std::chrono::milliseconds lease_ttl{30000};
  /// `processing` proposals older than this are failed and their engine thread deleted (24 h);
  /// proposals that stay `failed` this long after failing get their engine thread deleted too.
  std::chrono::milliseconds orphan_ttl{std::chrono::hours(24)};
  /// How long after a proposal failed as engine_unreachable an engine answer "no such thread"
  /// is taken as final (failure kind engine_gone). Until then the sweeper asks again: the engine
  /// may still be handling the invoke the orchestrator gave up on (it waits up to twice its
  /// database busy timeout, 30 s each, plus its pool wait before it creates the thread or answers
  /// 503), and a thread that appears is tracked by the re-checks like any other.
  std::chrono::milliseconds unreachable_grace{std::chrono::minutes(3)};
  /// Period of the sweeper (orphans, engine-thread cleanup, unreachable re-checks, takeover).
  std::chrono::milliseconds sweep_interval{std::chrono::seconds(15)};
  /// Max engine threads deleted, and max unreachable failures re-checked, per sweep.
  int cleanup_batch = 50;
  /// stop() waits this long for tracking coroutines to release their leases.
  std::chrono::milliseconds stop_timeout{std::chrono::seconds(10)};
  /// Observer called for every engine event processed for a proposal or run (in order, each
  /// once; `id` is the proposal's or the run's id). For tests and metrics; runs on an I/O thread,
  /// must not block.
  std::function<void(const std::string& id, const follow::Event& event)> on_event;
};

/// What happened when a proposal or run was finalised (returned by the finalise helpers).
enum class FinaliseResult {
  applied,        ///< this call moved the job out of `processing`
  already_final,  ///< the job had already left `processing` (idempotent no-op)
  missing,        ///< no such proposal
};

/// What a tracked engine thread belongs to: where its outcome and its lease are stored.
enum class JobKind {
  proposal,  ///< a refinement (proposals table, domain::ProposalService)
  run,       ///< a workflow run (runs table, domain::RunService)
};

/// The tracker. Thread-safe; construct once per process, start(), and stop() before destroying
/// the hub, the engine client or the database it borrows, and before stopping their runtime.
class Tracker {
 public:
  /// Borrows `store` (orchestrator database, migrated), `engine` (its runtime runs the tracker)
  /// and `hub`; all must outlive the tracker. State changes go through domain::ProposalService
  /// and domain::RunService on `store` (audit included). Database work that fails (the database
  /// restarting, the pool busy) is logged and done again later: a finalisation that could not be
  /// stored leaves the proposal or run processing and its lease to expire, and the sweeper follows
  /// it again.
  Tracker(store::Store& store, engine_client::EngineClient& engine, follow::FollowHub& hub,
          TrackerOptions options = {});
  /// Calls stop().
  ~Tracker();
  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;

  /// Starts the lease keeper and the sweeper (whose first sweep, right away, resumes every
  /// processing proposal and run that is unleased, expired, or this instance's). Idempotent.
  void start();

  /// Marks `thread_id` as being started here for as long as the returned guard lives: its
  /// proposal or run is recorded and the engine invoke is in flight. The sweeper leaves such a
  /// job alone (the engine may not know the thread yet: following it now would fail it as
  /// gone); the handler calls track() or track_run() once the engine accepted the job.
  class Starting {
   public:
    Starting() = default;
    Starting(Tracker* tracker, std::string thread_id);
    Starting(Starting&& other) noexcept;
    Starting& operator=(Starting&&) = delete;
    ~Starting();

   private:
    Tracker* tracker_ = nullptr;
    std::string thread_id_;
  };
  [[nodiscard]] Starting starting(const std::string& thread_id) { return Starting(this, thread_id); }

  /// Follows a new proposal now (called by the refinement handler right after the engine
  /// accepted the job). No-op if this process already tracks it; if another replica holds the
  /// lease it is left to that replica. Never blocks on the network, never throws for engine problems.
  void track(const std::string& proposal_id, const std::string& thread_id);

  /// Follows a new workflow run now (called by the run handler right after the engine accepted
  /// the job), exactly as track() follows a proposal: the run is finalised (completed with the
  /// engine state's result.output and the files it added or changed, or failed) whether or not
  /// anyone watches.
  void track_run(const std::string& run_id, const std::string& thread_id);

  /// Stops the sweeper, the lease keeper and every tracking coroutine, which release their
  /// leases (proposals and runs stay `processing`; any replica, or this one after restart,
  /// resumes them).
  /// Waits up to stop_timeout. Idempotent.
  void stop();

  /// Runs one sweep and waits for it (see the header comment; it also schedules the engine
  /// threads of proposals failed more than orphan_ttl ago for deletion). For tests and admin
  /// tooling; not on the runtime's I/O threads.
  void sweep_once();

  /// Marks the proposal completed with `generated_files` (engine file shape) if it is still
  /// `processing`; records audit + metrics when applied. Idempotent. Blocks (SQL).
  FinaliseResult finalise(const std::string& proposal_id, const nlohmann::json& generated_files);
  /// Marks the proposal failed with `error` (a sentence for people) and `kind` if still
  /// `processing`. Idempotent. Blocks (SQL).
  FinaliseResult finalise_failed(const std::string& proposal_id, const std::string& error,
                                 domain::FailureKind kind = domain::FailureKind::engine_failed);

  /// Number of proposals and runs this process is tracking now.
  std::size_t active() const;
  /// Blocks until no proposal or run is tracked or `timeout` passes; true if idle.
  bool wait_idle(std::chrono::milliseconds timeout) const;
  /// This replica's lease owner id.
  const std::string& instance_id() const { return options_.instance_id; }
  /// Length of the leases this tracker takes and renews: lease_ttl rounded up to whole seconds
  /// (at least 1 s).
  std::chrono::seconds lease_seconds() const;

  struct Job;

 private:
  /// Registry key of a job: its kind and id.
  using JobKey = std::pair<JobKind, std::string>;
  void add_job(JobKind kind, const std::string& id, const std::string& thread_id);
  core::async::Task<void> follow_job(std::shared_ptr<Job> job);
  core::async::Task<void> lease_keeper();
  core::async::Task<void> sweeper();
  core::async::Task<void> sweep();
  FinaliseResult complete_thread(const std::string& proposal_id, const std::string& thread_id,
                                 const nlohmann::json& generated_files);
  FinaliseResult fail_thread(const std::string& proposal_id, const std::string& thread_id, const std::string& error,
                             domain::FailureKind kind);
  /// Completes the run on `thread_id` with `output` (its final assistant message) and `files`
  /// (engine file shape; fails the run when they cannot be stored). Blocks (SQL).
  FinaliseResult complete_run(const std::string& run_id, const std::string& thread_id, const std::string& output,
                              const nlohmann::json& files);
  /// Fails the run on `thread_id` with `error` and `kind`. Blocks (SQL).
  FinaliseResult fail_run(const std::string& run_id, const std::string& thread_id, const std::string& error,
                          domain::FailureKind kind);

  store::Store& store_;
  domain::ProposalService proposals_;  ///< the domain layer: finalise, leases, stale, cleanup
  domain::RunService runs_;            ///< the same for workflow runs
  engine_client::EngineClient& engine_;
  follow::FollowHub& hub_;
  core::async::Runtime& rt_;
  TrackerOptions options_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  bool started_ = false;
  bool stopping_ = false;
  std::stop_source stop_;                                ///< sweeper and lease keeper
  std::map<JobKey, std::shared_ptr<Job>> jobs_;          ///< tracked proposals and runs
  std::multiset<std::string> starting_;                  ///< thread ids being started (Starting)
  core::async::TaskGroup tasks_;                         ///< every coroutine (stop() waits for them)
};

}  // namespace orchestrator::tracker
