// Thread ownership (leases, epochs, claims) and fenced group writes, on SQLite and, with
// TEST_PG_URL, on PostgreSQL.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include <libpq-fe.h>

#include "spec_engine/store/store.hpp"
#include "../store_fixture.hpp"

namespace {

using namespace std::chrono_literals;
using spec_engine::store::CheckpointWrite;
using spec_engine::store::EventRecord;
using spec_engine::store::EventWrite;
using spec_engine::store::OutcomeWrite;
using spec_engine::store::StatusWrite;
using spec_engine::store::Store;
using spec_engine::store::Write;

class OwnershipTest : public spec_engine::testing::StoreFixture {
 protected:
  static Write ev(const std::string& id, std::int64_t epoch, std::int64_t seq, const std::string& type = "e") {
    return Write{epoch, EventWrite{EventRecord{id, seq, type, {{"n", seq}}, "2026-01-01T00:00:00Z"}}};
  }
};

TEST_P(OwnershipTest, InvokeInsertsTheThreadOwnedAtEpochOne) {
  const auto before = store_->db_now_ms();
  create("t", "replica-a", 30s);
  auto t = store_->get_thread("t");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->owner, "replica-a");
  EXPECT_EQ(t->epoch, 1);
  EXPECT_GE(t->lease_expires_at, before + 29000);
  EXPECT_LE(t->lease_expires_at, store_->db_now_ms() + 30000);
  EXPECT_EQ(t->recoveries, 0);
}

TEST_P(OwnershipTest, RenewExtendsOwnLeasesOnlyAndReportsEpochs) {
  create("a1", "a", 1s);
  create("a2", "a", 1s);
  create("b1", "b", 1s);
  ASSERT_TRUE(store_->set_status("a2", "completed"));  // finished threads are not renewed
  const auto before_b = store_->get_thread("b1")->lease_expires_at;
  auto owned = store_->renew_leases("a", 60s);
  EXPECT_EQ(owned, (std::map<std::string, std::int64_t>{{"a1", 1}}));
  EXPECT_GE(store_->get_thread("a1")->lease_expires_at, store_->db_now_ms() + 50000);
  EXPECT_EQ(store_->get_thread("b1")->lease_expires_at, before_b);
}

TEST_P(OwnershipTest, ALiveOwnersThreadIsNeverClaimed) {
  create("live", "a", 60s);
  EXPECT_TRUE(store_->claim_expired("b", 60s, 10).empty());
  auto t = store_->get_thread("live");
  EXPECT_EQ(t->owner, "a");
  EXPECT_EQ(t->epoch, 1);
}

TEST_P(OwnershipTest, ExpiredThreadIsClaimedWithANewEpochAndCountsARecovery) {
  create("dead", "a", 0ms);
  ASSERT_TRUE(store_->set_status("dead", "running"));
  std::this_thread::sleep_for(5ms);
  auto won = store_->claim_expired("b", 60s, 10);
  ASSERT_EQ(won.size(), 1u);
  EXPECT_EQ(won[0].thread_id, "dead");
  EXPECT_EQ(won[0].epoch, 2);
  EXPECT_EQ(won[0].recoveries, 1);
  EXPECT_EQ(won[0].previous_owner, "a");
  EXPECT_EQ(won[0].previous_status, "running");
  auto t = store_->get_thread("dead");
  EXPECT_EQ(t->owner, "b");
  EXPECT_EQ(t->epoch, 2);
  EXPECT_TRUE(store_->claim_expired("c", 60s, 10).empty());  // b's lease is live now
  // The old owner's renewal no longer covers it.
  EXPECT_TRUE(store_->renew_leases("a", 60s).empty());
}

TEST_P(OwnershipTest, ClaimsRespectTheLimitAndTakeOldestFirst) {
  for (int i = 0; i < 4; ++i) {
    create("t" + std::to_string(i), "gone", 0ms);
    std::this_thread::sleep_for(2ms);  // distinct created_at
  }
  std::this_thread::sleep_for(5ms);
  auto won = store_->claim_expired("b", 60s, 2);
  ASSERT_EQ(won.size(), 2u);
  EXPECT_EQ(won[0].thread_id, "t0");
  EXPECT_EQ(won[1].thread_id, "t1");
  EXPECT_TRUE(store_->claim_expired("b", 60s, 0).empty());
}

