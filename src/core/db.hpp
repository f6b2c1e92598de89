#pragma once
// Database access over SOCI for SQLite (embedded default) and PostgreSQL
// (production), one code path (docs/architecture.md#stack). Pooled sessions + a versioned
// migration runner.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>

#include <soci/soci.h>

#include "core/unavailable.hpp"

namespace core::db {

/// No pooled session became free within the bounded wait (Session, DbConfig::lease_timeout).
/// Nothing was done on the database; the caller may retry. HTTP handlers answer 503.
class PoolTimeout : public Unavailable {
 public:
  using Unavailable::Unavailable;
};

/// SQLite's write lock did not come free in time (DbConfig::busy_timeout): this process's write
/// lock (WriteLock) stayed taken, or another connection, in this process or another, held
/// SQLite's own (SQLITE_BUSY, "database is locked"). Nothing of the failed statement was
/// written. HTTP handlers answer 503.
class WriteLockTimeout : public Unavailable {
 public:
  using Unavailable::Unavailable;
};

/// True when `e` is SQLite's SQLITE_BUSY as SOCI reports it ("database is locked"): the busy
/// timeout passed while another connection held the write lock.
bool is_sqlite_busy(const std::exception& e) noexcept;

/// Runs `write` (a `BEGIN IMMEDIATE`, or a write outside a transaction) and returns its result;
/// SQLite's SQLITE_BUSY after the busy timeout (is_sqlite_busy) is thrown as WriteLockTimeout
/// instead, so every caller answers 503 with Retry-After, not 500. Other errors propagate as they
/// are. execute_reused() and run_reused() (db_statements.hpp) run their statements through it.
template <class F>
decltype(auto) busy_is_unavailable(F&& write) {
  try {
    return write();
  } catch (const soci::soci_error& e) {
    if (!is_sqlite_busy(e)) throw;
    throw WriteLockTimeout(std::string("the database is busy: ") + e.what(), std::chrono::seconds(2));
  }
}

enum class Dialect { sqlite, postgres };

/// What a readiness check of the database found (Database::check).
enum class Health {
  ok,          ///< "SELECT 1" answered
  busy,        ///< every pooled connection stayed in use for the whole wait (the database may be fine)
  unreachable  ///< connecting or the query failed
};

/// "ok", "busy" or "unreachable" (the words /ready uses).
const char* to_string(Health h) noexcept;

/// How to reach the database.
struct DbConfig {
  /// "postgresql://user:pass@host:port/dbname?..." selects PostgreSQL; empty selects SQLite.
  /// Connections time out after 5 s (libpq connect_timeout) unless the URL sets connect_timeout.
  std::string url;
  /// SQLite file used when `url` is empty (parent directory is created).
  std::filesystem::path sqlite_path;
  /// Pool size (SQLite: sessions share one file in WAL mode with busy_timeout).
  std::size_t pool_size = 8;
  /// Longest wait of Session(db) for a free pooled session before it throws PoolTimeout;
  /// 0 = wait as long as it takes.
  std::chrono::milliseconds lease_timeout{0};
  /// SQLite: how long a write waits for the write lock, in this process (WriteLock) and then in
  /// SQLite (its busy timeout), before it fails (WriteLockTimeout, or SQLITE_BUSY). The first
  /// Database of a file sets its process-wide lock's wait. Whole seconds are used for SQLite's.
  std::chrono::milliseconds busy_timeout{30000};
  /// SQLite: a bulkhead for a stalled write lock (held longer than `write_stall`, e.g. by another
  /// program on the file): once this many threads of the process wait for it, a further writer
  /// fails at once with WriteLockTimeout (503) instead of waiting too, so writers cannot take every
  /// thread of a pool that also serves reads. 0 = no limit. Like busy_timeout, the first Database
  /// of a file sets it for the file.
  std::size_t max_write_waiters = 0;
  /// SQLite: how long the write lock must have been held before max_write_waiters applies (so
  /// the ordinary queue of short writes under load never fails).
  std::chrono::milliseconds write_stall{1000};
  /// Database used when a postgresql:// URL names none (e.g. "deepagents_runtime").
  std::string default_database;
  /// PostgreSQL only: create the database if it does not exist (needs CREATEDB on the server).
  bool create_if_missing = true;
};

/// The in-process lock of one SQLite file's writers (see WriteLock), shared by every Database of
/// this process opened on that file. A timed mutex: waiters are woken as soon as it is
/// released (in no guaranteed order), instead of polling like SQLite's busy handler.
struct WriteGate {
  std::timed_mutex mu;
  /// Longest wait for the gate (DbConfig::busy_timeout of the first Database on the file).
  std::chrono::milliseconds max_wait{30000};
  /// DbConfig::max_write_waiters and write_stall of the first Database on the file.
  std::size_t max_waiters = 0;
  std::chrono::milliseconds stall{1000};
  /// Threads waiting for `mu` now.
  std::atomic<std::size_t> waiters{0};
  /// Since when `mu` has been held without a break worth the name (steady clock, ns since its
  /// epoch); 0 while free. A holder that itself held it for at least `stall` hands this time on
  /// to a waiter instead of resetting it, so a stall (another program holding the file) keeps
  /// counting across the handovers of writers that each time out in it; the first short hold
  /// after the stall resets it.
  std::atomic<std::int64_t> held_since_ns{0};
};

/// A pool of SOCI sessions. Thread-safe. Throws std::runtime_error (with the
/// driver message, never the password) when the database cannot be opened.
class Database {
 public:
  explicit Database(const DbConfig& config);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  Dialect dialect() const { return dialect_; }
  /// The underlying SOCI pool; use `soci::session sql(db.pool());` to borrow a session.
  soci::connection_pool& pool() { return *pool_; }
  std::size_t pool_size() const { return size_; }
  /// DbConfig::lease_timeout (0 = unbounded).
  std::chrono::milliseconds lease_timeout() const { return lease_timeout_; }
  /// Runs "SELECT 1" on a pooled session (reconnecting it if broken, see Session); false (and
  /// no throw) when the database is unreachable or no session frees up within `lease_timeout`,
  /// so a readiness probe never hangs on an exhausted pool.
  bool ping(std::chrono::milliseconds lease_timeout = std::chrono::milliseconds{2000}) noexcept;
  /// Like ping(), telling a pool that stayed exhausted for `lease_timeout` (Health::busy) from a
  /// database that does not answer (Health::unreachable). Never throws.
  Health check(std::chrono::milliseconds lease_timeout = std::chrono::milliseconds{2000}) noexcept;
  /// Description safe for logs: "sqlite:/path" or "postgresql://user@host:port/db" (no password).
  const std::string& describe() const { return description_; }

