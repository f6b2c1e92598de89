// Event log: delta coalescing, seq numbering, group commit with epoch fencing, publish.
#include "spec_engine/bus/event_log.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <boost/asio/this_coro.hpp>

#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/util.hpp"

namespace spec_engine::bus {

namespace {

using Clock = std::chrono::steady_clock;

core::metrics::Counter& batches_total() {
  return core::metrics::global().counter("spec_engine_event_batches_total",
                                         "Transactions of the event log's writer, by outcome (ok|error)");
}
core::metrics::Histogram& batch_size() {
  return core::metrics::global().histogram("spec_engine_event_batch_writes", "Writes per event-log transaction",
                                           {1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000});
}
core::metrics::Counter& fenced_total() {
  return core::metrics::global().counter("spec_engine_fenced_writes_total",
                                         "Writes dropped because the thread was deleted or taken over (epoch fence)");
}

/// True for an on_llm_stream payload that can be merged: exactly {"node": str, "delta": str}.
bool mergeable(const std::string& type, const nlohmann::json& data) {
  return type == "on_llm_stream" && data.is_object() && data.size() == 2 && data.contains("node") &&
         data["node"].is_string() && data.contains("delta") && data["delta"].is_string();
}

}  // namespace

struct EventLog::Run::State {
  EventLog::Impl* log = nullptr;
  std::string thread_id;
  std::int64_t epoch = 0;
  std::int64_t seq = 0;  ///< last numbered seq; guarded by Impl::mu
  bool fenced = false;   ///< guarded by Impl::mu
  std::function<void()> on_fenced;
  // Pending merged delta (guarded by Impl::mu).
  bool pending = false;
  std::string pending_node;
  std::string pending_text;
  std::string pending_ts;  ///< ts of the first merged delta
  Clock::time_point pending_deadline;
};

struct EventLog::Impl {
  using RunPtr = std::shared_ptr<Run::State>;
  struct Item {
    store::Write write;
    RunPtr run;
    Completion done;
    Clock::time_point queued_at = Clock::now();  ///< for the group-commit window
  };
  store::Store& store;
  Publish publish;
  EventLogOptions opts;
  mutable std::mutex mu;
  std::condition_variable cv;
  std::deque<Item> queue;
  std::set<RunPtr> pending;  ///< runs holding a merged delta
  bool started = false;
  bool stopping = false;     ///< stop() was called: flush what is there, then exit
  bool stopped = false;      ///< the writer has exited: nothing more is accepted
  Clock::time_point stop_deadline{};
  std::thread writer;

  Impl(store::Store& s, Publish p, EventLogOptions o) : store(s), publish(std::move(p)), opts(o) {}

  /// Moves the run's merged delta into the queue as one event. Caller holds mu.
  void flush_delta_locked(const RunPtr& r) {
    if (!r->pending) return;
    r->pending = false;
    pending.erase(r);
    store::EventRecord ev{r->thread_id, ++r->seq, "on_llm_stream",
                          {{"node", std::move(r->pending_node)}, {"delta", std::move(r->pending_text)}},
                          std::move(r->pending_ts)};
    r->pending_node.clear();
    r->pending_text.clear();
    r->pending_ts.clear();
    queue.push_back({store::Write{r->epoch, store::EventWrite{std::move(ev)}}, r, {}});
  }

  void emit(const RunPtr& r, const std::string& type, nlohmann::json data) {
    std::lock_guard lk(mu);
    if (r->fenced || stopped) return;
    if (mergeable(type, data)) {
      const auto& node = data["node"].get_ref<const std::string&>();
      const auto& delta = data["delta"].get_ref<const std::string&>();
      if (r->pending && r->pending_node != node) flush_delta_locked(r);
      if (!r->pending) {
        r->pending = true;
        r->pending_node = node;
        r->pending_ts = core::now_rfc3339();
        r->pending_deadline = Clock::now() + opts.delta_flush;
        pending.insert(r);
        cv.notify_one();  // the writer may need an earlier wake-up
      }
      r->pending_text += delta;
      if (r->pending_text.size() >= opts.delta_flush_bytes) {
        const std::size_t before = queue.size();
        flush_delta_locked(r);
        wake_writer_locked(before);
      }
      return;
    }
    enqueue_event_locked(r, type, std::move(data), nullptr);
  }

  /// An event given as text (Run::emit_text): never merged, `data` stays null.
  void emit_text(const RunPtr& r, const std::string& type, std::shared_ptr<const std::string> text) {
    std::lock_guard lk(mu);
    if (r->fenced || stopped) return;
    enqueue_event_locked(r, type, nullptr, std::move(text));
  }

