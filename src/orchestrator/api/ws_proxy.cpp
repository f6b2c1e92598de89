// WebSocket proxy from browsers to the engine's event stream.
#include "orchestrator/api/ws_proxy.hpp"

#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/http_client.hpp"
#include "core/json_parse.hpp"
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
  // `error` may carry engine text (invalid UTF-8 must not throw here).
  return json{{"event_type", "error"}, {"data", {{"error", error}, {"context", std::move(context)}}}}.dump(
      -1, ' ', false, json::error_handler_t::replace);
}

/// Keeps the open-connection counter and gauge balanced whatever way forward() exits.
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

/// Outcome of waiting for a stalled browser to drain its send queue.
enum class Drain { ok, gone, stopping, timed_out };

}  // namespace

WsProxy::WsProxy(engine_client::EngineClient& engine, ThreadAccessCheck can_access, WsProxyOptions options)
    : engine_(engine), can_access_(std::move(can_access)), options_(options) {
  ws_gauge().set(0);
}

WsProxy::~WsProxy() { stop(); }

void WsProxy::stop() {
  std::vector<std::shared_ptr<WsConnection>> conns;
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    for (auto& [id, f] : forwarders_) conns.push_back(f.conn);
  }
  cv_.notify_all();  // wakes backoff and drain waits
  for (auto& c : conns) {
    if (c && c->is_open()) c->close(1001, "server shutting down");
  }
  // Join outside the lock: a finishing forwarder takes mu_ to mark itself finished.
  std::map<std::uint64_t, Forwarder> all;
  {
    std::lock_guard lk(mu_);
    all.swap(forwarders_);
  }
  for (auto& [id, f] : all) {
    if (f.thread.joinable()) f.thread.join();
  }
}

bool WsProxy::wait_unless_stopping(std::chrono::milliseconds d) {
  std::unique_lock lk(mu_);
  return !cv_.wait_for(lk, d, [this] { return stopping_.load(); });
}

void WsProxy::reap_finished() {
  std::vector<std::thread> done;
  {
    std::lock_guard lk(mu_);
    for (auto it = forwarders_.begin(); it != forwarders_.end();) {
      if (it->second.finished) {
        done.push_back(std::move(it->second.thread));
        it = forwarders_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& t : done) {
    if (t.joinable()) t.join();
  }
}

void WsProxy::run_forwarder(std::uint64_t id, std::shared_ptr<WsConnection> conn, std::string thread_id,
                            long long after_seq, std::string traceparent) {
  try {
    forward(conn, thread_id, after_seq, std::move(traceparent));
  } catch (const std::exception& e) {
    core::log::error("ws_proxy_forwarder_failed", {{"thread_id", thread_id}, {"error", e.what()}});
  } catch (...) {
    core::log::error("ws_proxy_forwarder_failed", {{"thread_id", thread_id}, {"error", "unknown exception"}});
  }
  try {
    if (conn->is_open()) conn->close(1011, "internal error");
  } catch (...) {
  }
  std::lock_guard lk(mu_);
  auto it = forwarders_.find(id);
  if (it != forwarders_.end()) it->second.finished = true;
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
    reap_finished();
    std::lock_guard lk(mu_);
    if (stopping_) {
      conn->close(1001, "server shutting down");
      return;
    }
    const std::uint64_t id = next_id_++;
    Forwarder& f = forwarders_[id];
    f.conn = conn;
    try {
      // The new thread marks itself finished under mu_, which we hold until `f.thread` is set.
      f.thread = std::thread(&WsProxy::run_forwarder, this, id, conn, thread_id, after_seq, traceparent);
    } catch (...) {
      forwarders_.erase(id);
      conn->close(1011, "server busy");
    }
  };
  return a;
}

void WsProxy::forward(std::shared_ptr<WsConnection> conn, std::string thread_id, long long after_seq,
                      std::string traceparent) {
  ActiveGuard active(active_);
  core::log::info("ws_proxy_open", {{"thread_id", thread_id}, {"after_seq", after_seq}});
  long long last_seq = after_seq;
  int failures = 0;
  std::string last_error;
  bool ended = false;
  bool too_slow = false;
  // Back-pressure: stop reading upstream while the browser's queue is above the bound.
  auto drain = [&]() {
    if (conn->queued() <= options_.max_queued_frames) return Drain::ok;
    const auto deadline = std::chrono::steady_clock::now() + options_.drain_timeout;
    while (conn->queued() > options_.max_queued_frames) {
      if (!conn->is_open()) return Drain::gone;
      if (std::chrono::steady_clock::now() >= deadline) return Drain::timed_out;
      if (!wait_unless_stopping(std::chrono::milliseconds(20))) return Drain::stopping;
    }
    return Drain::ok;
  };
  while (!ended && !too_slow && !stopping_ && conn->is_open()) {
    if (failures > options_.max_reconnects) break;
    if (failures > 0) {
      auto d = options_.reconnect_base_delay * (1LL << std::min(failures - 1, 10));
      if (d > options_.reconnect_max_delay) d = options_.reconnect_max_delay;
      if (!wait_unless_stopping(d) || !conn->is_open()) break;
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
        const Drain dr = drain();
        if (dr == Drain::timed_out) {
          too_slow = true;
          break;
        }
        if (dr != Drain::ok) break;
        std::optional<std::string> msg;
        try {
          msg = up->read(options_.poll_interval);
        } catch (const core::http::ClientError& e) {
          if (e.kind() == core::http::ClientErrorKind::timeout) continue;
          throw;
        }
        if (!msg) {
          // A normal close (1000) is the engine's "stream complete": it follows `end`, and it comes
          // alone when the browser resumed with after_seq at or past `end` (DESIGN.md §4 stream).
          if (up->close_code() == 1000) {
            ended = true;
            break;
          }
          throw std::runtime_error("the engine closed the stream before the run ended");
        }
        const json ev = core::json::parse_or_null(*msg, core::json::kInternalLimits).value_or(nullptr);
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
  } else if (too_slow) {
    core::log::warn("ws_proxy_client_too_slow",
                    {{"thread_id", thread_id}, {"last_seq", last_seq}, {"queued", conn->queued()}});
    // 1013 Try Again Later (RFC 6455 §7.4.1 registry): the browser resumes with after_seq.
    conn->close(1013, "client too slow; reconnect with after_seq=" + std::to_string(last_seq));
  } else if (conn->is_open() && !stopping_) {
    conn->send_text(error_event("Lost the connection to the refinement engine and could not resume: " + last_error,
                                {{"thread_id", thread_id}, {"after_seq", last_seq}}));
    conn->close(1011, "upstream unavailable");
  } else if (conn->is_open()) {
    conn->close(1001, "server shutting down");
  }
  core::log::info("ws_proxy_closed", {{"thread_id", thread_id}, {"last_seq", last_seq}, {"ended", ended}});
}

}  // namespace orchestrator::api
