// Engine event parsing (follow/event.hpp): the fields the tracker reads, parsed once, and the
// run statuses the follower and the tracker treat as final.
#include "orchestrator/follow/event.hpp"

#include <gtest/gtest.h>

using orchestrator::follow::error_text;
using orchestrator::follow::is_terminal_status;
using orchestrator::follow::parse_event;

TEST(FollowEvent, TerminalStatusesAreTheEnginesFinalOnes) {
  EXPECT_TRUE(is_terminal_status("completed"));
  EXPECT_TRUE(is_terminal_status("failed"));
  EXPECT_TRUE(is_terminal_status("cancelled"));
  EXPECT_FALSE(is_terminal_status("running"));
  EXPECT_FALSE(is_terminal_status("pending"));
  EXPECT_FALSE(is_terminal_status(""));
  EXPECT_FALSE(is_terminal_status("Completed"));  // the engine's statuses are lower case
}

TEST(FollowEvent, EndCarriesStatusAndError) {
  const auto e = parse_event(R"({"event_type":"end","seq":7,"data":{"status":"failed","error":{"message":"boom"}}})", 3);
  EXPECT_EQ(e->seq, 7);  // the event's own seq beats the position
  EXPECT_TRUE(e->is_end());
  EXPECT_EQ(e->end_status, "failed");
  ASSERT_TRUE(e->error);
  EXPECT_EQ(*e->error, "boom");
}

TEST(FollowEvent, StateUpdateKeepsFilesAndTheOriginalText) {
  const std::string text = R"({"event_type":"on_state_update","data":{"files":{"/a.md":{"content":["x"]}}}})";
  const auto e = parse_event(text, 4);
  EXPECT_EQ(e->seq, 4);  // no seq: its position in the stream
  EXPECT_EQ(e->text, text);
  ASSERT_TRUE(e->files);
  EXPECT_TRUE(e->files->contains("/a.md"));
}

TEST(FollowEvent, UnreadableTextIsAnUntypedEventAtItsPosition) {
  const auto e = parse_event("not json", 9);
  EXPECT_EQ(e->seq, 9);
  EXPECT_EQ(e->type, "");
  EXPECT_EQ(e->text, "not json");
  EXPECT_FALSE(e->files);
  EXPECT_FALSE(e->is_end());
}

TEST(FollowEvent, ErrorTextPrefersAReadableSentence) {
  EXPECT_EQ(error_text(nlohmann::json("plain")).value_or(""), "plain");
  EXPECT_EQ(error_text(nlohmann::json{{"detail", "why"}}).value_or(""), "why");
  EXPECT_EQ(error_text(nlohmann::json{{"code", 3}}).value_or(""), R"({"code":3})");
  EXPECT_FALSE(error_text(nlohmann::json()).has_value());
  EXPECT_FALSE(error_text(nlohmann::json("")).has_value());
}
