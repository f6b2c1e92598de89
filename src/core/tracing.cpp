#include "core/tracing.hpp"

#include <condition_variable>
#include <functional>
#include <deque>
#include <mutex>
#include <thread>

#include "core/http_client.hpp"
#include "core/log.hpp"
#include "core/util.hpp"

namespace core::tracing {
namespace {

bool is_lower_hex(const std::string& s, std::size_t n) {
  if (s.size() != n) return false;
  bool nonzero = false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    if (c != '0') nonzero = true;
  }
  return nonzero;
}

std::string unix_nanos(std::chrono::system_clock::time_point tp) {
  return std::to_string(std::chrono::duration_cast<std::chrono::nanoseconds>(tp.time_since_epoch()).count());
}

// OTLP/JSON AnyValue of a JSON value (OTLP spec, common.proto mapping): scalars as such, arrays
// as ArrayValue, objects and null as their serialized string.
nlohmann::json any_value(const nlohmann::json& v) {
  if (v.is_boolean()) return {{"boolValue", v.get<bool>()}};
  if (v.is_number_integer()) return {{"intValue", std::to_string(v.get<long long>())}};
  if (v.is_number()) return {{"doubleValue", v.get<double>()}};
  if (v.is_string()) return {{"stringValue", v.get<std::string>()}};
  if (v.is_array()) {
    nlohmann::json values = nlohmann::json::array();
    for (const auto& e : v) values.push_back(any_value(e));
    return {{"arrayValue", {{"values", std::move(values)}}}};
  }
  return {{"stringValue", v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)}};
}

// OTLP/JSON KeyValue list of a JSON object's members.
nlohmann::json key_values(const nlohmann::json& attrs) {
  nlohmann::json out = nlohmann::json::array();
  if (!attrs.is_object()) return out;
  for (auto it = attrs.begin(); it != attrs.end(); ++it) out.push_back({{"key", it.key()}, {"value", any_value(it.value())}});
  return out;
}

std::mutex& sink_mutex() {
  static std::mutex m;
  return m;
}
std::function<void(const nlohmann::json&)>& test_sink() {
  static std::function<void(const nlohmann::json&)> sink;
  return sink;
}

// Background batch exporter: POST {endpoint}/v1/traces with ExportTraceServiceRequest JSON.
class Exporter {
 public:
  static Exporter& instance() {
    static Exporter e;
    return e;
  }
  void configure(const std::string& service, const std::string& endpoint) {
    std::lock_guard lk(mu_);
    service_ = service;
    endpoint_ = endpoint;
    while (!endpoint_.empty() && endpoint_.back() == '/') endpoint_.pop_back();
    if (!endpoint_.empty() && !worker_.joinable()) worker_ = std::thread([this] { run(); });
  }
  bool enabled() {
    std::lock_guard lk(mu_);
    return !endpoint_.empty();
  }
  void push(nlohmann::json span) {
    std::lock_guard lk(mu_);
    if (endpoint_.empty()) return;
    if (queue_.size() >= 2048) queue_.pop_front();  // bounded: drop oldest under pressure
    queue_.push_back(std::move(span));
    cv_.notify_one();
  }
  void shutdown() {
    {
      std::lock_guard lk(mu_);
      stop_ = true;
      cv_.notify_one();
    }
    if (worker_.joinable()) worker_.join();
  }
  ~Exporter() { shutdown(); }

