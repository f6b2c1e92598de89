#pragma once
// The public API of ide-orchestrator (docs/orchestrator-api.md; documented in docs/openapi.json).
// Each handler parses the request, calls the domain, and renders the result.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "core/router.hpp"
#include "orchestrator/api/domain_port.hpp"
#include "orchestrator/api/ws_proxy.hpp"
#include "orchestrator/domain/refinements.hpp"
#include "orchestrator/engine_client/engine_client.hpp"

namespace orchestrator::api {

/// The asynchronous routes' work in flight (refinement, retry and run starts running on the
/// runtime, counted from their start to their end, also when the server stopped waiting for
/// them). App::stop lets it finish before the tracker stops, so that a start a shutdown cut off
/// from its client still records its outcome and is tracked. Thread-safe.
class StartsInFlight {
 public:
  /// One more start runs.
  void enter();
  /// One start ended.
  void leave();
  /// Waits until none runs, at most `timeout`; true when none runs.
  bool wait_idle(std::chrono::milliseconds timeout);
  /// Starts running now.
  std::size_t running() const;

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::size_t n_ = 0;
};

/// What the handlers use. All references must outlive the router.
struct RouteDeps {
  DomainPort& domain;
  domain::RefinementService& refinements;  ///< POST /api/workflows/{id}/refinements
  engine_client::EngineClient& engine;     ///< runs (invoke_async), cancel (stop the run) and readiness
  WsProxy& ws;
  std::string openapi_json;                ///< served at /api/openapi.json
  /// Readiness of the database within a bounded time: "ok", "busy" (pool exhausted) or "unreachable".
  std::function<std::string()> db_health;
  domain::RefinementTracker* tracker = nullptr;  ///< runs are followed like proposals; null: not followed (tests)
  /// Runs the asynchronous routes (refinement start and retry, run start: SQL on its blocking
  /// pool, the engine call awaited without a thread); required.
  core::async::Runtime* runtime = nullptr;
  StartsInFlight* starts = nullptr;  ///< counts the asynchronous routes' work; null: not counted
};

/// Registers every route: /api/... (see docs/openapi.json), /health, /ready, /metrics. Most are
/// plain handlers on the server's blocking pool; the three that call the engine to start a job
/// (POST /api/workflows/{id}/refinements, POST /api/proposals/{id}/retry, POST
/// /api/workflows/{id}/runs) are streaming routes whose work runs as a coroutine on
/// `deps.runtime`, so a start waiting for the engine holds no thread.
void register_routes(core::http::Router& router, RouteDeps& deps);

}  // namespace orchestrator::api
