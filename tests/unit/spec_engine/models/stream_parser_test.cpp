// SSE parsing of Chat Completions streams (models/openai.hpp), as pure functions.
#include <gtest/gtest.h>

#include "spec_engine/models/openai.hpp"
#include "spec_engine/models/scripted.hpp"
#include "spec_engine/tools/builtin.hpp"

#include "../test_host.hpp"

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

TEST(StreamParser, ATurnOverItsByteBoundIsRefusedWithoutGrowingFurther) {
  ChatStreamParser p(nullptr, /*max_turn_bytes=*/100, /*max_tool_calls=*/8);
  const std::string ten(10, 'x');
  for (int i = 0; i < 5; ++i) p.feed(sse({{"choices", {{{"index", 0}, {"delta", {{"content", ten}}}}}}}));
  p.feed(sse(tc_delta(0, "c", "write_file", std::string(40, 'a'))));  // 50 + 10 + 40 = 100: still allowed
  try {
    p.feed(sse(tc_delta(0, "", "", "b")));
    FAIL() << "101 bytes were accepted";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("exceeded 100 bytes"), std::string::npos) << e.what();
  }
}

TEST(StreamParser, ATurnWithTooManyToolCallsIsRefused) {
  ChatStreamParser p(nullptr, ChatStreamParser::kMaxTurnBytes, /*max_tool_calls=*/3);
  for (int i = 0; i < 3; ++i) p.feed(sse(tc_delta(i, "c" + std::to_string(i), "ls", "{}")));
  EXPECT_THROW(p.feed(sse(tc_delta(3, "c3", "ls", "{}"))), ModelError);
  ChatStreamParser q(nullptr, ChatStreamParser::kMaxTurnBytes, 3);  // without index: new ids start calls
  for (int i = 0; i < 3; ++i) {
    q.feed(sse({{"choices", {{{"delta", {{"tool_calls", {{{"id", std::to_string(i)}, {"function", {{"name", "ls"}}}}}}}}}}}}));
  }
  EXPECT_THROW(
      q.feed(sse({{"choices", {{{"delta", {{"tool_calls", {{{"id", "3"}, {"function", {{"name", "ls"}}}}}}}}}}}})),
      ModelError);
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
  const json b = json::parse(build_chat_body(cfg, r));
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
  // The whole document, as the tree-built body was (tool names, ids and texts escaped).
  EXPECT_EQ(b, json::parse(R"({"model": "m1", "stream": true, "stream_options": {"include_usage": true},
    "temperature": 0.2, "max_tokens": 100, "tools": [{"type": "function"}],
    "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"},
      {"role": "assistant", "content": null, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{\"path\":\"/\"}"}},
        {"id": "c2", "type": "function", "function": {"name": "x", "arguments": "{}"}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "/a"}]})"));
  // Text with quotes, newlines and non-ASCII survives; a plain assistant turn keeps its text.
  r.system_prompt.clear();
  r.tools = json::array();
  r.messages = json::array(
      {{{"role", "user"}, {"content", "a \"quoted\"\nline \u00e9"}}, {{"role", "assistant"}, {"content", "ok"}}});
  const json plain = json::parse(build_chat_body(cfg, r));
  EXPECT_EQ(plain["messages"], json::parse(R"([{"role": "user", "content": "a \"quoted\"\nline \u00e9"},
    {"role": "assistant", "content": "ok"}])"));
  EXPECT_FALSE(plain.contains("tools"));
}

TEST(Scripted, PiecesAndCursor) {
  EXPECT_EQ(split_stream_pieces("Hello big  world\n"), (std::vector<std::string>{"Hello ", "big  ", "world\n"}));
  EXPECT_TRUE(split_stream_pieces("").empty());
  ScriptedModel m(json::parse(R"({"turns": [{"content": "a b"}, {"node": "x", "tool_calls": [{"name": "ls", "arguments": "{\"path\": \"/\"}"}]}]})"),
                  "t");
  ModelRequest r;
  r.node = "x";
  std::vector<std::string> d;
  spec_engine::testing::Host host;
  const DeltaSink collect = [&](std::string_view s) { d.emplace_back(s); };
  const DeltaSink ignore = [](std::string_view) {};
  auto t1 = host.rt.run_sync(m.complete(r, collect, {}));
  EXPECT_EQ(d, (std::vector<std::string>{"a ", "b"}));
  auto t2 = host.rt.run_sync(m.complete(r, ignore, {}));
  ASSERT_EQ(t2.tool_calls.size(), 1u);
  EXPECT_EQ(t2.tool_calls[0].arguments["path"], "/");
  EXPECT_EQ(t2.tool_calls[0].id, "call_2_0");
  EXPECT_EQ(m.cursor(), 2u);
  try {
    host.rt.run_sync(m.complete(r, ignore, {}));
    FAIL();
  } catch (const ModelError& e) {
    EXPECT_STREQ(e.what(), "scripted model: script exhausted after 2 turns; agent x asked for turn 3");
  }
}

