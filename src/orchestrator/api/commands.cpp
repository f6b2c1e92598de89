// Request bodies -> commands (commands.hpp).
#include "orchestrator/api/commands.hpp"

#include <vector>

#include "orchestrator/api/problem.hpp"
#include "orchestrator/domain/files.hpp"
#include "orchestrator/domain/idempotency.hpp"

namespace orchestrator::api {

using core::http::Request;
using nlohmann::json;

namespace {

/// Optional integer member `name` in [min, max]: nullopt when absent or null; adds a
/// FieldProblem naming the range when it is not a whole number in it (2^63 and beyond
/// are refused, never wrapped).
std::optional<long long> opt_int(const json& body, const std::string& name, std::vector<FieldProblem>& errors,
                                 long long min, long long max) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  const std::string range = "must be an integer from " + std::to_string(min) + " to " + std::to_string(max);
  if (it->is_number_unsigned()) {
    const auto v = it->get<unsigned long long>();
    if (v <= static_cast<unsigned long long>(max) && static_cast<long long>(v) >= min) return static_cast<long long>(v);
  } else if (it->is_number_integer()) {
    const auto v = it->get<long long>();
    if (v >= min && v <= max) return v;
  }
  errors.push_back({name, range});
  return std::nullopt;
}

/// Body that may be empty (treated as {}).
json optional_body(const Request& req) { return req.body.empty() ? json::object() : parse_json_object(req); }

}  // namespace

LoginCommand parse_login(const Request& req) {
  const json body = parse_json_object(req);
  std::vector<FieldProblem> errors;
  LoginCommand c;
  c.email = req_string(body, "email", errors, 320);
  c.password = req_string(body, "password", errors, 1024);
  throw_if_invalid(errors);
  return c;
}

CreateWorkflowCommand parse_create_workflow(const Request& req) {
  const json body = parse_json_object(req);
  std::vector<FieldProblem> errors;
  CreateWorkflowCommand c;
  c.name = req_string(body, "name", errors, 200);
  c.description = opt_string(body, "description", errors).value_or("");
  c.template_name = opt_string(body, "template", errors);
  if (body.contains("files") && !body["files"].is_null()) {
    if (!body["files"].is_object()) errors.push_back({"files", "must be an object mapping absolute paths to files"});
    else c.files = body["files"];
  }
  if (c.template_name && c.files) errors.push_back({"files", "cannot be combined with template; give one of them"});
  throw_if_invalid(errors);
  return c;
}

PublishVersionCommand parse_publish_version(const Request& req) {
  const json body = optional_body(req);
  std::vector<FieldProblem> errors;
  PublishVersionCommand c;
  c.base_revision = opt_int(body, "base_revision", errors, 1, kMaxRevision);
  throw_if_invalid(errors);
  return c;
}

PutDraftFilesCommand parse_put_draft_files(const Request& req) {
  const json body = parse_json_object(req);
  std::vector<FieldProblem> errors;
  if (!body.contains("files") || !body["files"].is_object()) {
    errors.push_back({"files", "is required: an object mapping absolute paths to files (null deletes)"});
  }
  const auto base = opt_int(body, "base_revision", errors, 1, kMaxRevision);
  if (!base && (!body.contains("base_revision") || body["base_revision"].is_null()))
    errors.push_back({"base_revision", "is required (the draft revision you edited)"});
  throw_if_invalid(errors);
  return PutDraftFilesCommand{body["files"], *base};
}

StartRefinementCommand parse_start_refinement(const Request& req) {
  const json body = parse_json_object(req);
  std::vector<FieldProblem> errors;
  StartRefinementCommand c;
  c.user_prompt = req_string(body, "user_prompt", errors, kMaxPromptBytes);
  c.context_file_path = opt_string(body, "context_file_path", errors);
  c.context_selection = opt_string(body, "context_selection", errors);
  if (c.context_selection && c.context_selection->size() > kMaxPromptBytes)
    errors.push_back({"context_selection", "must be at most " + std::to_string(kMaxPromptBytes) + " bytes"});
  throw_if_invalid(errors);
  if (c.context_file_path) domain::validate_path(*c.context_file_path, "context_file_path");
  return c;
}

DeployCommand parse_deploy(const Request& req) {
  const json body = optional_body(req);
  std::vector<FieldProblem> errors;
  DeployCommand c;
  c.version = opt_int(body, "version", errors, 1, kMaxRevision);
  throw_if_invalid(errors);
  return c;
}

StartRunCommand parse_start_run(const Request& req) {
  const json body = parse_json_object(req);
  std::vector<FieldProblem> errors;
  StartRunCommand c;
  c.input = req_string(body, "input", errors, kMaxRunInputBytes);
  const auto it = body.find("version");
  if (it != body.end() && it->is_string() && it->get_ref<const std::string&>() == "draft") {
    c.draft = true;
  } else {
    std::vector<FieldProblem> number_errors;
    c.version = opt_int(body, "version", number_errors, 1, kMaxRevision);
    if (!number_errors.empty())
      errors.push_back({"version", "must be a version number from 1 to " + std::to_string(kMaxRevision) +
                                       " or \"draft\"; omit it to run the deployed version"});
  }
  throw_if_invalid(errors);
  return c;
}

std::optional<std::string> parse_idempotency_key_header(const core::http::Request& req) {
  const auto all = req.headers.get_all("Idempotency-Key");
  if (all.size() > 1)
    throw_if_invalid(
        {{"Idempotency-Key", "must be sent once (the request has " + std::to_string(all.size()) + " fields)"}});
  return domain::parse_idempotency_key(req.headers.get("Idempotency-Key"));
}

}  // namespace orchestrator::api
