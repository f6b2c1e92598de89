#pragma once
// Secure WebSocket proxy GET /api/ws/refinements/{thread_id}[?after_seq=N] and
// GET /api/ws/runs/{thread_id}[?after_seq=N] (docs/event-path-and-replicas.md "Following a
// thread"): authenticated by the middleware and authorised before the upgrade (proposal_access
// for a refinement's thread, workflow membership for a run's); once open, the connection is a
// subscriber of the thread's follower (one upstream engine stream per thread for the tracker
// and every browser). Forwards the engine's events unchanged and in order from after_seq,
// closes 1000 after `end`, 1013 when the browser falls too far behind (it resumes with
// after_seq), 1011 with an `error` event when the engine no longer knows the run, 1008 with an
// `error` event once the caller may no longer watch it (access is re-checked every
// WsProxyOptions::recheck_interval: a member removed, an account disabled or deleted, the
// workflow deleted), 1001 at shutdown. A coroutine on the connection's strand: no thread per
// browser.
//
// Tracing (docs/observability.md): each proxied connection is one `ws_proxy.stream` span, a child
// of the upgrade request's span (the browser's own trace) with a span link to the trace of the
// request that started the refinement (the traceparent stored with its proposal): many browsers
// and reconnects watch one refinement, so they link to it rather than join it.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>

#include "core/router.hpp"
#include "orchestrator/follow/follower.hpp"

namespace orchestrator::api {

/// Tuning of the proxy.
struct WsProxyOptions {
  /// Frames / bytes queued on a browser's connection before the proxy waits for it to drain.
  std::size_t max_queued_frames = 64;
  std::size_t max_queued_bytes = 1u << 20;
  /// Live events a browser may be behind (arrived, not yet queued on its connection) before it is
  /// closed with 1013; keep max_behind_bytes below follow::FollowOptions::buffer_bytes.
  std::size_t max_behind_frames = 1024;
  std::size_t max_behind_bytes = 1u << 20;
  /// A browser that does not drain its connection queue at all for this long is closed with 1013.
  std::chrono::milliseconds drain_timeout{30000};
  /// How often an open connection's access is checked again (on the blocking pool given to the
  /// proxy; 0 = only at the upgrade). A database that cannot answer keeps the stream open.
  std::chrono::milliseconds recheck_interval{30000};
};

/// When `user_id` may watch `thread_id` (a row in proposal_access for the thread's proposal, or
/// membership of the workflow of the thread's run): the W3C traceparent of the request that
/// started the thread's refinement ("" = none, and for runs); nullopt when not allowed or
/// unknown. May throw on database errors (core::Unavailable -> 503 at the upgrade).
using ThreadAccessCheck =
    std::function<std::optional<std::string>(const std::string& thread_id, const std::string& user_id)>;

/// The proxy. Holds no threads; open connections end when the server stops (1001) or the hub
/// stops following (1001). Destroy after the HTTP server.
class WsProxy {
 public:
  /// Borrows `hub`, which must outlive the proxy's connections (stop the server first), and
  /// `blocking`, whose pool runs the periodic access re-checks (SQL; null = no re-checks); stop
  /// that runtime before destroying the proxy.
  WsProxy(follow::FollowHub& hub, ThreadAccessCheck can_access, WsProxyOptions options = {},
          core::async::Runtime* blocking = nullptr);
  WsProxy(const WsProxy&) = delete;
  WsProxy& operator=(const WsProxy&) = delete;

  /// What a proxied stream belongs to; names the thread in the 404 ("Refinement thread …",
  /// "Run thread …").
  enum class Subject { refinement, run };

  /// The route handler (register with Router::add_ws, one per Subject). Rejections before the
  /// upgrade: 404 problem when the thread is unknown or not the caller's, 400 naming `after_seq`
  /// when it is not an integer from 0 to core::http::kMaxAfterSeq.
  core::http::WsAccept accept(core::http::Request& req, Subject subject = Subject::refinement);

  /// Number of open proxied connections.
  int active() const { return active_.load(); }

 private:
  /// Relays one connection; `traceparent` is the upgrade request's span (the parent of the
  /// stream span), `refinement_traceparent` the refinement's (linked; "" = none).
  core::async::Task<void> relay(std::shared_ptr<core::http::WsConnection> conn, std::string thread_id,
                                std::string user_id, long long after_seq, Subject subject, std::string traceparent,
                                std::string refinement_traceparent);
  /// Every recheck_interval until `gone` is stopped: asks can_access_ again (on the blocking
  /// pool); when it says no, sends an `error` event, closes the connection with 1008 and stops
  /// `gone` (which ends relay()'s wait).
  core::async::Task<void> recheck(std::weak_ptr<core::http::WsConnection> conn, std::shared_ptr<std::stop_source> gone,
                                  std::string thread_id, std::string user_id);

  follow::FollowHub& hub_;
  ThreadAccessCheck can_access_;
  WsProxyOptions options_;
  core::async::Runtime* blocking_;
  std::atomic<int> active_{0};
};

}  // namespace orchestrator::api
