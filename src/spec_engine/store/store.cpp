// Spec Engine persistence over SOCI; identical SQL for SQLite and PostgreSQL.
#include "spec_engine/store/store.hpp"

#include <algorithm>
#include <limits>
#include <optional>
#include <memory>
#include <set>
#include <type_traits>

#include <soci/soci.h>

#include "core/db_statements.hpp"
#include "core/json_parse.hpp"
#include "core/json_text.hpp"
#include "core/unavailable.hpp"
#include "core/util.hpp"

namespace spec_engine::store {

namespace {

/// JSON to TEXT; invalid UTF-8 is replaced rather than throwing.
std::string dump(const nlohmann::json& j) { return dump_json(j); }

/// TEXT to JSON; a NULL column (indicator) or unparsable text gives null.
nlohmann::json load(const std::string& text, soci::indicator ind) {
  if (ind != soci::i_ok || text.empty()) return nullptr;
  return core::json::parse_or_null(text, core::json::kInternalLimits).value_or(nullptr);
}

/// A thread's last_seq: the highest stored event (the row is not updated per event).
const std::string kLastSeq = "COALESCE((SELECT MAX(e.seq) FROM events e WHERE e.thread_id = threads.thread_id), 0)";

/// The thread row.
const std::string kThreadColumns =
    "thread_id, job_id, trace_id, traceparent, status, agent_definition, input_payload, result, "
    "generated_files, error, " + kLastSeq +
    ", recoveries, created_at, updated_at, owner, epoch, lease_expires_at, input_tokens, output_tokens";

/// What a stream follows of a thread (Store::thread_progress).
const std::string kProgressColumns = "status, " + kLastSeq + ", epoch";

/// Epoch milliseconds of the database's clock, as an SQL expression.
std::string now_ms(core::db::Dialect d) {
  return d == core::db::Dialect::postgres ? "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
                                          : "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
}

/// Statuses that an owner is running or will run.
constexpr const char* kActive = "status IN ('queued', 'running')";

/// Output buffers for one `threads` row fetched with kThreadColumns.
struct ThreadRow {
  std::string thread_id, job_id, trace_id, traceparent, status, definition, payload, result, files, error;
  soci::indicator result_ind = soci::i_null, files_ind = soci::i_null, error_ind = soci::i_null;
  long long last_seq = 0;
  int recoveries = 0;
  std::string created_at, updated_at, owner;
  long long epoch = 0, lease = 0;
  long long input_tokens = 0, output_tokens = 0;

  ThreadRecord to_record() const {
    ThreadRecord r;
    r.thread_id = thread_id;
    r.job_id = job_id;
    r.trace_id = trace_id;
    r.traceparent = traceparent;
    r.status = status;
    r.agent_definition = load(definition, soci::i_ok);
    r.input_payload = load(payload, soci::i_ok);
    r.result = load(result, result_ind);
    r.generated_files = load(files, files_ind);
    r.error = error_ind == soci::i_ok ? error : std::string();
    r.last_seq = last_seq;
    r.recoveries = recoveries;
    r.created_at = created_at;
    r.updated_at = updated_at;
    r.owner = owner;
    r.epoch = epoch;
    r.lease_expires_at = lease;
    r.usage = runtime::TokenUsage{input_tokens, output_tokens};
    return r;
  }
};

/// Prepares `sql_text` (selecting kThreadColumns) with every column bound into `row`.
soci::details::prepare_temp_type& bind_row(soci::details::prepare_temp_type& p, ThreadRow& row) {
  p, soci::into(row.thread_id), soci::into(row.job_id), soci::into(row.trace_id), soci::into(row.traceparent),
      soci::into(row.status), soci::into(row.definition), soci::into(row.payload),
      soci::into(row.result, row.result_ind), soci::into(row.files, row.files_ind),
      soci::into(row.error, row.error_ind), soci::into(row.last_seq), soci::into(row.recoveries),
      soci::into(row.created_at), soci::into(row.updated_at), soci::into(row.owner), soci::into(row.epoch),
      soci::into(row.lease), soci::into(row.input_tokens), soci::into(row.output_tokens);
  return p;
}

/// A pooled session, waited for at most the database's lease_timeout() (core::db::PoolTimeout
/// when none frees up in time); core::Unavailable when the connection cannot be re-established.
/// Both are answered 503 + Retry-After by the HTTP server.
class Conn {
 public:
  explicit Conn(core::db::Database& db) : lease_(open(db)) {}
  soci::session& sql() { return lease_->sql(); }

