#include "core/db.hpp"

#include <algorithm>
#include <fstream>
#include <limits>
#include <map>
#include <regex>
#include <shared_mutex>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <vector>
#include <unistd.h>

#include <soci/postgresql/soci-postgresql.h>
#include <soci/sqlite3/soci-sqlite3.h>
#include <libpq-fe.h>

#include "core/db_statements.hpp"
#include "core/log.hpp"
#include "core/util.hpp"

namespace core::db {

namespace {

/// Which WriteGate each pooled SQLite session belongs to (WriteLock finds it from the session).
struct GateRegistry {
  std::shared_mutex mu;
  std::unordered_map<const soci::session*, WriteGate*> gates;
};

GateRegistry& gate_registry() {
  static GateRegistry* r = new GateRegistry;  // never destroyed: databases may close during exit
  return *r;
}

void set_gate(const soci::session& sql, WriteGate* gate) {
  GateRegistry& r = gate_registry();
  std::unique_lock lk(r.mu);
  if (gate) {
    r.gates[&sql] = gate;
  } else {
    r.gates.erase(&sql);
  }
}

/// The write gate of an SQLite file, shared by the Databases of this process opened on it (the
/// engine opens the same file for its pool, its event writer and its lease keeper).
std::shared_ptr<WriteGate> gate_for_file(const std::filesystem::path& file, const DbConfig& config) {
  static std::mutex mu;
  static auto* gates = new std::map<std::string, std::weak_ptr<WriteGate>>;  // never destroyed
  std::error_code ec;
  auto key = std::filesystem::weakly_canonical(file, ec);
  if (ec) key = std::filesystem::absolute(file);
  std::lock_guard lk(mu);
  std::erase_if(*gates, [](const auto& kv) { return kv.second.expired(); });  // files no Database has open
  auto& slot = (*gates)[key.string()];
  auto gate = slot.lock();
  if (!gate) {
    gate = std::make_shared<WriteGate>();
    gate->max_wait = config.busy_timeout;
    gate->max_waiters = config.max_write_waiters;
    gate->stall = config.write_stall;
    slot = gate;
  }
  return gate;
}

/// The steady clock now, in nanoseconds since its epoch (WriteGate::held_since_ns's unit).
std::int64_t steady_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// The gates the calling thread holds (WriteLock is reentrant per thread).
std::vector<WriteGate*>& gates_held() {
  thread_local std::vector<WriteGate*> held;
  return held;
}

WriteGate* gate_of(const soci::session& sql) {
  GateRegistry& r = gate_registry();
  std::shared_lock lk(r.mu);
  const auto it = r.gates.find(&sql);
  return it == r.gates.end() ? nullptr : it->second;
}

}  // namespace

namespace {

bool is_pg_url(const std::string& url) {
  return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
}

// Splits scheme://authority/path?query into parts; enough for libpq URIs (RFC 3986 §3).
struct UrlParts {
  std::string scheme_authority;  // "postgresql://user:pw@host:port"
  std::string path;              // "dbname" (without leading '/')
  std::string query;             // "sslmode=require" (without '?')
};
UrlParts split(const std::string& url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string::npos) throw std::invalid_argument("not a URL: " + redact(url));
  const auto path_start = url.find('/', scheme_end + 3);
  const auto q = url.find('?', scheme_end + 3);
  UrlParts p;
  if (path_start == std::string::npos || (q != std::string::npos && q < path_start)) {
    p.scheme_authority = url.substr(0, q);
  } else {
    p.scheme_authority = url.substr(0, path_start);
    p.path = url.substr(path_start + 1, q == std::string::npos ? std::string::npos : q - path_start - 1);
  }
  if (q != std::string::npos) p.query = url.substr(q + 1);
  return p;
}

// SOCI 4.0 rewrites the connection string it is given, which breaks libpq URIs;
// libpq's own parser turns the URI into "key='value'" pairs SOCI passes through intact.
std::string to_conninfo(const std::string& url) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(url.c_str(), &err);
  if (!opts) {
    std::string msg = err ? err : "unparsable";
    if (err) PQfreemem(err);
    throw std::invalid_argument("invalid PostgreSQL URL " + redact(url) + ": " + msg);
  }
  std::string out;
  for (auto* o = opts; o->keyword; ++o) {
    if (!o->val) continue;
    std::string v;
    for (const char* c = o->val; *c; ++c) {
      if (*c == '\\' || *c == '\'') v += '\\';
      v += *c;
    }
    out += std::string(out.empty() ? "" : " ") + o->keyword + "='" + v + "'";
  }
  PQconninfoFree(opts);
  return out;
}

