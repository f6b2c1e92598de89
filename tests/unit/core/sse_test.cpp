// core::sse::Decoder against the WHATWG HTML "Server-sent events" parsing rules (§9.2.6).
#include <gtest/gtest.h>

#include <vector>

#include "core/sse.hpp"

using core::sse::Decoder;
using core::sse::Event;

namespace {

struct Collect {
  std::vector<Event> events;
  Decoder decoder{[this](const Event& e) { events.push_back(e); }};
};

std::vector<std::string> datas(const std::vector<Event>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.data);
  return out;
}

}  // namespace

TEST(Sse, FieldsValuesCommentsAndDispatch) {
  Collect c;
  c.decoder.feed(": keep-alive\n\n");  // comment, then an empty event: nothing dispatched
  c.decoder.feed("data: one\n\n");
  c.decoder.feed("data:two\n\n");            // no space after the colon
  c.decoder.feed("data:  three\n\n");        // only one space is removed
  c.decoder.feed("data\n\n");                // no colon: the whole line is the field, value ""
  c.decoder.feed("data: a\ndata: b\n\n");    // multi-line data joined with "\n"
  c.decoder.feed("event: error\nid: 7\nretry: 10\nfoo: bar\ndata: {}\n\n");
  c.decoder.feed("data: after\n\n");         // event type resets, last id persists
  ASSERT_EQ(datas(c.events), (std::vector<std::string>{"one", "two", " three", "", "a\nb", "{}", "after"}));
  EXPECT_EQ(c.events[0].type, "message");
  EXPECT_EQ(c.events[5].type, "error");
  EXPECT_EQ(c.events[5].id, "7");
  EXPECT_EQ(c.events[6].type, "message");
  EXPECT_EQ(c.events[6].id, "7");
}

TEST(Sse, LineEndingsCrLfCrAndLfInAnySplit) {
  const std::string stream = "data: a\r\n\r\ndata: b\r\rdata: c\n\ndata: d\r\ndata: e\r\n\r\n";
  const std::vector<std::string> want = {"a", "b", "c", "d\ne"};
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    Collect c;
    c.decoder.feed(std::string_view(stream).substr(0, cut));
    c.decoder.feed(std::string_view(stream).substr(cut));
    EXPECT_FALSE(c.decoder.finish());
    ASSERT_EQ(datas(c.events), want) << "cut at " << cut;
  }
  Collect bytewise;
  for (char ch : stream) bytewise.decoder.feed(std::string_view(&ch, 1));
  EXPECT_EQ(datas(bytewise.events), want);
}

TEST(Sse, ByteOrderMarkAtTheStartIsIgnored) {
  Collect c;
  c.decoder.feed("\xEF\xBB");
  c.decoder.feed("\xBF" "data: x\n\n\xEF\xBB\xBF" "data: y\n\n");
  ASSERT_EQ(c.events.size(), 1u);  // a BOM later in the stream is part of the field name
  EXPECT_EQ(c.events[0].data, "x");
}

TEST(Sse, FinishReturnsTheUnterminatedEventForTheCallerToJudge) {
  Collect c;
  c.decoder.feed("data: done\n\ndata: [DONE]");
  ASSERT_EQ(c.events.size(), 1u);
  auto last = c.decoder.finish();
  ASSERT_TRUE(last);
  EXPECT_EQ(last->data, "[DONE]");
  Collect d;
  d.decoder.feed("data: x\n");  // terminated line, but no empty line yet
  ASSERT_TRUE(d.events.empty());
  EXPECT_EQ(d.decoder.finish()->data, "x");
  Collect e;
  e.decoder.feed("data: x\n\n: trailing comment");
  EXPECT_FALSE(e.decoder.finish());
}

TEST(Sse, OversizedLinesAndEventsAreRefused) {
  std::vector<Event> events;
  Decoder small([&](const Event& ev) { events.push_back(ev); }, 16);
  EXPECT_THROW(small.feed("data: " + std::string(20, 'x')), core::sse::SseError);
  Decoder lines([&](const Event& ev) { events.push_back(ev); }, 16);
  lines.feed("data: 01234567\n");                                      // 9 bytes buffered
  EXPECT_THROW(lines.feed("data: 01234567\n"), core::sse::SseError);  // 18 > 16
  EXPECT_TRUE(events.empty());
}
