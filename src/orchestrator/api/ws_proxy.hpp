#pragma once
// Secure WebSocket proxy GET /api/ws/refinements/{thread_id}[?after_seq=N]
// (DESIGN.md §5, R2): authenticated by the middleware, authorised through
// proposal_access, forwards the engine's events for the thread unchanged and in
// order, resumes the upstream stream with after_seq on failure, and closes after `end`.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

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
};

/// True if `user_id` may watch `thread_id` (a row in proposal_access for the thread's
/// proposal). Unknown threads are false. May throw on database errors (-> 500).
using ThreadAccessCheck = std::function<bool(const std::string& thread_id, const std::string& user_id)>;

/// Owns the per-connection forwarding threads. Destroy (or call stop()) before the
/// engine client; stop() asks every forwarder to finish and waits up to 5 s.
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

  /// Signals all forwarders to stop and waits for them (bounded). Idempotent.
  void stop();
  /// Number of open proxied connections.
  int active() const { return active_.load(); }

 private:
  void forward(std::shared_ptr<core::http::WsConnection> conn, std::string thread_id, long long after_seq,
               std::string traceparent);

  engine_client::EngineClient& engine_;
  ThreadAccessCheck can_access_;
  WsProxyOptions options_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> active_{0};
  std::atomic<int> threads_{0};
  mutable std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace orchestrator::api
