// The agent loop with the scripted model (run.hpp execute; docs/event-path-and-replicas.md "A run").
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <mutex>
#include <unistd.h>

#include "core/metrics.hpp"
#include "spec_engine/runtime/run.hpp"
#include "../test_host.hpp"

using namespace spec_engine::runtime;
using nlohmann::json;
using spec_engine::testing::Host;

namespace {

/// Records a run's events and checkpoints. The host's stop (RunEnv::stop) is `stop`; a test
/// requests it from `stop_when`, evaluated after every event and checkpoint (like a DELETE
/// arriving at that moment).
struct Recorder : RunObserver {
  std::vector<std::pair<std::string, json>> events;
  std::vector<json> checkpoints;
  int cancel_after_checkpoints = -1;
  std::function<bool(const Recorder&)> stop_when;
  std::stop_source stop;
  void emit(const std::string& type, const json& data) override {
    events.emplace_back(type, data);
    maybe_stop();
  }
  core::async::Task<void> checkpoint(const json& state) override {
    checkpoints.push_back(state);
    maybe_stop();
    co_return;
  }
  void maybe_stop() {
    const bool by_count =
        cancel_after_checkpoints >= 0 && static_cast<int>(checkpoints.size()) >= cancel_after_checkpoints;
    if (by_count || (stop_when && stop_when(*this))) stop.request_stop();
  }
  std::vector<std::string> types() const {
    std::vector<std::string> t;
    for (const auto& e : events) t.push_back(e.first);
    return t;
  }
  std::vector<json> of(const std::string& type) const {
    std::vector<json> out;
    for (const auto& e : events) {
      if (e.first == type) out.push_back(e.second);
    }
    return out;
  }
};

json two_agent_definition() {
  return json::parse(R"({"graph": {
    "nodes": [
      {"id": "orchestrator", "type": "AgentNode",
       "data": {"name": "Orchestrator", "system_prompt": "You lead.", "tools": ["write_file", "writer"]}},
      {"id": "writer", "type": "AgentNode",
       "data": {"name": "Writer", "system_prompt": "You write.", "tools": ["read_file", "edit_file"]}}],
    "edges": [{"source": "orchestrator", "target": "writer", "type": "delegation"}],
    "entryPoint": "orchestrator"}})");
}

json two_agent_script() {
  return json::parse(R"({"turns": [
    {"node": "orchestrator", "content": "Planning the spec now.",
     "tool_calls": [{"id": "c1", "name": "write_todos", "arguments": {"todos": [{"content": "draft", "status": "in_progress"}]}},
                    {"id": "c2", "name": "write_file", "arguments": {"file_path": "/spec.md", "content": "# Spec\nTODO"}}]},
    {"node": "orchestrator", "tool_calls": [{"id": "c3", "name": "task",
       "arguments": {"description": "Replace TODO in /spec.md", "subagent_type": "writer"}}]},
    {"node": "writer", "tool_calls": [{"id": "w1", "name": "read_file", "arguments": {"file_path": "/spec.md"}}]},
    {"node": "writer", "tool_calls": [{"id": "w2", "name": "edit_file",
       "arguments": {"file_path": "/spec.md", "old_string": "TODO", "new_string": "Greets users."}}]},
    {"node": "writer", "content": "Edited /spec.md."},
    {"node": "orchestrator", "tool_calls": [{"id": "c4", "name": "edit_file",
       "arguments": {"file_path": "/spec.md", "old_string": "# Spec", "new_string": "# Hello Spec"}}]},
    {"node": "orchestrator", "content": "Done: the spec is written."}
  ]})");
}

std::string write_temp(const json& j) {
  char path[] = "/tmp/rt_script_XXXXXX";
  int fd = mkstemp(path);
  std::string s = j.dump();
  EXPECT_EQ(write(fd, s.data(), s.size()), static_cast<ssize_t>(s.size()));
  close(fd);
  return path;
}

/// Runs execute() to the end on a fresh runtime, with `rec`'s stop source as the host's stop.
RunResult run(const RunRequest& req, const RunLimits& limits, const ModelSettings& ms, Recorder& rec) {
  Host host;
  RunEnv env{host.rt, host.http, rec.stop.get_token()};
  return host.rt.run_sync(execute(req, limits, ms, rec, env));
}

