#pragma once
// Client for the Spec Engine API (docs/event-path-and-replicas.md "IDE Orchestrator"):
// one core::http::AsyncHttpClient on the orchestrator's core::async::Runtime, so calls reuse
// keep-alive connections and never hold a thread per call. Timeouts on every call; up to 3
// attempts with exponential backoff + full jitter for transient failures only (resolve/connect/
// timeout/closed/local resources, 5xx, 429).
//
// The circuit breaker (opens after more than 5 consecutive failures, half-opens after 30 s)
// protects NEW refinements only: invoke() consults it and feeds it. Following a thread (stream,
// state, delete) never consults it and never feeds it, so an open breaker cannot stop a tracker
// from finding out how a run ended, and a tracker retrying through an outage cannot keep the
// breaker open. Running out of local file descriptors (EMFILE/ENFILE, ClientErrorKind::
// local_resources) is this process's problem, not the engine's: it is logged, answered as
// EngineUnavailable (503) and never counted by the breaker.

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>

#include <nlohmann/json.hpp>

#include "core/async.hpp"
#include "core/http_client.hpp"
#include "core/resilience.hpp"
#include "core/semaphore.hpp"

namespace orchestrator::engine_client {

/// The engine cannot be reached, the breaker is open, or this process is out of sockets. The API
/// maps it to 503 problem details with Retry-After (seconds, >= 1).
class EngineUnavailable : public std::runtime_error {
 public:
  EngineUnavailable(const std::string& what, std::chrono::seconds retry_after)
      : std::runtime_error(what), retry_after_(retry_after) {}
  std::chrono::seconds retry_after() const { return retry_after_; }
 private:
  std::chrono::seconds retry_after_;
};

/// The engine answered with a non-transient error (4xx other than 429; 404 for a stream).
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

/// Settings of EngineClient: 3 attempts, breaker opens after more than 5 consecutive failures and
/// half-opens after 30 s with 3 trials.
struct EngineClientOptions {
  std::string base_url = "http://127.0.0.1:8000";   ///< engine root, no trailing slash
  std::chrono::milliseconds request_timeout{5000};   ///< per attempt of invoke, state and delete
  /// Bounds a stream's connect + upgrade (followers and catch-up streams, which retry for as
  /// long as anyone follows). Longer than request_timeout: under load an upgrade waits in the
  /// engine's queues, and one given up is work the engine did for nothing before the retry
  /// asks again (docs/event-path-and-replicas.md "Engine client").
  std::chrono::milliseconds stream_open_timeout{30000};
  /// attempts per HTTP call (including the first) and full-jitter backoff: 200 ms base, 2 s cap.
  core::RetryPolicy retry{3, std::chrono::milliseconds(200), std::chrono::milliseconds(2000)};
  /// Invokes in flight at once (>= 1): more wait for their turn, holding no thread, so a burst
  /// of starts does not pile up in the engine's queues past the request timeout.
  int max_invokes_in_flight = 16;
  /// Largest engine event read from a stream, in bytes (at most core::json::kDefaultMaxBytes,
  /// what the orchestrator parses): a thread with a larger one ends for its followers with
  /// follow::Item::Kind::too_large. 64 MiB fits the engine's largest event, a state update
  /// with a whole file tree (8 MiB of text) written as JSON.
  std::size_t max_event_bytes = std::size_t{64} << 20;
  /// breaker in front of invoke() (threshold 5, open 30 s, 3 half-open trials)
  core::CircuitBreaker::Options breaker{5, std::chrono::milliseconds(30000), 3};
};

/// Thread-safe client. Every call is counted in ide_orchestrator_spec_engine_requests_total
/// {endpoint,status}. The synchronous methods are for HTTP handlers on the server's blocking pool
/// (never call them on `runtime`'s I/O threads); followers and trackers use the *_async ones.
class EngineClient {
 public:
  /// Stores `options` (trailing '/' of base_url stripped) and creates the keep-alive client on
  /// `runtime`, which must outlive this object. Does not contact the engine; never throws on a
  /// bad URL (calls fail later with EngineUnavailable naming --engine-url).
  EngineClient(EngineClientOptions options, core::async::Runtime& runtime);
  ~EngineClient();
  EngineClient(const EngineClient&) = delete;
  EngineClient& operator=(const EngineClient&) = delete;