 private:
  static std::unique_ptr<core::db::Session> open(core::db::Database& db) {
    try {
      return std::make_unique<core::db::Session>(db);
    } catch (const soci::soci_error& e) {
      throw core::Unavailable(std::string("database unreachable: ") + e.what(), std::chrono::seconds(2));
    }
  }
  std::unique_ptr<core::db::Session> lease_;
};

/// A write transaction that serialises writers: on SQLite it queues on the process's write gate
/// (core::db::WriteLock) and then takes the write lock up front with `BEGIN IMMEDIATE`, so a
/// read-then-write never fails on a stale snapshot; `BEGIN` on PostgreSQL (rows are locked
/// explicitly). Rolled back unless committed.
class WriteTxn {
 public:
  WriteTxn(soci::session& sql, core::db::Dialect d) : sql_(sql), gate_(sql) {
    core::db::busy_is_unavailable([&] { sql_ << (d == core::db::Dialect::sqlite ? "BEGIN IMMEDIATE" : "BEGIN"); });
  }
  ~WriteTxn() {
    if (!done_) {
      try {
        sql_ << "ROLLBACK";
      } catch (...) {
      }
    }
  }
  void commit() {
    sql_ << "COMMIT";
    done_ = true;
    gate_.release();
  }

 private:
  soci::session& sql_;
  core::db::WriteLock gate_;  ///< released after COMMIT or ROLLBACK (destroyed after the body)
  bool done_ = false;
};

/// Inserts one event row.
void insert_event(soci::session& sql, const EventRecord& ev) {
  const std::string data = ev.data_text ? *ev.data_text : dump(ev.data);
  const long long seq = ev.seq;
  core::db::run_reused(
      sql, "INSERT INTO events (thread_id, seq, event_type, data, ts) VALUES (:tid, :seq, :et, :data, :ts)",
      soci::use(ev.thread_id), soci::use(seq), soci::use(ev.event_type), soci::use(data), soci::use(ev.ts));
}

/// Sets a thread's token usage.
void update_usage(soci::session& sql, const std::string& thread_id, const runtime::TokenUsage& usage) {
  const long long in = usage.input_tokens, out = usage.output_tokens;
  core::db::run_reused(sql, "UPDATE threads SET input_tokens = :i, output_tokens = :o WHERE thread_id = :tid",
                       soci::use(in), soci::use(out), soci::use(thread_id));
}

/// Sets the outcome columns of a thread, and its usage when given.
void update_outcome(soci::session& sql, const std::string& thread_id, const std::string& status,
                    const nlohmann::json& result, const nlohmann::json& files, const std::string& error,
                    const std::optional<runtime::TokenUsage>& usage = std::nullopt) {
  const std::string res = dump(result);
  const std::string f = dump(files);
  const std::string now = core::now_rfc3339();
  soci::indicator err_ind = error.empty() ? soci::i_null : soci::i_ok;
  core::db::run_reused(sql,
                       "UPDATE threads SET status = :st, result = :res, generated_files = :files, error = :err, "
                       "updated_at = :u WHERE thread_id = :tid",
                       soci::use(status), soci::use(res), soci::use(f), soci::use(error, err_ind), soci::use(now),
                       soci::use(thread_id));
  if (usage) update_usage(sql, thread_id, *usage);
}

/// The checkpoint's text: as serialized by the run when it did, else dump_json(state).
std::string checkpoint_text(const CheckpointWrite& c) { return c.state_text ? *c.state_text : dump(c.state); }

/// The checkpoint's token counts: given with its text, else read from the state.
runtime::TokenUsage checkpoint_tokens(const CheckpointWrite& c) {
  return c.state_text ? c.usage : runtime::checkpoint_usage(c.state);
}

/// Upserts the thread's only checkpoint.
void upsert_checkpoint(soci::session& sql, const CheckpointWrite& c) {
  const std::string& thread_id = c.thread_id;
  const std::string own = c.state_text ? std::string() : dump(c.state);
  const std::string& text = c.state_text ? *c.state_text : own;
  const std::string now = core::now_rfc3339();
  const long long s = c.seq;
  core::db::run_reused(sql,
                       "INSERT INTO checkpoints (thread_id, seq, state, created_at) VALUES (:tid, :seq, :state, :c) "
                       "ON CONFLICT (thread_id) DO UPDATE SET seq = excluded.seq, state = excluded.state, "
                       "created_at = excluded.created_at",
                       soci::use(thread_id), soci::use(s), soci::use(text), soci::use(now));
  update_usage(sql, thread_id, checkpoint_tokens(c));
}

}  // namespace

const std::string& Write::thread_id() const {
  return std::visit(
      [](const auto& w) -> const std::string& {
        if constexpr (std::is_same_v<std::decay_t<decltype(w)>, EventWrite>) {
          return w.event.thread_id;
        } else {
          return w.thread_id;
        }
      },
      op);
}

bool is_terminal(const std::string& status) {
  return status == kCompleted || status == kFailed || status == kCancelled;
}

nlohmann::json ThreadRecord::to_state_json() const {
  return {{"thread_id", thread_id},
          {"job_id", job_id},
          {"trace_id", trace_id},
          {"status", status},
          {"result", result},
          {"generated_files", generated_files},
          {"error", error.empty() ? nlohmann::json(nullptr) : nlohmann::json(error)},
          {"last_seq", last_seq},
          {"usage", usage.to_json()},
          {"created_at", created_at},
          {"updated_at", updated_at}};
}

nlohmann::json EventRecord::to_json() const {
  nlohmann::json d = data.is_null() && data_text ? core::json::parse(*data_text, core::json::kInternalLimits) : data;
  return {{"event_type", event_type}, {"data", std::move(d)}, {"seq", seq}, {"thread_id", thread_id}, {"ts", ts}};
}

std::string EventRecord::to_text() const {
  // The members in to_json()'s (sorted) order, so the text equals dump_json(to_json()) without
  // copying `data` into a new document or serializing it again.
  const std::string own = data_text ? std::string() : dump_json(data);
  const std::string& d = data_text ? *data_text : own;
  const std::string type = dump_json(event_type), thread = dump_json(thread_id), when = dump_json(ts);
  std::string out;
  out.reserve(d.size() + type.size() + thread.size() + when.size() + 64);
  out += "{\"data\":";
  out += d;
  out += ",\"event_type\":";
  out += type;
  out += ",\"seq\":";
  out += std::to_string(seq);
  out += ",\"thread_id\":";
  out += thread;
  out += ",\"ts\":";
  out += when;
  out += '}';
  return out;
}

std::string dump_json(const nlohmann::json& j) { return core::json::dump(j); }

bool Store::create_thread(const ThreadRecord& rec, std::chrono::milliseconds lease_ttl) {
  Conn conn(db_);
  soci::session& sql = conn.sql();
  const std::string now = core::now_rfc3339();
  const std::string def = dump(rec.agent_definition);
  const std::string payload = dump(rec.input_payload.is_null() ? nlohmann::json::object() : rec.input_payload);
  const long long last_seq = rec.last_seq;
  const long long epoch = rec.owner.empty() ? 0 : 1;
  const long long ttl = rec.owner.empty() ? 0 : lease_ttl.count();
  const std::string lease_expr = rec.owner.empty() ? std::string("0") : now_ms(db_.dialect()) + " + :ttl";
  std::string text =
      "INSERT INTO threads (thread_id, job_id, trace_id, traceparent, status, agent_definition, input_payload, "
      "last_seq, recoveries, created_at, updated_at, owner, epoch, lease_expires_at) "
      "VALUES (:tid, :jid, :trace, :tp, :st, :def, :payload, :seq, 0, :c, :u, :owner, :epoch, " +
      lease_expr + ") ON CONFLICT (thread_id) DO NOTHING";
  // Takes the write lock, and answers a busy database with WriteLockTimeout (503).
  return core::db::execute_reused(sql, text, [&](soci::statement& st) {
           st.exchange(soci::use(rec.thread_id));
           st.exchange(soci::use(rec.job_id));
           st.exchange(soci::use(rec.trace_id));
           st.exchange(soci::use(rec.traceparent));
           st.exchange(soci::use(rec.status));
           st.exchange(soci::use(def));
           st.exchange(soci::use(payload));
           st.exchange(soci::use(last_seq));
           st.exchange(soci::use(now));
           st.exchange(soci::use(now));
           st.exchange(soci::use(rec.owner));
           st.exchange(soci::use(epoch));
           if (!rec.owner.empty()) st.exchange(soci::use(ttl));
         }) > 0;
}

std::optional<ThreadRecord> Store::get_thread(const std::string& thread_id) {
  Conn conn(db_);
  soci::session& sql = conn.sql();
  ThreadRow row;
  auto p = sql.prepare << "SELECT " << kThreadColumns << " FROM threads WHERE thread_id = :tid";
  bind_row(p, row), soci::use(thread_id);
  soci::statement st(p);
  st.execute();
  if (!st.fetch()) return std::nullopt;
  return row.to_record();
}

std::optional<ThreadProgress> Store::thread_progress(const std::string& thread_id) {
  Conn conn(db_);
  ThreadProgress out;
  long long last_seq = 0, epoch = 0;
  soci::indicator ind = soci::i_null;
  const bool got = core::db::run_reused(
      conn.sql(), std::string("SELECT ") + kProgressColumns + " FROM threads WHERE thread_id = :tid",
      soci::into(out.status, ind), soci::into(last_seq), soci::into(epoch), soci::use(thread_id));
  if (!got || ind != soci::i_ok) return std::nullopt;
  out.last_seq = last_seq;
  out.epoch = epoch;
  return out;
}

bool Store::set_status(const std::string& thread_id, const std::string& status, const std::string& error) {
  Conn conn(db_);
  soci::session& sql = conn.sql();
  const std::string now = core::now_rfc3339();
  soci::indicator err_ind = error.empty() ? soci::i_null : soci::i_ok;
  return core::db::execute_reused(sql,
                                  "UPDATE threads SET status = :st, error = :err, updated_at = :u "
                                  "WHERE thread_id = :tid",
                                  [&](soci::statement& st) {
                                    st.exchange(soci::use(status));
                                    st.exchange(soci::use(error, err_ind));
                                    st.exchange(soci::use(now));
                                    st.exchange(soci::use(thread_id));
                                  }) > 0;
}

bool Store::set_status_fenced(const std::string& thread_id, std::int64_t epoch, const std::string& status) {
  Conn conn(db_);
  soci::session& sql = conn.sql();
  const std::string now = core::now_rfc3339();
  const long long e = epoch;
  return core::db::execute_reused(sql,
                                  std::string("UPDATE threads SET status = :st, updated_at = :u "
                                              "WHERE thread_id = :tid AND epoch = :e AND ") +
                                      kActive,
                                  [&](soci::statement& st) {
                                    st.exchange(soci::use(status));
                                    st.exchange(soci::use(now));
                                    st.exchange(soci::use(thread_id));
                                    st.exchange(soci::use(e));
                                  }) > 0;
}

std::vector<ThreadRecord> Store::threads_with_status(const std::vector<std::string>& statuses) {
  std::vector<ThreadRecord> out;
  Conn conn(db_);
  soci::session& sql = conn.sql();
  for (const auto& s : statuses) {
    ThreadRow row;
    auto p = sql.prepare << "SELECT " << kThreadColumns << " FROM threads WHERE status = :st ORDER BY created_at";
    bind_row(p, row), soci::use(s);
    soci::statement st(p);
    st.execute();
    while (st.fetch()) out.push_back(row.to_record());
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const ThreadRecord& a, const ThreadRecord& b) { return a.created_at < b.created_at; });
  return out;
}

