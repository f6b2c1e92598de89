// SSE parsing of Chat Completions streams (models/openai.hpp), as pure functions.
#include <gtest/gtest.h>

#include "spec_engine/models/openai.hpp"
#include "spec_engine/models/scripted.hpp"

using namespace spec_engine::models;
using nlohmann::json;

namespace {

std::string sse(const json& chunk) { return "data: " + chunk.dump() + "\n\n"; }

json tc_delta(int index, const std::string& id, const std::string& name, const std::string& args) {
  json f = json::object();
  if (!name.empty()) f["name"] = name;
  f["arguments"] = args;
  json tc = {{"index", index}, {"type", "function"}, {"function", f}};
  if (!id.empty()) tc["id"] = id;
  return {{"choices", {{{"index", 0}, {"delta", {{"tool_calls", {tc}}}}}}}};
}

// A stream with content (incl. a 3-byte UTF-8 char), two interleaved tool calls whose
// arguments are cut mid-token across chunks, a usage chunk and [DONE]. The tests cut
// the byte stream at every offset, so also inside every multi-byte UTF-8 sequence.
std::string sample_stream() {
  std::string s;
  s += ": keep-alive comment\n\n";
  s += sse({{"choices", {{{"index", 0}, {"delta", {{"role", "assistant"}, {"content", "Hello "}}}}}}});
  s += sse({{"choices", {{{"index", 0}, {"delta", {{"content", "w\xE2\x82\xACrld"}}}}}}});
  s += sse(tc_delta(0, "call_A", "write_file", "{\"file_pa"));
  s += sse(tc_delta(1, "call_B", "read_file", ""));
  s += sse(tc_delta(0, "", "", "th\": \"/a.md\", \"content\": \"caf"));
  s += sse(tc_delta(1, "", "", "{\"file_path\":\"/b.md\"}"));
  s += sse(tc_delta(0, "", "", "\xC3\xA9 \\u00e9\\n\"}"));
  s += sse({{"choices", {{{"index", 0}, {"delta", json::object()}, {"finish_reason", "tool_calls"}}}}});
  s += "data: " + json({{"choices", json::array()}, {"usage", {{"prompt_tokens", 11}, {"completion_tokens", 7}}}}).dump() +
       "\r\n\r\n";
  s += "data: [DONE]\n\n";
  return s;
}

}  // namespace

TEST(StreamParser, SplitAtEveryPosition) {
  // json::dump escapes nothing non-ASCII by default, so the raw stream holds the
  // split UTF-8 bytes; cut the byte stream at every offset into 2 and into 3 pieces.
  std::string stream = sample_stream();
  for (std::size_t cut = 0; cut <= stream.size(); cut += 1) {
    std::string deltas;
    ChatStreamParser p([&](std::string_view d) { deltas += d; });
    p.feed(std::string_view(stream).substr(0, cut));
    p.feed(std::string_view(stream).substr(cut));
    ModelTurn t = p.finish();
    ASSERT_TRUE(p.done());
    ASSERT_EQ(t.content, "Hello w\xE2\x82\xACrld") << cut;
    ASSERT_EQ(deltas, t.content);
    ASSERT_EQ(t.tool_calls.size(), 2u);
    EXPECT_EQ(t.tool_calls[0].id, "call_A");
    EXPECT_EQ(t.tool_calls[0].name, "write_file");
    ASSERT_FALSE(t.tool_calls[0].arguments_error) << *t.tool_calls[0].arguments_error;
    EXPECT_EQ(t.tool_calls[0].arguments["content"], "caf\xC3\xA9 \xC3\xA9\n");
    EXPECT_EQ(t.tool_calls[1].arguments["file_path"], "/b.md");
    EXPECT_EQ(t.usage.prompt_tokens, 11);
    EXPECT_EQ(t.usage.completion_tokens, 7);
    EXPECT_EQ(t.finish_reason, "tool_calls");
  }
}

TEST(StreamParser, ByteByByte) {
  std::string stream = sample_stream();
  ChatStreamParser p(nullptr);
  for (char c : stream) p.feed(std::string_view(&c, 1));
  auto t = p.finish();
  ASSERT_EQ(t.tool_calls.size(), 2u);
  EXPECT_EQ(t.tool_calls[0].arguments["file_path"], "/a.md");
}

TEST(StreamParser, MalformedArgumentsBecomeArgumentsError) {
  ChatStreamParser p(nullptr);
  p.feed(sse(tc_delta(0, "c", "write_file", "{\"file_path\": \"/a")));
  p.feed("data: [DONE]\n");
  auto t = p.finish();
  ASSERT_EQ(t.tool_calls.size(), 1u);
  ASSERT_TRUE(t.tool_calls[0].arguments_error.has_value());
  EXPECT_EQ(t.tool_calls[0].arguments_raw, "{\"file_path\": \"/a");
  EXPECT_TRUE(t.tool_calls[0].arguments.is_object());
}

