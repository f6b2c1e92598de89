#pragma once
// Runs jobs as coroutines on a core::async::Runtime (no thread per run): at most
// max_concurrent_runs in memory at once, more wait in a bounded queue; idempotent on job_id
// (thread_id == job_id), with cancellation. Threads are owned by this replica through leases
// (docs/event-path-and-replicas.md "Ownership: leases and epochs"): submit inserts the thread
// owned (epoch 1); the LeaseKeeper hands over threads it claimed (adopt) and tells which ones
// were lost (lose). Each run awaits runtime::execute with an observer that hands events and
// checkpoints to the process's EventLog (coalesced, numbered, group-committed, fenced by the
// run's epoch, then published); a checkpoint completes once durable (bus::await_durable, no
// thread held). When execute returns, the outcome and the final `end` event are stored
// together. SQL never runs on an I/O thread.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/async.hpp"
#include "core/http_client.hpp"
#include "spec_engine/bus/event_hub.hpp"
#include "spec_engine/bus/event_log.hpp"
#include "spec_engine/runtime/run.hpp"
#include "spec_engine/store/store.hpp"

namespace spec_engine::bus {

/// A validated job (docs/engine-api.md#invoke) plus request context.
struct Job {
  std::string job_id;               ///< becomes the thread id
  std::string trace_id;             ///< job.trace_id ("" when absent)
  std::string traceparent;          ///< W3C traceparent of the invoke request ("" when absent)
  nlohmann::json agent_definition;  ///< validated by runtime::validate_definition
  nlohmann::json input_payload = nlohmann::json::object();
};

/// Settings of the run manager.
struct RunManagerOptions {
  /// Runs in memory at once (coroutines waiting for the model hold no thread; tools and SQL
  /// share the runtime's bounded blocking pool).
  int max_concurrent_runs = 256;
  std::size_t max_queue = 64;                ///< jobs waiting for a run slot; more -> queue_full (429)
  std::chrono::seconds retry_after{5};       ///< advertised in Retry-After when the queue is full
  runtime::RunLimits limits;
  runtime::ModelSettings models;
  /// Threads claimed after their owner went away (killed, lost its lease): "resume" (from the
  /// last checkpoint, or from the start when none) or "fail" (mark failed with a reason).
  std::string recovery = "resume";
  int max_recoveries = 3;                    ///< a run claimed more often than this is failed
  std::string replica_id = "local";          ///< owner id of this replica (threads.owner)
  std::chrono::milliseconds lease_ttl{15000};  ///< lease of a thread created by submit
  /// Tells the other replicas that a thread was deleted here (control message); empty: none.
  std::function<void(const std::string& thread_id)> broadcast_delete;
  std::chrono::milliseconds cancel_wait{10000};  ///< DELETE waits this long for a running run to stop
  /// Optional hook called once a run has ended, after its final state and `end` event are
  /// stored and published (also for claimed runs failed with a reason); e.g. the NATS
  /// completion CloudEvent (bus/nats_bus). Arguments: thread_id, final status
  /// (completed|failed|cancelled), error ("" when none). Runs on a thread of the runtime's
  /// blocking pool, so it must be quick; exceptions are logged and ignored.
  std::function<void(const std::string& thread_id, const std::string& status, const std::string& error)> on_run_end;
};

/// The coroutine that executes a run (runtime::execute; replaceable in tests).
using ExecuteFn = std::function<core::async::Task<runtime::RunResult>(
    const runtime::RunRequest&, const runtime::RunLimits&, const runtime::ModelSettings&, runtime::RunObserver&,
    runtime::RunEnv&)>;

/// Outcome of RunManager::submit.
enum class SubmitOutcome {
  started,        ///< a new thread was created and queued
  existing,       ///< the job_id is already a thread: nothing new was run
  queue_full,     ///< rejected; retry after RunManagerOptions::retry_after (HTTP 429)
  shutting_down,  ///< rejected; the engine is stopping (HTTP 503)
};

struct SubmitResult {
  SubmitOutcome outcome = SubmitOutcome::started;
  /// Status of the (new or existing) thread when accepted ("queued" for a new one), "" otherwise.
  std::string thread_status;
};

/// Thread-safe run manager. Lifecycle: construct -> start() -> ... -> shutdown(), all while `rt`
/// runs (runs are coroutines on it; stop the runtime only after shutdown()).
class RunManager {
 public:
  /// `log` stores every write of the runs; `hub` closes the streams of deleted threads; `rt`
  /// runs the runs (I/O threads, blocking pool for tools and SQL, timers); `http` serves their
  /// model calls. All references must outlive the manager.
  RunManager(store::Store& store, EventLog& log, EventHub& hub, RunManagerOptions options, core::async::Runtime& rt,
             core::http::AsyncHttpClient& http, ExecuteFn execute = runtime::execute);
  ~RunManager();  ///< shutdown(0) if still running
  RunManager(const RunManager&) = delete;
  RunManager& operator=(const RunManager&) = delete;

