#pragma once
// The resumable run state written by RunObserver::checkpoint after every step.
// Checkpoint JSON (version 1):
//   {"version": 1,
//    "files": {path: {"content": [lines], "created_at", "modified_at"}},   // shared VFS
//    "stack": [                        // agent stack, entry agent first, innermost last
//      {"node": "orchestrator",        // node id
//       "messages": [...],             // history (models/model.hpp shape), no system prompt
//       "todos": [{"content", "status"}],
//       "task_call_id": ""},           // id of the parent's `task` call ("" for the entry agent)
//      ...],
//    "step": 7,                        // completed steps (= model calls that returned a turn)
//    "model_calls": 7,                 // model calls made so far, failed ones included
//    "tokens": {"prompt": 0, "completion": 0, "total": 0},
//    "scripted_cursors": {"override": 7, "node:<id>": 2},  // turns consumed per script
//    "elapsed_ms": 1234}               // wall time used so far (the limit continues from it)
// Resume: the innermost frame continues; a frame whose last assistant message has
// tool calls without tool results executes the remaining calls first (a `task` call
// whose sub-agent frame is on the stack resumes that sub-agent instead of starting
// it again). So a run resumes exactly at the last completed step, inside sub-agents too.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace spec_engine::runtime {

/// One agent on the stack.
struct Frame {
  std::string node;                                   ///< agent node id (graph.nodes[].id, docs/engine-api.md#agent-definition)
  nlohmann::json messages = nlohmann::json::array();  ///< history, models/model.hpp shape, no system prompt
  nlohmann::json todos = nlohmann::json::array();     ///< [{"content", "status"}] as set by write_todos
  std::string task_call_id;  ///< parent's task tool-call id; "" for the entry agent
};

/// Tokens a run used: the sum of the usage its model calls reported (ModelTurn::usage), sub-agents
/// and calls made before a restart included. Names follow the OpenTelemetry GenAI attributes
/// gen_ai.usage.input_tokens / gen_ai.usage.output_tokens.
struct TokenUsage {
  std::int64_t input_tokens = 0;   ///< prompt tokens
  std::int64_t output_tokens = 0;  ///< completion tokens
  /// {"input_tokens": N, "output_tokens": M} (docs/engine-api.md#state).
  nlohmann::json to_json() const { return {{"input_tokens", input_tokens}, {"output_tokens", output_tokens}}; }
};

/// Run-wide counters (limits and resume).
struct RunCounters {
  int steps = 0;                       ///< completed steps (model calls that returned a turn)
  std::int64_t model_calls = 0;        ///< model calls made, failed ones included
  std::int64_t prompt_tokens = 0;      ///< sum of ModelTurn::usage over successful calls
  std::int64_t completion_tokens = 0;  ///< sum of ModelTurn::usage over successful calls
  std::int64_t elapsed_ms = 0;         ///< wall time used so far, milliseconds
};

/// The usage counted in `counters`.
inline TokenUsage usage_of(const RunCounters& counters) {
  return TokenUsage{counters.prompt_tokens, counters.completion_tokens};
}

/// The usage recorded in a checkpoint's "tokens" (prompt -> input, completion -> output);
/// zeros when absent or malformed. Pure.
TokenUsage checkpoint_usage(const nlohmann::json& checkpoint);

/// Builds the checkpoint JSON above. `files` (engine file map) is moved in, `scripted_cursors`
/// copied as given; tokens.total = prompt + completion. Pure (no I/O).
nlohmann::json to_checkpoint(const std::vector<Frame>& stack, nlohmann::json files,
                             const RunCounters& counters, const nlohmann::json& scripted_cursors);

/// dump_json(to_checkpoint(stack, files, ...)) where `files_text` is the files' JSON text
/// (tools::FileSystem::to_text), spliced in without parsing or serializing it again
/// (core::json::dump_with_member). Pure.
std::string to_checkpoint_text(const std::vector<Frame>& stack, std::string_view files_text,
                               const RunCounters& counters, const nlohmann::json& scripted_cursors);

/// Reads stack and counters from a checkpoint (files are loaded by the caller).
/// Returns false with `why` set when the shape is wrong: not an object, version != 1, empty
/// or missing stack, or a frame without string `node` / array `messages` (`stack` may then be
/// partly filled). Missing todos -> [], task_call_id -> "", missing or non-integer counters -> 0.
/// Throws nlohmann::json::type_error if `version` or a frame's `task_call_id` has the wrong type.
bool from_checkpoint(const nlohmann::json& state, std::vector<Frame>& stack, RunCounters& counters,
                     std::string& why);

/// Tool calls of the last assistant message in `messages` that have no tool result
/// message after it, in call order (empty if the last assistant message has none).
/// Elements are copied from the assistant message's tool_calls (history form {"id", "name",
/// "arguments"}). Only trailing tool messages count; a non-array `messages` yields [].
std::vector<nlohmann::json> unanswered_tool_calls(const nlohmann::json& messages);

}  // namespace spec_engine::runtime
