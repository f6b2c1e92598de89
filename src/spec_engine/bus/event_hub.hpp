#pragma once
// In-process fan-out of thread events to live stream subscribers (docs/event-path-and-replicas.md
// "Live events from any replica"). The events table is the truth; the hub only carries news:
//  - full events, after they were stored (this process's event log, or another replica's events
//    received over NATS);
//  - wake-ups "events up to seq N are stored" (PostgreSQL NOTIFY from another replica);
//  - "the thread was deleted".
// Each subscription has a bounded mailbox and a core::async::Signal; the stream coroutine takes
// what arrived, delivers only seq = last + 1, and reads the table for anything missing (a gap,
// a wake-up beyond what it has, or a mailbox that overflowed because its client is slow). So
// nothing is lost or delivered twice, and a slow client costs no unbounded memory.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/async.hpp"
#include "spec_engine/store/store.hpp"

namespace spec_engine::bus {

using store::EventRecord;

/// One event as sent on the wire (EventRecord::to_json() serialised once, shared by every
/// subscriber).
struct Frame {
  std::int64_t seq = 0;
  std::string event_type;
  std::shared_ptr<const std::string> text;
  /// The frame of a stored event.
  static Frame of(const EventRecord& ev);
};

/// Bounds of one subscription's mailbox.
struct HubOptions {
  std::size_t max_pending_events = 1024;       ///< events waiting for the stream; more -> overflow
  std::size_t max_pending_bytes = 4u << 20;    ///< their data size (approximate); more -> overflow
};

/// One stream's subscription to one thread. Thread-safe.
class Subscription {
 public:
  /// What arrived since the last take().
  struct News {
    std::vector<Frame> events;        ///< full events in arrival order (may repeat or skip seqs)
    std::int64_t stored_up_to = 0;    ///< highest seq known to be stored (0 = no wake-up)
    bool overflow = false;            ///< events were discarded: read the table
    bool deleted = false;             ///< the thread was deleted
  };
  Subscription(std::string thread_id, const core::async::Executor& ex) : thread_id_(std::move(thread_id)), signal_(ex) {}
  /// Moves out what arrived.
  News take();
  /// Notified on every arrival; the stream waits on it (one waiter).
  core::async::Signal& signal() { return signal_; }
  const std::string& thread_id() const { return thread_id_; }

 private:
  friend class EventHub;
  std::string thread_id_;
  core::async::Signal signal_;
  std::mutex mu_;
  News news_;
  std::size_t bytes_ = 0;
};

/// Thread-safe registry of subscriptions per thread id.
class EventHub {
 public:
  explicit EventHub(HubOptions options = {}) : options_(options) {}

  /// `on_watch(thread_id)` runs when a thread gets its first local subscriber and `on_unwatch`
  /// when its last one leaves (a transport that subscribes per thread, e.g. NATS). They run on
  /// the subscribing/unsubscribing thread outside the registry's lock, serialised (in order
  /// per thread), so they must be quick.
  void set_watch_hooks(std::function<void(const std::string&)> on_watch,
                       std::function<void(const std::string&)> on_unwatch);

  /// Subscribes to `thread_id`; the subscription's Signal lives on `ex` (the stream's executor).
  std::shared_ptr<Subscription> subscribe(const std::string& thread_id, const core::async::Executor& ex);
  /// Removes a subscription. Idempotent.
  void unsubscribe(const std::shared_ptr<Subscription>& sub);
  /// Hands stored events to their threads' subscribers.
  void publish(const std::vector<EventRecord>& events);
  void publish(const EventRecord& event);
  /// Hands already serialised frames of one thread to its subscribers (events from NATS).
  void publish_frames(const std::string& thread_id, const std::vector<Frame>& frames);
  /// Events of `thread_id` up to `seq` are stored (another replica wrote them).
  void wake(const std::string& thread_id, std::int64_t seq);
  /// Every subscriber re-reads the table (a transport reconnected and may have missed news).
  void wake_all();
  /// The thread was deleted: its subscribers close.
  void drop_thread(const std::string& thread_id);
  /// Subscriptions on `thread_id` (all threads when empty).
  std::size_t subscriber_count(const std::string& thread_id = {}) const;

 private:
  std::vector<std::shared_ptr<Subscription>> of(const std::string& thread_id) const;
  void deliver(const std::vector<std::shared_ptr<Subscription>>& subs, const std::vector<Frame>& frames);
  HubOptions options_;
  mutable std::mutex mu_;
  std::multimap<std::string, std::shared_ptr<Subscription>> subs_;
  std::mutex hooks_mu_;  ///< serialises watch/unwatch calls
  std::function<void(const std::string&)> on_watch_, on_unwatch_;
};

}  // namespace spec_engine::bus
