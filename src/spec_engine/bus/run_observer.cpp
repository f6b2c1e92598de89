// StoreRunObserver: a per-run ordered write queue drained on the blocking pool.
#include "spec_engine/bus/run_observer.hpp"

#include <deque>
#include <mutex>
#include <optional>

#include "core/metrics.hpp"
#include "core/util.hpp"

namespace spec_engine::bus {

namespace {

core::metrics::Counter& events_emitted() {
  return core::metrics::global().counter("spec_engine_events_emitted_total",
                                         "Events stored and published by runs, by event_type");
}

}  // namespace

/// One queued write: an event, a checkpoint, or a flush marker (neither), with the waiter to
/// wake once it is done (checkpoints and markers).
struct Op {
  std::optional<store::EventRecord> event;
  std::optional<nlohmann::json> checkpoint;
  std::int64_t checkpoint_seq = 0;
  std::shared_ptr<core::async::Oneshot<bool>> done;
};

/// Shared by the observer and its drain task (which may outlive a discarded observer).
struct StoreRunObserver::Queue {
  Queue(store::Store& s, EventHub& h, core::async::Runtime& r, std::string id, std::int64_t seq,
        std::shared_ptr<const std::atomic<bool>> d)
      : store(s), hub(h), rt(r), thread_id(std::move(id)), next_seq(seq), dropped(std::move(d)) {}

  store::Store& store;
  EventHub& hub;
  core::async::Runtime& rt;
  const std::string thread_id;

  std::mutex mu;
  std::deque<Op> ops;              // guarded by mu
  bool draining = false;           // a drain task is queued or running; guarded by mu
  std::int64_t next_seq;           // last assigned seq; guarded by mu
  std::exception_ptr error;        // first failed write; guarded by mu
  std::shared_ptr<const std::atomic<bool>> dropped;

  /// Queues `op`, numbering it under the queue's lock (an event gets the next seq, a
  /// checkpoint the seq of the last event before it, so the queue order is the seq order),
  /// and starts a drain task unless one is active.
  static void enqueue(Op op, const std::shared_ptr<Queue>& self) {
    {
      std::lock_guard lk(self->mu);
      if (op.event) op.event->seq = ++self->next_seq;
      if (op.checkpoint) op.checkpoint_seq = self->next_seq;
      self->ops.push_back(std::move(op));
      if (self->draining) return;
      self->draining = true;
    }
    self->rt.spawn(drain(self));
  }

  /// The drain task: stores the queue on the blocking pool until it is empty.
  static core::async::Task<void> drain(std::shared_ptr<Queue> self) {
    auto job = [self] { self->drain_blocking(); };
    auto job_task = self->rt.blocking(std::move(job));
    co_await std::move(job_task);
  }

  /// Stores queued ops in order until none is left (on a blocking thread).
  void drain_blocking() {
    for (;;) {
      Op op;
      std::exception_ptr failed;
      {
        std::lock_guard lk(mu);
        if (ops.empty()) {
          draining = false;
          return;
        }
        op = std::move(ops.front());
        ops.pop_front();
        failed = error;
      }
      if (!failed && !dropped->load()) {
        try {
          write(op);
        } catch (const std::exception& e) {
          core::log::error("storing a run's event or checkpoint failed",
                           {{"thread_id", thread_id}, {"error", e.what()}});
          failed = std::current_exception();
          std::lock_guard lk(mu);
          if (!error) error = failed;
        }
      }
      if (op.done) {
        if (failed) op.done->set_exception(failed);
        else op.done->set_value(true);
      }
    }
  }

  /// Stores one op (retrying while the pool is busy) and publishes a stored event.
  void write(const Op& op) {
    if (op.event) {
      retry_while_pool_busy([&] { store.append_event(*op.event); }, thread_id, "append_event");
      hub.publish(*op.event);
      events_emitted().inc({{"event_type", op.event->event_type}});
    } else if (op.checkpoint) {
      retry_while_pool_busy([&] { store.save_checkpoint(thread_id, op.checkpoint_seq, *op.checkpoint); }, thread_id,
                            "save_checkpoint");
    }
  }
};

StoreRunObserver::StoreRunObserver(store::Store& store, EventHub& hub, core::async::Runtime& rt, std::string thread_id,
                                   std::int64_t last_seq, std::shared_ptr<const std::atomic<bool>> dropped)
    : q_(std::make_shared<Queue>(store, hub, rt, std::move(thread_id), last_seq, std::move(dropped))) {
  events_emitted();  // registered up front so /metrics shows it before the first event
}

StoreRunObserver::~StoreRunObserver() = default;

void StoreRunObserver::emit(const std::string& event_type, const nlohmann::json& data) {
  if (q_->dropped->load()) return;
  Op op;
  op.event = store::EventRecord{q_->thread_id, 0, event_type, data, core::now_rfc3339()};
  Queue::enqueue(std::move(op), q_);
}

core::async::Task<void> StoreRunObserver::checkpoint(const nlohmann::json& state) {
  auto done = std::make_shared<core::async::Oneshot<bool>>(q_->rt.executor());
  Op op;
  op.checkpoint = state;
  op.done = done;
  Queue::enqueue(std::move(op), q_);
  auto stored = done->get();
  co_await std::move(stored);
}

core::async::Task<void> StoreRunObserver::flush() {
  // A marker behind everything queued: done once they are, failed if any write failed.
  auto done = std::make_shared<core::async::Oneshot<bool>>(q_->rt.executor());
  Op marker;
  marker.done = done;
  Queue::enqueue(std::move(marker), q_);
  auto drained = done->get();
  co_await std::move(drained);
}

std::int64_t StoreRunObserver::last_seq() const {
  std::lock_guard lk(q_->mu);
  return q_->next_seq;
}

}  // namespace spec_engine::bus