  /// POST /spec-engine/invoke with job {trace_id, job_id, agent_definition, input_payload}, behind
  /// the breaker. Returns the thread id. The call is one CLIENT span `POST /spec-engine/invoke`
  /// (retries included) continuing `traceparent` (W3C; a new trace when empty), and the engine
  /// gets that span as its parent (docs/observability.md). The engine deduplicates by job_id, so
  /// a lost answer is retried safely.
  /// Throws EngineUnavailable or EngineRejected. Blocks the calling thread.
  std::string invoke(const nlohmann::json& job, const std::string& traceparent = {});
  /// invoke() as a coroutine on `runtime` (Runtime::run_async awaits it from another executor).
  /// At most `max_invokes_in_flight` run at once (first come, first served); the wait for a turn
  /// is not part of request_timeout.
  core::async::Task<std::string> invoke_async(nlohmann::json job, std::string traceparent = {});

  /// GET /spec-engine/state/{thread_id}; nullopt on 404. Throws EngineUnavailable or
  /// EngineRejected (other 4xx, unreadable body). Blocks the calling thread.
  std::optional<nlohmann::json> get_state(const std::string& thread_id, const std::string& traceparent = {});
  /// get_state() as a coroutine; also throws EngineUnavailable when `stop` is requested.
  core::async::Task<std::optional<nlohmann::json>> get_state_async(std::string thread_id, std::stop_token stop = {});

  /// DELETE /spec-engine/threads/{thread_id}; true if deleted or already gone (404).
  /// Throws EngineUnavailable or EngineRejected. Blocks the calling thread.
  bool delete_thread(const std::string& thread_id, const std::string& traceparent = {});
  /// delete_thread() as a coroutine.
  core::async::Task<bool> delete_thread_async(std::string thread_id, std::stop_token stop = {});

  /// Opens WebSocket /spec-engine/stream/{thread_id}?after_seq=N (one attempt: callers resume
  /// with after_seq). Throws EngineRejected(404) for an unknown thread, EngineRejected for other
  /// refusals, EngineUnavailable when the engine cannot be reached (or `stop` was requested).
  /// `traceparent` (W3C) is sent with the upgrade when non-empty: the engine's stream span joins
  /// that trace.
  core::async::Task<std::shared_ptr<core::http::AsyncWsClient>> open_stream(std::string thread_id, long long after_seq,
                                                                          std::stop_token stop = {},
                                                                          std::string traceparent = {});

  /// Current breaker state ("closed" | "open" | "half_open"); also exported as gauge
  /// ide_orchestrator_circuit_breaker_state (0 closed, 1 half-open, 2 open).
  std::string breaker_state() const;
  /// The options in effect (base_url without trailing '/').
  const EngineClientOptions& options() const { return options_; }
  /// The keep-alive HTTP client (connection counts for tests and metrics).
  core::http::AsyncHttpClient& http() { return *http_; }
  /// The runtime the client runs on.
  core::async::Runtime& runtime() { return runtime_; }

 private:
  struct Call;
  core::async::Task<core::http::ClientResponse> call(const char* endpoint, bool guarded, core::http::ClientRequest req,
                                                     std::stop_token stop);

  EngineClientOptions options_;
  core::async::Runtime& runtime_;
  std::unique_ptr<core::http::AsyncHttpClient> http_;
  mutable core::CircuitBreaker breaker_;
  core::async::Semaphore invokes_;  ///< max_invokes_in_flight permits
};

}  // namespace orchestrator::engine_client
