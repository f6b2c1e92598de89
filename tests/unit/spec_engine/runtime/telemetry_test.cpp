// The OpenTelemetry GenAI mapping of a run's operations (runtime/telemetry.hpp): span names, kinds
// and attributes, and the token counter.
#include "spec_engine/runtime/telemetry.hpp"

#include <gtest/gtest.h>

#include "core/metrics.hpp"

using namespace spec_engine::runtime;
using nlohmann::json;

namespace {

/// {key: OTLP AnyValue} of a span's attributes.
json attrs(const core::tracing::Span& span) {
  json out = json::object();
  const json otlp = span.to_otlp();
  for (const auto& kv : otlp["attributes"]) out[kv["key"].get<std::string>()] = kv["value"];
  return out;
}

json str(const std::string& s) { return {{"stringValue", s}}; }
json num(long long n) { return {{"intValue", std::to_string(n)}}; }

const core::tracing::TraceContext kParent = *core::tracing::parse_traceparent(
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");

}  // namespace

TEST(Telemetry, InvokeAgentSpanNamesTheAgentAndItsModel) {
  auto span = telemetry::start_invoke_agent(kParent, {"reviewer", "Specification Reviewer", "openai", "gpt-4.1-mini", "t1"});
  const auto j = span.to_otlp();
  EXPECT_EQ(j["name"], "invoke_agent Specification Reviewer");
  EXPECT_EQ(j["kind"], core::tracing::kInternal);
  EXPECT_EQ(j["traceId"], kParent.trace_id);
  EXPECT_EQ(j["parentSpanId"], kParent.span_id);
  EXPECT_EQ(attrs(span), (json{{"gen_ai.operation.name", str("invoke_agent")},
                               {"gen_ai.agent.name", str("Specification Reviewer")},
                               {"gen_ai.agent.id", str("reviewer")},
                               {"gen_ai.provider.name", str("openai")},
                               {"gen_ai.system", str("openai")},
                               {"gen_ai.request.model", str("gpt-4.1-mini")},
                               {"gen_ai.conversation.id", str("t1")}}));
}

TEST(Telemetry, UnknownModelLeavesItsAttributesOut) {
  auto span = telemetry::start_invoke_agent(std::nullopt, {"solo", "solo", "", "", "t1"});
  const auto a = attrs(span);
  EXPECT_FALSE(a.contains("gen_ai.provider.name"));
  EXPECT_FALSE(a.contains("gen_ai.request.model"));
  EXPECT_FALSE(span.to_otlp().contains("parentSpanId"));  // no parent: a trace of its own
}

TEST(Telemetry, ChatSpanCarriesRequestAndResponse) {
  auto span = telemetry::start_chat(kParent, {"openai", "gpt-4.1-mini", "Orchestrator", "t1"});
  spec_engine::models::ModelTurn turn;
  turn.usage = {1200, 85};
  turn.finish_reason = "tool_calls";
  turn.response_model = "gpt-4.1-mini-2025-04-14";
  turn.response_id = "chatcmpl-1";
  telemetry::record_turn(span, turn);
  const auto j = span.to_otlp();
  EXPECT_EQ(j["name"], "chat gpt-4.1-mini");
  EXPECT_EQ(j["kind"], core::tracing::kClient);
  EXPECT_EQ(attrs(span), (json{{"gen_ai.operation.name", str("chat")},
                               {"gen_ai.provider.name", str("openai")},
                               {"gen_ai.system", str("openai")},
                               {"gen_ai.request.model", str("gpt-4.1-mini")},
                               {"gen_ai.agent.name", str("Orchestrator")},
                               {"gen_ai.conversation.id", str("t1")},
                               {"gen_ai.usage.input_tokens", num(1200)},
                               {"gen_ai.usage.output_tokens", num(85)},
                               {"gen_ai.response.finish_reasons", {{"arrayValue", {{"values", {str("tool_calls")}}}}}},
                               {"gen_ai.response.model", str("gpt-4.1-mini-2025-04-14")},
                               {"gen_ai.response.id", str("chatcmpl-1")}}));
}

TEST(Telemetry, ChatWithoutModelOrFinishReason) {
  auto span = telemetry::start_chat(kParent, {"openai", "", "", ""});
  telemetry::record_turn(span, spec_engine::models::ModelTurn{});
  EXPECT_EQ(span.to_otlp()["name"], "chat");
  const auto a = attrs(span);
  EXPECT_FALSE(a.contains("gen_ai.response.finish_reasons"));
  EXPECT_FALSE(a.contains("gen_ai.response.model"));
  EXPECT_EQ(a["gen_ai.usage.input_tokens"], num(0));
}

TEST(Telemetry, ExecuteToolSpanNamesTheToolAndCall) {
  auto span = telemetry::start_execute_tool(kParent, "read_file", "call_7", "t1");
  EXPECT_EQ(span.to_otlp()["name"], "execute_tool read_file");
  EXPECT_EQ(span.to_otlp()["kind"], core::tracing::kInternal);
  EXPECT_EQ(attrs(span), (json{{"gen_ai.operation.name", str("execute_tool")},
                               {"gen_ai.tool.name", str("read_file")},
                               {"gen_ai.tool.call.id", str("call_7")},
                               {"gen_ai.tool.type", str("function")},
                               {"gen_ai.conversation.id", str("t1")}}));
}

TEST(Telemetry, TokenCounterByProviderModelAndType) {
  auto& c = core::metrics::global().counter("spec_engine_gen_ai_token_usage_total", "");
  const core::metrics::Labels in{{"gen_ai_provider_name", "openai"}, {"gen_ai_request_model", "m-telemetry-test"},
                                 {"gen_ai_token_type", "input"}};
  const core::metrics::Labels out{{"gen_ai_provider_name", "openai"}, {"gen_ai_request_model", "m-telemetry-test"},
                                  {"gen_ai_token_type", "output"}};
  telemetry::count_tokens("openai", "m-telemetry-test", {10, 3});
  telemetry::count_tokens("openai", "m-telemetry-test", {5, 0});
  EXPECT_EQ(c.value(in), 15);
  EXPECT_EQ(c.value(out), 3);
}
