// The load: sessions as coroutines on the AsyncHttpClient (load.hpp).
#include "load.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <stdexcept>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "core/json_scan.hpp"
#include "core/util.hpp"

namespace refinement_load {

using core::async::Task;
using core::http::AsyncHttpClient;
using core::http::ClientError;
using core::http::ClientErrorKind;
using core::http::ClientRequest;
using core::http::ClientResponse;
using core::http::Headers;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

bool SessionResult::ok(bool with_anchor) const {
  auto stream_ok = [](const StreamResult& s) {
    return s.error.empty() && s.ended && s.end_status == "completed" && s.lost == 0 && s.duplicated == 0 &&
           s.without_seq == 0;
  };
  return error.empty() && stream_ok(browser) && (!with_anchor || stream_ok(anchor)) &&
         proposal_status == "completed" && files_ok;
}

// ---- JSON member scan --------------------------------------------------------------------

bool scan_event(std::string_view t, EventFields& out) {
  out = EventFields{};
  const auto members = core::json::scan_object(t);
  if (!members) return false;
  for (const auto& m : *members) {
    if (m.key == "seq") out.seq = m.value;
    else if (m.key == "ts") out.ts = m.value;
    else if (m.key == "event_type") out.event_type = m.value;
  }
  return true;
}

// ---- HTTP with Retry-After ---------------------------------------------------------------

namespace {

/// Seconds of a Retry-After field (RFC 9110 §10.2.3, delay-seconds form); 1 s otherwise.
std::chrono::milliseconds retry_after(const Headers& h) {
  if (auto v = h.get("Retry-After")) {
    long secs = 0;
    auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), secs);
    if (ec == std::errc() && secs >= 0) return std::chrono::seconds(std::min(secs, 60L));
  }
  return 1s;
}

/// True for transport failures worth another attempt (the server is busy, not wrong).
bool transient(const ClientError& e) {
  return e.kind() == ClientErrorKind::connect || e.kind() == ClientErrorKind::local_resources ||
         e.kind() == ClientErrorKind::timeout || e.kind() == ClientErrorKind::closed;
}

/// Performs `req`, waiting out 429 and 503 (Retry-After) and transient transport failures within
/// `opts.retry_budget`; counts the waits. A POST is sent again after a transport failure only
/// when it cannot have reached the server (connect, local resources): a refinement started twice
/// would be two runs. Throws ClientError when it gives up on a transport failure (the last
/// 429/503 answer is returned as it is).
Task<ClientResponse> call(AsyncHttpClient& client, ClientRequest req, const LoadOptions& opts, std::stop_token stop,
                          int& waits) {
  const auto give_up = Clock::now() + opts.retry_budget;
  for (;;) {
    std::chrono::milliseconds wait{0};
    try {
      ClientResponse res = co_await client.request(req, stop);
      if ((res.status != 429 && res.status != 503) || Clock::now() >= give_up) co_return res;
      wait = retry_after(res.headers);
    } catch (const ClientError& e) {
      const bool unsent = e.kind() == ClientErrorKind::connect || e.kind() == ClientErrorKind::local_resources;
      const bool again = req.method == "GET" ? transient(e) : unsent;
      if (!again || stop.stop_requested() || Clock::now() >= give_up) throw;
      wait = 500ms;
    }
    ++waits;
    if (!co_await core::async::sleep_for(wait, stop)) throw ClientError(ClientErrorKind::cancelled, "cancelled");
  }
}

/// A request to the orchestrator at `base` (http://host:port) for `path`.
ClientRequest api_request(const LoadOptions& opts, const std::string& base, std::string method,
                          const std::string& path, const std::string& token, std::string body = {}) {
  ClientRequest r;
  r.method = std::move(method);
  r.url = base + path;
  r.headers.set("Accept", "application/json");
  if (!token.empty()) r.headers.set("Authorization", "Bearer " + token);
  if (!body.empty()) r.headers.set("Content-Type", "application/json");
  r.body = std::move(body);
  r.timeout = opts.request_timeout;
  return r;
}

std::string brief(const ClientResponse& r) {
  return "HTTP " + std::to_string(r.status) + ": " + r.body.substr(0, 300);
}

}  // namespace

std::string login(AsyncHttpClient& client, const std::string& orchestrator_url, const std::string& email,
                  const std::string& password, const LoadOptions& opts) {
  int waits = 0;
  const ClientRequest req = api_request(opts, orchestrator_url, "POST", "/api/auth/login", "",
                                        json{{"email", email}, {"password", password}}.dump());
  const ClientResponse res = client.runtime().run_sync(call(client, req, opts, std::stop_token{}, waits));
  if (res.status != 200) throw std::runtime_error("login of " + email + " failed: " + brief(res));
  return json::parse(res.body).at("token").get<std::string>();
}

