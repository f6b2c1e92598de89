#pragma once
// Following engine threads (docs/event-path-and-replicas.md "Following a thread"): at most one
// upstream WebSocket per engine thread id per process, shared by the proposal tracker and every
// browser watching that thread.
//
// A follower (one per followed thread) reads the engine's stream on the orchestrator's runtime,
// parses each event once (follow/event.hpp) and keeps the thread's events in memory, bounded by
// bytes. Subscribers take events at their own pace from that memory: a late joiner or an
// `after_seq` resume is served from memory, or, when it asks for older events than are kept,
// from a private catch-up stream until it reaches the kept window. A subscriber that falls more
// than its bound (frames or bytes of live events) behind is dropped as too slow (browsers are
// closed with 1013 and resume with after_seq).
//
// Upstream loss: the follower reconnects with after_seq = the last seq it saw, with capped
// exponential backoff, for as long as anyone follows; it never gives up because the engine is
// unreachable. A reconnect handshake refused with 404 finishes it as gone. Only when a reconnect
// opens and closes without a new event, and after a quiet period on an open stream, does it ask
// GET state: a terminal thread whose `end` was missed is finished from the state, a thread the
// engine no longer knows (404) is finished as gone. (A reconnect with after_seq already replays
// what was missed, so a loss alone, or a connection that cannot be made, asks nothing more of
// an engine that may be overloaded.) A follower ends, and is removed, after `end` (or such a
// state) or when its last subscriber leaves.
//
// Concurrency: coroutines on the runtime's I/O threads, no thread per thread, subscriber or
// proposal, and no polling: subscribers wait on a core::async::Signal. Thread-safe.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <stop_token>
#include <string>

#include <nlohmann/json.hpp>

#include "core/async.hpp"
#include "orchestrator/engine_client/engine_client.hpp"
#include "orchestrator/follow/event.hpp"

namespace orchestrator::follow {

/// Tuning of the followers of one process.
struct FollowOptions {
  /// Events kept in memory per followed thread, in bytes of event text (plus a small fixed cost
  /// per event). The latest event is always kept. Keep it above the
  /// browsers' max_behind_bytes, so a browser is dropped as slow before it needs a catch-up stream.
  std::size_t buffer_bytes = 2u << 20;
  /// Reconnect backoff after an upstream loss without progress: full jitter in
  /// [0, min(max, base * 2^n)], at least base / 2.
  std::chrono::milliseconds reconnect_base_delay{250};
  std::chrono::milliseconds reconnect_max_delay{10000};
  /// No event on an open upstream for this long: check GET state. While the state says the
  /// run is still queued on the engine, each check doubles the wait before the next (up to 8
  /// quiet periods); an event or a running state brings it back to one.
  std::chrono::milliseconds quiet_period{60000};
  /// stop() waits this long for the followers' coroutines to end.
  std::chrono::milliseconds stop_timeout{5000};
};

/// Limits and hooks of one subscriber.
struct SubscribeOptions {
  /// Live events (arrived after subscribing) still in memory and not yet taken with next();
  /// beyond max_behind_frames, or beyond max_behind_bytes not counting the largest event behind
  /// (a single event of any size never counts as slow, also with small events after it), the
  /// subscriber is dropped: next() yields
  /// Item::Kind::too_slow. Events evicted from memory stop counting (they come from a catch-up
  /// stream). Defaults: never dropped.
  std::size_t max_behind_frames = std::numeric_limits<std::size_t>::max();
  std::size_t max_behind_bytes = std::numeric_limits<std::size_t>::max();
  /// Called once when the subscriber is dropped as too slow, on the follower's I/O thread (keep it
  /// short and non-blocking, e.g. close the browser's connection so a pending write wait ends).
  std::function<void()> on_too_slow;
  /// W3C traceparent of the subscriber's span ("" = none), sent with the engine streams opened
  /// for it: the follower's upstream when this subscription starts the follower, and its own
  /// catch-up streams. The engine's stream spans then join the subscriber's trace.
  std::string traceparent;
};

/// What Subscription::next() yields: the next event, or why there is none and will be none.
struct Item {
  enum class Kind {
    event,     ///< `event` is the next event (seq = last + 1, or the next the engine numbered)
    ended,     ///< the run ended: after its `end` event, or (`state` set) the engine's terminal state
    gone,      ///< the engine no longer knows the thread (404); `reason` says so
    too_slow,  ///< this subscriber fell too far behind and was dropped; resume with after_seq
    stopped,   ///< the process is shutting down, or next()'s stop token was triggered
    /// an event is larger than the engine client reads (AsyncClientOptions::ws_max_message_bytes),
    /// so nothing from it on can be relayed; `reason` says so
    too_large,
  };
  Kind kind = Kind::event;
  EventPtr event;                               ///< kind event
  std::shared_ptr<const nlohmann::json> state;  ///< kind ended without an `end` event: GET state's document
  std::string reason;                           ///< kinds gone, stopped and too_large: a sentence
};

class FollowHub;

/// One subscriber of a thread. Destroying it leaves the thread (the follower stops when its last
/// subscriber left). next() must not be called concurrently with itself.
class Subscription {
 public:
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  /// The next event after the last one taken, in seq order without gaps or duplicates (as the
  /// engine numbered them), waiting for it; or the reason the stream is over. Once it yielded a
  /// final kind it keeps yielding it. Never throws for engine problems.
  core::async::Task<Item> next(std::stop_token stop = {});
  /// Seq of the last event taken (the `after_seq` to resume from); the subscribe after_seq at first.
  long long last_seq() const;
  /// The followed thread.
  const std::string& thread_id() const;

  struct State;
  explicit Subscription(std::shared_ptr<State> st);

 private:
  std::shared_ptr<State> st_;
};

/// Counters of a FollowHub (tests, metrics).
struct FollowStats {
  std::size_t followers = 0;            ///< threads followed now (one upstream each, when connected)
  std::size_t subscribers = 0;          ///< subscriptions open now
  std::uint64_t upstreams_opened = 0;   ///< shared upstream streams opened so far (reconnects included)
  std::uint64_t catch_ups_opened = 0;   ///< private catch-up streams opened so far
};

/// The followers of one process. Construct once, destroy (or stop()) before the engine client.
class FollowHub {
 public:
  /// Borrows `engine` (and its runtime), which must outlive the hub.
  explicit FollowHub(engine_client::EngineClient& engine, FollowOptions options = {});
  /// Calls stop().
  ~FollowHub();
  FollowHub(const FollowHub&) = delete;
  FollowHub& operator=(const FollowHub&) = delete;

  /// Subscribes to `thread_id` from `after_seq` (0 = from the start): starts a follower when
  /// none runs for the thread. `waiter` is the executor of the coroutine that will call next()
  /// (its wake-up timer lives there). After stop(), the subscription yields `stopped`.
  std::shared_ptr<Subscription> subscribe(const std::string& thread_id, long long after_seq,
                                          const core::async::Executor& waiter, SubscribeOptions options = {});

  /// Stops every follower (subscribers get `stopped`) and waits up to stop_timeout for their
  /// coroutines. Idempotent. Call before stopping the runtime.
  void stop();

  /// Current counters.
  FollowStats stats() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace orchestrator::follow
