// validate_definition / validate_input_payload (run.hpp).
#include <gtest/gtest.h>

#include "spec_engine/runtime/run.hpp"

using namespace spec_engine::runtime;
using nlohmann::json;

namespace {

json good() {
  return json::parse(R"({
    "graph": {
      "nodes": [
        {"id": "orchestrator", "type": "AgentNode",
         "data": {"name": "Orchestrator", "system_prompt": "lead", "tools": ["write_file", "task", "writer"],
                  "llm_config": {"provider": "openai", "model": "gpt-4.1-mini"}}},
        {"id": "writer", "type": "AgentNode",
         "data": {"name": "Writer", "system_prompt": "write", "tools": ["read_file", "edit_file"]}}
      ],
      "edges": [{"source": "orchestrator", "target": "writer", "type": "delegation"}],
      "entryPoint": "orchestrator"
    }})");
}

bool has(const std::vector<FieldError>& errs, const std::string& field, const std::string& needle = "") {
  for (const auto& e : errs) {
    if (e.field == field && e.message.find(needle) != std::string::npos) return true;
  }
  return false;
}

std::string dump(const std::vector<FieldError>& errs) {
  std::string s;
  for (const auto& e : errs) s += e.field + ": " + e.message + "\n";
  return s;
}

}  // namespace

TEST(Validate, GoodDefinition) { EXPECT_TRUE(validate_definition(good()).empty()) << dump(validate_definition(good())); }

TEST(Validate, NotAnObjectOrNoGraph) {
  EXPECT_TRUE(has(validate_definition(json::array()), "agent_definition"));
  EXPECT_TRUE(has(validate_definition(json::object()), "agent_definition.graph"));
  EXPECT_TRUE(has(validate_definition(json::object(), "x"), "x.graph"));
}

TEST(Validate, EmptyNodes) {
  auto d = good();
  d["graph"]["nodes"] = json::array();
  auto errs = validate_definition(d);
  EXPECT_TRUE(has(errs, "agent_definition.graph.nodes", "non-empty")) << dump(errs);
}

TEST(Validate, NodeFields) {
  auto d = good();
  d["graph"]["nodes"][1]["id"] = "orchestrator";
  d["graph"]["nodes"][0]["type"] = "ToolNode";
  d["graph"]["nodes"][0]["data"].erase("name");
  d["graph"]["nodes"][0]["data"]["system_prompt"] = 5;
  auto errs = validate_definition(d);
  EXPECT_TRUE(has(errs, "agent_definition.graph.nodes[1].id", "duplicate")) << dump(errs);
  EXPECT_TRUE(has(errs, "agent_definition.graph.nodes[0].type")) << dump(errs);
  EXPECT_TRUE(has(errs, "agent_definition.graph.nodes[0].data.name")) << dump(errs);
  EXPECT_TRUE(has(errs, "agent_definition.graph.nodes[0].data.system_prompt")) << dump(errs);
  d = good();
  d["graph"]["nodes"][1].erase("data");
  EXPECT_TRUE(has(validate_definition(d), "agent_definition.graph.nodes[1].data"));
  d = good();
  d["graph"]["nodes"][1]["id"] = "";
  EXPECT_TRUE(has(validate_definition(d), "agent_definition.graph.nodes[1].id"));
}

TEST(Validate, UnknownToolNamesExactField) {
  auto d = good();
  d["graph"]["nodes"][1]["data"]["tools"] = {"read_file", "web_search"};
  auto errs = validate_definition(d);
  ASSERT_EQ(errs.size(), 1u) << dump(errs);
  EXPECT_EQ(errs[0].field, "agent_definition.graph.nodes[1].data.tools[1]");
  EXPECT_NE(errs[0].message.find("web_search"), std::string::npos);
}

TEST(Validate, TaskNeedsOutgoingEdge) {
  auto d = good();
  d["graph"]["nodes"][1]["data"]["tools"] = {"task"};
  auto errs = validate_definition(d);
  EXPECT_TRUE(has(errs, "agent_definition.graph.nodes[1].data.tools[0]", "task")) << dump(errs);
}

TEST(Validate, NodeIdThatIsNotMyTarget) {
  auto d = good();
  d["graph"]["nodes"][1]["data"]["tools"] = {"orchestrator"};
  auto errs = validate_definition(d);
  EXPECT_TRUE(has(errs, "agent_definition.graph.nodes[1].data.tools[0]", "not a delegation target")) << dump(errs);
}

