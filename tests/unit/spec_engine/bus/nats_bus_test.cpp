// NATS JetStream intake (bus/nats_bus): the pure helpers, the job parsing shared with
// POST /spec-engine/invoke, and an end-to-end test that starts the REAL spec-engine binary
// against the REAL nats-server of scripts/with-test-services.sh (TEST_NATS_URL), using cnats
// as the client.
#include "spec_engine/bus/nats_bus.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>
#include <nats/nats.h>

#include "core/http_client.hpp"
#include "core/util.hpp"
#include "spec_engine/api/invoke.hpp"

namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;
using spec_engine::bus::job_id_hint;
using spec_engine::bus::make_status_event;
using spec_engine::bus::sniff_media_type;
using spec_engine::bus::status_subject;

nlohmann::json definition() {
  return {{"graph",
           {{"nodes", nlohmann::json::array({{{"id", "main"},
                                              {"type", "AgentNode"},
                                              {"data",
                                               {{"name", "Main"},
                                                {"system_prompt", "Write the spec."},
                                                {"tools", {"ls", "read_file", "write_file"}}}}}})},
            {"edges", nlohmann::json::array()},
            {"entryPoint", "main"}}}};
}

nlohmann::json job(const std::string& id) {
  return {{"trace_id", "trace-" + id}, {"job_id", id}, {"agent_definition", definition()},
          {"input_payload", {{"messages", "Write SPEC.md"}}}};
}

nlohmann::json cloudevent(const nlohmann::json& data) {
  return {{"specversion", "1.0"}, {"id", core::uuid4()}, {"source", "ide-orchestrator"},
          {"type", "io.agentic-ide.agent.execute"}, {"datacontenttype", "application/json"}, {"data", data}};
}

// ---------------------------------------------------------------------------
// Pure helpers and the shared parsing path

TEST(NatsMessage, SniffsStructuredCloudEventsAndPlainJobs) {
  EXPECT_EQ(sniff_media_type(cloudevent(job("a")).dump()), "application/cloudevents+json");
  EXPECT_EQ(sniff_media_type(job("a").dump()), "application/json");
  EXPECT_EQ(sniff_media_type("not json {"), "application/json");
  EXPECT_EQ(sniff_media_type("[1,2]"), "application/json");
  EXPECT_EQ(sniff_media_type(""), "application/json");
}

TEST(NatsMessage, JobIdHint) {
  EXPECT_EQ(job_id_hint(cloudevent(job("job-7")).dump()), "job-7");
  EXPECT_EQ(job_id_hint(job("job-8").dump()), "job-8");
  auto no_id = job("x");
  no_id.erase("job_id");
  EXPECT_EQ(job_id_hint(cloudevent(no_id).dump()), "invalid");
  EXPECT_EQ(job_id_hint(nlohmann::json{{"job_id", "bad id*"}}.dump()), "invalid");
  EXPECT_EQ(job_id_hint(nlohmann::json{{"job_id", 42}}.dump()), "invalid");
  EXPECT_EQ(job_id_hint("\xff\xfe garbage"), "invalid");
  EXPECT_EQ(job_id_hint(""), "invalid");
  // Hostile input goes through the bounded parser: no crash, just "invalid".
  const std::string deep = std::string(150000, '[') + std::string(150000, ']');
  EXPECT_EQ(job_id_hint(R"({"job_id": "j", "x": )" + deep + "}"), "invalid");
  EXPECT_EQ(sniff_media_type(R"({"specversion": "1.0", "x": )" + deep + "}"), "application/json");
  EXPECT_EQ(job_id_hint(R"({"job_id": "j", "x": 1e999})"), "invalid");
}

TEST(NatsMessage, StatusSubjectKeepsOneToken) {
  EXPECT_EQ(status_subject("agent.status.", "3f6c1a9e-0000-4000-8000-000000000001"),
            "agent.status.3f6c1a9e-0000-4000-8000-000000000001");
  EXPECT_EQ(status_subject("agent.status.", "a.b..c"), "agent.status.a_b__c");
  EXPECT_EQ(status_subject("agent.status.", ""), "agent.status.invalid");
}