void Store::append_event(const EventRecord& ev) {
  Conn conn(db_);
  insert_event(conn.sql(), ev);
}

void Store::finish(const std::string& thread_id, const std::string& status, const nlohmann::json& result,
                   const nlohmann::json& generated_files, const std::string& error, const EventRecord& end_event) {
  Conn conn(db_);
  soci::session& sql = conn.sql();
  WriteTxn tr(sql, db_.dialect());
  insert_event(sql, end_event);
  update_outcome(sql, thread_id, status, result, generated_files, error);
  tr.commit();
}

std::vector<EventRecord> Store::events_after(const std::string& thread_id, std::int64_t after_seq,
                                             std::size_t limit) {
  std::vector<EventRecord> out;
  Conn conn(db_);
  soci::session& sql = conn.sql();
  long long seq = 0;
  std::string type, data, ts;
  const long long after = after_seq;
  // LIMIT -1 is "no limit" for SQLite; PostgreSQL takes LIMIT ALL. Bound as a number either way.
  const long long lim = limit == 0 ? std::numeric_limits<long long>::max() : static_cast<long long>(limit);
  core::db::ReusedStatement rs(sql,
                               "SELECT seq, event_type, data, ts FROM events "
                               "WHERE thread_id = :tid AND seq > :after ORDER BY seq LIMIT :lim");
  soci::statement& st = rs.get();
  st.exchange(soci::into(seq));
  st.exchange(soci::into(type));
  st.exchange(soci::into(data));
  st.exchange(soci::into(ts));
  st.exchange(soci::use(thread_id));
  st.exchange(soci::use(after));
  st.exchange(soci::use(lim));
  st.define_and_bind();
  st.execute();
  while (st.fetch()) {
    EventRecord ev;
    ev.thread_id = thread_id;
    ev.seq = seq;
    ev.event_type = type;
    ev.data = load(data, soci::i_ok);
    ev.ts = ts;
    out.push_back(std::move(ev));
  }
  rs.done();
  return out;
}

