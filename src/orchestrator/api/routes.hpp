#pragma once
// The public API of ide-orchestrator (docs/orchestrator-api.md; documented in docs/openapi.json).
// Each handler parses the request, calls the domain, and renders the result.

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/router.hpp"
#include "orchestrator/api/domain_port.hpp"
#include "orchestrator/api/ws_proxy.hpp"
#include "orchestrator/engine_client/engine_client.hpp"

namespace orchestrator::tracker {
class Tracker;
}

namespace orchestrator::api {

/// What the handlers use. All references must outlive the router.
struct RouteDeps {
  DomainPort& domain;
  engine_client::EngineClient& engine;
  tracker::Tracker* tracker = nullptr;     ///< null: proposals are not followed (tests)
  WsProxy& ws;
  nlohmann::json refinement_agent;         ///< agent_definition sent with every refinement (model override applied)
  std::string openapi_json;                ///< served at /api/openapi.json
  std::function<bool()> db_ping;           ///< readiness: database reachable
};

/// Registers every route: /api/... (see docs/openapi.json), /health, /ready, /metrics.
void register_routes(core::http::Router& router, RouteDeps& deps);

/// Builds an engine job (docs/engine-api.md#invoke): {trace_id, job_id (= thread id),
/// agent_definition, input_payload {messages: [{role: "user", content}], files}}.
nlohmann::json build_job(const std::string& trace_id, const std::string& thread_id,
                         const nlohmann::json& agent_definition, const std::string& content,
                         const domain::FileMap& files);

/// Builds the engine job of a refinement (docs/engine-api.md#invoke): {trace_id, job_id
/// (= thread id), agent_definition, input_payload {messages: [{role: "user", content}],
/// files}}. The user message carries the prompt plus, when given, the context file path
/// and selection.
nlohmann::json build_refinement_job(const std::string& trace_id, const std::string& thread_id,
                                    const nlohmann::json& agent_definition, const std::string& user_prompt,
                                    const std::optional<std::string>& context_file_path,
                                    const std::optional<std::string>& context_selection,
                                    const domain::FileMap& files);

}  // namespace orchestrator::api
