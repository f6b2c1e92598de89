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
#include <type_traits>
#include <utility>
#include <variant>

#include <boost/asio/async_result.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace core::detail {

/// The completion signature of call_on_pool for a result type R.
template <class R>
struct PoolCallSignature {
  using type = void(std::exception_ptr, R);
};
template <>
struct PoolCallSignature<void> {
  using type = void(std::exception_ptr);
};

/// Runs `fn()` on `pool` and resumes the awaiting coroutine on its own executor with the
/// result; an exception thrown by `fn` is rethrown in the caller. The caller's executor counts
/// outstanding work while `fn` runs. R = fn's result: void or default-constructible.
template <class F>
auto call_on_pool(boost::asio::thread_pool& pool, F fn) {
  namespace asio = boost::asio;
  using R = std::invoke_result_t<F&>;
  constexpr bool kVoid = std::is_void_v<R>;
  static_assert(kVoid || std::is_default_constructible_v<R>, "call_on_pool needs a default-constructible result");
  using Signature = typename PoolCallSignature<R>::type;
  using Held = std::conditional_t<kVoid, std::monostate, R>;
  return asio::async_initiate<const asio::use_awaitable_t<>&, Signature>(
      [&pool](auto handler, F f) {
        auto home = asio::prefer(asio::get_associated_executor(handler), asio::execution::outstanding_work.tracked);
        asio::post(pool, [h = std::move(handler), home = std::move(home), f = std::move(f)]() mutable {
          std::exception_ptr error;
          Held result{};
          try {
            if constexpr (kVoid) {
              f();
            } else {
              result = f();
            }
          } catch (...) {
            error = std::current_exception();
          }
          asio::dispatch(home, [h = std::move(h), error, r = std::move(result)]() mutable {
            if constexpr (kVoid) {
              std::move(h)(error);
            } else {
              std::move(h)(error, std::move(r));
            }
          });
        });
      },
      asio::use_awaitable, std::move(fn));
}

}  // namespace core::detail
