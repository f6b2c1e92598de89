// The paced model server over real sockets: the script per turn in the Chat Completions stream
// format, the turn taken from the message history, the pacing (never early), many concurrent
// conversations, request statistics, a client that leaves, and bad requests.
#include "paced_model.hpp"

#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "core/http_client.hpp"
#include "core/server.hpp"

using namespace core::http;
using core::async::Runtime;
using core::async::RuntimeOptions;
using core::async::Task;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

/// The `data:` payloads of an SSE body, in order.
std::vector<std::string> sse_data(const std::string& body) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < body.size()) {
    const auto end = body.find("\n\n", pos);
    if (end == std::string::npos) break;
    const std::string event = body.substr(pos, end - pos);
    if (event.rfind("data: ", 0) == 0) out.push_back(event.substr(6));
    pos = end + 2;
  }
  return out;
}

/// What one streamed answer said.
struct Turn {
  int status = 0;
  std::string content;        // all text deltas
  int text_chunks = 0;        // chunks with non-empty content
  json tool_calls = json::array();
  std::string finish_reason;
  bool done_marker_last = false;
  bool usage_seen = false;
  std::vector<std::chrono::steady_clock::time_point> text_arrivals;
};

json messages_after(int assistant_turns, const std::string& prompt) {
  json m = json::array({{{"role", "system"}, {"content", "You are a test."}}, {{"role", "user"}, {"content", prompt}}});
  for (int i = 0; i < assistant_turns; ++i) {
    m.push_back({{"role", "assistant"}, {"content", nullptr}, {"tool_calls", json::array()}});
    m.push_back({{"role", "tool"}, {"tool_call_id", "x"}, {"content", "ok"}});
  }
  return m;
}

class PacedModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    script.turns = 2;
    script.chunks = 3;
    script.rate = 40.0;
    script.model = "paced-test";
    rt.start();
    ServerOptions o;
    o.io_threads = 1;
    o.blocking_threads = 1;
    o.service_name = "paced-test";
    server = std::make_unique<Server>(o, paced_model::make_router(script, stats));
    server->start();
  }
  void TearDown() override {
    server->stop();
    rt.stop();
  }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(server->port()) + path; }

  ClientRequest chat(const json& messages, bool stream = true) const {
    ClientRequest req;
    req.method = "POST";
    req.url = url("/v1/chat/completions");
    req.headers.set("Content-Type", "application/json");
    req.body = json{{"model", "anything"}, {"messages", messages}, {"stream", stream}}.dump();
    req.timeout = 20s;
    return req;
  }

  /// Streams one request and decodes it.
  Turn stream_turn(const json& messages) {
    Turn t;
    std::string body;
    auto on_status = [&t](int s, const Headers&) { t.status = s; };
    auto on_chunk = [&](std::string_view c) {
      body.append(c);
      // Arrival time of every text delta completed by this piece.
      const auto now = std::chrono::steady_clock::now();
      std::size_t seen = 0;
      for (const auto& d : sse_data(body)) {
        if (d == "[DONE]") continue;
        const json j = json::parse(d);
        if (!j["choices"].empty() && j["choices"][0]["delta"].value("content", "") != "") ++seen;
      }
      while (t.text_arrivals.size() < seen) t.text_arrivals.push_back(now);
    };
    t.status = request_streaming(chat(messages), on_status, on_chunk, 10s);
    const auto data = sse_data(body);
    t.done_marker_last = !data.empty() && data.back() == "[DONE]";
    for (const auto& d : data) {
      if (d == "[DONE]") continue;
      const json j = json::parse(d);
      EXPECT_EQ(j["object"], "chat.completion.chunk");
      EXPECT_EQ(j["model"], "paced-test");
      if (j.contains("usage")) t.usage_seen = true;
      if (j["choices"].empty()) continue;
      const auto& ch = j["choices"][0];
      if (ch["finish_reason"].is_string()) t.finish_reason = ch["finish_reason"];
      const auto& delta = ch["delta"];
      if (delta.contains("content") && delta["content"].is_string() && !delta["content"].get<std::string>().empty()) {
        t.content += delta["content"].get<std::string>();
        ++t.text_chunks;
      }
      if (delta.contains("tool_calls")) {
        for (const auto& c : delta["tool_calls"]) t.tool_calls.push_back(c);
      }
    }
    return t;
  }

  paced_model::Script script;
  paced_model::Stats stats;
  Runtime rt{RuntimeOptions{1, 1, "paced-test-client"}};
  std::unique_ptr<Server> server;
};

}  // namespace

