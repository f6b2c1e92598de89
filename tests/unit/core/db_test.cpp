#include "core/db.hpp"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include "core/db_statements.hpp"
#include "core/util.hpp"
#include "db_fixture.hpp"

namespace fs = std::filesystem;

using core_db_test::DbTest;
using core_db_test::Target;

TEST_P(DbTest, MigratesInOrderOnceAndRecordsVersions) {
  write_migration("0002_more.sql", "ALTER TABLE t ADD COLUMN extra TEXT;\n");
  write_migration("0001_init.sql",
                  "-- first table\nCREATE TABLE t (id INTEGER PRIMARY KEY,\n  name TEXT NOT NULL);\n"
                  "INSERT INTO t (id, name) VALUES (1, 'a;b');\n");
  core::db::Database db(cfg_);
  EXPECT_TRUE(db.ping());
  EXPECT_EQ(core::db::migrate(db, dir_ / "migrations"), 2);
  EXPECT_EQ(core::db::migrate(db, dir_ / "migrations"), 0);
  soci::session sql(db.pool());
  std::string name;
  sql << "SELECT name FROM t WHERE id = 1", soci::into(name);
  EXPECT_EQ(name, "a;b");
  int n = 0;
  sql << "SELECT COUNT(*) FROM schema_migrations", soci::into(n);
  EXPECT_EQ(n, 2);
}

