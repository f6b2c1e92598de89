#include "orchestrator/store/unit_of_work.hpp"

#include <algorithm>
#include <array>
#include <cctype>

#include <libpq-fe.h>
#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>

#include "core/db.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"

namespace orchestrator::store {

namespace {

/// Upper-cased word at `pos` of `sql` (letters and '_'), advancing `pos` past it.
std::string next_word(std::string_view sql, std::size_t& pos) {
  // Skip blanks, "-- line" and "/* block */" comments.
  for (;;) {
    while (pos < sql.size() && std::isspace(static_cast<unsigned char>(sql[pos]))) ++pos;
    if (sql.compare(pos, 2, "--") == 0) {
      const auto nl = sql.find('\n', pos);
      pos = nl == std::string_view::npos ? sql.size() : nl + 1;
    } else if (sql.compare(pos, 2, "/*") == 0) {
      const auto end = sql.find("*/", pos + 2);
      pos = end == std::string_view::npos ? sql.size() : end + 2;
    } else {
      break;
    }
  }
  std::string w;
  while (pos < sql.size() && (std::isalpha(static_cast<unsigned char>(sql[pos])) || sql[pos] == '_'))
    w += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[pos++])));
  return w;
}

/// True if `sql` holds INSERT, UPDATE, DELETE or MERGE as a word outside "FOR UPDATE".
bool mentions_write(std::string_view sql) {
  std::string prev;
  for (std::size_t pos = 0; pos < sql.size();) {
    const std::string w = next_word(sql, pos);
    if (w.empty()) {
      ++pos;
      continue;
    }
    if (w == "INSERT" || w == "DELETE" || w == "MERGE" || (w == "UPDATE" && prev != "FOR")) return true;
    prev = w;
  }
  return false;
}

/// Feeds every statement of a session to the WriteLog of the unit running on it (null: none).
class WriteLogger : public soci::logger_impl {
 public:
  explicit WriteLogger(WriteLog* log) : log_(log) {}
  void start_query(const std::string& query) override {
    if (log_) log_->record(query);
  }

 private:
  logger_impl* do_clone() const override { return new WriteLogger(log_); }
  WriteLog* log_;
};

/// Installs the unit's WriteLogger on the leased session for the scope's lifetime.
class LogScope {
 public:
  LogScope(soci::session& sql, WriteLog& log) : sql_(sql) { sql_.set_logger(soci::logger(new WriteLogger(&log))); }
  ~LogScope() {
    try {
      sql_.set_logger(soci::logger(new WriteLogger(nullptr)));
    } catch (...) {
    }
  }
  LogScope(const LogScope&) = delete;
  LogScope& operator=(const LogScope&) = delete;

 private:
  soci::session& sql_;
};

core::metrics::Counter& retries_counter() {
  static auto& c = core::metrics::global().counter(
      "ide_orchestrator_db_connection_lost_total",
      "Units of database work that met a dead connection, by outcome (retried | unavailable | maybe_written)");
  return c;
}

bool has_marker(const std::string& text) {
  static const std::array<const char*, 12> markers = {
      "server closed the connection",   "no connection to the server",   "connection to server",
      "could not connect to server",    "could not receive data from server", "could not send data to server",
      "terminating connection",         "the database system is starting up", "the database system is shutting down",
      "the database system is in recovery mode", "Cannot establish connection", "SSL SYSCALL error"};
  return std::any_of(markers.begin(), markers.end(),
                     [&](const char* m) { return text.find(m) != std::string::npos; });
}

}  // namespace

StatementKind classify_statement(std::string_view sql) {
  std::size_t pos = 0;
  const std::string first = next_word(sql, pos);
  if (first == "BEGIN" || first == "START") return StatementKind::begin;
  if (first == "COMMIT" || first == "END") return StatementKind::commit;
  if (first == "ROLLBACK") {
    const std::string second = next_word(sql, pos);
    if (second == "TO") return StatementKind::read;  // ROLLBACK TO SAVEPOINT: the transaction stays open
    if (second == "TRANSACTION" || second == "WORK") {
      if (next_word(sql, pos) == "TO") return StatementKind::read;
    }
    return StatementKind::rollback;
  }
  if (first == "SELECT" || first == "VALUES" || first == "SHOW" || first == "SAVEPOINT" || first == "RELEASE" ||
      first == "TABLE")
    return StatementKind::read;
  // A data-modifying CTE, or EXPLAIN ANALYZE of a write, writes.
  if (first == "WITH" || first == "EXPLAIN")
    return mentions_write(sql.substr(pos)) ? StatementKind::write : StatementKind::read;
  return StatementKind::write;
}

void WriteLog::record(std::string_view sql) {
  ++statements;
  switch (classify_statement(sql)) {
    case StatementKind::read:
      break;
    case StatementKind::write:
      if (in_transaction) transaction_wrote = true;
      else maybe_committed = true;  // autocommit: durable as soon as the server ran it
      break;
    case StatementKind::begin:
      in_transaction = true;
      transaction_wrote = false;
      break;
    case StatementKind::commit:
      if (in_transaction && transaction_wrote) maybe_committed = true;  // the answer may be lost, not the commit
      in_transaction = false;
      transaction_wrote = false;
      break;
    case StatementKind::rollback:
      in_transaction = false;
      transaction_wrote = false;
      break;
  }
}

