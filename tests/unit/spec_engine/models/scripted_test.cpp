// Script files of the scripted provider (models/scripted.hpp): one script, or one per entry agent.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/async.hpp"
#include "core/util.hpp"
#include "spec_engine/models/scripted.hpp"

using namespace spec_engine::models;
using nlohmann::json;

namespace {

struct TempDir {
  std::filesystem::path path = std::filesystem::temp_directory_path() / ("scripted-" + core::random_hex(6));
  TempDir() { std::filesystem::create_directories(path); }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string write(const std::string& name, const json& j) const {
    std::ofstream(path / name) << j.dump();
    return (path / name).string();
  }
};

/// The content of the model's next turn for `node` (complete() is a coroutine: run on a runtime).
std::string first_content(ScriptedModel& m, const std::string& node) {
  static core::async::Runtime rt{core::async::RuntimeOptions{1, 1, "scripted-test"}};
  rt.start();
  ModelRequest req;
  req.node = node;
  const DeltaSink sink = [](std::string_view) {};
  return rt.run_sync(m.complete(req, sink, {})).content;
}

}  // namespace

TEST(ScriptedFile, OneScriptServesAnyEntryAgent) {
  TempDir d;
  const auto path = d.write("one.json", {{"turns", {{{"content", "hello"}}}}});
  auto m = ScriptedModel::from_file(path, "Anything");
  EXPECT_EQ(first_content(*m, "Anything"), "hello");
}

TEST(ScriptedFile, ASetPicksTheEntryAgentsScriptInlineOrFromAFile) {
  TempDir d;
  d.write("coordinator.json", {{"turns", {{{"node", "Coordinator"}, {"content", "from the file"}}}}});
  const auto set = d.write("set.json", {{"scripts",
                                         {{"orchestrator", {{"turns", {{{"node", "orchestrator"}, {"content", "inline"}}}}}},
                                          {"Coordinator", "coordinator.json"}}}});
  auto a = ScriptedModel::from_file(set, "orchestrator");
  EXPECT_EQ(first_content(*a, "orchestrator"), "inline");
  auto b = ScriptedModel::from_file(set, "Coordinator");
  EXPECT_EQ(first_content(*b, "Coordinator"), "from the file");
  EXPECT_EQ(b->size(), 1u);
  try {
    ScriptedModel::from_file(set, "Writer");
    ADD_FAILURE() << "no script for the entry agent must fail";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("no script for entry agent 'Writer' (it has scripts for: Coordinator, orchestrator)"),
              std::string::npos)
        << e.what();
  }
  // The start-up check (no entry agent yet) loads every script of the set.
  EXPECT_EQ(ScriptedModel::from_file(set, "")->size(), 1u);
  const auto broken = d.write("broken.json", {{"scripts", {{"A", "coordinator.json"}, {"B", "missing.json"}}}});
  EXPECT_THROW(ScriptedModel::from_file(broken, ""), ModelError);
  const auto bad = d.write("bad.json", {{"scripts", {"not", "an", "object"}}});
  EXPECT_THROW(ScriptedModel::from_file(bad, "x"), ModelError);
}

TEST(ScriptedFile, TheShippedDemoSetCoversTheRefinementAndBothTemplates) {
  const std::string set = std::string(PROJECT_SOURCE_DIR) + "/config/demo/demo-script.json";
  for (const char* entry : {"orchestrator", "Coordinator", "ResearchAssistant"}) {
    auto m = ScriptedModel::from_file(set, entry);
    EXPECT_GT(m->size(), 2u) << entry;
  }
}