TEST_P(DbTest, FailedMigrationRollsBackAndNamesFile) {
  write_migration("0001_ok.sql", "CREATE TABLE a (id INTEGER);\n");
  write_migration("0002_bad.sql", "CREATE TABLE b (id INTEGER);\nTHIS IS NOT SQL;\n");
  core::db::Database db(cfg_);
  try {
    core::db::migrate(db, dir_ / "migrations");
    FAIL() << "expected failure";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("0002_bad.sql"), std::string::npos) << e.what();
  }
  soci::session sql(db.pool());
  int n = 0;
  sql << "SELECT COUNT(*) FROM schema_migrations", soci::into(n);
  EXPECT_EQ(n, 1);
  if (db.dialect() == core::db::Dialect::postgres) {
    // DDL is transactional in PostgreSQL: table b must not exist.
    sql << "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = 'b'", soci::into(n);
    EXPECT_EQ(n, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Dialects, DbTest, core_db_test::dialects(),
                         [](const auto& info) { return info.param.name; });

// DbConfig::lease_timeout bounds Session(db): with every session leased, the next one throws
// PoolTimeout (a core::Unavailable: HTTP 503) after the wait instead of hanging.
TEST_P(DbTest, LeaseTimeoutBoundsTheWaitForASession) {
  cfg_.pool_size = 1;
  cfg_.lease_timeout = std::chrono::milliseconds(50);
  core::db::Database db(cfg_);
  EXPECT_EQ(db.check(std::chrono::milliseconds(50)), core::db::Health::ok);
  {
    core::db::Session held(db);
    EXPECT_EQ(db.check(std::chrono::milliseconds(20)), core::db::Health::busy);
    EXPECT_FALSE(db.ping(std::chrono::milliseconds(20)));
    EXPECT_STREQ(core::db::to_string(core::db::Health::busy), "busy");
    EXPECT_THROW(core::db::Session second(db), core::db::PoolTimeout);
    try {
      core::db::Session second(db, std::chrono::milliseconds(10));
      FAIL() << "leased a session from an exhausted pool";
    } catch (const core::Unavailable& e) {
      EXPECT_NE(std::string(e.what()).find("10 ms"), std::string::npos) << e.what();
    }
  }
  core::db::Session again(db);  // given back: leased at once
  int one = 0;
  again.sql() << "SELECT 1", soci::into(one);
  EXPECT_EQ(one, 1);
}

// The engine opens one SQLite file three times (pool, event writer, lease keeper): their writers
// must queue on one gate, or a writer of one pool meets SQLite's sleeping busy handler again.
// A write inside a write lock of the same thread does not wait for itself; PostgreSQL has no gate.
TEST_P(DbTest, WritersOfOneSqliteFileQueueOnOneGateAcrossDatabases) {
  cfg_.pool_size = 1;
  core::db::Database a(cfg_), b(cfg_), c(cfg_);
  core::db::Session sa(a), sb(b);
  sa.sql() << "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY)";
  if (GetParam().postgres) {
    core::db::WriteLock gate(sa.sql());
    EXPECT_FALSE(gate.holds());
    return;
  }
  auto gate = std::make_unique<core::db::WriteLock>(sa.sql());
  ASSERT_TRUE(gate->holds());
  {
    // Same thread, other Database of the file: no second wait, and its write goes through.
    core::db::WriteLock inner(sb.sql());
    EXPECT_FALSE(inner.holds());
    core::db::run_reused(sb.sql(), "INSERT INTO kv (k) VALUES ('same-thread')");
  }
  std::atomic<bool> acquired{false};
  std::thread other([&] {
    core::db::Session sc(c);
    core::db::run_reused(sc.sql(), "INSERT INTO kv (k) VALUES ('other-thread')");  // a write: takes the gate
    acquired = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(acquired.load()) << "a writer of another Database of the same file did not wait for the gate";
  gate.reset();
  other.join();
  EXPECT_TRUE(acquired.load());
  long long n = 0;
  sa.sql() << "SELECT COUNT(*) FROM kv", soci::into(n);
  EXPECT_EQ(n, 2);
}

// A writer waits at most DbConfig::busy_timeout for the in-process lock, then fails with a
// core::Unavailable (503) that names the wait; SQLite's own busy error is recognised.
TEST_P(DbTest, WriteLockWaitIsBoundedByTheBusyTimeout) {
  if (GetParam().postgres) GTEST_SKIP() << "PostgreSQL has no write lock of its own";
  cfg_.pool_size = 2;
  cfg_.busy_timeout = std::chrono::milliseconds(300);
  core::db::Database db(cfg_);
  core::db::Session a(db), b(db);
  a.sql() << "CREATE TABLE kv (k TEXT PRIMARY KEY)";
  core::db::WriteLock held(a.sql());
  std::thread other([&] {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      core::db::WriteLock waiting(b.sql());
      ADD_FAILURE() << "took a held write lock";
    } catch (const core::Unavailable& e) {
      EXPECT_NE(dynamic_cast<const core::db::WriteLockTimeout*>(&e), nullptr);
      EXPECT_NE(std::string(e.what()).find("300 ms"), std::string::npos) << e.what();
    }
    EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(250));
  });
  other.join();
  held.release();
  // SQLite's own lock held by a connection of no Database: the busy timeout passes; a reused
  // write (execute_reused, run_reused) and busy_is_unavailable report it as WriteLockTimeout.
  soci::session outside(soci::sqlite3, "db=\"" + cfg_.sqlite_path.string() + "\" timeout=1");
  outside << "BEGIN IMMEDIATE";
  EXPECT_THROW(core::db::run_reused(b.sql(), "INSERT INTO kv (k) VALUES ('x')"), core::db::WriteLockTimeout);
  const std::string key = "x";  // named: SOCI reads a binding when the statement runs
  EXPECT_THROW(core::db::execute_reused(b.sql(), "DELETE FROM kv WHERE k = :k",
                                        [&](soci::statement& st) { st.exchange(soci::use(key)); }),
               core::db::WriteLockTimeout);
  try {
    b.sql() << "INSERT INTO kv (k) VALUES ('y')";  // a plain statement: SQLite's own error
    ADD_FAILURE() << "wrote while another connection held SQLite's lock";
  } catch (const std::exception& e) {
    EXPECT_TRUE(core::db::is_sqlite_busy(e)) << e.what();
    EXPECT_THROW(core::db::busy_is_unavailable([&]() -> void { throw; }), core::db::WriteLockTimeout);
  }
  outside << "ROLLBACK";
  core::db::run_reused(b.sql(), "INSERT INTO kv (k) VALUES ('x')");
  EXPECT_FALSE(core::db::is_sqlite_busy(std::runtime_error("database is locked")));  // not a SOCI error
}

// The bulkhead: once the write lock has been held longer than write_stall and max_write_waiters
// threads wait for it, a further writer fails at once (503) instead of taking one more thread.
// A stalled holder hands the stall's start on to the waiter that takes the lock next, so the
// bulkhead holds across handovers; the first short hold ends the stall.
TEST_P(DbTest, AStalledWriteLockTurnsAwayWritersBeyondTheWaiterLimit) {
  if (GetParam().postgres) GTEST_SKIP() << "PostgreSQL has no write lock of its own";
  using namespace std::chrono_literals;
  cfg_.pool_size = 4;
  cfg_.max_write_waiters = 1;
  cfg_.write_stall = 100ms;
  cfg_.busy_timeout = 3000ms;  // a writer that waits by mistake fails the test in 3 s, not 30
  core::db::Database db(cfg_);
  core::db::Session a(db), b(db), c(db), d(db);
  // Tries to take the lock on its own thread; true when it was turned away within 500 ms.
  const auto turned_away_at_once = [&](core::db::Session& s) {
    bool away = false;
    std::thread t([&] {
      const auto t0 = std::chrono::steady_clock::now();
      try {
        core::db::WriteLock w(s.sql());
      } catch (const core::db::WriteLockTimeout& e) {
        away = std::string(e.what()).find("writes already wait") != std::string::npos &&
               std::chrono::steady_clock::now() - t0 < 500ms;
      }
    });
    t.join();
    return away;
  };
  auto held = std::make_unique<core::db::WriteLock>(a.sql());
  std::atomic<bool> first_got_it{false}, let_go{false};
  std::thread first([&] {  // waits, then holds the lock until let_go
    core::db::WriteLock w(b.sql());
    first_got_it = true;
    while (!let_go) std::this_thread::sleep_for(5ms);
  });
  std::this_thread::sleep_for(300ms);  // held 300 ms (> the stall), one writer waiting
  EXPECT_TRUE(turned_away_at_once(c)) << "a writer beyond the limit waited for a stalled lock";
  held.reset();  // the stalled holder hands over to the waiter
  while (!first_got_it) std::this_thread::sleep_for(1ms);
  std::atomic<bool> second_got_it{false};
  std::thread second([&] {  // the one waiter allowed behind the new holder
    core::db::WriteLock w(c.sql());
    second_got_it = true;
  });
  std::this_thread::sleep_for(50ms);  // the new holder has held the lock 50 ms (< the stall) itself
  EXPECT_TRUE(turned_away_at_once(d)) << "the stall was forgotten at the handover";
  let_go = true;  // a short hold: the stall ends
  first.join();
  second.join();
  EXPECT_TRUE(second_got_it.load());
  core::db::WriteLock free_again(d.sql());  // nobody holds it: taken at once
  EXPECT_TRUE(free_again.holds());
}

TEST(DbWrites, StatementsThatTakeTheWriteLockAreKnownByTheirFirstWord) {
  for (const char* q :
       {"INSERT INTO t VALUES (1)", "  update t SET a = 1", "\nDELETE FROM t", "Replace INTO t VALUES (1)"})
    EXPECT_TRUE(core::db::is_write(q)) << q;
  for (const char* q : {"SELECT 1", "", "   ", "UPDATED", "WITH x AS (SELECT 1) SELECT * FROM x", "BEGIN IMMEDIATE"})
    EXPECT_FALSE(core::db::is_write(q)) << q;
}

TEST(DbUrl, RedactsPasswordsAndSwapsDatabase) {
  EXPECT_EQ(core::db::redact("postgresql://u:secret@h:5432/db"), "postgresql://u:***@h:5432/db");
  EXPECT_EQ(core::db::with_database("postgresql://u@h:1/x?sslmode=require", "y"), "postgresql://u@h:1/y?sslmode=require");
  EXPECT_EQ(core::db::with_database("postgresql://u@h:1", "y"), "postgresql://u@h:1/y");
  EXPECT_EQ(core::db::database_of("postgresql://u@h:1/abc?x=1"), "abc");
  EXPECT_THROW(core::db::with_database("mysql://h/x", "y"), std::invalid_argument);
}

TEST(DbUrl, UnreachableDatabaseThrowsWithoutPassword) {
  core::db::DbConfig cfg;
  cfg.url = "postgresql://u:topsecret@127.0.0.1:1/x?connect_timeout=2";
  cfg.pool_size = 1;
  try {
    core::db::Database db(cfg);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).find("topsecret"), std::string::npos) << e.what();
  }
}

