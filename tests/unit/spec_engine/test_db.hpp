#pragma once
// Test databases for the Spec Engine service tests: a SQLite file in a fresh temp
// dir, and (when TEST_PG_URL is set) a freshly created PostgreSQL database with a
// unique name. Both get the spec_engine migrations applied.

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <soci/soci.h>

#include "core/db.hpp"
#include "core/util.hpp"

namespace spec_engine::testing {

/// One migrated database and what is needed to throw it away.
struct TestDb {
  std::unique_ptr<core::db::Database> db;
  std::filesystem::path temp_dir;  ///< SQLite only
  std::string name;                ///< "sqlite" | "postgres"
  std::string url;                 ///< PostgreSQL only: the database's URL
  ~TestDb() {
    db.reset();
    if (!temp_dir.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(temp_dir, ec);
    }
  }
};

/// Migration directory of the source tree for `dialect`.
inline std::filesystem::path migrations_for(core::db::Dialect d) {
  return std::filesystem::path(PROJECT_SOURCE_DIR) / "migrations" / "spec_engine" /
         (d == core::db::Dialect::sqlite ? "sqlite" : "postgres");
}

/// SQLite database in a new temp directory, migrated.
inline std::unique_ptr<TestDb> make_sqlite() {
  auto t = std::make_unique<TestDb>();
  t->name = "sqlite";
  t->temp_dir = std::filesystem::temp_directory_path() / ("se-store-" + core::random_hex(8));
  std::filesystem::create_directories(t->temp_dir);
  core::db::DbConfig c;
  c.sqlite_path = t->temp_dir / "spec_engine.db";
  c.pool_size = 8;
  t->db = std::make_unique<core::db::Database>(c);
  core::db::migrate(*t->db, migrations_for(core::db::Dialect::sqlite));
  return t;
}

/// Fresh PostgreSQL database on TEST_PG_URL (postgresql://user@host:port/postgres), migrated;
/// nullptr when TEST_PG_URL is unset.
inline std::unique_ptr<TestDb> make_postgres() {
  const char* url = std::getenv("TEST_PG_URL");
  if (!url || !*url) return nullptr;
  std::string base = url;
  const auto slash = base.rfind('/');
  const std::string dbname = "se_unit_" + core::random_hex(6);
  {
    core::db::DbConfig admin;
    admin.url = base;
    admin.pool_size = 1;
    core::db::Database a(admin);
    soci::session sql(a.pool());
    sql << "CREATE DATABASE " + dbname;
  }
  auto t = std::make_unique<TestDb>();
  t->name = "postgres";
  core::db::DbConfig c;
  c.url = base.substr(0, slash + 1) + dbname;
  c.pool_size = 8;
  t->url = c.url;
  t->db = std::make_unique<core::db::Database>(c);
  core::db::migrate(*t->db, migrations_for(core::db::Dialect::postgres));
  return t;
}

/// The databases every store test runs against. Both are always instantiated (ctest
/// discovers tests at build time, without TEST_PG_URL); postgres cases skip themselves
/// at run time when TEST_PG_URL is unset (see pg_configured()).
inline std::vector<std::string> dialects() { return {"sqlite", "postgres"}; }

/// True when TEST_PG_URL names a PostgreSQL server for the tests.
inline bool pg_configured() {
  const char* url = std::getenv("TEST_PG_URL");
  return url && *url;
}

inline std::unique_ptr<TestDb> make_db(const std::string& dialect) {
  return dialect == "postgres" ? make_postgres() : make_sqlite();
}

}  // namespace spec_engine::testing
