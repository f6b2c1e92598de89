#include "orchestrator/domain/templates.hpp"

#include <set>

#include <gtest/gtest.h>

#include "orchestrator/domain/error.hpp"
#include "orchestrator/domain/workflows.hpp"

using namespace orchestrator::domain;

namespace {
const std::set<std::string> kBuiltins{"write_todos", "ls", "read_file", "write_file", "edit_file", "glob", "grep", "task"};
}

TEST(Templates, ShippedTemplatesAreCompleteAndRunnable) {
  const TemplateLibrary lib(std::filesystem::path(PROJECT_SOURCE_DIR) / "config/templates");
  for (const std::string name : {"single-agent", "multi-agent"}) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(lib.contains(name));
    const auto& files = lib.files(name);
    for (const char* p : {"/THE_SPEC/constitution.md", "/THE_SPEC/requirements.md", "/THE_SPEC/plan.md", "/definition.json"})
      EXPECT_TRUE(files.count(p)) << p;
    std::string text;
    for (const auto& l : files.at("/definition.json").content) text += l + "\n";
    const auto def = nlohmann::json::parse(text);
    EXPECT_NO_THROW(validate_definition(def));
    std::set<std::string> ids, targets;
    for (const auto& n : def["graph"]["nodes"]) ids.insert(n["id"]);
    for (const auto& e : def["graph"]["edges"]) {
      EXPECT_EQ(e["type"], "delegation");
      targets.insert(e["target"]);
    }
    for (const auto& n : def["graph"]["nodes"]) {
      EXPECT_EQ(n["type"], "AgentNode");
      const auto& d = n["data"];
      EXPECT_TRUE(d["system_prompt"].is_string());
      for (const auto& k : {"provider", "model", "temperature", "max_tokens"}) EXPECT_TRUE(d["llm_config"].contains(k)) << k;
      for (const auto& t : d["tools"]) EXPECT_TRUE(kBuiltins.count(t) || targets.count(t)) << t;
      // Every agent has a cast file.
      EXPECT_TRUE(files.count("/THE_CAST/" + n["id"].get<std::string>() + ".md")) << n["id"];
    }
  }
  EXPECT_THROW(lib.files("nope"), InvalidError);
}

TEST(Templates, ValidateDefinitionNamesProblems) {
  using nlohmann::json;
  EXPECT_THROW(validate_definition(json::object()), InvalidError);
  EXPECT_THROW(validate_definition({{"graph", {{"nodes", json::array()}}}}), InvalidError);
  EXPECT_THROW(validate_definition({{"graph", {{"nodes", {{{"id", "a"}}}}, {"entryPoint", "b"}}}}), InvalidError);
  const json node = {{"id", "a"},
                     {"type", "AgentNode"},
                     {"data", {{"name", "A"}, {"system_prompt", "You help."}, {"tools", {"read_file"}}}}};
  EXPECT_NO_THROW(validate_definition({{"graph", {{"nodes", {node}}, {"edges", json::array()}, {"entryPoint", "a"}}}}));
  // The engine's rules apply: a duplicate node id (the engine answers 400) is refused here too.
  try {
    validate_definition({{"graph", {{"nodes", {node, node}}, {"edges", json::array()}, {"entryPoint", "a"}}}});
    FAIL() << "duplicate node id accepted";
  } catch (const InvalidError& e) {
    EXPECT_NE(std::string(e.what()).find("duplicate"), std::string::npos) << e.what();
    EXPECT_NE(e.field().find("/definition.json"), std::string::npos) << e.field();
  }
}
