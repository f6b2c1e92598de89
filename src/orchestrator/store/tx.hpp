#pragma once
// Transactions and keyset pagination shared by the orchestrator repositories (the page
// request and cursor codec without SQL: cursor.hpp).

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "orchestrator/store/cursor.hpp"
#include "orchestrator/store/unit_of_work.hpp"

namespace core::db {
class WriteLock;  // core/db.hpp (SOCI stays below the repositories)
}

namespace orchestrator::store {

/// A write transaction that rolls back unless commit() is called. On SQLite it queues on the
/// process's write gate (core::db::WriteLock), then starts with BEGIN IMMEDIATE (takes the write
/// lock up front, so read-then-write transactions never fail with SQLITE_BUSY_SNAPSHOT); on
/// PostgreSQL a plain BEGIN (READ COMMITTED; conditional UPDATEs re-check rows after locks).
class Tx {
 public:
  /// Begins on the unit's connection (BEGIN IMMEDIATE on SQLite, BEGIN on PostgreSQL).
  explicit Tx(UnitOfWork& uow);
  ~Tx();
  Tx(const Tx&) = delete;
  Tx& operator=(const Tx&) = delete;
  /// Commits; throws the driver's error if the database refuses (a dead connection: see Store::run).
  void commit();

 private:
  UnitOfWork& uow_;
  std::unique_ptr<core::db::WriteLock> gate_;  ///< released after COMMIT or ROLLBACK (destroyed after the body)
  bool done_ = false;
};

/// Trims `rows` (fetched with limit+1) to the limit and sets next_cursor from the last kept
/// row; `key` extracts the CursorKey of a row.
template <class T, class KeyFn>
Page<T> make_page(std::vector<T> rows, int limit, KeyFn key) {
  Page<T> p;
  if (rows.size() > static_cast<std::size_t>(limit)) {
    rows.resize(static_cast<std::size_t>(limit));
    p.next_cursor = encode_cursor(key(rows.back()));
  }
  p.items = std::move(rows);
  return p;
}

/// Validates `req` (limit, cursor), calls `fetch(limit + 1, after)` -> std::vector<T> for the rows
/// after the cursor (nullopt = from the start), and returns the page. Throws domain::InvalidError
/// naming "limit" or "cursor".
template <class Fetch, class KeyFn>
auto fetch_page(const PageRequest& req, Fetch fetch, KeyFn key) {
  const int limit = checked_limit(req);
  std::optional<CursorKey> after;
  if (!req.cursor.empty()) after = decode_cursor(req.cursor);
  return make_page(fetch(limit + 1, after), limit, key);
}

}  // namespace orchestrator::store
