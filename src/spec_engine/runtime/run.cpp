// The agent loop (docs/engine-api.md#runs-and-limits): run.hpp's execute().
//
// One step = one model call of one agent plus the execution of the tool calls it
// asked for; after each step the state is checkpointed, then on_state_update is
// emitted. `task` runs the target node as a sub-agent (its own message history,
// its system prompt, the description as the user message) on the shared files;
// its final text is the tool result. The agent stack lives in the checkpoint, so a
// run resumes exactly where it was, also inside a sub-agent (see checkpoint_state).
//
// The run is a coroutine. One internal std::stop_source carries both reasons to stop: the
// host's (RunEnv::stop: DELETE, shutdown, lease lost) and the wall-time limit (a timer
// coroutine started with the run). It is checked between steps and tool calls, on every
// streamed delta, passed to the model call (which ends at once, also before its first
// byte) and polled by every tool call's core::Budget on the blocking pool. Which of the
// two fired decides the outcome: "cancelled", or "failed" with the wall-time message.
#include "spec_engine/runtime/run.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "core/budget.hpp"
#include "core/json_parse.hpp"
#include "core/json_text.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "spec_engine/models/factory.hpp"
#include "spec_engine/runtime/state.hpp"
#include "spec_engine/runtime/telemetry.hpp"
#include "spec_engine/tools/builtin.hpp"

namespace spec_engine::runtime {

using nlohmann::json;

namespace {

// Records one model call in spec_engine_model_call_duration_seconds{provider,outcome}.
void observe_model_call(const std::string& provider, const char* outcome, std::chrono::steady_clock::time_point t0) {
  static auto& h = core::metrics::global().histogram("spec_engine_model_call_duration_seconds",
                                                     "Duration of one model call (request to last streamed chunk), seconds");
  h.observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
            {{"provider", provider}, {"outcome", outcome}});
}

/// A run-level failure: ends the run with status "failed". `type` is the error.type of the spans
/// it ends (a low-cardinality class: model_error, step_limit, token_limit, timeout, ...).
struct RunFailure {
  std::string message;
  std::string type = "_OTHER";
};
/// The host asked to stop (RunEnv::stop): ends the run with status "cancelled".
struct RunCancelled {};
/// Thrown by the delta sink once the run's stop was requested; becomes RunCancelled or
/// the wall-time RunFailure (Run::throw_stop).
struct RunStopped {};
/// RunObserver::checkpoint threw: execute() rethrows `error` unchanged.
struct ObserverFailure {
  std::exception_ptr error;
};

/// std::stop_callback body: forwards a stop request to another stop source.
struct ForwardStop {
  std::stop_source target;
  void operator()() const noexcept { target.request_stop(); }
};

/// The wall-time timer: after `d`, marks the limit reached and stops the run, unless `done`
/// (the run ended) is requested first.
core::async::Task<void> wall_time_timer(std::chrono::milliseconds d, std::stop_source run_stop,
                                        std::shared_ptr<std::atomic<bool>> expired, std::stop_token done) {
  // GCC 12 miscompiles a by-value argument of non-trivial type (here the stop_token) written
  // inside a co_await expression: the task is made first, then awaited.
  auto sleep = core::async::sleep_for(d, done);
  if (co_await std::move(sleep)) {
    expired->store(true);
    run_stop.request_stop();
  }
}

/// Makes a span the parent of the spans started while the scope lives: the run's operations are
/// sequential, so the innermost open span is the parent of the next one.
class SpanScope {
 public:
  SpanScope(std::vector<core::tracing::TraceContext>& stack, const core::tracing::TraceContext& ctx) : stack_(stack) {
    stack_.push_back(ctx);
  }
  ~SpanScope() { stack_.pop_back(); }
  SpanScope(const SpanScope&) = delete;
  SpanScope& operator=(const SpanScope&) = delete;

