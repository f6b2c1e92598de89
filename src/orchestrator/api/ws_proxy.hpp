#pragma once
// Secure WebSocket proxy GET /api/ws/refinements/{thread_id}[?after_seq=N]
// (DESIGN.md §5, R2): authenticated by the middleware, authorised through
// proposal_access, forwards the engine's events for the thread unchanged and in
// order, resumes the upstream stream with after_seq on failure, and closes after `end`.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/router.hpp"
#include "orchestrator/engine_client/engine_client.hpp"

namespace orchestrator::api {

/// Tuning of the proxy.
struct WsProxyOptions {
  /// Upstream reconnects in a row (without a forwarded event in between) before giving up.
  int max_reconnects = 5;
  /// Backoff between reconnects: base * 2^n, capped at max.
  std::chrono::milliseconds reconnect_base_delay{250};
  std::chrono::milliseconds reconnect_max_delay{4000};
  /// One blocking upstream read slice; the browser side is checked between slices.
  std::chrono::milliseconds poll_interval{250};
  /// Back-pressure: when more than this many frames wait for the browser, the proxy
  /// stops reading upstream until the queue drains below the bound.
  std::size_t max_queued_frames = 256;
  /// How long a stalled browser may keep the queue above max_queued_frames before the
  /// proxy closes it with 1013 "try again later" (it can reconnect with after_seq).
  std::chrono::milliseconds drain_timeout{30000};
};

/// True if `user_id` may watch `thread_id` (a row in proposal_access for the thread's
/// proposal). Unknown threads are false. May throw on database errors (-> 500).
using ThreadAccessCheck = std::function<bool(const std::string& thread_id, const std::string& user_id)>;

/// Owns the per-connection forwarding threads (joinable, kept in a registry; finished
/// ones are reaped on the next connection). Destroy (or call stop()) before the engine
/// client and before the HTTP server: stop() wakes backoff waits, closes every browser
/// connection and joins all forwarders.
class WsProxy {
 public:
  WsProxy(engine_client::EngineClient& engine, ThreadAccessCheck can_access, WsProxyOptions options = {});
  ~WsProxy();
  WsProxy(const WsProxy&) = delete;
  WsProxy& operator=(const WsProxy&) = delete;

  /// The route handler (register with Router::add_ws). Rejections before the upgrade:
  /// 404 problem when the thread is unknown or not the caller's, 400 naming `after_seq`
  /// when it is not a non-negative integer.
  core::http::WsAccept accept(core::http::Request& req);

  /// Signals all forwarders to stop, wakes their waits, closes the browser connections
  /// (1001) and joins every forwarder thread. A forwarder notices within one poll slice,
  /// or after an in-flight upstream open/close (bounded by the engine client timeouts).
  /// Idempotent; new connections after stop() are closed immediately.
  void stop();
  /// Number of open proxied connections.
  int active() const { return active_.load(); }

 private:
  void forward(std::shared_ptr<core::http::WsConnection> conn, std::string thread_id, long long after_seq,
               std::string traceparent);
  /// Runs forward() with exception logging; marks the registry entry `id` finished.
  void run_forwarder(std::uint64_t id, std::shared_ptr<core::http::WsConnection> conn, std::string thread_id,
                     long long after_seq, std::string traceparent);
  /// Waits up to `d`; returns false early when stop() was called.
  bool wait_unless_stopping(std::chrono::milliseconds d);
  /// Joins registry entries whose forwarder finished. Caller holds no lock.
  void reap_finished();

  /// One forwarder thread and its browser connection.
  struct Forwarder {
    std::thread thread;
    std::shared_ptr<core::http::WsConnection> conn;
    bool finished = false;
  };

  engine_client::EngineClient& engine_;
  ThreadAccessCheck can_access_;
  WsProxyOptions options_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> active_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::uint64_t, Forwarder> forwarders_;  // guarded by mu_
  std::uint64_t next_id_ = 0;                      // guarded by mu_
};

}  // namespace orchestrator::api
