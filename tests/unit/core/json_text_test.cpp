// core::json::dump / dump_with_member (json_text.hpp): a member spliced in as text gives
// exactly the text of the document with that member.
#include "core/json_text.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace {

using core::json::dump;
using core::json::dump_with_member;
using nlohmann::json;

TEST(JsonText, DumpIsCompactAndReplacesInvalidUtf8) {
  EXPECT_EQ(dump(json{{"b", 1}, {"a", {1, "x"}}}), R"({"a":[1,"x"],"b":1})");
  EXPECT_EQ(dump(json("bad \xff byte")), "\"bad \xEF\xBF\xBD byte\"");
}

TEST(JsonText, SplicedMemberEqualsTheWholeDocumentAtEveryPosition) {
  const json value = {{"/a.md", {{"content", {"# A", "line \"quoted\"", ""}}}}, {"/b\u00e9.md", {{"content", {""}}}}};
  const json base = {{"elapsed_ms", 12}, {"model_calls", 3}, {"stack", {{{"node", "n"}, {"messages", json::array()}}}}};
  // First, middle and last in sorted order, a key that needs escaping, and an empty object.
  for (const std::string key : {"aaa", "files", "zzz", "quote\"d\nkey", "Files", ""}) {
    json whole = base;
    whole[key] = value;
    EXPECT_EQ(dump_with_member(base, key, dump(value)), dump(whole)) << key;
  }
  EXPECT_EQ(dump_with_member(json::object(), "files", "{}"), R"({"files":{}})");
  EXPECT_EQ(dump_with_member(json{{"a", 1}}, "b", "null"), R"({"a":1,"b":null})");
}

TEST(JsonText, RefusesWhatIsNotAnObjectOrAlreadyHasTheMember) {
  EXPECT_THROW(dump_with_member(json::array(), "files", "{}"), std::invalid_argument);
  EXPECT_THROW(dump_with_member(json{{"files", 1}}, "files", "{}"), std::invalid_argument);
}

}  // namespace
