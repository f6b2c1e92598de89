// Placeholders for characters cut between streamed chunks (models/stream_text.hpp).
#include <gtest/gtest.h>

#include "spec_engine/models/stream_text.hpp"

using namespace spec_engine::models;

TEST(StreamText, StrictJsonNeedsNoPlaceholders) {
  bool ph = true;
  auto j = parse_stream_chunk(R"({"a": "caf\u00e9 \ud83d\ude00 é"})", ph);
  ASSERT_TRUE(j);
  EXPECT_FALSE(ph);
  EXPECT_EQ((*j)["a"], "caf\xC3\xA9 \xF0\x9F\x98\x80 \xC3\xA9");
  EXPECT_FALSE(parse_stream_chunk("{\"a\": ", ph));
  EXPECT_FALSE(parse_stream_chunk("{\"a\": \"\xC3\"", ph));  // still not JSON (unterminated)
}

TEST(StreamText, CutCharactersRoundTripThroughPlaceholders) {
  bool p1 = false, p2 = false, p3 = false;
  auto a = parse_stream_chunk("{\"t\": \"x\xF0\x9F\"}", p1);     // first half of U+1F600 as raw bytes
  auto b = parse_stream_chunk("{\"t\": \"\x98\x80 \\ud83d\"}", p2);  // second half, then a high surrogate
  auto c = parse_stream_chunk("{\"t\": \"\\ude00y\"}", p3);          // its low surrogate
  ASSERT_TRUE(a && b && c);
  EXPECT_TRUE(p1 && p2 && p3);
  const std::string joined = (*a)["t"].get<std::string>() + (*b)["t"].get<std::string>() + (*c)["t"].get<std::string>();
  EXPECT_EQ(join_split_code_points(joined), "x\xF0\x9F\x98\x80 \xF0\x9F\x98\x80y");
  // Pieces that never complete become U+FFFD.
  EXPECT_EQ(join_split_code_points((*a)["t"].get<std::string>()), "x\xEF\xBF\xBD\xEF\xBF\xBD");
  bool p4 = false;
  auto lone = parse_stream_chunk("{\"t\": \"\\ude00\"}", p4);
  ASSERT_TRUE(lone);
  EXPECT_EQ(join_split_code_points((*lone)["t"].get<std::string>()), "\xEF\xBF\xBD");
}

TEST(StreamText, UnfinishedTailHoldsBackOnlyWhatCanStillCombine) {
  bool ph = false;
  auto text = [&](const std::string& raw) { return (*parse_stream_chunk("{\"t\": \"" + raw + "\"}", ph))["t"].get<std::string>(); };
  EXPECT_EQ(unfinished_tail("plain"), 0u);
  EXPECT_EQ(unfinished_tail(text("a\xE2\x82")), 8u);     // lead + 1 of 3 bytes: both held back
  EXPECT_EQ(unfinished_tail(text("a\xC3")), 4u);
  EXPECT_EQ(unfinished_tail(text("a\x82")), 0u);         // a stray continuation byte cannot start anything
  EXPECT_EQ(unfinished_tail(text("a\\ud83d")), 4u);      // high surrogate waits for its pair
  EXPECT_EQ(unfinished_tail(text("a\\ude00")), 0u);      // a low one does not
  EXPECT_EQ(unfinished_tail(text("\xF0\x9F\x98")), 12u);
}
