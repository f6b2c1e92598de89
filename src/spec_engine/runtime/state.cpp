#include "spec_engine/runtime/state.hpp"

#include <set>

#include "core/json_text.hpp"

namespace spec_engine::runtime {

using nlohmann::json;

json to_checkpoint(const std::vector<Frame>& stack, json files, const RunCounters& c,
                   const json& scripted_cursors) {
  json frames = json::array();
  for (const auto& f : stack) {
    frames.push_back({{"node", f.node}, {"messages", f.messages}, {"todos", f.todos}, {"task_call_id", f.task_call_id}});
  }
  return {{"version", 1},
          {"files", std::move(files)},
          {"stack", std::move(frames)},
          {"step", c.steps},
          {"model_calls", c.model_calls},
          {"tokens", {{"prompt", c.prompt_tokens}, {"completion", c.completion_tokens},
                      {"total", c.prompt_tokens + c.completion_tokens}}},
          {"scripted_cursors", scripted_cursors},
          {"elapsed_ms", c.elapsed_ms}};
}

std::string to_checkpoint_text(const std::vector<Frame>& stack, std::string_view files_text, const RunCounters& c,
                               const json& scripted_cursors) {
  json state = to_checkpoint(stack, json(), c, scripted_cursors);
  state.erase("files");
  return core::json::dump_with_member(state, "files", files_text);
}

namespace {

/// j[k] when j is an object whose member k is an integer, else 0.
std::int64_t int_member(const json& j, const char* k) {
  return j.is_object() && j.contains(k) && j[k].is_number_integer() ? j[k].get<std::int64_t>() : 0;
}

}  // namespace

TokenUsage checkpoint_usage(const json& checkpoint) {
  if (!checkpoint.is_object() || !checkpoint.contains("tokens")) return {};
  const json& t = checkpoint["tokens"];
  return TokenUsage{int_member(t, "prompt"), int_member(t, "completion")};
}

bool from_checkpoint(const json& state, std::vector<Frame>& stack, RunCounters& c, std::string& why) {
  if (!state.is_object()) {
    why = "checkpoint is not an object";
    return false;
  }
  if (state.value("version", 0) != 1) {
    why = "unsupported checkpoint version";
    return false;
  }
  if (!state.contains("stack") || !state["stack"].is_array() || state["stack"].empty()) {
    why = "checkpoint has no agent stack";
    return false;
  }
  stack.clear();
  for (const auto& f : state["stack"]) {
    if (!f.is_object() || !f.contains("node") || !f["node"].is_string() || !f.contains("messages") ||
        !f["messages"].is_array()) {
      why = "checkpoint stack frame is malformed";
      return false;
    }
    stack.push_back(Frame{f["node"].get<std::string>(), f["messages"],
                          f.contains("todos") && f["todos"].is_array() ? f["todos"] : json::array(),
                          f.value("task_call_id", "")});
  }
  c.steps = static_cast<int>(int_member(state, "step"));
  c.model_calls = int_member(state, "model_calls");
  const TokenUsage used = checkpoint_usage(state);
  c.prompt_tokens = used.input_tokens;
  c.completion_tokens = used.output_tokens;
  c.elapsed_ms = int_member(state, "elapsed_ms");
  return true;
}

std::vector<json> unanswered_tool_calls(const json& messages) {
  std::vector<json> out;
  if (!messages.is_array()) return out;
  std::size_t i = messages.size();
  while (i > 0 && messages[i - 1].value("role", "") == "tool") --i;
  if (i == 0) return out;
  const json& a = messages[i - 1];
  if (a.value("role", "") != "assistant" || !a.contains("tool_calls") || !a["tool_calls"].is_array()) return out;
  std::set<std::string> answered;
  for (std::size_t k = i; k < messages.size(); ++k) answered.insert(messages[k].value("tool_call_id", ""));
  for (const auto& c : a["tool_calls"]) {
    if (!answered.count(c.value("id", ""))) out.push_back(c);
  }
  return out;
}

}  // namespace spec_engine::runtime
