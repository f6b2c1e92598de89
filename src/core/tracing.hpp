#pragma once
// W3C Trace Context (https://www.w3.org/TR/trace-context/) and a small OTLP/HTTP
// JSON span exporter (OTLP spec, /v1/traces). Export is off unless
// OTEL_EXPORTER_OTLP_ENDPOINT is set.

#include <chrono>
#include <optional>
#include <string>

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

/// One finished span, exported if an endpoint is configured; otherwise a no-op.
/// kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer (OTLP SpanKind).
class Span {
 public:
  /// Starts a span now (wall clock). `ctx` holds this span's own trace/span ids (e.g. from
  /// child_of()); `parent_span_id` is the 16-hex parent span id, nullopt for a root span.
  Span(std::string name, TraceContext ctx, std::optional<std::string> parent_span_id, int kind);
  ~Span();  ///< ends the span if not ended
  /// Sets (or overwrites) one attribute. Booleans, integers, doubles and strings map to the
  /// matching OTLP AnyValue; any other JSON value is exported as its serialized string.
  void set_attribute(const std::string& key, const nlohmann::json& value);
  /// Marks the span failed: exported with status code 2 (ERROR) and `message`. Last call wins.
  void set_error(const std::string& message);
  /// Records the end time and queues the span for export (only if an endpoint is configured
  /// and the context is sampled). Idempotent: later calls do nothing. Never throws on export failure.
  void end();
  /// This span's trace context, e.g. to_traceparent() for propagation (W3C Trace Context).
  const TraceContext& context() const { return ctx_; }
 private:
  std::string name_;
  TraceContext ctx_;
  std::optional<std::string> parent_;
  int kind_;
  std::chrono::system_clock::time_point start_;
  nlohmann::json attributes_ = nlohmann::json::object();
  std::optional<std::string> error_;
  bool ended_ = false;
};

/// Configures the exporter: service.name and endpoint (e.g. http://127.0.0.1:4318).
/// Spans are batched and posted to <endpoint>/v1/traces on a background thread.
void init(const std::string& service_name, const std::string& otlp_endpoint);
/// Flushes pending spans (best effort, bounded by 2 s).
void shutdown();

}  // namespace core::tracing
