#pragma once
// The OpenTelemetry view of a run (docs/observability.md "The spans of a refinement"): GenAI
// spans and token metrics, following the OpenTelemetry semantic conventions for generative AI
// (https://opentelemetry.io/docs/specs/semconv/gen-ai/, status Development):
//   invoke_agent {gen_ai.agent.name}  INTERNAL  one per agent run (a sub-agent nests under the
//                                               `task` tool call that started it)
//   chat {gen_ai.request.model}       CLIENT    one per model call
//   execute_tool {gen_ai.tool.name}   INTERNAL  one per tool call
// gen_ai.provider.name is the provider label ("openai" for every OpenAI-compatible server,
// "scripted" for the offline model); the deprecated gen_ai.system carries the same value for
// backends that still read it. gen_ai.conversation.id is the engine thread id.
// Pure mapping over core::tracing::Span (no I/O): unit-tested with Span::to_otlp().

#include <optional>
#include <string>

#include "core/tracing.hpp"
#include "spec_engine/models/model.hpp"
#include "spec_engine/runtime/state.hpp"

namespace spec_engine::runtime::telemetry {

/// What an invoke_agent span says about its agent.
struct AgentInfo {
  std::string node_id;          ///< gen_ai.agent.id (graph.nodes[].id)
  std::string name;             ///< gen_ai.agent.name (data.name; the node id when it has none)
  std::string provider;         ///< gen_ai.provider.name; "" when the agent's model is unknown
  std::string request_model;    ///< gen_ai.request.model; "" when unknown
  std::string conversation_id;  ///< gen_ai.conversation.id: the thread id
};

/// Starts `invoke_agent {name}` (kind INTERNAL) under `parent` (a new trace without one) with
/// gen_ai.operation.name "invoke_agent" and the members of `agent` that are set.
core::tracing::Span start_invoke_agent(const std::optional<core::tracing::TraceContext>& parent,
                                       const AgentInfo& agent);

/// What a chat span says about its request.
struct ChatInfo {
  std::string provider;         ///< gen_ai.provider.name (ChatModel::provider())
  std::string request_model;    ///< gen_ai.request.model (ChatModel::request_model())
  std::string agent_name;       ///< gen_ai.agent.name of the calling agent
  std::string conversation_id;  ///< gen_ai.conversation.id: the thread id
};

/// Starts `chat {request_model}` (kind CLIENT; `chat` without a model) under `parent` with
/// gen_ai.operation.name "chat" and the members of `chat` that are set.
core::tracing::Span start_chat(const std::optional<core::tracing::TraceContext>& parent, const ChatInfo& chat);

/// Records a model's answer on its chat span: gen_ai.usage.input_tokens / output_tokens,
/// gen_ai.response.finish_reasons (a one-element array, when known), gen_ai.response.model and
/// gen_ai.response.id (when the provider said).
void record_turn(core::tracing::Span& span, const models::ModelTurn& turn);

/// Starts `execute_tool {tool_name}` (kind INTERNAL) under `parent` with gen_ai.operation.name
/// "execute_tool", gen_ai.tool.name, gen_ai.tool.call.id (when set), gen_ai.tool.type
/// "function" and gen_ai.conversation.id.
core::tracing::Span start_execute_tool(const std::optional<core::tracing::TraceContext>& parent,
                                       const std::string& tool_name, const std::string& call_id,
                                       const std::string& conversation_id);

/// Records tokens used (gen_ai.usage.input_tokens / output_tokens) on an invoke_agent or run span.
void set_usage(core::tracing::Span& span, const TokenUsage& used);

/// Counts one model call's tokens in the Prometheus counter
/// spec_engine_gen_ai_token_usage_total{gen_ai_provider_name, gen_ai_request_model,
/// gen_ai_token_type="input"|"output"} (the counter form of the OpenTelemetry metric
/// gen_ai.client.token.usage, with its attribute names). Zero counts add nothing.
void count_tokens(const std::string& provider, const std::string& request_model, const models::Usage& usage);

}  // namespace spec_engine::runtime::telemetry
