// Error mapping for the orchestrator API (RFC 9457 problem details); the request parsing
// helpers of problem.hpp are in request_fields.cpp.
#include "orchestrator/api/problem.hpp"

#include <algorithm>

#include "core/log.hpp"
#include "core/rate_limit.hpp"
#include "core/unavailable.hpp"
#include "orchestrator/domain/error.hpp"
#include "orchestrator/engine_client/engine_client.hpp"
#include "orchestrator/store/unit_of_work.hpp"

namespace orchestrator::api {

using core::http::Request;
using core::http::Response;
using nlohmann::json;

Response engine_unavailable_problem(std::chrono::seconds retry_after, const std::string& title,
                                    const std::string& detail) {
  const long long secs = std::max<long long>(1, retry_after.count());
  Response r = Response::problem(503, title,
                                 detail + "; please try again in " + std::to_string(secs) +
                                     (secs == 1 ? " second." : " seconds."),
                                 {{"type", problem_type("engine-unavailable")}, {"retry_after_seconds", secs}});
  r.headers.set("Retry-After", std::to_string(secs));
  return r;
}

Response engine_rejected_problem(int engine_status, const json& engine_problem, const std::string& detail) {
  json extra = {{"type", problem_type("engine-rejected")}, {"engine_status", engine_status}};
  if (engine_problem.is_object() && engine_problem.contains("errors")) extra["errors"] = engine_problem["errors"];
  if (engine_status == 413) {
    // The job is too large for the engine: the client's input, not the engine, has to change.
    extra["type"] = problem_type("job-too-large");
    if (engine_problem.is_object() && engine_problem.contains("limit") && engine_problem["limit"].is_number_integer())
      extra["limit"] = engine_problem["limit"];
    return Response::problem(413, "Payload Too Large", detail, extra);
  }
  return Response::problem(502, "Bad Gateway", detail, extra);
}

Response to_response(const std::exception& e, const Request& req) {
  if (auto* a = dynamic_cast<const ApiError*>(&e)) return a->response();
  if (auto* inv = dynamic_cast<const domain::InvalidError*>(&e)) {
    // Domain messages are whole sentences that start with the field ("name must be ..."); the
    // problem names the field already: "Field 'name' must be ...", not "Field 'name' name must".
    std::string message = inv->what();
    if (message.rfind(inv->field() + " ", 0) == 0) message.erase(0, inv->field().size() + 1);
    return validation_problem({{inv->field(), message}}, inv->what());
  }
  if (auto* d = dynamic_cast<const domain::Error*>(&e)) {
    json extra = d->details().is_object() ? d->details() : json::object();
    extra["type"] = problem_type(d->slug());
    const int st = d->http_status();
    const char* title = st == 404   ? "Not Found"
                        : st == 409 ? "Conflict"
                        : st == 401 ? "Unauthorized"
                        : st == 403 ? "Forbidden"
                        : st == 422 ? "Unprocessable Content"
                                    : "Bad Request";
    if (auto* link = dynamic_cast<const domain::IdentityLinkError*>(d)) extra["type"] = problem_type(link->reason());
    Response r = Response::problem(st, st == 429 ? "Too Many Requests" : title, d->what(), extra);
    if (st == 401) r.headers.set("WWW-Authenticate", "Bearer realm=\"ide-orchestrator\", error=\"invalid_token\"");
    if (auto* lim = dynamic_cast<const domain::LimitExceededError*>(d)) {
      // draft-ietf-httpapi-ratelimit-headers-11 §3.1.2 (concurrency quota) and §4 (none left).
      r.headers.set("Retry-After", std::to_string(std::max<long long>(1, lim->retry_after())));
      r.headers.set("RateLimit-Policy", core::ratelimit::concurrency_policy_item(lim->policy(), lim->limit()));
      r.headers.set("RateLimit", "\"" + lim->policy() + "\";r=0");
    }
    return r;
  }
  if (auto* u = dynamic_cast<const engine_client::EngineUnavailable*>(&e)) {
    core::log::warn("engine_unavailable", {{"error", u->what()}, {"request_id", req.request_id}});
    return engine_unavailable_problem(
        u->retry_after(), "Refinement service unavailable",
        "The AI refinement engine is not reachable right now, so the refinement could not be started. "
        "Your draft was not changed (the attempt is listed as a failed proposal; start it again with POST "
        "/api/proposals/{id}/retry, or send a new request: a resend with the same Idempotency-Key returns that "
        "failed proposal)");
  }
  if (auto* db = dynamic_cast<const store::DatabaseUnavailable*>(&e)) {
    // The domain's database work could not run now (store/unit_of_work.hpp); what() says whether
    // the change may have been applied.
    const long long secs = std::max<long long>(1, db->retry_after().count());
    Response r = Response::problem(503, "Database unavailable", db->what(),
                                   {{"type", problem_type("database-unavailable")},
                                    {"retry_after_seconds", secs},
                                    {"maybe_applied", db->maybe_written()}});
    r.headers.set("Retry-After", std::to_string(secs));
    return r;
  }
  if (auto* u = dynamic_cast<const core::Unavailable*>(&e)) {
    const long long secs = std::max<long long>(1, u->retry_after().count());
    core::log::warn("service_unavailable", {{"error", u->what()}, {"request_id", req.request_id}});
    Response r = Response::problem(503, "Service Unavailable",
                                   "The server is temporarily out of capacity; try again in " + std::to_string(secs) +
                                       " s.",
                                   {{"type", problem_type("unavailable")}, {"retry_after_seconds", secs}});
    r.headers.set("Retry-After", std::to_string(secs));
    return r;
  }
  if (auto* rj = dynamic_cast<const engine_client::EngineRejected*>(&e)) {
    core::log::error("engine_rejected", {{"status", rj->status()}, {"error", rj->what()}, {"request_id", req.request_id}});
    return engine_rejected_problem(rj->status(), rj->problem(),
                                   std::string("The refinement engine refused the job: ") + rj->what());
  }
  core::log::error("http_handler_failed", {{"error", e.what()}, {"request_id", req.request_id}, {"path", req.path}});
  return Response::problem(500, "Internal Server Error",
                           "The server failed to handle the request; it was logged with request id " +
                               req.request_id + ".");
}

std::function<Response(Request&)> guarded(std::function<Response(Request&)> handler) {
  return [h = std::move(handler)](Request& req) -> Response {
    try {
      return h(req);
    } catch (const std::exception& e) {
      return to_response(e, req);
    }
  };
}

}  // namespace orchestrator::api
