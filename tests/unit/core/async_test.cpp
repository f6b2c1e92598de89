// core::async: blocking offload, spawn/run_sync, task groups, Signal wake-ups across threads, sleep with stop.
#include "core/async.hpp"
#include "core/task_group.hpp"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

using namespace core::async;
using namespace std::chrono_literals;

namespace {

struct RuntimeTest : ::testing::Test {
  Runtime rt{RuntimeOptions{2, 2, "test"}};
  void SetUp() override { rt.start(); }
  void TearDown() override { rt.stop(); }
};

}  // namespace

TEST_F(RuntimeTest, BlockingReturnsValueAndRunsOffTheIoThread) {
  auto task = [](Runtime& r) -> Task<std::pair<int, bool>> {
    const auto io_thread = std::this_thread::get_id();
    std::thread::id pool_thread;
    int v = co_await r.blocking([&] {
      pool_thread = std::this_thread::get_id();
      return 41 + 1;
    });
    co_return std::make_pair(v, pool_thread != io_thread);
  };
  auto [v, off] = rt.run_sync(task(rt));
  EXPECT_EQ(v, 42);
  EXPECT_TRUE(off);
}

// Threads carry their role in their name (top -H, perf, the load benchmark's CPU by role).
TEST_F(RuntimeTest, IoAndBlockingThreadsAreNamedByRole) {
  auto name = [] {
    char buf[16] = {};
    pthread_getname_np(pthread_self(), buf, sizeof buf);
    return std::string(buf);
  };
  auto task = [](Runtime& r, auto name_of) -> Task<std::pair<std::string, std::string>> {
    const std::string io = name_of();
    std::string pool = co_await r.blocking([&] { return name_of(); });
    co_return std::make_pair(io, pool);
  };
  const auto [io, pool] = rt.run_sync(task(rt, name));
  EXPECT_EQ(io, "rt-io");
  EXPECT_EQ(pool, "rt-blocking");
}