RunResult run_with_script(const json& definition, const json& script, Recorder& rec, RunLimits limits = {},
                          json input = json{{"messages", "Write a hello spec"}},
                          std::optional<json> resume = std::nullopt) {
  std::string path = write_temp(script);
  ModelSettings ms;
  ms.provider_override = "scripted:" + path;
  RunRequest req{"t1", definition, input, resume};
  auto r = run(req, limits, ms, rec);
  std::remove(path.c_str());
  return r;
}

}  // namespace

TEST(Loop, SingleAgentInlineScriptWritesFiles) {
  json def = json::parse(R"({"graph": {"nodes": [{"id": "solo", "type": "AgentNode",
      "data": {"name": "Solo", "system_prompt": "Be brief.", "tools": [],
               "llm_config": {"provider": "scripted", "script": {"turns": [
                 {"content": "Writing two files.", "tool_calls": [
                   {"id": "a", "name": "write_file", "arguments": {"file_path": "/a.md", "content": "A"}},
                   {"id": "b", "name": "write_file", "arguments": {"file_path": "b/c.md", "content": "line1\nline2"}}]},
                 {"content": "All done."}]}}}}],
      "edges": [], "entryPoint": "solo"}})");
  Recorder rec;
  RunRequest req{"t1", def, {{"messages", {{{"role", "user"}, {"content", "go"}}}},
                             {"files", {{"/seed.md", {{"content", "seeded"}}}}}}, std::nullopt};
  auto r = run(req, RunLimits{}, ModelSettings{}, rec);
  ASSERT_EQ(r.status, "completed") << r.error;
  EXPECT_EQ(r.result["messages"], json({"All done."}));
  EXPECT_EQ(r.files["/a.md"]["content"], json({"A"}));
  EXPECT_EQ(r.files["/b/c.md"]["content"], json({"line1", "line2"}));
  EXPECT_EQ(r.files["/seed.md"]["content"], json({"seeded"}));
  auto updates = rec.of("on_state_update");
  ASSERT_EQ(updates.size(), 3u);
  EXPECT_EQ(updates[0]["model"], "scripted");
  EXPECT_TRUE(updates[0].contains("files"));  // seeded files shown at start
  EXPECT_EQ(updates[1]["step"], 1);
  EXPECT_EQ(updates[1]["files"], r.files);
  EXPECT_EQ(updates.back()["files"], r.files);  // the last update always carries the final files
  EXPECT_EQ(rec.checkpoints.size(), 2u);
  std::string streamed;
  for (const auto& d : rec.of("on_llm_stream")) {
    EXPECT_EQ(d["node"], "solo");
    streamed += d["delta"].get<std::string>();
  }
  EXPECT_EQ(streamed, "Writing two files.All done.");
  EXPECT_GE(rec.of("on_llm_stream").size(), 4u);  // split into word-ish pieces
}