 private:
  std::vector<core::tracing::TraceContext>& stack_;
};

/// What one tool call gave the model.
struct ToolOutcome {
  std::string output;                     ///< the tool message's content
  std::optional<std::string> error_type;  ///< set when the call failed: the error.type of its span
};

std::string clip(const std::string& s, std::size_t n) {
  if (s.size() <= n) return s;
  std::size_t cut = n;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // keep UTF-8 whole
  return s.substr(0, cut) + "...";
}

class Run {
 public:
  Run(const RunRequest& req, const RunLimits& limits, const ModelSettings& settings, RunObserver& obs, RunEnv& env)
      : req_(req), limits_(limits), obs_(obs), env_(env), models_(settings, &env.http) {}

  core::async::Task<RunResult> go();

 private:
  const json& node(const std::string& id) const;
  std::vector<std::string> targets_of(const std::string& id) const;
  /// The tool schemas of node `id` (built once per node and run: the graph does not change;
  /// lent to each model request, see call_model).
  json& tools_for(const std::string& id);
  void init_fresh();
  void init_resume(const json& state);
  /// One agent's loop (agent_loop) inside its invoke_agent span.
  core::async::Task<std::string> run_agent(std::size_t depth, bool resuming);
  core::async::Task<std::string> agent_loop(std::size_t depth, bool resuming);
  core::async::Task<void> call_model(std::size_t depth);
  /// One tool call (tool_outcome) inside its execute_tool span, with its events and tool message.
  core::async::Task<void> execute_tool(std::size_t depth, const json& call, bool resume_child);
  core::async::Task<ToolOutcome> tool_outcome(std::size_t depth, const json& call, bool resume_child);
  core::async::Task<void> step_completed(std::size_t depth, bool final_root);
  std::string summary(const json& messages, std::size_t from) const;
  std::int64_t elapsed_ms() const;
  std::chrono::steady_clock::time_point run_deadline() const;
  RunFailure wall_time_exceeded(const std::string& where) const;
  core::async::Task<ToolOutcome> run_tool(std::size_t depth, const std::string& name, const json& args);
  /// The parent of the next span: the innermost open one, else the host's run span.
  std::optional<core::tracing::TraceContext> current_span() const {
    return spans_.empty() ? req_.trace : std::optional<core::tracing::TraceContext>(spans_.back());
  }
  /// gen_ai.agent.name of a node: its data.name, else its id.
  std::string agent_name(const std::string& node_id) const;
  /// The invoke_agent span's description of a node (its model when it resolves).
  telemetry::AgentInfo agent_info(const std::string& node_id);
  /// Marks `span` failed with what `error` (a run's exception) means.
  void record_failure(core::tracing::Span& span, const std::exception_ptr& error) const;
  /// error.type of a stop: "cancelled" when the host asked, "timeout" for the wall time.
  const char* stop_type() const;
  void start_wall_time_timer();
  /// Throws why the run must stop (its stop was requested): RunCancelled when the host asked,
  /// else the wall-time RunFailure with `where` appended to the message.
  [[noreturn]] void throw_stop(const std::string& where) const;
  /// throw_stop("") when the run's stop was requested.
  void check_stop() const {
    if (stop_.stop_requested()) throw_stop("");
  }

