#pragma once
// A scripted Spec Engine on core::http::Server for follower, tracker and proxy tests: per thread,
// a list of events served on WebSocket /spec-engine/stream/{id}[?after_seq=N] (by position, so
// streams with and without `seq` both resume), a state document (404 when absent) and a DELETE
// endpoint that can fail a given number of times. For fault injection:
//   - drop_after: connection i sends this many events, then closes without `end` (code 1011);
//   - live threads: the connection stays open and sends events as append() adds them (closing
//     1000 after `end`); drop() breaks the open connections of a thread;
//   - set_unavailable(true): every endpoint answers 503 (an engine that is down).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/this_coro.hpp>
#include <nlohmann/json.hpp>

#include "core/async.hpp"
#include "core/server.hpp"
#include "core/ws.hpp"

namespace tracker_test {

/// An engine event {event_type, data, seq?}.
inline nlohmann::json ev(const std::string& type, nlohmann::json data, std::optional<long long> seq = std::nullopt) {
  nlohmann::json e = {{"event_type", type}, {"data", std::move(data)}};
  if (seq) e["seq"] = *seq;
  return e;
}

/// Polls `p` every 5 ms until it holds or `limit` passes; returns its last value.
template <class Pred>
bool eventually(Pred p, std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (p()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return p();
}

/// Script of one engine thread.
struct ThreadScript {
  std::vector<nlohmann::json> events;         ///< served in order
  std::vector<int> drop_after;                ///< connection i sends this many events then closes (no `end`)
  bool ignore_after_seq = false;              ///< replay from the start on every connection
  bool stream_404 = false;                    ///< refuse the stream upgrade with 404
  std::optional<nlohmann::json> state;        ///< GET state answer; nullopt -> 404
  bool live = false;                          ///< keep connections open and send events as they are appended
  std::string ping_status;                    ///< live: ping with this payload every 100 ms without news ("" = none)
};

class FakeEngine {
 public:
  FakeEngine() {
    core::http::Router r;
    r.add("POST", "/spec-engine/invoke", [this](core::http::Request&) {
      if (unavailable_) return core::http::Response::problem(503, "Unavailable", "down");
      return core::http::Response::json(202, {{"thread_id", "t"}, {"status", "started"}});
    });
    r.add("GET", "/spec-engine/state/{id}", [this](core::http::Request& req) {
      std::lock_guard lk(mu_);
      ++state_calls_;
      if (unavailable_ || state_unavailable_) return core::http::Response::problem(503, "Unavailable", "down");
      auto it = threads_.find(req.path_params.at("id"));
      if (it == threads_.end() || !it->second.state) {
        return core::http::Response::problem(404, "Not Found", "unknown thread");
      }
      return core::http::Response::json(200, *it->second.state);
    });
    r.add("DELETE", "/spec-engine/threads/{id}", [this](core::http::Request& req) {
      std::lock_guard lk(mu_);
      if (delete_failures_ > 0) {
        --delete_failures_;
        return core::http::Response::problem(503, "Unavailable", "busy");
      }
      deleted_.push_back(req.path_params.at("id"));
      threads_.erase(req.path_params.at("id"));
      return core::http::Response::text(204, "");
    });
    r.add_ws("/spec-engine/stream/{id}", [this](core::http::Request& req) {
      core::http::WsAccept a;
      const std::string id = req.path_params.at("id");
      const long long after = std::stoll(req.query_param("after_seq").value_or("0"));
      std::lock_guard lk(mu_);
      if (unavailable_) {
        ++refused_streams_;
        a.reject = core::http::Response::problem(503, "Unavailable", "down");
        return a;
      }
      connects_[id].push_back(after);
      auto it = threads_.find(id);
      if (it == threads_.end() || it->second.stream_404) {
        a.reject = core::http::Response::problem(404, "Not Found", "unknown thread");
        return a;
      }
      const std::size_t conn_no = connects_[id].size() - 1;
      if (it->second.live) {
        a.on_open_async = [this, id, after](std::shared_ptr<core::http::WsConnection> c) {
          return serve_live(std::move(c), id, after);
        };
        return a;
      }
      ThreadScript s = it->second;
      a.on_open = [s, conn_no, after](std::shared_ptr<core::http::WsConnection> c) {
        std::size_t start = s.ignore_after_seq ? 0 : static_cast<std::size_t>(std::max(0LL, after));
        std::size_t limit = s.events.size();
        if (conn_no < s.drop_after.size()) limit = std::min(limit, start + static_cast<std::size_t>(s.drop_after[conn_no]));
        for (std::size_t i = start; i < limit; ++i) c->send_text(s.events[i].dump());
        c->close(limit < s.events.size() ? 1011 : 1000);
      };
      return a;
    });
    core::http::ServerOptions o;
    o.io_threads = 1;
    o.blocking_threads = 8;
    server_ = std::make_unique<core::http::Server>(o, std::move(r));
    server_->start();
  }
  ~FakeEngine() {
    server_->stop();
    // The live connections' wake-up signals hold timers of the server's I/O context: drop them
    // while it still exists (members are destroyed after the server otherwise).
    std::lock_guard lk(mu_);
    live_.clear();
  }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  void set(const std::string& thread_id, ThreadScript s) {
    std::lock_guard lk(mu_);
    threads_[thread_id] = std::move(s);
  }
  /// Adds an event to a (live) thread and wakes its open connections.
  void append(const std::string& thread_id, nlohmann::json ev) {
    std::lock_guard lk(mu_);
    threads_[thread_id].events.push_back(std::move(ev));
    wake_locked(thread_id);
  }
  /// Whether the engine knows the thread (set, appended to or given a state; not deleted since).
  bool has_thread(const std::string& thread_id) const {
    std::lock_guard lk(mu_);
    return threads_.count(thread_id) > 0;
  }
  /// Sets the state document of a thread (nullopt -> 404).
  void set_state(const std::string& thread_id, std::optional<nlohmann::json> state) {
    std::lock_guard lk(mu_);
    threads_[thread_id].state = std::move(state);
  }
  /// Live connections of the thread ping with `status` every 100 ms without news, as the engine
  /// announces a silent thread's status ("" stops the pings).
  void set_ping_status(const std::string& thread_id, std::string status) {
    std::lock_guard lk(mu_);
    threads_[thread_id].ping_status = std::move(status);
  }
  /// Breaks every open live connection of the thread (close 1011, no `end`).
  void drop(const std::string& thread_id) {
    std::lock_guard lk(mu_);
    ++drops_[thread_id];
    wake_locked(thread_id);
  }
  /// Every endpoint answers 503 while true; open live connections are broken.
  void set_unavailable(bool down) {
    std::lock_guard lk(mu_);
    unavailable_ = down;
    if (down) {
      for (auto& [id, conns] : live_) {
        ++drops_[id];
        wake_locked(id);
      }
    }
  }
  /// after_seq of every stream connection to `thread_id`, in order.
  std::vector<long long> connects(const std::string& thread_id) const {
    std::lock_guard lk(mu_);
    auto it = connects_.find(thread_id);
    return it == connects_.end() ? std::vector<long long>{} : it->second;
  }
  /// Stream connections of `thread_id` open now (live threads only).
  std::size_t open_streams(const std::string& thread_id) const {
    std::lock_guard lk(mu_);
    auto it = live_.find(thread_id);
    return it == live_.end() ? 0 : it->second.size();
  }
  std::vector<std::string> deleted() const {
    std::lock_guard lk(mu_);
    return deleted_;
  }
  void fail_deletes(int n) {
    std::lock_guard lk(mu_);
    delete_failures_ = n;
  }
  int state_calls() const {
    std::lock_guard lk(mu_);
    return state_calls_;
  }
  /// GET state answers 503 while true; streams stay open (an engine too busy to answer).
  void set_state_unavailable(bool down) { state_unavailable_ = down; }
  /// Stream handshakes answered 503 while unavailable (any thread).
  int refused_streams() const {
    std::lock_guard lk(mu_);
    return refused_streams_;
  }

 private:
  struct LiveConn {
    std::shared_ptr<core::async::Signal> wake;
  };

  void wake_locked(const std::string& thread_id) {
    auto it = live_.find(thread_id);
    if (it == live_.end()) return;
    for (auto& [n, c] : it->second) c.wake->notify();
  }

  /// Serves a live thread on one connection: the events after `after`, then each appended one.
  core::async::Task<void> serve_live(std::shared_ptr<core::http::WsConnection> c, std::string id, long long after) {
    auto ex = co_await boost::asio::this_coro::executor;
    auto wake = std::make_shared<core::async::Signal>(ex);
    std::uint64_t me = 0;
    int drops_at_open = 0;
    {
      std::lock_guard lk(mu_);
      me = next_conn_++;
      live_[id][me] = LiveConn{wake};
      drops_at_open = drops_[id];
    }
    std::size_t pos = static_cast<std::size_t>(std::max(0LL, after));
    int code = 0;
    while (code == 0) {
      std::vector<std::string> batch;
      bool ended = false;
      std::string ping;
      {
        std::lock_guard lk(mu_);
        if (drops_[id] != drops_at_open) {
          code = 1011;
        } else {
          const auto& evs = threads_[id].events;
          for (; pos < evs.size(); ++pos) {
            batch.push_back(evs[pos].dump());
            if (evs[pos].value("event_type", std::string()) == "end") ended = true;
          }
          ping = threads_[id].ping_status;
        }
      }
      for (auto& m : batch) c->send_text(std::move(m));
      if (batch.empty() && code == 0 && !ping.empty()) c->ping(std::move(ping));
      if (ended) code = 1000;
      if (!c->is_open()) break;
      if (code == 0) co_await wake->wait(std::chrono::milliseconds(100));
    }
    if (code != 0) c->close(static_cast<std::uint16_t>(code), code == 1000 ? "end" : "dropped");
    std::lock_guard lk(mu_);
    live_[id].erase(me);
    if (live_[id].empty()) live_.erase(id);
  }

  std::unique_ptr<core::http::Server> server_;
  mutable std::mutex mu_;
  std::map<std::string, ThreadScript> threads_;
  std::map<std::string, std::vector<long long>> connects_;
  std::map<std::string, std::map<std::uint64_t, LiveConn>> live_;
  std::map<std::string, int> drops_;
  std::uint64_t next_conn_ = 0;
  std::vector<std::string> deleted_;
  int delete_failures_ = 0;
  int state_calls_ = 0;
  int refused_streams_ = 0;
  std::atomic<bool> unavailable_{false};
  std::atomic<bool> state_unavailable_{false};
};

}  // namespace tracker_test
