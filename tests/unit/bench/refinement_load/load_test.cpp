// The load generator's stream accounting: the top-level member scan it uses instead of a full
// JSON parse, and the seq bookkeeping that decides "lost" and "duplicated" (the numbers the
// benchmark and the make-test correctness run must report as 0).
#include "load.hpp"

#include <gtest/gtest.h>

#include "core/util.hpp"

using namespace refinement_load;
using namespace std::chrono_literals;

namespace {

std::string event(long seq, const std::string& type = "on_llm_stream", const std::string& data = R"({"delta":"x"})",
                  const std::string& ts = "2026-01-02T03:04:05.000000Z") {
  return R"({"data":)" + data + R"(,"event_type":")" + type + R"(","seq":)" + std::to_string(seq) +
         R"(,"thread_id":"t","ts":")" + ts + R"("})";
}

}  // namespace

TEST(ScanEvent, FindsTopLevelMembersOnly) {
  // Nested members with the same names, braces and quotes inside strings, any key order.
  const std::string text =
      R"({ "data": {"seq": 99, "ts": "nested", "text": "a \"}\" {[ brace", "list": [{"seq": 5}, "]"]},)"
      R"( "ts" : "2026-01-02T03:04:05.5Z", "event_type":"end", "seq" : 17 })";
  EventFields f;
  ASSERT_TRUE(scan_event(text, f));
  EXPECT_EQ(f.seq, "17");
  EXPECT_EQ(f.ts, "\"2026-01-02T03:04:05.5Z\"");
  EXPECT_EQ(f.event_type, "\"end\"");
  ASSERT_TRUE(scan_event(R"({"event_type":"x"})", f));
  EXPECT_TRUE(f.seq.empty());
  EXPECT_FALSE(scan_event("[1,2]", f));
  EXPECT_FALSE(scan_event(R"({"seq": 1, "data": {"open": )", f));  // truncated
  EXPECT_FALSE(scan_event("not json", f));
}

TEST(CountFrame, GapsAndDuplicatesAreCountedBySeq) {
  StreamResult r;
  long next = 1;
  const auto now = std::chrono::system_clock::now();
  for (long seq : {1, 2, 3, 3, 2, 6, 7}) count_frame(r, next, event(seq), now);
  EXPECT_EQ(r.events, 7);
  EXPECT_EQ(r.duplicated, 2);  // the second 3 and the late 2
  EXPECT_EQ(r.lost, 2);        // 4 and 5 never came
  EXPECT_EQ(next, 8);
  EXPECT_FALSE(r.ended);
  count_frame(r, next, R"({"error":"not an event"})", now);
  EXPECT_EQ(r.without_seq, 1);
  count_frame(r, next, event(8, "end", R"({"status":"completed"})"), now);
  EXPECT_TRUE(r.ended);
  EXPECT_EQ(r.end_status, "completed");
}

TEST(CountFrame, LagIsReceiveTimeMinusTs) {
  StreamResult r;
  long next = 1;
  const auto ts = std::chrono::system_clock::now() - 250ms;
  count_frame(r, next, event(1, "on_llm_stream", "{}", core::to_rfc3339(ts)), ts + 250ms);
  ASSERT_EQ(r.lag_ms.size(), 1u);
  EXPECT_NEAR(r.lag_ms[0], 250.0, 0.01);
  // A gapless stream that a reconnect resumed (after_seq) continues from the expected seq.
  count_frame(r, next, event(2), ts);
  EXPECT_EQ(r.lost + r.duplicated, 0);
}

TEST(SessionResult, OkNeedsBothStreamsAndTheProposal) {
  SessionResult s;
  s.browser.ended = s.anchor.ended = true;
  s.browser.end_status = s.anchor.end_status = "completed";
  s.proposal_status = "completed";
  s.files_ok = true;
  EXPECT_TRUE(s.ok(true));
  s.anchor.lost = 1;
  EXPECT_FALSE(s.ok(true));
  EXPECT_TRUE(s.ok(false));  // without an anchor its stream does not count
  s.browser.duplicated = 1;
  EXPECT_FALSE(s.ok(false));
  s.browser.duplicated = 0;
  s.files_ok = false;
  EXPECT_FALSE(s.ok(false));
}
