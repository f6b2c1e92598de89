#pragma once
// Typed test fixture: the same domain/store tests run on SQLite (always, temp dir) and
// on PostgreSQL when TEST_PG_URL is set (a fresh database per test suite, dropped after).

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <soci/soci.h>

#include "core/db.hpp"
#include "core/util.hpp"
#include "orchestrator/store/unit_of_work.hpp"

namespace orchestrator::testing {

struct SqliteBackend {
  static constexpr const char* kName = "sqlite";
  static bool available() { return true; }
  static std::string skip_reason() { return ""; }
  static std::unique_ptr<core::db::Database> open(std::string& handle) {
    const auto dir = std::filesystem::temp_directory_path() / ("orch-dom-" + core::random_hex(6));
    std::filesystem::create_directories(dir);
    handle = dir.string();
    core::db::DbConfig cfg;
    cfg.sqlite_path = dir / "orchestrator.db";
    cfg.pool_size = 10;
    return std::make_unique<core::db::Database>(cfg);
  }
  static void drop(const std::string& handle) {
    std::error_code ec;
    std::filesystem::remove_all(handle, ec);
  }
  static std::filesystem::path migrations() {
    return std::filesystem::path(PROJECT_SOURCE_DIR) / "migrations/orchestrator/sqlite";
  }
};

struct PostgresBackend {
  static constexpr const char* kName = "postgres";
  static const char* url() { return std::getenv("TEST_PG_URL"); }
  static bool available() { return url() && *url(); }
  static std::string skip_reason() { return "TEST_PG_URL not set (run under scripts/with-test-services.sh)"; }
  static std::unique_ptr<core::db::Database> open(std::string& handle) {
    handle = "orch_dom_" + core::random_hex(6);
    core::db::DbConfig cfg;
    cfg.url = core::db::with_database(url(), handle);
    cfg.pool_size = 10;
    cfg.create_if_missing = true;
    return std::make_unique<core::db::Database>(cfg);
  }
  static void drop(const std::string& handle) {
    try {
      core::db::DbConfig cfg;
      cfg.url = core::db::with_database(url(), "postgres");
      cfg.pool_size = 1;
      cfg.create_if_missing = false;
      core::db::Database admin(cfg);
      soci::session sql(admin.pool());
      sql << "DROP DATABASE IF EXISTS " + handle;
    } catch (...) {
    }
  }
  static std::filesystem::path migrations() {
    return std::filesystem::path(PROJECT_SOURCE_DIR) / "migrations/orchestrator/postgres";
  }
};

/// Fixture: `db()` is a migrated database shared by the tests of one suite (per backend), `store()`
/// runs units of work on it.
template <class Backend>
class DbTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!Backend::available()) return;
    try {
      db_ = Backend::open(handle_);
      core::db::migrate(*db_, Backend::migrations());
      store_ = std::make_unique<store::Store>(*db_);
    } catch (const std::exception& e) {
      setup_error_ = e.what();
      db_.reset();
    }
  }
  static void TearDownTestSuite() {
    store_.reset();
    db_.reset();
    if (!handle_.empty()) Backend::drop(handle_);
    handle_.clear();
  }
  void SetUp() override {
    if (!Backend::available()) GTEST_SKIP() << Backend::skip_reason();
    // Configured but unusable is a failure, never a silent skip.
    ASSERT_TRUE(db_) << "database setup failed: " << setup_error_;
  }
  core::db::Database& db() { return *db_; }
  /// Units of work on db() (what the domain services and repositories take).
  store::Store& store() { return *store_; }

  static inline std::unique_ptr<core::db::Database> db_;
  static inline std::unique_ptr<store::Store> store_;
  static inline std::string handle_;
  static inline std::string setup_error_;
};

/// A unit of work on a connection leased from `db`, for tests that call repositories directly
/// (no retry; `sql()` is the raw connection for checks in plain SQL).
struct LeasedUnit {
  explicit LeasedUnit(core::db::Database& db) : lease(db), uow(lease.sql(), db.dialect(), log) {}
  soci::session& sql() { return lease.sql(); }
  core::db::Session lease;
  store::WriteLog log;
  store::UnitOfWork uow;
};

using Backends = ::testing::Types<SqliteBackend, PostgresBackend>;

struct BackendNames {
  template <class T>
  static std::string GetName(int) {
    return T::kName;
  }
};

}  // namespace orchestrator::testing
