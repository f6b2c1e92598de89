// Engine client (DESIGN.md §5 "Engine client"; R10): per-attempt timeouts, retries
// with exponential backoff + full jitter for transient failures only, and a circuit
// breaker consulted before every attempt.
#include "orchestrator/engine_client/engine_client.hpp"

#include <algorithm>
#include <cmath>

#include "core/json_parse.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/util.hpp"

namespace orchestrator::engine_client {

namespace {

using core::http::ClientError;
using core::http::ClientErrorKind;
using core::http::ClientRequest;
using core::http::ClientResponse;

/// Metric families (registered once in the process-wide registry).
core::metrics::Counter& requests_counter() {
  static auto& c = core::metrics::global().counter(
      "ide_orchestrator_spec_engine_requests_total",
      "Requests from the orchestrator to the Spec Engine by endpoint and outcome (HTTP status or error kind).");
  return c;
}
core::metrics::Gauge& breaker_gauge() {
  static auto& g = core::metrics::global().gauge(
      "ide_orchestrator_circuit_breaker_state",
      "State of the circuit breaker to the Spec Engine: 0 closed, 1 half-open, 2 open.");
  return g;
}

double gauge_value(core::CircuitBreaker::State s) {
  switch (s) {
    case core::CircuitBreaker::State::closed: return 0;
    case core::CircuitBreaker::State::half_open: return 1;
    case core::CircuitBreaker::State::open: return 2;
  }
  return 0;
}

const char* kind_label(ClientErrorKind k) {
  switch (k) {
    case ClientErrorKind::invalid_url: return "invalid_url";
    case ClientErrorKind::resolve: return "resolve_error";
    case ClientErrorKind::connect: return "connect_error";
    case ClientErrorKind::tls: return "tls_error";
    case ClientErrorKind::timeout: return "timeout";
    case ClientErrorKind::protocol: return "protocol_error";
    case ClientErrorKind::closed: return "closed";
    case ClientErrorKind::local_resources: return "local_resources";
    case ClientErrorKind::cancelled: return "cancelled";
  }
  return "error";
}

bool transient_kind(ClientErrorKind k) {
  return k == ClientErrorKind::connect || k == ClientErrorKind::resolve || k == ClientErrorKind::timeout ||
         k == ClientErrorKind::closed;
}

/// An HTTP answer that should be retried (5xx, 429); carries the response.
class TransientStatus : public std::runtime_error {
 public:
  explicit TransientStatus(ClientResponse r)
      : std::runtime_error("engine answered HTTP " + std::to_string(r.status)), response(std::move(r)) {}
  ClientResponse response;
};

/// The breaker refused the attempt.
class BreakerOpen : public std::runtime_error {
 public:
  BreakerOpen() : std::runtime_error("circuit breaker open") {}
};

bool is_transient(const std::exception& e) {
  if (dynamic_cast<const TransientStatus*>(&e)) return true;
  if (const auto* ce = dynamic_cast<const ClientError*>(&e)) return transient_kind(ce->kind());
  return false;
}

std::chrono::seconds at_least_one_second(std::chrono::milliseconds ms) {
  const auto s = std::chrono::seconds(static_cast<long long>(std::ceil(static_cast<double>(ms.count()) / 1000.0)));
  return std::max(s, std::chrono::seconds{1});
}

std::string unavailable_sentence(std::chrono::seconds retry_after) {
  const auto n = retry_after.count();
  return "The refinement engine is unavailable; try again in " + std::to_string(n) +
         (n == 1 ? " second." : " seconds.");
}

/// Retry-After header of a 429/503 answer in seconds, if it is a plain number.
std::optional<std::chrono::seconds> retry_after_header(const ClientResponse& r) {
  auto v = r.headers.get("Retry-After");
  if (!v) return std::nullopt;
  try {
    std::size_t used = 0;
    const long long n = std::stoll(*v, &used);
    if (used == v->size() && n >= 0) return std::chrono::seconds{std::max(1LL, n)};
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

/// Human-readable problem detail from an engine error body (problem details or plain text).
std::pair<std::string, nlohmann::json> problem_of(const ClientResponse& r) {
  nlohmann::json problem = nullptr;
  std::string detail;
  try {
    problem = core::json::parse(r.body, core::json::kInternalLimits);
    if (problem.is_object()) {
      if (problem.contains("detail") && problem["detail"].is_string()) detail = problem["detail"].get<std::string>();
      else if (problem.contains("title") && problem["title"].is_string()) detail = problem["title"].get<std::string>();
    }
  } catch (const std::exception&) {
    problem = nullptr;
  }
  if (detail.empty()) detail = core::utf8_truncate(r.body, 200);
  std::string what = "The refinement engine refused the request (HTTP " + std::to_string(r.status) + ")";
  if (!detail.empty()) what += ": " + detail;
  return {what, problem};
}

std::string ws_base(const std::string& base) {
  if (base.rfind("https://", 0) == 0) return "wss://" + base.substr(8);
  if (base.rfind("http://", 0) == 0) return "ws://" + base.substr(7);
  return base;
}

}  // namespace

EngineClient::EngineClient(EngineClientOptions options)
    : options_(std::move(options)), breaker_(options_.breaker) {
  while (!options_.base_url.empty() && options_.base_url.back() == '/') options_.base_url.pop_back();
  breaker_gauge().set(0);
}

namespace {

/// Shared attempt loop: `send` performs one HTTP call; `accept` decides if a final
/// (non-transient) status is OK. Records breaker outcome and metrics per attempt.
struct CallContext {
  const char* endpoint;
  core::CircuitBreaker& breaker;
  const EngineClientOptions& options;
};

void publish_breaker(const core::CircuitBreaker& b) { breaker_gauge().set(gauge_value(b.state())); }

EngineUnavailable unavailable_from_breaker(const core::CircuitBreaker& b) {
  const auto ra = at_least_one_second(b.retry_after());
  return EngineUnavailable(unavailable_sentence(ra), ra);
}

/// Runs `req` with retries/breaker. Returns the final response for any status that
/// is not transient (2xx, 3xx, 4xx other than 429). Throws EngineUnavailable.
ClientResponse call(CallContext ctx, const ClientRequest& req) {
  try {
    return core::retry(ctx.options.retry, is_transient, [&]() -> ClientResponse {
      if (!ctx.breaker.allow()) {
        requests_counter().inc({{"endpoint", ctx.endpoint}, {"status", "circuit_open"}});
        publish_breaker(ctx.breaker);
        throw BreakerOpen();
      }
      ClientResponse r;
      try {
        r = core::http::request(req);
      } catch (const ClientError& e) {
        requests_counter().inc({{"endpoint", ctx.endpoint}, {"status", kind_label(e.kind())}});
        if (transient_kind(e.kind())) ctx.breaker.record_failure();
        else ctx.breaker.record_success();  // our own mistake (bad URL/TLS config), not engine health
        publish_breaker(ctx.breaker);
        core::log::warn("spec engine request failed",
                        {{"endpoint", ctx.endpoint}, {"error", e.what()}, {"breaker", core::CircuitBreaker::name(ctx.breaker.state())}});
        throw;
      }
      requests_counter().inc({{"endpoint", ctx.endpoint}, {"status", std::to_string(r.status)}});
      if (r.status >= 500 || r.status == 429) {
        ctx.breaker.record_failure();
        publish_breaker(ctx.breaker);
        core::log::warn("spec engine answered with a transient error",
                        {{"endpoint", ctx.endpoint}, {"status", r.status}});
        throw TransientStatus(std::move(r));
      }
      ctx.breaker.record_success();
      publish_breaker(ctx.breaker);
      return r;
    });
  } catch (const BreakerOpen&) {
    throw unavailable_from_breaker(ctx.breaker);
  } catch (const TransientStatus& e) {
    std::chrono::seconds ra = at_least_one_second(ctx.breaker.retry_after());
    if (auto h = retry_after_header(e.response)) ra = std::max(ra, *h);
    throw EngineUnavailable(unavailable_sentence(ra), ra);
  } catch (const ClientError& e) {
    if (e.kind() == ClientErrorKind::invalid_url) {
      throw EngineUnavailable("The refinement engine URL is misconfigured (" + std::string(e.what()) +
                                  "); ask an administrator to fix --engine-url.",
                              std::chrono::seconds{60});
    }
    const auto ra = std::max(at_least_one_second(ctx.breaker.retry_after()), std::chrono::seconds{5});
    throw EngineUnavailable(unavailable_sentence(ra), ra);
  }
}

}  // namespace

std::string EngineClient::invoke(const nlohmann::json& job, const std::string& traceparent) {
  ClientRequest req;
  req.method = "POST";
  req.url = options_.base_url + "/spec-engine/invoke";
  req.timeout = options_.request_timeout;
  req.body = job.dump();
  req.headers.set("Content-Type", "application/json");
  req.headers.set("Accept", "application/json");
  if (!traceparent.empty()) req.headers.set("traceparent", traceparent);
  auto r = call({"invoke", breaker_, options_}, req);
  if (r.status < 200 || r.status >= 300) {
    auto [what, problem] = problem_of(r);
    throw EngineRejected(r.status, what, problem);
  }
  try {
    auto body = core::json::parse(r.body, core::json::kInternalLimits);
    if (body.is_object() && body.contains("thread_id") && body["thread_id"].is_string()) return body["thread_id"].get<std::string>();
  } catch (const std::exception&) {
  }
  // The engine accepted but did not name the thread: job_id is the thread id (§4).
  if (job.contains("job_id") && job["job_id"].is_string()) return job["job_id"].get<std::string>();
  throw EngineRejected(r.status, "The refinement engine accepted the job but returned no thread id.");
}

std::optional<nlohmann::json> EngineClient::get_state(const std::string& thread_id, const std::string& traceparent) {
  ClientRequest req;
  req.method = "GET";
  req.url = options_.base_url + "/spec-engine/state/" + thread_id;
  req.timeout = options_.request_timeout;
  req.headers.set("Accept", "application/json");
  if (!traceparent.empty()) req.headers.set("traceparent", traceparent);
  auto r = call({"state", breaker_, options_}, req);
  if (r.status == 404) return std::nullopt;
  if (r.status < 200 || r.status >= 300) {
    auto [what, problem] = problem_of(r);
    throw EngineRejected(r.status, what, problem);
  }
  try {
    return core::json::parse(r.body, core::json::kInternalLimits);
  } catch (const std::exception& e) {
    throw EngineRejected(r.status, std::string("The refinement engine sent an unreadable state: ") + e.what());
  }
}

bool EngineClient::delete_thread(const std::string& thread_id, const std::string& traceparent) {
  ClientRequest req;
  req.method = "DELETE";
  req.url = options_.base_url + "/spec-engine/threads/" + thread_id;
  req.timeout = options_.request_timeout;
  if (!traceparent.empty()) req.headers.set("traceparent", traceparent);
  auto r = call({"delete", breaker_, options_}, req);
  if (r.status == 404 || (r.status >= 200 && r.status < 300)) return true;
  auto [what, problem] = problem_of(r);
  throw EngineRejected(r.status, what, problem);
}

std::unique_ptr<core::http::WsClient> EngineClient::open_stream(const std::string& thread_id, long long after_seq,
                                                                const std::string& traceparent) {
  if (!breaker_.allow()) {
    requests_counter().inc({{"endpoint", "stream"}, {"status", "circuit_open"}});
    publish_breaker(breaker_);
    throw unavailable_from_breaker(breaker_);
  }
  std::string url = ws_base(options_.base_url) + "/spec-engine/stream/" + thread_id;
  if (after_seq > 0) url += "?after_seq=" + std::to_string(after_seq);
  core::http::Headers headers;
  if (!traceparent.empty()) headers.set("traceparent", traceparent);
  try {
    auto ws = core::http::WsClient::connect(url, headers, options_.request_timeout);
    requests_counter().inc({{"endpoint", "stream"}, {"status", "101"}});
    breaker_.record_success();
    publish_breaker(breaker_);
    return ws;
  } catch (const core::http::WsHandshakeError& e) {
    requests_counter().inc({{"endpoint", "stream"}, {"status", std::to_string(e.status())}});
    if (e.status() >= 500 || e.status() == 429) {
      breaker_.record_failure();
      publish_breaker(breaker_);
      const auto ra = std::max(at_least_one_second(breaker_.retry_after()), std::chrono::seconds{5});
      throw EngineUnavailable(unavailable_sentence(ra), ra);
    }
    breaker_.record_success();
    publish_breaker(breaker_);
    if (e.status() == 404) {
      throw EngineRejected(404, "The refinement engine does not know thread " + thread_id + ".");
    }
    ClientResponse r;
    r.status = e.status();
    r.body = e.body();
    auto [what, problem] = problem_of(r);
    throw EngineRejected(e.status(), what, problem);
  } catch (const ClientError& e) {
    requests_counter().inc({{"endpoint", "stream"}, {"status", kind_label(e.kind())}});
    if (transient_kind(e.kind())) breaker_.record_failure();
    else breaker_.record_success();
    publish_breaker(breaker_);
    core::log::warn("spec engine stream connect failed", {{"thread_id", thread_id}, {"error", e.what()}});
    const auto ra = std::max(at_least_one_second(breaker_.retry_after()), std::chrono::seconds{5});
    throw EngineUnavailable(unavailable_sentence(ra), ra);
  }
}

std::string EngineClient::breaker_state() const {
  const auto s = breaker_.state();
  breaker_gauge().set(gauge_value(s));
  return core::CircuitBreaker::name(s);
}

}  // namespace orchestrator::engine_client
