// Spec Engine HTTP and WebSocket handlers on the core router.
#include "spec_engine/api/routes.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>

#include <boost/asio/this_coro.hpp>

#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/query.hpp"
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
  const std::string thread_id = ok.job.job_id;
  nlohmann::json fields = {{"thread_id", thread_id},
                           {"trace_id", ok.job.trace_id},
                           {"traceparent", req.traceparent},
                           {"request_id", req.request_id},
                           {"mode", ok.mode}};
  auto res = ctx.runs->submit(std::move(ok.job));
  if (ok.cloudevent.is_object() && ok.cloudevent.contains("id")) fields["cloudevent_id"] = ok.cloudevent["id"];
  switch (res.outcome) {
    case bus::SubmitOutcome::started: {
      core::log::info("run accepted", fields);
      auto r = Response::json(202, {{"thread_id", thread_id}, {"status", "started"}});
      r.headers.set("Location", "/spec-engine/state/" + thread_id);
      return r;
    }
    case bus::SubmitOutcome::existing: {
      // Idempotent on job_id: the same job is never run twice. Same 202 shape as a first
      // invoke, plus the existing thread's current status.
      const std::string status = res.thread_status.empty() ? std::string(store::kQueued) : res.thread_status;
      fields["thread_status"] = status;
      core::log::info("duplicate job: existing thread returned", fields);
      auto r = Response::json(
          202, {{"thread_id", thread_id}, {"status", "started"}, {"duplicate", true}, {"thread_status", status}});
      r.headers.set("Location", "/spec-engine/state/" + thread_id);
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
  const std::string db = ctx.store->health();
  const bool db_ok = db == "ok";
  checks["database"] = db;
  if (!db_ok) reasons.push_back("database " + db);
  // The replica link (LISTEN connection or NATS); the in-process hub alone is always up.
  const std::string bus = ctx.link_health ? ctx.link_health() : std::string("ok");
  checks["bus"] = bus;
  if (bus != "ok") reasons.push_back("bus: " + bus);
  if (ctx.lease_health) {
    const std::string leases = ctx.lease_health();
    checks["leases"] = leases;
    if (leases != "ok") reasons.push_back("leases: " + leases);
  }
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

/// Sends one frame once the client's queue is below the low-water marks. False when the
/// connection closed, or the client stalled for replay_stall_timeout (then closed with 1013).
core::async::Task<bool> send_paced(const ApiContext& ctx, core::http::WsConnection& conn, const bus::Frame& f) {
  const std::size_t low_frames = std::max<std::size_t>(1, ctx.max_ws_queue / 4);
  const std::size_t low_bytes = std::max<std::size_t>(1, ctx.max_ws_queue_bytes / 4);
  if (conn.queued() >= low_frames || conn.queued_bytes() >= low_bytes) {
    const bool writable = co_await conn.wait_writable(low_frames, low_bytes, ctx.replay_stall_timeout);
    if (!writable) {
      if (conn.is_open()) conn.close(1013, "client too slow");
      co_return false;
    }
  }
  if (!conn.send_text(*f.text)) co_return false;
  events_sent().inc({{"event_type", f.event_type}});
  co_return true;
}

/// Unsubscribes and counts the stream closed when the coroutine ends (also when destroyed
/// unfinished at server stop).
struct StreamGuard {
  bus::EventHub* hub;
  std::shared_ptr<bus::Subscription> sub;
  ~StreamGuard() {
    hub->unsubscribe(sub);
    active_streams().dec();
  }
};

/// The stream of one thread to one client (docs/event-path-and-replicas.md "Live events from
/// any replica"): subscribe first, then read the table page by page after `after_seq` (on the
/// blocking pool, paced by the client's queue), then deliver what the hub brings. Only seq =
/// last + 1 is sent; a gap, a wake-up beyond `last`, a mailbox overflow or a silent period sends
/// the stream back to the table; older seqs are dropped. Closes 1000 after `end`.
core::async::Task<void> run_stream(ApiContext ctx, std::string id, std::int64_t after_seq, std::string request_id,
                                   std::shared_ptr<core::http::WsConnection> conn) {
  const auto ex = co_await boost::asio::this_coro::executor;
  active_streams().inc();
  StreamGuard guard{ctx.hub, ctx.hub->subscribe(id, ex)};
  auto sub = guard.sub;
  conn->on_message([](const std::string&) {});  // clients have nothing to say; pings are WebSocket frames
  std::weak_ptr<bus::Subscription> weak_sub = sub;
  conn->on_close([weak_sub] {
    if (auto s = weak_sub.lock()) s->signal().notify();  // wake the loop so it ends
  });
  core::log::info("stream opened", {{"thread_id", id}, {"after_seq", after_seq}, {"request_id", request_id}});

  store::Store* st = ctx.store;
  const std::size_t page_size = std::max<std::size_t>(1, ctx.replay_page_size);
  std::int64_t last = after_seq;
  bool read_table = true;  // the replay: everything stored after after_seq
  bool check_thread = true;  // after the replay, and after a silent period
  // A thread still queued for a run slot is silent for as long as it waits: each check that finds
  // it queued doubles the wait before the next, up to 4 silent periods (thousands of waiting
  // streams would otherwise each read the database every few seconds); news, or a check that
  // finds it running, brings the wait back to one. The pings keep coming at least every 4
  // silent periods (20 s by default), well inside a follower's quiet period (60 s).
  auto silence = ctx.stream_silence;
  for (;;) {
    if (!conn->is_open()) co_return;
    if (read_table) {
      const std::int64_t from = last;
      auto load = [st, &id, from, page_size] { return st->events_after(id, from, page_size); };
      std::vector<store::EventRecord> page;
      try {
        page = co_await ctx.rt->blocking(std::move(load));
      } catch (const std::exception& e) {
        core::log::warn("stream read failed", {{"thread_id", id}, {"error", e.what()}});
        conn->close(1011, "event store unavailable");
        co_return;
      }
      for (const auto& ev : page) {
        if (ev.seq != last + 1) break;  // never skip: a hole would be a bug upstream
        const auto f = bus::Frame::of(ev);
        if (!co_await send_paced(ctx, *conn, f)) co_return;
        last = ev.seq;
        if (ev.event_type == "end") {
          conn->close(1000, "end");
          co_return;
        }
      }
      if (page.size() == page_size) continue;  // more stored: next page
      read_table = false;
    }
    if (check_thread) {
      // Nothing (more) stored: is the thread gone, or over with its `end` at or before `last`?
      check_thread = false;
      auto load = [st, &id] { return st->thread_progress(id); };
      std::optional<store::ThreadProgress> rec;
      bool read_ok = true;
      try {
        rec = co_await ctx.rt->blocking(std::move(load));
      } catch (const std::exception& e) {
        read_ok = false;  // retried at the next silent period
        core::log::warn("stream status check failed", {{"thread_id", id}, {"error", e.what()}});
      }
      if (read_ok && !rec) {
        conn->close(1000, "thread deleted");
        co_return;
      }
      if (rec && rec->last_seq > last) {
        read_table = true;
        continue;
      }
      if (rec && store::is_terminal(rec->status)) {
        conn->close(1000, "end");
        co_return;
      }
      // Still queued or running: a ping carrying the status tells the client this stream is
      // alive and has just looked (docs/engine-api.md "Stream"), so a follower of a silent thread
      // need not ask GET state.
      if (rec) {
        conn->ping(rec->status);
        silence = rec->status == store::kQueued ? std::min(silence * 2, ctx.stream_silence * 4) : ctx.stream_silence;
      }
    }
    auto news = sub->take();
    if (news.deleted) {
      conn->close(1000, "thread deleted");
      co_return;
    }
    bool got = news.overflow || news.stored_up_to > 0 || !news.events.empty();
    if (news.overflow || news.stored_up_to > last) read_table = true;
    for (const auto& f : news.events) {
      if (read_table) break;
      if (f.seq <= last) continue;      // already delivered
      if (f.seq != last + 1) {          // a gap: the missing ones are in the table
        read_table = true;
        break;
      }
      if (!co_await send_paced(ctx, *conn, f)) co_return;
      last = f.seq;
      if (f.event_type == "end") {
        conn->close(1000, "end");
        co_return;
      }
    }
    if (got) {
      silence = ctx.stream_silence;
      continue;
    }
    const bool woken = co_await sub->signal().wait(silence);
    if (!woken) check_thread = true;  // silence: news may have been lost (or the thread deleted)
  }
}

core::http::WsAccept handle_stream(const ApiContext& ctx, Request& req) {
  core::http::WsAccept accept;
  const auto id = thread_param(req);
  const auto after = core::http::parse_after_seq(req.query_param("after_seq"));
  if (!after) {
    accept.reject = Response::problem(
        400, "Invalid request", "after_seq " + core::http::after_seq_rule() + ".",
        {{"errors", nlohmann::json::array({{{"field", "after_seq"}, {"message", core::http::after_seq_rule()}}})}});
    return accept;
  }
  if (!ctx.store->thread_progress(id)) {
    accept.reject = not_found(id);
    return accept;
  }
  const std::int64_t after_seq = *after;
  const std::string request_id = req.request_id;
  accept.on_open_async = [ctx, id, after_seq, request_id](std::shared_ptr<core::http::WsConnection> conn) {
    return run_stream(ctx, id, after_seq, request_id, std::move(conn));
  };
  return accept;
}

}  // namespace

void register_routes(core::http::Router& router, ApiContext ctx) {
  active_streams();
  events_sent();
  // A database that cannot serve in time (core::Unavailable) is answered 503 + Retry-After by
  // the server, for every handler and WebSocket upgrade.
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