void exec_script(soci::session& sql, const std::string& script) {
  // Statements end with ';' at the end of a line; "--" comment lines are skipped.
  std::istringstream in(script);
  std::string line, stmt;
  auto flush = [&] {
    const auto first = stmt.find_first_not_of(" \t\r\n");
    if (first != std::string::npos) sql << stmt;
    stmt.clear();
  };
  while (std::getline(in, line)) {
    const auto t = line.find_first_not_of(" \t");
    if (t != std::string::npos && line.compare(t, 2, "--") == 0) continue;
    stmt += line + "\n";
    const auto last = line.find_last_not_of(" \t\r");
    if (last != std::string::npos && line[last] == ';') {
      stmt.erase(stmt.find_last_of(';'));
      flush();
    }
  }
  flush();
}

}  // namespace

std::string redact(const std::string& url) {
  static const std::regex re(R"(^([a-z]+://[^:/@]+:)[^@]*@)");
  return std::regex_replace(url, re, "$1***@");
}

std::string database_of(const std::string& url) { return split(url).path; }

std::string with_database(const std::string& url, const std::string& dbname) {
  if (!is_pg_url(url)) throw std::invalid_argument("not a postgresql:// URL: " + redact(url));
  const auto p = split(url);
  return p.scheme_authority + "/" + dbname + (p.query.empty() ? "" : "?" + p.query);
}

void create_postgres_database(const std::string& url, const std::string& dbname) {
  static const std::regex ident("^[A-Za-z_][A-Za-z0-9_]{0,62}$");
  if (!std::regex_match(dbname, ident)) throw std::invalid_argument("invalid database name: " + dbname);
  try {
    soci::session sql(soci::postgresql, to_conninfo(with_database(url, "postgres")));
    int n = 0;
    sql << "SELECT COUNT(*) FROM pg_database WHERE datname = :n", soci::use(dbname), soci::into(n);
    if (n == 0) sql << "CREATE DATABASE " + dbname;
  } catch (const soci::soci_error& e) {
    // A concurrent creator may have won the race; that is fine.
    if (std::string(e.what()).find("already exists") != std::string::npos) return;
    throw std::runtime_error("cannot create database " + dbname + " on " + redact(url) + ": " + e.what());
  }
}

Database::Database(const DbConfig& config)
    : size_(std::max<std::size_t>(1, config.pool_size)), lease_timeout_(std::max(config.lease_timeout, std::chrono::milliseconds(0))) {
  pool_ = std::make_unique<soci::connection_pool>(size_);
  try {
    if (!config.url.empty()) {
      if (!is_pg_url(config.url))
        throw std::runtime_error("unsupported database URL (expected postgresql://...): " + redact(config.url));
      dialect_ = Dialect::postgres;
      std::string url = config.url;
      if (database_of(url).empty() && !config.default_database.empty())
        url = with_database(url, config.default_database);
      if (config.create_if_missing && !database_of(url).empty()) create_postgres_database(url, database_of(url));
      description_ = redact(url);
      std::string conninfo = to_conninfo(url);
      // A bounded connect (libpq waits for the OS otherwise: minutes for an unreachable host), so
      // a reconnect after a server restart, and a readiness ping, end in seconds. The URL may set its own.
      if (conninfo.find("connect_timeout=") == std::string::npos) conninfo += " connect_timeout='5'";
      // libpq prints the server's NOTICEs on stderr (e.g. "relation ... already exists, skipping"
      // for the migrations' CREATE TABLE IF NOT EXISTS); the server now sends WARNINGs and errors
      // only (errors reach the caller as exceptions, as before).
      if (conninfo.find("options=") == std::string::npos) conninfo += " options='-c client_min_messages=warning'";
      for (std::size_t i = 0; i < size_; ++i) pool_->at(i).open(soci::postgresql, conninfo);
    } else {
      dialect_ = Dialect::sqlite;
      if (config.sqlite_path.empty()) throw std::runtime_error("no database configured (empty URL and SQLite path)");
      if (config.sqlite_path.has_parent_path()) std::filesystem::create_directories(config.sqlite_path.parent_path());
      description_ = "sqlite:" + config.sqlite_path.string();
      // busy timeout in seconds: writers wait for each other instead of failing.
      const auto busy_seconds =
          std::max<long long>(1, std::chrono::duration_cast<std::chrono::seconds>(config.busy_timeout).count());
      const std::string conn = "db=\"" + config.sqlite_path.string() + "\" timeout=" + std::to_string(busy_seconds);
      for (std::size_t i = 0; i < size_; ++i) {
        auto& s = pool_->at(i);
        s.open(soci::sqlite3, conn);
        s << "PRAGMA journal_mode=WAL";
        s << "PRAGMA synchronous=NORMAL";
        s << "PRAGMA foreign_keys=ON";
      }
    }
  } catch (const soci::soci_error& e) {
    throw std::runtime_error("cannot open database " + (description_.empty() ? redact(config.url) : description_) +
                             ": " + e.what());
  }
  if (dialect_ == Dialect::sqlite) gate_ = gate_for_file(config.sqlite_path, config);
  for (std::size_t i = 0; i < size_; ++i) {
    register_session(pool_->at(i));
    if (gate_) set_gate(pool_->at(i), gate_.get());
  }
}