TEST(Loop, DelegationEventsAndFiles) {
  Recorder rec;
  auto r = run_with_script(two_agent_definition(), two_agent_script(), rec);
  ASSERT_EQ(r.status, "completed") << r.error;
  EXPECT_EQ(r.result["output"], "Done: the spec is written.");
  EXPECT_EQ(r.files["/spec.md"]["content"], json({"# Hello Spec", "Greets users."}));

  // Tool results: the sub-agent's final text is the task result.
  auto ends = rec.of("on_tool_end");
  json task_end;
  for (const auto& e : ends) {
    if (e["tool"] == "task") task_end = e;
  }
  ASSERT_FALSE(task_end.is_null());
  EXPECT_EQ(task_end["output"], "Edited /spec.md.");
  EXPECT_EQ(task_end["node"], "orchestrator");
  EXPECT_EQ(task_end["tool_call_id"], "c3");

  // Order: start/end pairs nest; the writer's events happen between task start and end.
  auto t = rec.types();
  std::vector<std::string> tools_seq;
  for (const auto& [type, d] : rec.events) {
    if (type == "on_tool_start") tools_seq.push_back("+" + d["tool"].get<std::string>() + "@" + d["node"].get<std::string>());
    if (type == "on_tool_end") tools_seq.push_back("-" + d["tool"].get<std::string>() + "@" + d["node"].get<std::string>());
  }
  EXPECT_EQ(tools_seq, (std::vector<std::string>{
                           "+write_todos@orchestrator", "-write_todos@orchestrator", "+write_file@orchestrator",
                           "-write_file@orchestrator", "+task@orchestrator", "+read_file@writer", "-read_file@writer",
                           "+edit_file@writer", "-edit_file@writer", "-task@orchestrator", "+edit_file@orchestrator",
                           "-edit_file@orchestrator"}));
  EXPECT_EQ(t.front(), "on_state_update");
  EXPECT_EQ(t.back(), "on_state_update");
  EXPECT_EQ(rec.of("error").size(), 0u);

  // on_state_update: files only when they changed since the previous update, and in the last.
  auto updates = rec.of("on_state_update");
  std::vector<std::string> nodes;
  std::vector<bool> with_files;
  for (const auto& u : updates) {
    nodes.push_back(u["node"]);
    with_files.push_back(u.contains("files"));
    EXPECT_TRUE(u["messages"].is_string());
    EXPECT_EQ(u["model"], "scripted");
  }
  // initial, orch step1 (write), writer read, writer edit, writer final, orch task step, orch edit, orch final
  EXPECT_EQ(nodes, (std::vector<std::string>{"orchestrator", "orchestrator", "writer", "writer", "writer",
                                             "orchestrator", "orchestrator", "orchestrator"}));
  EXPECT_EQ(with_files, (std::vector<bool>{false, true, false, true, false, false, true, true}));
  EXPECT_EQ(updates[1]["todos"][0]["content"], "draft");
  EXPECT_EQ(updates.back()["files"], r.files);
  EXPECT_EQ(updates.back()["step"], 7);

  // Checkpoints: one per step, with the agent stack.
  ASSERT_EQ(rec.checkpoints.size(), 7u);
  const json& inner = rec.checkpoints[1];  // after the writer's first step
  ASSERT_EQ(inner["stack"].size(), 2u);
  EXPECT_EQ(inner["stack"][1]["node"], "writer");
  EXPECT_EQ(inner["stack"][1]["task_call_id"], "c3");
  EXPECT_EQ(inner["model_calls"], 3);
  EXPECT_EQ(inner["scripted_cursors"]["override"], 3);
  EXPECT_EQ(rec.checkpoints.back()["step"], 7);
}

TEST(Loop, ResumeFromEveryCheckpointCompletesIdentically) {
  Recorder full;
  auto ref = run_with_script(two_agent_definition(), two_agent_script(), full);
  ASSERT_EQ(ref.status, "completed");
  for (std::size_t i = 0; i < full.checkpoints.size(); ++i) {
    Recorder rec;
    auto r = run_with_script(two_agent_definition(), two_agent_script(), rec, {}, json::object(), full.checkpoints[i]);
    ASSERT_EQ(r.status, "completed") << "checkpoint " << i << ": " << r.error;
    EXPECT_EQ(r.result, ref.result) << "checkpoint " << i;
    for (auto& [p, f] : r.files.items()) EXPECT_EQ(f["content"], ref.files[p]["content"]) << p;
    EXPECT_EQ(rec.of("on_state_update").front()["resumed"], true);
    if (i + 1 < full.checkpoints.size()) {
      ASSERT_FALSE(rec.checkpoints.empty());
      EXPECT_EQ(rec.checkpoints.back()["step"], 7);
    }
  }
}

TEST(Loop, CancelledMidRunThenResumed) {
  Recorder rec;
  rec.cancel_after_checkpoints = 3;
  auto r = run_with_script(two_agent_definition(), two_agent_script(), rec);
  EXPECT_EQ(r.status, "cancelled");
  ASSERT_EQ(rec.checkpoints.size(), 3u);
  Recorder rec2;
  auto r2 = run_with_script(two_agent_definition(), two_agent_script(), rec2, {}, json::object(), rec.checkpoints.back());
  EXPECT_EQ(r2.status, "completed") << r2.error;
  EXPECT_EQ(r2.files["/spec.md"]["content"], json({"# Hello Spec", "Greets users."}));
}

TEST(Loop, ScriptExhaustedFailsClearly) {
  auto script = two_agent_script();
  script["turns"].erase(script["turns"].size() - 1);
  Recorder rec;
  auto r = run_with_script(two_agent_definition(), script, rec);
  EXPECT_EQ(r.status, "failed");
  EXPECT_EQ(r.error, "scripted model: script exhausted after 6 turns; agent orchestrator asked for turn 7");
  auto errs = rec.of("error");
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0]["error"], r.error);
  EXPECT_EQ(errs[0]["context"]["node"], "orchestrator");
  EXPECT_EQ(rec.types().back(), "error");
}

