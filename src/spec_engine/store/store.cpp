// Spec Engine persistence over SOCI; identical SQL for SQLite and PostgreSQL.
#include "spec_engine/store/store.hpp"

#include <algorithm>

#include <soci/soci.h>

#include "core/json_parse.hpp"
#include "core/util.hpp"

namespace spec_engine::store {

namespace {

/// JSON to TEXT; invalid UTF-8 is replaced rather than throwing.
std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

/// TEXT to JSON; a NULL column (indicator) or unparsable text gives null.
nlohmann::json load(const std::string& text, soci::indicator ind) {
  if (ind != soci::i_ok || text.empty()) return nullptr;
  return core::json::parse_or_null(text, core::json::kInternalLimits).value_or(nullptr);
}

constexpr const char* kThreadColumns =
    "thread_id, job_id, trace_id, traceparent, status, agent_definition, input_payload, result, "
    "generated_files, error, last_seq, recoveries, created_at, updated_at";

/// Output buffers for one `threads` row fetched with kThreadColumns.
struct ThreadRow {
  std::string thread_id, job_id, trace_id, traceparent, status, definition, payload, result, files, error;
  soci::indicator result_ind = soci::i_null, files_ind = soci::i_null, error_ind = soci::i_null;
  long long last_seq = 0;
  int recoveries = 0;
  std::string created_at, updated_at;

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
    return r;
  }
};

/// Prepares `sql_text` (selecting kThreadColumns) with every column bound into `row`.
soci::details::prepare_temp_type& bind_row(soci::details::prepare_temp_type& p, ThreadRow& row) {
  p, soci::into(row.thread_id), soci::into(row.job_id), soci::into(row.trace_id), soci::into(row.traceparent),
      soci::into(row.status), soci::into(row.definition), soci::into(row.payload),
      soci::into(row.result, row.result_ind), soci::into(row.files, row.files_ind),
      soci::into(row.error, row.error_ind), soci::into(row.last_seq), soci::into(row.recoveries),
      soci::into(row.created_at), soci::into(row.updated_at);
  return p;
}

}  // namespace

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
          {"created_at", created_at},
          {"updated_at", updated_at}};
}

nlohmann::json EventRecord::to_json() const {
  return {{"event_type", event_type}, {"data", data}, {"seq", seq}, {"thread_id", thread_id}, {"ts", ts}};
}

bool Store::create_thread(const ThreadRecord& rec) {
  core::db::Session lease(db_);
  soci::session& sql = lease.sql();
  const std::string now = core::now_rfc3339();
  const std::string def = dump(rec.agent_definition);
  const std::string payload = dump(rec.input_payload.is_null() ? nlohmann::json::object() : rec.input_payload);
  const long long last_seq = rec.last_seq;
  soci::statement st = (sql.prepare << "INSERT INTO threads (thread_id, job_id, trace_id, traceparent, status, "
                                       "agent_definition, input_payload, last_seq, recoveries, created_at, updated_at) "
                                       "VALUES (:tid, :jid, :trace, :tp, :st, :def, :payload, :seq, 0, :c, :u) "
                                       "ON CONFLICT (thread_id) DO NOTHING",
                        soci::use(rec.thread_id), soci::use(rec.job_id), soci::use(rec.trace_id),
                        soci::use(rec.traceparent), soci::use(rec.status), soci::use(def), soci::use(payload),
                        soci::use(last_seq), soci::use(now), soci::use(now));
  st.execute(true);
  return st.get_affected_rows() > 0;
}

std::optional<ThreadRecord> Store::get_thread(const std::string& thread_id) {
  core::db::Session lease(db_);
  soci::session& sql = lease.sql();
  ThreadRow row;
  auto p = sql.prepare << "SELECT " << kThreadColumns << " FROM threads WHERE thread_id = :tid";
  bind_row(p, row), soci::use(thread_id);
  soci::statement st(p);
  st.execute();
  if (!st.fetch()) return std::nullopt;
  return row.to_record();
}

bool Store::set_status(const std::string& thread_id, const std::string& status, const std::string& error) {
  core::db::Session lease(db_);
  soci::session& sql = lease.sql();
  const std::string now = core::now_rfc3339();
  soci::indicator err_ind = error.empty() ? soci::i_null : soci::i_ok;
  soci::statement st = (sql.prepare << "UPDATE threads SET status = :st, error = :err, updated_at = :u "
                                       "WHERE thread_id = :tid",
                        soci::use(status), soci::use(error, err_ind), soci::use(now), soci::use(thread_id));
  st.execute(true);
  return st.get_affected_rows() > 0;
}

int Store::bump_recoveries(const std::string& thread_id) {
  core::db::Session lease(db_);
  soci::session& sql = lease.sql();
  soci::transaction tr(sql);
  sql << "UPDATE threads SET recoveries = recoveries + 1 WHERE thread_id = :tid", soci::use(thread_id);
  int n = 0;
  soci::indicator ind = soci::i_null;
  sql << "SELECT recoveries FROM threads WHERE thread_id = :tid", soci::into(n, ind), soci::use(thread_id);
  tr.commit();
  return ind == soci::i_ok ? n : 0;
}

