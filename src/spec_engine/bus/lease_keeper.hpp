#pragma once
// The lease keeper of one engine replica (docs/event-path-and-replicas.md "Ownership: leases
// and epochs"). On its own thread and its own database connection (so a busy pool cannot
// starve it), every `renew` period it:
//   1. renews the lease of every thread this replica owns, in one statement;
//   2. stops local runs of threads it no longer owns (claimed by another replica after a lost
//      lease, or deleted), and every local run once no renewal has succeeded for a whole TTL
//      (their leases may have expired; fenced writes would fail anyway), unless the database is
//      the replica's alone (LeaseOptions::exclusive);
//   3. gives up threads it owns in the database but runs nowhere (seen in two rounds in a row);
//   4. claims threads whose lease expired (their owner died or released them), as many as the
//      replica has free capacity for, and hands them to `claimed`.
// On stop it can release this replica's leases so another replica claims them at once.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "spec_engine/store/store.hpp"

namespace spec_engine::bus {

/// Settings of the lease keeper.
struct LeaseOptions {
  std::string replica_id;                      ///< this replica's owner id (unique per process)
  std::chrono::milliseconds ttl{15000};        ///< lease length (--lease-ttl-ms)
  std::chrono::milliseconds renew{5000};       ///< renew/claim period (--lease-renew-ms), < ttl
  /// The database is this process's alone (SQLite: the engine locks its data directory), so no
  /// other replica can claim a thread: renewals failing for a whole TTL (the file's write lock
  /// held by another program) stop no run; the next renewal that succeeds renews every lease.
  bool exclusive = false;
};

/// What the keeper asks of and tells the run manager. All run on the keeper's thread.
struct LeaseHooks {
  /// The threads this replica runs or has queued, with the epoch each holds.
  std::function<std::map<std::string, std::int64_t>()> local;
  /// Stop the local run of `thread_id` holding `epoch` without writing anything more.
  std::function<void(const std::string& thread_id, std::int64_t epoch, const std::string& reason)> lost;
  /// How many more threads this replica can start now.
  std::function<std::size_t()> capacity;
  /// A thread this replica has just claimed: resume it (or fail it after too many recoveries).
  std::function<void(const store::Claim&)> claimed;
};

/// Thread-safe. Lifecycle: construct -> start() -> ... -> stop(release).
class LeaseKeeper {
 public:
  /// `store` should sit on a connection of its own.
  LeaseKeeper(store::Store& store, LeaseOptions options, LeaseHooks hooks);
  ~LeaseKeeper();  ///< stop(false)
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  /// Starts the keeper thread; its first round runs at once.
  void start();
  /// Stops the thread; with `release` this replica's leases are released (expiry 0). Idempotent.
  void stop(bool release);
  /// One round (renew, stop lost runs, claim). Called by the thread; public for tests.
  /// Returns false when the database failed.
  bool tick();
  /// Asks for a round now (e.g. a slot freed up).
  void poke();

  /// "ok", or why renewals fail ("renewal failing for N ms: <error>"), for /ready.
  std::string health() const;
  const LeaseOptions& options() const { return options_; }

 private:
  /// True when this replica's run of `thread_id` at `epoch` has just ended (the thread is no
  /// longer queued/running but still ours at that epoch): its absence from the renewed leases
  /// is not a loss.
  bool finished_here(const std::string& thread_id, std::int64_t epoch) const;
  void loop();
  store::Store& store_;
  LeaseOptions options_;
  LeaseHooks hooks_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool poked_ = false;
  std::thread thread_;
  std::chrono::steady_clock::time_point last_ok_;
  std::string last_error_;
  std::set<std::string> strays_;  ///< owned but not local in the last round (keeper thread only)
  /// Local runs already reported lost (keeper thread only): a run still stopping is reported
  /// once, not every round.
  std::set<std::pair<std::string, std::int64_t>> reported_lost_;
};

}  // namespace spec_engine::bus
