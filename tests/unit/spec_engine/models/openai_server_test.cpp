// The openai provider against a tiny local HTTP server (raw sockets, test only).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/time.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <thread>

#include "spec_engine/models/openai.hpp"
#include "spec_engine/runtime/run.hpp"

#include "../test_host.hpp"

using namespace spec_engine;
using nlohmann::json;

namespace {

/// One canned answer: raw bytes written in pieces with a pause between them. With `hold`,
/// the connection then stays open, silent, until the server is destroyed (a stalled model).
struct Answer {
  std::vector<std::string> pieces;
  bool hold = false;
};

/// Serves canned answers in order, one per connection; records each request.
class FakeServer {
 public:
  explicit FakeServer(std::vector<Answer> answers) : answers_(std::move(answers)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 8), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  /// True once the client closed the connection of the request being answered (seen by a
  /// `hold` answer).
  bool client_closed() const { return client_closed_; }
  std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> l(mu_);
    return requests_;
  }

 private:
  void serve() {
    for (std::size_t i = 0; !stop_; ++i) {
      int c = ::accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string req;
      char buf[4096];
      // Read headers, then Content-Length bytes of body.
      std::size_t need = std::string::npos;
      while (true) {
        auto n = ::recv(c, buf, sizeof buf, 0);
        if (n <= 0) break;
        req.append(buf, static_cast<std::size_t>(n));
        auto he = req.find("\r\n\r\n");
        if (he != std::string::npos && need == std::string::npos) {
          auto cl = req.find("Content-Length: ");
          if (cl == std::string::npos) cl = req.find("content-length: ");
          std::size_t len = cl == std::string::npos ? 0 : std::stoul(req.substr(cl + 16));
          need = he + 4 + len;
        }
        if (need != std::string::npos && req.size() >= need) break;
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        requests_.push_back(req);
      }
      const Answer& a = answers_[std::min(i, answers_.size() - 1)];
      for (const auto& p : a.pieces) {
        ::send(c, p.data(), p.size(), MSG_NOSIGNAL);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      while (a.hold && !stop_) {
        // Silent until the client gives up: recv returns 0 (or fails) once it closed.
        timeval tv{0, 20000};
        ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        auto n = ::recv(c, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
          client_closed_ = true;
          break;
        }
      }
      ::shutdown(c, SHUT_WR);
      ::close(c);
    }
  }

  std::vector<Answer> answers_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> client_closed_{false};
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> requests_;
};

const std::string kSseHead = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";

std::string sse(const json& j) { return "data: " + j.dump() + "\n\n"; }

json tc(int index, const std::string& id, const std::string& name, const std::string& args) {
  json f = {{"arguments", args}};
  if (!name.empty()) f["name"] = name;
  json t = {{"index", index}, {"function", f}};
  if (!id.empty()) t["id"] = id;
  return {{"choices", {{{"index", 0}, {"delta", {{"tool_calls", {t}}}}}}}};
}

/// A streamed tool call write_file(/out.md, "héllo") cut mid-JSON, and the stream bytes
/// cut mid-UTF-8 between TCP writes.
Answer split_tool_call_answer() {
  std::string body = sse(tc(0, "call_1", "write_file", "{\"file_")) + sse(tc(0, "", "", "path\": \"/out.md\", \"con")) +
                     sse(tc(0, "", "", "tent\": \"h\xC3\xA9llo\"}")) +
                     sse({{"choices", {{{"index", 0}, {"delta", json::object()}, {"finish_reason", "tool_calls"}}}}}) +
                     sse({{"choices", json::array()}, {"usage", {{"prompt_tokens", 5}, {"completion_tokens", 3}}}}) +
                     "data: [DONE]\n\n";
  Answer a{{kSseHead}};
  auto cut = body.find("\xC3") + 1;  // inside the 2-byte "é"
  a.pieces.push_back(body.substr(0, 7));
  a.pieces.push_back(body.substr(7, cut - 7));
  a.pieces.push_back(body.substr(cut));
  return a;
}

Answer text_answer(const std::string& text) {
  return Answer{{kSseHead, sse({{"choices", {{{"index", 0}, {"delta", {{"content", text}}}}}}}) + "data: [DONE]\n\n"}};
}

Answer status_answer(int status, const std::string& reason, const std::string& extra_headers = "") {
  std::string body = json{{"error", {{"message", "server says " + std::to_string(status)}}}}.dump();
  return Answer{{"HTTP/1.1 " + std::to_string(status) + " " + reason + "\r\nContent-Type: application/json\r\n" +
                 extra_headers + "Content-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body}};
}

/// Records a run's events; `stop` is the host's stop (RunEnv::stop).
struct Recorder : runtime::RunObserver {
  std::mutex mu;
  std::vector<std::pair<std::string, json>> events;
  std::stop_source stop;
  void emit(const std::string& t, json d) override {
    std::lock_guard lk(mu);
    events.emplace_back(t, d);
  }
  core::async::Task<void> checkpoint(json) override { co_return; }
};

/// Runs execute() to the end on `host`, with `rec.stop` as the host's stop.
runtime::RunResult execute_on(spec_engine::testing::Host& host, const runtime::RunRequest& req,
                              const runtime::RunLimits& limits, const runtime::ModelSettings& ms, Recorder& rec) {
  runtime::RunEnv env{host.rt, host.http, rec.stop.get_token()};
  return host.rt.run_sync(runtime::execute(req, limits, ms, rec, env));
}

/// One complete() call of `m` on `host` (no delta sink unless given), blocking until it ends.
models::ModelTurn complete_on(spec_engine::testing::Host& host, models::OpenAiModel& m, const models::ModelRequest& r,
                              const models::DeltaSink& sink = nullptr, std::stop_token stop = {}) {
  return host.rt.run_sync(m.complete(r, sink, stop));
}

models::OpenAiConfig config_for(const FakeServer& s) {
  models::OpenAiConfig c;
  c.base_url = s.base_url();
  c.api_key = "sk-test";
  c.request_timeout = std::chrono::milliseconds(5000);
  c.idle_timeout = std::chrono::milliseconds(2000);
  c.backoff_base = std::chrono::milliseconds(10);
  c.backoff_max = std::chrono::milliseconds(50);
  return c;
}

models::ModelRequest hi() {
  models::ModelRequest r;
  r.messages = json::array({{{"role", "user"}, {"content", "hi"}}});
  return r;
}

/// The error of a call that got `answer` on each of its `attempts` attempts (and checks
/// that it made exactly that many requests).
std::string error_after_attempts(const Answer& answer, int attempts) {
  FakeServer server({answer});
  auto cfg = config_for(server);
  cfg.max_attempts = attempts;
  spec_engine::testing::Host host;
  models::OpenAiModel m(cfg, host.http);
  std::string what;
  try {
    complete_on(host, m, hi());
    ADD_FAILURE() << "the call did not fail";
  } catch (const models::ModelError& e) {
    what = e.what();
  }
  EXPECT_EQ(server.requests().size(), static_cast<std::size_t>(attempts));
  return what;
}

}  // namespace

TEST(OpenAiServer, RunWithSplitToolCallArguments) {
  FakeServer server({split_tool_call_answer(), text_answer("Wrote it.")});
  json def = json::parse(R"({"graph": {"nodes": [{"id": "solo", "type": "AgentNode",
      "data": {"name": "Solo", "system_prompt": "sys", "tools": ["write_file"],
               "llm_config": {"provider": "openai", "model": "test-model", "temperature": 0}}}],
      "edges": [], "entryPoint": "solo"}})");
  runtime::ModelSettings ms;
  ms.openai_base_url = server.base_url();
  ms.openai_api_key = "sk-test";
  ms.request_timeout = std::chrono::milliseconds(5000);
  ms.idle_timeout = std::chrono::milliseconds(2000);
  Recorder rec;
  spec_engine::testing::Host host;
  auto r = execute_on(host, runtime::RunRequest{"t", def, {{"messages", "write"}}, std::nullopt}, {}, ms, rec);
  ASSERT_EQ(r.status, "completed") << r.error;
  EXPECT_EQ(r.files["/out.md"]["content"], json({"h\xC3\xA9llo"}));
  EXPECT_EQ(r.result["output"], "Wrote it.");
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].rfind("POST /v1/chat/completions ", 0), 0u) << reqs[0].substr(0, 80);
  EXPECT_NE(reqs[0].find("Bearer sk-test"), std::string::npos);
  auto body = json::parse(reqs[1].substr(reqs[1].find("\r\n\r\n") + 4));
  EXPECT_EQ(body["model"], "test-model");
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["messages"][2]["tool_calls"][0]["id"], "call_1");
  EXPECT_EQ(body["messages"][3]["role"], "tool");
  bool streamed = false;
  for (const auto& [t, d] : rec.events) streamed |= t == "on_llm_stream" && d["delta"] == "Wrote it.";
  EXPECT_TRUE(streamed);
  EXPECT_EQ(rec.events.front().second["model"], "openai");
}

