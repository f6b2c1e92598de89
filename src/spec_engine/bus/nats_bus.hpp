#pragma once
// NATS JetStream job intake and status publishing (docs/engine-api.md#nats-jetstream; deploy/claims/spec-engine.yaml):
//  - ensures the stream (default AGENT_EXECUTE, subjects agent.execute.*) and the durable
//    pull consumer (default spec-engine, explicit ack) exist, then fetches on its own thread;
//  - each message is a job: a structured CloudEvent 1.0 (application/cloudevents+json, job in
//    `data`), a binary CloudEvent (ce-* headers) or a plain job JSON, parsed by the same
//    api::parse_job_message as POST /spec-engine/invoke;
//  - acks once RunManager::submit has stored the thread row (idempotent on job_id, so a
//    redelivery never runs twice); invalid jobs are acked (no poison loop) and answered with a
//    failed status event; queue full / shutting down / database errors are nak'ed with a delay;
//  - publishes a status CloudEvent to agent.status.<thread_id> when a run ends
//    (RunManagerOptions::on_run_end -> publish_status).
// Reconnects are left to cnats (reconnect wait, unlimited attempts).

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "spec_engine/bus/run_manager.hpp"

namespace spec_engine::bus {

/// Settings of the NATS consumer. Defaults match deploy/claims/spec-engine.yaml.
struct NatsOptions {
  std::string url;                                ///< nats://host:port[,nats://...]; required
  std::string stream = "AGENT_EXECUTE";           ///< JetStream stream (created if missing)
  std::string consumer = "spec-engine";           ///< durable pull consumer (created if missing; no ".")
  std::string subjects = "agent.execute.*";       ///< subjects of a stream this engine creates
  std::string status_prefix = "agent.status.";    ///< status events go to <prefix><thread_id>
  std::size_t max_message_bytes = 1 << 20;        ///< bigger job messages are rejected as invalid
  int fetch_batch = 8;                            ///< messages per Fetch
  std::chrono::milliseconds fetch_wait{1000};     ///< longest Fetch wait (also bounds stop() latency)
  std::chrono::milliseconds nak_delay{5000};      ///< redelivery delay after queue full / errors
  std::chrono::milliseconds ack_wait{30000};      ///< consumer AckWait when this engine creates it
  std::chrono::milliseconds reconnect_wait{2000}; ///< cnats reconnect wait (max reconnect: unlimited)
};

/// A NATS/JetStream failure at start-up (connect, stream or consumer setup); what() has the
/// cnats status text and the JetStream error code when there is one.
class NatsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The status subject of a thread: `prefix` + thread_id with every "." replaced by "_"
/// (a NATS subject token cannot contain "."; thread ids never contain "*", ">" or spaces).
std::string status_subject(const std::string& prefix, const std::string& thread_id);

/// A status CloudEvent 1.0 (§3.1 required attributes + subject/time/datacontenttype):
/// {specversion "1.0", id uuid4, source "spec-engine", type "io.agentic-ide.agent.status",
///  subject thread_id, time RFC 3339, datacontenttype "application/json",
///  data {thread_id, status, error? (omitted when ""), ...extra}}. `extra` must be an object or null.
nlohmann::json make_status_event(const std::string& thread_id, const std::string& status, const std::string& error,
                                 const nlohmann::json& extra = nullptr);

/// Content-Type to assume for a NATS message without one: "application/cloudevents+json" when
/// the body is a JSON object with a "specversion" member (a structured CloudEvent), else
/// "application/json" (a plain job). Never throws.
std::string sniff_media_type(const std::string& body);

/// The job id a (possibly invalid) job message names, for the status subject of a rejection:
/// `data.job_id` of a CloudEvent or `job_id` of a plain job when it is a valid thread id
/// (api::is_valid_thread_id), else "invalid". Never throws.
std::string job_id_hint(const std::string& body);

/// One connection to NATS consuming jobs into a RunManager. Lifecycle:
/// connect() -> start(runs) -> ... -> stop() -> [runs.shutdown()] -> close().
/// publish_status / state / connected are thread-safe once connect() has returned.
class NatsBus {
 public:
  explicit NatsBus(NatsOptions options);
  ~NatsBus();  ///< stop() + close(1 s)
  NatsBus(const NatsBus&) = delete;
  NatsBus& operator=(const NatsBus&) = delete;

  /// Connects (cnats: reconnect wait, unlimited reconnects), then ensures the stream and the
  /// durable consumer exist (NATS JetStream: STREAM.INFO / STREAM.CREATE, CONSUMER.INFO /
  /// CONSUMER.DURABLE.CREATE with explicit ack). An existing stream is used as it is.
  /// Throws NatsError on failure.
  void connect();
  /// Binds a pull subscription to the durable consumer and starts the fetch thread, which
  /// submits jobs to `runs` (must outlive stop()). Throws NatsError on failure.
  void start(RunManager& runs);
  /// Stops fetching and joins the fetch thread (returns within about fetch_wait). Messages
  /// already fetched are settled first; nothing is left un-acked by design. Idempotent.
  void stop();
  /// Drains the connection (flushes pending status events; NATS "drain"), waits up to
  /// `timeout` for it to close, then frees it. Call after the RunManager has shut down so
  /// final status events go out. Idempotent.
  void close(std::chrono::milliseconds timeout);

  /// Publishes make_status_event(...) to status_subject(thread_id) (core NATS publish,
  /// Content-Type application/cloudevents+json). Buffered by cnats while reconnecting.
  /// Failures are logged; never throws.
  void publish_status(const std::string& thread_id, const std::string& status, const std::string& error,
                      const nlohmann::json& extra = nullptr) noexcept;

  /// Publishes `data` on `subject` (core NATS, no headers), e.g. stored events for the other
  /// replicas. Buffered by cnats while reconnecting. Never throws; false (logged) on failure.
  bool publish(const std::string& subject, const std::string& data) noexcept;
  /// Receives one message: subject and payload. Runs on a cnats delivery thread: keep it short.
  using MessageHandler = std::function<void(const std::string& subject, const std::string& data)>;
  /// Subscribes to `subject` (wildcards allowed) on the connection; returns an id for
  /// unsubscribe() (0 when it failed; logged). This connection never receives its own
  /// messages (no echo), so a replica never handles what it published itself.
  std::uint64_t subscribe(const std::string& subject, MessageHandler handler);
  /// Ends a subscription; its handler is not called after the cnats completion. Idempotent.
  void unsubscribe(std::uint64_t id);

  /// Connection state: "connected" | "connecting" | "reconnecting" | "disconnected" |
  /// "draining" | "closed" | "not_connected" (before connect()).
  std::string state() const;
  /// True when state() == "connected".
  bool connected() const { return state() == "connected"; }
  const NatsOptions& options() const { return options_; }

 private:
  struct Impl;
  void fetch_loop();
  void ensure_jetstream();  ///< creates the stream/consumer when missing; throws NatsError
  bool subscribe();         ///< (re)binds the pull subscription; false (logged) on failure

  NatsOptions options_;
  std::unique_ptr<Impl> impl_;
  RunManager* runs_ = nullptr;
  std::thread fetcher_;
  std::atomic<bool> stop_{false};
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
};

}  // namespace spec_engine::bus