  /// Takes over a thread this replica has just claimed (LeaseKeeper): queues it to resume from
  /// its last checkpoint, or fails it with a reason (an `error` event plus `end`, files of the
  /// last checkpoint kept) after more than max_recoveries claims or with recovery "fail". Never
  /// blocks: failing is a coroutine on the runtime that holds a run slot until it is stored.
  void adopt(const store::Claim& claim);
  /// The threads queued or running here, with the epoch each holds (LeaseKeeper).
  std::map<std::string, std::int64_t> owned_local() const;
  /// Stops the local run (or drops the queued item) of `thread_id` holding `epoch`, writing
  /// nothing more: another replica owns the thread now, or it is gone.
  void lose(const std::string& thread_id, std::int64_t epoch, const std::string& reason);
  /// How many more threads could start now (free run slots minus queued jobs).
  std::size_t free_slots() const;
  /// Another replica deleted `thread_id`: stop its local run at once and close its streams.
  void on_remote_delete(const std::string& thread_id);
  /// Starts running queued jobs (and every job submitted or adopted from now on).
  void start();
  /// Creates the thread for `job` and queues it, unless the job_id already exists
  /// (existing) or the queue is full. Throws on database errors (nothing half-written:
  /// the thread row is the only write). Takes the job in every case (its documents move into
  /// the run when it starts at once).
  SubmitResult submit(Job job);
  /// Deletes the thread's row, events and checkpoint (its owner's fenced writes fail from
  /// then on), stops a local run (waiting up to cancel_wait for it), tells the other replicas
  /// (broadcast_delete) so the owner stops at once, and closes its live streams.
  /// False when the thread is unknown.
  bool remove(const std::string& thread_id);
  /// Stops accepting, waits up to `grace` for runs in flight, then interrupts the rest
  /// (their stop token: model calls, tools and sleeps end promptly) and waits until they
  /// ended. Interrupted runs are left `queued` with their checkpoint (their leases are
  /// released by the LeaseKeeper afterwards, so another replica resumes them); so are jobs
  /// still queued. Idempotent.
  void shutdown(std::chrono::milliseconds grace);

  std::size_t queued() const;             ///< jobs waiting for a run slot
  std::size_t running() const;            ///< runs in flight
  bool queue_full() const;                ///< queued() >= max_queue
  bool accepting() const { return accepting_.load(); }
  const RunManagerOptions& options() const { return options_; }

 private:
  struct Item {
    std::string thread_id;
    std::int64_t epoch = 1;   ///< the lease epoch this replica holds
    bool recovered = false;   ///< claimed from another owner: resume from the checkpoint
    /// The job as submitted here when it started at once (null for a claimed thread or one that
    /// waited in the queue): the run takes its definition and input from it instead of reading
    /// them back from the thread row and parsing them again. One owner: Items are moved.
    std::unique_ptr<Job> job;
  };
  struct Active {
    std::int64_t epoch = 0;
    std::stop_source stop;               ///< requested on cancel, interrupt and loss (RunEnv::stop)
    std::atomic<bool> cancel{false};     ///< user cancel (DELETE here)
    std::atomic<bool> interrupt{false};  ///< shutdown: stop now, resume elsewhere
    std::atomic<bool> lost{false};       ///< deleted or owned elsewhere: stop, write nothing
    std::atomic<bool> deleted{false};    ///< lost because the thread was deleted (here or elsewhere)
    std::atomic<bool> finishing{false};  ///< the outcome is being stored
    bool done = false;                   ///< guarded by RunManager::mu_
    /// Marks the run lost and stops it (lease lost, thread deleted, writes fenced).
    void lose() {
      lost = true;
      stop.request_stop();
    }
  };
  using Launch = std::pair<Item, std::shared_ptr<Active>>;
  class Observer;

  /// Moves queued jobs into free run slots (caller holds mu_); the caller spawns them
  /// with launch() after releasing mu_.
  void take_runnable_locked(std::vector<Launch>& out);
  void launch(std::vector<Launch> runs);
  /// One run from slot to slot release: execute_run, then what its end calls for (a fenced
  /// run writes nothing more; a crashed one gives its thread up to be claimed again).
  core::async::Task<void> run_one(Item item, std::shared_ptr<Active> active);
  core::async::Task<void> execute_run(const Item& item, const std::shared_ptr<Active>& active);
  /// A claimed thread given up (adopt): its `error` and `end` events and outcome stored.
  core::async::Task<void> fail_claimed(store::Claim claim, std::string reason, std::shared_ptr<Active> active);
  /// Frees the run's slot and starts queued jobs; the last use of `this` by a run.
  void run_ended(const std::string& thread_id, const std::shared_ptr<Active>& active);
  /// Stores the final state + `end` event through `log` (durable on completion; `usage`, when
  /// given, becomes the thread's token usage), counts metrics, calls on_run_end. Throws Fenced
  /// when the thread was deleted or taken over. Arguments by value: the task may run after the
  /// caller's temporaries are gone.
  core::async::Task<void> finish_thread(EventLog::Run& log, std::string status, nlohmann::json result,
                                        nlohmann::json files, std::string error,
                                        std::optional<runtime::TokenUsage> usage = std::nullopt);

  store::Store& store_;
  EventLog& log_;
  EventHub& hub_;
  RunManagerOptions options_;
  core::async::Runtime& rt_;
  core::http::AsyncHttpClient& http_;
  ExecuteFn execute_;

  mutable std::mutex mu_;
  /// Queue places held by submits between their check and their insert (guarded by mu_), so
  /// concurrent submits never exceed max_queue without holding a lock across their SQL (a
  /// duplicate job's place is held until it finds the row, so a racing submit may be refused
  /// one place early).
  std::size_t reserved_ = 0;
  std::condition_variable done_cv_;  ///< a run finished
  std::deque<Item> queue_;
  std::map<std::string, std::shared_ptr<Active>> active_;
  bool started_ = false;
  bool stopping_ = false;
  std::atomic<bool> accepting_{true};
};

}  // namespace spec_engine::bus