TEST(OpenAiServer, RetriesServerErrorThenSucceeds) {
  FakeServer server({status_answer(500, "Internal Server Error"), status_answer(429, "Too Many Requests", "Retry-After: 0\r\n"),
                     text_answer("ok")});
  spec_engine::testing::Host host;
  models::OpenAiModel m(config_for(server), host.http);
  models::ModelRequest r;
  r.messages = json::array({{{"role", "user"}, {"content", "hi"}}});
  auto turn = complete_on(host, m, r);
  EXPECT_EQ(turn.content, "ok");
  EXPECT_EQ(server.requests().size(), 3u);
}

TEST(OpenAiServer, GivesUpAfterMaxAttempts) {
  const std::string e = error_after_attempts(status_answer(503, "Service Unavailable"), 2);
  EXPECT_NE(e.find("HTTP 503: server says 503"), std::string::npos) << e;
  EXPECT_NE(e.find("2 attempts"), std::string::npos) << e;
}

TEST(OpenAiServer, UnauthorizedFailsAtOnce) {
  FakeServer server({status_answer(401, "Unauthorized"), text_answer("never")});
  spec_engine::testing::Host host;
  models::OpenAiModel m(config_for(server), host.http);
  try {
    complete_on(host, m, models::ModelRequest{});
    FAIL();
  } catch (const models::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("HTTP 401: server says 401"), std::string::npos) << e.what();
  }
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(OpenAiServer, ConnectionRefusedFailsWithClearError) {
  int port;
  {
    FakeServer s({text_answer("x")});
    port = std::stoi(s.base_url().substr(17));
  }
  models::OpenAiConfig c;
  c.base_url = "http://127.0.0.1:" + std::to_string(port) + "/v1";
  c.backoff_base = std::chrono::milliseconds(1);
  c.request_timeout = std::chrono::milliseconds(2000);
  spec_engine::testing::Host host;
  models::OpenAiModel m(c, host.http);
  try {
    complete_on(host, m, models::ModelRequest{});
    FAIL();
  } catch (const models::ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1"), std::string::npos) << e.what();
  }
}

