// Thread followers: see follower.hpp for the contract.
#include "orchestrator/follow/follower.hpp"

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "core/log.hpp"
#include "core/task_group.hpp"
#include "core/metrics.hpp"
#include "core/resilience.hpp"

namespace orchestrator::follow {

namespace {

using Clock = std::chrono::steady_clock;
using core::async::Task;
using engine_client::EngineRejected;

core::metrics::Gauge& followers_gauge() {
  static auto& g = core::metrics::global().gauge("ide_orchestrator_followed_threads",
                                                 "Engine threads followed now (one upstream stream each)");
  return g;
}
core::metrics::Gauge& subscribers_gauge() {
  static auto& g = core::metrics::global().gauge(
      "ide_orchestrator_thread_subscribers", "Subscribers of followed threads (proposal trackers and browsers)");
  return g;
}
core::metrics::Counter& streams_counter() {
  static auto& c = core::metrics::global().counter(
      "ide_orchestrator_engine_streams_opened_total",
      "Engine event streams opened, by purpose: follow (the shared upstream of a thread) or catch_up "
      "(a subscriber asking for events older than those kept in memory)");
  return c;
}
core::metrics::Counter& slow_counter() {
  static auto& c = core::metrics::global().counter(
      "ide_orchestrator_slow_subscribers_total", "Subscribers dropped because they fell too far behind");
  return c;
}

/// Bytes an event holds in memory (text, plus its parsed files).
std::size_t weight(const Event& e) { return e.text.size() + 64; }

Item final_item(Item::Kind kind, std::string reason = {}, std::shared_ptr<const nlohmann::json> state = {}) {
  Item it;
  it.kind = kind;
  it.reason = std::move(reason);
  it.state = std::move(state);
  return it;
}

std::string gone_sentence(const std::string& thread_id) {
  return "The engine no longer knows thread " + thread_id + " (it was deleted or lost).";
}

/// The final word for a thread whose next event is over the client's message limit.
Item too_large_item(const std::string& thread_id, const core::http::ClientError& e) {
  return final_item(Item::Kind::too_large, "An event of thread " + thread_id +
                                               " is too large for the orchestrator to relay (" + e.what() +
                                               "); the run's files are too large as JSON.");
}

bool is_too_large(const core::http::ClientError& e) { return e.kind() == core::http::ClientErrorKind::too_large; }

}  // namespace

struct Follower;

// ---------------------------------------------------------------- hub state

struct FollowHub::Impl {
  Impl(engine_client::EngineClient& e, FollowOptions o) : engine(e), rt(e.runtime()), options(o) {}
  engine_client::EngineClient& engine;
  core::async::Runtime& rt;
  FollowOptions options;

  std::mutex mu;  // lock order: Impl::mu before Follower::mu
  std::map<std::string, std::shared_ptr<Follower>> followers;
  bool stopping = false;

  core::async::TaskGroup tasks{rt, "thread-followers"};  ///< every follower coroutine

  std::atomic<std::size_t> subscribers{0};
  std::atomic<std::uint64_t> upstreams{0};
  std::atomic<std::uint64_t> catch_ups{0};
};

// ---------------------------------------------------------------- follower

struct Subscription::State {
  State(std::string t, std::shared_ptr<Follower> f, SubscribeOptions o, const core::async::Executor& ex)
      : thread_id(std::move(t)), follower(std::move(f)), options(std::move(o)), signal(ex) {}
  std::string thread_id;
  std::shared_ptr<Follower> follower;
  SubscribeOptions options;
  core::async::Signal signal;
  // Guarded by follower->mu:
  long long cursor = 0;      ///< seq of the last event taken
  long long live_floor = 0;  ///< follower's last seq when subscribing: later events count as "behind"
  std::size_t behind_frames = 0, behind_bytes = 0;
  /// The largest weight among the events counted behind since the subscriber was last caught up
  /// (reset when behind_frames returns to 0); not counted against the byte bound.
  std::size_t behind_largest = 0;
  bool too_slow = false;
  // Used only by the consumer (next()):
  std::shared_ptr<core::http::AsyncWsClient> catch_up;
  int catch_up_failures = 0;
};

/// One followed thread: its upstream, its events in memory and its subscribers.
struct Follower : std::enable_shared_from_this<Follower> {
  Follower(std::shared_ptr<FollowHub::Impl> h, std::string t, long long start, std::string tp)
      : hub(std::move(h)), thread_id(std::move(t)), traceparent(std::move(tp)), base_seq(start), last_seq(start) {}

