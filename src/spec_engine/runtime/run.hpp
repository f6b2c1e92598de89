#pragma once
// The contract between the agent runtime (runtime/, tools/, models/) and the
// engine service (store/, bus/, api/); docs/event-path-and-replicas.md "A run".
// A run is a coroutine (core::async::Task) on its host's core::async::Runtime: model
// calls stream over the async HTTP client without holding an OS thread, tool calls run
// on the runtime's bounded blocking pool, and the run reports through RunObserver; it
// never touches the database itself.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/async.hpp"
#include "core/http_client.hpp"
#include "core/tracing.hpp"
#include "spec_engine/runtime/state.hpp"

namespace spec_engine::runtime {

/// One problem found while validating input; `field` is a JSON-pointer-like path
/// such as "agent_definition.graph.nodes[1].data.tools[0]".
struct FieldError {
  std::string field;
  std::string message;
};

/// Nested task calls a run allows (RunLimits::max_delegation_depth): the entry agent's sub-agent
/// is at depth 1.
inline constexpr int kMaxDelegationDepth = 4;

/// Checks an agent definition (docs/engine-api.md#agent-definition): graph.nodes[]
/// non-empty, unique ids, type AgentNode, data.name/system_prompt, tools each a
/// built-in name, a delegation-target id or "task" (only with an outgoing edge),
/// edges referencing existing nodes and forming no cycle, no agent more than
/// kMaxDelegationDepth delegations below the entry point (a run could never reach it),
/// entryPoint an existing node. Returns every problem found (empty = valid). `prefix` is
/// prepended to field paths.
std::vector<FieldError> validate_definition(const nlohmann::json& definition,
                                            const std::string& prefix = "agent_definition");

/// Checks an invoke's input_payload (docs/engine-api.md#input-payload): `messages` a string or
/// a list of {role: user|assistant|system, content: string} (strings allowed as items);
/// `files` a map absolute path -> {"content": [lines] | string, created_at?, modified_at?}
/// (or a bare string) within the virtual file system limits (1 MiB per file, 500 files,
/// no "..", no NUL). Null/absent members are fine. Returns every problem (empty = valid).
std::vector<FieldError> validate_input_payload(const nlohmann::json& payload,
                                               const std::string& prefix = "input_payload");

/// Limits on one run (docs/engine-api.md#runs-and-limits).
struct RunLimits {
  int max_steps = 100;                          ///< model calls across all agents of the run
  /// Wall-clock budget for the whole run (time before a restart included). Enforced at any
  /// point by a timer: before a model call, during one (also while waiting for its first
  /// byte), and, through the tool budget, inside every built-in tool call.
  std::chrono::seconds max_wall_time{900};
  std::int64_t max_tokens = 2'000'000;          ///< prompt+completion tokens reported by the model
  int max_delegation_depth = kMaxDelegationDepth;  ///< nested task calls
  /// Time budget of one built-in tool call (all tools but `task`, whose sub-agent is bounded
  /// by the run's own limits). A call that runs out ends with the tool error
  /// "Error: <tool>: exceeded its time budget of N ms", which the model reads.
  std::chrono::milliseconds tool_budget{10000};
  /// Testing only: every built-in tool call first waits this long (see
  /// tools::ToolState::simulated_latency). 0 in production.
  std::chrono::milliseconds test_tool_delay{0};
};

/// Which model serves the run. `provider_override` (from --model-override) forces
/// every node onto one provider: "scripted:/path/script.json" or "openai[:model]".
struct ModelSettings {
  std::optional<std::string> provider_override;
  std::string openai_base_url = "https://api.openai.com/v1";
  std::string openai_api_key;                   ///< from OPENAI_API_KEY; never logged
  core::http::TlsOptions tls;                   ///< CA file / verification for HTTPS
  std::chrono::milliseconds request_timeout{120000};  ///< one model call, end to end
  std::chrono::milliseconds idle_timeout{60000};      ///< gap between streamed chunks
  int max_attempts = 3;                         ///< transient provider errors (429/5xx/connect) retried with backoff
};

/// What a run needs from its host, besides the observer.
struct RunEnv {
  core::async::Runtime& rt;           ///< blocking pool for tool calls; timers
  core::http::AsyncHttpClient& http;  ///< model calls (keep-alive pool)
  /// Any reason to stop: DELETE, shutdown, lease lost. Once requested the run ends with
  /// status "cancelled" (promptly: also inside a model call or a tool); the host knows why.
  std::stop_token stop;
};

/// Receives everything a run produces. Implemented by the engine service, which
/// stores and fans out events and persists checkpoints.
class RunObserver {
 public:
  virtual ~RunObserver() = default;
  /// One event (on_state_update | on_llm_stream | on_tool_start | on_tool_end | error; `end` is
  /// emitted by the service after the run). Non-blocking, thread-safe (called from the run's
  /// coroutine and from I/O threads while a model streams); the host stores and publishes it
  /// later (it may coalesce on_llm_stream deltas). `data` is taken by value: pass a temporary
  /// or std::move a named one, so a large event (files) is not copied.
  virtual void emit(const std::string& event_type, nlohmann::json data) = 0;
  /// The full resumable state after a step (state.hpp to_checkpoint), handed over (the host
  /// keeps it without copying); completes once durable. Throws to end the run (e.g. the host
  /// lost the thread's lease); the runtime lets that exception propagate out of execute().
  virtual core::async::Task<void> checkpoint(nlohmann::json state) = 0;
  /// emit() of an event whose data the run serialized itself: `data_text` is one JSON object as
  /// core::json::dump writes it (an on_state_update spliced around the files' text). Never merged
  /// with on_llm_stream deltas. The default parses it (core::json::kInternalLimits: 64 MiB, 128
  /// levels) and calls emit(); a host that stores text overrides it to keep the text as given.
  virtual void emit_text(const std::string& event_type, std::shared_ptr<const std::string> data_text);
  /// checkpoint() of a state the run serialized itself (to_checkpoint_text), with its token
  /// counts (checkpoint_usage of that state). The default parses it (same limits) and calls
  /// checkpoint().
  virtual core::async::Task<void> checkpoint_text(std::shared_ptr<const std::string> state_text, TokenUsage usage);
};

/// Outcome of a run.
struct RunResult {
  std::string status;            ///< "completed" | "failed" | "cancelled"
  nlohmann::json result;         ///< {"messages":[...final assistant text...]} on completion
  nlohmann::json files;          ///< final file map (deepagents shape)
  std::string error;             ///< human-readable reason when failed
  /// Tokens of every model call of the run (sub-agents and calls before a restart included);
  /// also when it failed or was cancelled.
  TokenUsage usage;
};

/// What to run.
struct RunRequest {
  std::string thread_id;
  nlohmann::json definition;     ///< already validated
  nlohmann::json input_payload;  ///< {messages:[{role,content}]|string, files:{path:{content:[..]}}}
  /// Last checkpoint of this thread, when resuming after an engine restart.
  std::optional<nlohmann::json> resume_from;
  /// The host's span for this run: the run's GenAI spans (telemetry.hpp) nest under it;
  /// without one each agent's span starts a trace of its own.
  std::optional<core::tracing::TraceContext> trace;
};

/// Executes a run to the end, as a coroutine on `env.rt` (every argument must outlive the
/// task). Traces it with OpenTelemetry GenAI spans under `request.trace` (runtime/telemetry.hpp:
/// invoke_agent per agent, chat per model call, execute_tool per tool call, a sub-agent under
/// the `task` call that started it; failures set the span's error status and error.type) and
/// counts its tokens (telemetry::count_tokens). Never throws for run-level failures (model unreachable, script exhausted, limits
/// hit, the wall-time limit reached at any point): those return status "failed" with `error`
/// and an `error` event. `env.stop` ends the run with status "cancelled" (nothing of an
/// unfinished step is checkpointed, so a resumed run repeats it). Throws what
/// RunObserver::checkpoint throws, and on programming errors.
core::async::Task<RunResult> execute(const RunRequest& request, const RunLimits& limits, const ModelSettings& models,
                                     RunObserver& observer, RunEnv& env);

}  // namespace spec_engine::runtime