// Regression: a DELETE during a long streamed answer waited for the whole answer. The run's
// delta callback now throws on cancellation; the provider must let it through at once (no
// retry) and drop the connection.
TEST(OpenAiServer, CancelDuringSlowStreamReturnsPromptly) {
  Answer slow{{kSseHead}};
  for (int i = 0; i < 400; ++i) slow.pieces.push_back(sse({{"choices", {{{"index", 0}, {"delta", {{"content", "tok "}}}}}}}));
  slow.pieces.push_back("data: [DONE]\n\n");  // ~2 s of streaming at 5 ms per piece
  FakeServer server({slow, text_answer("never")});
  json def = json::parse(R"({"graph": {"nodes": [{"id": "solo", "type": "AgentNode",
      "data": {"name": "Solo", "system_prompt": "sys", "tools": [],
               "llm_config": {"provider": "openai", "model": "test-model"}}}],
      "edges": [], "entryPoint": "solo"}})");
  runtime::ModelSettings ms;
  ms.openai_base_url = server.base_url();
  ms.openai_api_key = "sk-test";
  ms.request_timeout = std::chrono::milliseconds(10000);
  ms.idle_timeout = std::chrono::milliseconds(5000);
  struct CancelAfterDeltas : Recorder {
    std::atomic<int> deltas{0};
    void emit(const std::string& t, json d) override {
      if (t == "on_llm_stream") ++deltas;
      Recorder::emit(t, d);
      if (deltas >= 3) stop.request_stop();
    }
  } rec;
  spec_engine::testing::Host host;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = execute_on(host, runtime::RunRequest{"t", def, {{"messages", "go"}}, std::nullopt}, {}, ms, rec);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(r.status, "cancelled") << r.error;
  EXPECT_LT(took, std::chrono::milliseconds(1000));
  EXPECT_EQ(rec.deltas.load(), 3);
  EXPECT_EQ(server.requests().size(), 1u);  // no retry, no further model call
}