  const RunRequest& req_;
  const RunLimits& limits_;
  RunObserver& obs_;
  RunEnv& env_;
  models::ModelRegistry models_;
  std::stop_source stop_;  ///< requested by the host's stop token or the wall-time timer
  std::shared_ptr<std::atomic<bool>> wall_time_expired_ = std::make_shared<std::atomic<bool>>(false);
  std::stop_source timer_done_;  ///< ends the wall-time timer when the run ends
  tools::FileSystem fs_;
  std::vector<Frame> stack_;
  RunCounters counters_;
  std::uint64_t files_version_emitted_ = 0;
  std::size_t summary_from_ = 0;  // first message of the current step in the top frame
  std::string model_label_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::int64_t elapsed_before_ms_ = 0;
  std::vector<core::tracing::TraceContext> spans_;  ///< open spans of the run, innermost last (SpanScope)
  std::map<std::string, json> tools_;               ///< tools_for() by node id
};

const json& Run::node(const std::string& id) const {
  for (const auto& n : req_.definition["graph"]["nodes"]) {
    if (n.value("id", "") == id) return n;
  }
  throw RunFailure{"agent definition has no node '" + id + "'"};
}

std::vector<std::string> Run::targets_of(const std::string& id) const {
  std::vector<std::string> out;
  const json& g = req_.definition["graph"];
  if (!g.contains("edges") || !g["edges"].is_array()) return out;
  for (const auto& e : g["edges"]) {
    if (e.value("source", "") == id && e.contains("target") && e["target"].is_string()) {
      auto t = e["target"].get<std::string>();
      if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
    }
  }
  return out;
}

json& Run::tools_for(const std::string& id) {
  if (auto it = tools_.find(id); it != tools_.end()) return it->second;
  json out = json::array();
  for (const auto& name : tools::builtin_tool_names()) {
    if (name != "task") out.push_back(tools::tool_schema(name));
  }
  auto t = targets_of(id);
  if (!t.empty()) {
    json schema = tools::tool_schema("task", t);
    std::string desc = schema["function"]["description"].get<std::string>() + " Available sub-agents:";
    for (const auto& target : t) {
      const json& d = node(target)["data"];
      desc += "\n- " + target + " (" + d.value("name", target) + "): " + clip(d.value("system_prompt", ""), 200);
    }
    schema["function"]["description"] = desc;
    out.push_back(std::move(schema));
  }
  return tools_.emplace(id, std::move(out)).first->second;
}

std::int64_t Run::elapsed_ms() const {
  return elapsed_before_ms_ +
         std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_).count();
}

std::chrono::steady_clock::time_point Run::run_deadline() const {
  return started_ + limits_.max_wall_time - std::chrono::milliseconds(elapsed_before_ms_);
}

RunFailure Run::wall_time_exceeded(const std::string& where) const {
  return RunFailure{"wall time limit reached: the run took more than " + std::to_string(limits_.max_wall_time.count()) +
                        " s (max_run_seconds)" + where,
                    "timeout"};
}

const char* Run::stop_type() const {
  // The same decision as throw_stop().
  return env_.stop.stop_requested() || !wall_time_expired_->load() ? "cancelled" : "timeout";
}

std::string Run::agent_name(const std::string& node_id) const {
  try {
    const json& d = node(node_id)["data"];
    if (d.is_object() && d.contains("name") && d["name"].is_string() && !d["name"].get_ref<const std::string&>().empty()) {
      return d["name"].get<std::string>();
    }
  } catch (const RunFailure&) {
  }
  return node_id;
}

telemetry::AgentInfo Run::agent_info(const std::string& node_id) {
  telemetry::AgentInfo a;
  a.node_id = node_id;
  a.name = agent_name(node_id);
  a.conversation_id = req_.thread_id;
  try {
    const json& n = node(node_id);
    const models::ChatModel& m =
        models_.for_node(node_id, n["data"].contains("llm_config") ? n["data"]["llm_config"] : json());
    a.provider = m.provider();
    a.request_model = m.request_model();
  } catch (const RunFailure&) {
    // unknown node or model: the model call fails the run with the reason; the span says less
  } catch (const models::ModelError&) {
  }
  return a;
}

void Run::record_failure(core::tracing::Span& span, const std::exception_ptr& error) const {
  try {
    std::rethrow_exception(error);
  } catch (const RunFailure& f) {
    span.set_error(f.message, f.type);
  } catch (const RunCancelled&) {
    span.set_error("cancelled", "cancelled");
  } catch (const RunStopped&) {
    span.set_error("stopped", stop_type());
  } catch (const ObserverFailure&) {
    span.set_error("the run's state could not be stored", "checkpoint_failed");
  } catch (const std::exception& e) {
    span.set_error(e.what(), "_OTHER");
  } catch (...) {
    span.set_error("unknown error", "_OTHER");
  }
}

void Run::throw_stop(const std::string& where) const {
  if (env_.stop.stop_requested() || !wall_time_expired_->load()) throw RunCancelled{};
  throw wall_time_exceeded(where);
}

void Run::start_wall_time_timer() {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(run_deadline() - std::chrono::steady_clock::now());
  env_.rt.spawn(wall_time_timer(std::max(left, std::chrono::milliseconds(0)), stop_, wall_time_expired_,
                                timer_done_.get_token()));
}