namespace {

/// A countdown the main thread waits on.
struct Latch {
  std::mutex mu;
  std::condition_variable cv;
  int left = 0;
  void done() {
    std::lock_guard lk(mu);
    if (--left == 0) cv.notify_all();
  }
  bool wait_until(Clock::time_point deadline) {
    std::unique_lock lk(mu);
    return cv.wait_until(lk, deadline, [&] { return left == 0; });
  }
};

/// Creates workflows n.fetch_add(1) ... until `total`, one request at a time.
Task<void> workflow_worker(AsyncHttpClient& client, const LoadOptions& opts, const std::vector<Account>& accounts,
                           std::atomic<int>& next, int total, std::vector<std::string>& ids, std::string& error,
                           std::mutex& error_mu) {
  for (;;) {
    const int i = next.fetch_add(1);
    if (i >= total) co_return;
    const Account& a = accounts[static_cast<std::size_t>(i) % accounts.size()];
    const std::string body = json{{"name", "Load " + std::to_string(i)},
                                  {"description", "refinement load benchmark"},
                                  {"template", "multi-agent"}}
                                 .dump();
    const ClientRequest req =
        api_request(opts, opts.orchestrator_for(static_cast<std::size_t>(i)), "POST", "/api/workflows", a.token, body);
    int waits = 0;
    const std::stop_token never;
    const ClientResponse res = co_await call(client, req, opts, never, waits);
    if (res.status != 201) {
      std::lock_guard lk(error_mu);
      if (error.empty()) error = "creating a workflow failed: " + brief(res);
      next = total;  // stop the other workers
      co_return;
    }
    ids[static_cast<std::size_t>(i)] = json::parse(res.body).at("id").get<std::string>();
  }
}

}  // namespace

std::vector<std::string> create_workflows(core::async::Runtime& rt, AsyncHttpClient& client, const LoadOptions& opts,
                                          const std::vector<Account>& accounts, int n, int parallel) {
  std::vector<std::string> ids(static_cast<std::size_t>(n));
  std::atomic<int> next{0};
  std::string error;
  std::mutex error_mu;
  Latch latch;
  latch.left = std::max(1, std::min(parallel, n));
  for (int w = 0; w < latch.left; ++w) {
    auto on_done = [&](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          std::lock_guard lk(error_mu);
          if (error.empty()) error = std::string("creating a workflow failed: ") + ex.what();
        }
        next = n;
      }
      latch.done();
    };
    rt.spawn(rt.make_strand(), workflow_worker(client, opts, accounts, next, n, ids, error, error_mu), on_done);
  }
  latch.wait_until(Clock::time_point::max());
  if (!error.empty()) throw std::runtime_error(error);
  return ids;
}

// ---- one session -------------------------------------------------------------------------

namespace {

/// Everything the sessions share (read-only, except the stop source).
struct Shared {
  AsyncHttpClient& client;
  const LoadOptions& opts;
  std::stop_token stop;
  AnchorRelay* anchor = nullptr;
};

}  // namespace

void count_frame(StreamResult& r, long& next_seq, const std::string& text, std::chrono::system_clock::time_point now) {
  EventFields f;
  if (!scan_event(text, f) || f.seq.empty()) {
    ++r.without_seq;
    return;
  }
  long seq = 0;
  auto [p, ec] = std::from_chars(f.seq.data(), f.seq.data() + f.seq.size(), seq);
  if (ec != std::errc()) {
    ++r.without_seq;
    return;
  }
  ++r.events;
  if (seq < next_seq) {
    ++r.duplicated;
    return;
  }
  if (seq > next_seq) r.lost += seq - next_seq;
  next_seq = seq + 1;
  if (f.ts.size() >= 2) {
    try {
      const auto ts = core::parse_rfc3339(std::string(f.ts.substr(1, f.ts.size() - 2)));
      r.lag_ms.push_back(std::chrono::duration<float, std::milli>(now - ts).count());
    } catch (const std::exception&) {
      // an event without a readable ts has no lag
    }
  }
  if (f.event_type == "\"end\"") {
    r.ended = true;
    const json j = json::parse(text, nullptr, false);
    if (j.is_object() && j.contains("data") && j["data"].is_object() && j["data"].contains("status") &&
        j["data"]["status"].is_string()) {
      r.end_status = j["data"]["status"].get<std::string>();
    }
  }
}

