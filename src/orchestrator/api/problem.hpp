#pragma once
// Error mapping and request-parsing helpers shared by every orchestrator handler.
// All errors leave as RFC 9457 problem details (application/problem+json) with,
// for validation failures, `errors: [{field, message}]` naming each bad field.

#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/http_types.hpp"

namespace orchestrator::api {

/// A handler-level failure that already knows its HTTP answer. Thrown by the
/// parsing helpers below and caught by `guarded`.
class ApiError : public std::runtime_error {
 public:
  /// Wraps the complete response to send (status, headers, problem+json body); what() is the body.
  explicit ApiError(core::http::Response response)
      : std::runtime_error(response.body), response_(std::move(response)) {}
  /// The response to send as is (to_response returns it unchanged).
  const core::http::Response& response() const { return response_; }

 private:
  core::http::Response response_;
};

/// One bad input field for the `errors` member of a 400 problem.
struct FieldProblem {
  std::string field;    ///< JSON field name or dotted path, e.g. "user_prompt", "files./a.md.content"
  std::string message;  ///< what is wrong, a sentence fragment ("is required", "must be a string")
};

/// 400 problem details with `errors` listing every bad field (RFC 9457 §3.2 extension member).
core::http::Response validation_problem(const std::vector<FieldProblem>& errors,
                                        const std::string& detail = "The request has invalid fields.");

/// Parses the body as a JSON object with the bounded parser (core/json_parse.hpp: depth
/// at most 64). Throws ApiError: 400 "Malformed JSON" naming the byte offset when it does
/// not parse, 400 "JSON nested too deeply" naming the limit (`limit` member), 400 "Number
/// out of range" naming the field (e.g. `files["/a.md"].content[2]`) for numbers such as
/// 1e999, 400 with field "(body)" when it is not an object, 415 when a Content-Type is given
/// that is not JSON (core::http::is_json_content_type: application/json or
/// application/<name>+json, charset utf-8 if any; RFC 9110 §8.3.1).
nlohmann::json parse_json_object(const core::http::Request& req);

/// Optional string member `name` of `body`: nullopt when absent or null; adds a
/// FieldProblem when present with another type or holding a NUL character (text is stored
/// in SQL, and PostgreSQL text cannot hold NUL).
std::optional<std::string> opt_string(const nlohmann::json& body, const std::string& name,
                                      std::vector<FieldProblem>& errors);

/// Required non-empty string member; adds a FieldProblem ("is required"/"must be a
/// non-empty string"/"must not contain NUL characters") and returns "" when missing or bad.
/// `max_len` in bytes (0 = unlimited).
std::string req_string(const nlohmann::json& body, const std::string& name, std::vector<FieldProblem>& errors,
                       std::size_t max_len = 0);

/// Throws ApiError(validation_problem(errors)) unless `errors` is empty.
void throw_if_invalid(const std::vector<FieldProblem>& errors);

/// Path parameter `name` that must be a UUID; a malformed id is answered like an unknown
/// one (404 "<resource> <id> was not found"), so ids cannot be probed (docs/orchestrator-api.md#errors).
std::string uuid_param(const core::http::Request& req, const std::string& name, const std::string& resource);

/// The authenticated caller's user id (set by the auth middleware in
/// `req.context["user_id"]`). Throws ApiError 401 if missing (route not protected: a bug).
std::string caller_id(const core::http::Request& req);

/// Pagination query `limit` (1..200, default 50) and `cursor` (opaque). Bad limit -> ApiError 400
/// naming field "limit".
struct PageQuery {
  int limit = 50;      ///< page size, 1..200
  std::string cursor;  ///< opaque next_cursor of the previous page; "" = first page
};
/// Reads `limit` and `cursor` from the query string (docs/orchestrator-api.md#pagination).
/// `limit` must be a whole decimal integer 1..200, else throws ApiError 400 (validation_problem,
/// field "limit"). `cursor` is copied as is ("" when absent); it is decoded and validated later
/// by the store (store::decode_cursor throws domain::InvalidError "cursor").
PageQuery page_query(const core::http::Request& req);

/// Maps any exception escaping a handler to a response:
/// domain::Error -> its status (400 with `errors` for InvalidError, 409 with `paths` for
/// conflicts, 403 typed by IdentityLinkError::reason(), 429 + Retry-After + RateLimit /
/// RateLimit-Policy for LimitExceededError); EngineUnavailable -> 503 + Retry-After; store::DatabaseUnavailable
/// -> 503 + Retry-After typed "database-unavailable" with `maybe_applied`; any other core::Unavailable
/// -> 503 + Retry-After; EngineRejected -> 502; ApiError ->
/// its response; anything else -> 500 with a generic message (details logged, not sent).
core::http::Response to_response(const std::exception& e, const core::http::Request& req);

/// 503 problem (type engine-unavailable) with Retry-After: the engine could not be reached to
/// start a job. `title` names the service, `detail` says what was not started and what was
/// recorded; "please try again in N seconds." is appended (N = `retry_after`, at least 1).
core::http::Response engine_unavailable_problem(std::chrono::seconds retry_after, const std::string& title,
                                                const std::string& detail);
/// 502 problem (type engine-rejected) for a job the engine refused with HTTP `engine_status`:
/// `detail` is the sentence shown; the engine's `errors` member (from `engine_problem`) is kept.
/// An engine 413 (the job over its body limit) is a 413 of type job-too-large with the engine's
/// `limit` in bytes: the caller's draft has to shrink, nothing is wrong with the engine.
core::http::Response engine_rejected_problem(int engine_status, const nlohmann::json& engine_problem,
                                             const std::string& detail);

/// Wraps a handler so exceptions become problem details (see to_response).
std::function<core::http::Response(core::http::Request&)> guarded(
    std::function<core::http::Response(core::http::Request&)> handler);

/// Problem-type URI for a slug: "https://agentic-ide.dev/problems/<slug>".
std::string problem_type(const std::string& slug);

}  // namespace orchestrator::api
