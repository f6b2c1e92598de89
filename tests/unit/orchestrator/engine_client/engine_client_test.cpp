// EngineClient against a real local HTTP server (core::http::Server as a controllable
// fake engine): transient-only retries, 4xx not retried, connection refused, keep-alive reuse,
// circuit breaker in front of invoke only (open -> fail fast -> half-open -> closed), and a local
// EMFILE that is answered 503 without counting against the engine.
#include "orchestrator/engine_client/engine_client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "../../core/span_sink.hpp"

#include "core/metrics.hpp"
#include "core/server.hpp"
#include "core/ws.hpp"

using namespace std::chrono_literals;
using orchestrator::engine_client::EngineClient;
using orchestrator::engine_client::EngineClientOptions;
using orchestrator::engine_client::EngineRejected;
using orchestrator::engine_client::EngineUnavailable;

namespace {

/// A fake engine whose answers the test scripts: `statuses` are consumed one per
/// request (the last one repeats).
class FakeEngine {
 public:
  FakeEngine() {
    core::http::Router r;
    r.add("POST", "/spec-engine/invoke", [this](core::http::Request& req) { return answer(req, "invoke"); });
    r.add("GET", "/spec-engine/state/{id}", [this](core::http::Request& req) { return answer(req, "state"); });
    r.add("DELETE", "/spec-engine/threads/{id}", [this](core::http::Request& req) { return answer(req, "delete"); });
    r.add_ws("/spec-engine/stream/{id}", [this](core::http::Request& req) {
      core::http::WsAccept a;
      {
        std::lock_guard lk(mu_);
        last_after_seq_ = req.query_param("after_seq").value_or("");
      }
      if (req.path_params.at("id") == "unknown") {
        a.reject = core::http::Response::problem(404, "Not Found", "thread unknown");
        return a;
      }
      if (req.path_params.at("id") == "slow") std::this_thread::sleep_for(std::chrono::milliseconds(600));
      a.on_open = [](std::shared_ptr<core::http::WsConnection> c) {
        c->send_text(R"({"event_type":"end","data":{"status":"completed"},"seq":1})");
        c->close(1000);
      };
      return a;
    });
    core::http::ServerOptions o;
    o.io_threads = 1;
    o.blocking_threads = 4;
    server_ = std::make_unique<core::http::Server>(o, std::move(r));
    server_->start();
  }
  ~FakeEngine() { server_->stop(); }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  /// Statuses to answer, in order; the last repeats forever.
  void script(std::vector<int> statuses) {
    std::lock_guard lk(mu_);
    statuses_ = std::move(statuses);
    next_ = 0;
  }
  int hits() const { return hits_.load(); }
  /// Every invoke takes this long to answer (on one of the fake's 4 handler threads).
  void invoke_delay(std::chrono::milliseconds d) { invoke_delay_ms_ = static_cast<int>(d.count()); }
  /// Most invokes the fake was answering at the same time.
  int most_invokes_at_once() const { return most_invokes_.load(); }
  std::string last_after_seq() const {
    std::lock_guard lk(mu_);
    return last_after_seq_;
  }
  std::string last_traceparent() const {
    std::lock_guard lk(mu_);
    return last_traceparent_;
  }

 private:
  core::http::Response answer(core::http::Request& req, const std::string& endpoint) {
    ++hits_;
    if (endpoint == "invoke" && invoke_delay_ms_ > 0) {
      const int now = ++invokes_;
      int seen = most_invokes_.load();
      while (now > seen && !most_invokes_.compare_exchange_weak(seen, now)) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(invoke_delay_ms_.load()));
      --invokes_;
    }
    int status = 200;
    {
      std::lock_guard lk(mu_);
      last_traceparent_ = req.headers.get("traceparent").value_or("");
      if (!statuses_.empty()) {
        status = statuses_[std::min(next_, statuses_.size() - 1)];
        ++next_;
      }
    }
    if (status == 202 || status == 200) {
      if (endpoint == "invoke") return core::http::Response::json(202, {{"thread_id", "t-1"}, {"status", "started"}});
      if (endpoint == "state") return core::http::Response::json(200, {{"thread_id", req.path_params["id"]}, {"status", "running"}});
      return core::http::Response::json(200, {{"deleted", true}});
    }
    if (status == 204) return core::http::Response::text(204, "");
    auto r = core::http::Response::problem(status, "Engine says no", "field agent_definition is missing");
    if (status == 429) r.headers.set("Retry-After", "7");
    return r;
  }

