#pragma once
// Internal to src/core: the Asio objects behind core::async::Runtime, for core's own I/O code
// (async HTTP/WebSocket client). Domain code includes core/async.hpp only.

#include <atomic>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include "core/async.hpp"

namespace core::async {

struct Runtime::Impl {
  /// io_context whose pending handlers and coroutine frames can be destroyed explicitly at stop.
  struct Context : boost::asio::io_context {
    using boost::asio::io_context::io_context;
    using boost::asio::execution_context::shutdown;
  };

  Impl(int io_threads, int blocking_threads)
      : ioc(io_threads), work(boost::asio::make_work_guard(ioc)), pool(static_cast<std::size_t>(blocking_threads)) {}

  Context ioc;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work;
  boost::asio::thread_pool pool;
  std::vector<std::thread> threads;
  std::atomic<std::size_t> blocking_in_flight{0};
  std::atomic<bool> started{false};
  std::atomic<bool> stopped{false};
};

}  // namespace core::async
