// PostgreSQL LISTEN/NOTIFY link between engine replicas (libpq).
#include "spec_engine/bus/pg_link.hpp"

#include <charconv>

#include <libpq-fe.h>
#include <poll.h>

#include "core/log.hpp"

namespace spec_engine::bus {

namespace {

/// Runs one command; false (with the error in `err`) when it failed.
bool exec(PGconn* c, const char* sql, std::string& err) {
  PGresult* r = PQexec(c, sql);
  const auto st = PQresultStatus(r);
  const bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
  if (!ok) err = PQerrorMessage(c);
  PQclear(r);
  return ok;
}

}  // namespace

PgLink::PgLink(PgLinkOptions options, store::Store& store, EventHub& hub,
               std::function<void(const std::string&)> on_delete)
    : options_(std::move(options)), store_(store), hub_(hub), on_delete_(std::move(on_delete)) {}

PgLink::~PgLink() { stop(); }

void PgLink::start() {
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { loop(); });
}

void PgLink::stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void PgLink::send_delete(const std::string& thread_id) {
  store_.notify("spec_control", control_payload("delete", thread_id, options_.replica_id));
}

std::string PgLink::health() const {
  if (listening_) return "ok";
  std::lock_guard lk(mu_);
  return "LISTEN connection down" + (last_error_.empty() ? std::string() : ": " + last_error_);
}

void PgLink::loop() {
  auto backoff = std::chrono::milliseconds(200);
  bool connected_before = false;
  while (!stop_) {
    // TCP keepalives and a TCP user timeout (libpq parameters, PostgreSQL docs §34.1.2) make a
    // link whose peer vanished without a reset fail within ~15 s, also inside the blocking
    // "SELECT 1" check; they come before dbname, so a URL that sets them wins.
    const char* keys[] = {"keepalives",     "keepalives_idle", "keepalives_interval", "keepalives_count",
                          "tcp_user_timeout", "dbname",        "connect_timeout",     "application_name",
                          nullptr};
    const char* vals[] = {"1",     "10", "5", "3", "15000", options_.url.c_str(), "5", "spec-engine-listener",
                          nullptr};
    PGconn* c = PQconnectdbParams(keys, vals, /*expand_dbname=*/1);
    std::string err;
    if (PQstatus(c) != CONNECTION_OK) {
      err = PQerrorMessage(c);
    } else if (exec(c, "LISTEN spec_events", err) && exec(c, "LISTEN spec_control", err)) {
      listening_ = true;
      {
        std::lock_guard lk(mu_);
        last_error_.clear();
      }
      backoff = std::chrono::milliseconds(200);
      core::log::info(connected_before ? "postgres listener reconnected" : "postgres listener started",
                      {{"channels", "spec_events,spec_control"}});
      // Notifications sent while we were away are lost: every stream re-reads the table.
      if (connected_before) hub_.wake_all();
      connected_before = true;
      auto last_check = std::chrono::steady_clock::now();
      while (!stop_) {
        pollfd pfd{PQsocket(c), POLLIN, 0};
        const int n = ::poll(&pfd, 1, static_cast<int>(options_.poll.count()));
        if (n < 0 && errno != EINTR) {
          err = "poll failed";
          break;
        }
        if (PQconsumeInput(c) == 0) {
          err = PQerrorMessage(c);
          break;
        }
        while (PGnotify* note = PQnotifies(c)) {
          const std::string channel = note->relname;
          const std::string payload = note->extra != nullptr ? note->extra : "";
          PQfreemem(note);
          std::string a, b, origin;
          if (!split3(payload, a, b, origin) || origin == options_.replica_id) continue;
          if (channel == "spec_events") {
            std::int64_t seq = 0;
            std::from_chars(b.data(), b.data() + b.size(), seq);
            hub_.wake(a, seq);
          } else if (channel == "spec_control" && a == "delete" && on_delete_) {
            try {
              on_delete_(b);
            } catch (const std::exception& e) {
              core::log::warn("remote delete handling failed", {{"thread_id", b}, {"error", e.what()}});
            }
          }
        }
        const auto now = std::chrono::steady_clock::now();
        if (now - last_check >= options_.keepalive) {
          last_check = now;
          if (!exec(c, "SELECT 1", err)) break;  // a silently dead link
        }
      }
    }
    listening_ = false;
    PQfinish(c);
    if (stop_) break;
    {
      std::lock_guard lk(mu_);
      last_error_ = err;
    }
    core::log::warn("postgres listener down; reconnecting", {{"error", err}, {"retry_ms", backoff.count()}});
    for (auto waited = std::chrono::milliseconds(0); waited < backoff && !stop_; waited += std::chrono::milliseconds(50))
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

}  // namespace spec_engine::bus
