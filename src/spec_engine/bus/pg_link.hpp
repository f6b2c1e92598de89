#pragma once
// Replica link over PostgreSQL LISTEN/NOTIFY (docs/event-path-and-replicas.md): the event log
// sends `NOTIFY spec_events, '<thread_id>:<last_seq>:<replica>'` inside each commit (delivered
// only if it commits); this listener holds one libpq connection per replica that LISTENs on
// spec_events and spec_control, wakes the local streams of a thread (they read the new events
// from the table) and stops local runs of threads deleted elsewhere. After a reconnect every
// stream re-reads the table, since notifications sent meanwhile are lost.

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "spec_engine/bus/event_hub.hpp"
#include "spec_engine/bus/replica_link.hpp"
#include "spec_engine/store/store.hpp"

namespace spec_engine::bus {

/// Settings of the PostgreSQL link.
struct PgLinkOptions {
  std::string url;         ///< postgresql:// URL including the database
  std::string replica_id;  ///< notifications from this replica are ignored
  std::chrono::milliseconds poll{500};          ///< longest wait per poll (bounds stop latency)
  std::chrono::milliseconds keepalive{10000};   ///< a `SELECT 1` this often detects a dead link
  std::chrono::milliseconds max_backoff{5000};  ///< longest wait between reconnects
};

class PgLink : public ReplicaLink {
 public:
  /// `store` sends control notifications; `on_delete(thread_id)` handles a remote delete.
  PgLink(PgLinkOptions options, store::Store& store, EventHub& hub, std::function<void(const std::string&)> on_delete);
  ~PgLink() override;
  void start() override;
  void stop() override;
  void published(const std::vector<store::EventRecord>&) override {}  ///< NOTIFY went with the commit
  void watch(const std::string&) override {}
  void unwatch(const std::string&) override {}
  void send_delete(const std::string& thread_id) override;
  std::string health() const override;
  std::string name() const override { return "postgres-notify"; }
  /// True while the LISTEN connection is up (tests).
  bool listening() const { return listening_; }

 private:
  void loop();
  PgLinkOptions options_;
  store::Store& store_;
  EventHub& hub_;
  std::function<void(const std::string&)> on_delete_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> listening_{false};
  mutable std::mutex mu_;
  std::string last_error_;
  std::thread thread_;
};

}  // namespace spec_engine::bus