TEST(Loop, NodeMismatchFails) {
  auto script = two_agent_script();
  script["turns"][2]["node"] = "orchestrator";
  Recorder rec;
  auto r = run_with_script(two_agent_definition(), script, rec);
  EXPECT_EQ(r.status, "failed");
  EXPECT_NE(r.error.find("'orchestrator'"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("'writer'"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("turn 3"), std::string::npos) << r.error;
}

TEST(Loop, StepLimit) {
  json script = {{"turns", json::array()}};
  for (int i = 0; i < 10; ++i) {
    script["turns"].push_back({{"tool_calls", {{{"name", "ls"}, {"arguments", json::object()}}}}});
  }
  Recorder rec;
  RunLimits lim;
  lim.max_steps = 3;
  auto r = run_with_script(two_agent_definition(), script, rec, lim);
  EXPECT_EQ(r.status, "failed");
  EXPECT_NE(r.error.find("step limit"), std::string::npos) << r.error;
  EXPECT_EQ(rec.checkpoints.size(), 3u);
}

TEST(Loop, TokenLimit) {
  json script = json::parse(R"({"turns": [
    {"tool_calls": [{"name": "ls", "arguments": {}}], "usage": {"prompt_tokens": 600, "completion_tokens": 10}},
    {"content": "x", "usage": {"prompt_tokens": 600, "completion_tokens": 10}}]})");
  Recorder rec;
  RunLimits lim;
  lim.max_tokens = 1000;
  auto r = run_with_script(two_agent_definition(), script, rec, lim);
  EXPECT_EQ(r.status, "failed");
  EXPECT_NE(r.error.find("token limit"), std::string::npos) << r.error;
}

TEST(Loop, WallTimeLimit) {
  Recorder rec;
  RunLimits lim;
  lim.max_wall_time = std::chrono::seconds(1);
  json cp = json::parse(R"({"version": 1, "files": {}, "stack": [{"node": "orchestrator",
       "messages": [{"role": "user", "content": "hi"}]}], "step": 0, "model_calls": 0, "elapsed_ms": 5000})");
  auto r = run_with_script(two_agent_definition(), two_agent_script(), rec, lim, json::object(), cp);
  EXPECT_EQ(r.status, "failed");
  EXPECT_NE(r.error.find("wall time"), std::string::npos) << r.error;
}

TEST(Loop, BadToolCallsAreToolErrorsAndTheRunGoesOn) {
  json script = json::parse(R"({"turns": [
    {"tool_calls": [{"id": "x1", "name": "write_file", "arguments": {"file_path": "../../etc/passwd", "content": "x"}},
                    {"id": "x2", "name": "write_file", "arguments": {"content": "no path"}},
                    {"id": "x3", "name": "edit_file", "arguments": "{\"file_path\": \"/a\", \"old_str"},
                    {"id": "x4", "name": "web_search", "arguments": {}},
                    {"id": "x5", "name": "task", "arguments": {"description": "d", "subagent_type": "ghost"}}]},
    {"content": "ok"}]})");
  Recorder rec;
  auto r = run_with_script(two_agent_definition(), script, rec);
  ASSERT_EQ(r.status, "completed") << r.error;
  auto ends = rec.of("on_tool_end");
  ASSERT_EQ(ends.size(), 5u);
  for (const auto& e : ends) EXPECT_EQ(e["output"].get<std::string>().rfind("Error:", 0), 0u) << e.dump();
  EXPECT_NE(ends[2]["output"].get<std::string>().find("invalid arguments"), std::string::npos);
  EXPECT_NE(ends[3]["output"].get<std::string>().find("unknown tool 'web_search'"), std::string::npos);
  EXPECT_NE(ends[4]["output"].get<std::string>().find("ghost"), std::string::npos);
  EXPECT_TRUE(r.files.empty());
  // Update after a step without file changes carries no files (but the last one does).
  auto updates = rec.of("on_state_update");
  EXPECT_FALSE(updates[1].contains("files"));
  EXPECT_TRUE(updates.back().contains("files"));
}

