#pragma once
// Persistence of the Spec Engine (docs/engine-api.md#durability): threads (one per
// job), their events (seq 1.. per thread) and the latest checkpoint of each run, plus
// thread ownership for replicas (owner, lease, epoch; docs/event-path-and-replicas.md
// "Ownership: leases and epochs"). One SQL code path for SQLite and PostgreSQL over
// core::db (schema: migrations/spec_engine/<dialect>/). JSON columns are TEXT;
// timestamps are RFC 3339 UTC strings; lease times are epoch milliseconds of the
// database's clock, so replicas' clocks need not agree.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/db.hpp"
#include "spec_engine/runtime/state.hpp"

namespace spec_engine::store {

/// Status of a thread (docs/engine-api.md#state). Terminal: completed, failed, cancelled.
inline constexpr const char* kQueued = "queued";
inline constexpr const char* kRunning = "running";
inline constexpr const char* kCompleted = "completed";
inline constexpr const char* kFailed = "failed";
inline constexpr const char* kCancelled = "cancelled";

/// True for completed | failed | cancelled.
bool is_terminal(const std::string& status);

/// One row of `threads`. JSON members are null when the column is NULL.
struct ThreadRecord {
  std::string thread_id;          ///< == job_id
  std::string job_id;
  std::string trace_id;           ///< job.trace_id ("" when absent)
  std::string traceparent;        ///< W3C traceparent of the invoke request ("" when absent)
  std::string status = kQueued;
  nlohmann::json agent_definition;
  nlohmann::json input_payload;
  nlohmann::json result;          ///< null until the run ended
  nlohmann::json generated_files; ///< null until the run ended; file map (deepagents shape)
  std::string error;              ///< "" unless failed/cancelled with a reason
  std::int64_t last_seq = 0;      ///< highest stored event seq (read from the events)
  int recoveries = 0;             ///< times the run was claimed again after its owner went away
  std::string owner;              ///< replica owning the thread ("" = none yet)
  std::int64_t epoch = 0;         ///< bumped by every claim; fences the owner's writes
  std::int64_t lease_expires_at = 0;  ///< database clock, epoch ms (0 = released)
  /// Tokens of the run so far: as of its last checkpoint, then its outcome (migration 0003).
  runtime::TokenUsage usage;
  std::string created_at;
  std::string updated_at;