TEST_P(OwnershipTest, ConcurrentClaimersWinEachThreadExactlyOnce) {
  constexpr int kThreads = 20;
  for (int i = 0; i < kThreads; ++i) create("t" + std::to_string(i), "gone", 0ms);
  std::this_thread::sleep_for(5ms);
  std::vector<std::vector<spec_engine::store::Claim>> won(3);
  std::vector<std::thread> claimers;
  for (int c = 0; c < 3; ++c) {
    claimers.emplace_back([&, c] {
      Store mine(*tdb_->db);
      won[c] = mine.claim_expired("r" + std::to_string(c), 60s, kThreads);
    });
  }
  for (auto& t : claimers) t.join();
  std::multiset<std::string> all;
  for (int c = 0; c < 3; ++c) {
    for (const auto& w : won[c]) {
      all.insert(w.thread_id);
      EXPECT_EQ(store_->get_thread(w.thread_id)->owner, "r" + std::to_string(c));
      EXPECT_EQ(w.epoch, 2);
    }
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads));
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), static_cast<std::size_t>(kThreads));
}

TEST_P(OwnershipTest, ReleasedLeasesAreClaimableAtOnce) {
  create("q", "a", 60s);
  EXPECT_EQ(store_->release_leases("a"), 1);
  auto won = store_->claim_expired("b", 60s, 10);
  ASSERT_EQ(won.size(), 1u);
  EXPECT_EQ(won[0].previous_status, "queued");
}

TEST_P(OwnershipTest, ExpireForeignLeasesAndDisown) {
  create("x", "old-process", 60s);
  create("y", "me", 60s);
  EXPECT_EQ(store_->expire_foreign_leases("me"), 1);
  EXPECT_EQ(store_->get_thread("x")->lease_expires_at, 0);
  EXPECT_GT(store_->get_thread("y")->lease_expires_at, 0);
  EXPECT_FALSE(store_->disown("y", 7));  // wrong epoch: fenced
  EXPECT_TRUE(store_->disown("y", 1));
  EXPECT_EQ(store_->get_thread("y")->owner, "");
  EXPECT_EQ(store_->claim_expired("other", 60s, 10).size(), 2u);
}

TEST_P(OwnershipTest, BatchWritesEventsCheckpointAndOutcomeInOneTransaction) {
  create("a", "me");
  create("b", "me");
  std::vector<Write> w = {ev("a", 1, 1), ev("b", 1, 1), ev("a", 1, 2),
                          Write{1, CheckpointWrite{"a", 2, {{"step", 1}}}},
                          ev("b", 1, 2, "end"),
                          Write{1, OutcomeWrite{"b", "completed", {{"messages", {"ok"}}}, {{"/f", "x"}}, ""}}};
  auto res = store_->write_batch(w);
  EXPECT_TRUE(res.fenced.empty());
  EXPECT_EQ(res.last_seq, (std::map<std::string, std::int64_t>{{"a", 2}, {"b", 2}}));
  EXPECT_EQ(store_->get_thread("a")->last_seq, 2);  // read from the events: the row is not updated
  EXPECT_EQ((*store_->latest_checkpoint("a"))["step"], 1);
  auto b = store_->get_thread("b");
  EXPECT_EQ(b->status, "completed");
  EXPECT_EQ(b->result["messages"][0], "ok");
  EXPECT_EQ(store_->events_after("b", 0).back().event_type, "end");
}