std::vector<ThreadRecord> Store::threads_with_status(const std::vector<std::string>& statuses) {
  std::vector<ThreadRecord> out;
  core::db::Session lease(db_);
  soci::session& sql = lease.sql();
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
  core::db::Session lease(db_);
  soci::session& sql = lease.sql();
  const std::string data = dump(ev.data);
  const long long seq = ev.seq;
  soci::transaction tr(sql);
  sql << "INSERT INTO events (thread_id, seq, event_type, data, ts) VALUES (:tid, :seq, :et, :data, :ts)",
      soci::use(ev.thread_id), soci::use(seq), soci::use(ev.event_type), soci::use(data), soci::use(ev.ts);
  sql << "UPDATE threads SET last_seq = :seq, updated_at = :u WHERE thread_id = :tid", soci::use(seq),
      soci::use(ev.ts), soci::use(ev.thread_id);
  tr.commit();
}

void Store::finish(const std::string& thread_id, const std::string& status, const nlohmann::json& result,
                   const nlohmann::json& generated_files, const std::string& error, const EventRecord& end_event) {
  core::db::Session lease(db_);
  soci::session& sql = lease.sql();
  const std::string res = dump(result);
  const std::string files = dump(generated_files);
  soci::indicator err_ind = error.empty() ? soci::i_null : soci::i_ok;
  const std::string data = dump(end_event.data);
  const long long seq = end_event.seq;
  soci::transaction tr(sql);
  sql << "INSERT INTO events (thread_id, seq, event_type, data, ts) VALUES (:tid, :seq, :et, :data, :ts)",
      soci::use(end_event.thread_id), soci::use(seq), soci::use(end_event.event_type), soci::use(data),
      soci::use(end_event.ts);
  sql << "UPDATE threads SET status = :st, result = :res, generated_files = :files, error = :err, "
         "last_seq = :seq, updated_at = :u WHERE thread_id = :tid",
      soci::use(status), soci::use(res), soci::use(files), soci::use(error, err_ind), soci::use(seq),
      soci::use(end_event.ts), soci::use(thread_id);
  tr.commit();
}

std::vector<EventRecord> Store::events_after(const std::string& thread_id, std::int64_t after_seq,
                                             std::size_t limit) {
  std::vector<EventRecord> out;
  core::db::Session lease(db_);
  soci::session& sql = lease.sql();
  long long seq = 0;
  std::string type, data, ts;
  const long long after = after_seq;
  const long long lim = limit == 0 ? -1 : static_cast<long long>(limit);
  soci::statement st = (sql.prepare << "SELECT seq, event_type, data, ts FROM events "
                                       "WHERE thread_id = :tid AND seq > :after ORDER BY seq",
                        soci::into(seq), soci::into(type), soci::into(data), soci::into(ts), soci::use(thread_id),
                        soci::use(after));
  st.execute();
  while (st.fetch()) {
    EventRecord ev;
    ev.thread_id = thread_id;
    ev.seq = seq;
    ev.event_type = type;
    ev.data = load(data, soci::i_ok);
    ev.ts = ts;
    out.push_back(std::move(ev));
    if (lim > 0 && static_cast<long long>(out.size()) >= lim) break;
  }
  return out;
}

void Store::save_checkpoint(const std::string& thread_id, std::int64_t seq, const nlohmann::json& state) {
  core::db::Session lease(db_);
  soci::session& sql = lease.sql();
  const std::string text = dump(state);
  const std::string now = core::now_rfc3339();
  const long long s = seq;
  sql << "INSERT INTO checkpoints (thread_id, seq, state, created_at) VALUES (:tid, :seq, :state, :c) "
         "ON CONFLICT (thread_id) DO UPDATE SET seq = excluded.seq, state = excluded.state, "
         "created_at = excluded.created_at",
      soci::use(thread_id), soci::use(s), soci::use(text), soci::use(now);
}

std::optional<nlohmann::json> Store::latest_checkpoint(const std::string& thread_id) {
  core::db::Session lease(db_);
  soci::session& sql = lease.sql();
  std::string text;
  soci::indicator ind = soci::i_null;
  sql << "SELECT state FROM checkpoints WHERE thread_id = :tid", soci::into(text, ind), soci::use(thread_id);
  if (!sql.got_data() || ind != soci::i_ok) return std::nullopt;
  auto j = load(text, ind);
  if (j.is_null()) return std::nullopt;
  return j;
}

bool Store::delete_thread(const std::string& thread_id) {
  core::db::Session lease(db_);
  soci::session& sql = lease.sql();
  soci::transaction tr(sql);
  sql << "DELETE FROM events WHERE thread_id = :tid", soci::use(thread_id);
  sql << "DELETE FROM checkpoints WHERE thread_id = :tid", soci::use(thread_id);
  soci::statement st = (sql.prepare << "DELETE FROM threads WHERE thread_id = :tid", soci::use(thread_id));
  st.execute(true);
  const bool existed = st.get_affected_rows() > 0;
  tr.commit();
  return existed;
}

}  // namespace spec_engine::store
