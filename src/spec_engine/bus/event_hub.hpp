#pragma once
// In-process fan-out of thread events to live subscribers (DESIGN.md §4 "stream";
// §6: the embedded default of the event bus). A subscriber that connects late
// gets the stored events after its `after_seq` first and then the live ones, in
// seq order, with no gap and no duplicate:
//   1. register as a live subscriber whose deliveries are buffered,
//   2. load the stored events after `after_seq` and deliver them,
//   3. drain the buffer skipping seq <= the last delivered, then deliver directly.
// This works because publishers store an event before publishing it.
// subscribe_paged() replays in bounded pages instead, paced by the subscriber, and
// buffers nothing while replaying: live events are re-read from the store.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "spec_engine/store/store.hpp"

namespace spec_engine::bus {

using store::EventRecord;

/// Thread-safe hub: subscribers per thread id. Sinks run on the publisher's
/// thread (or the subscriber's, during replay) under a per-subscriber lock, so
/// they must be quick and must not call back into the hub.
class EventHub {
 public:
  /// Receives one event; called in strictly increasing seq order.
  using Sink = std::function<void(const EventRecord&)>;
  /// Returns the stored events of the thread with seq > after_seq, in seq order.
  using Loader = std::function<std::vector<EventRecord>(std::int64_t after_seq)>;
  /// Returns at most `limit` stored events of the thread with seq > after_seq, in seq order
  /// (limit 0 = all of them).
  using PageLoader = std::function<std::vector<EventRecord>(std::int64_t after_seq, std::size_t limit)>;
  /// Called during a paged replay before each replayed event, with no hub lock held: may block
  /// (bounded) until the subscriber is ready for more; returns false to abandon the replay.
  using Pacer = std::function<bool()>;

  /// Subscribes to `thread_id` for every event with seq > `after_seq`: replays
  /// `load(after_seq)` then live events (see file comment). `on_drop` runs when
  /// the thread is dropped (deleted). Returns the subscription id. If `load`
  /// throws, the subscription is removed and the exception propagates.
  std::uint64_t subscribe(const std::string& thread_id, std::int64_t after_seq, Loader load, Sink sink,
                          std::function<void()> on_drop = {});
  /// Like subscribe(), but replays the stored events `page_size` at a time through
  /// `load(after, page_size)`, calling `pace` before each replayed event, so a long history is
  /// never held in memory or queued at once. Live events published during the replay are not
  /// buffered: the final pages are read under the subscriber's lock, then it turns live, so the
  /// hand-off has no gap and no duplicate. If `pace` returns false the subscription stays
  /// registered but delivers nothing more (unsubscribe it). If `load` throws, the subscription
  /// is removed and the exception propagates.
  std::uint64_t subscribe_paged(const std::string& thread_id, std::int64_t after_seq, PageLoader load, Sink sink,
                                Pacer pace, std::size_t page_size, std::function<void()> on_drop = {});
  /// Reloads stored events after the subscriber's last delivered seq and delivers
  /// the new ones (used when a thread turned terminal while replaying). No-op if unknown.
  void catch_up(std::uint64_t subscription_id);
  /// Seq of the last event delivered to the subscription (0 if none / unknown).
  std::int64_t last_delivered(std::uint64_t subscription_id) const;
  /// Removes a subscription; its sink is not called after this returns. Idempotent.
  void unsubscribe(std::uint64_t subscription_id);
  /// Delivers a stored event to the thread's subscribers. A subscriber that sees
  /// a gap (seq > last+1) first reloads the missing events through its loader.
  void publish(const EventRecord& event);
  /// Calls every subscriber's on_drop for `thread_id` and removes them.
  void drop_thread(const std::string& thread_id);
  /// Number of subscriptions on `thread_id` (all threads when empty).
  std::size_t subscriber_count(const std::string& thread_id = {}) const;

 private:
  struct Subscriber {
    std::uint64_t id = 0;
    std::string thread_id;
    Loader load;
    Sink sink;
    std::function<void()> on_drop;
    std::mutex mu;                      ///< guards everything below and serialises the sink
    bool live = false;                  ///< false while replaying: publishes go to `buffer`
    bool paged = false;                 ///< replaying via subscribe_paged: publishes are not buffered
    bool closed = false;                ///< unsubscribed: drop everything
    std::int64_t last = 0;              ///< last delivered seq
    std::vector<EventRecord> buffer;
    /// Delivers `ev` if new; reloads a gap first. Caller holds `mu`.
    void deliver_locked(const EventRecord& ev);
  };
  std::shared_ptr<Subscriber> find(std::uint64_t id) const;
  /// Creates and registers a subscriber (not live yet).
  std::shared_ptr<Subscriber> add(const std::string& thread_id, std::int64_t after_seq, Loader load, Sink sink,
                                  std::function<void()> on_drop);

  mutable std::mutex mu_;
  std::atomic<std::uint64_t> next_id_{1};
  std::map<std::uint64_t, std::shared_ptr<Subscriber>> subs_;
  std::multimap<std::string, std::uint64_t> by_thread_;
};

}  // namespace spec_engine::bus