TEST(Validate, EdgesAndEntryPoint) {
  auto d = good();
  d["graph"]["edges"].push_back({{"source", "writer"}, {"target", "ghost"}, {"type", "delegation"}});
  d["graph"]["edges"].push_back({{"source", "writer"}, {"target", "orchestrator"}, {"type", "flow"}});
  d["graph"]["edges"].push_back({{"source", "writer"}, {"target", "writer"}});
  d["graph"]["entryPoint"] = "nobody";
  auto errs = validate_definition(d);
  EXPECT_TRUE(has(errs, "agent_definition.graph.edges[1].target", "ghost")) << dump(errs);
  EXPECT_TRUE(has(errs, "agent_definition.graph.edges[2].type")) << dump(errs);
  EXPECT_TRUE(has(errs, "agent_definition.graph.edges[3]", "itself")) << dump(errs);
  EXPECT_TRUE(has(errs, "agent_definition.graph.entryPoint", "nobody")) << dump(errs);
  d = good();
  d["graph"].erase("entryPoint");
  EXPECT_TRUE(has(validate_definition(d), "agent_definition.graph.entryPoint"));
  d = good();
  d["graph"]["edges"] = "x";
  EXPECT_TRUE(has(validate_definition(d), "agent_definition.graph.edges"));
}

/// A definition of `n` agents a0..a{n-1}, each delegating to the next (plus `extra` edges).
json chain(int n, const std::vector<std::pair<int, int>>& extra = {}) {
  json d = {{"graph", {{"nodes", json::array()}, {"edges", json::array()}, {"entryPoint", "a0"}}}};
  for (int i = 0; i < n; ++i) {
    d["graph"]["nodes"].push_back({{"id", "a" + std::to_string(i)},
                                   {"type", "AgentNode"},
                                   {"data", {{"name", "A" + std::to_string(i)}, {"system_prompt", "p"}}}});
    if (i + 1 < n)
      d["graph"]["edges"].push_back(
          {{"source", "a" + std::to_string(i)}, {"target", "a" + std::to_string(i + 1)}, {"type", "delegation"}});
  }
  for (const auto& [from, to] : extra)
    d["graph"]["edges"].push_back(
        {{"source", "a" + std::to_string(from)}, {"target", "a" + std::to_string(to)}, {"type", "delegation"}});
  return d;
}

// A run allows kMaxDelegationDepth nested task calls: a longer chain could never reach its last
// agents, and a cycle hands work back to an agent that waits for it. Both are refused up front.
TEST(Validate, DelegationsFormNoCycleAndNoChainDeeperThanARunAllows) {
  EXPECT_TRUE(validate_definition(chain(kMaxDelegationDepth + 1)).empty())
      << dump(validate_definition(chain(kMaxDelegationDepth + 1)));
  auto errs = validate_definition(chain(kMaxDelegationDepth + 2));
  EXPECT_TRUE(has(errs, "agent_definition.graph.edges", "a0 -> a1 -> a2 -> a3 -> a4 -> a5 is 5 levels deep"))
      << dump(errs);
  errs = validate_definition(chain(3, {{2, 1}}));
  EXPECT_TRUE(has(errs, "agent_definition.graph.edges", "cycle (a1 -> a2 -> a1)")) << dump(errs);
  // Two paths to one agent are no cycle.
  EXPECT_TRUE(validate_definition(chain(3, {{0, 2}})).empty()) << dump(validate_definition(chain(3, {{0, 2}})));
}

TEST(ValidateInput, Payload) {
  EXPECT_TRUE(validate_input_payload({{"messages", "hi"}}).empty());
  EXPECT_TRUE(validate_input_payload({{"messages", {{{"role", "user"}, {"content", "hi"}}}},
                                      {"files", {{"/a.md", {{"content", {"x"}}}}, {"/b.md", {{"content", "y"}}}}}})
                  .empty());
  auto errs = validate_input_payload({{"messages", 5}});
  EXPECT_TRUE(has(errs, "input_payload.messages"));
  errs = validate_input_payload({{"messages", {{{"role", "user"}}}}});
  EXPECT_TRUE(has(errs, "input_payload.messages[0].content"));
  errs = validate_input_payload({{"files", {{"/../x", {{"content", "a"}}}}}});
  EXPECT_TRUE(has(errs, "input_payload.files[\"/../x\"]")) << dump(errs);
  EXPECT_TRUE(has(validate_input_payload(json::array()), "input_payload"));
}

// A job's paths follow the orchestrator's rule (docs/files.md): canonical or refused, never
// normalised, so "a.md" and "/a.md" cannot both be sent and silently become one file.
TEST(ValidateInput, NonCanonicalPathsAreRefusedNotMerged) {
  for (const char* path : {"a.md", "//a.md", "/./b.md", "/c/", "/d//e.md", "/"}) {
    const auto errs = validate_input_payload({{"files", {{path, {{"content", "x"}}}}}});
    EXPECT_TRUE(has(errs, std::string("input_payload.files[\"") + path + "\"]")) << path << ": " << dump(errs);
  }
  const auto errs = validate_input_payload({{"files", {{"a.md", {{"content", "1"}}}, {"/a.md", {{"content", "2"}}}}}});
  EXPECT_TRUE(has(errs, "input_payload.files[\"a.md\"]")) << dump(errs);
  EXPECT_EQ(errs.size(), 1u) << dump(errs);
}