namespace {

/// Follows one stream at `url` (…/{thread_id}) until `end`, reconnecting with after_seq like a
/// browser does when the connection drops before it.
Task<void> follow(Shared& sh, std::string url, Headers headers, StreamResult& r) {
  long next_seq = 1;
  std::string last_error;
  const core::http::TlsOptions plain;  // named: no non-trivial temporaries inside co_await (GCC 12)
  for (int attempt = 0;; ++attempt) {
    const std::string target = next_seq > 1 ? url + "?after_seq=" + std::to_string(next_seq - 1) : url;
    std::shared_ptr<core::http::AsyncWsClient> ws;
    std::chrono::milliseconds wait{0};
    try {
      ws = co_await sh.client.connect_ws(target, headers, sh.opts.request_timeout, plain, sh.stop);
    } catch (const core::http::WsHandshakeError& e) {
      last_error = std::string(e.what()) + ": " + e.body().substr(0, 200);
      if (e.status() != 429 && e.status() != 503) {
        r.error = last_error;
        co_return;
      }
      wait = 1s;
    } catch (const ClientError& e) {
      last_error = e.what();
      if (e.kind() == ClientErrorKind::cancelled) {
        r.error = "cancelled (deadline) while connecting";
        co_return;
      }
      wait = 500ms;
    }
    if (ws) {
      try {
        for (;;) {
          auto msg = co_await ws->read(sh.stop);
          if (!msg) break;
          count_frame(r, next_seq, *msg, std::chrono::system_clock::now());
        }
        last_error = "closed with code " + std::to_string(ws->close_code());
      } catch (const ClientError& e) {
        last_error = e.what();
      }
      if (r.ended) co_return;
    }
    if (sh.stop.stop_requested()) {
      r.error = "cancelled (deadline) before `end`: " + last_error;
      co_return;
    }
    if (attempt >= sh.opts.max_reconnects) {
      r.error = "no `end` after " + std::to_string(attempt) + " reconnects; last: " + last_error;
      co_return;
    }
    if (ws) ++r.reconnects;
    if (wait.count() > 0 && !co_await core::async::sleep_for(wait, sh.stop)) continue;
  }
}

/// Waits for the proposal to leave `processing` and checks its files.
Task<void> await_proposal(Shared& sh, const std::string& base, const std::string& token,
                          const std::string& proposal_id, SessionResult& r) {
  const auto deadline = Clock::now() + sh.opts.proposal_timeout;
  auto delay = 50ms;
  const ClientRequest req = api_request(sh.opts, base, "GET", "/api/proposals/" + proposal_id, token);
  for (;;) {
    ClientResponse res;
    std::string failure;
    try {
      res = co_await call(sh.client, req, sh.opts, sh.stop, r.waits);
    } catch (const std::exception& e) {
      failure = e.what();
    }
    if (!failure.empty()) {
      r.error = "GET proposal: " + failure;
      co_return;
    }
    if (res.status != 200) {
      r.error = "GET proposal: " + brief(res);
      co_return;
    }
    const json p = json::parse(res.body, nullptr, false);
    const std::string status = p.is_object() ? p.value("status", "") : "";
    if (status != "processing") {
      r.proposal_status = status;
      bool files = p.contains("generated_files") && p["generated_files"].is_object();
      for (int k = 1; files && k <= sh.opts.turns; ++k) {
        files = p["generated_files"].contains("/THE_SPEC/paced-" + std::to_string(k) + ".md");
      }
      r.files_ok = files;
      if (status != "completed") r.error = "proposal " + status + ": " + p.value("error", json(nullptr)).dump();
      co_return;
    }
    if (Clock::now() >= deadline) {
      r.error = "proposal still processing " + std::to_string(sh.opts.proposal_timeout.count()) + " ms after `end`";
      co_return;
    }
    if (!co_await core::async::sleep_for(delay, sh.stop)) {
      r.error = "cancelled (deadline) waiting for the proposal";
      co_return;
    }
    delay = std::min(delay * 2, std::chrono::milliseconds(1000));
  }
}

std::string ws_base(const std::string& http_url) {
  if (http_url.rfind("https://", 0) == 0) return "wss://" + http_url.substr(8);
  if (http_url.rfind("http://", 0) == 0) return "ws://" + http_url.substr(7);
  return http_url;
}

Task<void> session(Shared& sh, core::async::Executor strand, const Account& account, const std::string& workflow_id,
                   int index, SessionResult& r) {
  const auto t0 = Clock::now();
  const std::string& base = sh.opts.orchestrator_for(static_cast<std::size_t>(index));
  const std::string prompt = "Load session " + std::to_string(index) + " of run " + sh.opts.run_tag +
                             ": add a short section to the plan.";
  const ClientRequest start = api_request(sh.opts, base, "POST", "/api/workflows/" + workflow_id + "/refinements",
                                          account.token,
                                          json{{"user_prompt", prompt}, {"context_file_path", "/THE_SPEC/plan.md"}}.dump());
  std::string failure;
  ClientResponse res;
  try {
    res = co_await call(sh.client, start, sh.opts, sh.stop, r.waits);
  } catch (const std::exception& e) {
    failure = std::string("POST refinements: ") + e.what();
  }
  if (failure.empty() && res.status != 202 && res.status != 201) failure = "POST refinements: " + brief(res);
  if (failure.empty()) r.start_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!failure.empty()) {
    r.error = failure;
    co_return;
  }
  const json started = json::parse(res.body);
  const std::string thread_id = started.at("thread_id").get<std::string>();
  const std::string proposal_id = started.at("proposal_id").get<std::string>();

