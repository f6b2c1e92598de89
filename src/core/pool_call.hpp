#pragma once
// Internal to src/core: run a blocking function on a thread pool from a coroutine and resume
// the coroutine on its own executor — the one hop both the HTTP server (handlers) and
// core::async::Runtime (blocking work) take.
//
// Why not `co_await asio::co_spawn(pool, body, use_awaitable)`: Asio's co_spawn entry point
// (boost/asio/impl/co_spawn.hpp, co_spawn_entry_point) re-posts a body that finished without
// switching executors to the back of the pool's queue before it completes the caller. Under
// load every answer then waits for every job queued after it: with 1,000 refinements started
// at once, each handler's 202 waited up to 5 s after its handler had returned.

#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include <boost/asio/async_result.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace core::detail {

/// Runs `fn()` on `pool` and resumes the awaiting coroutine on its own executor with the
/// result; an exception thrown by `fn` is rethrown in the caller. The caller's executor counts
/// outstanding work while `fn` runs. R = fn's result: void or default-constructible.
template <class F>
auto call_on_pool(boost::asio::thread_pool& pool, F fn) {
  namespace asio = boost::asio;
  using R = std::invoke_result_t<F&>;
  if constexpr (std::is_void_v<R>) {
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr)>(
        [&pool](auto handler, F f) {
          auto home = asio::prefer(asio::get_associated_executor(handler), asio::execution::outstanding_work.tracked);
          asio::post(pool, [h = std::move(handler), home = std::move(home), f = std::move(f)]() mutable {
            std::exception_ptr error;
            try {
              f();
            } catch (...) {
              error = std::current_exception();
            }
            asio::dispatch(home, [h = std::move(h), error]() mutable { std::move(h)(error); });
          });
        },
        asio::use_awaitable, std::move(fn));
  } else {
    static_assert(std::is_default_constructible_v<R>, "call_on_pool needs a default-constructible result");
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(std::exception_ptr, R)>(
        [&pool](auto handler, F f) {
          auto home = asio::prefer(asio::get_associated_executor(handler), asio::execution::outstanding_work.tracked);
          asio::post(pool, [h = std::move(handler), home = std::move(home), f = std::move(f)]() mutable {
            std::exception_ptr error;
            R result{};
            try {
              result = f();
            } catch (...) {
              error = std::current_exception();
            }
            asio::dispatch(home, [h = std::move(h), error, r = std::move(result)]() mutable {
              std::move(h)(error, std::move(r));
            });
          });
        },
        asio::use_awaitable, std::move(fn));
  }
}

}  // namespace core::detail
