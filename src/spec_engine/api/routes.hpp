#pragma once
// HTTP/WebSocket endpoints of the Spec Engine (docs/engine-api.md):
//   POST   /spec-engine/invoke                   202 {"thread_id","status":"started"}
//   GET    /spec-engine/state/{thread_id}        200 state | 404
//   WS     /spec-engine/stream/{thread_id}[?after_seq=N]  replay + live, close 1000 after `end`
//          (on any replica: docs/event-path-and-replicas.md "Live events from any replica")
//   DELETE /spec-engine/threads/{thread_id}      204 | 404
//   GET    /health, /ready, /metrics
// Errors are RFC 9457 problem details with `errors: [{field, message}]`.

#include <chrono>
#include <functional>

#include "core/async.hpp"
#include "core/router.hpp"
#include "spec_engine/bus/event_hub.hpp"
#include "spec_engine/bus/run_manager.hpp"
#include "spec_engine/store/store.hpp"

namespace spec_engine::api {

/// What the handlers use. All referenced objects must outlive the server.
struct ApiContext {
  store::Store* store = nullptr;
  bus::EventHub* hub = nullptr;
  bus::RunManager* runs = nullptr;
  /// Blocking pool for the streams' SQL (replay pages, status checks).
  core::async::Runtime* rt = nullptr;
  /// Frames queued on one WebSocket beyond which the slow client is dropped (close 1013).
  std::size_t max_ws_queue = 20000;
  /// Bytes queued on one WebSocket beyond which the slow client is dropped (close 1013);
  /// a single frame larger than this alone does not count as slow.
  std::size_t max_ws_queue_bytes = 16u << 20;
  /// Stored events read per page when replaying history to a subscriber; before each replayed
  /// event the replay waits until the client's queue is below a quarter of the limits above.
  std::size_t replay_page_size = 256;
  /// How long a stream waits for a client that does not drain its queue before closing it (1013).
  std::chrono::milliseconds replay_stall_timeout{30000};
  /// A stream that heard nothing for this long checks the table (news may have been lost) and,
  /// while the run is not over, pings its status; for a thread still queued the wait doubles
  /// after each check, up to 4 times this.
  std::chrono::milliseconds stream_silence{5000};
  /// When NATS is configured: its connection state (bus::NatsBus::state()); /ready reports it
  /// under checks.nats and is not ready unless it is "connected". Empty: no NATS check.
  std::function<std::string()> nats_state;
  /// The replica link's health ("ok" or what is wrong) for checks.bus; empty: in-process hub.
  std::function<std::string()> link_health;
  /// The lease keeper's health ("ok" or what is wrong) for checks.leases; empty: none.
  std::function<std::string()> lease_health;
};

/// Registers every Spec Engine route on `router`.
void register_routes(core::http::Router& router, ApiContext ctx);

}  // namespace spec_engine::api
