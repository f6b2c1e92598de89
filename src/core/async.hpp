#pragma once
// Coroutines and executors shared by both services. A Task is a Boost.Asio awaitable; this
// header pulls in only <boost/asio/awaitable.hpp> and the type-erased executor, so domain code
// (runtime, tracker, proxy) can be written as coroutines without instantiating Asio's I/O
// templates: timers, sockets and co_spawn live in core/async.cpp and the other core/ files.
//
// The model: a Runtime owns a small I/O context (a few threads that never block) and a bounded
// pool of threads for blocking work (SQL, tool calls). Coroutines wait for the network on the
// I/O threads without holding an OS thread; `co_await rt.blocking(fn)` runs `fn` on the pool and
// resumes the coroutine on the executor it came from.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <type_traits>
#include <utility>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

namespace core::async {

/// A coroutine returning T (lazy: runs when awaited or spawned).
template <class T = void>
using Task = boost::asio::awaitable<T>;

/// Type-erased Asio executor (an I/O context's executor or a strand of it).
using Executor = boost::asio::any_io_executor;

/// Settings of a Runtime.
struct RuntimeOptions {
  int io_threads = 2;        ///< threads running the I/O context (>= 1)
  int blocking_threads = 8;  ///< threads running blocking work (>= 1)
  std::string name = "runtime";  ///< used in logs and the `async_blocking_*` metric labels
};

/// An I/O context with its threads plus a bounded blocking pool. Thread-safe.
/// Lifecycle: construct -> start() -> ... -> stop() (also from the destructor).
class Runtime {
 public:
  explicit Runtime(RuntimeOptions options = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  /// Starts the I/O and blocking threads. Idempotent.
  void start();
  /// Stops the I/O context, joins its threads, lets queued blocking work finish and joins the
  /// pool, then destroys coroutine frames still suspended (their destructors run). Idempotent.
  void stop();

  /// The I/O context's executor (coroutines spawned here may run on any I/O thread).
  Executor executor() const;
  /// A new strand of the I/O context: handlers posted to it never run concurrently.
  Executor make_strand() const;

  /// Runs `fn` on the blocking pool; the awaiting coroutine resumes on its own executor.
  /// An exception thrown by `fn` is rethrown in the coroutine.
  Task<void> run_blocking(std::function<void()> fn);

  /// run_blocking() returning fn's result: `T v = co_await rt.blocking([&] { return f(); });`
  template <class F>
  Task<std::invoke_result_t<F>> blocking(F fn);

  /// Starts `task` detached on `ex` (default: executor()). `on_done` runs when it finished, with
  /// its exception (nullptr on success); without `on_done` an escaping exception is logged.
  void spawn(Task<void> task, std::function<void(std::exception_ptr)> on_done = {});
  void spawn(const Executor& ex, Task<void> task, std::function<void(std::exception_ptr)> on_done = {});

  /// Runs `task` on the I/O context and blocks the calling thread (which must not be one of this
  /// runtime's I/O threads) until it finished; returns its value or rethrows its exception.
  template <class T>
  T run_sync(Task<T> task);

  /// The coroutine counterpart of run_sync(): runs `task` on this runtime's I/O context (where
  /// the sockets, timers and pools it uses live) and awaits it from a coroutine on another
  /// executor, e.g. a server connection's strand; the caller resumes on its own executor with
  /// the value or the exception. No thread waits. The task runs to its end even when the
  /// awaiting coroutine is destroyed first (its server stopped), so it must own what it uses;
  /// it then never touches the waiter's executor again (the waiter's timer lives in the
  /// waiter's frame).
  template <class T>
  Task<T> run_async(Task<T> task);

  /// Tasks queued or running on the blocking pool (for metrics and back-pressure).
  std::size_t blocking_in_flight() const;
  const RuntimeOptions& options() const { return options_; }

  /// Internal access for core's own Asio code (core/async_asio.hpp). Not for domain code.
  struct Impl;
  Impl& impl() { return *impl_; }

 private:
  RuntimeOptions options_;
  std::unique_ptr<Impl> impl_;
};

/// Suspends the calling coroutine for `d` on its own executor (a steady timer).
/// Returns false when `stop` was requested before `d` elapsed (it then returns at once).
Task<bool> sleep_for(std::chrono::milliseconds d, std::stop_token stop = {});

/// A wake-up signal for one waiting coroutine, notified from any thread. A notify() with no
/// waiter is remembered (once) and consumed by the next wait(), so no wake-up is lost.
/// Thread-safe; cheap enough to keep one per subscriber. The waiter's executor is given at
/// construction (the timer used for waiting lives there).
class Signal {
 public:
  explicit Signal(const Executor& ex);
  ~Signal();
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;
  /// Wakes the waiter (or the next one). Thread-safe, never blocks, never throws.
  void notify() noexcept;
  /// Waits until notified (true) or `timeout` elapsed (false). One waiter at a time.
  Task<bool> wait(std::chrono::milliseconds timeout);
  /// Waits until notified (true) or `stop` is requested (false); no timeout.
  Task<bool> wait(std::stop_token stop);