bool retry_is_safe(const WriteLog& log) { return !log.maybe_committed; }

bool is_database_error(const std::exception& e) noexcept { return dynamic_cast<const soci::soci_error*>(&e) != nullptr; }

bool is_connection_lost(const std::exception& e, soci::session* sql) noexcept {
  try {
    const auto* se = dynamic_cast<const soci::soci_error*>(&e);
    if (!se) return false;
    if (se->get_error_category() == soci::soci_error::connection_error) return true;
    if (const auto* pe = dynamic_cast<const soci::postgresql_soci_error*>(se)) {
      const std::string state = pe->sqlstate();
      if (state.rfind("08", 0) == 0 || state == "57P01" || state == "57P02" || state == "57P03") return true;
    }
    if (has_marker(se->what())) return true;
    if (sql && sql->get_backend() && sql->get_backend_name() == "postgresql") {
      // The backend's typeinfo is not exported by libsoci_postgresql: identify it by name.
      auto* be = static_cast<soci::postgresql_session_backend*>(sql->get_backend());
      return be->conn_ == nullptr || PQstatus(be->conn_) != CONNECTION_OK;
    }
  } catch (...) {
  }
  return false;
}

bool is_busy(const std::exception& e) noexcept {
  return dynamic_cast<const core::db::WriteLockTimeout*>(&e) != nullptr || core::db::is_sqlite_busy(e);
}

Store::Store(core::db::Database& db, StoreOptions options) : db_(db), options_(options) {}

core::db::Dialect Store::dialect() const noexcept { return db_.dialect(); }

bool Store::ping(std::chrono::milliseconds lease_budget) noexcept { return db_.ping(lease_budget); }

std::string Store::health(std::chrono::milliseconds lease_budget) noexcept {
  return core::db::to_string(db_.check(lease_budget));
}

void Store::run_unit(const std::function<void(UnitOfWork&)>& body) {
  for (int attempt = 1;; ++attempt) {
    WriteLog log;
    std::string error;
    {
      std::optional<core::db::Session> lease;
      try {
        lease.emplace(db_);  // bounded wait (DbConfig::lease_timeout); reconnects a broken connection
      } catch (const core::db::PoolTimeout& e) {
        retries_counter().inc({{"outcome", "pool_timeout"}});
        core::log::warn("database_pool_timeout", {{"error", e.what()}});
        throw DatabaseUnavailable("The server is busy: no database connection became free in time. Try again in " +
                                      std::to_string(options_.retry_after.count()) + " s.",
                                  options_.retry_after, false);
      } catch (const soci::soci_error& e) {
        error = e.what();  // could not reconnect: nothing was sent
      }
      if (lease) {
        LogScope scope(lease->sql(), log);
        UnitOfWork uow(lease->sql(), db_.dialect(), log);
        try {
          body(uow);
          return;
        } catch (const std::exception& e) {
          if (is_busy(e)) {
            // SQLite's write lock did not come free within the busy timeout: not retried (the
            // wait was already long); the failed statement wrote nothing, earlier autocommit
            // writes of the unit may have.
            const bool safe = retry_is_safe(log);
            retries_counter().inc({{"outcome", "busy"}});
            core::log::warn("database_busy", {{"error", e.what()}, {"maybe_written", !safe}});
            const std::string secs = std::to_string(options_.retry_after.count());
            throw DatabaseUnavailable(
                safe ? "The database is busy: a write waited too long for its lock; nothing was changed. Try again "
                       "in " + secs + " s."
                     : "The database was busy while a change was being saved; part of it may have been applied. "
                       "Reload before repeating the request (in " + secs + " s).",
                options_.retry_after, !safe);
          }
          if (!is_connection_lost(e, &lease->sql())) throw;
          error = e.what();
        }
      }
    }
    const bool safe = retry_is_safe(log);
    if (safe && attempt == 1) {
      retries_counter().inc({{"outcome", "retried"}});
      core::log::warn("database_connection_lost_retrying",
                      {{"error", error}, {"statements_sent", log.statements}});
      continue;
    }
    retries_counter().inc({{"outcome", safe ? "unavailable" : "maybe_written"}});
    core::log::warn("database_unavailable", {{"error", error}, {"attempt", attempt}, {"maybe_written", !safe}});
    const std::string secs = std::to_string(options_.retry_after.count());
    if (safe) {
      throw DatabaseUnavailable("The database is not reachable right now; nothing was changed. Try again in " + secs +
                                    " s.",
                                options_.retry_after, false);
    }
    throw DatabaseUnavailable(
        "The connection to the database was lost while a change was being saved; it may or may not have been "
        "applied. Reload before repeating the request (in " + secs + " s).",
        options_.retry_after, true);
  }
}

}  // namespace orchestrator::store