void Run::init_fresh() {
  const json& p = req_.input_payload;
  json msgs = json::array();
  if (p.is_object() && p.contains("messages")) {
    const json& m = p["messages"];
    if (m.is_string()) {
      msgs.push_back({{"role", "user"}, {"content", m}});
    } else if (m.is_array()) {
      for (const auto& x : m) {
        if (x.is_string()) {
          msgs.push_back({{"role", "user"}, {"content", x}});
        } else if (x.is_object()) {
          std::string role = x.value("role", "user");
          if (role == "human") role = "user";
          if (role == "ai") role = "assistant";
          msgs.push_back({{"role", role}, {"content", x.contains("content") && x["content"].is_string() ? x["content"] : json("")}});
        }
      }
    }
  }
  if (p.is_object() && p.contains("files") && !p["files"].is_null()) {
    auto errs = fs_.load(p["files"], "input_payload.files");
    if (!errs.empty()) throw RunFailure{"invalid " + errs.front().first + ": " + errs.front().second};
  }
  std::string entry = req_.definition["graph"]["entryPoint"].get<std::string>();
  stack_.push_back(Frame{entry, msgs, json::array(), ""});
}

void Run::init_resume(const json& state) {
  std::string why;
  if (!from_checkpoint(state, stack_, counters_, why)) throw RunFailure{"cannot resume: " + why};
  auto errs = fs_.load(state.value("files", json::object()), "checkpoint.files");
  if (!errs.empty()) throw RunFailure{"cannot resume: invalid " + errs.front().first + ": " + errs.front().second};
  for (const auto& f : stack_) node(f.node);  // every frame's node must still exist
  json cursors = state.contains("scripted_cursors") && state["scripted_cursors"].is_object()
                     ? state["scripted_cursors"]
                     : json{{"override", counters_.model_calls}};
  models_.restore_scripted_cursors(cursors);
  elapsed_before_ms_ = counters_.elapsed_ms;
}

std::string Run::summary(const json& messages, std::size_t from) const {
  std::string out;
  if (from >= messages.size()) from = messages.empty() ? 0 : messages.size() - 1;
  for (std::size_t i = from; i < messages.size(); ++i) {
    const json& m = messages[i];
    std::string role = m.value("role", "");
    std::string part = role;
    if (role == "tool") part += " " + m.value("name", "");
    part += ": " + clip(m.contains("content") && m["content"].is_string() ? m["content"].get<std::string>() : "", 160);
    if (m.contains("tool_calls") && m["tool_calls"].is_array() && !m["tool_calls"].empty()) {
      part += " [tool_calls:";
      for (const auto& c : m["tool_calls"]) part += " " + c.value("name", "");
      part += "]";
    }
    if (!out.empty()) out += " | ";
    out += part;
  }
  return clip(out, 1000);
}

core::async::Task<void> Run::step_completed(std::size_t depth, bool final_root) {
  counters_.elapsed_ms = elapsed_ms();
  // The files are serialized once (from the text kept per unchanged file) and spliced into
  // both the checkpoint and the on_state_update.
  const std::string files_text = fs_.to_text();
  auto state = std::make_shared<const std::string>(
      to_checkpoint_text(stack_, files_text, counters_, models_.scripted_cursors()));
  // Files whenever they changed since the previous on_state_update, and always in the
  // run's last one (so its files equal the final state's generated_files).
  const bool with_files = fs_.version() != files_version_emitted_ || final_root;
  std::exception_ptr observer_error;
  try {
    auto durable = obs_.checkpoint_text(std::move(state), usage_of(counters_));
    co_await std::move(durable);
  } catch (...) {
    observer_error = std::current_exception();
  }
  if (observer_error) throw ObserverFailure{observer_error};
  const Frame& f = stack_[depth];
  json data = {{"node", f.node},
               {"step", counters_.steps},
               {"todos", f.todos},
               {"messages", summary(f.messages, summary_from_)},
               {"model", model_label_}};
  if (depth > 0) data["parent"] = stack_[depth - 1].node;
  if (with_files) {
    files_version_emitted_ = fs_.version();
    obs_.emit_text("on_state_update",
                   std::make_shared<const std::string>(core::json::dump_with_member(data, "files", files_text)));
  } else {
    obs_.emit("on_state_update", std::move(data));
  }
  summary_from_ = stack_[depth].messages.size();
}

