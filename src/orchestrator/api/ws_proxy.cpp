// WebSocket proxy from browsers to a thread's follower (ws_proxy.hpp).
#include "orchestrator/api/ws_proxy.hpp"

#include <boost/asio/this_coro.hpp>
#include <nlohmann/json.hpp>

#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/query.hpp"
#include "core/tracing.hpp"
#include "core/unavailable.hpp"
#include "core/util.hpp"
#include "core/ws.hpp"
#include "orchestrator/api/problem.hpp"

// GCC 12 reports -Wmismatched-new-delete for large coroutines whose frames Asio allocates with
// its recycling allocator (a false positive: the frame's own operator new/delete pair is used).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace orchestrator::api {

using core::http::Request;
using core::http::Response;
using core::http::WsAccept;
using core::http::WsConnection;
using follow::Item;
using nlohmann::json;

namespace {

core::metrics::Gauge& ws_gauge() {
  static auto& g = core::metrics::global().gauge("ide_orchestrator_websocket_connections",
                                                 "Open browser WebSocket connections to the refinement stream proxy");
  return g;
}

std::string error_event(const std::string& error, json context) {
  // `error` may carry engine text (invalid UTF-8 must not throw here).
  return json{{"event_type", "error"}, {"data", {{"error", error}, {"context", std::move(context)}}}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
}

/// Where to read the outcome of a stream that ended without `end`.
std::string outcome_hint(WsProxy::Subject subject) {
  return subject == WsProxy::Subject::run
             ? " Read the run with GET /api/workflows/{id}/runs/{run_id} for its outcome (a deleted workflow's runs "
               "are gone with it)."
             : " Read the proposal with GET /api/proposals/{id} for its outcome (a deleted workflow's proposals are "
               "gone with it).";
}

std::string too_slow_reason(long long last_seq) {
  return "client too slow; reconnect with after_seq=" + std::to_string(last_seq);
}

/// Keeps the open-connection counter and gauge balanced whatever way relay() exits.
class ActiveGuard {
 public:
  explicit ActiveGuard(std::atomic<int>& n) : n_(n) {
    ++n_;
    ws_gauge().inc();
  }
  ~ActiveGuard() {
    ws_gauge().dec();
    --n_;
  }
  ActiveGuard(const ActiveGuard&) = delete;
  ActiveGuard& operator=(const ActiveGuard&) = delete;

 private:
  std::atomic<int>& n_;
};

}  // namespace

WsProxy::WsProxy(follow::FollowHub& hub, ThreadAccessCheck can_access, WsProxyOptions options,
                 core::async::Runtime* blocking)
    : hub_(hub), can_access_(std::move(can_access)), options_(options), blocking_(blocking) {
  ws_gauge().set(0);
}

WsAccept WsProxy::accept(Request& req, Subject subject) {
  WsAccept a;
  const std::string thread_id = req.path_params.count("thread_id") ? req.path_params.at("thread_id") : "";
  std::string user_id;
  try {
    user_id = caller_id(req);
  } catch (const ApiError& e) {
    a.reject = e.response();
    return a;
  }
  std::optional<std::string> refinement_trace;
  try {
    if (core::is_uuid(thread_id)) refinement_trace = can_access_(thread_id, user_id);
  } catch (const core::Unavailable& e) {
    // The database could not say now (store::DatabaseUnavailable): 503 + Retry-After, as for
    // every other route; the browser reconnects later.
    a.reject = to_response(e, req);
    return a;
  }
  if (!refinement_trace) {
    const char* what = subject == Subject::run ? "Run thread " : "Refinement thread ";
    a.reject = Response::problem(404, "Not Found", what + thread_id + " was not found.",
                                 {{"type", problem_type("not-found")}, {"resource", "thread"}, {"id", thread_id}});
    return a;
  }
  const auto parsed_after = core::http::parse_after_seq(req.query_param("after_seq"));
  if (!parsed_after) {
    a.reject = validation_problem({{"after_seq", core::http::after_seq_rule() + " (the last seq you received)"}});
    return a;
  }
  const long long after_seq = *parsed_after;
  if (req.context.contains("ws_subprotocol")) a.subprotocol = req.context["ws_subprotocol"].get<std::string>();
  a.on_open_async = [this, thread_id, user_id, after_seq, subject, tp = req.traceparent,
                     refinement = std::move(*refinement_trace)](std::shared_ptr<WsConnection> conn) {
    return relay(std::move(conn), thread_id, user_id, after_seq, subject, tp, refinement);
  };
  return a;
}

core::async::Task<void> WsProxy::relay(std::shared_ptr<WsConnection> conn, std::string thread_id,
                                       std::string user_id, long long after_seq, Subject subject,
                                       std::string traceparent, std::string refinement_traceparent) {
  ActiveGuard active(active_);
  core::tracing::Span span = core::tracing::start_span("ws_proxy.stream", core::tracing::parse_traceparent(traceparent),
                                                       core::tracing::kInternal);
  if (const auto refinement = core::tracing::parse_traceparent(refinement_traceparent)) span.add_link(*refinement);
  span.set_attribute("thread_id", thread_id);
  span.set_attribute("after_seq", after_seq);
  core::log::info("ws_proxy_open", {{"thread_id", thread_id}, {"after_seq", after_seq}});
  const auto ex = co_await boost::asio::this_coro::executor;
  // The browser leaving ends the wait for the next event at once.
  auto gone = std::make_shared<std::stop_source>();
  auto on_close = [gone] { gone->request_stop(); };
  conn->on_close(on_close);
  conn->on_message([](const std::string&) {});  // browsers have nothing to say; pings are frames
  auto last_sent = std::make_shared<std::atomic<long long>>(after_seq);
  std::weak_ptr<WsConnection> weak = conn;
  follow::SubscribeOptions so;
  so.max_behind_frames = options_.max_behind_frames;
  so.max_behind_bytes = options_.max_behind_bytes;
  // 1013 Try Again Later (RFC 6455 §7.4.1): the browser resumes with after_seq.
  so.on_too_slow = [weak, last_sent] {
    if (auto c = weak.lock()) c->close(1013, too_slow_reason(last_sent->load()));
  };
  so.traceparent = span.context().to_traceparent();
  auto sub = hub_.subscribe(thread_id, after_seq, ex, std::move(so));
  if (blocking_ && options_.recheck_interval.count() > 0) blocking_->spawn(ex, recheck(weak, gone, thread_id, user_id));
  const auto stop = gone->get_token();
  bool too_slow = false;
  std::string ended = "closed";
  for (bool over = false; !over;) {
    Item item = co_await sub->next(stop);
    switch (item.kind) {
      case Item::Kind::event: {
        if (!conn->send_text(item.event->text)) {
          over = true;
          break;
        }
        last_sent->store(item.event->seq);
        if (conn->queued() < options_.max_queued_frames && conn->queued_bytes() < options_.max_queued_bytes) break;
        const bool drained =
            co_await conn->wait_writable(options_.max_queued_frames, options_.max_queued_bytes, options_.drain_timeout);
        if (!drained) {
          too_slow = conn->is_open();
          over = true;
        }
        break;
      }
      case Item::Kind::ended:
        conn->close(1000, "end");
        ended = "end";
        over = true;
        break;
      case Item::Kind::gone:
      case Item::Kind::too_large: {
        // 1011 (the server cannot go on); for too_large not 1009: the browser sent nothing too big.
        const bool forgotten = item.kind == Item::Kind::gone;
        conn->send_text(error_event(item.reason + outcome_hint(subject),
                                    {{"thread_id", thread_id}, {"after_seq", last_sent->load()}}));
        conn->close(1011, forgotten ? "run unavailable" : "event too large");
        ended = forgotten ? "gone" : "too_large";
        over = true;
        break;
      }
      case Item::Kind::too_slow:
        too_slow = true;
        over = true;
        break;
      case Item::Kind::stopped:
        if (conn->is_open()) conn->close(1001, "server shutting down");
        over = true;
        break;
    }
  }
  if (too_slow) {
    core::log::warn("ws_proxy_client_too_slow",
                    {{"thread_id", thread_id}, {"last_seq", last_sent->load()}, {"queued", conn->queued()}});
    conn->close(1013, too_slow_reason(last_sent->load()));
    ended = "too_slow";
  }
  gone->request_stop();  // ends recheck()
  span.set_attribute("last_seq", last_sent->load());
  span.set_attribute("outcome", ended);
  core::log::info("ws_proxy_closed", {{"thread_id", thread_id}, {"last_seq", last_sent->load()}, {"outcome", ended}});
}

core::async::Task<void> WsProxy::recheck(std::weak_ptr<WsConnection> conn, std::shared_ptr<std::stop_source> gone,
                                         std::string thread_id, std::string user_id) {
  const auto stop = gone->get_token();
  while (co_await core::async::sleep_for(options_.recheck_interval, stop)) {
    auto check = [access = can_access_, thread_id, user_id] { return access(thread_id, user_id).has_value(); };
    bool allowed = true;
    try {
      allowed = co_await blocking_->blocking(std::move(check));
    } catch (const std::exception& e) {
      // The database cannot say now: the stream goes on and the next round asks again.
      core::log::warn("ws_proxy_recheck_failed", {{"thread_id", thread_id}, {"error", e.what()}});
      continue;
    }
    if (allowed || stop.stop_requested()) continue;
    core::log::info("ws_proxy_access_revoked", {{"thread_id", thread_id}, {"user_id", user_id}});
    if (auto c = conn.lock()) {
      c->send_text(error_event("You may no longer watch this thread (your access to its workflow was removed, or "
                               "your account was disabled).",
                               {{"thread_id", thread_id}}));
      // 1008 Policy Violation (RFC 6455 §7.4.1): reconnecting does not help.
      c->close(1008, "access revoked");
    }
    gone->request_stop();
    co_return;
  }
}

}  // namespace orchestrator::api