  std::unique_ptr<core::http::Server> server_;
  mutable std::mutex mu_;
  std::vector<int> statuses_;
  std::size_t next_ = 0;
  std::atomic<int> hits_{0};
  std::atomic<int> invoke_delay_ms_{0}, invokes_{0}, most_invokes_{0};
  std::string last_after_seq_, last_traceparent_;
};

/// A loopback port with nothing listening (bound, then closed).
int closed_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

EngineClientOptions fast_options(const std::string& url, int attempts = 3) {
  EngineClientOptions o;
  o.base_url = url;
  o.request_timeout = 2000ms;
  o.retry = core::RetryPolicy{attempts, 1ms, 5ms};
  o.breaker = core::CircuitBreaker::Options{5, 400ms, 3};
  return o;
}

double counter(const std::string& endpoint, const std::string& status) {
  return core::metrics::global()
      .counter("ide_orchestrator_spec_engine_requests_total", "")
      .value({{"endpoint", endpoint}, {"status", status}});
}

nlohmann::json job() { return {{"job_id", "t-1"}, {"trace_id", "x"}, {"agent_definition", nlohmann::json::object()}}; }

/// The runtime the client runs on (the orchestrator main owns one).
struct Rt {
  Rt() { rt.start(); }
  core::async::Runtime rt{core::async::RuntimeOptions{2, 2, "engine-client-test"}};
};

}  // namespace

