// Units of work: statement classification, the retry-once / no-retry-after-write decision, the
// bounded wait for a pooled connection (SQLite and PostgreSQL), and real dead connections
// (PostgreSQL backends terminated mid-unit with pg_terminate_backend).

#include "orchestrator/store/unit_of_work.hpp"

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "../domain/db_fixture.hpp"
#include "core/util.hpp"
#include "orchestrator/store/repositories.hpp"
#include "orchestrator/store/tx.hpp"

#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>
#include <filesystem>
#include <memory>

using namespace orchestrator::store;
using namespace std::chrono_literals;

TEST(StatementKind, ClassifiesByTheFirstKeyword) {
  EXPECT_EQ(classify_statement("SELECT 1"), StatementKind::read);
  EXPECT_EQ(classify_statement("  select id FROM users WHERE id = :id FOR UPDATE"), StatementKind::read);
  EXPECT_EQ(classify_statement("-- note\n/* x */ SELECT 1"), StatementKind::read);
  EXPECT_EQ(classify_statement("WITH t AS (SELECT 1) SELECT * FROM t"), StatementKind::read);
  EXPECT_EQ(classify_statement("WITH t AS (UPDATE proposals SET x = 1 RETURNING id) SELECT * FROM t"),
            StatementKind::write);
  EXPECT_EQ(classify_statement("insert into users VALUES (1)"), StatementKind::write);
  EXPECT_EQ(classify_statement("UPDATE proposals SET lease_owner = NULL RETURNING id"), StatementKind::write);
  EXPECT_EQ(classify_statement("DELETE FROM drafts"), StatementKind::write);
  EXPECT_EQ(classify_statement("CREATE TABLE t (x INT)"), StatementKind::write);
  EXPECT_EQ(classify_statement("something unknown"), StatementKind::write);  // unknown counts as a write
  EXPECT_EQ(classify_statement("BEGIN IMMEDIATE"), StatementKind::begin);
  EXPECT_EQ(classify_statement("start transaction"), StatementKind::begin);
  EXPECT_EQ(classify_statement("COMMIT"), StatementKind::commit);
  EXPECT_EQ(classify_statement("ROLLBACK"), StatementKind::rollback);
  EXPECT_EQ(classify_statement("ROLLBACK TO SAVEPOINT a"), StatementKind::read);
}

// The rule: re-running is safe unless a write may have been committed.
TEST(RetryDecision, OnlyUncommittedWritesMayBeRunAgain) {
  auto after = [](std::initializer_list<const char*> statements) {
    WriteLog log;
    for (const char* s : statements) log.record(s);
    return retry_is_safe(log);
  };
  EXPECT_TRUE(after({}));                                                  // died leasing / first statement
  EXPECT_TRUE(after({"SELECT 1", "SELECT 2"}));                            // reads only
  EXPECT_TRUE(after({"BEGIN", "SELECT 1", "INSERT INTO t VALUES (1)"}));  // open transaction: rolled back
  EXPECT_TRUE(after({"BEGIN", "UPDATE t SET x = 1", "ROLLBACK", "SELECT 1"}));
  EXPECT_TRUE(after({"BEGIN", "SELECT 1", "COMMIT", "SELECT 1"}));  // read-only transaction committed
  EXPECT_FALSE(after({"INSERT INTO t VALUES (1)"}));                // autocommit write
  EXPECT_FALSE(after({"SELECT 1", "UPDATE t SET x = 1", "SELECT 2"}));
  EXPECT_FALSE(after({"BEGIN", "INSERT INTO t VALUES (1)", "COMMIT"}));  // the COMMIT's answer may be lost
  EXPECT_FALSE(after({"BEGIN", "INSERT INTO t VALUES (1)", "COMMIT", "BEGIN", "SELECT 1"}));
}

template <class Backend>
class Units : public orchestrator::testing::DbTest<Backend> {
 protected:
  UserRecord user() {
    return {core::uuid4(), "uow-" + core::random_hex(6) + "@example.com", "U", "hash", core::now_rfc3339()};
  }
};
TYPED_TEST_SUITE(Units, orchestrator::testing::Backends, orchestrator::testing::BackendNames);