// PostgreSQL writes a batch as a few statements with array parameters: any text survives them,
// the last checkpoint of a thread wins, and a thread's status and outcome keep their batch order.
TEST_P(OwnershipTest, BatchKeepsAnyTextAndTheOrderOfEachThreadsWrites) {
  create("a", "me");
  create("b \"quoted\", {braced}", "me");
  create("c", "me");
  const std::string tricky = "q\"uote \\back\\slash {brace} , comma NULL \u00e9\u4e2d \n line";
  const nlohmann::json data = {{"text", tricky}, {"list", {1, "two", nullptr}}};
  std::vector<Write> w = {
      Write{1, StatusWrite{"a", "running"}},
      Write{1, EventWrite{EventRecord{"a", 1, "on_llm_stream", data, "2026-01-01T00:00:00Z"}}},
      Write{1, CheckpointWrite{"a", 1, {{"step", 1}}}},
      Write{1, EventWrite{EventRecord{"b \"quoted\", {braced}", 1, "e\"vt", {{"k", "NULL"}}, "ts"}}},
      Write{1, CheckpointWrite{"a", 2, {{"step", 2}, {"text", tricky}}}},
      Write{1, EventWrite{EventRecord{"a", 2, "end", {{"status", "completed"}}, "2026-01-01T00:00:01Z"}}},
      Write{1, OutcomeWrite{"a", "completed", {{"messages", {tricky}}}, {{"/f", tricky}}, ""}},
      Write{1, StatusWrite{"c", "running"}},
      Write{1, OutcomeWrite{"c", "failed", nullptr, nullptr, "it \"broke\""}},
      Write{1, StatusWrite{"c", "cancelled"}},  // after its outcome: applied after it
  };
  const auto res = store_->write_batch(w);
  EXPECT_TRUE(res.fenced.empty());
  EXPECT_EQ(res.last_seq, (std::map<std::string, std::int64_t>{{"a", 2}, {"b \"quoted\", {braced}", 1}}));
  const auto a_events = store_->events_after("a", 0);
  ASSERT_EQ(a_events.size(), 2u);
  EXPECT_EQ(a_events[0].data, data);
  EXPECT_EQ(a_events[0].ts, "2026-01-01T00:00:00Z");
  EXPECT_EQ(a_events[1].event_type, "end");
  const auto b_events = store_->events_after("b \"quoted\", {braced}", 0);
  ASSERT_EQ(b_events.size(), 1u);
  EXPECT_EQ(b_events[0].event_type, "e\"vt");
  EXPECT_EQ(b_events[0].data["k"], "NULL");
  EXPECT_EQ((*store_->latest_checkpoint("a"))["step"], 2);
  EXPECT_EQ((*store_->latest_checkpoint("a"))["text"], tricky);
  const auto a = store_->get_thread("a");
  EXPECT_EQ(a->status, "completed");
  EXPECT_EQ(a->result["messages"][0], tricky);
  EXPECT_EQ(a->generated_files["/f"], tricky);
  EXPECT_TRUE(a->error.empty());
  const auto c = store_->get_thread("c");
  EXPECT_EQ(c->status, "cancelled");
  EXPECT_EQ(c->error, "it \"broke\"");
  EXPECT_TRUE(c->result.is_null());
}

TEST_P(OwnershipTest, WritesOfALostEpochOrADeletedThreadAreFencedOut) {
  create("taken", "a", 0ms);
  create("kept", "a", 60s);
  create("gone", "a", 60s);
  std::this_thread::sleep_for(5ms);
  ASSERT_EQ(store_->claim_expired("b", 60s, 10).size(), 1u);  // "taken" now epoch 2, owner b
  ASSERT_TRUE(store_->delete_thread("gone"));
  auto res = store_->write_batch({ev("taken", 1, 1), ev("kept", 1, 1), ev("gone", 1, 1),
                                  Write{1, CheckpointWrite{"taken", 1, {{"x", 1}}}}});
  using Fence = std::pair<std::string, std::int64_t>;
  EXPECT_EQ(std::set<Fence>(res.fenced.begin(), res.fenced.end()), (std::set<Fence>{{"taken", 1}, {"gone", 1}}));
  EXPECT_TRUE(store_->events_after("taken", 0).empty());
  EXPECT_FALSE(store_->latest_checkpoint("taken"));
  EXPECT_TRUE(store_->events_after("gone", 0).empty());
  EXPECT_EQ(store_->events_after("kept", 0).size(), 1u);
  // The new owner writes with its epoch.
  EXPECT_TRUE(store_->write_batch({ev("taken", 2, 1)}).fenced.empty());
  EXPECT_FALSE(store_->set_status_fenced("taken", 1, "running"));
  EXPECT_TRUE(store_->set_status_fenced("taken", 2, "running"));
}

