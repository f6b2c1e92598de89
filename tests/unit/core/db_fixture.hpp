#pragma once
// A fresh database per test, on each dialect: SQLite in a temp dir, or a new PostgreSQL database
// on TEST_PG_URL (skipped when that is unset). Shared by the core database tests.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <ostream>
#include <string>

#include <gtest/gtest.h>

#include "core/db.hpp"
#include "core/util.hpp"

namespace core_db_test {

/// The dialect a parameterised test runs on.
struct Target {
  std::string name;
  bool postgres;
};

/// Names the parameter in test output ("sqlite"/"postgres") instead of a byte dump.
[[maybe_unused]] inline void PrintTo(const Target& t, std::ostream* os) { *os << t.name; }

/// Both dialects, for INSTANTIATE_TEST_SUITE_P.
inline auto dialects() { return ::testing::Values(Target{"sqlite", false}, Target{"postgres", true}); }

/// A new PostgreSQL database on TEST_PG_URL with a pool of `pool_size`; nullopt when
/// TEST_PG_URL is unset (the caller skips: GTEST_SKIP only works in the test body).
inline std::optional<core::db::DbConfig> fresh_postgres(std::size_t pool_size) {
  const char* url = std::getenv("TEST_PG_URL");
  if (!url || !*url) return std::nullopt;
  core::db::DbConfig cfg;
  cfg.url = core::db::with_database(url, "coretest_" + core::random_hex(6));
  cfg.pool_size = pool_size;
  return cfg;
}

/// Sets up dir_ (a temp dir with a migrations/ subdir, removed afterwards) and cfg_ (pool of 4)
/// for the test's dialect.
class DbTest : public ::testing::TestWithParam<Target> {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("dbtest-" + core::random_hex(6));
    std::filesystem::create_directories(dir_ / "migrations");
    if (GetParam().postgres) {
      const auto pg = fresh_postgres(4);
      if (!pg) GTEST_SKIP() << "TEST_PG_URL not set";
      cfg_ = *pg;
    } else {
      cfg_.sqlite_path = dir_ / "test.db";
    }
    cfg_.pool_size = 4;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void write_migration(const std::string& name, const std::string& sql) {
    std::ofstream(dir_ / "migrations" / name) << sql;
  }
  std::filesystem::path dir_;
  core::db::DbConfig cfg_;
};

}  // namespace core_db_test