// The write log sees what the repositories really send, on both dialects: also the second
// time, when the session runs the same statements from its cache of prepared statements
// (core::db::ReusedStatement) instead of preparing them again.
TYPED_TEST(Units, WriteLogFollowsTheStatementsSent) {
  Store units(this->db());
  for (int round = 0; round < 2; ++round) {
    const auto u = this->user();
    units.run([&](UnitOfWork& uow) {
      EXPECT_FALSE(users::find_by_email(uow, u.email));
      EXPECT_TRUE(retry_is_safe(uow.writes()));
      {
        Tx tx(uow);
        users::insert(uow, u);
        EXPECT_TRUE(uow.writes().transaction_wrote) << "round " << round;
        EXPECT_TRUE(retry_is_safe(uow.writes()));
        tx.commit();
      }
      EXPECT_FALSE(retry_is_safe(uow.writes())) << "round " << round;
    });
    EXPECT_TRUE(units.run([&](UnitOfWork& uow) { return users::find_by_id(uow, u.id); }));
  }
}

// Errors that are not a lost connection propagate unchanged, once (no retry).
TYPED_TEST(Units, OtherErrorsAreNotRetried) {
  Store units(this->db());
  int calls = 0;
  EXPECT_THROW(units.run([&](UnitOfWork& uow) {
    ++calls;
    users::find_by_id(uow, "x");
    throw std::logic_error("domain says no");
  }),
               std::logic_error);
  EXPECT_EQ(calls, 1);
  // A constraint violation (unknown owner) is the driver's error, not a lost connection: once.
  const auto u = this->user();
  calls = 0;
  try {
    units.run([&](UnitOfWork& uow) {
      ++calls;
      workflows::insert(uow, {core::uuid4(), "w", "", u.id, u.created_at, u.created_at, "owner"});
    });
    FAIL() << "a workflow of an unknown owner was stored";
  } catch (const DatabaseUnavailable&) {
    FAIL() << "a constraint violation was taken for an outage";
  } catch (const std::exception& e) {
    EXPECT_TRUE(is_database_error(e)) << e.what();
    EXPECT_FALSE(is_connection_lost(e)) << e.what();
  }
  EXPECT_EQ(calls, 1);
}

// --db-wait-ms: with every pooled connection leased, a unit gives up after the wait with a 503-able
// DatabaseUnavailable instead of hanging, and works again once a connection is free.
TYPED_TEST(Units, PoolWaitIsBounded) {
  std::string handle;
  auto db = TypeParam::open(handle);  // creates the SQLite directory / the PostgreSQL database
  // A small pool of its own with a short wait: the shared fixture database keeps its defaults.
  core::db::DbConfig cfg;
  if (std::string(TypeParam::kName) == "sqlite") {
    cfg.sqlite_path = std::filesystem::path(handle) / "wait.db";
  } else {
    cfg.url = core::db::with_database(std::getenv("TEST_PG_URL"), handle);
  }
  cfg.pool_size = 1;
  cfg.lease_timeout = 100ms;
  {
    core::db::Database small(cfg);
    Store units(small);
    int ran = 0;
    {
      core::db::Session held(small);
      const auto t0 = std::chrono::steady_clock::now();
      try {
        units.run([&](UnitOfWork&) { ++ran; });
        FAIL() << "ran a unit without a free connection";
      } catch (const DatabaseUnavailable& e) {
        EXPECT_FALSE(e.maybe_written());
        EXPECT_GE(e.retry_after().count(), 1);
        EXPECT_NE(std::string(e.what()).find("busy"), std::string::npos) << e.what();
      }
      EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
      EXPECT_EQ(ran, 0);
    }
    units.run([&](UnitOfWork&) { ++ran; });
    EXPECT_EQ(ran, 1);
  }
  db.reset();
  TypeParam::drop(handle);
}

