// GenAI spans and token metrics of a run (telemetry.hpp).
#include "spec_engine/runtime/telemetry.hpp"

#include "core/metrics.hpp"

namespace spec_engine::runtime::telemetry {

using core::tracing::Span;
using core::tracing::TraceContext;
using nlohmann::json;

namespace {

/// "<operation> <subject>", or the operation alone without a subject (semantic conventions:
/// span names of GenAI operations).
std::string span_name(const char* operation, const std::string& subject) {
  return subject.empty() ? std::string(operation) : std::string(operation) + " " + subject;
}

/// Sets `key` only when `value` is not empty.
void set_if(Span& span, const char* key, const std::string& value) {
  if (!value.empty()) span.set_attribute(key, value);
}

/// gen_ai.provider.name and its deprecated predecessor gen_ai.system.
void set_provider(Span& span, const std::string& provider) {
  set_if(span, "gen_ai.provider.name", provider);
  set_if(span, "gen_ai.system", provider);
}

core::metrics::Counter& token_counter() {
  static auto& c = core::metrics::global().counter(
      "spec_engine_gen_ai_token_usage_total",
      "Tokens used by model calls, by gen_ai_provider_name, gen_ai_request_model and gen_ai_token_type "
      "(input | output), as the providers reported them");
  return c;
}

}  // namespace

Span start_invoke_agent(const std::optional<TraceContext>& parent, const AgentInfo& agent) {
  Span span = core::tracing::start_span(span_name("invoke_agent", agent.name), parent, core::tracing::kInternal);
  span.set_attribute("gen_ai.operation.name", "invoke_agent");
  set_if(span, "gen_ai.agent.name", agent.name);
  set_if(span, "gen_ai.agent.id", agent.node_id);
  set_provider(span, agent.provider);
  set_if(span, "gen_ai.request.model", agent.request_model);
  set_if(span, "gen_ai.conversation.id", agent.conversation_id);
  return span;
}

Span start_chat(const std::optional<TraceContext>& parent, const ChatInfo& chat) {
  Span span = core::tracing::start_span(span_name("chat", chat.request_model), parent, core::tracing::kClient);
  span.set_attribute("gen_ai.operation.name", "chat");
  set_provider(span, chat.provider);
  set_if(span, "gen_ai.request.model", chat.request_model);
  set_if(span, "gen_ai.agent.name", chat.agent_name);
  set_if(span, "gen_ai.conversation.id", chat.conversation_id);
  return span;
}

void record_turn(Span& span, const models::ModelTurn& turn) {
  set_usage(span, TokenUsage{turn.usage.prompt_tokens, turn.usage.completion_tokens});
  if (!turn.finish_reason.empty()) span.set_attribute("gen_ai.response.finish_reasons", json::array({turn.finish_reason}));
  set_if(span, "gen_ai.response.model", turn.response_model);
  set_if(span, "gen_ai.response.id", turn.response_id);
}

Span start_execute_tool(const std::optional<TraceContext>& parent, const std::string& tool_name,
                        const std::string& call_id, const std::string& conversation_id) {
  Span span = core::tracing::start_span(span_name("execute_tool", tool_name), parent, core::tracing::kInternal);
  span.set_attribute("gen_ai.operation.name", "execute_tool");
  set_if(span, "gen_ai.tool.name", tool_name);
  set_if(span, "gen_ai.tool.call.id", call_id);
  span.set_attribute("gen_ai.tool.type", "function");
  set_if(span, "gen_ai.conversation.id", conversation_id);
  return span;
}

void set_usage(Span& span, const TokenUsage& used) {
  span.set_attribute("gen_ai.usage.input_tokens", used.input_tokens);
  span.set_attribute("gen_ai.usage.output_tokens", used.output_tokens);
}

void count_tokens(const std::string& provider, const std::string& request_model, const models::Usage& usage) {
  auto& c = token_counter();
  const auto add = [&](const char* type, std::int64_t n) {
    if (n > 0) {
      c.inc({{"gen_ai_provider_name", provider}, {"gen_ai_request_model", request_model}, {"gen_ai_token_type", type}},
            static_cast<double>(n));
    }
  };
  add("input", usage.prompt_tokens);
  add("output", usage.completion_tokens);
}

}  // namespace spec_engine::runtime::telemetry