// At most max_invokes_in_flight invokes reach the engine at once: six started together against
// an engine that could answer four at a time (its handler threads) arrive two by two, and all
// six get their thread. The waiting ones hold no thread (the client's runtime has two).
TEST(EngineClient, InvokesInFlightAreBounded) {
  FakeEngine engine;
  engine.invoke_delay(150ms);
  Rt r;
  EngineClientOptions o = fast_options(engine.url());
  o.max_invokes_in_flight = 2;
  EngineClient client(o, r.rt);
  std::atomic<int> answered{0};
  for (int i = 0; i < 6; ++i) {
    r.rt.spawn([](EngineClient& c, std::atomic<int>& n) -> core::async::Task<void> {
      core::async::Task<std::string> sent = c.invoke_async(job());
      if (co_await std::move(sent) == "t-1") ++n;
    }(client, answered));
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (answered < 6 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(answered.load(), 6);
  EXPECT_EQ(engine.most_invokes_at_once(), 2);
  EXPECT_EQ(engine.hits(), 6);
  r.rt.stop();  // before the client goes, should an invoke still run
}

TEST(EngineClient, RetriesTwoServerErrorsThenSucceeds) {
  FakeEngine engine;
  engine.script({503, 500, 202});
  Rt r;
  EngineClient client(fast_options(engine.url()), r.rt);
  const double before = counter("invoke", "503");
  core::testing::SpanSink sink;
  EXPECT_EQ(client.invoke(job(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"), "t-1");
  EXPECT_EQ(engine.hits(), 3);
  EXPECT_EQ(counter("invoke", "503"), before + 1);
  // One CLIENT span for the call (its three attempts), a child of the caller's span; the engine
  // gets it as its parent.
  const auto spans = sink.children("b7ad6b7169203331", "POST /spec-engine/invoke");
  ASSERT_EQ(spans.size(), 1u);
  EXPECT_EQ(spans[0]["kind"], core::tracing::kClient);
  EXPECT_EQ(spans[0]["traceId"], "0af7651916cd43dd8448eb211c80319c");
  EXPECT_FALSE(spans[0].contains("status"));
  EXPECT_EQ(engine.last_traceparent(),
            "00-0af7651916cd43dd8448eb211c80319c-" + spans[0]["spanId"].get<std::string>() + "-01");
  EXPECT_EQ(client.breaker_state(), "closed");
}

TEST(EngineClient, TooManyRequestsIsRetried) {
  FakeEngine engine;
  engine.script({429, 202});
  Rt r;
  EngineClient client(fast_options(engine.url()), r.rt);
  EXPECT_EQ(client.invoke(job()), "t-1");
  EXPECT_EQ(engine.hits(), 2);
}

TEST(EngineClient, PersistentTooManyRequestsHonoursRetryAfter) {
  FakeEngine engine;
  engine.script({429});
  Rt r;
  EngineClient client(fast_options(engine.url()), r.rt);
  try {
    client.invoke(job());
    FAIL() << "expected EngineUnavailable";
  } catch (const EngineUnavailable& e) {
    EXPECT_GE(e.retry_after(), 7s);
    EXPECT_NE(std::string(e.what()).find("try again in"), std::string::npos);
  }
  EXPECT_EQ(engine.hits(), 3);
}

TEST(EngineClient, BadRequestIsNotRetried) {
  FakeEngine engine;
  engine.script({400});
  Rt r;
  EngineClient client(fast_options(engine.url()), r.rt);
  try {
    client.invoke(job());
    FAIL() << "expected EngineRejected";
  } catch (const EngineRejected& e) {
    EXPECT_EQ(e.status(), 400);
    EXPECT_NE(std::string(e.what()).find("agent_definition"), std::string::npos) << e.what();
    EXPECT_EQ(e.problem().value("status", 0), 400);
  }
  EXPECT_EQ(engine.hits(), 1);
  EXPECT_EQ(client.breaker_state(), "closed");
}

TEST(EngineClient, ConnectionRefusedIsEngineUnavailable) {
  Rt r;
  EngineClient client(fast_options("http://127.0.0.1:" + std::to_string(closed_port())), r.rt);
  try {
    client.invoke(job());
    FAIL() << "expected EngineUnavailable";
  } catch (const EngineUnavailable& e) {
    EXPECT_GE(e.retry_after(), 1s);
    EXPECT_EQ(std::string(e.what()).rfind("The refinement engine is unavailable; try again in ", 0), 0u) << e.what();
  }
  EXPECT_THROW(client.get_state("t"), EngineUnavailable);
  EXPECT_THROW(r.rt.run_sync(client.open_stream("t", 0)), EngineUnavailable);
}

TEST(EngineClient, StateNotFoundIsNulloptAndDeleteOfMissingIsTrue) {
  FakeEngine engine;
  engine.script({404});
  Rt r;
  EngineClient client(fast_options(engine.url()), r.rt);
  EXPECT_FALSE(client.get_state("nope").has_value());
  EXPECT_TRUE(client.delete_thread("nope"));
  EXPECT_EQ(engine.hits(), 2);
  engine.script({200});
  auto st = client.get_state("t-9");
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->at("thread_id"), "t-9");
  EXPECT_EQ(client.breaker_state(), "closed");
}

TEST(EngineClient, OpenStreamPassesAfterSeqAndMaps404) {
  FakeEngine engine;
  Rt r;
  EngineClient client(fast_options(engine.url()), r.rt);
  auto ws = r.rt.run_sync(client.open_stream("t-1", 42));
  auto msg = r.rt.run_sync(ws->read());
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(nlohmann::json::parse(*msg).at("event_type"), "end");
  EXPECT_EQ(engine.last_after_seq(), "42");
  r.rt.run_sync(ws->close());
  try {
    r.rt.run_sync(client.open_stream("unknown", 0));
    FAIL() << "expected EngineRejected";
  } catch (const EngineRejected& e) {
    EXPECT_EQ(e.status(), 404);
  }
}

// A stream's upgrade is bounded by stream_open_timeout, not by the per-call request_timeout: a
// busy engine's late upgrade is waited for instead of given up and asked again.
TEST(EngineClient, StreamUpgradeHasItsOwnBound) {
  FakeEngine engine;
  Rt r;
  auto o = fast_options(engine.url());
  o.request_timeout = 200ms;  // the upgrade of "slow" takes 600 ms
  o.stream_open_timeout = 5000ms;
  EngineClient client(o, r.rt);
  auto ws = r.rt.run_sync(client.open_stream("slow", 0));
  auto msg = r.rt.run_sync(ws->read());
  ASSERT_TRUE(msg.has_value());
  EXPECT_EQ(nlohmann::json::parse(*msg).at("event_type"), "end");
  r.rt.run_sync(ws->close());
  o.stream_open_timeout = 200ms;
  EngineClient impatient(o, r.rt);
  EXPECT_THROW(r.rt.run_sync(impatient.open_stream("slow", 0)), EngineUnavailable);
}

TEST(EngineClient, BreakerOpensAfterSixFailuresFailsFastThenHalfOpensAndCloses) {
  FakeEngine engine;
  engine.script({503});
  Rt r;
  EngineClient client(fast_options(engine.url(), /*attempts=*/1), r.rt);
  for (int i = 0; i < 6; ++i) {
    EXPECT_THROW(client.invoke(job()), EngineUnavailable) << i;
    if (i < 5) {
      EXPECT_EQ(client.breaker_state(), "closed") << i;
    }
  }
  EXPECT_EQ(engine.hits(), 6);
  EXPECT_EQ(client.breaker_state(), "open");
  EXPECT_EQ(core::metrics::global().gauge("ide_orchestrator_circuit_breaker_state", "").value(), 2.0);

  // Open: fails fast without touching the engine, with a Retry-After of at least 1 s.
  const auto t0 = std::chrono::steady_clock::now();
  try {
    client.invoke(job());
    FAIL() << "expected EngineUnavailable";
  } catch (const EngineUnavailable& e) {
    EXPECT_EQ(e.retry_after(), 1s);
    EXPECT_STREQ(e.what(), "The refinement engine is unavailable; try again in 1 second.");
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 100ms);
  EXPECT_EQ(engine.hits(), 6);

  // The breaker guards new refinements only: following a thread still reaches the engine while
  // it is open, and those calls neither close it nor keep it open.
  EXPECT_THROW(client.get_state("t-1"), EngineUnavailable);  // the engine's own 503
  EXPECT_EQ(engine.hits(), 7);
  auto ws = r.rt.run_sync(client.open_stream("t-1", 0));
  EXPECT_TRUE(r.rt.run_sync(ws->read()).has_value());
  engine.script({200});
  EXPECT_TRUE(client.get_state("t-1").has_value());
  EXPECT_EQ(client.breaker_state(), "open");

  // After the (shortened) open duration: half-open; 3 successful trials close it.
  std::this_thread::sleep_for(450ms);
  EXPECT_EQ(client.breaker_state(), "half_open");
  engine.script({202});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(client.invoke(job()), "t-1") << i;
  EXPECT_EQ(client.breaker_state(), "closed");
  EXPECT_EQ(core::metrics::global().gauge("ide_orchestrator_circuit_breaker_state", "").value(), 0.0);
  EXPECT_EQ(engine.hits(), 11);
}

TEST(EngineClient, FollowingFailuresNeverOpenTheBreaker) {
  FakeEngine engine;
  engine.script({503});
  Rt r;
  EngineClient client(fast_options(engine.url(), 1), r.rt);
  for (int i = 0; i < 20; ++i) {
    EXPECT_THROW(client.get_state("t-1"), EngineUnavailable);
    EXPECT_THROW(r.rt.run_sync(client.delete_thread_async("t-1")), EngineUnavailable);
  }
  EXPECT_EQ(engine.hits(), 40);
  EXPECT_EQ(client.breaker_state(), "closed");
  engine.script({202});
  EXPECT_EQ(client.invoke(job()), "t-1");
}

TEST(EngineClient, ReusesKeepAliveConnections) {
  FakeEngine engine;
  engine.script({200});
  Rt r;
  EngineClient client(fast_options(engine.url()), r.rt);
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(client.get_state("t-" + std::to_string(i)).has_value());
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(r.rt.run_sync(client.get_state_async("t-a")).has_value());
  EXPECT_EQ(engine.hits(), 30);
  EXPECT_EQ(client.http().connections_opened(), 1u) << "sequential calls share one keep-alive connection";
}

TEST(EngineClient, OutOfFileDescriptorsIsAnsweredUnavailableAndNeverOpensTheBreaker) {
  FakeEngine engine;
  engine.script({202});
  Rt r;
  EngineClient client(fast_options(engine.url(), 1), r.rt);
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  std::size_t open_now = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++open_now;
  // No descriptor left for a new socket: every connect fails with EMFILE. The limit alone may
  // leave holes below it (descriptors closed by other threads), so they are filled too.
  rlimit tight = old;
  tight.rlim_cur = open_now;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &tight), 0);
  std::vector<int> fillers;
  for (int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC); fd >= 0; fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) {
    fillers.push_back(fd);
  }
  ASSERT_EQ(errno, EMFILE);
  std::vector<std::string> messages;
  for (int i = 0; i < 8; ++i) {
    try {
      client.invoke(job());
      messages.push_back("succeeded");
    } catch (const EngineUnavailable& e) {
      messages.push_back(e.what());
    } catch (const std::exception& e) {
      messages.push_back(std::string("other: ") + e.what());
    }
  }
  const std::string state = client.breaker_state();
  for (const int fd : fillers) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &old), 0);
  for (const auto& m : messages) EXPECT_NE(m.find("no free connections"), std::string::npos) << m;
  EXPECT_EQ(state, "closed") << "a local EMFILE is not an engine failure";
  EXPECT_EQ(engine.hits(), 0);
  EXPECT_GE(counter("invoke", "local_resources"), 8.0);
  EXPECT_EQ(client.invoke(job()), "t-1");
}

TEST(EngineClient, FailedTrialInHalfOpenReopens) {
  FakeEngine engine;
  engine.script({503});
  Rt r;
  EngineClient client(fast_options(engine.url(), 1), r.rt);
  for (int i = 0; i < 6; ++i) EXPECT_THROW(client.invoke(job()), EngineUnavailable);
  std::this_thread::sleep_for(450ms);
  EXPECT_EQ(client.breaker_state(), "half_open");
  EXPECT_THROW(client.invoke(job()), EngineUnavailable);
  EXPECT_EQ(client.breaker_state(), "open");
}