TEST(Scripted, ReportsEstimatedUsageUnlessTheTurnSaysOtherwise) {
  ScriptedModel m(json::parse(R"({"turns": [{"content": "12345678"},
                                           {"content": "x", "usage": {"prompt_tokens": 1000, "completion_tokens": 9}}]})"),
                  "t.json");
  EXPECT_EQ(m.request_model(), "scripted");
  EXPECT_EQ(m.model_name(), "t.json");
  ModelRequest r;
  r.system_prompt = std::string(40, 's');                                      // 40 bytes
  r.messages = json::array({json{{"role", "user"}, {"content", std::string(20, 'u')}}});  // 20 bytes
  EXPECT_EQ(estimate_prompt_tokens(r), 15);  // ceil(60 / 4)
  r.tools = json::array({spec_engine::tools::tool_schema("ls")});
  const auto with_tools = estimate_prompt_tokens(r);
  EXPECT_EQ(with_tools, static_cast<std::int64_t>((60 + r.tools.dump().size() + 3) / 4));
  spec_engine::testing::Host host;
  const DeltaSink ignore = [](std::string_view) {};
  auto t1 = host.rt.run_sync(m.complete(r, ignore, {}));
  EXPECT_EQ(t1.usage.prompt_tokens, with_tools);
  EXPECT_EQ(t1.usage.completion_tokens, 2);  // ceil(8 / 4)
  EXPECT_EQ(t1.response_model, "scripted");
  EXPECT_EQ(t1.finish_reason, "stop");
  auto t2 = host.rt.run_sync(m.complete(r, ignore, {}));
  EXPECT_EQ(t2.usage.prompt_tokens, 1000);
  EXPECT_EQ(t2.usage.completion_tokens, 9);
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

// ---- Tool-call streams of other servers and SSE edge cases (issue 9 item 3) ----

namespace {

// Feeds `stream` cut into two pieces at every offset (and byte by byte), checking each
// result with `check`. A parser that depends on how the bytes arrive fails here.
template <class Check>
void at_every_split(const std::string& stream, Check check) {
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    std::string deltas;
    ChatStreamParser p([&](std::string_view d) { deltas += d; });
    p.feed(std::string_view(stream).substr(0, cut));
    p.feed(std::string_view(stream).substr(cut));
    ModelTurn t = p.finish();
    SCOPED_TRACE("cut at " + std::to_string(cut));
    ASSERT_EQ(deltas, t.content);
    check(p, t);
  }
  ChatStreamParser p(nullptr);
  for (char c : stream) p.feed(std::string_view(&c, 1));
  ModelTurn t = p.finish();
  SCOPED_TRACE("byte by byte");
  check(p, t);
}

std::string finish_chunk(const std::string& reason) {
  return sse({{"choices", {{{"index", 0}, {"delta", json::object()}, {"finish_reason", reason}}}}});
}

}  // namespace

// vLLM, SGLang and Dynamo send index 0 for every call; a new id starts a new call.
TEST(StreamParser, IndexZeroWithANewIdStartsANewCall) {
  std::string s = sse(tc_delta(0, "call_A", "write_file", "")) + sse(tc_delta(0, "", "", "{\"file_path\": \"/a.md\", ")) +
                  sse(tc_delta(0, "", "", "\"content\": \"A\"}")) + sse(tc_delta(0, "call_B", "write_file", "{\"file_")) +
                  sse(tc_delta(0, "", "", "path\": \"/b.md\", \"content\": \"B\"}")) +
                  sse(tc_delta(0, "call_C", "ls", "{}")) + finish_chunk("tool_calls") + "data: [DONE]\n\n";
  at_every_split(s, [](const ChatStreamParser&, const ModelTurn& t) {
    ASSERT_EQ(t.tool_calls.size(), 3u);
    EXPECT_EQ(t.tool_calls[0].id, "call_A");
    EXPECT_EQ(t.tool_calls[0].arguments, json({{"file_path", "/a.md"}, {"content", "A"}}));
    EXPECT_EQ(t.tool_calls[1].id, "call_B");
    EXPECT_EQ(t.tool_calls[1].arguments, json({{"file_path", "/b.md"}, {"content", "B"}}));
    EXPECT_EQ(t.tool_calls[2].name, "ls");
    for (const auto& c : t.tool_calls) EXPECT_FALSE(c.arguments_error) << *c.arguments_error;
  });
}

