#pragma once
// W3C Trace Context (https://www.w3.org/TR/trace-context/) and a small OTLP/HTTP
// JSON span exporter (OTLP spec, /v1/traces; JSON mapping of
// opentelemetry/proto/trace/v1/trace.proto). Export is off unless
// OTEL_EXPORTER_OTLP_ENDPOINT is set (init()); spans are then cheap no-ops.
//
// What the services put into traces (span tree, attributes, links) is described in
// docs/observability.md.

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace core::tracing {

/// A parsed traceparent: version 00, 32-hex trace id, 16-hex parent span id, flags.
struct TraceContext {
  std::string trace_id;  ///< 32 lower-case hex, not all zero
  std::string span_id;   ///< 16 lower-case hex, not all zero
  bool sampled = true;
  /// "00-<trace_id>-<span_id>-01|00"
  std::string to_traceparent() const;
};

/// Parses a traceparent header; nullopt when malformed (W3C §3.2.2.x rules).
std::optional<TraceContext> parse_traceparent(const std::string& header);
/// New root context with random ids.
TraceContext new_root();
/// Child of `parent`: same trace id, new span id.
TraceContext child_of(const TraceContext& parent);

/// OTLP SpanKind values (trace.proto Span.SpanKind).
inline constexpr int kInternal = 1;
inline constexpr int kServer = 2;
inline constexpr int kClient = 3;
inline constexpr int kProducer = 4;
inline constexpr int kConsumer = 5;

/// Most links and events one span keeps; more are counted in droppedLinksCount /
/// droppedEventsCount (OTel SDK defaults: 128 each).
inline constexpr std::size_t kMaxLinks = 128;
inline constexpr std::size_t kMaxEvents = 128;

/// One span, exported when it ends if an endpoint is configured; otherwise a no-op.
/// kind: kInternal, kServer, kClient, kProducer or kConsumer. Not thread-safe: one owner
/// (a coroutine or a thread) sets attributes and ends it.
class Span {
 public:
  /// Starts a span now (wall clock). `ctx` holds this span's own trace/span ids (e.g. from
  /// child_of()); `parent_span_id` is the 16-hex parent span id, nullopt for a root span.
  Span(std::string name, TraceContext ctx, std::optional<std::string> parent_span_id, int kind);
  ~Span();  ///< ends the span if not ended
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;
  /// Takes over `other` (e.g. returned from a factory); `other` then exports nothing.
  Span(Span&& other) noexcept;
  Span& operator=(Span&&) = delete;
  /// Sets (or overwrites) one attribute. Booleans, integers, doubles and strings map to the
  /// matching OTLP AnyValue, arrays to an ArrayValue of those; objects are exported as
  /// their serialized string.
  void set_attribute(const std::string& key, const nlohmann::json& value);
  /// Marks the span failed: exported with status code 2 (ERROR) and `message`. Last call wins.
  void set_error(const std::string& message);
  /// set_error(message) plus the attribute `error.type` = `error_type`, a low-cardinality
  /// class of the failure (OTel semantic conventions, "Recording errors").
  void set_error(const std::string& message, const std::string& error_type);
  /// True once set_error() was called.
  bool failed() const { return error_.has_value(); }
  /// Adds a link (OTLP Span.Link) to the span `ctx`, usually in another trace: a causal
  /// relation that is not parent/child (e.g. a stream watched on behalf of a refinement
  /// started by another request). `attributes` map as in set_attribute(). Beyond kMaxLinks
  /// links are dropped and counted.
  void add_link(const TraceContext& ctx, const nlohmann::json& attributes = nlohmann::json::object());
  /// Records a timestamped event (OTLP Span.Event) named `name`, now. `attributes` map as in
  /// set_attribute(). Beyond kMaxEvents events are dropped and counted.
  void add_event(const std::string& name, const nlohmann::json& attributes = nlohmann::json::object());
  /// Records the end time and queues the span for export (only if an endpoint or a test sink
  /// is configured and the context is sampled). Idempotent: later calls do nothing. Never
  /// throws on export failure.
  void end();
  /// This span's trace context, e.g. to_traceparent() for propagation (W3C Trace Context).
  const TraceContext& context() const { return ctx_; }
  /// The span as an OTLP/JSON Span object (trace.proto; ids hex, times decimal-string
  /// nanoseconds, enums as integers). An unended span gets the current time as its end.
  nlohmann::json to_otlp() const;

 private:
  std::string name_;
  TraceContext ctx_;
  std::optional<std::string> parent_;
  int kind_;
  std::chrono::system_clock::time_point start_;
  std::optional<std::chrono::system_clock::time_point> end_;
  nlohmann::json attributes_ = nlohmann::json::object();
  nlohmann::json links_ = nlohmann::json::array();
  nlohmann::json events_ = nlohmann::json::array();
  std::size_t dropped_links_ = 0;
  std::size_t dropped_events_ = 0;
  std::optional<std::string> error_;
  bool ended_ = false;
};

/// Starts a span that continues `parent` (same trace, `parent` as its parent span) or, without
/// one, a new trace.
Span start_span(std::string name, const std::optional<TraceContext>& parent, int kind);

/// Configures the exporter: service.name and endpoint (e.g. http://127.0.0.1:4318).
/// Spans are batched and posted to <endpoint>/v1/traces on a background thread.
void init(const std::string& service_name, const std::string& otlp_endpoint);
/// Flushes pending spans (best effort, bounded by 2 s).
void shutdown();

/// Testing only: every span that ends is handed to `sink` (as to_otlp()) on the ending thread,
/// whether or not an endpoint is configured; an empty function removes the sink.
void set_test_sink(std::function<void(const nlohmann::json& span)> sink);

}  // namespace core::tracing
