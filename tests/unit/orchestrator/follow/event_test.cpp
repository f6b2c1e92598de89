// Engine event parsing (follow/event.hpp): the fields the tracker reads, parsed once, and the
// run statuses the follower and the tracker treat as final.
#include "orchestrator/follow/event.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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
  ASSERT_TRUE(e->has_files);
  const auto files = orchestrator::follow::files_of(*e);
  ASSERT_TRUE(files);
  EXPECT_EQ((*files)["/a.md"]["content"], nlohmann::json::array({"x"}));
}

// Whether an update carries files is scanned, not parsed, and agrees with the full parse.
TEST(FollowEvent, StateUpdatesWithoutAFilesObjectHaveNoFiles) {
  for (const std::string t : {R"({"event_type":"on_state_update","seq":2,"data":{"todos":[]}})",
                              R"({"event_type":"on_state_update","seq":2,"data":{"files":null}})",
                              R"({"event_type":"on_state_update","seq":2,"data":{"files":["/a.md"]}})",
                              R"({"event_type":"on_state_update","seq":2,"data":"files"})",
                              R"({"event_type":"on_state_update","seq":2})",
                              R"({"event_type":"on_llm_stream","seq":2,"data":{"files":{"/a.md":{}}}})"}) {
    const auto e = parse_event(t, 1);
    EXPECT_EQ(e->seq, 2) << t;
    EXPECT_FALSE(e->has_files) << t;
    EXPECT_FALSE(orchestrator::follow::files_of(*e)) << t;
  }
  const auto nested = parse_event(R"({"seq":3,"data":{"todos":[{"files":1}],"files":{"/b.md":{"content":["y"]}}},)"
                                  R"("event_type":"on_state_update"})",
                                  1);
  ASSERT_TRUE(nested->has_files);
  EXPECT_TRUE(orchestrator::follow::files_of(*nested)->contains("/b.md"));
  // The scan does not validate scalars: an update whose data holds a broken one still says it
  // has files, and files_of then has none to give, so the tracker asks the engine's state for
  // them (TrackerTest.NoFilesInStreamFallsBackToStateGeneratedFiles).
  const auto broken = parse_event(R"({"event_type":"on_state_update","seq":4,"data":{"n":tru,"files":{}}})", 1);
  EXPECT_EQ(broken->seq, 4);
  EXPECT_TRUE(broken->has_files);
  EXPECT_FALSE(orchestrator::follow::files_of(*broken));
}

TEST(FollowEvent, UnreadableTextIsAnUntypedEventAtItsPosition) {
  const auto e = parse_event("not json", 9);
  EXPECT_EQ(e->seq, 9);
  EXPECT_EQ(e->type, "");
  EXPECT_EQ(e->text, "not json");
  EXPECT_FALSE(e->has_files);
  EXPECT_FALSE(e->is_end());
}

TEST(FollowEvent, ErrorTextPrefersAReadableSentence) {
  EXPECT_EQ(error_text(nlohmann::json("plain")).value_or(""), "plain");
  EXPECT_EQ(error_text(nlohmann::json{{"detail", "why"}}).value_or(""), "why");
  EXPECT_EQ(error_text(nlohmann::json{{"code", 3}}).value_or(""), R"({"code":3})");
  EXPECT_FALSE(error_text(nlohmann::json()).has_value());
  EXPECT_FALSE(error_text(nlohmann::json("")).has_value());
}

// Events whose data nobody reads are scanned, not parsed: the result is what a full parse gives
// (seq an integer or the position, event_type a string or ""), for every shape of seq and type.
TEST(FollowEvent, ScannedEventsMatchTheFullParse) {
  const std::vector<std::string> texts = {
      R"({"event_type": "on_llm_stream", "data": {"delta": "a \"}\" b", "seq": 99}, "seq": 7, "ts": "t"})",
      R"({"seq":8,"event_type":"on_tool_start","data":{"tool":"write_file","args":[1,{"x":"]"}]}})",
      R"({"event_type": "on_llm_stream", "data": {}, "seq": 1.5})",
      R"({"event_type": "on_llm_stream", "data": {}})",
      R"({"event_type": "on_llm_stream", "data": {}, "seq": 99999999999999999999999})",
      R"({"event_type": "on_llm_stre\u0061m", "data": {}, "seq": 3})",
      R"({"event_type": null, "data": {}, "seq": 4})",
      R"({"event_type": 5, "data": {}, "seq": "5"})",
      R"({"data": {}, "seq": -2})",
      R"([1, 2])",
      R"({"event_type": "end", "data": {"status": "completed"}, "seq": 9})",
  };
  for (const auto& t : texts) {
    const auto ev = parse_event(t, 42);
    const auto doc = nlohmann::json::parse(t);
    long long seq = 42;
    std::string type;
    if (doc.is_object()) {
      if (doc.contains("seq") && doc["seq"].is_number_integer()) seq = doc["seq"].get<long long>();
      if (doc.contains("event_type") && doc["event_type"].is_string()) type = doc["event_type"].get<std::string>();
    }
    EXPECT_EQ(ev->seq, seq) << t;
    EXPECT_EQ(ev->type, type) << t;
    EXPECT_EQ(ev->text, t) << t;
  }
}