// The id usually comes only with the first fragment; some servers repeat it (and the
// name) on every fragment: both are one call.
TEST(StreamParser, IdOnlyOnTheFirstFragmentOrOnEvery) {
  std::string first_only = sse(tc_delta(0, "c1", "read_file", "{\"file_")) + sse(tc_delta(0, "", "", "path\": \"/x\"}")) +
                           finish_chunk("tool_calls") + "data: [DONE]\n\n";
  std::string repeated = sse(tc_delta(0, "c1", "read_file", "{\"file_")) +
                         sse(tc_delta(0, "c1", "read_file", "path\": \"/x\"}")) + finish_chunk("tool_calls") +
                         "data: [DONE]\n\n";
  for (const auto& s : {first_only, repeated}) {
    at_every_split(s, [](const ChatStreamParser&, const ModelTurn& t) {
      ASSERT_EQ(t.tool_calls.size(), 1u);
      EXPECT_EQ(t.tool_calls[0].id, "c1");
      EXPECT_EQ(t.tool_calls[0].name, "read_file");
      EXPECT_EQ(t.tool_calls[0].arguments, json({{"file_path", "/x"}}));
    });
  }
}

TEST(StreamParser, FunctionNameSplitAcrossFragments) {
  std::string s = sse(tc_delta(0, "c1", "wri", "")) + sse(tc_delta(0, "", "te_f", "{\"file_path\": ")) +
                  sse(tc_delta(0, "", "ile", "\"/n.md\", \"content\": \"n\"}")) + finish_chunk("tool_calls") +
                  "data: [DONE]\n\n";
  at_every_split(s, [](const ChatStreamParser&, const ModelTurn& t) {
    ASSERT_EQ(t.tool_calls.size(), 1u);
    EXPECT_EQ(t.tool_calls[0].name, "write_file");
    EXPECT_EQ(t.tool_calls[0].arguments["file_path"], "/n.md");
  });
}

// The arguments text cut inside escapes ("\" | "\"", "\u00" | "e9") and inside characters:
// raw UTF-8 bytes cut in two (byte-slicing servers) and a surrogate pair cut in two
// ("\ud83d" | "\ude00", UTF-16-slicing servers). The chunks are written by hand because
// a JSON library cannot produce them.
TEST(StreamParser, ArgumentsSplitMidCodePointAndMidEscape) {
  auto frag = [](const std::string& id, const std::string& name, const std::string& raw_json_string_body) {
    std::string tc = "{\"index\":0,";
    if (!id.empty()) tc += "\"id\":\"" + id + "\",";
    tc += "\"function\":{";
    if (!name.empty()) tc += "\"name\":\"" + name + "\",";
    tc += "\"arguments\":\"" + raw_json_string_body + "\"}}";
    return "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[" + tc + "]}}]}\n\n";
  };
  // Arguments text: {"file_path": "/u.md", "content": "caf\u00e9 é \"q\" 😀"}
  std::string s = frag("c1", "write_file", "{\\\"file_path\\\": \\\"/u.md\\\", \\\"content\\\": \\\"caf\\\\u00") +
                  frag("", "", "e9 \xC3") +                  // "é" cut after its first byte
                  frag("", "", "\xA9 \\\\") +                // mid-escape: the backslash of \"
                  frag("", "", "\\\"q\\\\\\\" \\ud83d") +    // the high half of U+1F600
                  frag("", "", "\\ude00\\\"}") + finish_chunk("tool_calls") + "data: [DONE]\n\n";
  at_every_split(s, [](const ChatStreamParser&, const ModelTurn& t) {
    ASSERT_EQ(t.tool_calls.size(), 1u);
    ASSERT_FALSE(t.tool_calls[0].arguments_error) << *t.tool_calls[0].arguments_error << " raw "
                                                  << t.tool_calls[0].arguments_raw;
    EXPECT_EQ(t.tool_calls[0].arguments["content"], "caf\xC3\xA9 \xC3\xA9 \"q\" \xF0\x9F\x98\x80");
    EXPECT_EQ(t.tool_calls[0].arguments["file_path"], "/u.md");
  });
}

