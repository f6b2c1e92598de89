// core::async::Semaphore: permits bound how many coroutines go at once, waiting holds no thread,
// and a waiter that stops or is destroyed loses no permit.
#include "core/semaphore.hpp"

#include <atomic>
#include <chrono>
#include <stop_token>
#include <thread>

#include <gtest/gtest.h>

using namespace core::async;
using namespace std::chrono_literals;

namespace {

/// Polls `done` until it holds or 10 s passed.
template <class F>
bool eventually(F done) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

/// Waits for a permit (until `stop`), records in `got` whether it came (1) or not (0), and
/// holds it for `hold`.
Task<void> take_permit(Semaphore& s, std::stop_token stop, std::atomic<int>& got, std::chrono::milliseconds hold) {
  Task<Permit> turn = s.acquire(stop);
  const Permit p = co_await std::move(turn);
  got = p ? 1 : 0;
  co_await sleep_for(hold);
}

}  // namespace

// Ten coroutines on one I/O thread, three permits: never more than three hold one, all ten get
// theirs, and every permit is back at the end.
TEST(Semaphore, BoundsHowManyGoAtOnce) {
  Semaphore sem(3);  // outlives the runtime's coroutines
  Runtime rt(RuntimeOptions{1, 1, "semaphore-test"});
  rt.start();
  std::atomic<int> holding{0}, most{0}, done{0};
  for (int i = 0; i < 10; ++i) {
    rt.spawn([](Semaphore& s, std::atomic<int>& h, std::atomic<int>& m, std::atomic<int>& d) -> Task<void> {
      Task<Permit> turn = s.acquire();
      Permit p = co_await std::move(turn);
      m = std::max(m.load(), ++h);
      co_await sleep_for(20ms);
      --h;
      ++d;
    }(sem, holding, most, done));
  }
  ASSERT_TRUE(eventually([&] { return done == 10; }));
  EXPECT_EQ(most.load(), 3);
  EXPECT_TRUE(eventually([&] { return sem.available() == 3; }));
  EXPECT_EQ(sem.waiting(), 0u);
  rt.stop();
}

// A waiter whose stop is requested gets an empty permit at once; the permit it did not get is
// still there for the next one.
TEST(Semaphore, StoppedWaiterGetsNothingAndTakesNothing) {
  Semaphore sem(1);
  Runtime rt(RuntimeOptions{1, 1, "semaphore-test"});
  rt.start();
  Permit held = rt.run_sync(sem.acquire());
  ASSERT_TRUE(held);
  std::stop_source stop;
  std::atomic<int> got{-1};
  rt.spawn(take_permit(sem, stop.get_token(), got, 0ms));
  ASSERT_TRUE(eventually([&] { return sem.waiting() == 1; }));
  stop.request_stop();
  ASSERT_TRUE(eventually([&] { return got != -1; }));
  EXPECT_EQ(got.load(), 0);
  EXPECT_EQ(sem.waiting(), 0u);
  held.release();
  EXPECT_EQ(sem.available(), 1u);
  rt.stop();
}

// A waiter destroyed while it waits (its runtime stopped) gives up its place: the permit
// released afterwards is free again instead of handed to nobody.
TEST(Semaphore, WaiterDestroyedByAStoppingRuntimeLosesNoPermit) {
  Semaphore sem(1);
  Runtime owner(RuntimeOptions{1, 1, "semaphore-owner"});
  owner.start();
  Permit held = owner.run_sync(sem.acquire());
  {
    Runtime rt(RuntimeOptions{1, 1, "semaphore-waiter"});
    rt.start();
    std::atomic<int> got{-1};
    rt.spawn(take_permit(sem, {}, got, std::chrono::hours(1)));
    ASSERT_TRUE(eventually([&] { return sem.waiting() == 1; }));
    rt.stop();
    EXPECT_EQ(got.load(), -1) << "it never got the permit";
  }
  EXPECT_EQ(sem.waiting(), 0u);
  held.release();
  EXPECT_EQ(sem.available(), 1u);
  owner.stop();
}
