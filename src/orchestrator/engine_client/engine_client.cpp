// Engine client: see engine_client.hpp for the contract (retries, breaker in front of invoke only,
// local EMFILE/ENFILE never counted against the engine).
#include "orchestrator/engine_client/engine_client.hpp"

#include <algorithm>
#include <cmath>

#include "core/json_parse.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/tracing.hpp"
#include "core/util.hpp"

namespace orchestrator::engine_client {

namespace {

using core::async::Task;
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
  static auto& g = core::metrics::global().gauge("ide_orchestrator_circuit_breaker_state",
                                                 "State of the circuit breaker in front of new refinements and runs "
                                                 "(engine invoke): 0 closed, 1 half-open, 2 open.");
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
    case ClientErrorKind::too_large: return "too_large";
  }
  return "error";
}

/// Failures worth another attempt: the engine may answer next time, or we may have a free
/// descriptor next time.
bool transient_kind(ClientErrorKind k) {
  return k == ClientErrorKind::connect || k == ClientErrorKind::resolve || k == ClientErrorKind::timeout ||
         k == ClientErrorKind::closed || k == ClientErrorKind::local_resources;
}

/// Failures that say something about the engine's health (fed to the breaker). Local resources,
/// cancellation and our own configuration (URL, TLS settings) do not.
bool engine_fault(ClientErrorKind k) {
  return k == ClientErrorKind::connect || k == ClientErrorKind::resolve || k == ClientErrorKind::timeout ||
         k == ClientErrorKind::closed;
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

/// EMFILE/ENFILE: answered 503 with a short Retry-After; the engine is not blamed.
EngineUnavailable out_of_descriptors(const char* endpoint, const ClientError& e) {
  core::log::error("orchestrator_out_of_file_descriptors",
                   {{"endpoint", endpoint}, {"error", e.what()},
                    {"detail", "raise the open-files limit (ulimit -n / LimitNOFILE) or lower the load"}});
  return EngineUnavailable("The orchestrator has no free connections right now; try again in 2 seconds.",
                           std::chrono::seconds{2});
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
std::pair<std::string, nlohmann::json> problem_of(int status, const std::string& body) {
  nlohmann::json problem = core::json::parse_or_null(body, core::json::kInternalLimits).value_or(nullptr);
  std::string detail;
  if (problem.is_object()) {
    if (problem.contains("detail") && problem["detail"].is_string()) detail = problem["detail"].get<std::string>();
    else if (problem.contains("title") && problem["title"].is_string()) detail = problem["title"].get<std::string>();
  }
  if (detail.empty()) detail = core::utf8_truncate(body, 200);
  std::string what = "The refinement engine refused the request (HTTP " + std::to_string(status) + ")";
  if (!detail.empty()) what += ": " + detail;
  return {what, problem};
}

[[noreturn]] void throw_rejected(const ClientResponse& r) {
  auto [what, problem] = problem_of(r.status, r.body);
  throw EngineRejected(r.status, what, problem);
}

/// The engine's 413 to an invoke: the job (the draft's files as JSON) is over its
/// --max-body-bytes. The files' limits count text, and JSON can take up to 6 bytes per byte of
/// text (a control character is written `\u0001`), so a draft within them can still be too big.
EngineRejected job_too_large(const ClientResponse& r, std::size_t job_bytes) {
  auto [what, problem] = problem_of(r.status, r.body);
  std::string limit;
  if (problem.is_object() && problem.contains("limit") && problem["limit"].is_number_integer()) {
    limit = " (" + std::to_string(problem["limit"].get<long long>()) + " bytes)";
  }
  return EngineRejected(413,
                        "the job is " + std::to_string(job_bytes) + " bytes as JSON, more than the engine accepts" +
                            limit +
                            ". The files take more room as JSON than as text (a control character takes 6 bytes, "
                            "an empty line 3); make the draft smaller.",
                        std::move(problem));
}

std::string ws_base(const std::string& base) {
  if (base.rfind("https://", 0) == 0) return "wss://" + base.substr(8);
  if (base.rfind("http://", 0) == 0) return "ws://" + base.substr(7);
  return base;
}

void publish_breaker(const core::CircuitBreaker& b) { breaker_gauge().set(gauge_value(b.state())); }

EngineUnavailable unavailable_from_breaker(const core::CircuitBreaker& b) {
  const auto ra = at_least_one_second(b.retry_after());
  return EngineUnavailable(unavailable_sentence(ra), ra);
}

EngineUnavailable cancelled() {
  return EngineUnavailable("The call to the refinement engine was cancelled.", std::chrono::seconds{1});
}

}  // namespace

EngineClient::EngineClient(EngineClientOptions options, core::async::Runtime& runtime)
    : options_(std::move(options)),
      runtime_(runtime),
      breaker_(options_.breaker),
      invokes_(static_cast<std::size_t>(std::max(1, options_.max_invokes_in_flight))) {
  while (!options_.base_url.empty() && options_.base_url.back() == '/') options_.base_url.pop_back();
  core::http::AsyncClientOptions http_options;
  http_options.ws_max_message_bytes = options_.max_event_bytes;
  http_ = std::make_unique<core::http::AsyncHttpClient>(runtime_, http_options);
  breaker_gauge().set(0);
}

EngineClient::~EngineClient() = default;

/// One attempt's outcome as seen by the retry loop.
struct EngineClient::Call {
  const char* endpoint;
  bool guarded;  ///< behind the breaker (invoke only)
  EngineClient& self;

  /// Breaker admission for guarded calls; throws EngineUnavailable when open.
  void admit() {
    if (!guarded) return;
    if (self.breaker_.allow()) return;
    requests_counter().inc({{"endpoint", endpoint}, {"status", "circuit_open"}});
    publish_breaker(self.breaker_);
    throw unavailable_from_breaker(self.breaker_);
  }
  /// Records an answer; true when it is transient (5xx, 429) and worth another attempt.
  bool transient(const ClientResponse& r) {
    requests_counter().inc({{"endpoint", endpoint}, {"status", std::to_string(r.status)}});
    const bool bad = r.status >= 500 || r.status == 429;
    if (guarded) {
      if (bad) self.breaker_.record_failure();
      else self.breaker_.record_success();
      publish_breaker(self.breaker_);
    }
    if (bad) core::log::warn("spec engine answered with a transient error", {{"endpoint", endpoint}, {"status", r.status}});
    return bad;
  }
  /// Records a transport failure; throws at once unless it is worth another attempt.
  void failed(const ClientError& e) {
    requests_counter().inc({{"endpoint", endpoint}, {"status", kind_label(e.kind())}});
    if (guarded) {
      if (engine_fault(e.kind())) self.breaker_.record_failure();
      else self.breaker_.record_ignored();
      publish_breaker(self.breaker_);
    }
    if (e.kind() == ClientErrorKind::cancelled) throw cancelled();
    if (e.kind() == ClientErrorKind::local_resources) {
      core::log::warn("spec engine request found no free descriptor", {{"endpoint", endpoint}, {"error", e.what()}});
      return;
    }
    core::log::warn("spec engine request failed", {{"endpoint", endpoint},
                                                   {"error", e.what()},
                                                   {"breaker", core::CircuitBreaker::name(self.breaker_.state())}});
    if (e.kind() == ClientErrorKind::invalid_url) {
      throw EngineUnavailable("The refinement engine URL is misconfigured (" + std::string(e.what()) +
                                  "); ask an administrator to fix --engine-url.",
                              std::chrono::seconds{60});
    }
    if (!transient_kind(e.kind())) throw give_up_after(e);
  }
  /// The exception for a failed transport after the last attempt.
  EngineUnavailable give_up_after(const ClientError& e) {
    if (e.kind() == ClientErrorKind::local_resources) return out_of_descriptors(endpoint, e);
    const auto ra = std::max(at_least_one_second(self.breaker_.retry_after()), std::chrono::seconds{5});
    return EngineUnavailable(unavailable_sentence(ra), ra);
  }
  /// The exception for a transient status after the last attempt.
  EngineUnavailable give_up_after(const ClientResponse& r) {
    std::chrono::seconds ra = at_least_one_second(self.breaker_.retry_after());
    if (auto h = retry_after_header(r)) ra = std::max(ra, *h);
    return EngineUnavailable(unavailable_sentence(ra), ra);
  }
};

Task<ClientResponse> EngineClient::call(const char* endpoint, bool guarded, ClientRequest req, std::stop_token stop) {
  Call c{endpoint, guarded, *this};
  const int attempts = std::max(1, options_.retry.max_attempts);
  for (int attempt = 0;; ++attempt) {
    c.admit();
    std::optional<ClientResponse> answer;
    std::optional<ClientError> error;
    try {
      answer = co_await http_->request(req, stop);
    } catch (const ClientError& e) {
      error = e;
    }
    if (answer && !c.transient(*answer)) co_return std::move(*answer);
    if (error) c.failed(*error);
    if (attempt + 1 >= attempts) {
      if (error) throw c.give_up_after(*error);
      throw c.give_up_after(*answer);
    }
    const auto delay = options_.retry.delay_for(attempt);
    if (!co_await core::async::sleep_for(delay, stop)) throw cancelled();
  }
}

namespace {

ClientRequest engine_request(const EngineClientOptions& o, const char* method, std::string url,
                             const std::string& traceparent) {
  ClientRequest req;
  req.method = method;
  req.url = std::move(url);
  req.timeout = o.request_timeout;
  if (!traceparent.empty()) req.headers.set("traceparent", traceparent);
  return req;
}

/// Interprets a state answer: the document, nullopt on 404; EngineRejected otherwise.
std::optional<nlohmann::json> state_of(const ClientResponse& r) {
  if (r.status == 404) return std::nullopt;
  if (r.status < 200 || r.status >= 300) throw_rejected(r);
  auto doc = core::json::parse_or_null(r.body, core::json::kInternalLimits).value_or(nullptr);
  if (!doc.is_object()) {
    throw EngineRejected(r.status, "The refinement engine sent an unreadable state document.");
  }
  return doc;
}

bool deleted(const ClientResponse& r) {
  if (r.status == 404 || (r.status >= 200 && r.status < 300)) return true;
  throw_rejected(r);
}

}  // namespace

std::string EngineClient::invoke(const nlohmann::json& job, const std::string& traceparent) {
  return runtime_.run_sync(invoke_async(job, traceparent));
}

Task<std::string> EngineClient::invoke_async(nlohmann::json job, std::string traceparent) {
  // HTTP client span (OTel HTTP semantic conventions): the engine's spans are its children.
  core::tracing::Span span = core::tracing::start_span("POST /spec-engine/invoke",
                                                       core::tracing::parse_traceparent(traceparent),
                                                       core::tracing::kClient);
  span.set_attribute("http.request.method", "POST");
  span.set_attribute("url.template", "/spec-engine/invoke");
  span.set_attribute("url.full", options_.base_url + "/spec-engine/invoke");
  if (job.contains("job_id") && job["job_id"].is_string()) span.set_attribute("thread_id", job["job_id"]);
  ClientRequest req = engine_request(options_, "POST", options_.base_url + "/spec-engine/invoke",
                                     span.context().to_traceparent());
  req.body = job.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  req.headers.set("Content-Type", "application/json");
  req.headers.set("Accept", "application/json");
  req.idempotent = true;  // the engine deduplicates by job_id (a repeated invoke answers the existing thread)
  const std::size_t job_bytes = req.body.size();
  Task<core::async::Permit> turn = invokes_.acquire();
  const core::async::Permit permit = co_await std::move(turn);  // held until the engine answered
  Task<ClientResponse> sent = call("invoke", true, std::move(req), {});
  ClientResponse r;
  try {
    r = co_await std::move(sent);
  } catch (const EngineUnavailable& e) {
    span.set_error(e.what(), "engine_unavailable");
    throw;
  }
  span.set_attribute("http.response.status_code", r.status);
  if (r.status < 200 || r.status >= 300) {
    span.set_error("the engine refused the job", std::to_string(r.status));
    if (r.status == 413) throw job_too_large(r, job_bytes);
    throw_rejected(r);
  }
  const auto body = core::json::parse_or_null(r.body, core::json::kInternalLimits).value_or(nullptr);
  if (body.is_object() && body.contains("thread_id") && body["thread_id"].is_string()) {
    co_return body["thread_id"].get<std::string>();
  }
  // The engine accepted but did not name the thread: job_id is the thread id.
  if (job.contains("job_id") && job["job_id"].is_string()) co_return job["job_id"].get<std::string>();
  throw EngineRejected(r.status, "The refinement engine accepted the job but returned no thread id.");
}

std::optional<nlohmann::json> EngineClient::get_state(const std::string& thread_id, const std::string& traceparent) {
  ClientRequest req = engine_request(options_, "GET", options_.base_url + "/spec-engine/state/" + thread_id, traceparent);
  req.headers.set("Accept", "application/json");
  return state_of(runtime_.run_sync(call("state", false, std::move(req), {})));
}

Task<std::optional<nlohmann::json>> EngineClient::get_state_async(std::string thread_id, std::stop_token stop) {
  ClientRequest req = engine_request(options_, "GET", options_.base_url + "/spec-engine/state/" + thread_id, "");
  req.headers.set("Accept", "application/json");
  const ClientResponse r = co_await call("state", false, std::move(req), stop);
  co_return state_of(r);
}

bool EngineClient::delete_thread(const std::string& thread_id, const std::string& traceparent) {
  ClientRequest req =
      engine_request(options_, "DELETE", options_.base_url + "/spec-engine/threads/" + thread_id, traceparent);
  return deleted(runtime_.run_sync(call("delete", false, std::move(req), {})));
}

Task<bool> EngineClient::delete_thread_async(std::string thread_id, std::stop_token stop) {
  ClientRequest req = engine_request(options_, "DELETE", options_.base_url + "/spec-engine/threads/" + thread_id, "");
  const ClientResponse r = co_await call("delete", false, std::move(req), stop);
  co_return deleted(r);
}

Task<std::shared_ptr<core::http::AsyncWsClient>> EngineClient::open_stream(std::string thread_id, long long after_seq,
                                                                         std::stop_token stop, std::string traceparent) {
  std::string url = ws_base(options_.base_url) + "/spec-engine/stream/" + thread_id;
  if (after_seq > 0) url += "?after_seq=" + std::to_string(after_seq);
  core::http::Headers headers;
  if (!traceparent.empty()) headers.set("traceparent", traceparent);
  const auto timeout = options_.stream_open_timeout;
  core::http::TlsOptions tls;  // a named local: no non-trivial temporaries inside co_await (GCC 12)
  std::optional<core::http::WsHandshakeError> refused;
  std::optional<ClientError> error;
  try {
    auto ws = co_await http_->connect_ws(std::move(url), std::move(headers), timeout, std::move(tls), stop);
    requests_counter().inc({{"endpoint", "stream"}, {"status", "101"}});
    co_return ws;
  } catch (const core::http::WsHandshakeError& e) {
    refused = e;
  } catch (const ClientError& e) {
    error = e;
  }
  if (refused) {
    requests_counter().inc({{"endpoint", "stream"}, {"status", std::to_string(refused->status())}});
    if (refused->status() == 404) {
      throw EngineRejected(404, "The refinement engine does not know thread " + thread_id + ".");
    }
    if (refused->status() >= 500 || refused->status() == 429) {
      throw EngineUnavailable(unavailable_sentence(std::chrono::seconds{5}), std::chrono::seconds{5});
    }
    auto [what, problem] = problem_of(refused->status(), refused->body());
    throw EngineRejected(refused->status(), what, problem);
  }
  requests_counter().inc({{"endpoint", "stream"}, {"status", kind_label(error->kind())}});
  if (error->kind() == ClientErrorKind::cancelled) throw cancelled();
  if (error->kind() == ClientErrorKind::local_resources) throw out_of_descriptors("stream", *error);
  core::log::debug("spec engine stream connect failed", {{"thread_id", thread_id}, {"error", error->what()}});
  throw EngineUnavailable(unavailable_sentence(std::chrono::seconds{5}), std::chrono::seconds{5});
}

std::string EngineClient::breaker_state() const {
  const auto s = breaker_.state();
  breaker_gauge().set(gauge_value(s));
  return core::CircuitBreaker::name(s);
}

}  // namespace orchestrator::engine_client
