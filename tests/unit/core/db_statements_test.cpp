#include "core/db_statements.hpp"

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <soci/sqlite3/soci-sqlite3.h>

#include "core/db.hpp"
#include "core/util.hpp"
#include "db_fixture.hpp"

namespace fs = std::filesystem;

namespace {

// DbTest plus a pool of 2 on its database with one table `kv(k TEXT PRIMARY KEY, v BIGINT)`.
class ReusedStatementTest : public core_db_test::DbTest {
 protected:
  void SetUp() override {
    core_db_test::DbTest::SetUp();
    if (IsSkipped()) return;
    cfg_.pool_size = 2;
    db_ = std::make_unique<core::db::Database>(cfg_);
    core::db::Session s(*db_);
    s.sql() << "CREATE TABLE kv (k TEXT PRIMARY KEY, v BIGINT NOT NULL)";
  }
  void TearDown() override {
    db_.reset();
    core_db_test::DbTest::TearDown();
  }

  static void put(soci::session& sql, const std::string& k, long long v) {
    core::db::run_reused(sql, "INSERT INTO kv (k, v) VALUES (:k, :v)", soci::use(k), soci::use(v));
  }
  static long long count(soci::session& sql) {
    long long n = -1;
    core::db::run_reused(sql, "SELECT COUNT(*) FROM kv", soci::into(n));
    return n;
  }

  std::unique_ptr<core::db::Database> db_;
};

}  // namespace

// One prepared statement per SQL text and session, reused with new bindings each time.
TEST_P(ReusedStatementTest, ReusesOneStatementPerTextWithFreshBindings) {
  core::db::Session s(*db_);
  soci::session& sql = s.sql();
  for (int i = 0; i < 5; ++i) put(sql, "k" + std::to_string(i), i * 10);
  EXPECT_EQ(core::db::cached_statements(sql), 1u);
  for (int i = 0; i < 5; ++i) {
    long long v = -1;
    const std::string k = "k" + std::to_string(i);
    EXPECT_TRUE(core::db::run_reused(sql, "SELECT v FROM kv WHERE k = :k", soci::into(v), soci::use(k)));
    EXPECT_EQ(v, i * 10);
  }
  long long v = -1;
  const std::string missing = "nope";
  EXPECT_FALSE(core::db::run_reused(sql, "SELECT v FROM kv WHERE k = :k", soci::into(v), soci::use(missing)));
  EXPECT_EQ(core::db::cached_statements(sql), 2u);
  if (GetParam().postgres) {
    // The server holds the two statements prepared once each (docs "pg_prepared_statements").
    long long prepared = 0;
    sql << "SELECT COUNT(*) FROM pg_prepared_statements", soci::into(prepared);
    EXPECT_EQ(prepared, 2);
  }
}

// A query whose rows were not all read goes back to the cache reset: on SQLite an un-reset
// statement keeps its read transaction, and the session would keep reading that old snapshot.
TEST_P(ReusedStatementTest, CachedQueryKeepsNoSnapshotOpen) {
  core::db::Session a(*db_);
  core::db::Session b(*db_);
  put(b.sql(), "x", 1);
  put(b.sql(), "y", 2);
  long long first = 0;
  core::db::run_reused(a.sql(), "SELECT v FROM kv ORDER BY k", soci::into(first));  // reads one row of two
  EXPECT_EQ(first, 1);
  EXPECT_EQ(count(a.sql()), 2);
  put(b.sql(), "z", 3);
  EXPECT_EQ(count(a.sql()), 3) << "session a still reads the snapshot of its first query";
}

// A statement that failed is dropped, not cached; the next use prepares it again and works.
TEST_P(ReusedStatementTest, FailedStatementIsNotKept) {
  core::db::Session s(*db_);
  soci::session& sql = s.sql();
  put(sql, "dup", 1);
  const std::size_t before = core::db::cached_statements(sql);
  EXPECT_THROW(put(sql, "dup", 2), soci::soci_error);
  EXPECT_EQ(core::db::cached_statements(sql), before - 1);
  put(sql, "other", 3);
  EXPECT_EQ(count(sql), 2);
}

// At most kStatementsPerSession statements per session; the least recently used go first.
TEST_P(ReusedStatementTest, CacheIsBounded) {
  core::db::Session s(*db_);
  soci::session& sql = s.sql();
  const std::size_t n = core::db::kStatementsPerSession + 10;
  for (std::size_t i = 0; i < n; ++i) {
    long long one = 0;
    core::db::run_reused(sql, "SELECT " + std::to_string(i) + " + 1 - " + std::to_string(i), soci::into(one));
    EXPECT_EQ(one, 1);
  }
  EXPECT_EQ(core::db::cached_statements(sql), core::db::kStatementsPerSession);
  if (GetParam().postgres) {
    long long prepared = 0;
    sql << "SELECT COUNT(*) FROM pg_prepared_statements", soci::into(prepared);
    EXPECT_EQ(prepared, static_cast<long long>(core::db::kStatementsPerSession)) << "evicted ones are deallocated";
  }
}