// A coroutine resumes as soon as its blocking work returns, not after the work queued behind
// it (Asio's co_spawn re-posted a finished body to the back of the pool's queue first: under a
// burst every HTTP answer waited for the whole queue; src/core/pool_call.hpp).
TEST(RuntimeBlocking, ResumesBeforeLaterQueuedWorkFinishes) {
  Runtime one{RuntimeOptions{1, 1, "one-pool-thread"}};
  one.start();
  std::mutex mu;
  std::vector<std::string> order;
  auto note = [&](std::string what) {
    std::lock_guard lk(mu);
    order.push_back(std::move(what));
  };
  std::atomic<bool> first_started{false};
  auto first = [](Runtime& r, std::atomic<bool>& started, auto note_fn) -> Task<void> {
    co_await r.blocking([&] {
      started = true;
      std::this_thread::sleep_for(100ms);  // the later jobs queue up meanwhile
    });
    note_fn("first resumed");
  };
  auto later = [](Runtime& r, int i, auto note_fn) -> Task<void> {
    co_await r.blocking([i, note_fn] {
      std::this_thread::sleep_for(50ms);
      note_fn("job " + std::to_string(i) + " done");
    });
  };
  one.spawn(first(one, first_started, note));
  while (!first_started) std::this_thread::sleep_for(1ms);
  for (int i = 1; i <= 5; ++i) one.spawn(later(one, i, note));
  // 100 ms + 5 x 50 ms of work on the one pool thread; waits up to 10 s on a loaded machine.
  for (int waited = 0; waited < 10000; waited += 10) {
    {
      std::lock_guard lk(mu);
      if (order.size() == 6u) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  one.stop();
  std::lock_guard lk(mu);
  ASSERT_EQ(order.size(), 6u);
  const auto at = std::find(order.begin(), order.end(), "first resumed") - order.begin();
  EXPECT_LE(at, 1) << "resumed only after " << at << " later jobs had finished";
}

TEST_F(RuntimeTest, BlockingRethrowsInTheCoroutine) {
  auto task = [](Runtime& r) -> Task<std::string> {
    try {
      co_await r.blocking([] { throw std::runtime_error("boom"); });
    } catch (const std::runtime_error& e) {
      co_return e.what();
    }
    co_return "no exception";
  };
  EXPECT_EQ(rt.run_sync(task(rt)), "boom");
}

TEST_F(RuntimeTest, RunSyncRethrowsAndSpawnReportsException) {
  auto failing = []() -> Task<int> {
    throw std::logic_error("bad");
    co_return 1;
  };
  EXPECT_THROW(rt.run_sync(failing()), std::logic_error);
  std::atomic<bool> got{false};
  auto failing_void = []() -> Task<void> {
    throw std::logic_error("bad");
    co_return;
  };
  rt.spawn(failing_void(), [&](std::exception_ptr e) { got = e != nullptr; });
  for (int i = 0; i < 200 && !got; ++i) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(got);
}

TEST_F(RuntimeTest, TaskGroupCountsTasksUntilTheyEndEvenWhenTheyThrow) {
  TaskGroup group(rt, "test-group");
  std::stop_source stop;
  auto sleeper = [](std::stop_token st) -> Task<void> { co_await sleep_for(10s, st); };
  auto thrower = []() -> Task<void> {
    co_await sleep_for(1ms);
    throw std::runtime_error("boom");
  };
  for (int i = 0; i < 3; ++i) group.spawn(sleeper(stop.get_token()));
  group.spawn(thrower());
  EXPECT_FALSE(group.wait(50ms)) << "the sleepers are still running";
  EXPECT_EQ(group.running(), 3u) << "the task that threw was counted out";
  stop.request_stop();
  EXPECT_TRUE(group.wait(2s));
  EXPECT_EQ(group.running(), 0u);
}

TEST_F(RuntimeTest, SignalNotifiedBeforeWaitIsNotLost) {
  auto task = [](Runtime& r) -> Task<bool> {
    Signal s(r.make_strand());
    s.notify();
    co_return co_await s.wait(5s);
  };
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(rt.run_sync(task(rt)));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST_F(RuntimeTest, SignalWaitTimesOutWithoutNotify) {
  auto task = [](Runtime& r) -> Task<bool> {
    Signal s(r.executor());
    co_return co_await s.wait(30ms);
  };
  EXPECT_FALSE(rt.run_sync(task(rt)));
}

TEST_F(RuntimeTest, SignalWakesAcrossThreadsEveryTime) {
  // A producer thread notifies N times; the waiter counts wake-ups until it saw all N items.
  constexpr int kItems = 2000;
  std::atomic<int> produced{0};
  auto consumer = [](Runtime& r, std::atomic<int>& prod) -> Task<int> {
    Signal s(r.executor());
    std::thread producer([&] {
      for (int i = 0; i < kItems; ++i) {
        ++prod;
        s.notify();
      }
    });
    int seen = 0;
    while (seen < kItems) {
      co_await s.wait(2s);  // a lost wake-up would stall here for 2 s per loss
      seen = prod.load();
    }
    producer.join();
    co_return seen;
  };
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(rt.run_sync(consumer(rt, produced)), kItems);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 1900ms);
}

TEST_F(RuntimeTest, SleepEndsEarlyOnStop) {
  std::stop_source src;
  std::thread stopper([&] {
    std::this_thread::sleep_for(50ms);
    src.request_stop();
  });
  const auto t0 = std::chrono::steady_clock::now();
  const bool completed = rt.run_sync(sleep_for(10s, src.get_token()));
  stopper.join();
  EXPECT_FALSE(completed);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_TRUE(rt.run_sync(sleep_for(1ms)));
}

TEST_F(RuntimeTest, OneshotDeliversValueFromAnotherThread) {
  auto task = [](Runtime& r) -> Task<std::string> {
    Oneshot<std::string> o(r.executor());
    std::thread t([&] {
      std::this_thread::sleep_for(10ms);
      o.set_value("done");
      o.set_value("ignored");
    });
    auto v = co_await o.get();
    t.join();
    co_return v;
  };
  EXPECT_EQ(rt.run_sync(task(rt)), "done");
}

// run_async: a coroutine on one runtime awaits a task run on another. The task runs on the other
// runtime's I/O thread, the caller resumes on its own, and its one I/O thread stays free while it
// waits (a ticker on it keeps ticking); the task's exception reaches the caller.
TEST(RuntimeRunAsync, RunsOnTheOtherRuntimeAndResumesOnTheCallersThread) {
  Runtime a(RuntimeOptions{1, 1, "caller"});
  Runtime b(RuntimeOptions{1, 1, "callee"});
  a.start();
  b.start();
  std::atomic<int> ticks{0};
  a.spawn([](std::atomic<int>& t) -> Task<void> {
    for (int i = 0; i < 10; ++i) {
      co_await sleep_for(10ms);
      ++t;
    }
  }(ticks));
  struct Seen {
    std::thread::id before, ran, after;
    int ticks = 0;
  };
  auto caller = [&b, &ticks]() -> Task<Seen> {
    Seen s;
    s.before = std::this_thread::get_id();
    Task<std::thread::id> slow = []() -> Task<std::thread::id> {
      co_await sleep_for(200ms);
      co_return std::this_thread::get_id();
    }();
    Task<std::thread::id> there = b.run_async(std::move(slow));
    s.ran = co_await std::move(there);
    s.after = std::this_thread::get_id();
    s.ticks = ticks.load();
    co_return s;
  };
  const Seen seen = a.run_sync(caller());
  EXPECT_EQ(seen.before, seen.after);
  EXPECT_NE(seen.ran, seen.before);
  EXPECT_GE(seen.ticks, 5);

  auto failing = [&b]() -> Task<std::string> {
    Task<int> boom = []() -> Task<int> {
      co_await sleep_for(1ms);
      throw std::runtime_error("boom");
      co_return 0;
    }();
    Task<int> there = b.run_async(std::move(boom));
    try {
      co_return std::to_string(co_await std::move(there));
    } catch (const std::runtime_error& e) {
      co_return std::string(e.what());
    }
  };
  EXPECT_EQ(a.run_sync(failing()), "boom");
  b.stop();
  a.stop();
}

// run_async's waiter destroyed first (its runtime stopped, as a server stops its handlers): the
// task still runs to its end and hands its value to nobody, without touching the waiter's
// executor, which is gone by then.
TEST(RuntimeRunAsync, TaskOutlivesItsDestroyedWaiter) {
  Runtime b(RuntimeOptions{1, 1, "callee"});
  b.start();
  auto finished = std::make_shared<std::atomic<bool>>(false);
  {
    auto a = std::make_unique<Runtime>(RuntimeOptions{1, 1, "caller"});
    a->start();
    std::atomic<bool> waiting{false};
    a->spawn([](Runtime& callee, std::shared_ptr<std::atomic<bool>> f, std::atomic<bool>& w) -> Task<void> {
      Task<int> slow = [](std::shared_ptr<std::atomic<bool>> f) -> Task<int> {
        co_await sleep_for(300ms);
        *f = true;
        co_return 7;
      }(f);
      Task<int> there = callee.run_async(std::move(slow));
      w = true;
      (void)co_await std::move(there);
    }(b, finished, waiting));
    const auto until = std::chrono::steady_clock::now() + 5s;
    while (!waiting && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
    a->stop();
    a.reset();  // the waiter's executor is gone
  }
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (!*finished && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(5ms);
  EXPECT_TRUE(*finished);
  std::this_thread::sleep_for(50ms);  // the hand-over after the value: nobody to wake
  b.stop();
}

// Stopping a runtime while blocking work runs and more is queued behind it: as documented, the
// queued jobs still run (no half-done work) and stop() returns once they have; no coroutine
// waiting for a job is resumed after the I/O context stopped, and every one of them is
// destroyed (its locals' destructors run) instead of leaking.
TEST(RuntimeLifecycle, StopWithBlockingWorkQueuedFinishesItAndDestroysTheWaiters) {
  auto destroyed = std::make_shared<std::atomic<int>>(0);
  auto resumed = std::make_shared<std::atomic<int>>(0);
  auto finished = std::make_shared<std::atomic<int>>(0);
  auto started = std::make_shared<std::atomic<int>>(0);
  {
    Runtime rt(RuntimeOptions{1, 1, "stop-with-queue"});
    rt.start();
    struct CountOnDestroy {
      std::shared_ptr<std::atomic<int>> n;
      ~CountOnDestroy() { ++*n; }
    };
    auto waiter = [](Runtime& r, std::shared_ptr<std::atomic<int>> d, std::shared_ptr<std::atomic<int>> res,
                     std::shared_ptr<std::atomic<int>> fin, std::shared_ptr<std::atomic<int>> st) -> Task<void> {
      CountOnDestroy guard{std::move(d)};
      co_await r.blocking([fin, st] {
        // The first job outlasts the moment stop() begins by far; the others are short.
        std::this_thread::sleep_for(++*st == 1 ? 300ms : 30ms);
        ++*fin;
      });
      ++*res;
    };
    for (int i = 0; i < 4; ++i) rt.spawn(waiter(rt, destroyed, resumed, finished, started));
    while (started->load() == 0) std::this_thread::sleep_for(1ms);  // three wait in the pool's queue
    rt.stop();
    EXPECT_EQ(finished->load(), 4) << "stop() returned before the queued jobs ran";
  }
  EXPECT_EQ(resumed->load(), 0) << "a coroutine was resumed after its runtime stopped";
  EXPECT_EQ(destroyed->load(), 4) << "every waiting coroutine is destroyed";
}

TEST(RuntimeLifecycle, StopDestroysSuspendedCoroutines) {
  // A coroutine suspended forever must be destroyed at stop (its locals' destructors run).
  auto flag = std::make_shared<std::atomic<bool>>(false);
  {
    Runtime rt(RuntimeOptions{1, 1, "lifecycle"});
    rt.start();
    struct SetOnDestroy {
      std::shared_ptr<std::atomic<bool>> f;
      ~SetOnDestroy() { *f = true; }
    };
    auto forever = [](Runtime& r, std::shared_ptr<std::atomic<bool>> f) -> Task<void> {
      SetOnDestroy guard{std::move(f)};
      Signal s(r.executor());
      co_await s.wait(std::stop_token{});
    };
    rt.spawn(forever(rt, flag));
    std::this_thread::sleep_for(20ms);
    rt.stop();
  }
  EXPECT_TRUE(flag->load());
}