 private:
  struct State;
  /// Arms the timer for `d` (or completes at once when woken already) and waits for it.
  /// True when a notify() was consumed.
  static Task<bool> wait_state(std::shared_ptr<State> st, std::chrono::steady_clock::duration d);
  std::shared_ptr<State> state_;
};

/// A value delivered once from any thread to one awaiting coroutine (a promise/future pair in
/// one object). set_value()/set_exception() after the first completion are ignored.
template <class T>
class Oneshot {
 public:
  explicit Oneshot(const Executor& waiter_executor) : signal_(waiter_executor) {}
  /// Completes with `v` (thread-safe).
  void set_value(T v) {
    {
      std::lock_guard lk(mu_);
      if (done_) return;
      value_.emplace(std::move(v));
      done_ = true;
    }
    signal_.notify();
  }
  /// Completes with an exception, rethrown by get().
  void set_exception(std::exception_ptr e) {
    {
      std::lock_guard lk(mu_);
      if (done_) return;
      error_ = std::move(e);
      done_ = true;
    }
    signal_.notify();
  }
  /// Waits for the completion and returns the value (or rethrows).
  Task<T> get() {
    for (;;) {
      {
        std::lock_guard lk(mu_);
        if (done_) {
          if (error_) std::rethrow_exception(error_);
          co_return std::move(*value_);
        }
      }
      co_await signal_.wait(std::stop_token{});
    }
  }

 private:
  Signal signal_;
  std::mutex mu_;
  bool done_ = false;
  std::optional<T> value_;
  std::exception_ptr error_;
};

// ---- template definitions -------------------------------------------------------------

template <class F>
Task<std::invoke_result_t<F>> Runtime::blocking(F fn) {
  // Note: non-trivial temporaries inside a co_await expression are miscompiled by GCC 12 (they
  // may be destroyed twice); every argument is a named local here.
  using R = std::invoke_result_t<F>;
  auto shared = std::make_shared<F>(std::move(fn));
  if constexpr (std::is_void_v<R>) {
    std::function<void()> job = [shared] { (*shared)(); };
    co_await run_blocking(std::move(job));
  } else {
    auto out = std::make_shared<std::optional<R>>();
    std::function<void()> job = [shared, out] { out->emplace((*shared)()); };
    co_await run_blocking(std::move(job));
    co_return std::move(**out);
  }
}

namespace detail {
/// Blocks until `done()` with a condition variable (used by run_sync).
struct SyncWait {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::exception_ptr error;
  void finish(std::exception_ptr e) {
    std::lock_guard lk(mu);
    error = std::move(e);
    done = true;
    cv.notify_all();
  }
  void wait() {
    std::unique_lock lk(mu);
    cv.wait(lk, [&] { return done; });
    if (error) std::rethrow_exception(error);
  }
};

/// Awaits `t` and stores its value in `*out`.
template <class T>
Task<void> store_result(Task<T> t, std::shared_ptr<std::optional<T>> out) {
  out->emplace(co_await std::move(t));
}
}  // namespace detail

namespace detail {
/// What run_async's task (on the runtime) and its waiter share: the outcome, and the waiter's
/// Signal only while the waiter's frame exists (the frame clears it before the Signal dies).
template <class T>
struct Handoff {
  std::mutex mu;
  std::optional<T> value;
  std::exception_ptr error;
  bool done = false;
  Signal* waiter = nullptr;
  /// Records the outcome (first call only) and wakes the waiter if it still exists.
  void finish(std::optional<T> v, std::exception_ptr e) {
    std::lock_guard lk(mu);
    if (done) return;
    value = std::move(v);
    error = std::move(e);
    done = true;
    if (waiter) waiter->notify();
  }
};

/// Awaits `t` and hands its value over (an exception arrives through Runtime::spawn's on_done).
template <class T>
Task<void> deliver(Task<T> t, std::shared_ptr<Handoff<T>> h) {
  T value = co_await std::move(t);
  h->finish(std::move(value), nullptr);
}
}  // namespace detail

template <class T>
Task<T> Runtime::run_async(Task<T> task) {
  static_assert(!std::is_void_v<T>, "run_async needs a value: let the task return one");
  Signal signal(co_await boost::asio::this_coro::executor);
  auto h = std::make_shared<detail::Handoff<T>>();
  h->waiter = &signal;
  // Destroyed before `signal` however this frame ends (also when its executor destroys it).
  struct Detach {
    detail::Handoff<T>& h;
    ~Detach() {
      std::lock_guard lk(h.mu);
      h.waiter = nullptr;
    }
  } detach{*h};
  Task<void> job = detail::deliver(std::move(task), h);
  spawn(std::move(job), [h](std::exception_ptr e) {
    if (e) h->finish(std::nullopt, std::move(e));
  });
  for (;;) {
    {
      std::lock_guard lk(h->mu);
      if (h->done) {
        if (h->error) std::rethrow_exception(h->error);
        co_return std::move(*h->value);
      }
    }
    Task<bool> woken = signal.wait(std::stop_token{});
    co_await std::move(woken);
  }
}

template <class T>
T Runtime::run_sync(Task<T> task) {
  auto w = std::make_shared<detail::SyncWait>();
  if constexpr (std::is_void_v<T>) {
    spawn(std::move(task), [w](std::exception_ptr e) { w->finish(std::move(e)); });
    w->wait();
  } else {
    auto out = std::make_shared<std::optional<T>>();
    spawn(detail::store_result(std::move(task), out), [w](std::exception_ptr e) { w->finish(std::move(e)); });
    w->wait();
    return std::move(**out);
  }
}

}  // namespace core::async