 private:
  Dialect dialect_;
  std::size_t size_;
  std::chrono::milliseconds lease_timeout_{0};
  std::string description_;
  std::unique_ptr<soci::connection_pool> pool_;
  std::shared_ptr<WriteGate> gate_;  ///< SQLite only: shared by every Database of the same file
};

/// Holds the write gate of a pooled SQLite session's Database while in scope. Take it before
/// a write on SQLite: `BEGIN IMMEDIATE` or a write outside a transaction, and keep it until the
/// COMMIT or ROLLBACK. This process's writers then wait on a lock that wakes them as soon as it
/// is free, not in SQLite's busy handler, which retries after sleeps of 1, 2, 5 ... up to 100 ms
/// (SQLite's sqliteDefaultBusyCallback): under a wave of short writes a writer could sleep
/// hundreds of milliseconds while the lock was free most of the time. The order of waiters is
/// not guaranteed. Other processes on the same file still meet the busy timeout, so a write can
/// wait up to twice DbConfig::busy_timeout in all. Holds nothing for PostgreSQL (row locks), for a
/// session that no Database pools, and when this thread holds the file's gate already (a write
/// inside a write transaction). Reentrancy is per file, not per session: a write transaction
/// open on one session and a write on another session of the same file, in one thread, still
/// wait for each other in SQLite (for the busy timeout, then fail), as they did without the
/// gate. Release it on the thread that took it. Throws WriteLockTimeout when the gate stays
/// taken longer than WriteGate::max_wait, and at once when the gate has been held longer than
/// WriteGate::stall while WriteGate::max_waiters threads already wait for it (the bulkhead).
class WriteLock {
 public:
  explicit WriteLock(soci::session& sql);
  ~WriteLock();
  WriteLock(const WriteLock&) = delete;
  WriteLock& operator=(const WriteLock&) = delete;
  /// Releases the gate now (after COMMIT or ROLLBACK); the destructor releases it otherwise.
  void release() noexcept;
  /// True while this lock holds a gate.
  bool holds() const noexcept { return lock_.owns_lock(); }

