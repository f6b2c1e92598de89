// Spec Engine HTTP and WebSocket handlers on the core router.
#include "spec_engine/api/routes.hpp"

#include <atomic>
#include <charconv>
#include <chrono>
#include <thread>

#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/ws.hpp"
#include "spec_engine/api/invoke.hpp"

namespace spec_engine::api {

namespace {

using core::http::Request;
using core::http::Response;

core::metrics::Gauge& active_streams() {
  return core::metrics::global().gauge("spec_engine_active_streams", "Open WebSocket event streams");
}
core::metrics::Counter& events_sent() {
  return core::metrics::global().counter("spec_engine_events_sent_total",
                                         "Events sent to WebSocket stream clients, by event_type");
}

Response not_found(const std::string& thread_id) {
  return Response::problem(404, "Thread not found", "No thread with id '" + thread_id + "'.",
                           {{"errors", nlohmann::json::array({{{"field", "thread_id"}, {"message", "unknown thread"}}})}});
}

std::string thread_param(const Request& req) {
  auto it = req.path_params.find("thread_id");
  return it == req.path_params.end() ? std::string() : it->second;
}

Response handle_invoke(const ApiContext& ctx, Request& req) {
  auto parsed = parse_invoke(req);
  if (auto* err = std::get_if<InvokeError>(&parsed)) {
    nlohmann::json fields = {{"request_id", req.request_id}, {"traceparent", req.traceparent}, {"status", err->status}};
    nlohmann::json list = nlohmann::json::array();
    for (const auto& e : err->errors) list.push_back(e.field);
    fields["fields"] = list;
    core::log::info("invoke rejected", fields);
    return err->to_response();
  }
  auto& ok = std::get<ParsedInvoke>(parsed);
  ok.job.traceparent = req.traceparent;
  auto res = ctx.runs->submit(ok.job);
  nlohmann::json fields = {{"thread_id", ok.job.job_id}, {"trace_id", ok.job.trace_id},
                           {"traceparent", req.traceparent}, {"request_id", req.request_id}, {"mode", ok.mode}};
  if (ok.cloudevent.is_object() && ok.cloudevent.contains("id")) fields["cloudevent_id"] = ok.cloudevent["id"];
  switch (res.outcome) {
    case bus::SubmitOutcome::started: {
      core::log::info("run accepted", fields);
      auto r = Response::json(202, {{"thread_id", ok.job.job_id}, {"status", "started"}});
      r.headers.set("Location", "/spec-engine/state/" + ok.job.job_id);
      return r;
    }
    case bus::SubmitOutcome::existing: {
      // Idempotent on job_id: the same job is never run twice. Same 202 shape as a first
      // invoke, plus the existing thread's current status.
      const std::string status = res.thread ? res.thread->status : std::string(store::kQueued);
      fields["thread_status"] = status;
      core::log::info("duplicate job: existing thread returned", fields);
      auto r = Response::json(
          202, {{"thread_id", ok.job.job_id}, {"status", "started"}, {"duplicate", true}, {"thread_status", status}});
      r.headers.set("Location", "/spec-engine/state/" + ok.job.job_id);
      return r;
    }
    case bus::SubmitOutcome::queue_full: {
      core::log::warn("invoke rejected: queue full", fields);
      const auto secs = std::to_string(ctx.runs->options().retry_after.count());
      auto r = Response::problem(429, "Too many runs", "The run queue is full; retry after " + secs + " s.");
      r.headers.set("Retry-After", secs);
      return r;
    }
    case bus::SubmitOutcome::shutting_down:
      break;
  }
  auto r = Response::problem(503, "Shutting down", "The engine is stopping; retry on another instance.");
  r.headers.set("Retry-After", "5");
  return r;
}

Response handle_state(const ApiContext& ctx, Request& req) {
  const auto id = thread_param(req);
  auto rec = ctx.store->get_thread(id);
  if (!rec) return not_found(id);
  return Response::json(200, rec->to_state_json());
}

Response handle_delete(const ApiContext& ctx, Request& req) {
  const auto id = thread_param(req);
  if (!ctx.runs->remove(id)) return not_found(id);
  Response r;
  r.status = 204;
  return r;
}

Response handle_ready(const ApiContext& ctx) {
  nlohmann::json reasons = nlohmann::json::array();
  nlohmann::json checks = nlohmann::json::object();
  const bool db_ok = ctx.store->ping();
  checks["database"] = db_ok ? "ok" : "unreachable";
  if (!db_ok) reasons.push_back("database unreachable");
  checks["bus"] = "ok";  // in-process hub: available whenever the process is
  if (ctx.nats_state) {
    const std::string nats = ctx.nats_state();
    checks["nats"] = nats;
    if (nats != "connected") reasons.push_back("nats " + nats);
  }
  if (!ctx.runs->accepting()) {
    checks["capacity"] = "shutting down";
    reasons.push_back("shutting down");
  } else if (ctx.runs->queue_full()) {
    checks["capacity"] = "queue full";
    reasons.push_back("run queue full (" + std::to_string(ctx.runs->queued()) + " waiting)");
  } else {
    checks["capacity"] = "ok";
  }
  nlohmann::json body = {{"status", reasons.empty() ? "ready" : "not_ready"},
                         {"checks", checks},
                         {"running", ctx.runs->running()},
                         {"queued", ctx.runs->queued()}};
  if (!reasons.empty()) body["reasons"] = reasons;
  return Response::json(reasons.empty() ? 200 : 503, body);
}

/// Per-connection stream state shared between the sink and the close callback.
struct StreamState {
  std::atomic<bool> ended{false};
  std::atomic<std::uint64_t> sub_id{0};
};

core::http::WsAccept handle_stream(const ApiContext& ctx, Request& req) {
  core::http::WsAccept accept;
  const auto id = thread_param(req);
  const auto after = parse_after_seq(req.query_param("after_seq"));
  if (!after) {
    accept.reject = Response::problem(
        400, "Invalid request", "after_seq must be a non-negative integer.",
        {{"errors", nlohmann::json::array({{{"field", "after_seq"}, {"message", "must be an integer >= 0"}}})}});
    return accept;
  }
  if (!ctx.store->get_thread(id)) {
    accept.reject = not_found(id);
    return accept;
  }
  const std::int64_t after_seq = *after;
  const std::string request_id = req.request_id;
  accept.on_open = [ctx, id, after_seq, request_id](std::shared_ptr<core::http::WsConnection> conn) {
    active_streams().inc();
    auto state = std::make_shared<StreamState>();
    std::weak_ptr<core::http::WsConnection> weak = conn;
    const std::size_t max_queue = ctx.max_ws_queue;
    const std::size_t max_bytes = ctx.max_ws_queue_bytes;
    auto sink = [weak, state, max_queue, max_bytes](const store::EventRecord& ev) {
      auto c = weak.lock();
      if (!c || state->ended) return;
      c->send_text(ev.to_json().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
      events_sent().inc({{"event_type", ev.event_type}});
      if (ev.event_type == "end") {
        state->ended = true;
        c->close(1000, "end");
      } else if (c->queued() > max_queue || (c->queued() > 1 && c->queued_bytes() > max_bytes)) {
        state->ended = true;
        c->close(1013, "client too slow");
      }
    };
    auto on_drop = [weak, state] {
      state->ended = true;
      if (auto c = weak.lock()) c->close(1000, "thread deleted");
    };
    store::Store* st = ctx.store;
    auto loader = [st, id](std::int64_t after_seq_, std::size_t limit) {
      return st->events_after(id, after_seq_, limit);
    };
    // Replay pacing: wait (bounded, interrupted by close or server stop) until the client has
    // written most of what is queued, so a long history is never queued at once.
    const std::size_t low_frames = std::max<std::size_t>(1, max_queue / 4);
    const std::size_t low_bytes = std::max<std::size_t>(1, max_bytes / 4);
    const auto stall = ctx.replay_stall_timeout;
    auto pace = [weak, state, low_frames, low_bytes, stall]() -> bool {
      const auto deadline = std::chrono::steady_clock::now() + stall;
      for (;;) {
        auto c = weak.lock();
        if (!c || state->ended || !c->is_open()) return false;
        if (c->queued() < low_frames && c->queued_bytes() < low_bytes) return true;
        if (std::chrono::steady_clock::now() >= deadline) {
          state->ended = true;
          c->close(1013, "client too slow");
          return false;
        }
        c.reset();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    };
    bus::EventHub* hub = ctx.hub;
    try {
      state->sub_id = hub->subscribe_paged(id, after_seq, loader, sink, pace, ctx.replay_page_size, on_drop);
    } catch (const std::exception& e) {
      core::log::error("stream replay failed", {{"thread_id", id}, {"error", e.what()}});
      active_streams().dec();
      conn->close(1011, "replay failed");
      return;
    }
    conn->on_message([](const std::string&) {});  // clients have nothing to say; pings are WebSocket frames
    conn->on_close([hub, state] {
      hub->unsubscribe(state->sub_id);
      active_streams().dec();
    });
    core::log::info("stream opened", {{"thread_id", id}, {"after_seq", after_seq}, {"request_id", request_id}});
    if (state->ended) return;
    // The run may have ended while we replayed: its `end` is then stored (and was
    // either delivered live or is fetched now). If `end` lies at or before after_seq,
    // nothing more will come: close normally.
    try {
      auto rec = st->get_thread(id);
      if (!rec) {
        state->ended = true;
        conn->close(1000, "thread deleted");
      } else if (store::is_terminal(rec->status)) {
        hub->catch_up(state->sub_id);
        if (!state->ended) {
          state->ended = true;
          conn->close(1000, "end");
        }
      }
    } catch (const std::exception& e) {
      core::log::error("stream status check failed", {{"thread_id", id}, {"error", e.what()}});
    }
  };
  return accept;
}

}  // namespace

std::optional<std::int64_t> parse_after_seq(const std::optional<std::string>& value) {
  if (!value) return 0;
  if (value->empty() || value->size() > 18) return std::nullopt;
  std::int64_t n = 0;
  auto [p, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
  if (ec != std::errc() || p != value->data() + value->size() || n < 0) return std::nullopt;
  return n;
}

void register_routes(core::http::Router& router, ApiContext ctx) {
  active_streams();
  events_sent();
  router.add("POST", "/spec-engine/invoke", [ctx](Request& req) { return handle_invoke(ctx, req); });
  router.add("GET", "/spec-engine/state/{thread_id}", [ctx](Request& req) { return handle_state(ctx, req); });
  router.add("DELETE", "/spec-engine/threads/{thread_id}", [ctx](Request& req) { return handle_delete(ctx, req); });
  router.add_ws("/spec-engine/stream/{thread_id}", [ctx](Request& req) { return handle_stream(ctx, req); });
  router.add("GET", "/health", [](Request&) { return Response::json(200, {{"status", "ok"}}); });
  router.add("GET", "/ready", [ctx](Request&) { return handle_ready(ctx); });
  router.add("GET", "/metrics", [](Request&) {
    return Response::text(200, core::metrics::global().render(), "text/plain; version=0.0.4; charset=utf-8");
  });
}

}  // namespace spec_engine::api