TEST_P(OwnershipTest, FencingIsPerEpochSoALostRunsWritesDoNotFenceTheNewerRun) {
  create("t", "a", 0ms);
  std::this_thread::sleep_for(5ms);
  ASSERT_EQ(store_->claim_expired("a", 60s, 10).size(), 1u);  // the same replica claims it back: epoch 2
  // One batch: the lost run's last writes (epoch 1) around the new run's (epoch 2).
  auto res = store_->write_batch({ev("t", 1, 1), ev("t", 2, 1), Write{1, CheckpointWrite{"t", 1, {{"run", 1}}}},
                                  ev("t", 2, 2), Write{2, CheckpointWrite{"t", 2, {{"run", 2}}}}, ev("t", 1, 3)});
  using Fence = std::pair<std::string, std::int64_t>;
  EXPECT_EQ(res.fenced, (std::vector<Fence>{{"t", 1}}));
  const auto events = store_->events_after("t", 0);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].seq, 1);
  EXPECT_EQ(events[1].seq, 2);
  EXPECT_EQ(res.last_seq.at("t"), 2);
  EXPECT_EQ((*store_->latest_checkpoint("t"))["run"], 2);
}

TEST_P(OwnershipTest, ReplayPagesUseLimit) {
  create("t", "me");
  std::vector<Write> w;
  for (int i = 1; i <= 10; ++i) w.push_back(ev("t", 1, i));
  store_->write_batch(w);
  auto page = store_->events_after("t", 3, 4);
  ASSERT_EQ(page.size(), 4u);
  EXPECT_EQ(page.front().seq, 4);
  EXPECT_EQ(page.back().seq, 7);
  EXPECT_EQ(store_->events_after("t", 0).size(), 10u);
}

TEST_P(OwnershipTest, PostgresNotifiesListenersOnlyWhenTheBatchCommits) {
  if (GetParam() != "postgres") GTEST_SKIP() << "LISTEN/NOTIFY is PostgreSQL's";
  create("t", "me");
  PGconn* c = PQconnectdb(tdb_->url.c_str());
  ASSERT_EQ(PQstatus(c), CONNECTION_OK) << PQerrorMessage(c);
  PQclear(PQexec(c, "LISTEN spec_events"));
  store_->write_batch({ev("t", 1, 1), ev("t", 1, 2)}, "replica-x");
  store_->write_batch({ev("t", 7, 3)}, "replica-x");  // fenced: nothing stored, nothing notified
  std::vector<std::string> got;
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (std::chrono::steady_clock::now() < deadline && got.size() < 2) {
    PQconsumeInput(c);
    while (PGnotify* n = PQnotifies(c)) {
      got.emplace_back(n->extra);
      PQfreemem(n);
    }
    std::this_thread::sleep_for(20ms);
  }
  PQfinish(c);
  EXPECT_EQ(got, (std::vector<std::string>{"t:2:replica-x"}));
}