  /// Numbers the event after the run's merged delta and queues it. Caller holds mu.
  void enqueue_event_locked(const RunPtr& r, const std::string& type, nlohmann::json data,
                            std::shared_ptr<const std::string> text) {
    const std::size_t before = queue.size();
    flush_delta_locked(r);
    store::EventRecord ev{r->thread_id, ++r->seq, type, std::move(data), core::now_rfc3339(), std::move(text)};
    queue.push_back({store::Write{r->epoch, store::EventWrite{std::move(ev)}}, r, {}});
    wake_writer_locked(before);
  }

  /// Wakes the writer for writes just queued behind `before` others. It waits on the condition
  /// only with an empty queue (or, with a non-empty one, for the group-commit window), so only
  /// the first write and a full batch need to wake it: one wake-up per batch, not per write.
  void wake_writer_locked(std::size_t before) {
    if (before == 0 || queue.size() >= opts.max_batch) cv.notify_one();
  }

  /// Queues a write with its completion, after the run's merged delta and events.
  void push(const RunPtr& r, store::Write w, Completion done) {
    std::exception_ptr refused;
    {
      std::lock_guard lk(mu);
      if (r->fenced) {
        refused = std::make_exception_ptr(Fenced("thread " + r->thread_id + " was deleted or taken over"));
      } else if (stopped) {
        refused = std::make_exception_ptr(std::runtime_error("event log stopped"));
      } else {
        const std::size_t before = queue.size();
        flush_delta_locked(r);
        queue.push_back({std::move(w), r, std::move(done)});
        wake_writer_locked(before);
        return;
      }
    }
    if (done) done(refused);
  }

  /// Queues the run's checkpoint, numbered after the last event (a merged delta is flushed first).
  void push_checkpoint(const RunPtr& r, store::CheckpointWrite w, Completion done) {
    {
      std::lock_guard lk(mu);
      flush_delta_locked(r);
      w.seq = r->seq;
    }
    w.thread_id = r->thread_id;
    push(r, store::Write{r->epoch, std::move(w)}, std::move(done));
  }

  void run_writer();
  /// Takes the next batch (expired deltas first moved to the queue). Caller holds lk; waits.
  /// Returns false when the writer should exit.
  bool next_batch(std::unique_lock<std::mutex>& lk, std::vector<Item>& batch);
  /// Writes one batch and settles it; false when the database failed (batch kept for a retry).
  bool write(std::vector<Item>& batch);
};

bool EventLog::Impl::next_batch(std::unique_lock<std::mutex>& lk, std::vector<Item>& batch) {
  for (;;) {
    const auto now = Clock::now();
    Clock::time_point earliest = Clock::time_point::max();
    std::vector<RunPtr> due;
    for (const auto& r : pending) {
      if (stopping || r->pending_deadline <= now) {
        due.push_back(r);
      } else {
        earliest = std::min(earliest, r->pending_deadline);
      }
    }
    for (const auto& r : due) flush_delta_locked(r);
    if (!queue.empty() && !stopping && opts.group_commit.count() > 0 && queue.size() < opts.max_batch) {
      // Group commit: wait for more writes until the oldest has waited the window.
      const auto ready_at = queue.front().queued_at + opts.group_commit;
      if (now < ready_at) {
        cv.wait_until(lk, std::min(ready_at, earliest));
        continue;
      }
    }
    if (!queue.empty()) {
      const std::size_t n = std::min(queue.size(), std::max<std::size_t>(1, opts.max_batch));
      batch.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue.front()));
        queue.pop_front();
      }
      // A run's `end` event and its outcome are never split across transactions.
      if (!queue.empty() && std::holds_alternative<store::OutcomeWrite>(queue.front().write.op)) {
        batch.push_back(std::move(queue.front()));
        queue.pop_front();
      }
      return true;
    }
    if (stopping) return false;
    if (earliest == Clock::time_point::max()) {
      cv.wait(lk);
    } else {
      cv.wait_until(lk, earliest);
    }
  }
}