TEST(NatsMessage, StatusEventIsACloudEvent) {
  const auto ev = make_status_event("t-1", "failed", "boom", {{"errors", nlohmann::json::array()}});
  EXPECT_EQ(ev["specversion"], "1.0");
  EXPECT_TRUE(core::is_uuid(ev["id"].get<std::string>()));
  EXPECT_EQ(ev["source"], "spec-engine");
  EXPECT_EQ(ev["type"], "io.agentic-ide.agent.status");
  EXPECT_EQ(ev["subject"], "t-1");
  EXPECT_EQ(ev["datacontenttype"], "application/json");
  EXPECT_TRUE(ev["time"].is_string());
  EXPECT_EQ(ev["data"]["thread_id"], "t-1");
  EXPECT_EQ(ev["data"]["status"], "failed");
  EXPECT_EQ(ev["data"]["error"], "boom");
  EXPECT_TRUE(ev["data"]["errors"].is_array());
  const auto ok = make_status_event("t-2", "completed", "");
  EXPECT_FALSE(ok["data"].contains("error"));
  EXPECT_NE(ok["id"], ev["id"]);
}

TEST(NatsMessage, ParseJobMessageIsTheInvokePath) {
  // Same answer through parse_job_message (NATS) and parse_invoke (HTTP).
  core::http::Headers h;
  h.set("Content-Type", "application/cloudevents+json");
  const auto body = cloudevent(job("job-1")).dump();
  auto nats = spec_engine::api::parse_job_message(h, body);
  core::http::Request req;
  req.method = "POST";
  req.headers = h;
  req.body = body;
  auto http = spec_engine::api::parse_invoke(req);
  ASSERT_TRUE(std::holds_alternative<spec_engine::api::ParsedInvoke>(nats));
  ASSERT_TRUE(std::holds_alternative<spec_engine::api::ParsedInvoke>(http));
  const auto& a = std::get<spec_engine::api::ParsedInvoke>(nats);
  const auto& b = std::get<spec_engine::api::ParsedInvoke>(http);
  EXPECT_EQ(a.mode, "cloudevent-structured");
  EXPECT_EQ(a.job.job_id, "job-1");
  EXPECT_EQ(a.job.job_id, b.job.job_id);
  EXPECT_EQ(a.job.agent_definition, b.job.agent_definition);

  auto bad = job("x");
  bad.erase("job_id");
  auto err = spec_engine::api::parse_job_message(h, cloudevent(bad).dump());
  ASSERT_TRUE(std::holds_alternative<spec_engine::api::InvokeError>(err));
  bool named = false;
  for (const auto& e : std::get<spec_engine::api::InvokeError>(err).errors) named |= e.field == "data.job_id";
  EXPECT_TRUE(named);

  core::http::Headers plain;
  plain.set("Content-Type", sniff_media_type(job("job-2").dump()));
  auto p = spec_engine::api::parse_job_message(plain, job("job-2").dump());
  ASSERT_TRUE(std::holds_alternative<spec_engine::api::ParsedInvoke>(p));
  EXPECT_EQ(std::get<spec_engine::api::ParsedInvoke>(p).mode, "json");
}

// ---------------------------------------------------------------------------
// End to end: real spec-engine + real nats-server

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// The spec-engine process; SIGTERM + wait on destruction.
class Engine {
 public:
  Engine(const std::vector<std::string>& args, const fs::path& log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
  }
  ~Engine() { stop(); }
  /// SIGTERM, then waits up to 30 s; returns the exit status (or -1).
  int stop() {
    if (pid_ <= 0) return exit_;
    ::kill(pid_, SIGTERM);
    for (int i = 0; i < 300; ++i) {
      int st = 0;
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        pid_ = -1;
        exit_ = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        return exit_;
      }
      std::this_thread::sleep_for(100ms);
    }
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return exit_;
  }
  bool alive() {
    if (pid_ <= 0) return false;
    int st = 0;
    return ::waitpid(pid_, &st, WNOHANG) == 0;
  }

 private:
  pid_t pid_ = -1;
  int exit_ = -1;
};

core::http::ClientResponse http_get(int port, const std::string& path) {
  core::http::ClientRequest r;
  r.url = "http://127.0.0.1:" + std::to_string(port) + path;
  r.timeout = 5s;
  return core::http::request(r);
}

