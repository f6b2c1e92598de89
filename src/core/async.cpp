// Runtime, spawn, blocking offload, timers and signals (core/async.hpp).
#include "core/async.hpp"

#include <mutex>

#include <boost/asio/async_result.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/async_asio.hpp"
#include "core/log.hpp"
#include "core/pool_call.hpp"
#include "core/util.hpp"

namespace core::async {

namespace asio = boost::asio;
using error_code = boost::system::error_code;

Runtime::Runtime(RuntimeOptions options)
    : options_(std::move(options)),
      impl_(std::make_unique<Impl>(std::max(1, options_.io_threads), std::max(1, options_.blocking_threads))) {
  options_.io_threads = std::max(1, options_.io_threads);
  options_.blocking_threads = std::max(1, options_.blocking_threads);
  // Asio creates the reactor (epoll, eventfd, timerfd) on the first socket or timer. Creating it
  // here means a process that later runs out of descriptors (EMFILE) gets an error for the one
  // socket it could not open, instead of a reactor that cannot be created at all.
  { asio::steady_timer create_reactor(impl_->ioc); }
}

Runtime::~Runtime() { stop(); }

void Runtime::start() {
  if (impl_->started.exchange(true)) return;
  for (int i = 0; i < options_.io_threads; ++i) {
    impl_->threads.emplace_back([this] {
      name_this_thread("rt-io");
      for (;;) {
        try {
          impl_->ioc.run();
          return;
        } catch (const std::exception& e) {
          log::error("io_thread_exception", {{"runtime", options_.name}, {"error", e.what()}});
        }
      }
    });
  }
}

void Runtime::stop() {
  if (impl_->stopped.exchange(true)) return;
  impl_->work.reset();
  impl_->ioc.stop();
  for (auto& t : impl_->threads) {
    if (t.joinable()) t.join();
  }
  impl_->threads.clear();
  impl_->pool.join();
  // Coroutine frames still suspended on the stopped context are destroyed here, while the pool
  // and everything they reference still exist.
  impl_->ioc.shutdown();
}

Executor Runtime::executor() const { return impl_->ioc.get_executor(); }

Executor Runtime::make_strand() const { return asio::make_strand(impl_->ioc); }

std::size_t Runtime::blocking_in_flight() const { return impl_->blocking_in_flight.load(); }

Task<void> Runtime::run_blocking(std::function<void()> fn) {
  ++impl_->blocking_in_flight;
  struct Done {
    std::atomic<std::size_t>& n;
    ~Done() { --n; }
  } done{impl_->blocking_in_flight};
  auto job = [f = std::move(fn)] {
    name_this_thread_once("rt-blocking");
    f();
  };
  co_await core::detail::call_on_pool(impl_->pool, std::move(job));
}

void Runtime::spawn(Task<void> task, std::function<void(std::exception_ptr)> on_done) {
  spawn(executor(), std::move(task), std::move(on_done));
}

void Runtime::spawn(const Executor& ex, Task<void> task, std::function<void(std::exception_ptr)> on_done) {
  asio::co_spawn(ex, std::move(task), [done = std::move(on_done), name = options_.name](std::exception_ptr e) {
    if (done) {
      done(e);
      return;
    }
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex2) {
      log::error("task_failed", {{"runtime", name}, {"error", ex2.what()}});
    } catch (...) {
      log::error("task_failed", {{"runtime", name}, {"error", "unknown exception"}});
    }
  });
}

// ---- Signal ----------------------------------------------------------------------------

/// Every access to `timer` happens under `mu`, so notify() from any thread never races the
/// waiter arming it (Asio timers are not thread-safe objects; the reactor's own queue is).
struct Signal::State {
  explicit State(const Executor& ex) : timer(ex) {}
  std::mutex mu;
  asio::steady_timer timer;
  bool pending = false;    // a notify() not consumed yet
  bool interrupt = false;  // a stop request not seen by the waiter yet
  bool waiting = false;    // a wait() has armed the timer
};

Signal::Signal(const Executor& ex) : state_(std::make_shared<State>(ex)) {}

Signal::~Signal() {
  std::lock_guard lk(state_->mu);
  if (state_->waiting) state_->timer.cancel();
}

void Signal::notify() noexcept {
  try {
    std::lock_guard lk(state_->mu);
    state_->pending = true;
    if (state_->waiting) state_->timer.cancel();
  } catch (...) {
    // cancel() does not throw in practice; notify must never throw
  }
}

Task<bool> Signal::wait(std::chrono::milliseconds timeout) { return wait_state(state_, timeout); }

Task<bool> Signal::wait(std::stop_token stop) {
  auto st = state_;
  std::stop_callback cb(stop, [st] {
    std::lock_guard lk(st->mu);
    st->interrupt = true;
    if (st->waiting) st->timer.cancel();
  });
  for (;;) {
    if (stop.stop_requested()) co_return false;
    if (co_await wait_state(st, std::chrono::hours(24))) co_return true;
  }
}

Task<bool> Signal::wait_state(std::shared_ptr<State> st, std::chrono::steady_clock::duration d) {
  error_code ec;
  auto token = asio::redirect_error(asio::use_awaitable, ec);
  // Named, not written inside the co_await: GCC 12 destroys the captures of a lambda
  // expression that appears inside a co_await expression twice.
  auto arm = [st, d](auto handler) {
    std::unique_lock lk(st->mu);
    if (st->pending || st->interrupt) {
      lk.unlock();
      // Complete through the handler's executor (never inline inside the initiation).
      auto ex = asio::get_associated_executor(handler, st->timer.get_executor());
      asio::post(ex, [h = std::move(handler)]() mutable { std::move(h)(error_code{}); });
      return;
    }
    st->waiting = true;
    st->timer.expires_after(d);
    st->timer.async_wait(std::move(handler));
  };
  co_await asio::async_initiate<decltype(token), void(error_code)>(std::move(arm), token);
  std::lock_guard lk(st->mu);
  st->waiting = false;
  st->interrupt = false;
  if (st->pending) {
    st->pending = false;
    co_return true;
  }
  co_return false;
}

Task<bool> sleep_for(std::chrono::milliseconds d, std::stop_token stop) {
  if (stop.stop_requested()) co_return false;
  Signal s(co_await asio::this_coro::executor);
  std::stop_callback cb(stop, [&s] { s.notify(); });
  const bool woken = co_await s.wait(d);
  co_return !woken;
}

}  // namespace core::async
