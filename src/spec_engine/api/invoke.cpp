// Invoke request parsing: plain JSON, structured and binary CloudEvents 1.0.
#include "spec_engine/api/invoke.hpp"

#include <cctype>
#include <stdexcept>

#include "core/json_parse.hpp"
#include "core/util.hpp"

namespace spec_engine::api {

namespace {

using runtime::FieldError;

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t");
  return s.substr(b, e - b + 1);
}

/// A plain JSON job's media type: core::http::is_json_content_type (application/json or
/// application/<name>+json, RFC 6839 §3.1; charset utf-8 if any), CloudEvents' own types excepted.
bool is_json_media(const std::optional<std::string>& content_type) {
  if (!content_type || !core::http::is_json_content_type(*content_type)) return false;
  const std::string mt = media_type(content_type);
  return mt != "application/cloudevents+json" && mt != "application/cloudevents-batch+json";
}

/// A URI-reference (RFC 3986 §4.1) in the loose sense CloudEvents needs: non-empty,
/// no whitespace or control characters.
bool is_uri_reference(const std::string& s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c <= 0x20 || c == 0x7f) return false;
  }
  return true;
}

/// CloudEvents 1.0 §3.1.1 "Attribute Naming Convention": [a-z0-9]+.
bool is_attribute_name(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

/// Validates the CloudEvents 1.0 context attributes (§3.1 required: id, source,
/// specversion, type; §3.2 optional: datacontenttype, dataschema, subject, time)
/// given as strings (binary mode) or JSON values (structured mode). `get` returns
/// the attribute or nullopt when absent; a non-string value is reported.
template <class Get>
void validate_context(const Get& get, std::vector<FieldError>& errors, const std::string& field_prefix) {
  auto required = [&](const std::string& name) {
    auto v = get(name);
    if (!v) {
      errors.push_back({field_prefix + name, "is required (CloudEvents 1.0 §3.1)"});
    } else if (!v->is_string()) {
      errors.push_back({field_prefix + name, "must be a string"});
    } else if (v->template get<std::string>().empty()) {
      errors.push_back({field_prefix + name, "must be a non-empty string (CloudEvents 1.0 §3.1)"});
    }
    return v;
  };
  if (auto sv = required("specversion"); sv && sv->is_string() && sv->template get<std::string>() != "1.0" &&
                                          !sv->template get<std::string>().empty()) {
    errors.push_back({field_prefix + "specversion", "unsupported CloudEvents version '" +
                                                        sv->template get<std::string>() + "'; expected \"1.0\""});
  }
  required("id");
  if (auto src = required("source");
      src && src->is_string() && !src->template get<std::string>().empty() &&
      !is_uri_reference(src->template get<std::string>())) {
    errors.push_back({field_prefix + "source", "must be a URI-reference (CloudEvents 1.0 §3.1, RFC 3986 §4.1)"});
  }
  required("type");
  for (const char* opt : {"subject", "dataschema"}) {
    if (auto v = get(opt); v && (!v->is_string() || v->template get<std::string>().empty())) {
      errors.push_back({field_prefix + opt, "must be a non-empty string when present (CloudEvents 1.0 §3.2)"});
    }
  }
  if (auto t = get("time"); t) {
    bool ok = t->is_string();
    if (ok) {
      try {
        core::parse_rfc3339(t->template get<std::string>());
      } catch (const std::exception&) {
        ok = false;
      }
    }
    if (!ok) errors.push_back({field_prefix + "time", "must be an RFC 3339 timestamp (CloudEvents 1.0 §3.2)"});
  }
}

InvokeError bad_request(std::vector<FieldError> errors, std::string detail = "The request has invalid fields.") {
  InvokeError e;
  e.status = 400;
  e.title = "Invalid request";
  e.detail = std::move(detail);
  e.errors = std::move(errors);
  return e;
}

InvokeError unsupported(const std::string& detail) {
  InvokeError e;
  e.status = 415;
  e.title = "Unsupported media type";
  e.detail = detail;
  e.errors = {{"content-type", detail}};
  return e;
}

/// Builds the job from a validated JSON object.
bus::Job to_job(const nlohmann::json& j) {
  bus::Job job;
  job.job_id = j.at("job_id").get<std::string>();
  if (j.contains("trace_id") && j["trace_id"].is_string()) job.trace_id = j["trace_id"].get<std::string>();
  job.agent_definition = j.at("agent_definition");
  if (j.contains("input_payload") && j["input_payload"].is_object()) job.input_payload = j["input_payload"];
  return job;
}

}  // namespace

