// The engine job of a refinement (docs/engine-api.md#invoke, docs/orchestrator-api.md#refinements).
#include <fstream>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "orchestrator/domain/refinements.hpp"

namespace {

using nlohmann::json;

json agent() {
  std::ifstream in(std::string(PROJECT_SOURCE_DIR) + "/config/refinement-agent.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

TEST(RefinementJob, CarriesThreadIdDefinitionPromptAndFiles) {
  orchestrator::domain::FileMap files;
  files["/THE_SPEC/plan.md"] = {{"# Plan", "1. step"}, "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"};
  const json job = orchestrator::domain::build_refinement_job("0af7651916cd43dd8448eb211c80319c", "t-1", agent(),
                                                           "Add a reviewer.", std::string("/THE_SPEC/plan.md"),
                                                           std::string("1. step"), files);
  EXPECT_EQ(job["job_id"], "t-1");
  EXPECT_EQ(job["trace_id"], "0af7651916cd43dd8448eb211c80319c");
  EXPECT_EQ(job["agent_definition"]["graph"]["entryPoint"], "orchestrator");
  const auto& msg = job["input_payload"]["messages"][0];
  EXPECT_EQ(msg["role"], "user");
  const std::string content = msg["content"];
  EXPECT_NE(content.find("Add a reviewer."), std::string::npos);
  EXPECT_NE(content.find("/THE_SPEC/plan.md"), std::string::npos);
  EXPECT_NE(content.find("1. step"), std::string::npos);
  EXPECT_EQ(job["input_payload"]["files"]["/THE_SPEC/plan.md"]["content"][0], "# Plan");
}

TEST(RefinementAgent, ExplainsTheLayoutAndUsesOnlyKnownTools) {
  const json a = agent();
  const auto& nodes = a["graph"]["nodes"];
  ASSERT_GE(nodes.size(), 2u);
  const std::string prompt = nodes[0]["data"]["system_prompt"];
  for (const char* p : {"/THE_SPEC/constitution.md", "/THE_SPEC/requirements.md", "/THE_SPEC/plan.md",
                        "/THE_CAST/", "/definition.json", "edit_file", "write_todos"}) {
    EXPECT_NE(prompt.find(p), std::string::npos) << p;
  }
  const std::set<std::string> builtin = {"write_todos", "ls", "read_file", "write_file", "edit_file", "glob", "grep", "task"};
  std::set<std::string> ids;
  for (const auto& n : nodes) ids.insert(n["id"].get<std::string>());
  for (const auto& n : nodes) {
    for (const auto& t : n["data"]["tools"]) {
      EXPECT_TRUE(builtin.count(t.get<std::string>()) || ids.count(t.get<std::string>())) << t;
    }
  }
}

}  // namespace
