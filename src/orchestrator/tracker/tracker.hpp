#pragma once
// Server-side proposal tracker (DESIGN.md §5 "Hybrid event processing", "Proposals";
// R3, R4, R10). Follows the engine stream of every `processing` proposal whether or
// not a browser is connected, keeps the LAST `data.files` of `on_state_update`
// events, and on `end` finalises the proposal (completed with generated_files, or
// failed with the engine's error). Broken streams resume with `after_seq` and fall
// back to GET state. A sweeper fails orphans, deletes engine threads of resolved
// proposals (and of proposals left failed past the orphan TTL) and resumes proposals whose
// tracker died (lease expired).
//
// Concurrency model: one std::thread per tracked proposal (blocking WebSocket reads
// in short slices). That is ample for the commission's 10 concurrent sessions and a
// few hundred at most; beyond that, move to an async reader. Across replicas, a DB
// lease (proposals.lease_owner/lease_expires_at) guarantees one tracker per proposal.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/db.hpp"
#include "orchestrator/domain/proposals.hpp"
#include "orchestrator/engine_client/engine_client.hpp"

namespace orchestrator::tracker {

/// Tuning of the tracker. Durations are wall-clock; defaults suit production.
struct TrackerOptions {
  /// Identifies this replica in lease columns; empty = "<hostname>-<pid>-<random>".
  std::string instance_id;
  /// Lease length; renewed every lease_ttl/3 while tracking. Another replica takes over
  /// a proposal whose lease expired (crash).
  std::chrono::milliseconds lease_ttl{30000};
  /// `processing` proposals older than this are failed and their engine thread deleted (R10: 24 h);
  /// proposals that stay `failed` this long after failing get their engine thread deleted too.
  std::chrono::milliseconds orphan_ttl{std::chrono::hours(24)};
  /// Period of the sweeper (orphans, engine-thread cleanup, resuming unleased proposals).
  std::chrono::milliseconds sweep_interval{std::chrono::seconds(60)};
  /// Reconnect backoff for a broken engine stream: full jitter in [0, min(max, base*2^n)].
  std::chrono::milliseconds reconnect_base_delay{500};
  std::chrono::milliseconds reconnect_max_delay{8000};
  /// Consecutive failed reconnects (engine unreachable for stream AND state) before the
  /// proposal is failed with a clear reason, so it is never left `processing`.
  int reconnect_attempts = 8;
  /// No message for this long: check GET state (finalise if terminal, else keep reading).
  std::chrono::milliseconds read_timeout{60000};
  /// Upper bound of one blocking read slice (stop/lease checks happen between slices).
  std::chrono::milliseconds poll_interval{250};
  /// Max engine threads deleted per sweep.
  int cleanup_batch = 50;
  /// Observer called (on the tracker thread) for every NEW engine event processed for a
  /// proposal, after de-duplication by seq. For tests and metrics; must not block long.
  std::function<void(const std::string& proposal_id, const nlohmann::json& event)> on_event;
};

/// What happened when a proposal was finalised (returned by the finalise helpers).
enum class FinaliseResult {
  applied,        ///< this call moved the proposal out of `processing`
  already_final,  ///< the proposal had already left `processing` (idempotent no-op)
  missing,        ///< no such proposal
};

/// The tracker. Thread-safe; construct once per process, start(), and stop() before
/// destroying the database or engine client it borrows.
class Tracker {
 public:
  /// Borrows `db` (orchestrator database, migrated) and `engine`; both must outlive the tracker.
  /// All proposal state changes go through domain::ProposalService on `db` (audit included).
  Tracker(core::db::Database& db, engine_client::EngineClient& engine, TrackerOptions options = {});
  /// Calls stop().
  ~Tracker();
  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;

  /// Resumes tracking of every `processing` proposal whose lease is free or expired, and
  /// starts the sweeper thread (first sweep immediately). Idempotent. DB errors throw
  /// soci::soci_error.
  void start();

  /// Follows a new proposal now (called by the refinement handler right after the engine
  /// accepted the job). No-op if this process already tracks it; if another replica holds
  /// the lease the worker exits quietly. Never throws for engine problems.
  void track(const std::string& proposal_id, const std::string& thread_id);

  /// Stops the sweeper and all workers, joins their threads and releases held leases
  /// (proposals stay `processing`; any replica, or this one after restart, resumes them). Idempotent.
  void stop();

  /// Runs one sweep synchronously: fail orphans (older than orphan_ttl), schedule the engine
  /// threads of proposals failed more than orphan_ttl ago for deletion, delete engine threads of
  /// proposals with engine_cleanup_pending until the engine confirms, resume unleased
  /// `processing` proposals. Exposed for tests and admin tooling.
  void sweep_once();

  /// Marks the proposal completed with `generated_files` (engine file shape) if it is
  /// still `processing`; records audit + metrics when applied. Idempotent.
  FinaliseResult finalise(const std::string& proposal_id, const nlohmann::json& generated_files);
  /// Marks the proposal failed with `error` (a sentence for people) if still `processing`. Idempotent.
  FinaliseResult finalise_failed(const std::string& proposal_id, const std::string& error);

  /// Number of proposals this process is currently tracking (live worker threads).
  std::size_t active() const;
  /// Blocks until no worker is running or `timeout` passes; true if idle.
  bool wait_idle(std::chrono::milliseconds timeout) const;
  /// This replica's lease owner id.
  const std::string& instance_id() const { return options_.instance_id; }

 private:
  struct Worker;
  void run_worker(const std::string& proposal_id, const std::string& thread_id);
  void sweeper_loop();
  void reap_finished_locked();
  /// Sleeps up to `d`; returns false early when stop() was requested.
  bool sleep_for(std::chrono::milliseconds d);
  /// Engine thread id of a proposal, nullopt if the proposal does not exist.
  std::optional<std::string> thread_of(const std::string& proposal_id);
  /// Lease length in whole seconds (>= 1), as the domain layer takes it.
  std::chrono::seconds lease_seconds() const;

  core::db::Database& db_;
  domain::ProposalService proposals_;  ///< the domain layer: finalise, leases, stale, cleanup
  engine_client::EngineClient& engine_;
  TrackerOptions options_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::atomic<bool> stopping_{false};
  bool started_ = false;
  std::thread sweeper_;
  std::map<std::string, std::shared_ptr<Worker>> workers_;  ///< by proposal id
};

}  // namespace orchestrator::tracker
