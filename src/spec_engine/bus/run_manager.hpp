#pragma once
// Runs jobs as coroutines on a core::async::Runtime (no thread per run): at most
// max_concurrent_runs in memory at once, more wait in a bounded queue; idempotent on
// job_id (thread_id == job_id), with cancellation and start-up recovery of runs a
// previous process left in flight (docs/spec-engine-service.md). Each run awaits
// runtime::execute with a StoreRunObserver (bus/run_observer.hpp: seq numbers, events and
// checkpoints stored in order on the blocking pool, then published to the EventHub); when
// execute returns, the outcome and the final `end` event are stored together. SQL never
// runs on an I/O thread.

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
#include "spec_engine/runtime/run.hpp"
#include "spec_engine/store/store.hpp"

namespace spec_engine::bus {

/// A validated job (DESIGN.md §4 invoke body) plus request context.
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
  /// Start-up recovery of runs left queued/running: "resume" (from the last checkpoint,
  /// or from the start when none) or "fail" (mark failed with a reason).
  std::string recovery = "resume";
  int max_recoveries = 3;                    ///< a run interrupted more often than this is failed
  std::chrono::milliseconds cancel_wait{10000};  ///< DELETE waits this long for a running run to stop
  /// Optional hook called once a run has ended, after its final state and `end` event are
  /// stored and published (also for runs failed at start-up recovery); e.g. the NATS
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
  std::optional<store::ThreadRecord> thread;  ///< the (new or existing) thread when accepted
};

/// Thread-safe run manager. Lifecycle: construct -> recover() -> start() -> ... -> shutdown(),
/// all while `rt` runs (runs are coroutines on it; stop the runtime only after shutdown()).
class RunManager {
 public:
  /// `rt` runs the runs (I/O threads, blocking pool for tools and SQL, timers); `http` serves
  /// their model calls. All references must outlive the manager.
  RunManager(store::Store& store, EventHub& hub, RunManagerOptions options, core::async::Runtime& rt,
             core::http::AsyncHttpClient& http, ExecuteFn execute = runtime::execute);
  ~RunManager();  ///< shutdown(0) if still running
  RunManager(const RunManager&) = delete;
  RunManager& operator=(const RunManager&) = delete;

  /// Handles threads a previous process left queued/running: re-queues them (resume
  /// from the last checkpoint) or fails them with a reason, per options.recovery and
  /// max_recoveries. Call before start(). Returns the number of threads handled.
  int recover();
  /// Starts running queued jobs (and every job submitted from now on).
  void start();
  /// Creates the thread for `job` and queues it, unless the job_id already exists
  /// (existing) or the queue is full. Throws on database errors (nothing half-written:
  /// the thread row is the only write).
  SubmitResult submit(const Job& job);
  /// Cancels the thread if queued or running (waits up to cancel_wait for the run to
  /// stop), then deletes its events, checkpoint and row; closes its live streams.
  /// False when the thread is unknown.
  bool remove(const std::string& thread_id);
  /// Stops accepting, waits up to `grace` for runs in flight, then interrupts the rest
  /// (their stop token: model calls, tools and sleeps end promptly) and waits until they
  /// ended. Interrupted runs are left `queued` with their checkpoint, so the next start
  /// resumes them; so are jobs still queued. Idempotent.
  void shutdown(std::chrono::milliseconds grace);

  std::size_t queued() const;             ///< jobs waiting for a run slot
  std::size_t running() const;            ///< runs in flight
  bool queue_full() const;                ///< queued() >= max_queue
  bool accepting() const { return accepting_.load(); }
  const RunManagerOptions& options() const { return options_; }

 private:
  struct Item {
    std::string thread_id;
    bool recovered = false;
  };
  struct Active {
    std::stop_source stop;               ///< requested on cancel and interrupt (RunEnv::stop)
    std::atomic<bool> cancel{false};     ///< user cancel (DELETE)
    std::atomic<bool> interrupt{false};  ///< shutdown: stop now, resume at next start
    /// Thread deleted: drop further writes (shared with the run's observer).
    std::shared_ptr<std::atomic<bool>> deleted = std::make_shared<std::atomic<bool>>(false);
    bool done = false;                   ///< guarded by RunManager::mu_
  };
  using Launch = std::pair<Item, std::shared_ptr<Active>>;

  /// Moves queued jobs into free run slots (caller holds mu_); the caller spawns them
  /// with launch() after releasing mu_.
  void take_runnable_locked(std::vector<Launch>& out);
  void launch(std::vector<Launch> runs);
  /// One run from slot to slot release: execute_run, crash handling, clean-up after DELETE.
  core::async::Task<void> run_one(Item item, std::shared_ptr<Active> active);
  core::async::Task<void> execute_run(const Item& item, const std::shared_ptr<Active>& active);
  /// Frees the run's slot and starts queued jobs; the last use of `this` by a run.
  void run_ended(const std::string& thread_id, const std::shared_ptr<Active>& active);
  /// Stores the final state + `end` event, publishes `end`, counts metrics (blocking).
  void finish_thread(const std::string& thread_id, std::int64_t& seq, const std::string& status,
                     const nlohmann::json& result, const nlohmann::json& files, const std::string& error);

  store::Store& store_;
  EventHub& hub_;
  RunManagerOptions options_;
  core::async::Runtime& rt_;
  core::http::AsyncHttpClient& http_;
  ExecuteFn execute_;

  std::mutex submit_mu_;             ///< serialises submit (check-then-insert)
  mutable std::mutex mu_;
  std::condition_variable done_cv_;  ///< a run finished
  std::deque<Item> queue_;
  std::map<std::string, std::shared_ptr<Active>> active_;
  bool started_ = false;
  bool stopping_ = false;
  std::atomic<bool> accepting_{true};
};

}  // namespace spec_engine::bus