// Content deltas cut inside a character are held back until the character is whole, so
// every delta handed on is valid UTF-8; a character that never completes becomes U+FFFD.
TEST(StreamParser, ContentSplitMidCodePointIsDeliveredWhole) {
  auto content = [](const std::string& raw) {
    return "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"" + raw + "\"}}]}\n\n";
  };
  std::string s = content("w\xE2\x82") + content("\xAC" "rld \\ud83d") + content("\\ude00!") + content("bad \xE2") +
                  finish_chunk("stop") + "data: [DONE]\n\n";
  std::vector<std::string> deltas;
  ChatStreamParser p([&](std::string_view d) { deltas.emplace_back(d); });
  p.feed(s);
  auto t = p.finish();
  EXPECT_EQ(t.content, "w\xE2\x82\xACrld \xF0\x9F\x98\x80!bad \xEF\xBF\xBD");
  for (const auto& d : deltas) EXPECT_NO_THROW((void)json(d).dump()) << "delta is not valid UTF-8";
  ASSERT_GE(deltas.size(), 3u);
  EXPECT_EQ(deltas[0], "w");  // the cut euro sign waits for its last byte
}

TEST(StreamParser, EmptyArgumentsMeanAnEmptyObject) {
  std::string s = sse(tc_delta(0, "a", "ls", "")) +
                  sse({{"choices", {{{"index", 0}, {"delta", {{"tool_calls", {{{"index", 1}, {"id", "b"},
                                                                                 {"function", {{"name", "ls"}}}}}}}}}}}}) +
                  sse(tc_delta(2, "c", "ls", " \n ")) + finish_chunk("tool_calls") + "data: [DONE]\n\n";
  at_every_split(s, [](const ChatStreamParser&, const ModelTurn& t) {
    ASSERT_EQ(t.tool_calls.size(), 3u);
    for (const auto& c : t.tool_calls) {
      EXPECT_FALSE(c.arguments_error);
      EXPECT_EQ(c.arguments, json::object());
    }
  });
}

TEST(StreamParser, ToolCallsCountWithFinishReasonStop) {
  std::string s = sse(tc_delta(0, "c1", "ls", "{\"path\": \"/\"}")) + finish_chunk("stop") + "data: [DONE]\n\n";
  at_every_split(s, [](const ChatStreamParser& p, const ModelTurn& t) {
    EXPECT_TRUE(p.complete());
    EXPECT_EQ(t.finish_reason, "stop");
    ASSERT_EQ(t.tool_calls.size(), 1u);
    EXPECT_EQ(t.tool_calls[0].arguments["path"], "/");
  });
}

TEST(StreamParser, UsageOnlyFinalChunkAndNullUsageBefore) {
  std::string s = sse({{"choices", {{{"index", 0}, {"delta", {{"content", "hi"}}}}}}, {"usage", nullptr}}) +
                  finish_chunk("stop") +
                  sse({{"choices", json::array()}, {"usage", {{"prompt_tokens", 21}, {"completion_tokens", 2}}}}) +
                  "data: [DONE]\n\n";
  at_every_split(s, [](const ChatStreamParser&, const ModelTurn& t) {
    EXPECT_EQ(t.content, "hi");
    EXPECT_EQ(t.usage.prompt_tokens, 21);
    EXPECT_EQ(t.usage.completion_tokens, 2);
  });
}

// Without [DONE]: a finish_reason makes the turn whole; without one the turn is not
// complete (the provider retries or fails; a truncated tool call never runs). A last
// event cut off by the end of the stream is dropped, not an error.
TEST(StreamParser, StreamClosedWithoutDone) {
  std::string whole = sse(tc_delta(0, "c1", "ls", "{}")) + finish_chunk("tool_calls") +
                      "data: {\"choices\":[],\"usage\":{\"prompt_to";  // usage chunk cut off
  at_every_split(whole, [](const ChatStreamParser& p, const ModelTurn& t) {
    EXPECT_FALSE(p.done());
    EXPECT_TRUE(p.complete());
    ASSERT_EQ(t.tool_calls.size(), 1u);
    EXPECT_EQ(t.usage.prompt_tokens, 0);
  });
  std::string cut = sse(tc_delta(0, "c1", "write_file", "{\"file_path\": \"/a.md\", \"cont"));
  ChatStreamParser p(nullptr);
  p.feed(cut);
  p.finish();
  EXPECT_FALSE(p.complete());
  EXPECT_TRUE(p.produced_output());
  EXPECT_FALSE(p.streamed_content());
  // A whole last chunk without the final empty line still counts.
  ChatStreamParser q(nullptr);
  q.feed(sse(tc_delta(0, "c1", "ls", "{}")) +
         "data: " + json({{"choices", {{{"index", 0}, {"delta", json::object()}, {"finish_reason", "stop"}}}}}).dump());
  q.finish();
  EXPECT_TRUE(q.complete());
}