/// read_request on a body with `messages` (and `extra` members).
paced_model::ChatRequest read(const json& messages, const json& extra = json::object()) {
  json body = {{"model", "m"}, {"messages", messages}};
  body.update(extra);
  return paced_model::read_request(body.dump());
}

TEST(PacedModelRequest, TurnIsTheNumberOfAssistantMessages) {
  const auto p0 = read(messages_after(0, "hello")).position;
  const auto p2 = read(messages_after(2, "hello")).position;
  EXPECT_EQ(p0.turn, 0);
  EXPECT_EQ(p2.turn, 2);
  EXPECT_EQ(p0.conversation, p2.conversation);  // the same first user message: one conversation
  EXPECT_NE(p0.conversation, read(messages_after(0, "other")).position.conversation);
  EXPECT_EQ(p0.conversation, paced_model::fnv1a_hex("hello"));
  // Content given as parts counts by its text; tool calls and nested members are skipped.
  const json parts = json::array({{{"role", "user"}, {"content", json::array({{{"type", "text"}, {"text", "hel"}},
                                                                              {{"type", "text"}, {"text", "lo"}}})}},
                                  {{"role", "assistant"},
                                   {"content", nullptr},
                                   {"tool_calls", json::array({{{"id", "c"}, {"content", "not a message"},
                                                                {"function", {{"role", "user"}}}}})}}});
  const auto pp = read(parts).position;
  EXPECT_EQ(pp.conversation, p0.conversation);
  EXPECT_EQ(pp.turn, 1);
  // A later user message does not change the conversation.
  json two_users = messages_after(1, "hello");
  two_users.push_back({{"role", "user"}, {"content", "and more"}});
  EXPECT_EQ(read(two_users).position.conversation, p0.conversation);
  EXPECT_EQ(paced_model::fnv1a_hex(""), "cbf29ce484222325");  // FNV-1a 64 offset basis
  EXPECT_EQ(paced_model::fnv1a_hex("a"), "af63dc4c8601ec8c");  // published test vector
}

TEST(PacedModelRequest, StreamFlagAndBadBodiesNameTheField) {
  EXPECT_FALSE(read(messages_after(0, "x")).stream);
  EXPECT_TRUE(read(messages_after(0, "x"), {{"stream", true}}).stream);
  EXPECT_FALSE(read(messages_after(0, "x"), {{"stream", nullptr}}).stream);
  auto field_of = [](const std::string& body) {
    try {
      paced_model::read_request(body);
    } catch (const paced_model::InvalidRequest& e) {
      return e.field();
    }
    return std::string("accepted");
  };
  EXPECT_EQ(field_of("not json"), "body");
  EXPECT_EQ(field_of("[1,2]"), "body");
  EXPECT_EQ(field_of(R"({"messages": {"role": "user"}})"), "messages");
  EXPECT_EQ(field_of(R"({"model": "m"})"), "messages");
  EXPECT_EQ(field_of(R"({"messages": [{"role": "system", "content": "x"}]})"), "messages");
  EXPECT_EQ(field_of(R"({"messages": [{"role": "user", "content": "x"}], "stream": "yes"})"), "stream");
  EXPECT_EQ(field_of(R"({"messages": [{"role": "user", "content": "x"}], "stream": true})"), "accepted");
  EXPECT_EQ(field_of(R"({"messages": [{"role": "user", "content": "x"}])"), "body");  // truncated
}

TEST_F(PacedModelTest, ConversationFollowsTheScript) {
  for (int turn = 0; turn < script.turns; ++turn) {
    const Turn t = stream_turn(messages_after(turn, "Refine it"));
    EXPECT_EQ(t.status, 200);
    EXPECT_EQ(t.text_chunks, script.chunks);
    EXPECT_EQ(t.finish_reason, "tool_calls");
    ASSERT_EQ(t.tool_calls.size(), 1u);
    EXPECT_EQ(t.tool_calls[0]["function"]["name"], "write_file");
    const json args = json::parse(t.tool_calls[0]["function"]["arguments"].get<std::string>());
    EXPECT_EQ(args["file_path"], "/THE_SPEC/paced-" + std::to_string(turn + 1) + ".md");
    EXPECT_FALSE(args["content"].get<std::string>().empty());
    EXPECT_TRUE(t.done_marker_last);
    EXPECT_TRUE(t.usage_seen);
  }
  const Turn last = stream_turn(messages_after(script.turns, "Refine it"));
  EXPECT_EQ(last.finish_reason, "stop");
  EXPECT_TRUE(last.tool_calls.empty());
  EXPECT_EQ(last.content, "Done: wrote 2 files.");
  EXPECT_TRUE(last.done_marker_last);
  // A resent turn (an engine that restarted) gets the same answer again.
  EXPECT_EQ(stream_turn(messages_after(1, "Refine it")).tool_calls[0]["function"]["arguments"],
            stream_turn(messages_after(1, "Refine it")).tool_calls[0]["function"]["arguments"]);

  const json s = json::parse(request([&] {
                               ClientRequest r;
                               r.url = url("/stats");
                               return r;
                             }())
                                 .body);
  EXPECT_EQ(s["requests"], 5);
  EXPECT_EQ(s["conversations"], 1);
  EXPECT_EQ(s["requests_per_conversation"]["5"], 1);
  ASSERT_EQ(s["by_conversation"].size(), 1u);
  EXPECT_EQ(s["by_conversation"].begin().value()["max_turn"], 2);
  EXPECT_EQ(s["streams_open"], 0);
}