  // The anchor follows the same thread through the other relay, concurrently.
  std::shared_ptr<core::async::Oneshot<StreamResult>> anchored;
  if (sh.anchor && !sh.opts.anchor_urls.empty()) {
    const std::string& relay = sh.opts.anchor_urls[static_cast<std::size_t>(index) % sh.opts.anchor_urls.size()];
    anchored = sh.anchor->follow(index, relay, thread_id, strand);
  }
  Headers browser;
  browser.set("Sec-WebSocket-Protocol", "bearer, " + account.token);  // how the web console authenticates
  const std::string browser_url = ws_base(base) + "/api/ws/refinements/" + thread_id;
  co_await follow(sh, browser_url, browser, r.browser);
  if (anchored) r.anchor = co_await anchored->get();
  co_await await_proposal(sh, base, account.token, proposal_id, r);
  r.wall_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

std::vector<SessionResult> run_sessions(core::async::Runtime& rt, AsyncHttpClient& client, const LoadOptions& opts,
                                        const std::vector<Account>& accounts, const std::vector<std::string>& workflows,
                                        AnchorRelay* anchor, Clock::time_point deadline) {
  std::vector<SessionResult> results(workflows.size());
  std::stop_source stop;
  Shared sh{client, opts, stop.get_token(), anchor};
  Latch latch;
  latch.left = static_cast<int>(workflows.size());
  for (std::size_t i = 0; i < workflows.size(); ++i) {
    SessionResult* r = &results[i];
    auto on_done = [&latch, r](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          if (r->error.empty()) r->error = std::string("session failed: ") + ex.what();
        }
      }
      latch.done();
    };
    const auto strand = rt.make_strand();
    rt.spawn(strand, session(sh, strand, accounts[i % accounts.size()], workflows[i], static_cast<int>(i), *r),
             on_done);
  }
  if (!latch.wait_until(deadline)) {
    stop.request_stop();
    if (anchor) anchor->kill();
    latch.wait_until(Clock::time_point::max());
  }
  return results;
}

// ---- the anchor's worker process ----------------------------------------------------------