namespace {

/// A PostgreSQL array literal of text elements (docs "Array Value Input"): every element quoted,
/// `"` and `\` escaped; std::nullopt elements are NULL. Bound as one text parameter and CAST to
/// text[], so a statement carries any number of rows in one round trip.
std::string pg_text_array(const std::vector<std::optional<std::string>>& items) {
  std::size_t size = 2;
  for (const auto& i : items) size += (i ? i->size() + 3 : 5);
  std::string out;
  out.reserve(size);
  out += '{';
  for (std::size_t k = 0; k < items.size(); ++k) {
    if (k) out += ',';
    if (!items[k]) {
      out += "NULL";
      continue;
    }
    out += '"';
    for (char c : *items[k]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

std::string pg_text_array(const std::vector<std::string>& items) {
  return pg_text_array(std::vector<std::optional<std::string>>(items.begin(), items.end()));
}

std::string pg_bigint_array(const std::vector<std::int64_t>& items) {
  std::string out = "{";
  for (std::size_t k = 0; k < items.size(); ++k) {
    if (k) out += ',';
    out += std::to_string(items[k]);
  }
  return out + '}';
}

/// Locks the rows of `ids` (sorted) with `lock` in key order and returns their epochs
/// (PostgreSQL, one statement).
std::map<std::string, std::int64_t> pg_lock_threads(soci::session& sql, const std::vector<std::string>& ids,
                                                     const char* lock) {
  std::map<std::string, std::int64_t> epochs;
  if (ids.empty()) return epochs;
  const std::string array = pg_text_array(ids);
  std::string id;
  long long epoch = 0;
  core::db::ReusedStatement rs(sql, std::string("SELECT thread_id, epoch FROM threads WHERE thread_id = "
                                                "ANY(CAST(:ids AS text[])) ORDER BY thread_id COLLATE \"C\" ") +
                                        lock);
  soci::statement& st = rs.get();
  st.exchange(soci::into(id));
  st.exchange(soci::into(epoch));
  st.exchange(soci::use(array));
  st.define_and_bind();
  st.execute();
  while (st.fetch()) epochs[id] = epoch;
  rs.done();
  return epochs;
}

/// The allowed writes of a batch grouped by kind, for PostgreSQL's one statement per kind.
struct PgBatch {
  std::vector<std::string> ev_thread, ev_type, ev_data, ev_ts;
  std::vector<std::int64_t> ev_seq;
  std::map<std::string, std::pair<std::int64_t, std::string>> checkpoints;  // last one per thread
  std::map<std::string, std::string> statuses;                              // before any outcome
  std::map<std::string, std::size_t> outcomes;                              // index into `writes`
  std::vector<std::pair<std::string, std::string>> late_statuses;           // after an outcome
  std::map<std::string, runtime::TokenUsage> usage;                         // last one per thread
};

/// The allowed writes of a batch in a handful of statements (PostgreSQL; see write_batch).
void write_batch_pg(soci::session& sql, const std::vector<Write>& writes,
                    const std::set<std::pair<std::string, std::int64_t>>& allowed, BatchResult& out);

}  // namespace

BatchResult Store::write_batch(const std::vector<Write>& writes, const std::string& notify_origin) {
  BatchResult out;
  if (writes.empty()) return out;
  const bool pg = db_.dialect() == core::db::Dialect::postgres;
  // The epochs the batch's writers hold per thread (usually one; two when a lost run's last
  // writes share the batch with a newer run of the same thread).
  std::map<std::string, std::set<std::int64_t>> expected;
  for (const auto& w : writes) expected[w.thread_id()].insert(w.epoch);
  // Threads whose row this batch updates (status, outcome, the token usage a checkpoint carries);
  // the others only get events.
  std::set<std::string> updates_row;
  for (const auto& w : writes) {
    if (!std::holds_alternative<EventWrite>(w.op)) {
      updates_row.insert(w.thread_id());
    }
  }
  Conn conn(db_);
  soci::session& sql = conn.sql();
  WriteTxn tr(sql, db_.dialect());
  // Fence: lock the batch's thread rows and compare epochs. Every row lock of the batch is taken
  // here, in key order (byte order, as renew_leases takes its rows), so it never deadlocks with
  // another writer or a lease renewal. PostgreSQL (docs "Row-Level Locks"): FOR NO KEY UPDATE
  // where the batch updates the row itself, then FOR KEY SHARE where it only appends: a claim
  // takes FOR UPDATE before it changes the epoch, so it waits for this transaction and this one
  // sees a claim that committed before it, while a lease renewal (an UPDATE of a non-key column)
  // is not held up by the batch's appends (a FOR KEY SHARE lock never waits for a renewal, so the
  // two ordered sets cannot form a cycle with it). The rows a batch updates are few (a run's
  // start, its checkpoints after each step, its end), so renewals rarely wait at all.
  std::set<std::pair<std::string, std::int64_t>> allowed;
  const auto decide = [&](const std::string& id, const std::set<std::int64_t>& wants,
                          std::optional<std::int64_t> epoch) {
    for (const std::int64_t want : wants) {
      if (epoch && *epoch == want) {
        allowed.emplace(id, want);
      } else {
        out.fenced.emplace_back(id, want);
      }
    }
  };
  if (pg) {
    std::vector<std::string> update_ids, append_ids;
    for (const auto& [id, wants] : expected) (updates_row.count(id) ? update_ids : append_ids).push_back(id);
    auto epochs = pg_lock_threads(sql, update_ids, "FOR NO KEY UPDATE");
    epochs.merge(pg_lock_threads(sql, append_ids, "FOR KEY SHARE"));
    for (const auto& [id, wants] : expected) {
      auto it = epochs.find(id);
      decide(id, wants, it == epochs.end() ? std::nullopt : std::optional<std::int64_t>(it->second));
    }
  } else {
    std::string tid;
    long long epoch = 0;
    soci::indicator ind = soci::i_null;
    core::db::ReusedStatement rs(sql, "SELECT epoch FROM threads WHERE thread_id = :tid");
    soci::statement& st = rs.get();
    st.exchange(soci::into(epoch, ind));
    st.exchange(soci::use(tid));
    st.define_and_bind();
    for (const auto& [id, wants] : expected) {
      tid = id;
      epoch = 0;
      ind = soci::i_null;
      const bool got = st.execute(true);
      decide(id, wants, got && ind == soci::i_ok ? std::optional<std::int64_t>(epoch) : std::nullopt);
    }
    rs.done();
  }
  if (pg) {
    write_batch_pg(sql, writes, allowed, out);
  } else {
    // SQLite runs in this process: a statement per write costs no round trip.
    for (const auto& w : writes) {
      if (!allowed.count({w.thread_id(), w.epoch})) continue;
      std::visit(
          [&](const auto& op) {
            using T = std::decay_t<decltype(op)>;
            if constexpr (std::is_same_v<T, EventWrite>) {
              insert_event(sql, op.event);
              auto& last = out.last_seq[op.event.thread_id];
              last = std::max<std::int64_t>(last, op.event.seq);
            } else if constexpr (std::is_same_v<T, CheckpointWrite>) {
              upsert_checkpoint(sql, op);
            } else if constexpr (std::is_same_v<T, StatusWrite>) {
              const std::string now = core::now_rfc3339();
              core::db::run_reused(sql, "UPDATE threads SET status = :st, updated_at = :u WHERE thread_id = :tid",
                                   soci::use(op.status), soci::use(now), soci::use(op.thread_id));
            } else {
              update_outcome(sql, op.thread_id, op.status, op.result, op.generated_files, op.error, op.usage);
            }
          },
          w.op);
    }
  }
  if (!notify_origin.empty() && pg && !out.last_seq.empty()) {
    std::vector<std::string> payloads;
    for (const auto& [id, seq] : out.last_seq) payloads.push_back(id + ":" + std::to_string(seq) + ":" + notify_origin);
    const std::string array = pg_text_array(payloads);
    core::db::run_reused(sql, "SELECT pg_notify('spec_events', p) FROM unnest(CAST(:p AS text[])) AS p",
                         soci::use(array));
  }
  tr.commit();
  return out;
}

namespace {

void write_batch_pg(soci::session& sql, const std::vector<Write>& writes,
                    const std::set<std::pair<std::string, std::int64_t>>& allowed, BatchResult& out) {
  // One statement per kind of write (arrays bound as single parameters), not one per write: a
  // batch holds up to 2000 writes, and on a loaded machine every round trip to the server waits
  // for the scheduler twice. Within the transaction the order across kinds does not matter
  // (events and checkpoints are separate tables; a thread's status and outcome are applied in
  // their batch order), except that only the last checkpoint of a thread is kept, as row by row.
  PgBatch b;
  for (std::size_t k = 0; k < writes.size(); ++k) {
    const Write& w = writes[k];
    if (!allowed.count({w.thread_id(), w.epoch})) continue;
    std::visit(
        [&](const auto& op) {
          using T = std::decay_t<decltype(op)>;
          if constexpr (std::is_same_v<T, EventWrite>) {
            b.ev_thread.push_back(op.event.thread_id);
            b.ev_seq.push_back(op.event.seq);
            b.ev_type.push_back(op.event.event_type);
            b.ev_data.push_back(op.event.data_text ? *op.event.data_text : dump(op.event.data));
            b.ev_ts.push_back(op.event.ts);
            auto& last = out.last_seq[op.event.thread_id];
            last = std::max<std::int64_t>(last, op.event.seq);
          } else if constexpr (std::is_same_v<T, CheckpointWrite>) {
            b.checkpoints[op.thread_id] = {op.seq, checkpoint_text(op)};
            b.usage[op.thread_id] = checkpoint_tokens(op);
          } else if constexpr (std::is_same_v<T, StatusWrite>) {
            if (b.outcomes.count(op.thread_id)) {
              b.late_statuses.emplace_back(op.thread_id, op.status);
            } else {
              b.statuses[op.thread_id] = op.status;
            }
          } else {
            b.outcomes[op.thread_id] = k;
            if (op.usage) b.usage[op.thread_id] = *op.usage;
          }
        },
        w.op);
  }
  const std::string now = core::now_rfc3339();
  if (!b.ev_thread.empty()) {
    const std::string t = pg_text_array(b.ev_thread), s = pg_bigint_array(b.ev_seq), e = pg_text_array(b.ev_type),
                      d = pg_text_array(b.ev_data), ts = pg_text_array(b.ev_ts);
    core::db::run_reused(
        sql,
        "INSERT INTO events (thread_id, seq, event_type, data, ts) SELECT * FROM unnest(CAST(:t AS text[]), "
        "CAST(:s AS bigint[]), CAST(:e AS text[]), CAST(:d AS text[]), CAST(:ts AS text[]))",
        soci::use(t), soci::use(s), soci::use(e), soci::use(d), soci::use(ts));
  }
  if (!b.checkpoints.empty()) {
    std::vector<std::string> ids, states;
    std::vector<std::int64_t> seqs;
    for (auto& [id, cp] : b.checkpoints) {
      ids.push_back(id);
      seqs.push_back(cp.first);
      states.push_back(std::move(cp.second));
    }
    const std::string t = pg_text_array(ids), s = pg_bigint_array(seqs), st = pg_text_array(states);
    core::db::run_reused(sql,
                         "INSERT INTO checkpoints (thread_id, seq, state, created_at) SELECT u.t, u.s, u.st, :c FROM "
                         "unnest(CAST(:t AS text[]), CAST(:s AS bigint[]), CAST(:st AS text[])) AS u(t, s, st) "
                         "ON CONFLICT (thread_id) DO UPDATE SET seq = excluded.seq, state = excluded.state, "
                         "created_at = excluded.created_at",
                         soci::use(now), soci::use(t), soci::use(s), soci::use(st));
  }
  auto update_statuses = [&](const std::vector<std::string>& ids, const std::vector<std::string>& statuses) {
    const std::string t = pg_text_array(ids), st = pg_text_array(statuses);
    core::db::run_reused(
        sql,
        "UPDATE threads SET status = u.st, updated_at = :u FROM unnest(CAST(:t AS text[]), CAST(:st AS text[])) "
        "AS u(t, st) WHERE threads.thread_id = u.t",
        soci::use(now), soci::use(t), soci::use(st));
  };
  if (!b.statuses.empty()) {
    std::vector<std::string> ids, statuses;
    for (const auto& [id, status] : b.statuses) {
      ids.push_back(id);
      statuses.push_back(status);
    }
    update_statuses(ids, statuses);
  }
  if (!b.outcomes.empty()) {
    std::vector<std::string> ids, statuses;
    std::vector<std::optional<std::string>> results, files, errors;
    for (const auto& [id, k] : b.outcomes) {
      const auto& o = std::get<OutcomeWrite>(writes[k].op);
      ids.push_back(id);
      statuses.push_back(o.status);
      results.emplace_back(dump(o.result));
      files.emplace_back(dump(o.generated_files));
      errors.push_back(o.error.empty() ? std::nullopt : std::optional<std::string>(o.error));
    }
    const std::string t = pg_text_array(ids), st = pg_text_array(statuses), r = pg_text_array(results),
                      f = pg_text_array(files), e = pg_text_array(errors);
    core::db::run_reused(
        sql,
        "UPDATE threads SET status = u.st, result = u.r, generated_files = u.f, error = u.e, updated_at = :u "
        "FROM unnest(CAST(:t AS text[]), CAST(:st AS text[]), CAST(:r AS text[]), CAST(:f AS text[]), "
        "CAST(:e AS text[])) AS u(t, st, r, f, e) WHERE threads.thread_id = u.t",
        soci::use(now), soci::use(t), soci::use(st), soci::use(r), soci::use(f), soci::use(e));
  }
  for (const auto& [id, status] : b.late_statuses) update_statuses({id}, {status});
  if (!b.usage.empty()) {
    std::vector<std::string> ids;
    std::vector<std::int64_t> in, outp;
    for (const auto& [id, u] : b.usage) {
      ids.push_back(id);
      in.push_back(u.input_tokens);
      outp.push_back(u.output_tokens);
    }
    const std::string t = pg_text_array(ids), i = pg_bigint_array(in), o = pg_bigint_array(outp);
    core::db::run_reused(sql,
                         "UPDATE threads SET input_tokens = u.i, output_tokens = u.o FROM unnest(CAST(:t AS text[]), "
                         "CAST(:i AS bigint[]), CAST(:o AS bigint[])) AS u(t, i, o) WHERE threads.thread_id = u.t",
                         soci::use(t), soci::use(i), soci::use(o));
  }
}

}  // namespace

std::map<std::string, std::int64_t> Store::renew_leases(const std::string& owner, std::chrono::milliseconds ttl) {
  std::map<std::string, std::int64_t> owned;
  Conn conn(db_);
  soci::session& sql = conn.sql();
  const long long t = ttl.count();
  if (db_.dialect() == core::db::Dialect::postgres) {
    // The rows in key order (byte order, like write_batch's fence), so a renewal and a batch never
    // wait for each other in a cycle (a plain UPDATE takes them in the order it finds them).
    core::db::run_reused(sql,
                         "UPDATE threads SET lease_expires_at = " + now_ms(db_.dialect()) +
                             " + :ttl WHERE thread_id IN (SELECT thread_id FROM threads WHERE owner = :o AND " +
                             kActive + " ORDER BY thread_id COLLATE \"C\" FOR NO KEY UPDATE)",
                         soci::use(t), soci::use(owner));
  } else {
    core::db::run_reused(
        sql,
        "UPDATE threads SET lease_expires_at = " + now_ms(db_.dialect()) + " + :ttl WHERE owner = :o AND " + kActive,
        soci::use(t), soci::use(owner));
  }
  std::string id;
  long long epoch = 0;
  soci::statement st = (sql.prepare << "SELECT thread_id, epoch FROM threads WHERE owner = :o AND " << kActive,
                        soci::into(id), soci::into(epoch), soci::use(owner));
  st.execute();
  while (st.fetch()) owned[id] = epoch;
  return owned;
}

std::vector<Claim> Store::claim_expired(const std::string& owner, std::chrono::milliseconds ttl, std::size_t limit) {
  std::vector<Claim> won;
  if (limit == 0) return won;
  Conn conn(db_);
  soci::session& sql = conn.sql();
  struct Candidate {
    std::string id, status, owner;
    long long epoch;
  };
  std::vector<Candidate> candidates;
  {
    std::string id, status, prev;
    long long epoch = 0;
    const long long lim = static_cast<long long>(limit);
    soci::statement st = (sql.prepare << "SELECT thread_id, status, owner, epoch FROM threads WHERE " << kActive
                                      << " AND lease_expires_at < " << now_ms(db_.dialect())
                                      << " ORDER BY created_at LIMIT :lim",
                          soci::into(id), soci::into(status), soci::into(prev), soci::into(epoch), soci::use(lim));
    st.execute();
    while (st.fetch()) candidates.push_back({id, status, prev, epoch});
  }
  const long long t = ttl.count();
  const bool pg = db_.dialect() == core::db::Dialect::postgres;
  for (const auto& c : candidates) {
    WriteTxn tr(sql, db_.dialect());
    if (pg) {
      // FOR UPDATE conflicts with the FOR KEY SHARE of a batch's fence (write_batch): the epoch
      // changes only once no batch of the previous owner is between its check and its commit.
      core::db::run_reused(sql, "SELECT epoch FROM threads WHERE thread_id = :tid FOR UPDATE", soci::use(c.id));
    }
    // Conditional: only while nobody claimed or renewed it since we looked (same epoch, lease
    // still expired, still active), so exactly one claimer wins and a live owner never loses.
    soci::statement up =
        (sql.prepare << "UPDATE threads SET owner = :me, epoch = epoch + 1, recoveries = recoveries + 1, "
                        "lease_expires_at = " + now_ms(db_.dialect()) + " + :ttl WHERE thread_id = :tid AND epoch = :e "
                        "AND lease_expires_at < " + now_ms(db_.dialect()) + " AND " + kActive,
         soci::use(owner), soci::use(t), soci::use(c.id), soci::use(c.epoch));
    up.execute(true);
    if (up.get_affected_rows() != 1) continue;  // the transaction rolls back: nothing changed
    int recoveries = 0;
    core::db::run_reused(sql, "SELECT recoveries FROM threads WHERE thread_id = :tid", soci::into(recoveries),
                         soci::use(c.id));
    tr.commit();
    won.push_back({c.id, c.epoch + 1, recoveries, c.status, c.owner});
  }
  return won;
}

int Store::release_leases(const std::string& owner) {
  Conn conn(db_);
  return static_cast<int>(core::db::execute_reused(
      conn.sql(), std::string("UPDATE threads SET lease_expires_at = 0 WHERE owner = :o AND ") + kActive,
      [&](soci::statement& st) { st.exchange(soci::use(owner)); }));
}

bool Store::disown(const std::string& thread_id, std::int64_t epoch) {
  Conn conn(db_);
  const long long e = epoch;
  return core::db::execute_reused(conn.sql(),
                                  "UPDATE threads SET owner = '', lease_expires_at = 0 "
                                  "WHERE thread_id = :tid AND epoch = :e",
                                  [&](soci::statement& st) {
                                    st.exchange(soci::use(thread_id));
                                    st.exchange(soci::use(e));
                                  }) > 0;
}

int Store::expire_foreign_leases(const std::string& owner) {
  Conn conn(db_);
  return static_cast<int>(core::db::execute_reused(
      conn.sql(),
      std::string("UPDATE threads SET lease_expires_at = 0 WHERE owner <> :o AND lease_expires_at <> 0 AND ") + kActive,
      [&](soci::statement& st) { st.exchange(soci::use(owner)); }));
}

void Store::notify(const std::string& channel, const std::string& payload) {
  if (db_.dialect() != core::db::Dialect::postgres) return;
  Conn conn(db_);
  core::db::run_reused(conn.sql(), "SELECT pg_notify(:c, :p)", soci::use(channel), soci::use(payload));
}

std::int64_t Store::db_now_ms() {
  Conn conn(db_);
  long long now = 0;
  core::db::run_reused(conn.sql(), "SELECT " + now_ms(db_.dialect()), soci::into(now));
  return now;
}

void Store::save_checkpoint(const std::string& thread_id, std::int64_t seq, const nlohmann::json& state) {
  Conn conn(db_);
  upsert_checkpoint(conn.sql(), CheckpointWrite{thread_id, seq, state});
}

std::optional<nlohmann::json> Store::latest_checkpoint(const std::string& thread_id) {
  Conn conn(db_);
  soci::session& sql = conn.sql();
  std::string text;
  soci::indicator ind = soci::i_null;
  const bool got = core::db::run_reused(sql, "SELECT state FROM checkpoints WHERE thread_id = :tid",
                                        soci::into(text, ind), soci::use(thread_id));
  if (!got || ind != soci::i_ok) return std::nullopt;
  auto j = load(text, ind);
  if (j.is_null()) return std::nullopt;
  return j;
}

bool Store::delete_thread(const std::string& thread_id) {
  Conn conn(db_);
  soci::session& sql = conn.sql();
  WriteTxn tr(sql, db_.dialect());
  // The thread row first: on PostgreSQL this waits for a batch holding it FOR KEY SHARE, so a
  // writer either committed before the delete or is fenced out after it.
  soci::statement st = (sql.prepare << "DELETE FROM threads WHERE thread_id = :tid", soci::use(thread_id));
  st.execute(true);
  const bool existed = st.get_affected_rows() > 0;
  core::db::run_reused(sql, "DELETE FROM events WHERE thread_id = :tid", soci::use(thread_id));
  core::db::run_reused(sql, "DELETE FROM checkpoints WHERE thread_id = :tid", soci::use(thread_id));
  tr.commit();
  return existed;
}

}  // namespace spec_engine::store