// An engine renews the leases of all its threads in one statement while its event writer commits
// batches that lock the same rows. Under load (thousands of runs per replica) a renewal that took
// the rows in another order than the batch's fence deadlocked with it, and the failed renewals
// made the replica stop every run ("lease not renewed for a whole TTL"). Rows are inserted in
// descending key order here, so a plain UPDATE meets them in the opposite order of the fence.
TEST_P(OwnershipTest, LeaseRenewalsAndBatchesNeverDeadlock) {
  constexpr int kThreads = 120;
  constexpr int kRounds = 30;
  auto id = [](int i) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "t%03d", i);
    return std::string(buf);
  };
  for (int i = kThreads - 1; i >= 0; --i) create(id(i), "me");
  std::atomic<bool> done{false};
  std::atomic<int> renewals{0}, failures{0};
  std::mutex error_mu;
  std::string first_error;
  auto failed = [&](const std::exception& e) {
    ++failures;
    std::lock_guard lk(error_mu);
    if (first_error.empty()) first_error = e.what();
  };
  std::atomic<bool> started{false};
  std::thread renewer([&] {
    Store mine(*tdb_->db);
    started = true;
    do {  // at least once, however late this thread is scheduled
      try {
        EXPECT_EQ(mine.renew_leases("me", 60s).size(), static_cast<std::size_t>(kThreads));
        ++renewals;
      } catch (const std::exception& e) {
        failed(e);
      }
    } while (!done);
  });
  // The batches start once the renewer runs, so the two overlap even on a loaded machine (the
  // batches alone took less time than the thread's start-up once, and no renewal ran at all).
  while (!started) std::this_thread::yield();
  for (int round = 1; round <= kRounds; ++round) {
    std::vector<Write> w;
    for (int i = 0; i < kThreads; ++i) w.push_back(ev(id(i), 1, round));
    for (int i = round % 7; i < kThreads; i += 7) w.push_back(Write{1, StatusWrite{id(i), "running"}});
    try {
      EXPECT_TRUE(store_->write_batch(w).fenced.empty());
    } catch (const std::exception& e) {
      failed(e);
    }
  }
  done = true;
  renewer.join();
  EXPECT_EQ(failures.load(), 0) << first_error;
  EXPECT_GT(renewals.load(), 0);
  for (int i = 0; i < kThreads; i += 17) EXPECT_EQ(store_->events_after(id(i), 0).size(), std::size_t{kRounds});
}

// The fence of write_batch takes FOR KEY SHARE on the rows of threads it only appends to: a lease
// renewal (an UPDATE of a non-key column) goes through while a batch holds them, and a claim (which
// changes the epoch) waits until the batch committed, so it can never slip in between the batch's
// epoch check and its writes.
TEST_P(OwnershipTest, PostgresFenceLetsRenewalsThroughAndHoldsClaims) {
  if (GetParam() != "postgres") GTEST_SKIP() << "row locks are PostgreSQL's (SQLite serialises writers)";
  create("held", "me", 60s);
  PGconn* c = PQconnectdb(tdb_->url.c_str());
  ASSERT_EQ(PQstatus(c), CONNECTION_OK) << PQerrorMessage(c);
  auto exec = [&](const char* q) {
    PGresult* r = PQexec(c, q);
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok;
  };
  ASSERT_TRUE(exec("BEGIN"));
  ASSERT_TRUE(exec("SELECT epoch FROM threads WHERE thread_id = 'held' FOR KEY SHARE"));  // as the fence does
  auto renewal = std::async(std::launch::async, [&] {
    Store mine(*tdb_->db);
    return mine.renew_leases("me", 1ms).size();  // expires at once: claimable below
  });
  const bool renewed = renewal.wait_for(10s) == std::future_status::ready;
  std::this_thread::sleep_for(5ms);
  auto claim = std::async(std::launch::async, [&] {
    Store mine(*tdb_->db);
    return mine.claim_expired("other", 60s, 10);
  });
  const bool claim_waited = claim.wait_for(300ms) == std::future_status::timeout;
  ASSERT_TRUE(exec("COMMIT"));
  PQfinish(c);
  EXPECT_TRUE(renewed) << "the renewal waited for the batch's fence";
  if (renewed) {
    EXPECT_EQ(renewal.get(), 1u);
  }
  EXPECT_TRUE(claim_waited) << "the claim did not wait for the batch's fence";
  const auto won = claim.get();
  ASSERT_EQ(won.size(), 1u);
  EXPECT_EQ(won[0].epoch, 2);
}

INSTANTIATE_TEST_SUITE_P(Dialects, OwnershipTest, ::testing::ValuesIn(spec_engine::testing::dialects()),
                         [](const auto& info) { return info.param; });

}  // namespace