namespace {

json stream_json(int index, const StreamResult& r) {
  json lags = json::array();
  for (float l : r.lag_ms) lags.push_back(std::round(l * 100.0f) / 100.0f);
  return {{"i", index},
          {"events", r.events},
          {"lost", r.lost},
          {"duplicated", r.duplicated},
          {"without_seq", r.without_seq},
          {"reconnects", r.reconnects},
          {"ended", r.ended},
          {"end_status", r.end_status},
          {"error", r.error},
          {"lag_ms", lags}};
}

StreamResult stream_from_json(const json& j) {
  StreamResult r;
  r.events = j.value("events", 0L);
  r.lost = j.value("lost", 0L);
  r.duplicated = j.value("duplicated", 0L);
  r.without_seq = j.value("without_seq", 0L);
  r.reconnects = j.value("reconnects", 0);
  r.ended = j.value("ended", false);
  r.end_status = j.value("end_status", "");
  r.error = j.value("error", "");
  if (j.contains("lag_ms")) {
    for (const auto& l : j["lag_ms"]) r.lag_ms.push_back(l.get<float>());
  }
  return r;
}

/// Writes one line to stdout under a lock (the results of several I/O threads).
std::mutex stdout_mu;
void emit(const std::string& line) {
  std::lock_guard lk(stdout_mu);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

Task<void> follow_and_report(Shared& sh, std::string url, int index) {
  StreamResult r;
  const Headers none;
  co_await follow(sh, url, none, r);
  emit(stream_json(index, r).dump());
}

}  // namespace

AnchorRelay::AnchorRelay(const std::string& self_exe, int io_threads, const std::filesystem::path& log)
    : child_(Child::start_piped({self_exe, "--anchor-worker", "--io-threads", std::to_string(io_threads)}, {}, log)) {
  reader_ = std::thread([this] { read_results(); });
}

AnchorRelay::~AnchorRelay() { kill(); }

std::shared_ptr<core::async::Oneshot<StreamResult>> AnchorRelay::follow(int index, const std::string& anchor_ws_url,
                                                                        const std::string& thread_id,
                                                                        const core::async::Executor& waiter) {
  auto done = std::make_shared<core::async::Oneshot<StreamResult>>(waiter);
  std::lock_guard lk(mu_);
  if (child_.stdin_fd() < 0) {
    StreamResult r;
    r.error = "the anchor worker is gone";
    done->set_value(std::move(r));
    return done;
  }
  pending_[index] = done;
  // < PIPE_BUF: one atomic write.
  const std::string line = std::to_string(index) + " " + anchor_ws_url + "/spec-engine/stream/" + thread_id + "\n";
  if (::write(child_.stdin_fd(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    pending_.erase(index);
    StreamResult r;
    r.error = "cannot reach the anchor worker";
    done->set_value(std::move(r));
  }
  return done;
}

void AnchorRelay::read_results() {
  std::string buf;
  char chunk[65536];
  for (;;) {
    const ssize_t n = ::read(child_.stdout_fd(), chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf.append(chunk, static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (auto nl = buf.find('\n'); nl != std::string::npos; nl = buf.find('\n', start)) {
      const json j = json::parse(buf.substr(start, nl - start), nullptr, false);
      start = nl + 1;
      if (!j.is_object() || !j.contains("i")) continue;
      std::shared_ptr<core::async::Oneshot<StreamResult>> done;
      {
        std::lock_guard lk(mu_);
        auto it = pending_.find(j["i"].get<int>());
        if (it == pending_.end()) continue;
        done = std::move(it->second);
        pending_.erase(it);
      }
      done->set_value(stream_from_json(j));
    }
    buf.erase(0, start);
  }
  // The worker ended: whatever it did not report failed.
  std::map<int, std::shared_ptr<core::async::Oneshot<StreamResult>>> left;
  {
    std::lock_guard lk(mu_);
    left.swap(pending_);
  }
  for (auto& [i, done] : left) {
    StreamResult r;
    r.error = "the anchor worker ended before reporting this stream";
    done->set_value(std::move(r));
  }
}

void AnchorRelay::finish() {
  {
    std::lock_guard lk(mu_);
    child_.close_stdin();
  }
  if (reader_.joinable()) reader_.join();
  child_.stop();
}

void AnchorRelay::kill() {
  {
    std::lock_guard lk(mu_);
    child_.close_stdin();
  }
  if (child_.pid() > 0) ::kill(child_.pid(), SIGKILL);
  if (reader_.joinable()) reader_.join();
  child_.stop();
}

int run_anchor_worker(int io_threads) {
  core::async::Runtime rt(core::async::RuntimeOptions{io_threads, 1, "anchor-worker"});
  rt.start();
  core::http::AsyncClientOptions co;
  co.ws_idle_timeout = 900s;
  AsyncHttpClient client(rt, co);
  LoadOptions opts;
  std::stop_source never;
  Shared sh{client, opts, never.get_token(), nullptr};
  Latch latch;
  latch.left = 1;  // stdin itself; released at end of file
  std::string line;
  while (std::getline(std::cin, line)) {
    const auto sp = line.find(' ');
    if (sp == std::string::npos) continue;
    const int index = std::stoi(line.substr(0, sp));
    {
      std::lock_guard lk(latch.mu);
      ++latch.left;
    }
    auto on_done = [&latch](std::exception_ptr) { latch.done(); };
    rt.spawn(rt.make_strand(), follow_and_report(sh, line.substr(sp + 1), index),
             on_done);
  }
  latch.done();
  latch.wait_until(Clock::time_point::max());
  rt.stop();
  return 0;
}

}  // namespace refinement_load