// Regression: pooled PostgreSQL sessions were never re-opened, so after a server restart every
// query on them kept failing. Terminating the pool's backends simulates the restart.
TEST(DbReconnect, PooledSessionsReconnectAfterBackendsAreTerminated) {
  const auto pg = core_db_test::fresh_postgres(3);
  if (!pg) GTEST_SKIP() << "TEST_PG_URL not set";
  core::db::DbConfig cfg = *pg;
  core::db::Database db(cfg);
  ASSERT_TRUE(db.ping());
  {
    core::db::Session a(db), b(db), c(db);  // touch every pooled connection
    int one = 0;
    for (auto* s : {&a, &b, &c}) s->sql() << "SELECT 1", soci::into(one);
  }
  cfg.pool_size = 1;
  core::db::Database admin(cfg);
  int killed = 0;
  {
    core::db::Session lease(admin);
    lease.sql() << "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
                   "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        soci::into(killed);
  }
  EXPECT_EQ(killed, 3);
  EXPECT_TRUE(db.ping());
  {
    core::db::Session a(db), b(db), c(db);
    for (auto* s : {&a, &b, &c}) {
      int two = 0;
      EXPECT_NO_THROW((s->sql() << "SELECT 2", soci::into(two)));
      EXPECT_EQ(two, 2);
    }
    // Every session is leased: ping gives up after its lease timeout instead of hanging.
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(db.ping(std::chrono::milliseconds(200)));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  }
  EXPECT_TRUE(db.ping());
}