core::http::Response InvokeError::to_response() const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& e : errors) list.push_back({{"field", e.field}, {"message", e.message}});
  return core::http::Response::problem(status, title, detail, {{"errors", list}});
}

bool is_valid_thread_id(const std::string& id) {
  if (core::is_uuid(id)) return true;
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return id != "." && id != "..";
}

std::string media_type(const std::optional<std::string>& content_type) {
  if (!content_type) return {};
  if (const auto m = core::http::parse_media_type(*content_type)) return m->essence();
  const auto semi = content_type->find(';');
  return lower(trim(content_type->substr(0, semi)));
}

std::vector<FieldError> validate_job(const nlohmann::json& job, const std::string& prefix) {
  std::vector<FieldError> errors;
  if (!job.is_object()) {
    errors.push_back({prefix.empty() ? "body" : prefix.substr(0, prefix.size() - 1), "must be a JSON object (the job)"});
    return errors;
  }
  if (!job.contains("job_id") || job["job_id"].is_null()) {
    errors.push_back({prefix + "job_id", "is required"});
  } else if (!job["job_id"].is_string()) {
    errors.push_back({prefix + "job_id", "must be a string"});
  } else if (!is_valid_thread_id(job["job_id"].get<std::string>())) {
    errors.push_back({prefix + "job_id", "must be a UUID or 1-128 characters of A-Z a-z 0-9 . _ -"});
  }
  if (job.contains("trace_id") && !job["trace_id"].is_null()) {
    if (!job["trace_id"].is_string()) {
      errors.push_back({prefix + "trace_id", "must be a string"});
    } else if (job["trace_id"].get<std::string>().size() > 256) {
      errors.push_back({prefix + "trace_id", "must be at most 256 characters"});
    }
  }
  if (!job.contains("agent_definition") || job["agent_definition"].is_null()) {
    errors.push_back({prefix + "agent_definition", "is required"});
  } else if (!job["agent_definition"].is_object()) {
    errors.push_back({prefix + "agent_definition", "must be a JSON object"});
  } else if (job["agent_definition"].empty()) {
    errors.push_back({prefix + "agent_definition", "must not be empty (needs graph.nodes and graph.entryPoint)"});
  } else {
    try {
      for (auto& e : runtime::validate_definition(job["agent_definition"], prefix + "agent_definition")) {
        errors.push_back(std::move(e));
      }
    } catch (const std::exception& ex) {
      errors.push_back({prefix + "agent_definition", std::string("invalid definition: ") + ex.what()});
    }
  }
  if (job.contains("input_payload") && !job["input_payload"].is_null()) {
    if (!job["input_payload"].is_object()) {
      errors.push_back({prefix + "input_payload", "must be a JSON object {messages, files}"});
    } else {
      try {
        for (auto& e : runtime::validate_input_payload(job["input_payload"], prefix + "input_payload")) {
          errors.push_back(std::move(e));
        }
      } catch (const std::exception& ex) {
        errors.push_back({prefix + "input_payload", std::string("invalid input: ") + ex.what()});
      }
    }
  }
  return errors;
}

std::variant<ParsedInvoke, InvokeError> parse_invoke(const core::http::Request& request) {
  return parse_job_message(request.headers, request.body);
}