TEST(Loop, TaskNotAvailableWithoutEdges) {
  json def = two_agent_definition();
  def["graph"]["entryPoint"] = "writer";
  json script = json::parse(R"({"turns": [
    {"tool_calls": [{"id": "t", "name": "task", "arguments": {"description": "d", "subagent_type": "orchestrator"}}]},
    {"content": "ok"}]})");
  Recorder rec;
  auto r = run_with_script(def, script, rec);
  ASSERT_EQ(r.status, "completed");
  EXPECT_NE(rec.of("on_tool_end")[0]["output"].get<std::string>().find("not available"), std::string::npos);
}

TEST(Loop, MissingScriptFileAndUnknownProviderFail) {
  Recorder rec;
  ModelSettings ms;
  ms.provider_override = "scripted:/nonexistent/script.json";
  auto r = run(RunRequest{"t", two_agent_definition(), json::object(), std::nullopt}, {}, ms, rec);
  EXPECT_EQ(r.status, "failed");
  EXPECT_NE(r.error.find("/nonexistent/script.json"), std::string::npos);
  json def = two_agent_definition();
  def["graph"]["nodes"][0]["data"]["llm_config"] = {{"provider", "anthropic"}};
  Recorder rec2;
  r = run(RunRequest{"t", def, json::object(), std::nullopt}, {}, ModelSettings{}, rec2);
  EXPECT_EQ(r.status, "failed");
  EXPECT_NE(r.error.find("anthropic"), std::string::npos);
}

TEST(Loop, BadResumeStateFails) {
  Recorder rec;
  auto r = run_with_script(two_agent_definition(), two_agent_script(), rec, {}, json::object(), json{{"version", 9}});
  EXPECT_EQ(r.status, "failed");
  EXPECT_NE(r.error.find("cannot resume"), std::string::npos);
}

TEST(Loop, ModelCallsAreTimedInMetrics) {
  auto& h = core::metrics::global().histogram("spec_engine_model_call_duration_seconds", "");
  const auto before = h.count({{"provider", "scripted"}, {"outcome", "ok"}});
  Recorder rec;
  auto res = run_with_script(two_agent_definition(), two_agent_script(), rec);
  ASSERT_EQ(res.status, "completed") << res.error;
  // Seven scripted turns: seven model calls observed.
  EXPECT_EQ(h.count({{"provider", "scripted"}, {"outcome", "ok"}}) - before, 7u);
}

namespace {

/// Cancels once `after_deltas` streamed deltas were seen (a DELETE arriving mid-stream).
struct CancelMidStream : Recorder {
  int after_deltas = 0;
  int deltas = 0;
  void emit(const std::string& type, const json& data) override {
    if (type == "on_llm_stream") ++deltas;
    Recorder::emit(type, data);
    if (deltas >= after_deltas) stop.request_stop();
  }
};

}  // namespace

// Regression: cancellation was only checked between model calls, so a long streaming answer
// ran to its end (and tool calls ran) after a DELETE. Now the stream is aborted at once.
TEST(Loop, CancelDuringStreamingStopsTheModelCall) {
  std::string long_content;
  for (int i = 0; i < 2000; ++i) long_content += "word" + std::to_string(i) + " ";
  json script = {{"turns", json::array({json{{"node", "orchestrator"}, {"content", long_content},
                                             {"tool_calls", json::array({json{{"id", "c1"}, {"name", "write_file"},
                                                                              {"arguments", {{"file_path", "/x.md"},
                                                                                             {"content", "x"}}}}})}},
                                        json{{"node", "orchestrator"}, {"content", "never reached"}}})}};
  CancelMidStream rec;
  rec.after_deltas = 5;
  auto r = run_with_script(two_agent_definition(), script, rec);
  EXPECT_EQ(r.status, "cancelled") << r.error;
  EXPECT_EQ(rec.deltas, 5);  // no delta after the flag flipped
  EXPECT_TRUE(rec.of("on_tool_start").empty());
  EXPECT_TRUE(rec.checkpoints.empty());  // nothing of the aborted turn is checkpointed
  EXPECT_FALSE(r.files.contains("/x.md"));
}

