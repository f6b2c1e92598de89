#pragma once
// A scripted Spec Engine on core::http::Server for tracker tests: per thread, a list
// of events served on WebSocket /spec-engine/stream/{id}[?after_seq=N] (by position,
// so streams with and without `seq` both resume), an optional connection drop after
// K events on the first connection(s), a state document (404 when absent) and a
// DELETE endpoint that can fail a given number of times.

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/server.hpp"
#include "core/ws.hpp"

namespace tracker_test {

/// Script of one engine thread.
struct ThreadScript {
  std::vector<nlohmann::json> events;         ///< served in order
  std::vector<int> drop_after;                ///< connection i sends this many events then closes (no `end`)
  bool ignore_after_seq = false;              ///< replay from the start on every connection
  bool stream_404 = false;                    ///< refuse the stream upgrade with 404
  std::optional<nlohmann::json> state;        ///< GET state answer; nullopt -> 404
};

class FakeEngine {
 public:
  FakeEngine() {
    core::http::Router r;
    r.add("POST", "/spec-engine/invoke", [](core::http::Request&) {
      return core::http::Response::json(202, {{"thread_id", "t"}, {"status", "started"}});
    });
    r.add("GET", "/spec-engine/state/{id}", [this](core::http::Request& req) {
      std::lock_guard lk(mu_);
      ++state_calls_;
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
      connects_[id].push_back(after);
      auto it = threads_.find(id);
      if (it == threads_.end() || it->second.stream_404) {
        a.reject = core::http::Response::problem(404, "Not Found", "unknown thread");
        return a;
      }
      const std::size_t conn_no = connects_[id].size() - 1;
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
  ~FakeEngine() { server_->stop(); }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  void set(const std::string& thread_id, ThreadScript s) {
    std::lock_guard lk(mu_);
    threads_[thread_id] = std::move(s);
  }
  /// after_seq of every stream connection to `thread_id`, in order.
  std::vector<long long> connects(const std::string& thread_id) const {
    std::lock_guard lk(mu_);
    auto it = connects_.find(thread_id);
    return it == connects_.end() ? std::vector<long long>{} : it->second;
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

 private:
  std::unique_ptr<core::http::Server> server_;
  mutable std::mutex mu_;
  std::map<std::string, ThreadScript> threads_;
  std::map<std::string, std::vector<long long>> connects_;
  std::vector<std::string> deleted_;
  int delete_failures_ = 0;
  int state_calls_ = 0;
};

}  // namespace tracker_test
