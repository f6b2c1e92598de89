// core::json::scan_object / plain_string (json_scan.hpp): top-level members as raw text.
#include "core/json_scan.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

using core::json::plain_string;
using core::json::scan_object;

TEST(JsonScan, TopLevelMembersOnlyWithValuesAsWritten) {
  const std::string t =
      R"( {"event_type" : "on_llm_stream", "data": {"seq": 99, "s": "a \"}\" ]", "l": [1, {"x": "]"}]},)"
      R"( "seq":17 , "ts":"2026-12-02T00:00:00Z", "e": {}, "n": null, "f": -1.5e3} )";
  const auto m = scan_object(t);
  ASSERT_TRUE(m);
  ASSERT_EQ(m->size(), 7u);
  EXPECT_EQ((*m)[0].key, "event_type");
  EXPECT_EQ((*m)[0].value, "\"on_llm_stream\"");
  EXPECT_EQ((*m)[1].key, "data");
  EXPECT_EQ((*m)[1].value, R"({"seq": 99, "s": "a \"}\" ]", "l": [1, {"x": "]"}]})");
  EXPECT_EQ((*m)[2].key, "seq");
  EXPECT_EQ((*m)[2].value, "17");
  EXPECT_EQ((*m)[4].value, "{}");
  EXPECT_EQ((*m)[5].value, "null");
  EXPECT_EQ((*m)[6].value, "-1.5e3");
  EXPECT_TRUE(scan_object("{}") && scan_object("{}")->empty());
}

TEST(JsonScan, NotAnObjectOfThatStructureIsNullopt) {
  for (const char* bad : {"", "[]", "\"x\"", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{\"a\":1 \"b\":2}",
                          "{\"a\":\"unterminated}", "{\"a\":{\"b\":1}", "{\"a\":1} x", "{\"a\":\"\\\"}", "{a:1}"}) {
    EXPECT_FALSE(scan_object(bad)) << bad;
  }
}

TEST(JsonScan, PlainStringsOnly) {
  EXPECT_EQ(plain_string("\"end\""), "end");
  EXPECT_EQ(plain_string("\"\""), "");
  EXPECT_FALSE(plain_string("\"e\\u006ed\""));  // escapes would need decoding
  EXPECT_FALSE(plain_string("17"));
  EXPECT_FALSE(plain_string("\""));
  EXPECT_FALSE(plain_string("null"));
}

}  // namespace