// SQLite: a write whose lock another process holds past the busy timeout is a 503-able
// DatabaseUnavailable ("busy", nothing changed), not an unexpected error (500); this process's own
// writers waiting for the in-process lock past the timeout get the same.
TEST(UnitsOnSqlite, WriteLockHeldPastTheBusyTimeoutIsDatabaseUnavailable) {
  const auto dir = std::filesystem::temp_directory_path() / ("busy-" + core::random_hex(6));
  std::filesystem::create_directories(dir);
  core::db::DbConfig cfg;
  cfg.sqlite_path = dir / "busy.db";
  cfg.pool_size = 2;
  cfg.busy_timeout = 1s;
  {
    core::db::Database db(cfg);
    Store units(db);
    units.run([](UnitOfWork& uow) { uow.sql() << "CREATE TABLE t (x INTEGER)"; });
    auto write = [&units] {
      units.run([](UnitOfWork& uow) {
        Tx tx(uow);
        uow.sql() << "INSERT INTO t (x) VALUES (1)";
        tx.commit();
      });
    };
    auto expect_busy = [&](const char* what) {
      const auto t0 = std::chrono::steady_clock::now();
      try {
        write();
        ADD_FAILURE() << what << ": wrote while the lock was held";
      } catch (const DatabaseUnavailable& e) {
        EXPECT_FALSE(e.maybe_written()) << what;
        EXPECT_NE(std::string(e.what()).find("busy"), std::string::npos) << what << ": " << e.what();
      }
      EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s) << what;
    };
    {
      // Another process's connection (not pooled by any Database here) holds SQLite's write lock.
      soci::session other(soci::sqlite3, "db=\"" + cfg.sqlite_path.string() + "\" timeout=1");
      other << "BEGIN IMMEDIATE";
      expect_busy("SQLite's lock held elsewhere");
      other << "ROLLBACK";
    }
    {
      // A writer of this process holds the in-process lock.
      core::db::Session held(db);
      auto lock = std::make_unique<core::db::WriteLock>(held.sql());
      std::exception_ptr thrown;
      std::thread t([&] {
        try {
          expect_busy("the in-process lock held");
        } catch (...) {
          thrown = std::current_exception();
        }
      });
      t.join();
      EXPECT_FALSE(thrown);
    }
    write();  // free again: the write goes through
    long long n = -1;
    units.run([&n](UnitOfWork& uow) { uow.sql() << "SELECT COUNT(*) FROM t", soci::into(n); });
    EXPECT_EQ(n, 1);
  }
  std::filesystem::remove_all(dir);
}

// ---------------------------------------------------------------- real dead connections (PostgreSQL)

namespace {

/// A PostgreSQL database of its own (the units' connections get terminated).
class DeadConnections : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!orchestrator::testing::PostgresBackend::available()) GTEST_SKIP() << "TEST_PG_URL not set";
    db_ = orchestrator::testing::PostgresBackend::open(handle_);
    core::db::migrate(*db_, orchestrator::testing::PostgresBackend::migrations());
    core::db::DbConfig admin;
    admin.url = core::db::with_database(std::getenv("TEST_PG_URL"), handle_);
    admin.pool_size = 1;
    admin.create_if_missing = false;
    admin_ = std::make_unique<core::db::Database>(admin);
  }
  void TearDown() override {
    admin_.reset();
    db_.reset();
    if (!handle_.empty()) orchestrator::testing::PostgresBackend::drop(handle_);
  }
  /// Terminates the server process of the unit's own connection (as a server restart would).
  void kill(UnitOfWork& uow) {
    int pid = 0;
    uow.sql() << "SELECT pg_backend_pid()", soci::into(pid);
    core::db::Session a(*admin_);
    int done = 0;
    a.sql() << "SELECT CASE WHEN pg_terminate_backend(:p) THEN 1 ELSE 0 END", soci::use(pid), soci::into(done);
    ASSERT_EQ(done, 1);
    // The backend exits asynchronously; wait until it is gone.
    for (int i = 0; i < 100; ++i) {
      int n = 1;
      a.sql() << "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = :p", soci::use(pid), soci::into(n);
      if (n == 0) return;
      std::this_thread::sleep_for(10ms);
    }
  }
  UserRecord user() {
    return {core::uuid4(), "dead-" + core::random_hex(6) + "@example.com", "D", "hash", core::now_rfc3339()};
  }
  long long count_users(const std::string& email) {
    core::db::Session s(*admin_);
    long long n = 0;
    s.sql() << "SELECT COUNT(*) FROM users WHERE email = :e", soci::use(email), soci::into(n);
    return n;
  }
  /// Runs `body` as a unit that must be refused; returns the DatabaseUnavailable it got.
  template <class F>
  DatabaseUnavailable refused(Store& units, F body) {
    try {
      units.run(body);
    } catch (const DatabaseUnavailable& e) {
      return e;
    }
    ADD_FAILURE() << "the unit was not refused with DatabaseUnavailable";
    return DatabaseUnavailable("", 0s, false);
  }
  std::string handle_;
  std::unique_ptr<core::db::Database> db_, admin_;
};

}  // namespace

// Died before anything was written: the whole unit runs again on a fresh connection, once.
TEST_F(DeadConnections, ReadOnlyUnitIsRetriedOnceOnAFreshConnection) {
  Store units(*db_);
  int attempts = 0;
  const auto r = units.run([&](UnitOfWork& uow) {
    if (++attempts == 1) kill(uow);
    int one = 0;
    uow.sql() << "SELECT 1", soci::into(one);
    return one;
  });
  EXPECT_EQ(r, 1);
  EXPECT_EQ(attempts, 2);
}