TEST(StreamParser, CommentsDataWithoutSpaceAndLineEndings) {
  const std::string chunk1 = json({{"choices", {{{"index", 0}, {"delta", {{"content", "a"}}}}}}}).dump();
  const std::string chunk2 = json({{"choices", {{{"index", 0}, {"delta", {{"content", "b"}}}}}}}).dump();
  for (const std::string eol : {"\n", "\r\n", "\r"}) {
    std::string s = ": keep-alive" + eol + eol + "data:" + chunk1 + eol + eol + ":" + eol + "data: " + chunk2 + eol +
                    eol + "data:" + json({{"choices", {{{"index", 0}, {"delta", json::object()}, {"finish_reason", "stop"}}}}}).dump() +
                    eol + eol + "data:[DONE]" + eol + eol;
    at_every_split(s, [](const ChatStreamParser& p, const ModelTurn& t) {
      EXPECT_TRUE(p.done());
      EXPECT_EQ(t.content, "ab");
      EXPECT_EQ(t.finish_reason, "stop");
    });
  }
}

// Servers that end each event with a single newline: every line is still one chunk.
TEST(StreamParser, EventsSeparatedBySingleNewlines) {
  std::string s = "data: " + json({{"choices", {{{"index", 0}, {"delta", {{"content", "x"}}}}}}}).dump() + "\n" +
                  "data: " + json({{"choices", {{{"index", 0}, {"delta", {{"content", "y"}}}, {"finish_reason", "stop"}}}}}).dump() +
                  "\ndata: [DONE]\n";
  at_every_split(s, [](const ChatStreamParser& p, const ModelTurn& t) {
    EXPECT_EQ(t.content, "xy");
    EXPECT_TRUE(p.done());
  });
}

TEST(StreamParser, ErrorObjectMidStreamNamesTheProvidersMessage) {
  const std::string head = sse({{"choices", {{{"index", 0}, {"delta", {{"content", "partial"}}}}}}});
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"data: {\"error\": {\"message\": \"CUDA out of memory\", \"type\": \"InternalServerError\", \"code\": 500}}\n\n",
       "CUDA out of memory (type: InternalServerError, code: 500)"},
      {"data: {\"object\": \"error\", \"message\": \"context length exceeded\", \"type\": \"BadRequestError\"}\n\n",
       "context length exceeded (type: BadRequestError)"},
      {"event: error\ndata: {\"message\": \"overloaded\"}\n\n", "overloaded"},
      {"event: error\ndata: upstream went away\n\n", "upstream went away"},
  };
  for (const auto& [tail, message] : cases) {
    ChatStreamParser p(nullptr);
    try {
      p.feed(head + tail);
      p.finish();
      ADD_FAILURE() << "no error for " << tail;
    } catch (const ModelError& e) {
      EXPECT_EQ(std::string(e.what()), "openai: the model server sent an error in the stream: " + message);
    }
  }
}

TEST(StreamParser, MalformedChunkIsAClearError) {
  ChatStreamParser p(nullptr);
  try {
    p.feed("data: {not json\n\n");
    FAIL();
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("malformed stream chunk: {not json"), std::string::npos) << e.what();
  }
  ChatStreamParser big(nullptr);
  EXPECT_THROW(big.feed("data: \"" + std::string(17 * 1024 * 1024, 'x')), ModelError);
}

TEST(StreamParser, RecordsTheAnsweringModelAndCompletionId) {
  ChatStreamParser p(nullptr);
  p.feed(sse({{"id", "chatcmpl-9"}, {"model", "gpt-4.1-mini-2025-04-14"},
              {"choices", {{{"index", 0}, {"delta", {{"content", "hi"}}}, {"finish_reason", "stop"}}}}}));
  p.feed(sse({{"id", "chatcmpl-9"}, {"model", "gpt-4.1-mini-2025-04-14"}, {"choices", json::array()},
              {"usage", {{"prompt_tokens", 3}, {"completion_tokens", 1}}}}));
  ModelTurn t = p.finish();
  EXPECT_EQ(t.response_model, "gpt-4.1-mini-2025-04-14");
  EXPECT_EQ(t.response_id, "chatcmpl-9");
  EXPECT_EQ(t.usage.prompt_tokens, 3);
}