/// The NATS client side of the test: connection, JetStream context, status subscription.
struct Client {
  natsConnection* nc = nullptr;
  jsCtx* js = nullptr;
  natsSubscription* status = nullptr;
  ~Client() {
    if (status) natsSubscription_Destroy(status);
    if (js) jsCtx_Destroy(js);
    if (nc) natsConnection_Destroy(nc);
  }
};

/// Publishes `body` to JetStream (waits for the stream's ack); `content_type` set as header when non-empty.
void js_publish(jsCtx* js, const std::string& subject, const std::string& body, const std::string& content_type) {
  natsMsg* m = nullptr;
  ASSERT_EQ(natsMsg_Create(&m, subject.c_str(), nullptr, body.data(), static_cast<int>(body.size())), NATS_OK);
  if (!content_type.empty()) {
    ASSERT_EQ(natsMsgHeader_Set(m, "Content-Type", content_type.c_str()), NATS_OK);
  }
  jsPubAck* ack = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  EXPECT_EQ(js_PublishMsg(&ack, js, m, nullptr, &jerr), NATS_OK) << "JetStream error " << jerr;
  jsPubAck_Destroy(ack);
  natsMsg_Destroy(m);
}

/// Next status event on `subject` within `timeout` (others are kept in `seen`).
std::optional<nlohmann::json> next_status(Client& c, const std::string& subject, std::chrono::milliseconds timeout,
                                          std::vector<std::pair<std::string, nlohmann::json>>& seen) {
  for (auto it = seen.begin(); it != seen.end(); ++it) {
    if (it->first == subject) {
      auto ev = it->second;
      seen.erase(it);
      return ev;
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    natsMsg* m = nullptr;
    if (natsSubscription_NextMsg(&m, c.status, 200) != NATS_OK) continue;
    const std::string subj = natsMsg_GetSubject(m);
    const char* ct = nullptr;
    const bool ce_header = natsMsgHeader_Get(m, "Content-Type", &ct) == NATS_OK && ct != nullptr &&
                           std::string(ct) == "application/cloudevents+json";
    auto ev = nlohmann::json::parse(std::string(natsMsg_GetData(m), static_cast<std::size_t>(natsMsg_GetDataLength(m))),
                                    nullptr, false);
    natsMsg_Destroy(m);
    EXPECT_TRUE(ce_header) << "status event without Content-Type application/cloudevents+json";
    if (subj == subject) return ev;
    seen.emplace_back(subj, ev);
  }
  return std::nullopt;
}

/// Consumer counters: {num_ack_pending, num_redelivered, num_pending}.
std::optional<std::tuple<int64_t, int64_t, uint64_t>> consumer_counts(Client& c, const std::string& stream,
                                                                     const std::string& consumer) {
  jsConsumerInfo* ci = nullptr;
  if (js_GetConsumerInfo(&ci, c.js, stream.c_str(), consumer.c_str(), nullptr, nullptr) != NATS_OK) return std::nullopt;
  auto out = std::make_tuple(ci->NumAckPending, ci->NumRedelivered, ci->NumPending);
  jsConsumerInfo_Destroy(ci);
  return out;
}

/// Waits until the consumer has delivered and settled every message.
bool wait_settled(Client& c, const std::string& stream, const std::string& consumer) {
  for (int i = 0; i < 100; ++i) {
    auto counts = consumer_counts(c, stream, consumer);
    if (counts && std::get<0>(*counts) == 0 && std::get<2>(*counts) == 0) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

/// Value of a metric sample line "name{labels} value" in a Prometheus text page; -1 when absent.
double metric(const std::string& page, const std::string& name_and_labels) {
  std::istringstream in(page);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name_and_labels + " ", 0) == 0) return std::stod(line.substr(name_and_labels.size() + 1));
  }
  return -1;
}