// Cancellation between tool calls of one turn: the remaining tool calls do not run.
TEST(Loop, CancelBetweenToolCalls) {
  json script = json::parse(R"({"turns": [
    {"node": "orchestrator", "content": "three files",
     "tool_calls": [{"id": "a", "name": "write_file", "arguments": {"file_path": "/a.md", "content": "A"}},
                    {"id": "b", "name": "write_file", "arguments": {"file_path": "/b.md", "content": "B"}},
                    {"id": "c", "name": "write_file", "arguments": {"file_path": "/c.md", "content": "C"}}]},
    {"node": "orchestrator", "content": "done"}]})");
  Recorder rec;
  rec.stop_when = [](const Recorder& r) { return !r.of("on_tool_end").empty(); };
  auto r = run_with_script(two_agent_definition(), script, rec);
  EXPECT_EQ(r.status, "cancelled") << r.error;
  EXPECT_EQ(rec.of("on_tool_start").size(), 1u);
}

namespace {

// One tool call, then a final answer. The tool is made slow with the test hook.
json slow_tool_script() {
  return json::parse(R"({"turns": [
    {"node": "orchestrator", "content": "listing",
     "tool_calls": [{"id": "slow", "name": "ls", "arguments": {}}]},
    {"node": "orchestrator", "content": "done"}]})");
}

// Limits where every tool call takes an hour unless its budget or the run stops it.
RunLimits slow_tools(std::chrono::milliseconds tool_budget, std::chrono::seconds max_wall_time = std::chrono::seconds(900)) {
  RunLimits lim;
  lim.max_wall_time = max_wall_time;
  lim.tool_budget = tool_budget;
  lim.test_tool_delay = std::chrono::hours(1);
  return lim;
}

}  // namespace

// A tool call that outlives its budget ends with a budget error the model reads; the
// run goes on.
TEST(Loop, ToolBudgetErrorGoesToTheModel) {
  Recorder rec;
  auto r = run_with_script(two_agent_definition(), slow_tool_script(), rec, slow_tools(std::chrono::milliseconds(30)));
  ASSERT_EQ(r.status, "completed") << r.error;
  auto ends = rec.of("on_tool_end");
  ASSERT_EQ(ends.size(), 1u);
  EXPECT_EQ(ends[0]["output"], "Error: ls: exceeded its time budget of 30 ms");
  EXPECT_EQ(r.result["output"], "done");
}

// Regression: a DELETE during a tool call waited for the tool to finish (forever for the
// pathological glob). The budget polls the cancel flag inside the tool.
TEST(Loop, CancelInsideAToolStopsTheRun) {
  Recorder rec;
  rec.stop_when = [](const Recorder& r) { return !r.of("on_tool_start").empty(); };
  auto r = run_with_script(two_agent_definition(), slow_tool_script(), rec, slow_tools(std::chrono::hours(1)));
  EXPECT_EQ(r.status, "cancelled") << r.error;
  EXPECT_EQ(rec.of("on_tool_start").size(), 1u);
  EXPECT_TRUE(rec.of("on_tool_end").empty());  // the tool never finished
}

// Regression: --max-run-seconds was only checked before model calls, so a run stuck in a
// tool ran on. The run's deadline caps every tool budget and fails the run.
TEST(Loop, RunDeadlineIsEnforcedInsideATool) {
  Recorder rec;
  auto r = run_with_script(two_agent_definition(), slow_tool_script(), rec,
                           slow_tools(std::chrono::hours(1), std::chrono::seconds(1)));
  EXPECT_EQ(r.status, "failed");
  EXPECT_NE(r.error.find("wall time limit reached"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("while tool 'ls' ran"), std::string::npos) << r.error;
  EXPECT_TRUE(rec.of("on_tool_end").empty());
  ASSERT_EQ(rec.of("error").size(), 1u);
  EXPECT_EQ(rec.of("error")[0]["error"], r.error);
}

// Time spent before a restart counts: a resumed run whose budget is nearly used up gets
// only the rest of it inside its tools.
TEST(Loop, ResumedRunDeadlineIncludesEarlierTime) {
  Recorder rec;
  json cp = json::parse(R"({"version": 1, "files": {}, "stack": [{"node": "orchestrator",
       "messages": [{"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "", "tool_calls": [{"id": "slow", "name": "ls", "arguments": {}}]}]}],
       "step": 1, "model_calls": 1, "elapsed_ms": 2900})");
  auto r = run_with_script(two_agent_definition(), slow_tool_script(), rec,
                           slow_tools(std::chrono::hours(1), std::chrono::seconds(3)), json::object(), cp);
  EXPECT_EQ(r.status, "failed");
  EXPECT_NE(r.error.find("while tool 'ls' ran"), std::string::npos) << r.error;
}