bool EventLog::Impl::write(std::vector<Item>& batch) {
  // The writes are moved out for the transaction (a checkpoint may carry megabytes of files)
  // and moved back when it fails, so the retry sends the same writes without a copy.
  std::vector<store::Write> writes;
  writes.reserve(batch.size());
  for (auto& it : batch) {
    // Serialize each event's data once: the row, the stream frame and the NATS message share it.
    if (auto* ev = std::get_if<store::EventWrite>(&it.write.op); ev && !ev->event.data_text)
      ev->event.data_text = std::make_shared<const std::string>(store::dump_json(ev->event.data));
    writes.push_back(std::move(it.write));
  }
  store::BatchResult res;
  try {
    res = store.write_batch(writes, opts.notify_origin);
  } catch (const std::exception& e) {
    for (std::size_t i = 0; i < batch.size(); ++i) batch[i].write = std::move(writes[i]);
    batches_total().inc({{"outcome", "error"}});
    core::log::warn("event batch not stored; retrying", {{"writes", writes.size()}, {"error", e.what()}});
    return false;
  }
  batches_total().inc({{"outcome", "ok"}});
  batch_size().observe(static_cast<double>(writes.size()));
  // Fenced per (thread, epoch): a lost run's writes are dropped, a newer run of the same thread
  // in the same batch is not.
  const std::set<std::pair<std::string, std::int64_t>> fenced(res.fenced.begin(), res.fenced.end());
  const auto is_fenced = [&fenced](const RunPtr& r) { return fenced.count({r->thread_id, r->epoch}) > 0; };
  std::vector<RunPtr> newly_fenced;
  if (!fenced.empty()) {
    std::lock_guard lk(mu);
    for (auto& it : batch) {
      if (!is_fenced(it.run) || it.run->fenced) continue;
      it.run->fenced = true;
      if (it.run->pending) {
        it.run->pending = false;
        pending.erase(it.run);
      }
      newly_fenced.push_back(it.run);
    }
  }
  std::vector<store::EventRecord> stored;
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (is_fenced(batch[i].run)) continue;
    if (auto* ev = std::get_if<store::EventWrite>(&writes[i].op)) stored.push_back(std::move(ev->event));
  }
  if (!stored.empty() && publish) {
    try {
      publish(stored);
    } catch (const std::exception& e) {
      core::log::warn("event publish failed", {{"error", e.what()}});
    }
  }
  // Stop fenced runs first, so a run woken by its failed completion already sees why.
  for (const auto& r : newly_fenced) {
    core::log::warn("writes fenced: thread deleted or claimed by another replica; stopping its run",
                    {{"thread_id", r->thread_id}, {"epoch", r->epoch}});
    if (r->on_fenced) {
      try {
        r->on_fenced();
      } catch (const std::exception& e) {
        core::log::warn("on_fenced hook failed", {{"thread_id", r->thread_id}, {"error", e.what()}});
      }
    }
  }
  for (auto& it : batch) {
    if (is_fenced(it.run)) {
      fenced_total().inc();
      if (it.done) it.done(std::make_exception_ptr(Fenced("thread " + it.run->thread_id + " was deleted or taken over")));
    } else if (it.done) {
      it.done(nullptr);
    }
  }
  return true;
}

void EventLog::Impl::run_writer() {
  core::name_this_thread("event-writer");
  std::vector<Item> batch;
  auto backoff = std::chrono::milliseconds(50);
  std::unique_lock lk(mu);
  for (;;) {
    if (batch.empty() && !next_batch(lk, batch)) break;
    lk.unlock();
    const bool ok = write(batch);
    lk.lock();
    if (ok) {
      batch.clear();
      backoff = std::chrono::milliseconds(50);
      continue;
    }
    // Keep the batch and retry it first: nothing is reordered or lost.
    if (stopping && Clock::now() >= stop_deadline) break;
    cv.wait_for(lk, backoff, [&] { return stopping && Clock::now() >= stop_deadline; });
    backoff = std::min(backoff * 2, opts.max_backoff);
  }
  // Give up on what is left (stopping with a dead database): fail the completions.
  stopped = true;
  for (auto& it : queue) batch.push_back(std::move(it));
  queue.clear();
  pending.clear();
  lk.unlock();
  if (!batch.empty()) {
    core::log::error("event log stopped with writes not stored", {{"writes", batch.size()}});
  }
  for (auto& it : batch) {
    if (it.done) it.done(std::make_exception_ptr(std::runtime_error("event log stopped before the write was stored")));
  }
}

EventLog::EventLog(store::Store& store, Publish publish, EventLogOptions options)
    : options_(options), impl_(std::make_unique<Impl>(store, std::move(publish), options)) {
  batches_total();
  batch_size();
  fenced_total();
}

EventLog::~EventLog() { stop(std::chrono::milliseconds(0)); }

void EventLog::start() {
  std::lock_guard lk(impl_->mu);
  if (impl_->started) return;
  impl_->started = true;
  impl_->writer = std::thread([this] { impl_->run_writer(); });
}

