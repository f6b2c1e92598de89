// The engine's job intake: spec_engine::api::parse_job_message (src/spec_engine/api/invoke.hpp),
// behind POST /spec-engine/invoke and the NATS JetStream consumer: plain JSON jobs,
// structured CloudEvents and binary CloudEvents (ce-* headers), then the agent definition
// and input payload validators. Properties: never throws; a refusal is 400/413/415 with
// at least one named field and renders as a problem document; an accepted job has a valid
// thread id, an object definition and an object payload, and serialises.
// Input: header lines "Name: value" ending at the first NUL byte, then the body.
#include "core/json_parse.hpp"
#include "fuzz_common.hpp"
#include "spec_engine/api/invoke.hpp"

namespace {
constexpr auto kReplace = nlohmann::json::error_handler_t::replace;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto parts = fuzz::split(fuzz::text(data, size), 2);
  core::http::Headers headers;
  std::string_view block = parts[0];
  while (!block.empty()) {
    const auto nl = block.find('\n');
    const std::string_view line = block.substr(0, nl);
    const auto colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string_view value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
      headers.add(std::string(line.substr(0, colon)), std::string(value));
    }
    if (nl == std::string_view::npos) break;
    block.remove_prefix(nl + 1);
  }
  auto r = spec_engine::api::parse_job_message(headers, parts[1]);
  if (auto* e = std::get_if<spec_engine::api::InvokeError>(&r)) {
    FUZZ_CHECK(e->status == 400 || e->status == 413 || e->status == 415, std::to_string(e->status));
    FUZZ_CHECK(!e->errors.empty(), "a refusal names no field: " + e->detail);
    for (const auto& f : e->errors) FUZZ_CHECK(!f.field.empty() && !f.message.empty(), e->detail);
    const auto resp = e->to_response();
    const auto problem = core::json::parse_or_null(resp.body);
    FUZZ_CHECK(problem && problem->is_object() && (*problem)["status"] == e->status, resp.body.substr(0, 200));
    return 0;
  }
  const auto& ok = std::get<spec_engine::api::ParsedInvoke>(r);
  FUZZ_CHECK(spec_engine::api::is_valid_thread_id(ok.job.job_id), ok.job.job_id);
  FUZZ_CHECK(ok.job.agent_definition.is_object() && !ok.job.agent_definition.empty(), "definition");
  FUZZ_CHECK(ok.job.input_payload.is_object(), "input payload");
  FUZZ_CHECK(ok.mode == "json" || ok.mode == "cloudevent-structured" || ok.mode == "cloudevent-binary", ok.mode);
  FUZZ_CHECK(ok.mode == "json" || ok.cloudevent.is_object(), "cloudevent attributes");
  // The engine stores the job and logs the CloudEvent attributes (dump with replacement).
  (void)ok.job.agent_definition.dump(-1, ' ', false, kReplace);
  (void)ok.job.input_payload.dump(-1, ' ', false, kReplace);
  (void)ok.cloudevent.dump(-1, ' ', false, kReplace);
  return 0;
}
