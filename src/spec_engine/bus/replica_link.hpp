#pragma once
// How one engine replica tells the others about stored events and deleted threads
// (docs/event-path-and-replicas.md "Live events from any replica"). The events table stays the
// truth; a link only carries news, and a stream that misses some reads the table:
//   - SQLite (one process): no link; the in-process EventHub is enough.
//   - PostgreSQL without NATS: PgLink, NOTIFY in the commit transaction + one LISTEN connection.
//   - NATS configured: NatsLink, events on spec.events.<thread_id>, control on spec.control.<id>.

#include <string>
#include <vector>

#include "spec_engine/store/store.hpp"

namespace spec_engine::bus {

/// A transport between replicas. Implementations are thread-safe.
class ReplicaLink {
 public:
  virtual ~ReplicaLink() = default;
  /// Starts receiving (events and control messages from the other replicas).
  virtual void start() = 0;
  /// Stops receiving. Idempotent.
  virtual void stop() = 0;
  /// Events this replica has just committed (after commit, in seq order per thread).
  virtual void published(const std::vector<store::EventRecord>& events) = 0;
  /// This replica has its first stream on `thread_id` / its last one left.
  virtual void watch(const std::string& thread_id) = 0;
  virtual void unwatch(const std::string& thread_id) = 0;
  /// Tells every other replica that `thread_id` was deleted here: its owner stops the run at
  /// once, and streams on it close. Throws on failure (the owner's fenced writes fail anyway).
  virtual void send_delete(const std::string& thread_id) = 0;
  /// "ok", or what is wrong (for /ready).
  virtual std::string health() const = 0;
  /// "postgres-notify" | "nats".
  virtual std::string name() const = 0;
};

/// Payload of a control message: "delete:<thread_id>:<origin replica>".
std::string control_payload(const std::string& action, const std::string& thread_id, const std::string& origin);
/// Parses "<a>:<b>:<rest>" (the thread id never contains ':'); false when malformed.
bool split3(const std::string& payload, std::string& a, std::string& b, std::string& rest);

}  // namespace spec_engine::bus
