// core::Budget: deadline + cancel predicate, polled cooperatively with a stride.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "core/budget.hpp"

using core::Budget;
using core::BudgetStop;

TEST(Budget, UnlimitedNeverStops) {
  Budget b;
  for (int i = 0; i < 100000; ++i) ASSERT_FALSE(b.exhausted(1000));
  EXPECT_EQ(b.stop(), BudgetStop::none);
  EXPECT_EQ(b.limit_ms(), 0);
  EXPECT_EQ(b.deadline(), Budget::Clock::time_point::max());
  EXPECT_FALSE(b.check_now());
}

TEST(Budget, ZeroLimitStopsAtTheFirstPoll) {
  Budget b(std::chrono::milliseconds(0));
  EXPECT_TRUE(b.exhausted());
  EXPECT_EQ(b.stop(), BudgetStop::deadline);
  EXPECT_EQ(b.checks(), 1u);
  EXPECT_TRUE(b.exhausted());  // stays stopped, without reading the clock again
  EXPECT_EQ(b.checks(), 1u);
}

TEST(Budget, DeadlineIsTheEarlierOfLimitAndNotAfter) {
  const auto before = Budget::Clock::now();
  Budget a(std::chrono::hours(1));
  EXPECT_GE(a.deadline(), before + std::chrono::hours(1));
  const auto cap = before + std::chrono::seconds(5);
  Budget b(std::chrono::hours(1), {}, cap);
  EXPECT_EQ(b.deadline(), cap);
  EXPECT_EQ(b.limit_ms(), 3600000);  // the message still names the budget's own length
  Budget c(std::chrono::hours(1), {}, before - std::chrono::seconds(1));  // cap already passed
  EXPECT_TRUE(c.exhausted());
  EXPECT_EQ(c.stop(), BudgetStop::deadline);
  Budget huge(std::chrono::milliseconds::max());  // no overflow: treated as no deadline
  EXPECT_FALSE(huge.check_now());
}

TEST(Budget, PollsTheClockAndPredicateOncePerStride) {
  int calls = 0;
  Budget b(std::chrono::hours(1), [&] { return ++calls > 3; }, Budget::Clock::time_point::max(), 100);
  EXPECT_FALSE(b.exhausted(1));  // the first poll always checks
  EXPECT_EQ(calls, 1);
  for (int i = 0; i < 99; ++i) EXPECT_FALSE(b.exhausted(1));
  EXPECT_EQ(calls, 1);           // 99 units since the check: below the stride
  EXPECT_FALSE(b.exhausted(1));  // 100 units: check
  EXPECT_EQ(calls, 2);
  EXPECT_FALSE(b.exhausted(250));  // one big step counts as much as many small ones
  EXPECT_EQ(calls, 3);
  EXPECT_TRUE(b.exhausted(100));
  EXPECT_EQ(b.stop(), BudgetStop::cancelled);
  EXPECT_EQ(b.checks(), 4u);
}

TEST(Budget, CancellationWinsOverTheDeadline) {
  Budget b(std::chrono::milliseconds(0), [] { return true; });
  EXPECT_TRUE(b.check_now());
  EXPECT_EQ(b.stop(), BudgetStop::cancelled);
  EXPECT_STREQ(core::budget_stop_name(b.stop()), "cancelled");
  EXPECT_STREQ(core::budget_stop_name(BudgetStop::deadline), "deadline");
}

// The token is not tied to a thread: a flag set on one thread stops work polling on
// another, and the budget itself can be handed to a worker thread.
TEST(Budget, CancelFromAnotherThread) {
  std::atomic<bool> cancel{false};
  Budget b(std::chrono::hours(1), [&] { return cancel.load(); }, Budget::Clock::time_point::max(), 1);
  std::atomic<long> iterations{0};
  std::thread worker([&] {
    while (!b.exhausted()) ++iterations;
  });
  while (iterations.load() < 1000) std::this_thread::yield();
  cancel = true;
  worker.join();
  EXPECT_EQ(b.stop(), BudgetStop::cancelled);
}