void EventLog::stop(std::chrono::milliseconds timeout) {
  {
    std::lock_guard lk(impl_->mu);
    if (!impl_->stopping) {
      impl_->stopping = true;
      impl_->stop_deadline = Clock::now() + timeout;
    }
    if (!impl_->started) {
      impl_->started = true;  // never started: a writer thread flushes what is queued
      impl_->writer = std::thread([this] { impl_->run_writer(); });
    }
  }
  impl_->cv.notify_all();
  if (impl_->writer.joinable()) impl_->writer.join();
}

std::shared_ptr<EventLog::Run> EventLog::open(const std::string& thread_id, std::int64_t epoch,
                                              std::int64_t last_seq, std::function<void()> on_fenced) {
  auto st = std::make_shared<Run::State>();
  st->log = impl_.get();
  st->thread_id = thread_id;
  st->epoch = epoch;
  st->seq = last_seq;
  st->on_fenced = std::move(on_fenced);
  return std::shared_ptr<Run>(new Run(std::move(st)));
}

std::size_t EventLog::backlog() const {
  std::lock_guard lk(impl_->mu);
  return impl_->queue.size() + impl_->pending.size();
}

void EventLog::Run::emit(const std::string& event_type, nlohmann::json data) {
  s_->log->emit(s_, event_type, std::move(data));
}

void EventLog::Run::checkpoint(nlohmann::json state, Completion done) {
  store::CheckpointWrite write;
  write.state = std::move(state);
  s_->log->push_checkpoint(s_, std::move(write), std::move(done));
}

void EventLog::Run::emit_text(const std::string& event_type, std::shared_ptr<const std::string> data_text) {
  s_->log->emit_text(s_, event_type, std::move(data_text));
}

void EventLog::Run::checkpoint_text(std::shared_ptr<const std::string> state_text, runtime::TokenUsage usage,
                                    Completion done) {
  store::CheckpointWrite write;
  write.state_text = std::move(state_text);
  write.usage = usage;
  s_->log->push_checkpoint(s_, std::move(write), std::move(done));
}

void EventLog::Run::set_status(std::string status, Completion done) {
  s_->log->push(s_, store::Write{s_->epoch, store::StatusWrite{s_->thread_id, std::move(status)}}, std::move(done));
}

std::int64_t EventLog::Run::finish(std::string status, nlohmann::json result, nlohmann::json files,
                                   std::string error, std::optional<runtime::TokenUsage> usage, Completion done) {
  nlohmann::json data = {{"status", status}};
  if (!error.empty()) data["error"] = error;
  auto& log = *s_->log;
  std::exception_ptr refused;
  std::int64_t end_seq = 0;
  {
    // The `end` event and the outcome enter the queue together (one transaction, see next_batch).
    std::lock_guard lk(log.mu);
    if (s_->fenced) {
      refused = std::make_exception_ptr(Fenced("thread " + s_->thread_id + " was deleted or taken over"));
    } else if (log.stopped) {
      refused = std::make_exception_ptr(std::runtime_error("event log stopped"));
    } else {
      log.flush_delta_locked(s_);
      store::EventRecord end{s_->thread_id, ++s_->seq, "end", std::move(data), core::now_rfc3339()};
      end_seq = end.seq;
      log.queue.push_back({store::Write{s_->epoch, store::EventWrite{std::move(end)}}, s_, {}});
      log.queue.push_back({store::Write{s_->epoch, store::OutcomeWrite{s_->thread_id, std::move(status),
                                                                       std::move(result), std::move(files),
                                                                       std::move(error), usage}},
                           s_, std::move(done)});
      log.cv.notify_one();
    }
  }
  if (refused && done) done(refused);
  return end_seq;
}

std::int64_t EventLog::Run::last_seq() const {
  std::lock_guard lk(s_->log->mu);
  return s_->seq;
}

bool EventLog::Run::fenced() const {
  std::lock_guard lk(s_->log->mu);
  return s_->fenced;
}

const std::string& EventLog::Run::thread_id() const { return s_->thread_id; }

core::async::Task<void> await_durable(std::function<void(Completion)> start) {
  const auto ex = co_await boost::asio::this_coro::executor;
  auto done = std::make_shared<core::async::Oneshot<bool>>(ex);
  Completion complete = [done](std::exception_ptr e) {
    if (e) {
      done->set_exception(e);
    } else {
      done->set_value(true);
    }
  };
  start(std::move(complete));
  co_await done->get();
}

}  // namespace spec_engine::bus
