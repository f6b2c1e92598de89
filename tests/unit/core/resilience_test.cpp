#include "core/resilience.hpp"

#include <stdexcept>

#include <gtest/gtest.h>

using core::CircuitBreaker;

TEST(Retry, BackoffIsBoundedByExponentialCap) {
  core::RetryPolicy p{5, std::chrono::milliseconds(100), std::chrono::milliseconds(250)};
  for (int i = 0; i < 50; ++i) {
    EXPECT_LE(p.delay_for(0).count(), 100);
    EXPECT_LE(p.delay_for(1).count(), 200);
    EXPECT_LE(p.delay_for(5).count(), 250);
  }
}

TEST(Retry, RetriesTransientOnlyAndStopsAtMaxAttempts) {
  core::RetryPolicy p{3, std::chrono::milliseconds(1), std::chrono::milliseconds(2)};
  int calls = 0;
  auto transient = [](const std::exception& e) { return std::string(e.what()) == "transient"; };
  EXPECT_THROW(core::retry(p, transient, [&]() -> int { ++calls; throw std::runtime_error("transient"); }),
               std::runtime_error);
  EXPECT_EQ(calls, 3);
  calls = 0;
  EXPECT_THROW(core::retry(p, transient, [&]() -> int { ++calls; throw std::runtime_error("fatal"); }),
               std::runtime_error);
  EXPECT_EQ(calls, 1);
  calls = 0;
  EXPECT_EQ(core::retry(p, transient, [&] { if (++calls < 3) throw std::runtime_error("transient"); return 7; }), 7);
}

TEST(CircuitBreaker, OpensAfterMoreThanThresholdFailuresThenHalfOpens) {
  CircuitBreaker b({5, std::chrono::milliseconds(50), 3});
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(b.allow());
    b.record_failure();
  }
  EXPECT_EQ(b.state(), CircuitBreaker::State::closed);  // 5 failures: not more than 5
  ASSERT_TRUE(b.allow());
  b.record_failure();
  EXPECT_EQ(b.state(), CircuitBreaker::State::open);
  EXPECT_FALSE(b.allow());
  EXPECT_GT(b.retry_after().count(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_EQ(b.state(), CircuitBreaker::State::half_open);
  EXPECT_TRUE(b.allow());
  EXPECT_TRUE(b.allow());
  EXPECT_TRUE(b.allow());
  EXPECT_FALSE(b.allow());  // only 3 trial calls
  b.record_success();
  b.record_success();
  EXPECT_EQ(b.state(), CircuitBreaker::State::half_open);
  b.record_success();
  EXPECT_EQ(b.state(), CircuitBreaker::State::closed);
}

TEST(CircuitBreaker, FailureInHalfOpenReopens) {
  CircuitBreaker b({0, std::chrono::milliseconds(20), 3});
  b.record_failure();
  EXPECT_EQ(b.state(), CircuitBreaker::State::open);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  ASSERT_TRUE(b.allow());
  b.record_failure();
  EXPECT_EQ(b.state(), CircuitBreaker::State::open);
  b.record_success();  // a success while open does not close it
  EXPECT_EQ(b.state(), CircuitBreaker::State::open);
}

TEST(CircuitBreaker, IgnoredCallFreesItsTrialSlotAndCountsNeitherWay) {
  CircuitBreaker b({1, std::chrono::milliseconds(20), 1});
  b.record_failure();
  b.record_failure();
  EXPECT_EQ(b.state(), CircuitBreaker::State::open);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  ASSERT_TRUE(b.allow());   // the one trial slot
  EXPECT_FALSE(b.allow());
  b.record_ignored();       // e.g. no file descriptor for the call: the engine was never asked
  EXPECT_EQ(b.state(), CircuitBreaker::State::half_open);
  ASSERT_TRUE(b.allow());   // the slot is free again
  b.record_success();
  EXPECT_EQ(b.state(), CircuitBreaker::State::closed);
  ASSERT_TRUE(b.allow());
  b.record_failure();
  b.record_ignored();       // does not reset the consecutive-failure count
  b.record_failure();
  EXPECT_EQ(b.state(), CircuitBreaker::State::open);
}