// ---- Streams that end early or carry errors (issue 9 item 3) ----

// The connection closes in the middle of a tool call's arguments (no finish_reason, no
// [DONE]): the truncated call must never come back as a turn. Nothing reached the delta
// sink, so the call is retried; the retry's whole answer is used.
TEST(OpenAiServer, TruncatedToolCallIsRetriedNotReturned) {
  Answer cut{{kSseHead, sse(tc(0, "call_1", "write_file", "{\"file_path\": \"/a.md\", \"conte"))}};
  Answer whole{{kSseHead, sse(tc(0, "call_2", "ls", "{}")) +
                              sse({{"choices", {{{"index", 0}, {"delta", json::object()}, {"finish_reason", "tool_calls"}}}}})}};
  FakeServer server({cut, whole});
  spec_engine::testing::Host host;
  models::OpenAiModel m(config_for(server), host.http);
  auto turn = complete_on(host, m, hi());
  ASSERT_EQ(turn.tool_calls.size(), 1u);
  EXPECT_EQ(turn.tool_calls[0].id, "call_2");  // complete without [DONE]: accepted
  EXPECT_EQ(server.requests().size(), 2u);
}

TEST(OpenAiServer, TruncatedEveryTimeGivesUpWithAClearError) {
  Answer cut{{kSseHead, sse(tc(0, "call_1", "write_file", "{\"file_path\": \"/a.md\", \"conte"))}};
  const std::string e = error_after_attempts(cut, 2);
  EXPECT_NE(e.find("ended before the turn was complete"), std::string::npos) << e;
  EXPECT_NE(e.find("2 attempts"), std::string::npos) << e;
}

// Content already went to the sink: a retry would repeat it, so the call fails at once.
TEST(OpenAiServer, TruncatedAfterContentFailsWithoutRetry) {
  Answer cut{{kSseHead, sse({{"choices", {{{"index", 0}, {"delta", {{"content", "Half an ans"}}}}}}})}};
  FakeServer server({cut, text_answer("never")});
  spec_engine::testing::Host host;
  models::OpenAiModel m(config_for(server), host.http);
  std::string deltas;
  const models::DeltaSink sink = [&](std::string_view d) { deltas += d; };
  EXPECT_THROW(complete_on(host, m, hi(), sink), models::ModelError);
  EXPECT_EQ(deltas, "Half an ans");
  EXPECT_EQ(server.requests().size(), 1u);
}

TEST(OpenAiServer, ErrorMidStreamNamesTheProviderMessage) {
  Answer err{{kSseHead, sse({{"choices", {{{"index", 0}, {"delta", {{"content", "Hel"}}}}}}}),
              "data: {\"error\": {\"message\": \"model overloaded, try later\", \"type\": \"server_error\"}}\n\n"}};
  FakeServer server({err, text_answer("never")});
  spec_engine::testing::Host host;
  models::OpenAiModel m(config_for(server), host.http);
  try {
    complete_on(host, m, hi());
    FAIL();
  } catch (const models::ModelError& e) {
    EXPECT_STREQ(e.what(),
                 "openai: the model server sent an error in the stream: model overloaded, try later (type: server_error)");
  }
  EXPECT_EQ(server.requests().size(), 1u);
}

// ---- Stopping a call: a stop ends it at once, also before the first byte ----

namespace {

using namespace std::chrono_literals;

json solo_openai_definition() {
  return json::parse(R"({"graph": {"nodes": [{"id": "solo", "type": "AgentNode",
      "data": {"name": "Solo", "system_prompt": "sys", "tools": [],
               "llm_config": {"provider": "openai", "model": "test-model"}}}],
      "edges": [], "entryPoint": "solo"}})");
}

