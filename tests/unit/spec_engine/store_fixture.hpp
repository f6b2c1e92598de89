#pragma once
// Base fixture of the Spec Engine tests over a real store, parameterised by dialect
// (INSTANTIATE_TEST_SUITE_P(..., ::testing::ValuesIn(dialects()))): a freshly migrated
// database (test_db.hpp) and a store::Store on it. Postgres cases skip themselves when
// TEST_PG_URL is unset.

#include <chrono>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "spec_engine/store/store.hpp"
#include "test_db.hpp"

namespace spec_engine::testing {

/// GetParam() is the dialect, "sqlite" or "postgres".
class StoreFixture : public ::testing::TestWithParam<std::string> {
 protected:
  /// Opens the database and the store. A derived SetUp calls it first and returns at once when
  /// `IsSkipped() || HasFatalFailure()`.
  void SetUp() override {
    if (GetParam() == "postgres" && !pg_configured()) GTEST_SKIP() << "TEST_PG_URL not set";
    tdb_ = make_db(GetParam());
    ASSERT_TRUE(tdb_);
    store_ = std::make_unique<store::Store>(*tdb_->db);
  }

  /// Inserts queued thread `id` (job id the same, empty agent definition) owned by `owner` with
  /// a lease of `ttl` (0 = expiring at once); fails the test when `id` exists already.
  void create(const std::string& id, const std::string& owner = "me",
              std::chrono::milliseconds ttl = std::chrono::seconds(60)) {
    store::ThreadRecord r;
    r.thread_id = r.job_id = id;
    r.agent_definition = nlohmann::json::object();
    r.owner = owner;
    ASSERT_TRUE(store_->create_thread(r, ttl));
  }

  std::unique_ptr<TestDb> tdb_;
  std::unique_ptr<store::Store> store_;
};

}  // namespace spec_engine::testing