 private:
  void run() {
    std::unique_lock lk(mu_);
    while (true) {
      cv_.wait_for(lk, std::chrono::seconds(2), [&] { return stop_ || queue_.size() >= 64; });
      if (!queue_.empty()) {
        nlohmann::json spans = nlohmann::json::array();
        while (!queue_.empty() && spans.size() < 512) {
          spans.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        const std::string endpoint = endpoint_, service = service_;
        lk.unlock();
        send(endpoint, service, std::move(spans));
        lk.lock();
      }
      if (stop_ && queue_.empty()) return;
    }
  }
  static void send(const std::string& endpoint, const std::string& service, nlohmann::json spans) {
    nlohmann::json body = {
        {"resourceSpans",
         {{{"resource", {{"attributes", {{{"key", "service.name"}, {"value", {{"stringValue", service}}}}}}}},
           {"scopeSpans", {{{"scope", {{"name", "agentic-ide"}}}, {"spans", std::move(spans)}}}}}}}};
    try {
      http::ClientRequest req;
      req.method = "POST";
      req.url = endpoint + "/v1/traces";
      req.headers.set("Content-Type", "application/json");
      req.body = body.dump();
      req.timeout = std::chrono::milliseconds(2000);
      const auto res = http::request(req);
      if (res.status >= 300) log::warn("otlp_export_failed", {{"status", res.status}});
    } catch (const std::exception& e) {
      log::warn("otlp_export_failed", {{"error", e.what()}});
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<nlohmann::json> queue_;
  std::string service_, endpoint_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace

std::string TraceContext::to_traceparent() const {
  return "00-" + trace_id + "-" + span_id + (sampled ? "-01" : "-00");
}

std::optional<TraceContext> parse_traceparent(const std::string& h) {
  // version "-" trace-id "-" parent-id "-" trace-flags (W3C Trace Context §3.2)
  if (h.size() < 55 || h[2] != '-' || h[35] != '-' || h[52] != '-') return std::nullopt;
  // Any hex version but "ff" is accepted; version 00 must be exactly 55 characters.
  const std::string version = h.substr(0, 2);
  for (char c : version)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return std::nullopt;
  if (version == "ff") return std::nullopt;
  if (version == "00" && h.size() != 55) return std::nullopt;
  if (version != "00" && h.size() > 55 && h[55] != '-') return std::nullopt;
  TraceContext ctx;
  ctx.trace_id = h.substr(3, 32);
  ctx.span_id = h.substr(36, 16);
  const std::string flags = h.substr(53, 2);
  if (!is_lower_hex(ctx.trace_id, 32) || !is_lower_hex(ctx.span_id, 16)) return std::nullopt;
  for (char c : flags)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return std::nullopt;
  ctx.sampled = (std::stoi(flags, nullptr, 16) & 1) != 0;
  return ctx;
}

TraceContext new_root() { return TraceContext{random_hex(16), random_hex(8), true}; }

TraceContext child_of(const TraceContext& parent) { return TraceContext{parent.trace_id, random_hex(8), parent.sampled}; }

Span::Span(std::string name, TraceContext ctx, std::optional<std::string> parent_span_id, int kind)
    : name_(std::move(name)), ctx_(std::move(ctx)), parent_(std::move(parent_span_id)), kind_(kind),
      start_(std::chrono::system_clock::now()) {}

Span::Span(Span&& other) noexcept
    : name_(std::move(other.name_)), ctx_(std::move(other.ctx_)), parent_(std::move(other.parent_)),
      kind_(other.kind_), start_(other.start_), end_(other.end_), attributes_(std::move(other.attributes_)),
      links_(std::move(other.links_)), events_(std::move(other.events_)), dropped_links_(other.dropped_links_),
      dropped_events_(other.dropped_events_), error_(std::move(other.error_)), ended_(other.ended_) {
  other.ended_ = true;
}

Span::~Span() { end(); }

Span start_span(std::string name, const std::optional<TraceContext>& parent, int kind) {
  if (!parent) return Span(std::move(name), new_root(), std::nullopt, kind);
  return Span(std::move(name), child_of(*parent), parent->span_id, kind);
}

void Span::set_attribute(const std::string& key, const nlohmann::json& value) { attributes_[key] = value; }

void Span::set_error(const std::string& message) { error_ = message; }

void Span::set_error(const std::string& message, const std::string& error_type) {
  error_ = message;
  attributes_["error.type"] = error_type;
}

void Span::add_link(const TraceContext& ctx, const nlohmann::json& attributes) {
  if (links_.size() >= kMaxLinks) {
    ++dropped_links_;
    return;
  }
  links_.push_back({{"traceId", ctx.trace_id}, {"spanId", ctx.span_id}, {"attributes", key_values(attributes)}});
}

void Span::add_event(const std::string& name, const nlohmann::json& attributes) {
  if (events_.size() >= kMaxEvents) {
    ++dropped_events_;
    return;
  }
  events_.push_back({{"timeUnixNano", unix_nanos(std::chrono::system_clock::now())},
                     {"name", name},
                     {"attributes", key_values(attributes)}});
}

nlohmann::json Span::to_otlp() const {
  nlohmann::json span = {{"traceId", ctx_.trace_id},
                         {"spanId", ctx_.span_id},
                         {"name", name_},
                         {"kind", kind_},
                         {"startTimeUnixNano", unix_nanos(start_)},
                         {"endTimeUnixNano", unix_nanos(end_.value_or(std::chrono::system_clock::now()))},
                         {"attributes", key_values(attributes_)}};
  if (parent_) span["parentSpanId"] = *parent_;
  if (!links_.empty()) span["links"] = links_;
  if (dropped_links_) span["droppedLinksCount"] = dropped_links_;
  if (!events_.empty()) span["events"] = events_;
  if (dropped_events_) span["droppedEventsCount"] = dropped_events_;
  // Status codes: 1 = OK, 2 = ERROR (trace.proto Status.StatusCode).
  if (error_) span["status"] = {{"code", 2}, {"message", *error_}};
  return span;
}

void Span::end() {
  if (ended_) return;
  ended_ = true;
  end_ = std::chrono::system_clock::now();
  if (!ctx_.sampled) return;
  std::function<void(const nlohmann::json&)> sink;
  {
    std::lock_guard lk(sink_mutex());
    sink = test_sink();
  }
  auto& exp = Exporter::instance();
  const bool export_it = exp.enabled();
  if (!sink && !export_it) return;
  nlohmann::json span = to_otlp();
  if (sink) sink(span);
  if (export_it) exp.push(std::move(span));
}

void set_test_sink(std::function<void(const nlohmann::json& span)> sink) {
  std::lock_guard lk(sink_mutex());
  test_sink() = std::move(sink);
}

void init(const std::string& service_name, const std::string& otlp_endpoint) {
  Exporter::instance().configure(service_name, otlp_endpoint);
}

void shutdown() { Exporter::instance().shutdown(); }

}  // namespace core::tracing