  std::shared_ptr<FollowHub::Impl> hub;
  const std::string thread_id;
  const std::string traceparent;  ///< of the subscriber that started the follower (SubscribeOptions)
  std::stop_source stop;  ///< ends both coroutines (last subscriber left, finished, shutdown)

  std::mutex mu;
  std::deque<EventPtr> log;   ///< events with seq > base_seq, in order
  std::size_t log_bytes = 0;
  long long base_seq;         ///< every event after this seq that the engine sent is in `log`
  long long last_seq;         ///< last seq received
  std::vector<Subscription::State*> subs;
  std::optional<Item> finish;  ///< the final item, once the stream is over
  std::shared_ptr<std::stop_source> conn_stop;  ///< cancels the current upstream read (watchdog resync)
  bool connected = false;
  bool resync = false;         ///< the watchdog asked for a reconnect (not a loss)
  bool watch_resynced = false; ///< used by watch() only: it already asked for one reconnect
  Clock::time_point last_activity = Clock::now();

  /// Adds a new event (false for a duplicate): wakes subscribers, drops the ones too far behind,
  /// evicts beyond the memory bound, and finishes the follower on `end`.
  bool append(const EventPtr& ev);
  /// Ends the stream with `item` (once) and leaves the hub.
  void finish_with(Item item);
  /// The upstream loop and the quiet-period watchdog.
  static Task<void> run(std::shared_ptr<Follower> self);
  static Task<void> watch(std::shared_ptr<Follower> self);
  /// GET state: nullopt when the engine cannot be reached; else the document (null json for 404).
  Task<std::optional<nlohmann::json>> probe_state();
};

bool Follower::append(const EventPtr& ev) {
  std::vector<std::function<void()>> dropped;
  {
    std::lock_guard lk(mu);
    if (finish || ev->seq <= last_seq) return false;
    last_seq = ev->seq;
    last_activity = Clock::now();
    log.push_back(ev);
    const std::size_t w = weight(*ev);
    log_bytes += w;
    for (auto* s : subs) {
      if (!s->too_slow && ev->seq > s->cursor) {
        ++s->behind_frames;
        s->behind_bytes += w;
        s->behind_largest = std::max(s->behind_largest, w);
      }
      s->signal.notify();
    }
    while (log_bytes > hub->options.buffer_bytes && log.size() > 1) {
      const EventPtr old = log.front();
      const std::size_t ow = weight(*old);
      for (auto* s : subs) {
        // A live event evicted before it was taken is no longer held for this subscriber (it will
        // read it from a catch-up stream), so it stops counting against it.
        if (!s->too_slow && old->seq > s->cursor && old->seq > s->live_floor) {
          --s->behind_frames;
          s->behind_bytes -= std::min(s->behind_bytes, ow);
        }
      }
      base_seq = old->seq;
      log_bytes -= ow;
      log.pop_front();
    }
    // Checked after eviction, on what the subscriber still has to take from memory. The byte
    // bound leaves out the largest event behind: one event, however large (a state update
    // carrying a big tree of files), never makes a subscriber "too slow", not even with a few
    // small events after it while it is being read.
    for (auto* s : subs) {
      if (s->too_slow) continue;
      const bool frames = s->behind_frames > s->options.max_behind_frames;
      const std::size_t rest = s->behind_bytes - std::min(s->behind_bytes, s->behind_largest);
      const bool bytes = s->behind_frames > 1 && rest > s->options.max_behind_bytes;
      if (frames || bytes) {
        s->too_slow = true;
        slow_counter().inc();
        if (s->options.on_too_slow) dropped.push_back(s->options.on_too_slow);
        s->signal.notify();
      }
    }
  }
  for (auto& cb : dropped) {
    try {
      cb();
    } catch (const std::exception& e) {
      core::log::warn("slow_subscriber_callback_failed", {{"thread_id", thread_id}, {"error", e.what()}});
    }
  }
  if (ev->is_end()) finish_with(final_item(Item::Kind::ended));
  return true;
}

void Follower::finish_with(Item item) {
  {
    std::lock_guard lk(mu);
    if (finish) return;
    finish = std::move(item);
    for (auto* s : subs) s->signal.notify();
  }
  stop.request_stop();
  std::lock_guard hl(hub->mu);
  auto it = hub->followers.find(thread_id);
  if (it != hub->followers.end() && it->second.get() == this) {
    hub->followers.erase(it);
    followers_gauge().dec();
  }
}

Task<std::optional<nlohmann::json>> Follower::probe_state() {
  std::optional<nlohmann::json> out;
  try {
    auto st = co_await hub->engine.get_state_async(thread_id, stop.get_token());
    out = st ? std::move(*st) : nlohmann::json();
  } catch (const EngineRejected& e) {
    core::log::warn("engine refused the state of a followed thread", {{"thread_id", thread_id}, {"error", e.what()}});
  } catch (const std::exception& e) {
    core::log::debug("engine state unavailable", {{"thread_id", thread_id}, {"error", e.what()}});
  }
  co_return out;
}

Task<void> Follower::run(std::shared_ptr<Follower> self) {
  const FollowOptions& o = self->hub->options;
  core::RetryPolicy backoff{1, o.reconnect_base_delay, o.reconnect_max_delay};
  int failures = 0;       // consecutive upstream losses without a new event
  bool terminal_seen = false;  // GET state said terminal once: reconnect once more for the missing tail
  const auto stop = self->stop.get_token();
  while (!stop.stop_requested()) {
    auto conn_stop = std::make_shared<std::stop_source>();
    long long from = 0;
    {
      std::lock_guard lk(self->mu);
      self->conn_stop = conn_stop;
      from = self->last_seq;
    }
    auto cancel_conn = [conn_stop] { conn_stop->request_stop(); };
    std::stop_callback link(stop, cancel_conn);
    bool progressed = false;
    bool opened = false;  // the handshake succeeded: the engine was reachable and knew the thread
    bool unknown = false; // the handshake was refused with 404: the engine does not know the thread
    bool closed_normally = false;  // the engine closed with 1000 (it had sent all it had)
    std::optional<Item> oversized;  // the next event is over the message limit: reading again gets it again
    std::string lost;
    try {
      // Made first, then awaited: by-value arguments inside a co_await expression (GCC 12).
      auto opening = self->hub->engine.open_stream(self->thread_id, from, conn_stop->get_token(), self->traceparent);
      auto ws = co_await std::move(opening);
      opened = true;
      // The engine pings a silent stream with the thread's status after each of its own checks
      // (docs/engine-api.md "Stream"): the stream is alive and the run not over, so the watchdog
      // need not ask GET state while these come. Pings without a status (keep-alives) say less.
      std::weak_ptr<Follower> weak = self;
      ws->on_ping([weak](std::string_view status) {
        if (status != "queued" && status != "running") return;
        if (auto f = weak.lock()) {
          std::lock_guard lk(f->mu);
          f->last_activity = Clock::now();
        }
      });
      ++self->hub->upstreams;
      streams_counter().inc({{"purpose", "follow"}});
      {
        std::lock_guard lk(self->mu);
        self->connected = true;
        self->last_activity = Clock::now();
      }
      for (;;) {
        auto msg = co_await ws->read(conn_stop->get_token());
        if (!msg) {
          closed_normally = ws->close_code() == 1000;
          lost = "the engine closed the stream (code " + std::to_string(ws->close_code()) + ")";
          break;
        }
        long long position = 0;
        {
          std::lock_guard lk(self->mu);
          position = self->last_seq + 1;
        }
        auto ev = parse_event(std::move(*msg), position);
        if (self->append(ev)) progressed = true;
        if (ev->is_end()) co_return;
      }
    } catch (const EngineRejected& e) {
      lost = e.what();
      unknown = !opened && e.status() == 404;
    } catch (const core::http::ClientError& e) {
      lost = e.what();
      if (is_too_large(e)) oversized.emplace(too_large_item(self->thread_id, e));
    } catch (const std::exception& e) {
      lost = e.what();
    }
    bool resync = false;
    {
      std::lock_guard lk(self->mu);
      self->connected = false;
      resync = std::exchange(self->resync, false);
    }
    if (stop.stop_requested()) break;
    if (progressed) failures = 0;
    core::log::debug("engine stream of a followed thread lost",
                     {{"thread_id", self->thread_id}, {"after_seq", from}, {"reason", lost}, {"resync", resync}});
    if (unknown) {
      self->finish_with(final_item(Item::Kind::gone, gone_sentence(self->thread_id)));
      break;
    }
    if (oversized) {
      core::log::warn("engine event too large to relay", {{"thread_id", self->thread_id}, {"reason", lost}});
      self->finish_with(std::move(*oversized));
      break;
    }
    // Ask the engine what became of the run only when a reconnect brought nothing: the stream
    // opened and closed without a new event. Reconnecting with after_seq already replays what
    // was missed (and `end`), and a 404 handshake already says gone; a probe after a connection
    // that could not be made asks the same unreachable or overloaded engine again (at 10,000
    // threads, every upstream loss became a GET state that timed out and was asked again).
    if (!resync && opened && !progressed) {
      // Terminal: finish from the state when this stream ended normally (the engine closes with
      // 1000 only once it has sent every stored event), else reconnect once more for the events
      // we may have missed first; unknown to the engine: gone; unreachable: keep trying.
      auto state = co_await self->probe_state();
      if (state && state->is_null()) {
        self->finish_with(final_item(Item::Kind::gone, gone_sentence(self->thread_id)));
        break;
      }
      if (state && is_terminal_status(state->value("status", std::string()))) {
        if (terminal_seen || closed_normally) {
          self->finish_with(final_item(Item::Kind::ended, {}, std::make_shared<const nlohmann::json>(std::move(*state))));
          break;
        }
        terminal_seen = true;
        continue;  // reconnect at once: the engine replays what we missed, then `end`
      }
      if (state) terminal_seen = false;
    }
    if (resync || progressed) continue;
    const auto delay = std::max(backoff.delay_for(failures), o.reconnect_base_delay / 2);
    ++failures;
    if (!co_await core::async::sleep_for(delay, stop)) break;
  }
  self->finish_with(final_item(Item::Kind::stopped, "The orchestrator stopped following this run."));
}

Task<void> Follower::watch(std::shared_ptr<Follower> self) {
  const auto quiet = self->hub->options.quiet_period;
  const auto stop = self->stop.get_token();
  // A thread still queued on the engine (its run waits for a slot) is silent for as long as it
  // waits: each probe that finds it queued, or that the engine does not answer, doubles the
  // wait before the next one (up to kMaxQuietFactor quiet periods), so thousands of queued
  // threads do not poll a busy engine once a quiet period each. Any event, or a probe that
  // finds it running, brings the wait back.
  constexpr int kMaxQuietFactor = 8;
  int factor = 1;
  Clock::time_point seen = Clock::time_point::min();
  // A random phase in [0, quiet]: threads started together (10,000 at once in the load bench)
  // would otherwise all check at the same moments, a burst of GET state to busy engines.
  const auto phase = core::RetryPolicy{1, std::chrono::duration_cast<std::chrono::milliseconds>(quiet),
                                       std::chrono::duration_cast<std::chrono::milliseconds>(quiet)}
                         .delay_for(0);
  if (!co_await core::async::sleep_for(phase, stop)) co_return;
  while (co_await core::async::sleep_for(quiet, stop)) {
    std::shared_ptr<std::stop_source> conn;
    {
      std::lock_guard lk(self->mu);
      if (self->finish) break;
      if (self->last_activity != seen) factor = 1;  // an event (or a reconnect) since the last probe
      if (!self->connected || Clock::now() - self->last_activity < quiet * factor) continue;
      self->last_activity = Clock::now();
      seen = self->last_activity;
      conn = self->conn_stop;
    }
    auto state = co_await self->probe_state();
    if (!state) {
      // Unanswered (timed out, refused): an engine too busy to answer is asked less often too.
      factor = std::min(factor * 2, kMaxQuietFactor);
      continue;
    }
    if (state->is_null()) {
      self->finish_with(final_item(Item::Kind::gone, gone_sentence(self->thread_id)));
      break;
    }
    const std::string status = state->value("status", std::string());
    factor = status == "queued" ? std::min(factor * 2, kMaxQuietFactor) : 1;
    if (!is_terminal_status(status)) continue;
    if (self->watch_resynced) {
      // Reconnecting did not bring the missing events: the engine's state is the last word.
      core::log::warn("followed thread finished on the engine without an end event; finishing from its state",
                      {{"thread_id", self->thread_id}});
      self->finish_with(final_item(Item::Kind::ended, {}, std::make_shared<const nlohmann::json>(std::move(*state))));
      break;
    }
    // The engine says the run is over but the stream is silent: reconnect with after_seq, which
    // replays what we missed (and `end`); if it stays silent, the next check finishes from state.
    core::log::info("followed thread silent but finished on the engine; resyncing", {{"thread_id", self->thread_id}});
    self->watch_resynced = true;
    {
      std::lock_guard lk(self->mu);
      self->resync = true;
    }
    if (conn) conn->request_stop();
  }
}

// ---------------------------------------------------------------- subscription

Subscription::Subscription(std::shared_ptr<State> st) : st_(std::move(st)) {}

Subscription::~Subscription() {
  auto& f = *st_->follower;
  auto hub = f.hub;
  bool stop_follower = false;
  {
    std::lock_guard hl(hub->mu);
    std::lock_guard lk(f.mu);
    f.subs.erase(std::remove(f.subs.begin(), f.subs.end(), st_.get()), f.subs.end());
    if (f.subs.empty() && !f.finish) {
      stop_follower = true;
      auto it = hub->followers.find(f.thread_id);
      if (it != hub->followers.end() && it->second.get() == &f) {
        hub->followers.erase(it);
        followers_gauge().dec();
      }
    }
  }
  --hub->subscribers;
  subscribers_gauge().dec();
  if (stop_follower) f.stop.request_stop();
}

long long Subscription::last_seq() const {
  std::lock_guard lk(st_->follower->mu);
  return st_->cursor;
}

const std::string& Subscription::thread_id() const { return st_->thread_id; }

namespace {

/// Reads one event of a subscriber's private catch-up stream (opening it when needed). nullopt:
/// nothing to hand out this time (skipped duplicate, reconnect pending); the caller re-checks
/// the memory window. An Item: the next event, or the final word when catching up is impossible.
Task<std::optional<Item>> catch_up_one(Subscription::State& st, std::stop_token stop) {
  Follower& f = *st.follower;
  auto& hub = *f.hub;
  long long cursor = 0;
  {
    std::lock_guard lk(f.mu);
    cursor = st.cursor;
  }
  std::optional<std::string> msg;
  bool failed = false;
  bool gone = false;
  std::optional<Item> oversized;  // the next event is over the message limit
  try {
    if (!st.catch_up) {
      auto opening = hub.engine.open_stream(f.thread_id, cursor, stop, st.options.traceparent);
      st.catch_up = co_await std::move(opening);
      ++hub.catch_ups;
      streams_counter().inc({{"purpose", "catch_up"}});
    }
    msg = co_await st.catch_up->read(stop);
    if (!msg) failed = true;
  } catch (const EngineRejected& e) {
    failed = true;
    gone = e.status() == 404;
  } catch (const core::http::ClientError& e) {
    failed = true;
    if (is_too_large(e)) oversized.emplace(too_large_item(f.thread_id, e));
  } catch (const std::exception&) {
    failed = true;
  }
  if (stop.stop_requested()) co_return final_item(Item::Kind::stopped, "cancelled");
  if (oversized) {
    st.catch_up.reset();
    co_return std::move(*oversized);
  }
  if (failed) {
    st.catch_up.reset();
    std::optional<Item> fin;
    {
      std::lock_guard lk(f.mu);
      fin = f.finish;
    }
    // Nothing older can be had any more: the thread is gone, or the process is stopping.
    if (gone || (fin && fin->kind != Item::Kind::ended)) {
      co_return fin && fin->kind != Item::Kind::ended ? *fin
                                                      : final_item(Item::Kind::gone, gone_sentence(f.thread_id));
    }
    const auto& o = hub.options;
    core::RetryPolicy backoff{1, o.reconnect_base_delay, o.reconnect_max_delay};
    const auto delay = std::max(backoff.delay_for(st.catch_up_failures++), o.reconnect_base_delay / 2);
    if (!co_await core::async::sleep_for(delay, stop)) co_return final_item(Item::Kind::stopped, "cancelled");
    co_return std::nullopt;
  }
  st.catch_up_failures = 0;
  auto ev = parse_event(std::move(*msg), cursor + 1);
  std::lock_guard lk(f.mu);
  if (ev->seq <= st.cursor) co_return std::nullopt;  // duplicate
  if (ev->seq > f.base_seq) {
    // The engine has nothing between the cursor and the kept window: continue from memory.
    st.cursor = f.base_seq;
    co_return std::nullopt;
  }
  st.cursor = ev->seq;
  Item it;
  it.event = std::move(ev);
  co_return it;
}

}  // namespace

Task<Item> Subscription::next(std::stop_token stop) {
  auto st = st_;  // keeps the state alive while suspended
  Follower& f = *st->follower;
  for (;;) {
    if (stop.stop_requested()) co_return final_item(Item::Kind::stopped, "cancelled");
    bool behind_window = false;
    std::optional<Item> ready;  // from memory: the next event, or the final word
    {
      std::lock_guard lk(f.mu);
      if (st->too_slow) co_return final_item(Item::Kind::too_slow);
      if (st->cursor < f.base_seq) {
        behind_window = true;
      } else {
        // First kept event after the cursor (seqs increase; the engine's numbering may skip).
        const long long cursor = st->cursor;
        auto it = std::upper_bound(f.log.begin(), f.log.end(), cursor,
                                   [](long long c, const EventPtr& e) { return c < e->seq; });
        if (it != f.log.end()) {
          ready.emplace();
          ready->event = *it;
          st->cursor = ready->event->seq;
          if (ready->event->seq > st->live_floor && st->behind_frames > 0) {
            --st->behind_frames;
            st->behind_bytes -= std::min(st->behind_bytes, weight(*ready->event));
            if (st->behind_frames == 0) st->behind_largest = 0;
          }
        } else if (f.finish) {
          ready = *f.finish;
        }
      }
    }
    if (behind_window) {
      auto got = co_await catch_up_one(*st, stop);
      if (got) co_return std::move(*got);
      continue;
    }
    // Back in the kept window: the catch-up stream is done. Closed now, not only when the
    // subscriber next waits (on a busy thread it may never wait, holding an engine stream).
    if (st->catch_up) {
      auto done = std::move(st->catch_up);
      co_await done->close();
    }
    if (ready) co_return std::move(*ready);
    co_await st->signal.wait(stop);
  }
}

// ---------------------------------------------------------------- hub

FollowHub::FollowHub(engine_client::EngineClient& engine, FollowOptions options)
    : impl_(std::make_shared<Impl>(engine, options)) {
  followers_gauge();
  subscribers_gauge();
  streams_counter();
  slow_counter();
}

FollowHub::~FollowHub() { stop(); }

std::shared_ptr<Subscription> FollowHub::subscribe(const std::string& thread_id, long long after_seq,
                                                   const core::async::Executor& waiter, SubscribeOptions options) {
  after_seq = std::max(0LL, after_seq);
  std::shared_ptr<Follower> f;
  bool start = false;
  auto st = std::make_shared<Subscription::State>(thread_id, nullptr, std::move(options), waiter);
  {
    std::lock_guard hl(impl_->mu);
    auto it = impl_->followers.find(thread_id);
    if (it != impl_->followers.end()) {
      f = it->second;
    } else {
      f = std::make_shared<Follower>(impl_, thread_id, after_seq, st->options.traceparent);
      if (impl_->stopping) {
        f->finish = final_item(Item::Kind::stopped, "The orchestrator is shutting down.");
      } else {
        impl_->followers.emplace(thread_id, f);
        followers_gauge().inc();
        start = true;
      }
    }
    st->follower = f;
    std::lock_guard lk(f->mu);
    st->cursor = after_seq;
    st->live_floor = f->last_seq;
    f->subs.push_back(st.get());
  }
  ++impl_->subscribers;
  subscribers_gauge().inc();
  if (start) {
    impl_->tasks.spawn(Follower::run(f));
    impl_->tasks.spawn(Follower::watch(f));
  }
  return std::make_shared<Subscription>(std::move(st));
}

void FollowHub::stop() {
  std::vector<std::shared_ptr<Follower>> all;
  {
    std::lock_guard hl(impl_->mu);
    impl_->stopping = true;
    for (auto& [id, f] : impl_->followers) all.push_back(f);
  }
  for (auto& f : all) f->stop.request_stop();
  if (!impl_->tasks.wait(impl_->options.stop_timeout)) {
    core::log::warn("thread followers still running at shutdown",
                    {{"running", static_cast<long long>(impl_->tasks.running())}});
  }
}

FollowStats FollowHub::stats() const {
  FollowStats s;
  {
    std::lock_guard hl(impl_->mu);
    s.followers = impl_->followers.size();
  }
  s.subscribers = impl_->subscribers.load();
  s.upstreams_opened = impl_->upstreams.load();
  s.catch_ups_opened = impl_->catch_ups.load();
  return s;
}

}  // namespace orchestrator::follow