std::variant<ParsedInvoke, InvokeError> parse_job_message(const core::http::Headers& headers, const std::string& body_text) {
  const auto content_type = headers.get("Content-Type");
  const std::string mt = media_type(content_type);
  const bool has_ce_headers = headers.get("ce-specversion").has_value();
  std::string mode;
  if (mt == "application/cloudevents+json" && core::http::is_json_content_type(*content_type)) {
    mode = "cloudevent-structured";
  } else if (mt == "application/cloudevents-batch+json") {
    return unsupported("batched CloudEvents are not supported; send one event per request");
  } else if (has_ce_headers) {
    if (!is_json_media(content_type)) {
      return unsupported("a binary CloudEvent must carry the job as application/json, charset utf-8 if any (got '" +
                         (content_type ? content_type->substr(0, 200) : std::string("none")) + "')");
    }
    mode = "cloudevent-binary";
  } else if (is_json_media(content_type)) {
    mode = "json";
  } else {
    return unsupported(
        "expected application/json, application/cloudevents+json (charset utf-8 if any) or a binary CloudEvent "
        "(got '" + (content_type ? content_type->substr(0, 200) : std::string("none")) + "')");
  }

  auto parsed = core::json::try_parse(body_text);
  if (auto* e = std::get_if<core::json::ParseError>(&parsed)) {
    const auto p = core::json::describe(*e, "body");
    InvokeError err;
    err.status = p.status;
    err.title = p.title;
    err.detail = p.detail;
    err.errors = {{p.field, p.message}};
    return err;
  }
  auto* body = &std::get<nlohmann::json>(parsed);

  ParsedInvoke out;
  out.mode = mode;
  std::vector<FieldError> errors;
  const nlohmann::json* job = &*body;
  std::string prefix;

  if (mode == "cloudevent-structured") {
    if (!body->is_object()) return bad_request({{"body", "must be a JSON object (a CloudEvent)"}});
    validate_context(
        [&](const std::string& name) -> std::optional<nlohmann::json> {
          if (!body->contains(name)) return std::nullopt;
          return (*body)[name];
        },
        errors, "");
    for (const auto& [name, value] : body->items()) {
      if (name != "data" && name != "data_base64" && !is_attribute_name(name)) {
        errors.push_back({name, "invalid attribute name: use lower-case letters and digits (CloudEvents 1.0 §3.1.1)"});
      }
    }
    if (body->contains("datacontenttype")) {
      const auto& dct = (*body)["datacontenttype"];
      if (!dct.is_string() || !is_json_media(dct.get<std::string>())) {
        errors.push_back({"datacontenttype", "must be application/json (the job is JSON)"});
      }
    }
    if (body->contains("data_base64")) {
      errors.push_back({"data_base64", body->contains("data")
                                           ? "data and data_base64 are mutually exclusive (CloudEvents JSON format §3.1)"
                                           : "not supported: send the job as JSON in data"});
    }
    if (!body->contains("data") || (*body)["data"].is_null()) {
      if (!body->contains("data_base64")) errors.push_back({"data", "is required (the job)"});
      return bad_request(std::move(errors));
    }
    out.cloudevent = nlohmann::json::object();
    for (const auto& [name, value] : body->items()) {
      if (name != "data" && name != "data_base64") out.cloudevent[name] = value;
    }
    job = &(*body)["data"];
    prefix = "data.";
  } else if (mode == "cloudevent-binary") {
    validate_context(
        [&](const std::string& name) -> std::optional<nlohmann::json> {
          auto v = headers.get("ce-" + name);
          if (!v) return std::nullopt;
          return nlohmann::json(*v);
        },
        errors, "ce-");
    out.cloudevent = nlohmann::json::object();
    for (const auto& [name, value] : headers.fields()) {
      if (name.size() > 3 && core::http::iequals(name.substr(0, 3), "ce-")) out.cloudevent[lower(name.substr(3))] = value;
    }
    out.cloudevent["datacontenttype"] = mt;
  }

  for (auto& e : validate_job(*job, prefix)) errors.push_back(std::move(e));
  if (!errors.empty()) return bad_request(std::move(errors));
  out.job = to_job(*job);
  return out;
}

}  // namespace spec_engine::api
