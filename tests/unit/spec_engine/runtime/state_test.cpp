// The checkpoint document (state.hpp): its text spliced around the files' text is the text
// of the whole document.
#include "spec_engine/runtime/state.hpp"

#include <gtest/gtest.h>

#include "core/json_text.hpp"
#include "spec_engine/tools/vfs.hpp"

namespace {

using namespace spec_engine::runtime;
using nlohmann::json;

TEST(CheckpointText, EqualsTheSerializedCheckpoint) {
  spec_engine::tools::FileSystem fs;
  ASSERT_EQ(fs.put("/spec.md", "# Spec\n\"quoted\" \u00e9\n"), "");
  ASSERT_EQ(fs.put("/notes/a.md", ""), "");
  Frame root{"coordinator", json::array({{{"role", "user"}, {"content", "go"}}}), json::array(), ""};
  Frame child{"writer", json::array({{{"role", "assistant"}, {"content", "done \n"}}}),
              json::array({{{"content", "t"}, {"status", "done"}}}), "call-1"};
  RunCounters c{3, 4, 120, 30, 2500};
  const json cursors = {{"override", 3}};
  for (const auto& stack : {std::vector<Frame>{root}, std::vector<Frame>{root, child}}) {
    const std::string text = to_checkpoint_text(stack, fs.to_text(), c, cursors);
    EXPECT_EQ(text, core::json::dump(to_checkpoint(stack, fs.to_json(), c, cursors)));
    // What a resume reads back from it.
    const json back = json::parse(text);
    EXPECT_EQ(checkpoint_usage(back).input_tokens, 120);
    EXPECT_EQ(back["files"], fs.to_json());
  }
  EXPECT_EQ(to_checkpoint_text({root}, "{}", c, cursors),
            core::json::dump(to_checkpoint({root}, json::object(), c, cursors)));
}

}  // namespace