TEST(NatsEngine, JobsFromJetStreamRunOnceAndReportStatus) {
  const char* url_env = std::getenv("TEST_NATS_URL");
  if (url_env == nullptr || *url_env == '\0') {
    GTEST_SKIP() << "TEST_NATS_URL is not set: run under scripts/with-test-services.sh (make test does)";
  }
  const std::string url = url_env;
  const std::string tag = core::uuid4().substr(0, 8);
  const std::string stream = "T_AGENT_EXECUTE_" + tag;
  const std::string consumer = "spec-engine-" + tag;

  const fs::path dir = fs::temp_directory_path() / ("nats-engine-" + tag);
  fs::create_directories(dir / "data");
  {
    std::ofstream script(dir / "script.json");
    script << nlohmann::json{{"turns",
                              {{{"node", "main"},
                                {"content", "Writing the spec."},
                                {"tool_calls",
                                 {{{"id", "c1"},
                                   {"name", "write_file"},
                                   {"arguments", {{"file_path", "/SPEC.md"}, {"content", "# Spec\n"}}}}}}},
                               {{"node", "main"}, {"content", "Done."}}}}}
                  .dump();
  }
  const int port = free_port();
  ASSERT_GT(port, 0);

  Client c;
  ASSERT_EQ(natsConnection_ConnectTo(&c.nc, url.c_str()), NATS_OK);
  ASSERT_EQ(natsConnection_JetStream(&c.js, c.nc, nullptr), NATS_OK);
  ASSERT_EQ(natsConnection_SubscribeSync(&c.status, c.nc, "agent.status.>"), NATS_OK);
  ASSERT_EQ(natsConnection_FlushTimeout(c.nc, 5000), NATS_OK);

  Engine engine({PROJECT_BINARY_DIR "/bin/spec-engine", "--port", std::to_string(port), "--data-dir",
                 (dir / "data").string(), "--model-override", "scripted:" + (dir / "script.json").string(),
                 "--nats-url", url, "--nats-stream", stream, "--nats-consumer", consumer, "--shutdown-grace-ms",
                 "2000", "--log-level", "debug"},
                dir / "engine.log");
  struct Cleanup {
    Client& c;
    std::string stream;
    fs::path dir;
    ~Cleanup() {
      if (::testing::Test::HasFailure() || std::getenv("NATS_TEST_PRINT_LOG") != nullptr) {
        std::cerr << "---- spec-engine log ----\n" << read_file(dir / "engine.log") << "----\n";
      }
      js_DeleteStream(c.js, stream.c_str(), nullptr, nullptr);
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{c, stream, dir};

  // Ready, with NATS connected.
  bool ready = false;
  for (int i = 0; i < 200 && !ready && engine.alive(); ++i) {
    try {
      auto r = http_get(port, "/ready");
      if (r.status == 200) {
        auto body = nlohmann::json::parse(r.body);
        EXPECT_EQ(body["checks"]["nats"], "connected");
        ready = true;
      }
    } catch (const std::exception&) {
    }
    if (!ready) std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(ready) << "engine not ready; log:\n" << read_file(dir / "engine.log");

  std::vector<std::pair<std::string, nlohmann::json>> seen;
  const std::string job_id = core::uuid4();
  const std::string subject = "agent.execute." + tag;

  // 1. A structured CloudEvent without Content-Type header (sniffed) runs and reports completion.
  const std::string event = cloudevent(job(job_id)).dump();
  js_publish(c.js, subject, event, "");
  auto done = next_status(c, "agent.status." + job_id, 30s, seen);
  ASSERT_TRUE(done.has_value()) << "no completion event; log:\n" << read_file(dir / "engine.log");
  EXPECT_EQ((*done)["specversion"], "1.0");
  EXPECT_EQ((*done)["type"], "io.agentic-ide.agent.status");
  EXPECT_EQ((*done)["source"], "spec-engine");
  EXPECT_EQ((*done)["subject"], job_id);
  EXPECT_TRUE(core::is_uuid((*done)["id"].get<std::string>()));
  EXPECT_EQ((*done)["data"]["thread_id"], job_id);
  EXPECT_EQ((*done)["data"]["status"], "completed") << done->dump();

  auto state = http_get(port, "/spec-engine/state/" + job_id);
  ASSERT_EQ(state.status, 200) << state.body;
  auto st = nlohmann::json::parse(state.body);
  EXPECT_EQ(st["status"], "completed");
  EXPECT_EQ(st["trace_id"], "trace-" + job_id);
  ASSERT_TRUE(st["generated_files"].is_object()) << state.body;
  EXPECT_TRUE(st["generated_files"].contains("/SPEC.md")) << state.body;
  EXPECT_NE(st["generated_files"].dump().find("# Spec"), std::string::npos) << state.body;
  const auto last_seq = st["last_seq"];

  // 2. The same job again (with an explicit Content-Type): acked, never run a second time.
  js_publish(c.js, subject, event, "application/cloudevents+json");
  ASSERT_TRUE(wait_settled(c, stream, consumer));
  EXPECT_FALSE(next_status(c, "agent.status." + job_id, 1500ms, seen).has_value()) << "duplicate job ran again";
  st = nlohmann::json::parse(http_get(port, "/spec-engine/state/" + job_id).body);
  EXPECT_EQ(st["status"], "completed");
  EXPECT_EQ(st["last_seq"], last_seq) << "duplicate job produced new events";

  // 3. An invalid job (no job_id): acked (not redelivered) and answered with a failed status.
  auto bad = job("unused");
  bad.erase("job_id");
  js_publish(c.js, subject, cloudevent(bad).dump(), "application/cloudevents+json");
  auto failed = next_status(c, "agent.status.invalid", 10s, seen);
  ASSERT_TRUE(failed.has_value()) << "no failure event; log:\n" << read_file(dir / "engine.log");
  EXPECT_EQ((*failed)["data"]["status"], "failed");
  EXPECT_NE((*failed)["data"]["error"].get<std::string>().find("invalid job"), std::string::npos);
  ASSERT_TRUE((*failed)["data"]["errors"].is_array());
  EXPECT_NE((*failed)["data"]["errors"].dump().find("data.job_id"), std::string::npos) << failed->dump();
  ASSERT_TRUE(wait_settled(c, stream, consumer));
  auto counts = consumer_counts(c, stream, consumer);
  ASSERT_TRUE(counts.has_value());
  EXPECT_EQ(std::get<0>(*counts), 0) << "messages still pending ack";
  EXPECT_EQ(std::get<1>(*counts), 0) << "a message was redelivered";
  EXPECT_FALSE(next_status(c, "agent.status.invalid", 1500ms, seen).has_value()) << "invalid job looped";

  // 4. Garbage that is not JSON at all: acked, failed status, engine unharmed.
  js_publish(c.js, subject, "\xff not json", "");
  auto garbage = next_status(c, "agent.status.invalid", 10s, seen);
  ASSERT_TRUE(garbage.has_value());
  EXPECT_EQ((*garbage)["data"]["status"], "failed");
  ASSERT_TRUE(wait_settled(c, stream, consumer));

  // 5. A job nested 150,000 deep (300 KB, under the message limit): refused by the bounded
  //    parser (docs/json-input.md), acked, failed status naming the limit, engine unharmed.
  const std::string deep = std::string(150000, '[') + std::string(150000, ']');
  js_publish(c.js, subject, R"({"job_id": "deep-1", "input_payload": {"extra": )" + deep + "}}", "application/json");
  auto too_deep = next_status(c, "agent.status.invalid", 10s, seen);
  ASSERT_TRUE(too_deep.has_value()) << "no failure event; log:\n" << read_file(dir / "engine.log");
  EXPECT_EQ((*too_deep)["data"]["status"], "failed");
  EXPECT_NE((*too_deep)["data"]["errors"].dump().find("limit of 64 levels"), std::string::npos) << too_deep->dump();
  ASSERT_TRUE(wait_settled(c, stream, consumer));
  EXPECT_EQ(http_get(port, "/health").status, 200) << "engine died";

  // Metrics by outcome.
  auto metrics = http_get(port, "/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_EQ(metric(metrics.body, "spec_engine_nats_jobs_total{outcome=\"accepted\"}"), 1) << metrics.body;
  EXPECT_EQ(metric(metrics.body, "spec_engine_nats_jobs_total{outcome=\"duplicate\"}"), 1);
  EXPECT_EQ(metric(metrics.body, "spec_engine_nats_jobs_total{outcome=\"invalid\"}"), 3);

  // Clean shutdown on SIGTERM (drain), exit code 0.
  EXPECT_EQ(engine.stop(), 0) << read_file(dir / "engine.log");
}

}  // namespace
