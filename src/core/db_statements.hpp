#pragma once
// Prepared statements reused across calls on a pooled session: parsing and planning a
// statement (sqlite3_prepare_v2; PostgreSQL's PREPARE, EXECUTE and DEALLOCATE round trips) is
// paid once per session and SQL text instead of once per call. Both services' stores run their
// hot statements through ReusedStatement; the bindings stay the caller's, added per use.

#include <memory>
#include <optional>
#include <string>

#include <soci/soci.h>

#include "core/db.hpp"

namespace core::db {

namespace detail {
class StatementCache;  // one registered session's cache (db_statements.cpp)
}

/// Most prepared statements one registered session keeps (least recently used dropped first).
inline constexpr std::size_t kStatementsPerSession = 128;

/// Gives `sql` a cache of prepared statements (core::db::Database does this for each pooled
/// session). `sql` must outlive the registration: call forget_session() before destroying it.
void register_session(soci::session& sql);
/// Drops `sql`'s cache and registration (its statements are finalized / deallocated). No-op for
/// a session never registered. Never throws.
void forget_session(soci::session& sql) noexcept;
/// Drops the statements cached for `sql` but keeps it registered: call before reconnecting it
/// (cached statements belong to the old connection). Never throws.
void forget_statements(soci::session& sql) noexcept;
/// Statements cached for `sql` now (0 for an unregistered session). For tests: call it only
/// while holding the session (the cache is the lessee's, without a lock of its own).
std::size_t cached_statements(soci::session& sql);

/// One use of the prepared statement for `query` on `sql`. Taken from the session's cache (or
/// prepared when absent); on a session without a cache, prepared for this use only (as a
/// one-time query: one round trip on PostgreSQL). Every use is passed to the session's logger
/// (soci::session::log_query), as preparing a statement does, so a logger sees each statement
/// run, reused or not. The caller adds its bindings to get(), then calls define_and_bind(),
/// execute() and fetch() as with any soci::statement, and done() once it has what it needs
/// from the statement without an error. The destructor removes the bindings (so they never
/// outlive the caller's variables) and returns the statement to the cache only after done():
/// a statement that threw is destroyed, so the next use prepares it afresh (on PostgreSQL
/// inside a transaction, where a DEALLOCATE would be refused, once the connection is idle
/// again, so no server-side statement is leaked). Before a statement is cached, SQLite's is
/// reset (an un-reset statement keeps its read transaction, and with it an old snapshot;
/// SQLite "sqlite3_reset") and PostgreSQL's result set is freed. On SQLite a write (is_write())
/// holds the process's write gate (WriteLock) from construction until the statement is reset
/// and cached, or finalized after an error.
///
///     core::db::ReusedStatement rs(sql, "SELECT name FROM users WHERE id = :id");
///     soci::statement& st = rs.get();
///     st.exchange(soci::into(name));
///     st.exchange(soci::use(id));
///     st.define_and_bind();
///     st.execute(false);
///     while (st.fetch()) ...;
///     rs.done();
///
/// Not thread-safe, like the session itself. Throws soci::soci_error when preparing fails.
class ReusedStatement {
 public:
  ReusedStatement(soci::session& sql, const std::string& query);
  ~ReusedStatement();
  ReusedStatement(const ReusedStatement&) = delete;
  ReusedStatement& operator=(const ReusedStatement&) = delete;

  /// The prepared statement, without bindings.
  soci::statement& get() { return *st_; }
  /// The statement ran to the end without error: keep it for the next use.
  void done() noexcept { done_ = true; }

 private:
  /// Declared first, destroyed last: held until the statement is reset (see the class comment).
  std::optional<WriteLock> gate_;
  soci::session& sql_;
  std::string query_;
  std::unique_ptr<soci::statement> st_;
  detail::StatementCache* cache_ = nullptr;  ///< the session's cache; null for a session without one
  bool done_ = false;
};

/// True when `query` starts with INSERT, UPDATE, DELETE or REPLACE (any case, after blanks): a
/// statement that takes SQLite's write lock. A write written otherwise (after a comment or a
/// parenthesis, or `WITH ... INSERT`) is not recognised; none is written so here.
bool is_write(const std::string& query) noexcept;

/// Runs statement `query` (no result rows) with the bindings `bind(soci::statement&)` adds, on
/// the session's reused statement; returns the rows it changed. Throws what soci throws, except
/// SQLite's busy timeout: WriteLockTimeout (busy_is_unavailable).
template <class Bind>
long long execute_reused(soci::session& sql, const std::string& query, Bind&& bind) {
  ReusedStatement rs(sql, query);
  soci::statement& st = rs.get();
  bind(st);
  st.define_and_bind();
  busy_is_unavailable([&] { st.execute(true); });
  const long long changed = st.get_affected_rows();
  rs.done();
  return changed;
}

/// The reused-statement form of `sql << query, bindings...;`: `bindings` are soci::use(...) and
/// soci::into(...) values, in the same order. Runs the statement once; a query fills its
/// into-variables from its first row. Returns whether it produced a row (what
/// soci::session::got_data() tells after `sql << ...`). Throws what soci throws, except SQLite's
/// busy timeout: WriteLockTimeout (busy_is_unavailable).
template <class... Bindings>
bool run_reused(soci::session& sql, const std::string& query, Bindings&&... bindings) {
  ReusedStatement rs(sql, query);
  soci::statement& st = rs.get();
  (st.exchange(std::forward<Bindings>(bindings)), ...);
  st.define_and_bind();
  const bool got = busy_is_unavailable([&] { return st.execute(true); });
  rs.done();
  return got;
}

}  // namespace core::db