  /// The public state document: {thread_id, job_id, trace_id, status, result, generated_files,
  /// error, last_seq, usage: {input_tokens, output_tokens}, created_at, updated_at} (error null
  /// when empty).
  nlohmann::json to_state_json() const;
};

/// One stored event. Wire shape (docs/engine-api.md#events):
/// {"event_type", "data", "seq", "thread_id", "ts"}.
struct EventRecord {
  std::string thread_id;
  std::int64_t seq = 0;
  std::string event_type;
  nlohmann::json data;
  std::string ts;
  /// `data` serialized by dump_json, when already done: the event log sets it once before the
  /// write, and the database row, the stream frame and the NATS message reuse it instead of
  /// serializing `data` again. Null = serialize `data` where needed. When set it must match
  /// `data`, or `data` is null: a run that built the text itself (an on_state_update spliced
  /// around its files' text) never has the document, and nothing on the write path needs it.
  std::shared_ptr<const std::string> data_text;
  /// {event_type, data, seq, thread_id, ts} (the stream's event shape, docs/engine-api.md#events);
  /// `data` parsed back from data_text when only the text is there.
  nlohmann::json to_json() const;
  /// to_json() serialized by dump_json, built around data_text when it is set.
  std::string to_text() const;
};

/// The one serialization of JSON this store writes (compact; invalid UTF-8 replaced by U+FFFD
/// rather than throwing).
std::string dump_json(const nlohmann::json& j);

/// What a live stream follows of a thread (Store::thread_progress).
struct ThreadProgress {
  std::string status;          ///< queued | running | completed | failed | cancelled
  std::int64_t last_seq = 0;   ///< highest stored event seq (0 = none)
  std::int64_t epoch = 0;      ///< lease epoch of the thread's current owner
};

/// A thread a replica has just claimed (Store::claim_expired).
struct Claim {
  std::string thread_id;
  std::int64_t epoch = 0;       ///< the new epoch: the claimer's writes carry it
  int recoveries = 0;           ///< after the claim (1 = first takeover)
  std::string previous_status;  ///< queued | running
  std::string previous_owner;   ///< "" when nobody owned it
};

/// One write of a run, applied by Store::write_batch only while the thread's epoch is still
/// the writer's (fencing).
struct EventWrite {
  EventRecord event;
};
/// Replaces the thread's checkpoint with `state`, taken after event `seq`; the thread's usage
/// becomes the checkpoint's token counts (runtime::checkpoint_usage).
struct CheckpointWrite {
  std::string thread_id;
  std::int64_t seq = 0;
  nlohmann::json state;
  /// The state already serialized by dump_json (the runtime builds it around its files' text,
  /// runtime::to_checkpoint_text); when set it is what is stored, `state` is ignored (null) and
  /// `usage` gives the token counts.
  std::shared_ptr<const std::string> state_text;
  runtime::TokenUsage usage;  ///< checkpoint_usage of the state, when state_text is set
};
/// Sets the thread's status (queued | running), e.g. when a run starts or is interrupted.
struct StatusWrite {
  std::string thread_id;
  std::string status;
};
/// Ends the run: status, result, generated_files, error ("" = NULL) and, when set, the run's
/// final token usage. Its `end` event is an EventWrite before it in the same batch.
struct OutcomeWrite {
  std::string thread_id;
  std::string status;
  nlohmann::json result;
  nlohmann::json generated_files;
  std::string error;
  std::optional<runtime::TokenUsage> usage;
};
/// One fenced write: the operation and the epoch the writer holds for its thread.
struct Write {
  std::int64_t epoch = 0;
  std::variant<EventWrite, CheckpointWrite, StatusWrite, OutcomeWrite> op;
  const std::string& thread_id() const;
};

/// What write_batch did: the (thread, epoch) pairs whose writes were dropped because the
/// thread is gone or that epoch is no longer the thread's (its writer lost the lease), and the
/// highest stored seq per thread with events. Fencing is per (thread, epoch): a batch may hold
/// a lost run's last writes next to the writes of the same thread's newer run on this replica.
struct BatchResult {
  std::vector<std::pair<std::string, std::int64_t>> fenced;
  std::map<std::string, std::int64_t> last_seq;
};

/// Thread-safe store over a core::db::Database pool. Every method borrows a
/// session per call, waiting at most the database's lease_timeout() for one; multi-row
/// changes run in one transaction. Methods throw core::Unavailable (HTTP 503 + Retry-After)
/// when no session frees up in time (core::db::PoolTimeout) or the connection cannot be
/// re-established, and soci::soci_error / std::runtime_error on other database failures.
class Store {
 public:
  explicit Store(core::db::Database& db) : db_(db) {}

  /// Inserts a new thread (status from `rec.status`, timestamps set to now). When `rec.owner`
  /// is set the thread is inserted owned: epoch 1, lease until the database's now + `lease_ttl`.
  /// Returns false (and changes nothing) if `rec.thread_id` already exists.
  bool create_thread(const ThreadRecord& rec, std::chrono::milliseconds lease_ttl = std::chrono::milliseconds(0));
  /// The thread, or nullopt when unknown.
  std::optional<ThreadRecord> get_thread(const std::string& thread_id);
  /// The thread's status and highest stored event seq, or nullopt when unknown. Reads none of
  /// the JSON columns (definition, input, result, files), so a stream may poll it cheaply.
  std::optional<ThreadProgress> thread_progress(const std::string& thread_id);
  /// Sets status (and error, "" = NULL) and touches updated_at. False when unknown.
  bool set_status(const std::string& thread_id, const std::string& status, const std::string& error = {});
  /// Threads whose status is one of `statuses`, oldest first.
  std::vector<ThreadRecord> threads_with_status(const std::vector<std::string>& statuses);

  /// Stores one event with the caller-assigned `ev.seq` (unfenced; tests and tools).
  /// Throws on a duplicate (thread_id, seq).
  void append_event(const EventRecord& ev);
  /// Ends a run in one transaction (unfenced; tests and tools): sets status/result/
  /// generated_files/error and stores the final `end` event `end_event`.
  void finish(const std::string& thread_id, const std::string& status, const nlohmann::json& result,
              const nlohmann::json& generated_files, const std::string& error, const EventRecord& end_event);
  /// Events with seq > after_seq in seq order, at most `limit` (0 = no limit; SQL LIMIT).
  std::vector<EventRecord> events_after(const std::string& thread_id, std::int64_t after_seq,
                                        std::size_t limit = 0);