namespace {

/// Moves a document into `borrower` and back into `home` when it goes out of scope (also when
/// the scope is left by an exception or the coroutine frame holding it is destroyed).
class Lent {
 public:
  Lent(json& home, json& borrower) : home_(home), borrower_(borrower) { borrower_ = std::move(home_); }
  ~Lent() { home_ = std::move(borrower_); }
  Lent(const Lent&) = delete;
  Lent& operator=(const Lent&) = delete;

 private:
  json& home_;
  json& borrower_;
};

}  // namespace

core::async::Task<void> Run::call_model(std::size_t depth) {
  check_stop();
  if (counters_.steps >= limits_.max_steps) {
    throw RunFailure{"step limit reached: the run made " + std::to_string(counters_.steps) +
                         " model calls (max_steps " + std::to_string(limits_.max_steps) + ")",
                     "step_limit"};
  }
  if (elapsed_ms() > std::chrono::duration_cast<std::chrono::milliseconds>(limits_.max_wall_time).count()) {
    throw wall_time_exceeded("");
  }
  std::string node_id = stack_[depth].node;
  const json& n = node(node_id);
  json llm = n["data"].contains("llm_config") ? n["data"]["llm_config"] : json::object();
  models::ChatModel* model;
  try {
    model = &models_.for_node(node_id, llm);
  } catch (const models::ModelError& e) {
    throw RunFailure{e.what(), "model_error"};
  }
  models::ModelRequest mr;
  mr.node = node_id;
  mr.system_prompt = n["data"].value("system_prompt", "");
  summary_from_ = stack_[depth].messages.size();
  // Runs on the model stream's I/O thread. A stop (DELETE, shutdown, wall time) aborts the
  // call mid-stream: the exception unwinds through the provider, which drops its connection.
  // Nothing of this turn is checkpointed, so a resumed run repeats the call.
  const models::DeltaSink sink = [this, &node_id](std::string_view delta) {
    if (stop_.stop_requested()) throw RunStopped{};
    obs_.emit("on_llm_stream", {{"node", node_id}, {"delta", std::string(delta)}});
  };
  auto span = telemetry::start_chat(
      current_span(), telemetry::ChatInfo{model->provider(), model->request_model(), agent_name(node_id), req_.thread_id});
  models::ModelTurn turn;
  bool stopped = false;
  std::optional<std::string> failure;
  auto t0 = std::chrono::steady_clock::now();
  {
    // The history and the tool schemas are lent to the request for the call, not copied (the
    // history grows with every turn); nothing else of the run reads them until they are back.
    Lent lent_messages(stack_[depth].messages, mr.messages);
    Lent lent_tools(tools_for(node_id), mr.tools);
    try {
      auto call = model->complete(mr, sink, stop_.get_token());
      turn = co_await std::move(call);
    } catch (const RunStopped&) {
      stopped = true;
    } catch (const models::ModelCancelled&) {
      stopped = true;
    } catch (const models::ModelError& e) {
      if (stop_.stop_requested())
        stopped = true;  // e.g. a timeout racing the stop: the stop decides
      else
        failure = e.what();
    }
  }
  if (stopped) {
    counters_.model_calls += 1;
    observe_model_call(model->provider(), "cancelled", t0);
    span.set_error("the model call was stopped", stop_type());
    throw_stop(" while waiting for the model");
  }
  if (failure) {
    counters_.model_calls += 1;
    observe_model_call(model->provider(), "error", t0);
    span.set_error(*failure, "model_error");
    throw RunFailure{*failure, "model_error"};
  }
  observe_model_call(model->provider(), "ok", t0);
  telemetry::record_turn(span, turn);
  telemetry::count_tokens(model->provider(), model->request_model(), turn.usage);
  counters_.model_calls += 1;
  counters_.steps += 1;
  counters_.prompt_tokens += turn.usage.prompt_tokens;
  counters_.completion_tokens += turn.usage.completion_tokens;
  core::log::debug("model call", {{"thread_id", req_.thread_id}, {"node", node_id}, {"provider", model->provider()},
                                  {"ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::steady_clock::now() - t0).count()},
                                  {"tool_calls", turn.tool_calls.size()}});
  json msg = {{"role", "assistant"}, {"content", turn.content}};
  if (!turn.tool_calls.empty()) {
    json calls = json::array();
    for (const auto& c : turn.tool_calls) calls.push_back(c.to_json());
    msg["tool_calls"] = calls;
  }
  stack_[depth].messages.push_back(msg);
  if (counters_.prompt_tokens + counters_.completion_tokens > limits_.max_tokens) {
    throw RunFailure{"token limit reached: " + std::to_string(counters_.prompt_tokens + counters_.completion_tokens) +
                         " tokens used (max_tokens " + std::to_string(limits_.max_tokens) + ")",
                     "token_limit"};
  }
}

core::async::Task<void> Run::execute_tool(std::size_t depth, const json& call, bool resume_child) {
  std::string node_id = stack_[depth].node;
  std::string name = call.value("name", "");
  std::string id = call.value("id", "");
  json input = call.contains("arguments_error") ? json(call.value("arguments_raw", "")) : call.value("arguments", json::object());
  if (!resume_child) {
    obs_.emit("on_tool_start", {{"node", node_id}, {"tool", name}, {"tool_call_id", id}, {"input", input}});
  }
  auto span = telemetry::start_execute_tool(current_span(), name, id, req_.thread_id);
  SpanScope scope(spans_, span.context());  // a `task` call's sub-agent nests under it
  ToolOutcome outcome;
  std::exception_ptr error;
  try {
    auto body = tool_outcome(depth, call, resume_child);
    outcome = co_await std::move(body);
  } catch (...) {
    error = std::current_exception();
  }
  if (error) {
    record_failure(span, error);
    std::rethrow_exception(error);
  }
  if (outcome.error_type) span.set_error(clip(outcome.output, 500), *outcome.error_type);
  stack_[depth].messages.push_back({{"role", "tool"}, {"tool_call_id", id}, {"name", name}, {"content", outcome.output}});
  obs_.emit("on_tool_end", {{"node", node_id}, {"tool", name}, {"tool_call_id", id}, {"output", outcome.output}});
}

core::async::Task<ToolOutcome> Run::tool_outcome(std::size_t depth, const json& call, bool resume_child) {
  const std::string node_id = stack_[depth].node;
  const std::string name = call.value("name", "");
  const std::string id = call.value("id", "");
  auto targets = targets_of(node_id);
  if (call.contains("arguments_error")) {
    co_return ToolOutcome{"Error: invalid arguments for tool '" + name + "': " + call.value("arguments_error", "") +
                              ". Send the arguments as one JSON object.",
                          "invalid_arguments"};
  }
  if (name == "task") {
    json args = call.value("arguments", json::object());
    std::string err = targets.empty() ? "Error: tool 'task' is not available to agent '" + node_id +
                                            "' (it has no sub-agents)"
                                      : tools::check_task_args(args, targets);
    if (err.empty() && !resume_child && static_cast<int>(depth) + 1 > limits_.max_delegation_depth) {
      err = "Error: task: delegation depth limit (" + std::to_string(limits_.max_delegation_depth) + ") reached";
    }
    if (!err.empty()) co_return ToolOutcome{err, "tool_error"};
    if (!resume_child) {
      std::string target = args["subagent_type"].get<std::string>();
      json msgs = json::array({json{{"role", "user"}, {"content", args["description"]}}});
      stack_.push_back(Frame{target, msgs, json::array(), id});
    }
    auto sub_agent = run_agent(depth + 1, resume_child);
    std::string output = co_await std::move(sub_agent);
    stack_.pop_back();
    summary_from_ = stack_[depth].messages.size();
    if (output.empty()) output = "(the sub-agent finished without a final message)";
    co_return ToolOutcome{std::move(output), std::nullopt};
  }
  if (tools::is_builtin_tool(name)) {
    const json args = call.value("arguments", json::object());
    auto tool = run_tool(depth, name, args);
    co_return co_await std::move(tool);
  }
  std::string avail;
  for (const auto& t : tools::builtin_tool_names()) {
    if (t != "task" || !targets.empty()) avail += (avail.empty() ? "" : ", ") + t;
  }
  co_return ToolOutcome{"Error: unknown tool '" + name + "'. Available tools: " + avail, "unknown_tool"};
}

// One built-in tool call on the runtime's blocking pool, under its budget: the tool budget,
// cut short by the run's wall-time deadline, and cancelled when the run's stop is requested
// (DELETE, shutdown, wall-time timer). A stopped call stops the run (cancelled, or failed by
// the wall time); a call that used up its own budget returns the budget error to the model.
core::async::Task<ToolOutcome> Run::run_tool(std::size_t depth, const std::string& name, const json& args) {
  const std::stop_token stop = stop_.get_token();
  const auto deadline = run_deadline();
  tools::ToolState st{fs_, stack_[depth].todos, limits_.test_tool_delay};
  // The budget starts when a pool thread takes the call: waiting for one does not use it up.
  std::optional<core::Budget> budget;
  auto call = [this, &name, &args, &st, &budget, &stop, deadline] {
    budget.emplace(limits_.tool_budget, [stop] { return stop.stop_requested(); }, deadline);
    return tools::run_builtin_tool(name, args, st, *budget);
  };
  auto call_task = env_.rt.blocking(std::move(call));
  tools::ToolResult r = co_await std::move(call_task);
  std::optional<std::string> error_type;
  if (r.error) error_type = "tool_error";
  switch (budget->stop()) {
    case core::BudgetStop::none:
      break;
    case core::BudgetStop::cancelled:
      throw_stop(" while tool '" + name + "' ran");
    case core::BudgetStop::deadline:
      if (std::chrono::steady_clock::now() >= run_deadline()) throw wall_time_exceeded(" while tool '" + name + "' ran");
      core::log::warn("tool call exceeded its time budget", {{"thread_id", req_.thread_id}, {"node", stack_[depth].node},
                                                              {"tool", name}, {"budget_ms", budget->limit_ms()}});
      error_type = "timeout";
      break;
  }
  co_return ToolOutcome{std::move(r.output), std::move(error_type)};
}

core::async::Task<std::string> Run::run_agent(std::size_t depth, bool resuming) {
  auto span = telemetry::start_invoke_agent(current_span(), agent_info(stack_[depth].node));
  SpanScope scope(spans_, span.context());
  const TokenUsage before = usage_of(counters_);
  std::string output;
  std::exception_ptr error;
  try {
    auto loop = agent_loop(depth, resuming);
    output = co_await std::move(loop);
  } catch (...) {
    error = std::current_exception();
  }
  const TokenUsage after = usage_of(counters_);
  telemetry::set_usage(span, TokenUsage{after.input_tokens - before.input_tokens,
                                        after.output_tokens - before.output_tokens});
  if (error) {
    record_failure(span, error);
    std::rethrow_exception(error);
  }
  co_return output;
}

core::async::Task<std::string> Run::agent_loop(std::size_t depth, bool resuming) {
  for (;;) {
    const json& msgs = stack_[depth].messages;
    if (!msgs.empty() && msgs.back().value("role", "") == "assistant") {
      const json& last = msgs.back();
      if (!last.contains("tool_calls") || last["tool_calls"].empty()) {
        co_return last.contains("content") && last["content"].is_string() ? last["content"].get<std::string>() : "";
      }
    }
    auto pending = unanswered_tool_calls(msgs);
    if (!pending.empty()) {
      for (const auto& call : pending) {
        check_stop();  // between tool calls (a sub-agent checks its own)
        bool resume_child = resuming && stack_.size() > depth + 1 &&
                            stack_[depth + 1].task_call_id == call.value("id", "");
        auto tool = execute_tool(depth, call, resume_child);
        co_await std::move(tool);
        resuming = false;
      }
      auto step = step_completed(depth, false);
      co_await std::move(step);
      continue;
    }
    resuming = false;
    auto model_call = call_model(depth);
    co_await std::move(model_call);
    if (const json& last = stack_[depth].messages.back(); !last.contains("tool_calls") || last["tool_calls"].empty()) {
      auto step = step_completed(depth, depth == 0);
      co_await std::move(step);
      co_return stack_[depth].messages.back()["content"].get<std::string>();
    }
  }
}

core::async::Task<RunResult> Run::go() {
  RunResult r;
  std::string node_for_error;
  std::exception_ptr observer_error;
  // The host's stop request and the wall-time timer both stop the run through stop_.
  std::stop_callback<ForwardStop> on_host_stop(env_.stop, ForwardStop{stop_});
  try {
    bool resumed = req_.resume_from.has_value() && !req_.resume_from->is_null();
    if (resumed) init_resume(*req_.resume_from);
    else init_fresh();
    start_wall_time_timer();  // after init_resume: time before a restart counts
    node_for_error = stack_.back().node;
    // Resolve the entry node's model now: a bad provider fails before any step, and
    // the label goes into every on_state_update (the scripted model is always labelled).
    try {
      const json& n = node(stack_.front().node);
      auto& m = models_.for_node(stack_.front().node, n["data"].contains("llm_config") ? n["data"]["llm_config"] : json());
      model_label_ = m.provider();
      if (model_label_ == "scripted") {
        core::log::info("run uses the scripted model (offline replay, not a real LLM)",
                        {{"thread_id", req_.thread_id}, {"script", m.model_name()}});
      }
    } catch (const models::ModelError& e) {
      throw RunFailure{e.what(), "model_error"};
    }
    // Opening state update: the input (and seeded files), like the recorded streams.
    {
      const Frame& f = stack_.back();
      json data = {{"node", f.node}, {"step", counters_.steps}, {"todos", f.todos},
                   {"messages", summary(f.messages, 0)}, {"model", model_label_}};
      if (resumed) data["resumed"] = true;
      files_version_emitted_ = fs_.version();
      if (fs_.files().empty()) {
        obs_.emit("on_state_update", std::move(data));
      } else {
        obs_.emit_text("on_state_update",
                       std::make_shared<const std::string>(core::json::dump_with_member(data, "files", fs_.to_text())));
      }
      summary_from_ = f.messages.size();
    }
    auto root = run_agent(0, resumed);
    std::string final_text = co_await std::move(root);
    r.status = "completed";
    r.result = {{"messages", json::array({final_text})}, {"output", final_text}};
  } catch (const RunFailure& f) {
    r.status = "failed";
    r.error = f.message;
    json ctx = {{"thread_id", req_.thread_id}, {"step", counters_.steps}};
    if (!stack_.empty()) ctx["node"] = stack_.back().node;
    obs_.emit("error", {{"error", f.message}, {"context", ctx}});
    core::log::warn("run failed", {{"thread_id", req_.thread_id}, {"error", f.message}});
  } catch (const RunCancelled&) {
    r.status = "cancelled";
    r.error = "cancelled";
  } catch (const ObserverFailure& f) {
    observer_error = f.error;
  } catch (const std::exception& e) {
    r.status = "failed";
    r.error = std::string("internal error: ") + e.what();
    obs_.emit("error", {{"error", r.error}, {"context", {{"thread_id", req_.thread_id}, {"step", counters_.steps}}}});
    core::log::error("run failed with an internal error", {{"thread_id", req_.thread_id}, {"error", e.what()}});
  }
  timer_done_.request_stop();
  if (observer_error) std::rethrow_exception(observer_error);
  r.files = fs_.to_json();
  r.usage = usage_of(counters_);
  co_return r;
}

}  // namespace

void RunObserver::emit_text(const std::string& event_type, std::shared_ptr<const std::string> data_text) {
  emit(event_type, core::json::parse(*data_text, core::json::kInternalLimits));
}

core::async::Task<void> RunObserver::checkpoint_text(std::shared_ptr<const std::string> state_text, TokenUsage) {
  auto stored = checkpoint(core::json::parse(*state_text, core::json::kInternalLimits));
  co_await std::move(stored);
}

core::async::Task<RunResult> execute(const RunRequest& request, const RunLimits& limits, const ModelSettings& models,
                                     RunObserver& observer, RunEnv& env) {
  Run run(request, limits, models, observer, env);
  auto body = run.go();
  co_return co_await std::move(body);
}

}  // namespace spec_engine::runtime