Database::~Database() {
  for (std::size_t i = 0; i < size_; ++i) {
    forget_session(pool_->at(i));
    if (gate_) set_gate(pool_->at(i), nullptr);
  }
}

WriteLock::WriteLock(soci::session& sql) {
  WriteGate* gate = gate_of(sql);
  if (!gate) return;
  auto& held = gates_held();
  if (std::find(held.begin(), held.end(), gate) != held.end()) return;  // an outer lock of this thread
  std::unique_lock<std::timed_mutex> lk(gate->mu, std::try_to_lock);
  if (!lk.owns_lock()) {
    // Counted before the check (fetch_add), so writers arriving together cannot all pass it.
    struct Waiting {
      std::atomic<std::size_t>& n;
      std::size_t before;
      explicit Waiting(std::atomic<std::size_t>& c) : n(c), before(c.fetch_add(1)) {}
      ~Waiting() { --n; }
    } waiting_here(gate->waiters);
    const std::int64_t since = gate->held_since_ns.load();
    if (gate->max_waiters > 0 && waiting_here.before >= gate->max_waiters && since != 0) {
      const auto held_for =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::nanoseconds(steady_ns() - since));
      if (held_for >= gate->stall) {
        throw WriteLockTimeout("the database is busy: its write lock has been held for " +
                                   std::to_string(held_for.count()) + " ms and " + std::to_string(waiting_here.before) +
                                   " writes already wait for it (another process on the file may hold it)",
                               std::chrono::seconds(2));
      }
    }
    if (!lk.try_lock_for(gate->max_wait)) {
      throw WriteLockTimeout("the database is busy: no write lock within " + std::to_string(gate->max_wait.count()) +
                                 " ms (a long write of this process, or another process on the file, holds it)",
                             std::chrono::seconds(2));
    }
  }
  held.push_back(gate);
  took_ns_ = steady_ns();
  if (gate->held_since_ns.load() == 0) gate->held_since_ns = took_ns_;  // else a stall handed on (release())
  lock_ = std::move(lk);
  gate_ = gate;
}

WriteLock::~WriteLock() { release(); }

bool is_sqlite_busy(const std::exception& e) noexcept {
  const auto* se = dynamic_cast<const soci::soci_error*>(&e);
  return se && std::string_view(se->what()).find("database is locked") != std::string_view::npos;
}

void WriteLock::release() noexcept {
  if (!lock_.owns_lock()) return;
  auto& held = gates_held();
  held.erase(std::remove(held.begin(), held.end(), gate_), held.end());
  // A stalled hold hands the stall's start on to a waiter; a short one (or one without waiters) ends it.
  const bool stalled = std::chrono::nanoseconds(steady_ns() - took_ns_) >= gate_->stall;
  if (!(stalled && gate_->waiters.load() > 0)) gate_->held_since_ns = 0;
  lock_.unlock();
  gate_ = nullptr;
}

bool Database::ping(std::chrono::milliseconds lease_timeout) noexcept { return check(lease_timeout) == Health::ok; }

Health Database::check(std::chrono::milliseconds lease_timeout) noexcept {
  try {
    Session lease(*this, lease_timeout);
    int one = 0;
    lease.sql() << "SELECT 1", soci::into(one);
    return one == 1 ? Health::ok : Health::unreachable;
  } catch (const PoolTimeout&) {
    return Health::busy;
  } catch (...) {
    return Health::unreachable;
  }
}

const char* to_string(Health h) noexcept {
  switch (h) {
    case Health::ok:
      return "ok";
    case Health::busy:
      return "busy";
    case Health::unreachable:
      return "unreachable";
  }
  return "unreachable";
}