TEST(StreamParser, EmptyArgumentsAndNoTrailingNewline) {
  ChatStreamParser p(nullptr);
  p.feed(sse(tc_delta(0, "c", "ls", "")));
  p.feed("data: [DONE]");  // no newline at all
  auto t = p.finish();
  EXPECT_TRUE(p.done());
  ASSERT_EQ(t.tool_calls.size(), 1u);
  EXPECT_FALSE(t.tool_calls[0].arguments_error);
  EXPECT_EQ(t.tool_calls[0].arguments, json::object());
}

TEST(StreamParser, ErrorChunkThrows) {
  ChatStreamParser p(nullptr);
  EXPECT_THROW(p.feed("data: {\"error\": {\"message\": \"overloaded\"}}\n\n"), ModelError);
}

TEST(StreamParser, ToolCallsWithoutIndex) {
  ChatStreamParser p(nullptr);
  p.feed(sse({{"choices", {{{"delta", {{"tool_calls", {{{"id", "a"}, {"function", {{"name", "ls"}, {"arguments", "{}"}}}}}}}}}}}}));
  p.feed(sse({{"choices", {{{"delta", {{"tool_calls", {{{"id", "b"}, {"function", {{"name", "glob"}, {"arguments", "{\"pattern\":"}}}}}}}}}}}}));
  p.feed(sse({{"choices", {{{"delta", {{"tool_calls", {{{"function", {{"arguments", "\"*\"}"}}}}}}}}}}}}));
  auto t = p.finish();
  ASSERT_EQ(t.tool_calls.size(), 2u);
  EXPECT_EQ(t.tool_calls[1].name, "glob");
  EXPECT_EQ(t.tool_calls[1].arguments["pattern"], "*");
}

TEST(ChatBody, ShapeAndHistoryConversion) {
  OpenAiConfig cfg;
  cfg.model = "m1";
  cfg.temperature = 0.2;
  cfg.max_tokens = 100;
  ModelRequest r;
  r.system_prompt = "sys";
  r.messages = json::parse(R"([{"role": "user", "content": "hi"},
    {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "name": "ls", "arguments": {"path": "/"}},
                                                     {"id": "c2", "name": "x", "arguments": {}, "arguments_error": "bad", "arguments_raw": "{"}]},
    {"role": "tool", "tool_call_id": "c1", "name": "ls", "content": "/a"}])");
  r.tools = json::array({{{"type", "function"}}});
  auto b = build_chat_body(cfg, r);
  EXPECT_EQ(b["model"], "m1");
  EXPECT_EQ(b["stream"], true);
  EXPECT_EQ(b["stream_options"]["include_usage"], true);
  EXPECT_EQ(b["temperature"], 0.2);
  EXPECT_EQ(b["max_tokens"], 100);
  ASSERT_EQ(b["messages"].size(), 4u);
  EXPECT_EQ(b["messages"][0], json({{"role", "system"}, {"content", "sys"}}));
  EXPECT_TRUE(b["messages"][2]["content"].is_null());
  EXPECT_EQ(b["messages"][2]["tool_calls"][0]["function"]["arguments"], "{\"path\":\"/\"}");
  EXPECT_EQ(b["messages"][2]["tool_calls"][1]["function"]["arguments"], "{}");
  EXPECT_EQ(b["messages"][3]["tool_call_id"], "c1");
}

TEST(Scripted, PiecesAndCursor) {
  EXPECT_EQ(split_stream_pieces("Hello big  world\n"), (std::vector<std::string>{"Hello ", "big  ", "world\n"}));
  EXPECT_TRUE(split_stream_pieces("").empty());
  ScriptedModel m(json::parse(R"({"turns": [{"content": "a b"}, {"node": "x", "tool_calls": [{"name": "ls", "arguments": "{\"path\": \"/\"}"}]}]})"),
                  "t");
  ModelRequest r;
  r.node = "x";
  std::vector<std::string> d;
  auto t1 = m.complete(r, [&](std::string_view s) { d.emplace_back(s); });
  EXPECT_EQ(d, (std::vector<std::string>{"a ", "b"}));
  auto t2 = m.complete(r, [](std::string_view) {});
  ASSERT_EQ(t2.tool_calls.size(), 1u);
  EXPECT_EQ(t2.tool_calls[0].arguments["path"], "/");
  EXPECT_EQ(t2.tool_calls[0].id, "call_2_0");
  EXPECT_EQ(m.cursor(), 2u);
  try {
    m.complete(r, [](std::string_view) {});
    FAIL();
  } catch (const ModelError& e) {
    EXPECT_STREQ(e.what(), "scripted model: script exhausted after 2 turns; agent x asked for turn 3");
  }
}

TEST(Scripted, InvalidScriptsNameTheField) {
  try {
    ScriptedModel m(json::parse(R"({"turns": [{"tool_calls": [{"arguments": {}}]}]})"), "s.json");
    FAIL();
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("turns[0].tool_calls[0].name"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ScriptedModel(json::array(), "s"), ModelError);
}