// Died inside a transaction before COMMIT: the server dropped the write, so re-running is safe and
// the row exists exactly once.
TEST_F(DeadConnections, UncommittedTransactionIsRetried) {
  Store units(*db_);
  const auto u = user();
  int attempts = 0;
  units.run([&](UnitOfWork& uow) {
    ++attempts;
    Tx tx(uow);
    users::insert(uow, u);
    if (attempts == 1) kill(uow);
    users::find_by_id(uow, u.id);  // the first attempt dies here, before COMMIT
    tx.commit();
  });
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(count_users(u.email), 1);
}

// Died AT the COMMIT: the client cannot know whether the server committed before the connection
// went, so the unit is not re-run (here the server had not: nothing is stored, and the caller was
// told the change may or may not have been applied).
TEST_F(DeadConnections, LostCommitIsNotRetried) {
  Store units(*db_);
  const auto u = user();
  int attempts = 0;
  const auto e = refused(units, [&](UnitOfWork& uow) {
    ++attempts;
    Tx tx(uow);
    users::insert(uow, u);
    kill(uow);
    tx.commit();
  });
  EXPECT_TRUE(e.maybe_written());
  EXPECT_EQ(attempts, 1);
  EXPECT_EQ(count_users(u.email), 0);
}

// Died after a write was committed: never re-run (the write would be repeated); 503 saying the
// change may have been applied. It was.
TEST_F(DeadConnections, NoRetryAfterACommittedWrite) {
  Store units(*db_);
  const auto u = user();
  int attempts = 0;
  const auto e = refused(units, [&](UnitOfWork& uow) {
    ++attempts;
    users::insert(uow, u);  // autocommit: durable at once
    kill(uow);
    users::find_by_id(uow, u.id);
  });
  EXPECT_TRUE(e.maybe_written());
  EXPECT_NE(std::string(e.what()).find("may or may not"), std::string::npos) << e.what();
  EXPECT_EQ(attempts, 1);
  EXPECT_EQ(count_users(u.email), 1);
  // The same with a transaction whose COMMIT went through before the connection died.
  const auto v = user();
  attempts = 0;
  EXPECT_TRUE(refused(units, [&](UnitOfWork& uow) {
                ++attempts;
                {
                  Tx tx(uow);
                  users::insert(uow, v);
                  tx.commit();
                }
                kill(uow);
                users::find_by_id(uow, v.id);
              }).maybe_written());
  EXPECT_EQ(attempts, 1);
  EXPECT_EQ(count_users(v.email), 1);
  // The pool recovers: the next unit reconnects and works.
  EXPECT_TRUE(units.run([&](UnitOfWork& uow) { return users::find_by_id(uow, v.id); }));
}

// Retried once only: a second dead connection is a 503 with nothing written.
TEST_F(DeadConnections, SecondFailureIsUnavailable) {
  Store units(*db_);
  int attempts = 0;
  const auto e = refused(units, [&](UnitOfWork& uow) {
    ++attempts;
    kill(uow);
    int one = 0;
    uow.sql() << "SELECT 1", soci::into(one);
  });
  EXPECT_FALSE(e.maybe_written());
  EXPECT_NE(std::string(e.what()).find("nothing was changed"), std::string::npos) << e.what();
  EXPECT_EQ(attempts, 2);
}

// The classification of a real lost connection, with and without the session at hand.
TEST_F(DeadConnections, LostConnectionIsRecognised) {
  core::db::Session s(*db_);
  WriteLog log;
  UnitOfWork uow(s.sql(), db_->dialect(), log);
  kill(uow);
  try {
    int one = 0;
    s.sql() << "SELECT 1", soci::into(one);
    FAIL() << "a terminated backend answered";
  } catch (const std::exception& e) {
    EXPECT_TRUE(is_connection_lost(e, &s.sql())) << e.what();
    EXPECT_TRUE(is_database_error(e));
  }
  try {
    s.sql() << "SELECT 1";  // libpq now knows the connection is bad
  } catch (const std::exception& e) {
    EXPECT_TRUE(is_connection_lost(e, nullptr)) << e.what();
  }
  // A constraint violation is not a lost connection.
  core::db::Session t(*db_);
  try {
    t.sql() << "INSERT INTO users (id, email, name, password_hash, created_at) VALUES ('a', 'x@y', 'n', 'h', 'c')";
    t.sql() << "INSERT INTO users (id, email, name, password_hash, created_at) VALUES ('a', 'x@y', 'n', 'h', 'c')";
    FAIL() << "duplicate key accepted";
  } catch (const std::exception& e) {
    EXPECT_FALSE(is_connection_lost(e, &t.sql())) << e.what();
    EXPECT_TRUE(is_database_error(e));
  }
}
