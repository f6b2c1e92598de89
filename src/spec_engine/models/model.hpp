#pragma once
// The model interface of the runtime (docs/engine-api.md#model-providers): one
// streaming chat call — system prompt + message history + tool schemas in,
// content deltas (callback) and a final assistant turn with tool calls and token
// usage out. A call is a coroutine (core::async::Task): waiting for the model never
// holds an OS thread, and a std::stop_token ends it at any point.
//
// Message history shape (also stored in checkpoints), provider-neutral:
//   {"role": "user", "content": "..."}
//   {"role": "assistant", "content": "...", "tool_calls": [{"id", "name", "arguments": {...}}]}
//   {"role": "tool", "tool_call_id": "...", "name": "write_file", "content": "..."}
// A tool call whose arguments were not valid JSON carries "arguments": {} and
// "arguments_error": "<parse error>", "arguments_raw": "<text>".

#include <cstdint>
#include <functional>
#include <stop_token>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/async.hpp"

namespace spec_engine::models {

/// One tool call requested by the model.
struct ToolCall {
  std::string id;
  std::string name;
  nlohmann::json arguments = nlohmann::json::object();  ///< parsed arguments (object when valid)
  std::optional<std::string> arguments_error;           ///< set when the arguments were not valid JSON
  std::string arguments_raw;                            ///< the raw argument text as received (openai)

  /// The history form {"id","name","arguments"[, "arguments_error", "arguments_raw"]}.
  nlohmann::json to_json() const;
  static ToolCall from_json(const nlohmann::json& j);
};

/// Token usage of one call, as reported by the provider (scripted: estimated).
struct Usage {
  std::int64_t prompt_tokens = 0;
  std::int64_t completion_tokens = 0;
};

/// The final assistant turn of one call.
struct ModelTurn {
  std::string content;
  std::vector<ToolCall> tool_calls;
  Usage usage;
  std::string finish_reason;  ///< provider's finish reason when known ("stop", "tool_calls", ...)
  std::string response_model;  ///< the model that answered, as the provider names it ("" = not said)
  std::string response_id;     ///< the provider's id of the completion ("" = none)
};

/// Inputs of one call.
struct ModelRequest {
  std::string node;             ///< calling agent's node id (scripted checks it)
  std::string system_prompt;
  nlohmann::json messages = nlohmann::json::array();  ///< history in the shape above
  nlohmann::json tools = nlohmann::json::array();     ///< OpenAI function tool schemas
};

/// Receives each content delta as it streams in. It may throw to abort the call (e.g. on
/// cancellation): implementations let the exception propagate out of complete() unchanged,
/// promptly, without retrying, and release the connection.
using DeltaSink = std::function<void(std::string_view delta)>;

/// A failure of a model call that ends the run (after retries, if any). The message
/// is user-facing: it names the provider and the cause.
class ModelError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The call was stopped through its std::stop_token (the run was cancelled, or hit its
/// wall-time limit). Not a failure of the model: the caller knows why it stopped.
class ModelCancelled : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A chat model. Implementations are used by one run at a time (one call in flight).
class ChatModel {
 public:
  virtual ~ChatModel() = default;
  /// Performs one call. `request` and `on_delta` must stay valid until the task completes;
  /// `on_delta` may run on any thread, never concurrently with itself. Throws ModelError on
  /// failure, ModelCancelled once `stop` is requested (promptly, also before the first byte),
  /// and whatever `on_delta` throws, unchanged.
  virtual core::async::Task<ModelTurn> complete(const ModelRequest& request, const DeltaSink& on_delta,
                                                std::stop_token stop) = 0;
  /// Provider label for events/logs: "scripted" or "openai".
  virtual std::string provider() const = 0;
  /// Model name for logs (e.g. "gpt-4.1-mini", or the script path).
  virtual std::string model_name() const = 0;
  /// The model as requested from the provider (OpenTelemetry gen_ai.request.model, and the
  /// model label of the token metrics): model_name() unless the provider says otherwise.
  virtual std::string request_model() const { return model_name(); }
};

}  // namespace spec_engine::models
