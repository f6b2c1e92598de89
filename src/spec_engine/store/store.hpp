#pragma once
// Persistence of the Spec Engine (DESIGN.md §4 "Durability"): threads (one per
// job), their events (seq 1.. per thread) and the latest checkpoint of each run.
// One SQL code path for SQLite and PostgreSQL over core::db (schema:
// migrations/spec_engine/<dialect>/0001_init.sql). JSON columns are TEXT;
// timestamps are RFC 3339 UTC strings.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/db.hpp"

namespace spec_engine::store {

/// Status of a thread (DESIGN.md §4 API "state"). Terminal: completed, failed, cancelled.
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
  std::int64_t last_seq = 0;      ///< highest stored event seq
  int recoveries = 0;             ///< times the run was picked up again after an engine restart
  std::string created_at;
  std::string updated_at;

  /// The public state document: {thread_id, status, result, generated_files, error,
  /// last_seq, created_at, updated_at, trace_id} (error null when empty).
  nlohmann::json to_state_json() const;
};

/// One stored event. Wire shape (DESIGN.md §4 "Events"):
/// {"event_type", "data", "seq", "thread_id", "ts"}.
struct EventRecord {
  std::string thread_id;
  std::int64_t seq = 0;
  std::string event_type;
  nlohmann::json data;
  std::string ts;
  nlohmann::json to_json() const;
};

/// Thread-safe store over a core::db::Database pool. Every method borrows a
/// session per call; multi-row changes run in one transaction. Methods throw
/// soci::soci_error / std::runtime_error on database failures.
class Store {
 public:
  explicit Store(core::db::Database& db) : db_(db) {}

  /// Inserts a new thread (status from `rec.status`, timestamps set to now).
  /// Returns false (and changes nothing) if `rec.thread_id` already exists.
  bool create_thread(const ThreadRecord& rec);
  /// The thread, or nullopt when unknown.
  std::optional<ThreadRecord> get_thread(const std::string& thread_id);
  /// Sets status (and error, "" = NULL) and touches updated_at. False when unknown.
  bool set_status(const std::string& thread_id, const std::string& status, const std::string& error = {});
  /// Increments `recoveries` and returns the new value (0 when unknown).
  int bump_recoveries(const std::string& thread_id);
  /// Threads whose status is one of `statuses`, oldest first.
  std::vector<ThreadRecord> threads_with_status(const std::vector<std::string>& statuses);

  /// Stores one event with the caller-assigned `ev.seq` and sets threads.last_seq
  /// to it, in one transaction. Throws on a duplicate (thread_id, seq).
  void append_event(const EventRecord& ev);
  /// Ends a run in one transaction: sets status/result/generated_files/error and
  /// stores the final `end` event `end_event` (last_seq follows it).
  void finish(const std::string& thread_id, const std::string& status, const nlohmann::json& result,
              const nlohmann::json& generated_files, const std::string& error, const EventRecord& end_event);
  /// Events with seq > after_seq in seq order, at most `limit` (0 = no limit).
  std::vector<EventRecord> events_after(const std::string& thread_id, std::int64_t after_seq,
                                        std::size_t limit = 0);

  /// Replaces the thread's checkpoint with `state` taken after event `seq`. Durable on return.
  void save_checkpoint(const std::string& thread_id, std::int64_t seq, const nlohmann::json& state);
  /// The latest checkpoint state, or nullopt.
  std::optional<nlohmann::json> latest_checkpoint(const std::string& thread_id);

  /// Deletes the thread with its events and checkpoint (one transaction). False when unknown.
  bool delete_thread(const std::string& thread_id);

  /// Database reachability (SELECT 1).
  bool ping() noexcept { return db_.ping(); }
  core::db::Database& database() { return db_; }

 private:
  core::db::Database& db_;
};

}  // namespace spec_engine::store
