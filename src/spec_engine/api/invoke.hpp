#pragma once
// Parsing and validation of POST /spec-engine/invoke (docs/engine-api.md):
// plain JSON (application/json), a structured CloudEvent (application/cloudevents+json,
// CloudEvents 1.0 JSON format §3, job in `data`) or a binary CloudEvent
// (CloudEvents 1.0 HTTP binding §3.1: ce-* headers, body = job).

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/http_types.hpp"
#include "spec_engine/bus/run_manager.hpp"
#include "spec_engine/runtime/run.hpp"

namespace spec_engine::api {

/// A rejected invoke: HTTP status (400 | 415), problem title/detail and every bad field.
struct InvokeError {
  int status = 400;
  std::string title;
  std::string detail;
  std::vector<runtime::FieldError> errors;
  /// RFC 9457 problem response with `errors: [{field, message}]`.
  core::http::Response to_response() const;
};

/// An accepted invoke body.
struct ParsedInvoke {
  bus::Job job;
  std::string mode;  ///< "json" | "cloudevent-structured" | "cloudevent-binary"
  /// CloudEvent context attributes (id, source, type, specversion, ...) in CloudEvent modes; else null.
  nlohmann::json cloudevent;
};

/// True if `id` is a UUID (8-4-4-4-12 hex) or 1..128 characters of [A-Za-z0-9._-]
/// (our rule for job_id == thread_id: safe in URLs, paths and subjects).
bool is_valid_thread_id(const std::string& id);

/// The media type of a Content-Type value, lower-cased, without parameters
/// ("Application/JSON; charset=utf-8" -> "application/json"); "" when absent.
std::string media_type(const std::optional<std::string>& content_type);

/// Validates a job object; field names are prefixed with `prefix` (e.g. "data.").
/// Checks: job_id (required, valid id), trace_id (string if present), agent_definition
/// (required non-empty object, then runtime::validate_definition), input_payload (object if present,
/// then runtime::validate_input_payload).
std::vector<runtime::FieldError> validate_job(const nlohmann::json& job, const std::string& prefix);

/// Parses and validates one job message given its header fields and body: the one
/// code path behind POST /spec-engine/invoke and the NATS JetStream consumer
/// (bus/nats_bus). The mode is chosen from `Content-Type` (application/cloudevents+json:
/// structured, CloudEvents 1.0 JSON format §3) and the `ce-specversion` field (binary,
/// CloudEvents 1.0 HTTP binding §3.1); anything else JSON is a plain job. The body is read
/// with the bounded parser (core/json_parse.hpp: nesting depth at most 64; a number out of
/// range such as 1e999 is a 400 naming its field). Errors carry HTTP-style statuses (400
/// invalid, 413 over the parser's size limit, 415 unsupported media type). Never throws
/// for bad input.
std::variant<ParsedInvoke, InvokeError> parse_job_message(const core::http::Headers& headers, const std::string& body);

/// Parses and validates the request (not the body size: the server enforces
/// --max-body-bytes with 413): parse_job_message(request.headers, request.body).
/// Never throws for bad input.
std::variant<ParsedInvoke, InvokeError> parse_invoke(const core::http::Request& request);

}  // namespace spec_engine::api