// Every use reaches the session's logger, as a prepare does: the orchestrator's unit of work
// tells a unit that wrote from one that only read by the statements logged (a retry after a
// lost connection is safe only for the latter), and a reused statement is not prepared again.
TEST_P(ReusedStatementTest, EveryUseIsLoggedLikeAPrepare) {
  struct Counting : soci::logger_impl {
    explicit Counting(std::vector<std::string>* seen) : seen_(seen) {}
    void start_query(const std::string& q) override {
      if (seen_) seen_->push_back(q);
    }
    logger_impl* do_clone() const override { return new Counting(seen_); }
    std::vector<std::string>* seen_;
  };
  std::vector<std::string> seen;
  core::db::Session s(*db_);
  soci::session& sql = s.sql();
  sql.set_logger(soci::logger(new Counting(&seen)));
  put(sql, "a", 1);
  put(sql, "b", 2);
  put(sql, "c", 3);
  EXPECT_EQ(core::db::cached_statements(sql), 1u);
  EXPECT_EQ(seen, std::vector<std::string>(3, "INSERT INTO kv (k, v) VALUES (:k, :v)"));
  sql.set_logger(soci::logger(new Counting(nullptr)));  // `seen` ends with the test
}

INSTANTIATE_TEST_SUITE_P(Dialects, ReusedStatementTest, core_db_test::dialects(),
                         [](const auto& info) { return info.param.name; });

// PostgreSQL refuses a DEALLOCATE inside a failed transaction: a statement that failed there
// is deallocated once the connection is idle again, not leaked on the server.
TEST(ReusedStatement, FailedStatementInATransactionIsNotLeakedOnTheServer) {
  const auto pg = core_db_test::fresh_postgres(1);
  if (!pg) GTEST_SKIP() << "TEST_PG_URL not set";
  core::db::DbConfig cfg = *pg;
  core::db::Database db(cfg);
  core::db::Session s(db);
  soci::session& sql = s.sql();
  sql << "CREATE TABLE kv (k TEXT PRIMARY KEY, v BIGINT NOT NULL)";
  const std::string k = "dup";
  const long long v = 1;
  const std::string insert = "INSERT INTO kv (k, v) VALUES (:k, :v)";
  core::db::run_reused(sql, insert, soci::use(k), soci::use(v));
  sql << "BEGIN";
  EXPECT_THROW(core::db::run_reused(sql, insert, soci::use(k), soci::use(v)), soci::soci_error);
  sql << "ROLLBACK";
  long long n = 0;
  core::db::run_reused(sql, "SELECT COUNT(*) FROM kv", soci::into(n));  // idle again: the failed one goes
  EXPECT_EQ(n, 1);
  long long prepared = -1;
  sql << "SELECT COUNT(*) FROM pg_prepared_statements", soci::into(prepared);
  EXPECT_EQ(prepared, 1) << "only the COUNT statement should be prepared on the server";
  EXPECT_EQ(core::db::cached_statements(sql), 1u);
}

// A session outside any Database's pool has no cache: each use prepares a one-time statement.
TEST(ReusedStatement, SessionWithoutCacheStillRuns) {
  const fs::path dir = fs::temp_directory_path() / ("stmttest-" + core::random_hex(6));
  fs::create_directories(dir);
  {
    soci::session sql(soci::sqlite3, "db=\"" + (dir / "t.db").string() + "\"");
    sql << "CREATE TABLE t (v BIGINT)";
    const long long v = 7;
    core::db::run_reused(sql, "INSERT INTO t (v) VALUES (:v)", soci::use(v));
    long long got = 0;
    EXPECT_TRUE(core::db::run_reused(sql, "SELECT v FROM t", soci::into(got)));
    EXPECT_EQ(got, 7);
    EXPECT_EQ(core::db::cached_statements(sql), 0u);
  }
  fs::remove_all(dir);
}

// After the server ends the connection (a restart), the lease reconnects the session and drops
// its cached statements: they name prepared statements of the old connection.
TEST(ReusedStatement, ReconnectedSessionPreparesAgain) {
  const auto pg = core_db_test::fresh_postgres(1);
  if (!pg) GTEST_SKIP() << "TEST_PG_URL not set";
  core::db::DbConfig cfg = *pg;
  core::db::Database db(cfg);
  long long n = 0;
  {
    core::db::Session s(db);
    EXPECT_TRUE(core::db::run_reused(s.sql(), "SELECT 40 + :x", soci::into(n), soci::use(1LL)));
    EXPECT_EQ(n, 41);
    EXPECT_EQ(core::db::cached_statements(s.sql()), 1u);
  }
  core::db::DbConfig admin_cfg = cfg;
  core::db::Database admin(admin_cfg);
  {
    core::db::Session a(admin);
    int killed = 0;
    a.sql() << "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
               "WHERE datname = current_database() AND pid <> pg_backend_pid()",
        soci::into(killed);
    ASSERT_EQ(killed, 1);
  }
  core::db::Session s(db);  // reconnects
  EXPECT_EQ(core::db::cached_statements(s.sql()), 0u);
  EXPECT_TRUE(core::db::run_reused(s.sql(), "SELECT 40 + :x", soci::into(n), soci::use(2LL)));
  EXPECT_EQ(n, 42);
}