 private:
  std::unique_lock<std::timed_mutex> lock_;
  WriteGate* gate_ = nullptr;  ///< the gate held (null when none or already held by this thread)
  std::int64_t took_ns_ = 0;   ///< when this lock took the gate (steady clock, ns)
};

/// Makes sure `sql` has a working connection: when the backend reports it broken (the server
/// restarted, or terminated the connection), reconnects it once with its original parameters.
/// For PostgreSQL the check costs one round trip. Throws soci::soci_error when reconnecting fails
/// (the next call tries again). Use it on sessions borrowed from a pool, or use Session.
void ensure_connected(soci::session& sql);

/// A session leased from a Database's pool and checked with ensure_connected(), returned to the
/// pool on destruction. Prefer it over `soci::session sql(db.pool());`, whose pooled connections
/// stay broken forever after a PostgreSQL restart:
///
///     core::db::Session lease(db);
///     soci::session& sql = lease.sql();
class Session {
 public:
  /// Leases a session, waiting at most the database's lease_timeout() (as long as it takes when
  /// that is 0); throws PoolTimeout when none frees up in time.
  explicit Session(Database& db);
  /// Leases a session, waiting at most `timeout`; throws PoolTimeout when none frees up.
  Session(Database& db, std::chrono::milliseconds timeout);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  /// The leased, connected session (valid while this object lives).
  soci::session& sql() { return *sql_; }
  /// Same as sql().
  soci::session& operator*() { return *sql_; }
  /// Member access to the leased session.
  soci::session* operator->() { return sql_; }

 private:
  void check();
  /// Leases into pos_ within `timeout` or throws PoolTimeout.
  void lease_within(std::chrono::milliseconds timeout);
  soci::connection_pool& pool_;
  std::size_t pos_ = 0;
  soci::session* sql_ = nullptr;
};

/// PostgreSQL URL with its database replaced by `dbname` (query kept). Throws std::invalid_argument
/// for a URL that is not postgresql:// or postgres://.
std::string with_database(const std::string& url, const std::string& dbname);

/// The database name in a postgresql:// URL ("" when the URL has no path).
std::string database_of(const std::string& url);

/// `url` with any password replaced by "***" (for logs and error messages).
std::string redact(const std::string& url);

/// Creates database `dbname` on the server of `url` (connecting to its "postgres" database)
/// unless it exists. Throws std::runtime_error with the server's message on failure.
void create_postgres_database(const std::string& url, const std::string& dbname);

/// Applies every migration file in `dir` (named "NNNN_description.sql", applied in
/// numeric order) not yet recorded in table `schema_migrations(version, name, applied_at)`.
/// Each file runs in one transaction; statements are separated by ";" at line end.
/// Returns the number applied. Throws std::runtime_error naming the failing file.
int migrate(Database& db, const std::filesystem::path& dir);

/// Migration directory for `service` ("spec_engine" | "orchestrator") and the db's dialect:
/// looks in $MIGRATIONS_DIR, then <exe>/../../migrations, ./migrations, /usr/share/agentic-ide/migrations.
std::filesystem::path migrations_dir(const std::string& service, Dialect dialect);

}  // namespace core::db
