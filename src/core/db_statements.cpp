#include "core/db_statements.hpp"

#include <list>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <utility>

#include <soci/sqlite3/soci-sqlite3.h>

namespace core::db {
namespace {

/// One session's prepared statements by SQL text, least recently used at the back. Used only by
/// the thread that leased the session, so it needs no lock of its own.
class Cache {
 public:
  explicit Cache(bool sqlite) : sqlite_(sqlite) {}

  /// The cached statement for `query`, removed from the cache while in use; null when absent.
  std::unique_ptr<soci::statement> take(const std::string& query) {
    auto it = index_.find(query);
    if (it == index_.end()) return nullptr;
    auto st = std::move(it->second->second);
    lru_.erase(it->second);
    index_.erase(it);
    return st;
  }

  /// Keeps `st` for `query` (most recently used), dropping the oldest beyond the bound.
  void put(const std::string& query, std::unique_ptr<soci::statement> st) {
    take(query);  // a nested use of the same text prepared its own: keep the newer one
    lru_.emplace_front(query, std::move(st));
    index_.emplace(lru_.front().first, lru_.begin());
    while (lru_.size() > kStatementsPerSession) {
      index_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }

  void clear() noexcept {
    index_.clear();
    lru_.clear();
  }

  std::size_t size() const { return lru_.size(); }
  bool sqlite() const { return sqlite_; }

 private:
  bool sqlite_;
  std::list<std::pair<std::string, std::unique_ptr<soci::statement>>> lru_;
  std::unordered_map<std::string, decltype(lru_)::iterator> index_;
};

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
  const bool sqlite = sql.get_backend_name() == "sqlite3";
  Registry& r = registry();
  std::unique_lock lk(r.mu);
  r.caches[&sql] = std::make_unique<Cache>(sqlite);
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

ReusedStatement::ReusedStatement(soci::session& sql, const std::string& query) : sql_(sql), query_(query) {
  Cache* cache = find_cache(sql);
  cacheable_ = cache != nullptr;
  if (cache) st_ = cache->take(query);
  if (!st_) {
    st_ = std::make_unique<soci::statement>(sql);
    st_->alloc();
    st_->prepare(query, cacheable_ ? soci::details::st_repeatable_query : soci::details::st_one_time_query);
  }
}

ReusedStatement::~ReusedStatement() {
  try {
    st_->bind_clean_up();
  } catch (...) {
    done_ = false;
  }
  if (!done_ || !cacheable_) return;
  Cache* cache = find_cache(sql_);
  if (!cache) return;  // forgotten meanwhile (the session is being closed)
  if (cache->sqlite()) {
    // An SQLite statement that is not reset keeps its read transaction (and with it an old
    // snapshot of the database) open for as long as it sits in the cache.
    auto* be = static_cast<soci::sqlite3_statement_backend*>(st_->get_backend());
    if (be && be->stmt_) ::sqlite_api::sqlite3_reset(be->stmt_);
  }
  cache->put(query_, std::move(st_));
}

}  // namespace core::db
