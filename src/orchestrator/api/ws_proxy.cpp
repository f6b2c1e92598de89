// WebSocket proxy from browsers to the engine's event stream.
#include "orchestrator/api/ws_proxy.hpp"

#include <thread>

#include <nlohmann/json.hpp>

#include "core/http_client.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/util.hpp"
#include "core/ws.hpp"
#include "orchestrator/api/problem.hpp"

namespace orchestrator::api {

using core::http::Request;
using core::http::Response;
using core::http::WsAccept;
using core::http::WsConnection;
using nlohmann::json;

namespace {

core::metrics::Gauge& ws_gauge() {
  static auto& g = core::metrics::global().gauge("ide_orchestrator_websocket_connections",
                                                 "Open browser WebSocket connections to the refinement stream proxy");
  return g;
}

std::string error_event(const std::string& error, json context) {
  return json{{"event_type", "error"}, {"data", {{"error", error}, {"context", std::move(context)}}}}.dump();
}

}  // namespace

WsProxy::WsProxy(engine_client::EngineClient& engine, ThreadAccessCheck can_access, WsProxyOptions options)
    : engine_(engine), can_access_(std::move(can_access)), options_(options) {
  ws_gauge().set(0);
}

WsProxy::~WsProxy() { stop(); }

void WsProxy::stop() {
  stopping_ = true;
  std::unique_lock lk(mu_);
  cv_.wait_for(lk, std::chrono::seconds(5), [this] { return threads_.load() == 0; });
}

WsAccept WsProxy::accept(Request& req) {
  WsAccept a;
  const std::string thread_id = req.path_params.count("thread_id") ? req.path_params.at("thread_id") : "";
  std::string user_id;
  try {
    user_id = caller_id(req);
  } catch (const ApiError& e) {
    a.reject = e.response();
    return a;
  }
  if (!core::is_uuid(thread_id) || !can_access_(thread_id, user_id)) {
    a.reject = Response::problem(404, "Not Found", "Refinement thread " + thread_id + " was not found.",
                                 {{"type", problem_type("not-found")}, {"resource", "thread"}, {"id", thread_id}});
    return a;
  }
  long long after_seq = 0;
  if (auto s = req.query_param("after_seq")) {
    std::size_t pos = 0;
    try {
      after_seq = std::stoll(*s, &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    if (s->empty() || pos != s->size() || after_seq < 0) {
      a.reject = validation_problem({{"after_seq", "must be a non-negative integer (the last seq you received)"}});
      return a;
    }
  }
  if (req.context.contains("ws_subprotocol")) a.subprotocol = req.context["ws_subprotocol"].get<std::string>();
  const std::string traceparent = req.traceparent;
  a.on_open = [this, thread_id, after_seq, traceparent](std::shared_ptr<WsConnection> conn) {
    ++threads_;
    try {
      std::thread([this, conn, thread_id, after_seq, traceparent] {
        forward(conn, thread_id, after_seq, traceparent);
        std::lock_guard lk(mu_);
        --threads_;
        cv_.notify_all();
      }).detach();
    } catch (...) {
      --threads_;
      conn->close(1011, "server busy");
    }
  };
  return a;
}

void WsProxy::forward(std::shared_ptr<WsConnection> conn, std::string thread_id, long long after_seq,
                      std::string traceparent) {
  ++active_;
  ws_gauge().inc();
  core::log::info("ws_proxy_open", {{"thread_id", thread_id}, {"after_seq", after_seq}});
  long long last_seq = after_seq;
  int failures = 0;
  std::string last_error;
  bool ended = false;
  while (!ended && !stopping_ && conn->is_open()) {
    if (failures > options_.max_reconnects) break;
    if (failures > 0) {
      auto d = options_.reconnect_base_delay * (1LL << std::min(failures - 1, 10));
      if (d > options_.reconnect_max_delay) d = options_.reconnect_max_delay;
      std::this_thread::sleep_for(d);
      if (stopping_ || !conn->is_open()) break;
    }
    std::unique_ptr<core::http::WsClient> up;
    try {
      up = engine_.open_stream(thread_id, last_seq, traceparent);
    } catch (const engine_client::EngineRejected& e) {
      last_error = e.status() == 404 ? "The engine no longer has this refinement's event stream; "
                                       "read the proposal with GET /api/proposals/{id} for its outcome."
                                     : std::string("The engine refused the stream: ") + e.what();
      failures = options_.max_reconnects + 1;
      break;
    } catch (const std::exception& e) {
      last_error = e.what();
      ++failures;
      continue;
    }
    try {
      while (!stopping_ && conn->is_open()) {
        std::optional<std::string> msg;
        try {
          msg = up->read(options_.poll_interval);
        } catch (const core::http::ClientError& e) {
          if (e.kind() == core::http::ClientErrorKind::timeout) continue;
          throw;
        }
        if (!msg) throw std::runtime_error("the engine closed the stream before the run ended");
        json ev = json::parse(*msg, nullptr, false);
        long long seq = last_seq + 1;  // events without seq (older engines) count one by one
        std::string type;
        if (ev.is_object()) {
          if (ev.contains("seq") && ev["seq"].is_number_integer()) seq = ev["seq"].get<long long>();
          if (ev.contains("event_type") && ev["event_type"].is_string()) type = ev["event_type"].get<std::string>();
        }
        if (seq <= last_seq) continue;  // duplicate after a resume
        if (!conn->send_text(*msg)) break;
        last_seq = seq;
        failures = 0;
        if (type == "end") {
          ended = true;
          break;
        }
      }
    } catch (const std::exception& e) {
      last_error = e.what();
      ++failures;
      core::log::warn("ws_proxy_upstream_failed", {{"thread_id", thread_id}, {"after_seq", last_seq}, {"error", e.what()}});
    }
    if (up) up->close();
  }
  if (ended) {
    conn->close(1000, "end");
  } else if (conn->is_open() && !stopping_) {
    conn->send_text(error_event("Lost the connection to the refinement engine and could not resume: " + last_error,
                                {{"thread_id", thread_id}, {"after_seq", last_seq}}));
    conn->close(1011, "upstream unavailable");
  } else if (conn->is_open()) {
    conn->close(1001, "server shutting down");
  }
  core::log::info("ws_proxy_closed", {{"thread_id", thread_id}, {"last_seq", last_seq}, {"ended", ended}});
  ws_gauge().dec();
  --active_;
}

}  // namespace orchestrator::api
