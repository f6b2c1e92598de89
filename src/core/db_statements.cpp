#include "core/db_statements.hpp"

#include <cctype>
#include <list>
#include <mutex>
#include <shared_mutex>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <soci/postgresql/soci-postgresql.h>
#include <soci/sqlite3/soci-sqlite3.h>
#include <libpq-fe.h>

namespace core::db {
namespace detail {

/// One session's prepared statements by SQL text, least recently used at the back. Used only by
/// the thread that leased the session, so it needs no lock of its own. It lives as long as the
/// session's registration (Database's lifetime), so a ReusedStatement keeps a plain pointer.
class StatementCache {
 public:
  explicit StatementCache(soci::session& sql) : sql_(sql), sqlite_(sql.get_backend_name() == "sqlite3") {}

  /// The cached statement for `query`, removed from the cache while in use; null when absent.
  std::unique_ptr<soci::statement> take(const std::string& query) {
    auto it = index_.find(query);
    if (it == index_.end()) return nullptr;
    auto st = std::move(it->second->second);
    lru_.erase(it->second);
    index_.erase(it);
    return st;
  }

  /// Keeps `st` for `query` (most recently used), dropping the oldest beyond the bound. On an
  /// allocation failure `st` is destroyed and the cache stays consistent.
  void put(const std::string& query, std::unique_ptr<soci::statement>& st) {
    take(query);  // a nested use of the same text prepared its own: keep the newer one
    lru_.emplace_front(query, std::move(st));
    try {
      index_.emplace(lru_.front().first, lru_.begin());
    } catch (...) {
      lru_.pop_front();
      throw;
    }
    while (lru_.size() > kStatementsPerSession) {
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }

  /// PostgreSQL: true when the connection is inside a transaction block (one that failed
  /// included), where a DEALLOCATE would be refused (SQLSTATE 25P02) and the statement leaked.
  bool in_transaction() {
    if (sqlite_) return false;
    auto* be = static_cast<soci::postgresql_session_backend*>(sql_.get_backend());
    return be && be->conn_ && PQtransactionStatus(be->conn_) != PQTRANS_IDLE;
  }

  /// Destroys `st` now, or (PostgreSQL, inside a transaction) once the connection is idle.
  void discard(std::unique_ptr<soci::statement> st) {
    if (!in_transaction()) return;  // `st` is destroyed on return: DEALLOCATE works now
    parked_.push_back(std::move(st));
  }

  /// Destroys the parked statements once the connection is out of any transaction.
  void flush_parked() {
    if (!parked_.empty() && !in_transaction()) parked_.clear();
  }

  void clear() noexcept {
    index_.clear();
    lru_.clear();
    parked_.clear();
  }

  std::size_t size() const { return lru_.size(); }
  bool sqlite() const { return sqlite_; }

 private:
  soci::session& sql_;
  bool sqlite_;
  std::list<std::pair<std::string, std::unique_ptr<soci::statement>>> lru_;
  std::unordered_map<std::string, decltype(lru_)::iterator> index_;
  std::vector<std::unique_ptr<soci::statement>> parked_;  ///< failed, waiting to be deallocated
};

}  // namespace detail

namespace {

using Cache = detail::StatementCache;

struct Registry {
  std::shared_mutex mu;
  std::unordered_map<const soci::session*, std::unique_ptr<Cache>> caches;
};

Registry& registry() {
  static Registry* r = new Registry;  // never destroyed: sessions may be forgotten during exit
  return *r;
}

Cache* find_cache(const soci::session& sql) {
  Registry& r = registry();
  std::shared_lock lk(r.mu);
  auto it = r.caches.find(&sql);
  return it == r.caches.end() ? nullptr : it->second.get();
}

}  // namespace

void register_session(soci::session& sql) {
  auto cache = std::make_unique<Cache>(sql);
  Registry& r = registry();
  std::unique_lock lk(r.mu);
  r.caches[&sql] = std::move(cache);
}

void forget_session(soci::session& sql) noexcept {
  std::unique_ptr<Cache> gone;
  {
    Registry& r = registry();
    std::unique_lock lk(r.mu);
    auto it = r.caches.find(&sql);
    if (it == r.caches.end()) return;
    gone = std::move(it->second);
    r.caches.erase(it);
  }
  gone.reset();  // finalizes the statements outside the registry's lock
}

void forget_statements(soci::session& sql) noexcept {
  if (Cache* c = find_cache(sql)) c->clear();
}

std::size_t cached_statements(soci::session& sql) {
  Cache* c = find_cache(sql);
  return c ? c->size() : 0;
}

bool is_write(const std::string& query) noexcept {
  std::size_t i = 0;
  while (i < query.size() && std::isspace(static_cast<unsigned char>(query[i]))) ++i;
  std::size_t j = i;
  while (j < query.size() && std::isalpha(static_cast<unsigned char>(query[j]))) ++j;
  const std::string_view word(query.data() + i, j - i);
  const auto is = [&](std::string_view w) {
    if (word.size() != w.size()) return false;
    for (std::size_t k = 0; k < w.size(); ++k)
      if (std::toupper(static_cast<unsigned char>(word[k])) != w[k]) return false;
    return true;
  };
  return is("INSERT") || is("UPDATE") || is("DELETE") || is("REPLACE");
}

ReusedStatement::ReusedStatement(soci::session& sql, const std::string& query) : sql_(sql), query_(query) {
  cache_ = find_cache(sql);
  if ((!cache_ || cache_->sqlite()) && is_write(query)) gate_.emplace(sql);
  if (cache_) {
    cache_->flush_parked();
    st_ = cache_->take(query);
    // Preparing logs the query to the session's logger (soci calls it from prepare only);
    // a reused statement is logged the same way, so a logger sees every statement run (the
    // orchestrator's unit of work tells writes from reads by it).
    if (st_) sql.log_query(query);
  }
  if (!st_) {
    st_ = std::make_unique<soci::statement>(sql);
    st_->alloc();
    st_->prepare(query, cache_ ? soci::details::st_repeatable_query : soci::details::st_one_time_query);
  }
}

ReusedStatement::~ReusedStatement() {
  try {
    st_->bind_clean_up();
  } catch (...) {
    done_ = false;
  }
  if (!cache_) return;
  Cache* cache = cache_;
  try {
    if (!done_) {
      cache->discard(std::move(st_));
      return;
    }
    if (cache->sqlite()) {
      // An SQLite statement that is not reset keeps its read transaction (and with it an old
      // snapshot of the database) open for as long as it sits in the cache.
      auto* be = static_cast<soci::sqlite3_statement_backend*>(st_->get_backend());
      if (be && be->stmt_) ::sqlite_api::sqlite3_reset(be->stmt_);
    } else {
      // The PostgreSQL backend keeps the last result set until the next execution: free it,
      // or a cached statement would hold its largest result (a file map, an event page).
      auto* be = static_cast<soci::postgresql_statement_backend*>(st_->get_backend());
      if (be) be->result_.reset();
    }
    cache->put(query_, st_);
  } catch (...) {
    // Out of memory while caching: the statement is simply not kept (st_ destroys it).
  }
}

}  // namespace core::db