/// Timeouts far longer than any test waits: only a stop can end the call early.
runtime::ModelSettings patient_settings(const FakeServer& s) {
  runtime::ModelSettings ms;
  ms.openai_base_url = s.base_url();
  ms.openai_api_key = "sk-test";
  ms.request_timeout = 60s;
  ms.idle_timeout = 60s;
  return ms;
}

/// Requests `stop` shortly after the server received its first request.
std::thread stop_after_first_request(FakeServer& s, std::stop_source& stop) {
  return std::thread([&s, &stop] {
    for (int i = 0; i < 1000 && s.requests().empty(); ++i) std::this_thread::sleep_for(10ms);
    std::this_thread::sleep_for(100ms);
    stop.request_stop();
  });
}

bool eventually(const std::function<bool()>& pred) {
  for (int i = 0; i < 500; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

}  // namespace

/// One call with `cfg` against `server`, stopped shortly after its first request arrived:
/// it must end with ModelCancelled, long before any of the call's own timeouts.
void expect_stopped_call(FakeServer& server, const models::OpenAiConfig& cfg) {
  spec_engine::testing::Host host;
  models::OpenAiModel m(cfg, host.http);
  std::stop_source stop;
  auto stopper = stop_after_first_request(server, stop);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(complete_on(host, m, hi(), nullptr, stop.get_token()), models::ModelCancelled);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 20s);
  stopper.join();
  EXPECT_EQ(server.requests().size(), 1u);  // not retried
}

// A DELETE while the model has not sent a byte yet: the call ends with ModelCancelled at once
// (not after the 60 s timeouts), the connection is dropped and the call is not retried.
TEST(OpenAiServer, StopBeforeTheFirstByteEndsTheCall) {
  FakeServer server({Answer{{}, true}, text_answer("never")});
  auto cfg = config_for(server);
  cfg.request_timeout = 60s;
  cfg.idle_timeout = 60s;
  expect_stopped_call(server, cfg);
  EXPECT_TRUE(eventually([&] { return server.client_closed(); }));
}

// A stop while waiting out a Retry-After ends the call without another attempt.
TEST(OpenAiServer, StopDuringBackoffEndsTheCall) {
  FakeServer server({status_answer(503, "Service Unavailable", "Retry-After: 30\r\n"), text_answer("never")});
  auto cfg = config_for(server);
  cfg.max_retry_after = 60s;
  expect_stopped_call(server, cfg);
}

// The host's stop (DELETE, shutdown) reaches a run whose model call waits for its first byte:
// the run ends "cancelled", with no error event.
TEST(OpenAiServer, HostStopEndsARunWaitingForTheModel) {
  FakeServer server({Answer{{}, true}});
  spec_engine::testing::Host host;
  Recorder rec;
  auto stopper = stop_after_first_request(server, rec.stop);
  auto r = execute_on(host, runtime::RunRequest{"t", solo_openai_definition(), {{"messages", "go"}}, std::nullopt}, {},
                      patient_settings(server), rec);
  stopper.join();
  EXPECT_EQ(r.status, "cancelled") << r.error;
  for (const auto& [t, d] : rec.events) EXPECT_NE(t, "error") << d.dump();
  EXPECT_TRUE(eventually([&] { return server.client_closed(); }));
}

// --max-run-seconds is enforced while the model is silent: the run fails with the wall-time
// message after about 1 s, not after the model's 60 s timeouts.
TEST(OpenAiServer, WallTimeLimitEndsARunWaitingForTheModel) {
  FakeServer server({Answer{{}, true}});
  spec_engine::testing::Host host;
  Recorder rec;
  runtime::RunLimits lim;
  lim.max_wall_time = 1s;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = execute_on(host, runtime::RunRequest{"t", solo_openai_definition(), {{"messages", "go"}}, std::nullopt}, lim,
                      patient_settings(server), rec);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);
  EXPECT_EQ(r.status, "failed");
  EXPECT_EQ(r.error, "wall time limit reached: the run took more than 1 s (max_run_seconds) while waiting for the model");
  ASSERT_FALSE(rec.events.empty());
  EXPECT_EQ(rec.events.back().first, "error");
  EXPECT_EQ(rec.events.back().second["error"], r.error);
  EXPECT_TRUE(eventually([&] { return server.client_closed(); }));
}
