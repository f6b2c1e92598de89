// Token buckets on an injected clock: burst, even refill, Retry-After, the draft's
// RateLimit/RateLimit-Policy items, LRU eviction that never resets an active client.
#include "core/rate_limit.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

namespace {

using core::ratelimit::Decision;
using core::ratelimit::Policy;
using core::ratelimit::TokenBuckets;
using namespace std::chrono_literals;

/// A clock the test moves by hand.
struct ManualClock {
  std::chrono::steady_clock::time_point now = std::chrono::steady_clock::time_point(1000s);
  TokenBuckets::Clock fn() {
    return [this] { return now; };
  }
};

TEST(TokenBuckets, BurstThenRefusedWithRetryAfterUntilOneTokenRefills) {
  ManualClock c;
  TokenBuckets b(Policy{"user", 3, 60s}, 100, c.fn());  // 1 token per 20 s
  for (int i = 2; i >= 0; --i) {
    const Decision d = b.take("alice");
    EXPECT_TRUE(d.allowed);
    EXPECT_EQ(d.remaining, i);
    EXPECT_EQ(d.retry_after, 0s);
  }
  Decision d = b.take("alice");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.remaining, 0);
  EXPECT_EQ(d.retry_after, 20s);
  EXPECT_EQ(d.reset, d.retry_after) << "Retry-After must not point before the end of the effective window";
  c.now += 5s;
  d = b.take("alice");
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.retry_after, 15s);  // the refused attempt took nothing
  c.now += 15s;
  d = b.take("alice");
  EXPECT_TRUE(d.allowed);
  EXPECT_EQ(d.remaining, 0);
  EXPECT_EQ(d.reset, 20s);  // the next token
  EXPECT_FALSE(b.take("alice").allowed);
}

TEST(TokenBuckets, GiveBackReturnsTokensUpToTheQuota) {
  ManualClock c;
  TokenBuckets b(Policy{"refinement", 2, 60s}, 100, c.fn());
  EXPECT_TRUE(b.take("u").allowed);
  EXPECT_TRUE(b.take("u").allowed);
  EXPECT_FALSE(b.take("u").allowed);
  b.give_back("u");
  EXPECT_TRUE(b.take("u").allowed) << "the returned token";
  EXPECT_FALSE(b.take("u").allowed);
  b.give_back("u", 5);  // capped at the quota
  EXPECT_EQ(b.take("u").remaining, 1);
  b.give_back("stranger");  // no bucket: nothing is created
  EXPECT_EQ(b.size(), 1u);
}

TEST(TokenBuckets, KeysAreIndependentAndRefillStopsAtTheQuota) {
  ManualClock c;
  TokenBuckets b(Policy{"ip", 2, 10s}, 100, c.fn());
  EXPECT_TRUE(b.take("10.0.0.1").allowed);
  EXPECT_TRUE(b.take("10.0.0.1").allowed);
  EXPECT_FALSE(b.take("10.0.0.1").allowed);
  EXPECT_TRUE(b.take("10.0.0.2").allowed);  // another key has its own bucket
  c.now += 1h;                               // long idle: full, never above the quota
  EXPECT_EQ(b.take("10.0.0.1").remaining, 1);
  EXPECT_TRUE(b.take("10.0.0.1").allowed);
  EXPECT_FALSE(b.take("10.0.0.1").allowed);
}

TEST(TokenBuckets, ResetIsTheTimeUntilTheBucketIsFull) {
  ManualClock c;
  TokenBuckets b(Policy{"user", 10, 100s}, 100, c.fn());  // 1 token per 10 s
  Decision d;
  for (int i = 0; i < 4; ++i) d = b.take("u");
  EXPECT_EQ(d.remaining, 6);
  EXPECT_EQ(d.reset, 40s);
  c.now += 15s;  // 1.5 tokens back
  d = b.take("u");
  EXPECT_EQ(d.remaining, 6);  // 6 + 1.5 - 1 = 6.5 -> 6 whole tokens
  EXPECT_EQ(d.reset, 35s);
}

TEST(TokenBuckets, CostTakesSeveralTokensOrNone) {
  ManualClock c;
  TokenBuckets b(Policy{"bytes", 10, 10s}, 10, c.fn());
  EXPECT_TRUE(b.take("k", 7).allowed);
  const Decision d = b.take("k", 4);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.remaining, 3);
  EXPECT_EQ(d.retry_after, 1s);
  EXPECT_TRUE(b.take("k", 3).allowed);
}

TEST(TokenBuckets, EvictsTheLeastRecentlyUsedKeyOnly) {
  ManualClock c;
  TokenBuckets b(Policy{"login", 2, 3600s}, 4, c.fn());
  EXPECT_TRUE(b.take("attacker").allowed);
  EXPECT_TRUE(b.take("attacker").allowed);
  EXPECT_FALSE(b.take("attacker").allowed);
  for (int i = 0; i < 50; ++i) {
    EXPECT_TRUE(b.take("churn-" + std::to_string(i)).allowed);
    EXPECT_FALSE(b.take("attacker").allowed) << "churn " << i << " reset the active client's bucket";
    EXPECT_LE(b.size(), 4u);
  }
  // An idle key is evicted and comes back with a full bucket.
  EXPECT_TRUE(b.take("churn-0").allowed);
}

TEST(TokenBuckets, ConcurrentTakesNeverExceedTheQuota) {
  TokenBuckets b(Policy{"user", 100, 3600s}, 10);  // real clock: refill is negligible here
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) allowed += b.take("shared").allowed ? 1 : 0;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed.load(), 100);
}

TEST(TokenBuckets, RejectsBadPolicies) {
  EXPECT_THROW(TokenBuckets(Policy{"user", 0, 60s}, 10), std::invalid_argument);
  EXPECT_THROW(TokenBuckets(Policy{"user", 1, 0s}, 10), std::invalid_argument);
  EXPECT_THROW(TokenBuckets(Policy{"bad\"name", 1, 60s}, 10), std::invalid_argument);
  EXPECT_THROW(TokenBuckets(Policy{"", 1, 60s}, 10), std::invalid_argument);
}

// draft-ietf-httpapi-ratelimit-headers-11 §3.2 / §4.2 syntax (Structured Field lists of items).
TEST(RateLimitFields, PolicyAndLimitItems) {
  const Policy p{"user", 600, 60s};
  EXPECT_EQ(core::ratelimit::policy_item(p), "\"user\";q=600;w=60");
  Decision d;
  d.remaining = 42;
  d.reset = 7s;
  EXPECT_EQ(core::ratelimit::limit_item(p, d), "\"user\";r=42;t=7");
  EXPECT_EQ(core::ratelimit::concurrency_policy_item("concurrent-runs", 3),
            "\"concurrent-runs\";q=3;qu=\"concurrent-requests\"");
}

}  // namespace