void ensure_connected(soci::session& sql) {
  if (sql.is_connected()) return;
  log::warn("database_reconnect", {{"reason", "connection broken"}});
  forget_statements(sql);  // they belong to the broken connection
  sql.reconnect();
}

Session::Session(Database& db) : pool_(db.pool()) {
  if (db.lease_timeout().count() > 0) {
    lease_within(db.lease_timeout());
  } else {
    pos_ = pool_.lease();
  }
  sql_ = &pool_.at(pos_);
  check();
}

Session::Session(Database& db, std::chrono::milliseconds timeout) : pool_(db.pool()) {
  lease_within(timeout);
  sql_ = &pool_.at(pos_);
  check();
}

void Session::lease_within(std::chrono::milliseconds timeout) {
  const auto ms = std::clamp<std::chrono::milliseconds::rep>(timeout.count(), 0, std::numeric_limits<int>::max());
  if (!pool_.try_lease(pos_, static_cast<int>(ms))) {
    throw PoolTimeout("no database session free within " + std::to_string(ms) + " ms");
  }
}

Session::~Session() { pool_.give_back(pos_); }

void Session::check() {
  try {
    ensure_connected(*sql_);
  } catch (...) {
    pool_.give_back(pos_);  // the destructor does not run when a constructor throws
    throw;
  }
}

int migrate(Database& db, const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) throw std::runtime_error("migrations directory not found: " + dir.string());
  static const std::regex name_re(R"(^(\d+)_([A-Za-z0-9_\-]+)\.sql$)");
  std::vector<std::pair<long, fs::path>> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::smatch m;
    const std::string n = e.path().filename().string();
    if (e.is_regular_file() && std::regex_match(n, m, name_re)) files.emplace_back(std::stol(m[1]), e.path());
  }
  std::sort(files.begin(), files.end());
  for (std::size_t i = 1; i < files.size(); ++i)
    if (files[i].first == files[i - 1].first)
      throw std::runtime_error("two migrations share version " + std::to_string(files[i].first) + " in " + dir.string());

  soci::session sql(db.pool());
  const bool pg = db.dialect() == Dialect::postgres;
  // One migrator at a time across replicas (PostgreSQL advisory lock; SQLite serialises writers itself).
  if (pg) sql << "SELECT pg_advisory_lock(727274)";
  int applied = 0;
  try {
    sql << "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, "
           "applied_at TEXT NOT NULL)";
    for (const auto& [version, path] : files) {
      int n = 0;
      long long v = version;
      sql << "SELECT COUNT(*) FROM schema_migrations WHERE version = :v", soci::use(v), soci::into(n);
      if (n > 0) continue;
      std::ifstream in(path);
      std::stringstream buf;
      buf << in.rdbuf();
      soci::transaction tr(sql);
      try {
        exec_script(sql, buf.str());
        const std::string name = path.filename().string();
        const std::string at = now_rfc3339();
        sql << "INSERT INTO schema_migrations (version, name, applied_at) VALUES (:v, :n, :a)", soci::use(v),
            soci::use(name), soci::use(at);
        tr.commit();
      } catch (const std::exception& e) {
        throw std::runtime_error("migration " + path.string() + " failed: " + e.what());
      }
      ++applied;
      log::info("migration_applied", {{"file", path.filename().string()}, {"database", db.describe()}});
    }
  } catch (...) {
    if (pg) { try { sql << "SELECT pg_advisory_unlock(727274)"; } catch (...) {} }
    throw;
  }
  if (pg) sql << "SELECT pg_advisory_unlock(727274)";
  return applied;
}

std::filesystem::path migrations_dir(const std::string& service, Dialect dialect) {
  namespace fs = std::filesystem;
  const std::string sub = service + "/" + (dialect == Dialect::postgres ? "postgres" : "sqlite");
  std::vector<fs::path> roots;
  if (const char* env = std::getenv("MIGRATIONS_DIR"); env && *env) roots.emplace_back(env);
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) roots.push_back(exe.parent_path().parent_path().parent_path() / "migrations");
  roots.emplace_back("migrations");
  roots.emplace_back("/usr/share/agentic-ide/migrations");
  for (const auto& r : roots)
    if (fs::is_directory(r / sub)) return r / sub;
  throw std::runtime_error("migrations for " + sub + " not found (set MIGRATIONS_DIR)");
}

}  // namespace core::db
