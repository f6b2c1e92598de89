// The agent loop with the scripted model (run.hpp execute; docs/event-path-and-replicas.md "A run").
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <unistd.h>

#include "core/metrics.hpp"
#include "spec_engine/runtime/run.hpp"
#include "../test_host.hpp"
#include "../../core/span_sink.hpp"

using namespace spec_engine::runtime;
using nlohmann::json;
using core::testing::SpanSink;
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
  void emit(const std::string& type, json data) override {
    events.emplace_back(type, data);
    maybe_stop();
  }
  core::async::Task<void> checkpoint(json state) override {
    checkpoints.push_back(std::move(state));
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
  void emit(const std::string& type, json data) override {
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

namespace {

/// Attribute `key` of an OTLP/JSON span as a plain JSON value (null when absent).
json attr(const json& span, const std::string& key) {
  for (const auto& kv : span["attributes"]) {
    if (kv["key"] != key) continue;
    const json& v = kv["value"];
    if (v.contains("intValue")) return std::stoll(v["intValue"].get<std::string>());
    if (v.contains("stringValue")) return v["stringValue"];
    if (v.contains("arrayValue")) {
      json out = json::array();
      for (const auto& e : v["arrayValue"]["values"]) out.push_back(e.begin().value());
      return out;
    }
    return v.begin().value();
  }
  return nullptr;
}

std::vector<std::string> names(const std::vector<json>& spans) {
  std::vector<std::string> out;
  for (const auto& s : spans) out.push_back(s["name"]);
  return out;
}

RunResult run_traced(const json& definition, const json& script, const core::tracing::TraceContext& run_span,
                     Recorder& rec) {
  std::string path = write_temp(script);
  ModelSettings ms;
  ms.provider_override = "scripted:" + path;
  RunRequest req{"t1", definition, json{{"messages", "Write a hello spec"}}, std::nullopt, run_span};
  auto r = run(req, RunLimits{}, ms, rec);
  std::remove(path.c_str());
  return r;
}

}  // namespace

TEST(Loop, TracesAgentsModelCallsAndToolCallsAsGenAiSpans) {
  SpanSink sink;
  Recorder rec;
  const auto run_span = core::tracing::new_root();
  auto r = run_traced(two_agent_definition(), two_agent_script(), run_span, rec);
  ASSERT_EQ(r.status, "completed") << r.error;
  for (const auto& s : sink.spans()) EXPECT_EQ(s["traceId"], run_span.trace_id) << s.dump();

  const auto roots = sink.children(run_span.span_id);
  ASSERT_EQ(names(roots), std::vector<std::string>{"invoke_agent Orchestrator"});
  const json& lead = roots[0];
  EXPECT_EQ(attr(lead, "gen_ai.agent.id"), "orchestrator");
  EXPECT_EQ(attr(lead, "gen_ai.provider.name"), "scripted");
  EXPECT_EQ(attr(lead, "gen_ai.request.model"), "scripted");
  EXPECT_EQ(attr(lead, "gen_ai.conversation.id"), "t1");
  // The orchestrator's own operations, in order: a chat per turn, then the tool calls it asked for.
  EXPECT_EQ(names(sink.children(lead["spanId"])),
            (std::vector<std::string>{"chat scripted", "execute_tool write_todos", "execute_tool write_file",
                                      "chat scripted", "execute_tool task", "chat scripted",
                                      "execute_tool edit_file", "chat scripted"}));
  const auto task = sink.children(lead["spanId"], "execute_tool task");
  ASSERT_EQ(task.size(), 1u);
  EXPECT_EQ(attr(task[0], "gen_ai.tool.call.id"), "c3");
  const auto sub = sink.children(task[0]["spanId"]);
  ASSERT_EQ(names(sub), std::vector<std::string>{"invoke_agent Writer"});
  EXPECT_EQ(names(sink.children(sub[0]["spanId"])),
            (std::vector<std::string>{"chat scripted", "execute_tool read_file", "chat scripted",
                                      "execute_tool edit_file", "chat scripted"}));

  // Tokens: every chat reports its usage; agents sum theirs (sub-agents included); the result too.
  std::int64_t in = 0, out = 0, writer_in = 0;
  for (const auto& s : sink.spans()) {
    if (s["name"] != "chat scripted") continue;
    EXPECT_GT(attr(s, "gen_ai.usage.input_tokens").get<std::int64_t>(), 0) << s.dump();
    EXPECT_GT(attr(s, "gen_ai.usage.output_tokens").get<std::int64_t>(), 0) << s.dump();
    in += attr(s, "gen_ai.usage.input_tokens").get<std::int64_t>();
    out += attr(s, "gen_ai.usage.output_tokens").get<std::int64_t>();
    if (attr(s, "gen_ai.agent.name") == "Writer") writer_in += attr(s, "gen_ai.usage.input_tokens").get<std::int64_t>();
  }
  EXPECT_EQ(r.usage.input_tokens, in);
  EXPECT_EQ(r.usage.output_tokens, out);
  EXPECT_EQ(attr(lead, "gen_ai.usage.input_tokens"), in);
  EXPECT_EQ(attr(lead, "gen_ai.usage.output_tokens"), out);
  EXPECT_EQ(attr(sub[0], "gen_ai.usage.input_tokens"), writer_in);
  EXPECT_EQ(rec.checkpoints.back()["tokens"]["prompt"], in);
  const auto chats = sink.children(lead["spanId"], "chat");
  EXPECT_EQ(attr(chats.front(), "gen_ai.response.finish_reasons"), json::array({"tool_calls"}));
  EXPECT_EQ(attr(chats.back(), "gen_ai.response.finish_reasons"), json::array({"stop"}));
  for (const auto& s : sink.spans()) EXPECT_FALSE(s.contains("status")) << s.dump();
}

TEST(Loop, FailedToolCallsAndModelFailuresAreErrorSpans) {
  SpanSink sink;
  Recorder rec;
  const auto run_span = core::tracing::new_root();
  // A missing file, an unknown tool, arguments that are not JSON; then the script runs out.
  auto r = run_traced(two_agent_definition(), json::parse(R"({"turns": [
    {"node": "orchestrator", "tool_calls": [{"id": "r", "name": "read_file", "arguments": {"file_path": "/none.md"}},
                                            {"id": "u", "name": "fly", "arguments": {}},
                                            {"id": "j", "name": "ls", "arguments": "{not json"}]}]})"),
                      run_span, rec);
  ASSERT_EQ(r.status, "failed");
  const auto lead = sink.children(run_span.span_id, "invoke_agent");
  ASSERT_EQ(lead.size(), 1u);
  const auto tools = sink.children(lead[0]["spanId"], "execute_tool");
  ASSERT_EQ(names(tools), (std::vector<std::string>{"execute_tool read_file", "execute_tool fly", "execute_tool ls"}));
  EXPECT_EQ(attr(tools[0], "error.type"), "tool_error");
  EXPECT_EQ(attr(tools[1], "error.type"), "unknown_tool");
  EXPECT_EQ(attr(tools[2], "error.type"), "invalid_arguments");
  for (const auto& t : tools) {
    EXPECT_EQ(t["status"]["code"], 2) << t.dump();
    EXPECT_EQ(t["status"]["message"].get<std::string>().rfind("Error:", 0), 0u) << t.dump();
  }
  const auto chats = sink.children(lead[0]["spanId"], "chat");
  ASSERT_EQ(chats.size(), 2u);
  EXPECT_FALSE(chats[0].contains("status"));
  EXPECT_EQ(attr(chats[1], "error.type"), "model_error");  // the script ran out
  EXPECT_EQ(attr(lead[0], "error.type"), "model_error");
  EXPECT_NE(lead[0]["status"]["message"].get<std::string>().find("script exhausted"), std::string::npos);
  EXPECT_GT(r.usage.output_tokens, 0);  // the first call's tokens count, also for a failed run
}
