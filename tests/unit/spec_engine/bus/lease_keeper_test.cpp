// LeaseKeeper against a real store: renewals keep a live replica's threads, lost threads stop
// their local run, expired ones are claimed within capacity, stop releases.
#include "spec_engine/bus/lease_keeper.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <thread>

#include "../store_fixture.hpp"

namespace {

using namespace std::chrono_literals;
using spec_engine::bus::LeaseHooks;
using spec_engine::bus::LeaseKeeper;

class LeaseKeeperTest : public spec_engine::testing::StoreFixture {
 protected:
  /// Hooks of a fake run manager holding `local` with room for `room` more.
  LeaseHooks hooks() {
    LeaseHooks h;
    h.local = [this] {
      std::lock_guard lk(mu_);
      return local_;
    };
    h.lost = [this](const std::string& id, std::int64_t epoch, const std::string&) {
      std::lock_guard lk(mu_);
      lost_.push_back(id + "@" + std::to_string(epoch));
      if (!slow_to_stop_) local_.erase(id);
    };
    h.capacity = [this] {
      std::lock_guard lk(mu_);
      return room_;
    };
    h.claimed = [this](const spec_engine::store::Claim& c) {
      std::lock_guard lk(mu_);
      claimed_.push_back(c.thread_id);
      local_[c.thread_id] = c.epoch;
      if (room_ > 0) --room_;
    };
    return h;
  }
  std::mutex mu_;
  std::map<std::string, std::int64_t> local_;
  std::vector<std::string> lost_, claimed_;
  std::size_t room_ = 0;
  bool slow_to_stop_ = false;  ///< lost runs stay local (still stopping) until the test drops them
};

TEST_P(LeaseKeeperTest, RenewalsKeepALiveReplicasThreadsFromBeingClaimed) {
  create("t", "a", 300ms);
  local_["t"] = 1;
  LeaseKeeper a(*store_, {"a", 300ms, 50ms}, hooks());
  a.start();
  // Another replica tries to claim for well over a TTL: never wins.
  const auto until = std::chrono::steady_clock::now() + 1s;
  while (std::chrono::steady_clock::now() < until) {
    EXPECT_TRUE(store_->claim_expired("b", 300ms, 10).empty());
    std::this_thread::sleep_for(20ms);
  }
  a.stop(false);
  EXPECT_TRUE(lost_.empty());
  EXPECT_EQ(a.health(), "ok");
}

TEST_P(LeaseKeeperTest, ARunWhoseThreadWasClaimedOrDeletedIsStopped) {
  create("taken", "a", 0ms);
  create("gone", "a", 60s);
  create("kept", "a", 60s);
  local_ = {{"taken", 1}, {"gone", 1}, {"kept", 1}};
  std::this_thread::sleep_for(5ms);
  ASSERT_EQ(store_->claim_expired("b", 60s, 10).size(), 1u);
  ASSERT_TRUE(store_->delete_thread("gone"));
  LeaseKeeper a(*store_, {"a", 60s, 1s}, hooks());
  EXPECT_TRUE(a.tick());
  std::sort(lost_.begin(), lost_.end());
  EXPECT_EQ(lost_, (std::vector<std::string>{"gone@1", "taken@1"}));
  EXPECT_EQ(local_.count("kept"), 1u);
}

TEST_P(LeaseKeeperTest, ClaimsExpiredThreadsWithinCapacityOnly) {
  for (int i = 0; i < 3; ++i) create("d" + std::to_string(i), "dead", 0ms);
  create("live", "other", 60s);
  std::this_thread::sleep_for(5ms);
  LeaseKeeper b(*store_, {"b", 60s, 1s}, hooks());
  room_ = 0;
  EXPECT_TRUE(b.tick());
  EXPECT_TRUE(claimed_.empty());
  room_ = 2;
  EXPECT_TRUE(b.tick());
  EXPECT_EQ(claimed_.size(), 2u);
  room_ = 5;
  EXPECT_TRUE(b.tick());
  EXPECT_EQ(claimed_.size(), 3u);  // the live one is never taken
  EXPECT_EQ(store_->get_thread("live")->owner, "other");
  for (const auto& id : claimed_) EXPECT_EQ(store_->get_thread(id)->owner, "b");
}

TEST_P(LeaseKeeperTest, StopWithReleaseHandsThreadsOverAtOnce) {
  create("q", "a", 60s);
  local_["q"] = 1;
  {
    LeaseKeeper a(*store_, {"a", 60s, 1s}, hooks());
    a.start();
    a.stop(/*release=*/true);
  }
  EXPECT_EQ(store_->claim_expired("b", 60s, 10).size(), 1u);
}

TEST_P(LeaseKeeperTest, OwnedThreadsRunNowhereHereAreGivenUpAfterTwoRounds) {
  create("stray", "a", 60s);  // owned by "a" in the database, but "a" does not run it
  LeaseKeeper a(*store_, {"a", 60s, 1s}, hooks());
  EXPECT_TRUE(a.tick());
  EXPECT_EQ(store_->get_thread("stray")->owner, "a");
  EXPECT_TRUE(a.tick());
  EXPECT_EQ(store_->get_thread("stray")->owner, "");
  EXPECT_EQ(store_->claim_expired("b", 60s, 10).size(), 1u);
}

TEST_P(LeaseKeeperTest, ARunStillStoppingIsReportedLostOnceNotEveryRound) {
  create("t", "a", 0ms);
  create("kept", "a", 60s);
  local_ = {{"t", 1}, {"kept", 1}};
  slow_to_stop_ = true;
  std::this_thread::sleep_for(5ms);
  ASSERT_EQ(store_->claim_expired("b", 60s, 10).size(), 1u);
  LeaseKeeper a(*store_, {"a", 60s, 1s}, hooks());
  for (int round = 0; round < 3; ++round) EXPECT_TRUE(a.tick());
  EXPECT_EQ(lost_, (std::vector<std::string>{"t@1"}));
  // The run stopped; later the replica claims the thread back (a new epoch) and loses it again.
  local_.erase("t");
  EXPECT_TRUE(a.tick());
  ASSERT_EQ(store_->release_leases("b"), 1);
  ASSERT_EQ(store_->claim_expired("a", 0ms, 10).size(), 1u);
  local_["t"] = 3;
  std::this_thread::sleep_for(5ms);
  ASSERT_EQ(store_->claim_expired("b", 60s, 10).size(), 1u);
  for (int round = 0; round < 2; ++round) EXPECT_TRUE(a.tick());
  EXPECT_EQ(lost_, (std::vector<std::string>{"t@1", "t@3"}));
}

TEST_P(LeaseKeeperTest, ARunThatJustEndedIsNotReportedLost) {
  // The run wrote its outcome between the keeper's snapshot of local runs and the renewal.
  create("done", "a", 60s);
  create("other", "b", 60s);
  local_ = {{"done", 1}};
  using spec_engine::store::OutcomeWrite;
  using spec_engine::store::Write;
  ASSERT_TRUE(store_->write_batch({Write{1, OutcomeWrite{"done", "completed", nlohmann::json::object(),
                                                          nlohmann::json::object(), ""}}})
                  .fenced.empty());
  LeaseKeeper a(*store_, {"a", 60s, 1s}, hooks());
  EXPECT_TRUE(a.tick());
  EXPECT_TRUE(lost_.empty());
  // A thread that ended under another owner's epoch is still a loss for the local run.
  local_ = {{"other", 1}};
  ASSERT_TRUE(store_->write_batch({Write{1, OutcomeWrite{"other", "completed", nlohmann::json::object(),
                                                          nlohmann::json::object(), ""}}})
                  .fenced.empty());
  EXPECT_TRUE(a.tick());
  EXPECT_EQ(lost_, (std::vector<std::string>{"other@1"}));
}

// Renewals failing for a whole TTL stop every local run (another replica may have claimed their
// threads), except when the database is this replica's alone (SQLite: its data directory is
// locked): then nobody else can have claimed them, and the runs go on until renewals work again.
TEST_P(LeaseKeeperTest, FailedRenewalsStopRunsUnlessTheDatabaseIsExclusive) {
  create("t", "a", 60s);
  local_["t"] = 1;
  soci::session sql(tdb_->db->pool());
  sql << "ALTER TABLE threads RENAME TO threads_away";  // every renewal fails from now on
  LeaseKeeper shared(*store_, {"a", 100ms, 50ms}, hooks());
  LeaseKeeper exclusive(*store_, {"a", 100ms, 50ms, /*exclusive=*/true}, hooks());
  EXPECT_FALSE(exclusive.tick());
  std::this_thread::sleep_for(150ms);
  EXPECT_FALSE(exclusive.tick());
  EXPECT_TRUE(lost_.empty()) << "an exclusive database stopped a run";
  EXPECT_NE(exclusive.health(), "ok");
  EXPECT_FALSE(shared.tick());
  EXPECT_EQ(lost_, (std::vector<std::string>{"t@1"})) << "a shared database must stop runs after a TTL";
  sql << "ALTER TABLE threads_away RENAME TO threads";
  local_["t"] = 1;
  EXPECT_TRUE(exclusive.tick());
  EXPECT_EQ(exclusive.health(), "ok");
  EXPECT_EQ(lost_.size(), 1u) << "the exclusive keeper reported no loss";
  EXPECT_EQ(store_->get_thread("t")->owner, "a");
  EXPECT_EQ(store_->get_thread("t")->epoch, 1) << "nobody claimed the thread in between";
}

INSTANTIATE_TEST_SUITE_P(Dialects, LeaseKeeperTest, ::testing::ValuesIn(spec_engine::testing::dialects()),
                         [](const auto& info) { return info.param; });

}  // namespace