  /// Applies `writes` in one transaction, in order, fenced per thread: the rows of the batch's
  /// threads are locked first, in key order (PostgreSQL `SELECT ... FOR KEY SHARE` / `FOR NO KEY
  /// UPDATE`; SQLite `BEGIN IMMEDIATE` serialises writers) and the writes of a thread that is gone
  /// or whose epoch differs from the write's are dropped (listed in BatchResult::fenced). On
  /// PostgreSQL a handful of statements carry the whole batch (one per kind of write, rows as
  /// array parameters); the result is the same as applying the writes one by one. With a
  /// `notify_origin` (PostgreSQL only) the transaction also sends `NOTIFY spec_events,
  /// '<thread_id>:<last_seq>:<origin>'` per thread with new events, delivered to listeners only if
  /// it commits. The thread row is not touched by events. Throws on database errors (nothing
  /// written).
  BatchResult write_batch(const std::vector<Write>& writes, const std::string& notify_origin = {});

  // ---- ownership (docs/event-path-and-replicas.md "Ownership: leases and epochs") ----
  /// Extends the lease of every queued/running thread owned by `owner` to now + `ttl` in one
  /// statement, then returns those threads with their epochs.
  std::map<std::string, std::int64_t> renew_leases(const std::string& owner, std::chrono::milliseconds ttl);
  /// Claims up to `limit` queued/running threads whose lease expired, oldest first: per thread
  /// one conditional UPDATE (same epoch, lease still expired) setting owner, epoch + 1,
  /// recoveries + 1 and a lease of `ttl`. A live owner's thread is never taken. Returns the
  /// threads this call won.
  std::vector<Claim> claim_expired(const std::string& owner, std::chrono::milliseconds ttl, std::size_t limit);
  /// Releases `owner`'s leases on queued/running threads (expiry 0) so another replica can
  /// claim them at once (shutdown). Returns how many.
  int release_leases(const std::string& owner);
  /// Gives up one thread held with `epoch` (owner '' and lease expired), so that any replica
  /// claims it again; false when fenced. For a run that crashed on this replica.
  bool disown(const std::string& thread_id, std::int64_t epoch);
  /// Expires every lease not held by `owner` (SQLite at start-up: the data directory's file
  /// lock proves no other engine lives, so their threads are claimable now). Returns how many.
  int expire_foreign_leases(const std::string& owner);
  /// Sets `status` (queued | running) only while `epoch` is still the thread's; false when
  /// fenced or unknown.
  bool set_status_fenced(const std::string& thread_id, std::int64_t epoch, const std::string& status);
  /// PostgreSQL: `NOTIFY channel, payload` (pg_notify) on a pooled session; SQLite: nothing.
  void notify(const std::string& channel, const std::string& payload);
  /// Epoch-ms "now" of the database's clock.
  std::int64_t db_now_ms();

  /// Replaces the thread's checkpoint with `state` taken after event `seq` (and the thread's usage,
  /// as CheckpointWrite). Durable on return.
  void save_checkpoint(const std::string& thread_id, std::int64_t seq, const nlohmann::json& state);
  /// The latest checkpoint state, or nullopt.
  std::optional<nlohmann::json> latest_checkpoint(const std::string& thread_id);

  /// Deletes the thread with its events and checkpoint (one transaction). False when unknown.
  bool delete_thread(const std::string& thread_id);

  /// Database reachability (SELECT 1), waiting at most the database's lease_timeout() (2 s
  /// when that is unbounded) for a session.
  bool ping() noexcept { return health() == "ok"; }
  /// Readiness of the database: "ok", "busy" (no pooled connection came free within the pool
  /// wait, 2 s when unbounded) or "unreachable".
  std::string health() noexcept {
    return core::db::to_string(
        db_.check(db_.lease_timeout().count() > 0 ? db_.lease_timeout() : std::chrono::milliseconds(2000)));
  }
  core::db::Database& database() { return db_; }

 private:
  core::db::Database& db_;
};

}  // namespace spec_engine::store
