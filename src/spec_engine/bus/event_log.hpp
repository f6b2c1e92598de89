#pragma once
// The event log of one engine process (docs/event-path-and-replicas.md "Events: coalesce,
// group-commit, publish"). Runs hand it their events and never wait for SQL, except that a
// checkpoint (and the run's end) completes only once it is durable:
//   1. coalesce: consecutive on_llm_stream deltas of one run ({"node", "delta"} with the same
//      node) are merged while they stay within `delta_flush` of the first and
//      `delta_flush_bytes`; any other event of the run flushes them first;
//   2. number: seq (1.. per thread, no gap) is assigned when an event enters the write queue;
//   3. group commit: one writer thread stores batches (events of many runs, checkpoints, run
//      endings) in one transaction each (store::Store::write_batch);
//   4. fence: writes of a thread whose epoch is no longer the run's are dropped; the run's
//      pending completions fail with Fenced and its `on_fenced` hook runs (stop the run);
//   5. publish: after commit, the stored events go to `publish` (local hub, other replicas).
// Nothing is lost or reordered: a failing batch is retried (with capped backoff) before
// anything queued after it.

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/async.hpp"
#include "spec_engine/store/store.hpp"

namespace spec_engine::bus {

/// Settings of the event log.
struct EventLogOptions {
  std::chrono::milliseconds delta_flush{50};   ///< longest a delta waits to be merged (--delta-flush-ms)
  std::size_t delta_flush_bytes = 1024;        ///< merged delta text flushed at this size (--delta-flush-bytes)
  std::size_t max_batch = 2000;                ///< writes per transaction at most
  /// Group commit: a batch is committed once its oldest write has waited this long (or the
  /// batch is full, or the log stops), so that one transaction carries the writes of many runs.
  /// Each commit writes every page it touched to the WAL again (SQLite) or flushes the WAL
  /// (PostgreSQL), so fewer, larger commits cost less per event; events are published after
  /// their commit, so this adds at most this much to their latency. 0 = commit whatever is
  /// queued at once (--group-commit-ms).
  std::chrono::milliseconds group_commit{0};
  std::chrono::milliseconds max_backoff{2000}; ///< longest wait between retries of a failing batch
  /// PostgreSQL LISTEN/NOTIFY link: this replica's id, sent with a NOTIFY in each commit
  /// (empty: no NOTIFY).
  std::string notify_origin;
};

/// Given to a run's pending completions when its writes were dropped: the thread was deleted or
/// another replica claimed it (the run lost its lease). The run must stop without writing.
class Fenced : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Called once a write is durable (nullptr) or with why it is not (Fenced, or the log stopped).
/// Runs on the writer thread: must be quick (complete a promise, notify a Signal).
using Completion = std::function<void(std::exception_ptr)>;

class EventLog {
 public:
  /// Receives each committed batch's events (in seq order per thread), on the writer thread.
  /// An event given as text (Run::emit_text) has null `data`: read `data_text` / to_text().
  using Publish = std::function<void(const std::vector<store::EventRecord>&)>;

  /// `store` should have its own connection (the writer holds a session per batch).
  EventLog(store::Store& store, Publish publish, EventLogOptions options = {});
  ~EventLog();  ///< stop(0)
  EventLog(const EventLog&) = delete;
  EventLog& operator=(const EventLog&) = delete;

  /// Starts the writer thread. Idempotent.
  void start();
  /// Stores everything queued (pending deltas included), waiting at most `timeout` for a
  /// failing database, then stops the writer; completions still pending fail. Idempotent.
  void stop(std::chrono::milliseconds timeout);

  /// The log of one run. Thread-safe; methods never block on SQL.
  class Run {
   public:
    /// One event (see file comment). Dropped once the run is fenced.
    void emit(const std::string& event_type, nlohmann::json data);
    /// Replaces the thread's checkpoint with `state` (taken after the last emitted event);
    /// `done` runs when durable.
    void checkpoint(nlohmann::json state, Completion done);
    /// emit() of an event whose data is already serialized (`data_text`, one JSON object as
    /// store::dump_json writes it): stored, published and sent as given, never parsed; never
    /// merged with on_llm_stream deltas.
    void emit_text(const std::string& event_type, std::shared_ptr<const std::string> data_text);
    /// checkpoint() of a state already serialized (runtime::to_checkpoint_text); `usage` is its
    /// token counts (runtime::checkpoint_usage of that state).
    void checkpoint_text(std::shared_ptr<const std::string> state_text, runtime::TokenUsage usage, Completion done);
    /// Sets the thread's status (queued | running); `done` runs when durable.
    void set_status(std::string status, Completion done);
    /// Ends the run: stores the `end` event ({"status", "error"?}) and the outcome (with the
    /// run's token usage when given; else the last checkpoint's stays) in one transaction;
    /// `done` runs when durable. Returns the `end` event's seq.
    std::int64_t finish(std::string status, nlohmann::json result, nlohmann::json files, std::string error,
                        std::optional<runtime::TokenUsage> usage, Completion done);
    /// Seq of the last event numbered so far (pending deltas not included).
    std::int64_t last_seq() const;
    /// True once a batch found the thread gone or taken over.
    bool fenced() const;
    const std::string& thread_id() const;

   private:
    friend class EventLog;
    struct State;
    explicit Run(std::shared_ptr<State> s) : s_(std::move(s)) {}
    std::shared_ptr<State> s_;
  };

  /// Opens the log of one run of `thread_id` holding `epoch`; seq continues after `last_seq`.
  /// `on_fenced` runs once, on the writer thread, when the run's writes are fenced out.
  std::shared_ptr<Run> open(const std::string& thread_id, std::int64_t epoch, std::int64_t last_seq,
                            std::function<void()> on_fenced = {});

  /// Writes queued or pending (for metrics and tests).
  std::size_t backlog() const;
  const EventLogOptions& options() const { return options_; }

 private:
  struct Impl;
  EventLogOptions options_;
  std::unique_ptr<Impl> impl_;
};

/// The one way to wait for a write to be durable: awaits the completion of the write
/// `start(done)` begins, without holding a thread (a core::async::Oneshot on the caller's
/// executor); rethrows its error (Fenced ends the run). Make the task a named local first
/// (GCC 12, docs/event-path-and-replicas.md):
///     auto begin = [log, &state](bus::Completion d) { log->checkpoint(state, std::move(d)); };
///     auto stored = bus::await_durable(std::move(begin));
///     co_await std::move(stored);
/// Code outside a coroutine uses core::async::Runtime::run_sync on that task.
core::async::Task<void> await_durable(std::function<void(Completion)> start);

}  // namespace spec_engine::bus
