#pragma once
// Units of work: every database access of the orchestrator runs as one unit on one connection
// leased from the pool (core::db::Session: a bounded wait, a broken connection reconnected before
// use). A unit that meets a dead connection (the server restarted, the network dropped it) is run
// again from the start ONCE on a fresh connection when that cannot repeat a write that may have
// been committed; otherwise it fails with DatabaseUnavailable (HTTP 503 + Retry-After).
//
// The retry decision is made from what the unit actually sent: every statement passes through
// the session's SOCI logger before it is sent, and is classified by its text (classify_statement).
// A write inside a transaction is undone by the server when the connection dies before COMMIT
// (PostgreSQL aborts the open transaction of a lost connection; crash recovery replays only
// committed ones), so re-running the unit is safe. A write sent outside a transaction
// (autocommit), or a COMMIT of a transaction that wrote, may have taken effect even though the
// answer was lost: the unit is not re-run.
//
// SOCI stays below this line: the domain sees UnitOfWork and Store only (this header declares
// no SOCI type beyond the forward declaration of soci::session used by the repositories).

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "core/unavailable.hpp"

namespace soci {
class session;
}
namespace core::db {
class Database;
enum class Dialect;
}  // namespace core::db

namespace orchestrator::store {

/// How a statement affects the retry decision.
enum class StatementKind {
  read,      ///< SELECT / VALUES / SHOW / EXPLAIN / SAVEPOINT / RELEASE (SELECT ... FOR UPDATE only locks)
  write,     ///< anything else: INSERT, UPDATE, DELETE, DDL, and WITH ... containing one of them
  begin,     ///< BEGIN [IMMEDIATE] / START TRANSACTION
  commit,    ///< COMMIT / END
  rollback,  ///< ROLLBACK (also ROLLBACK TO SAVEPOINT, which keeps the transaction open: read)
};

/// Classifies SQL text by its first keyword (leading blanks and SQL comments skipped, case
/// ignored). Unknown statements count as writes, so a mistake can only cost a retry, never
/// repeat a write.
StatementKind classify_statement(std::string_view sql);

/// What a unit of work has sent so far, as far as re-running it is concerned. Fed with every
/// statement before it is sent (record()).
struct WriteLog {
  bool in_transaction = false;     ///< BEGIN sent; no COMMIT or ROLLBACK since
  bool transaction_wrote = false;  ///< a write was sent inside the open transaction
  bool maybe_committed = false;    ///< a write may be durable: sent in autocommit, or its COMMIT was sent
  int statements = 0;              ///< statements recorded

  /// Records one statement about to be sent.
  void record(std::string_view sql);
};

/// The retry rule: re-running a unit whose connection died is safe iff no write of it may have
/// been committed (WriteLog::maybe_committed is false).
bool retry_is_safe(const WriteLog& log);

/// One unit's database work: the leased connection and the dialect. Only the store layer
/// (repositories, Tx) uses sql(); the domain passes the unit along.
class UnitOfWork {
 public:
  UnitOfWork(soci::session& sql, core::db::Dialect dialect, const WriteLog& log) noexcept
      : sql_(sql), dialect_(dialect), log_(log) {}
  UnitOfWork(const UnitOfWork&) = delete;
  UnitOfWork& operator=(const UnitOfWork&) = delete;

  /// The leased connection (store layer only).
  soci::session& sql() noexcept { return sql_; }
  /// SQLite or PostgreSQL.
  core::db::Dialect dialect() const noexcept { return dialect_; }
  /// What this unit has sent so far.
  const WriteLog& writes() const noexcept { return log_; }

 private:
  soci::session& sql_;
  core::db::Dialect dialect_;
  const WriteLog& log_;
};

/// The database could not do a unit's work now (connection lost, server down, or no pooled
/// connection free within the bounded wait). HTTP answers 503 with Retry-After and what();
/// `maybe_written()` says the unit's change may nonetheless have been committed.
class DatabaseUnavailable : public core::Unavailable {
 public:
  DatabaseUnavailable(const std::string& what, std::chrono::seconds retry_after, bool maybe_written)
      : core::Unavailable(what, retry_after), maybe_written_(maybe_written) {}
  /// True when the connection died after a write may have been committed (the client should
  /// reload before repeating the request).
  bool maybe_written() const noexcept { return maybe_written_; }

 private:
  bool maybe_written_;
};

/// Tuning of Store.
struct StoreOptions {
  /// Retry-After advised when the database is unreachable or busy.
  std::chrono::seconds retry_after{2};
};

/// Runs units of work on a core::db::Database (thread-safe; one pooled connection per running
/// unit, leased with the database's bounded wait, DbConfig::lease_timeout).
class Store {
 public:
  /// Keeps a reference to `db` (must outlive the store).
  explicit Store(core::db::Database& db, StoreOptions options = {});

  /// SQLite or PostgreSQL.
  core::db::Dialect dialect() const noexcept;
  /// The database (for wiring and tests; the domain never needs it).
  core::db::Database& database() noexcept { return db_; }

  /// Runs `body(UnitOfWork&)` and returns its result. A dead connection re-runs the whole body
  /// once on a fresh connection when retry_is_safe(); otherwise, or when the second attempt
  /// fails the same way, throws DatabaseUnavailable. A full pool past the wait throws
  /// DatabaseUnavailable too. Every other exception of `body` propagates unchanged (no retry).
  /// `body` must do database work only (it may run twice) and must not run another unit inside.
  template <class F>
  std::invoke_result_t<F&, UnitOfWork&> run(F&& body) {
    using R = std::invoke_result_t<F&, UnitOfWork&>;
    if constexpr (std::is_void_v<R>) {
      run_unit([&](UnitOfWork& uow) { body(uow); });
    } else {
      std::optional<R> out;
      run_unit([&](UnitOfWork& uow) { out.emplace(body(uow)); });
      return std::move(*out);
    }
  }

  /// Readiness: "SELECT 1" on a pooled connection (reconnected if broken), waiting at most
  /// `lease_budget` for a free one; connecting and the query are bounded by the connection's
  /// network timeouts (core::db). False, never a throw, when the database cannot answer.
  bool ping(std::chrono::milliseconds lease_budget) noexcept;
  /// Like ping(): "ok", "busy" (no pooled connection came free within `lease_budget`: the
  /// orchestrator is overloaded or writes wait for a lock) or "unreachable".
  std::string health(std::chrono::milliseconds lease_budget) noexcept;

 private:
  void run_unit(const std::function<void(UnitOfWork&)>& body);
  core::db::Database& db_;
  StoreOptions options_;
};

/// True when `e` (thrown while using `sql`, or null when no connection was in use) means the
/// connection to the database is gone: SQLSTATE class 08 (connection exception), 57P01..57P03
/// (the server shut down or is starting), a libpq/SOCI connection message ("server closed the
/// connection unexpectedly", "no connection to the server", ...), or the PostgreSQL connection's
/// status is no longer CONNECTION_OK (PQstatus). Constraint violations and other SQL errors are not.
bool is_connection_lost(const std::exception& e, soci::session* sql = nullptr) noexcept;

/// True when `e` means SQLite's write lock did not come free in time (core::db::WriteLockTimeout,
/// or SQLITE_BUSY after the busy timeout). Store::run turns it into DatabaseUnavailable (503).
bool is_busy(const std::exception& e) noexcept;

/// True when `e` is an error reported by the database driver (soci::soci_error), e.g. a
/// constraint violation; lets the domain tell a lost race from its own errors without SOCI types.
bool is_database_error(const std::exception& e) noexcept;

}  // namespace orchestrator::store
