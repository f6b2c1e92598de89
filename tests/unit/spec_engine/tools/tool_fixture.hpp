#pragma once
// A virtual file system with the built-in tools over it, for the tool tests.
#include <gtest/gtest.h>

#include "spec_engine/tools/builtin.hpp"
#include "spec_engine/tools/vfs.hpp"

namespace spec_engine::tools::test_support {

/// Fixture: `fs` and `todos` as one agent's tool state; run() calls one built-in tool.
struct Tools : ::testing::Test {
  FileSystem fs;
  nlohmann::json todos = nlohmann::json::array();
  ToolState st{fs, todos};
  ToolResult run(const std::string& name, const nlohmann::json& args) { return run_builtin_tool(name, args, st); }
};

}  // namespace spec_engine::tools::test_support