TEST_F(PacedModelTest, TextChunksAreNeverEarly) {
  // The k-th chunk is due k/rate after the request; the server may be late, never early.
  const auto t0 = std::chrono::steady_clock::now();
  const Turn t = stream_turn(messages_after(0, "pace me"));
  ASSERT_EQ(t.text_arrivals.size(), 3u);
  for (std::size_t k = 0; k < t.text_arrivals.size(); ++k) {
    const auto due = std::chrono::duration<double>((k + 1) / script.rate);
    EXPECT_GE(t.text_arrivals[k] - t0, due) << "chunk " << k + 1;
  }
}

TEST_F(PacedModelTest, NonStreamingAnswerCarriesTheToolCall) {
  const auto res = request(chat(messages_after(0, "no stream"), false));
  ASSERT_EQ(res.status, 200);
  const json j = json::parse(res.body);
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");
  EXPECT_EQ(j["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "write_file");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Turn 1, part 1 of 3. Turn 1, part 2 of 3. Turn 1, part 3 of 3. ");
}

TEST_F(PacedModelTest, ManyConcurrentConversations) {
  AsyncHttpClient client(rt);
  constexpr int kConversations = 400;
  std::atomic<int> ok{0};
  std::atomic<int> done{0};
  for (int i = 0; i < kConversations; ++i) {
    auto one = [](AsyncHttpClient& c, ClientRequest req, std::atomic<int>& good) -> Task<void> {
      std::string body;
      auto on_status = [](int, const Headers&) {};
      auto on_chunk = [&body](std::string_view piece) { body.append(piece); };
      const int status = co_await c.request_streaming(req, on_status, on_chunk, 10s);
      const auto data = sse_data(body);
      if (status == 200 && !data.empty() && data.back() == "[DONE]") ++good;
    };
    rt.spawn(one(client, chat(messages_after(0, "conversation " + std::to_string(i))), ok),
             [&done](std::exception_ptr) { ++done; });
  }
  const auto end = std::chrono::steady_clock::now() + 60s;
  while (done.load() < kConversations && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(ok.load(), kConversations);
  const json s = stats.to_json(false);
  EXPECT_EQ(s["conversations"], kConversations);
  EXPECT_EQ(s["requests_per_conversation"]["1"], kConversations);
  EXPECT_FALSE(s.contains("by_conversation"));
}

TEST_F(PacedModelTest, ClientThatLeavesIsCountedAndReleased) {
  script.rate = 0.5;  // 2 s per chunk: the client leaves long before the first text chunk
  AsyncHttpClient client(rt);
  auto on_status = [](int, const Headers&) {};
  auto on_chunk = [](std::string_view) { throw std::runtime_error("leaving"); };
  EXPECT_THROW(rt.run_sync(client.request_streaming(chat(messages_after(0, "bye")), on_status, on_chunk, 5s)),
               std::runtime_error);
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (stats.to_json(false)["streams_aborted"] != 1 && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(5ms);
  }
  const json s = stats.to_json(false);
  EXPECT_EQ(s["streams_aborted"], 1);
  EXPECT_EQ(s["streams_open"], 0);
}

TEST_F(PacedModelTest, BadRequestsNameTheField) {
  ClientRequest req = chat(json::array());
  auto res = request(req);
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(json::parse(res.body)["errors"][0]["field"], "messages");
  req.body = "not json";
  res = request(req);
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(json::parse(res.body)["errors"][0]["field"], "body");
  req.body = json{{"messages", messages_after(0, "x")}, {"stream", "yes"}}.dump();
  res = request(req);
  EXPECT_EQ(res.status, 400);
  EXPECT_EQ(json::parse(res.body)["errors"][0]["field"], "stream");
  EXPECT_EQ(json::parse(request([&] {
                                  ClientRequest r;
                                  r.url = url("/v1/models");
                                  return r;
                                }())
                            .body)["data"][0]["id"],
            "paced-test");
}
