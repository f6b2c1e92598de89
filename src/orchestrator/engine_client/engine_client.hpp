#pragma once
// Client for the Spec Engine API (DESIGN.md §4 API, §5 "Engine client"; R10):
// timeouts on every call, up to 3 attempts with exponential backoff + jitter for
// transient failures only (resolve/connect/timeout/closed, 5xx, 429), and a circuit breaker that
// opens after more than 5 consecutive failures and half-opens after 30 s.

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "core/http_client.hpp"
#include "core/resilience.hpp"

namespace orchestrator::engine_client {

/// The engine cannot be reached or the breaker is open. The API maps it to
/// 503 problem details with Retry-After (seconds, >= 1).
class EngineUnavailable : public std::runtime_error {
 public:
  EngineUnavailable(const std::string& what, std::chrono::seconds retry_after)
      : std::runtime_error(what), retry_after_(retry_after) {}
  std::chrono::seconds retry_after() const { return retry_after_; }
 private:
  std::chrono::seconds retry_after_;
};

/// The engine answered with a non-transient error (4xx other than 404/429).
/// `problem` is the engine's problem-details body when it sent one.
class EngineRejected : public std::runtime_error {
 public:
  EngineRejected(int status, const std::string& what, nlohmann::json problem = nullptr)
      : std::runtime_error(what), status_(status), problem_(std::move(problem)) {}
  int status() const { return status_; }
  const nlohmann::json& problem() const { return problem_; }
 private:
  int status_;
  nlohmann::json problem_;
};

/// Settings of EngineClient; defaults follow DESIGN.md §5 "Engine client" (3 attempts,
/// breaker opens after more than 5 consecutive failures, half-opens after 30 s with 3 trials).
struct EngineClientOptions {
  std::string base_url = "http://127.0.0.1:8000";   ///< engine root, no trailing slash
  std::chrono::milliseconds request_timeout{5000};   ///< per attempt
  /// attempts per HTTP call (including the first) and full-jitter backoff: 200 ms base, 2 s cap.
  /// Only connect/resolve/timeout/closed transport errors, 5xx and 429 are retried.
  core::RetryPolicy retry{3, std::chrono::milliseconds(200), std::chrono::milliseconds(2000)};
  /// breaker shared by every call of this client (threshold 5, open 30 s, 3 half-open trials)
  core::CircuitBreaker::Options breaker{5, std::chrono::milliseconds(30000), 3};
};

/// Thread-safe client. Every call records the outcome in the breaker and in
/// metric ide_orchestrator_spec_engine_requests_total{endpoint,status}.
class EngineClient {
 public:
  /// Stores `options` (trailing '/' of base_url is stripped) and sets the breaker gauge to 0
  /// (closed). Does not contact the engine; never throws on a bad URL (calls fail later).
  explicit EngineClient(EngineClientOptions options);

  /// POST /spec-engine/invoke with job {trace_id, job_id, agent_definition, input_payload}.
  /// Returns the thread id. `traceparent` (W3C) is forwarded when non-empty.
  /// Throws EngineUnavailable or EngineRejected.
  std::string invoke(const nlohmann::json& job, const std::string& traceparent = {});

  /// GET /spec-engine/state/{thread_id}; nullopt on 404. Throws EngineUnavailable.
  std::optional<nlohmann::json> get_state(const std::string& thread_id, const std::string& traceparent = {});

  /// DELETE /spec-engine/threads/{thread_id}; true if deleted or already gone. Throws EngineUnavailable.
  bool delete_thread(const std::string& thread_id, const std::string& traceparent = {});

  /// Opens WebSocket /spec-engine/stream/{thread_id}?after_seq=N (no retries here:
  /// callers resume with after_seq). Throws EngineUnavailable, or EngineRejected(404) for an unknown thread.
  std::unique_ptr<core::http::WsClient> open_stream(const std::string& thread_id, long long after_seq,
                                                    const std::string& traceparent = {});

  /// Current breaker state ("closed" | "open" | "half_open"); also exported as gauge
  /// ide_orchestrator_circuit_breaker_state (0 closed, 1 half-open, 2 open).
  std::string breaker_state() const;
  /// The options in effect (base_url without trailing '/').
  const EngineClientOptions& options() const { return options_; }

 private:
  EngineClientOptions options_;
  mutable core::CircuitBreaker breaker_;
};

}  // namespace orchestrator::engine_client
