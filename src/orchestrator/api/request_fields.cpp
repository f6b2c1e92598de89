// Request parsing helpers of the orchestrator API (problem.hpp): bodies, fields, path and
// query parameters, and the 400 problem details that name a bad field. Kept apart from the
// error mapping (problem.cpp) so the parse step links without the engine client (fuzz/).
#include <algorithm>

#include "core/json_parse.hpp"
#include "core/util.hpp"
#include "orchestrator/api/problem.hpp"
#include "orchestrator/domain/error.hpp"

namespace orchestrator::api {

using core::http::Request;
using core::http::Response;
using nlohmann::json;

std::string problem_type(const std::string& slug) { return "https://agentic-ide.dev/problems/" + slug; }

Response validation_problem(const std::vector<FieldProblem>& errors, const std::string& detail) {
  json list = json::array();
  for (const auto& e : errors) list.push_back({{"field", e.field}, {"message", e.message}});
  std::string d = detail;
  if (errors.size() == 1) d = "Field '" + errors[0].field + "' " + errors[0].message + ".";
  return Response::problem(400, "Invalid request", d, {{"type", problem_type("invalid-request")}, {"errors", list}});
}

json parse_json_object(const Request& req) {
  if (auto ct = req.headers.get("Content-Type"); ct && !core::http::is_json_content_type(*ct)) {
    throw ApiError(Response::problem(
        415, "Unsupported Media Type",
        "Send the request body as JSON with Content-Type: application/json (or application/<name>+json; a "
        "charset, if given, must be utf-8); got '" + ct->substr(0, 200) + "'.",
        {{"type", problem_type("unsupported-media-type")}}));
  }
  if (req.body.empty()) {
    throw ApiError(validation_problem({{"(body)", "is required: send a JSON object"}}));
  }
  auto parsed = core::json::try_parse(req.body);
  if (auto* e = std::get_if<core::json::ParseError>(&parsed)) {
    const auto p = core::json::describe(*e, "(body)");
    json extra = {{"type", problem_type(p.slug)}, {"errors", json::array({{{"field", p.field}, {"message", p.message}}})}};
    if (e->limit) extra["limit"] = e->limit;
    throw ApiError(Response::problem(p.status, p.title, p.detail, extra));
  }
  json j = std::move(std::get<json>(parsed));
  if (!j.is_object()) throw ApiError(validation_problem({{"(body)", "must be a JSON object"}}));
  return j;
}

std::optional<std::string> opt_string(const json& body, const std::string& name, std::vector<FieldProblem>& errors) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_string()) {
    errors.push_back({name, "must be a string"});
    return std::nullopt;
  }
  if (it->get_ref<const std::string&>().find('\0') != std::string::npos) {
    errors.push_back({name, "must not contain NUL characters"});
    return std::nullopt;
  }
  return it->get<std::string>();
}

std::string req_string(const json& body, const std::string& name, std::vector<FieldProblem>& errors,
                       std::size_t max_len) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    errors.push_back({name, "is required"});
    return {};
  }
  if (!it->is_string() || it->get_ref<const std::string&>().empty()) {
    errors.push_back({name, "must be a non-empty string"});
    return {};
  }
  if (max_len && it->get_ref<const std::string&>().size() > max_len) {
    errors.push_back({name, "must be at most " + std::to_string(max_len) + " bytes"});
    return {};
  }
  if (it->get_ref<const std::string&>().find('\0') != std::string::npos) {
    errors.push_back({name, "must not contain NUL characters"});
    return {};
  }
  return it->get<std::string>();
}

void throw_if_invalid(const std::vector<FieldProblem>& errors) {
  if (!errors.empty()) throw ApiError(validation_problem(errors));
}

std::string uuid_param(const Request& req, const std::string& name, const std::string& resource) {
  auto it = req.path_params.find(name);
  std::string v = it == req.path_params.end() ? std::string() : it->second;
  if (!core::is_uuid(v)) throw domain::NotFoundError(resource, v);
  return v;
}

std::string caller_id(const Request& req) {
  if (req.context.is_object() && req.context.contains("user_id") && req.context["user_id"].is_string()) {
    return req.context["user_id"].get<std::string>();
  }
  throw ApiError(Response::problem(401, "Unauthorized", "Sign in first: this endpoint needs a bearer token.",
                                   {{"type", problem_type("unauthenticated")}}));
}

PageQuery page_query(const Request& req) {
  PageQuery q;
  if (auto l = req.query_param("limit")) {
    std::size_t pos = 0;
    int v = 0;
    try {
      v = std::stoi(*l, &pos);
    } catch (const std::exception&) {
      pos = 0;
    }
    if (pos != l->size() || v < 1 || v > 200) {
      throw ApiError(validation_problem({{"limit", "must be an integer from 1 to 200"}}));
    }
    q.limit = v;
  }
  if (auto c = req.query_param("cursor")) q.cursor = *c;
  return q;
}

}  // namespace orchestrator::api
