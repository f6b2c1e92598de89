#pragma once
// The deepagents built-in tools (docs/engine-api.md#built-in-tools) over the run's
// virtual file system, with the deepagents argument names:
//   ls {path?}, read_file {file_path, offset?, limit?}, write_file {file_path, content},
//   edit_file {file_path, old_string, new_string, replace_all?}, glob {pattern},
//   grep {pattern, path?, glob?}, write_todos {todos:[{content, status}]},
//   task {description, subagent_type} (executed by the runtime, see run.cpp).
// Every problem (bad arguments, bad paths, limits, an exhausted time budget) is
// returned as a tool result string starting with "Error:" that the model reads;
// nothing here throws for model input.
//
// Time: every call runs under a core::Budget (deadline + cancellation) that the
// tools poll inside their loops (ls over files, glob over paths, grep over files
// and lines, edit_file over occurrences, read_file over lines); the hot inner
// steps are linear-time (glob.hpp's NFA matcher, memmem for literal search), so a
// call notices an exhausted budget within microseconds. A stopped call changes
// nothing (edit_file writes only after its loops).

#include <chrono>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/budget.hpp"
#include "spec_engine/tools/vfs.hpp"

namespace spec_engine::tools {

/// Names of the built-in tools, in the order they are offered to models.
const std::vector<std::string>& builtin_tool_names();
/// True if `name` is one of builtin_tool_names() (including "task").
bool is_builtin_tool(const std::string& name);

/// Result of one tool call.
struct ToolResult {
  std::string output;          ///< what the model reads as the tool message
  bool error = false;          ///< output is an "Error: ..." message
  bool files_changed = false;  ///< the call modified the file system
};

/// Per-agent mutable state the tools act on.
struct ToolState {
  FileSystem& files;
  nlohmann::json& todos;       ///< array of {content, status}
  /// Testing only (SPEC_ENGINE_TEST_TOOL_DELAY_MS): every call first spends this long
  /// waiting, polling its budget every few milliseconds like real work, to simulate a
  /// slow tool in end-to-end tests of budgets and cancellation. 0 in production.
  std::chrono::milliseconds simulated_latency{0};
};

/// Runs one built-in tool other than "task" under `budget`. `args` is the parsed
/// arguments object (anything else is an "Error: ... arguments must be a JSON
/// object" result). Unknown names yield an error result naming the tool. When the
/// budget runs out the result is "Error: <tool>: exceeded its time budget of N ms"
/// (N = budget.limit_ms()); when it is cancelled, "Error: <tool>: cancelled"; the
/// caller tells the two apart with budget.stop().
ToolResult run_builtin_tool(const std::string& name, const nlohmann::json& args, ToolState& state,
                            core::Budget& budget);
/// The same with an unlimited budget.
ToolResult run_builtin_tool(const std::string& name, const nlohmann::json& args, ToolState& state);

/// Checks `task` arguments: {description: non-empty string, subagent_type: one of
/// `allowed`}. Returns "" when valid, else the error message for the model.
std::string check_task_args(const nlohmann::json& args, const std::vector<std::string>& allowed);

/// JSON Schema (OpenAI "function" tool form: {"type":"function","function":{name,
/// description,parameters}}) of one built-in tool. For "task", `subagents` becomes the
/// enum of subagent_type. Throws std::invalid_argument for unknown names.
nlohmann::json tool_schema(const std::string& name, const std::vector<std::string>& subagents = {});

/// read_file defaults (deepagents): 2000 lines, lines longer than 2000 chars are cut.
inline constexpr int kDefaultReadLimit = 2000;
inline constexpr std::size_t kMaxLineChars = 2000;
/// Longest glob pattern (the `glob` tool's pattern and grep's `glob` filter), bytes.
inline constexpr std::size_t kMaxGlobPatternBytes = 512;
/// grep stops after this many matching lines.
inline constexpr std::size_t kMaxGrepMatches = 500;

}  // namespace spec_engine::tools
