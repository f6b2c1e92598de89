// Run manager: runs as coroutines, bounded queue, idempotent submit, cancel, leases.
#include "spec_engine/bus/run_manager.hpp"

#include <algorithm>

#include "core/db.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/tracing.hpp"
#include "core/util.hpp"
#include "spec_engine/runtime/telemetry.hpp"

// GCC reports a false -Wmismatched-new-delete on some coroutines over Asio's awaitable once
// their frame allocation is inlined: the frame is allocated and freed by awaitable_frame_base's
// own operator new/delete pair (GCC bug 109224).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace spec_engine::bus {

namespace {

/// Buckets for whole runs: 100 ms .. 15 min.
std::vector<double> run_buckets() { return {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900}; }

core::metrics::Counter& runs_started() {
  return core::metrics::global().counter("spec_engine_runs_started_total",
                                         "Runs started (including runs resumed after a restart)");
}
core::metrics::Counter& runs_completed() {
  return core::metrics::global().counter("spec_engine_runs_completed_total",
                                         "Runs ended, by final status (completed|failed|cancelled)");
}
core::metrics::Histogram& run_duration() {
  return core::metrics::global().histogram("spec_engine_run_duration_seconds",
                                           "Wall time of one run execution, seconds", run_buckets());
}
core::metrics::Counter& events_emitted() {
  return core::metrics::global().counter("spec_engine_events_emitted_total",
                                         "Events stored and published by runs, by event_type");
}
core::metrics::Gauge& queue_depth() {
  return core::metrics::global().gauge("spec_engine_queue_depth", "Jobs waiting for a run slot");
}
core::metrics::Gauge& runs_in_flight() {
  return core::metrics::global().gauge("spec_engine_runs_in_flight", "Runs executing now");
}

/// The model files found in a runtime checkpoint, if it carries a "files" object.
nlohmann::json files_of_checkpoint(const std::optional<nlohmann::json>& cp) {
  if (cp && cp->is_object() && cp->contains("files") && (*cp)["files"].is_object()) return (*cp)["files"];
  return nlohmann::json::object();
}

/// How often a run's read of the shared pool is retried when no database session frees up
/// within the pool's bounded wait: the run waits for the database instead of failing. An HTTP
/// request in the same situation is answered 503 instead (core/server). (The runs' writes go
/// through the EventLog, which has its own connection and retries by itself.)
constexpr int kPoolBusyAttempts = 12;

/// Calls `fn` (a store call on a blocking thread), retrying it up to kPoolBusyAttempts times
/// while it throws core::db::PoolTimeout (nothing was done then: no session was leased).
/// Other exceptions, and the last PoolTimeout, propagate. `what` names the call in the log.
template <class F>
auto retry_while_pool_busy(F&& fn, const std::string& thread_id, const char* what) -> decltype(fn()) {
  for (int attempt = 1;; ++attempt) {
    try {
      return fn();
    } catch (const core::db::PoolTimeout& e) {
      if (attempt >= kPoolBusyAttempts) throw;
      core::log::warn("database pool busy; retrying a run's read",
                      {{"thread_id", thread_id}, {"what", what}, {"attempt", attempt}, {"error", e.what()}});
    }
  }
}

/// What a run (or a claimed thread given up) reads before it starts.
struct Loaded {
  store::ThreadRecord rec;
  std::optional<nlohmann::json> checkpoint;
};

/// A job submitted here, about to run: the row's status, epoch and last event are read (it may
/// have been cancelled, deleted or taken over meanwhile) and the definition and input are moved
/// out of `job` (so it is never run twice from memory). Nullopt when it must not run.
std::optional<Loaded> take_submitted(store::Store& store, const std::string& thread_id, std::int64_t epoch, Job& job,
                                     const std::string& owner) {
  auto progress = store.thread_progress(thread_id);
  if (!progress || store::is_terminal(progress->status) || progress->epoch != epoch) return std::nullopt;
  Loaded out;
  store::ThreadRecord& rec = out.rec;
  rec.thread_id = thread_id;
  rec.job_id = job.job_id;
  rec.trace_id = job.trace_id;
  rec.traceparent = job.traceparent;
  rec.status = progress->status;
  rec.last_seq = progress->last_seq;
  rec.epoch = progress->epoch;
  rec.owner = owner;
  rec.agent_definition = std::move(job.agent_definition);
  rec.input_payload = std::move(job.input_payload);
  return out;
}

}  // namespace

/// Observer of one run: hands events and checkpoints to the event log; a checkpoint completes
/// once durable (a coroutine waits without holding a thread).
class RunManager::Observer : public runtime::RunObserver {
 public:
  Observer(std::shared_ptr<EventLog::Run> log, std::shared_ptr<Active> active)
      : log_(std::move(log)), active_(std::move(active)) {}

  void emit(const std::string& event_type, nlohmann::json data) override {
    if (active_->lost) return;
    log_->emit(event_type, std::move(data));
    events_emitted().inc({{"event_type", event_type}});
  }

  void emit_text(const std::string& event_type, std::shared_ptr<const std::string> data_text) override {
    if (active_->lost) return;
    log_->emit_text(event_type, std::move(data_text));
    events_emitted().inc({{"event_type", event_type}});
  }

  /// Throws Fenced (ending the run) when the thread is gone or taken over.
  core::async::Task<void> checkpoint(nlohmann::json state) override {
    if (active_->lost) throw Fenced("thread " + log_->thread_id() + " is no longer owned here");
    auto log = log_;
    auto begin = [log, &state](Completion done) { log->checkpoint(std::move(state), std::move(done)); };
    auto stored = await_durable(std::move(begin));
    co_await std::move(stored);
  }

  /// As checkpoint(), for a state the run serialized itself.
  core::async::Task<void> checkpoint_text(std::shared_ptr<const std::string> state_text,
                                          runtime::TokenUsage usage) override {
    if (active_->lost) throw Fenced("thread " + log_->thread_id() + " is no longer owned here");
    auto log = log_;
    auto begin = [log, text = std::move(state_text), usage](Completion done) {
      log->checkpoint_text(text, usage, std::move(done));
    };
    auto stored = await_durable(std::move(begin));
    co_await std::move(stored);
  }

 private:
  std::shared_ptr<EventLog::Run> log_;
  std::shared_ptr<Active> active_;
};

RunManager::RunManager(store::Store& store, EventLog& log, EventHub& hub, RunManagerOptions options,
                       core::async::Runtime& rt, core::http::AsyncHttpClient& http, ExecuteFn execute)
    : store_(store),
      log_(log),
      hub_(hub),
      options_(std::move(options)),
      rt_(rt),
      http_(http),
      execute_(std::move(execute)) {
  if (options_.max_concurrent_runs < 1) options_.max_concurrent_runs = 1;
  // Register every family up front so /metrics shows them before the first run.
  runs_started();
  runs_completed();
  run_duration();
  events_emitted();
  queue_depth();
  runs_in_flight();
  // Observed by the model providers (runtime); registered here so it always renders.
  core::metrics::global().histogram("spec_engine_model_call_duration_seconds",
                                    "Duration of one model call (request to last streamed chunk), seconds");
}

RunManager::~RunManager() { shutdown(std::chrono::milliseconds(0)); }

void RunManager::adopt(const store::Claim& claim) {
  const bool give_up = options_.recovery == "fail" || claim.recoveries > options_.max_recoveries;
  nlohmann::json fields = {{"thread_id", claim.thread_id}, {"previous_status", claim.previous_status},
                           {"previous_owner", claim.previous_owner}, {"recoveries", claim.recoveries},
                           {"epoch", claim.epoch}};
  if (!give_up) {
    std::vector<Launch> runs;
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;  // not started here: the lease is released and another replica claims it
      queue_.push_back({claim.thread_id, claim.epoch, true});
      take_runnable_locked(runs);
    }
    core::log::info("run re-queued after takeover", fields);
    launch(std::move(runs));
    return;
  }
  std::string reason =
      options_.recovery == "fail"
          ? "run interrupted by an engine restart or a lost lease while " + claim.previous_status +
                "; recovery is disabled (--recovery=fail)"
          : "run interrupted by engine restarts or lost leases " + std::to_string(claim.recoveries) +
                " times; giving up";
  auto active = std::make_shared<Active>();
  active->epoch = claim.epoch;
  active->finishing = true;
  {
    std::lock_guard lk(mu_);
    if (stopping_ || active_.count(claim.thread_id)) return;
    active_[claim.thread_id] = active;
    runs_in_flight().set(static_cast<double>(active_.size()));
  }
  rt_.spawn(fail_claimed(claim, std::move(reason), std::move(active)));
}

core::async::Task<void> RunManager::fail_claimed(store::Claim claim, std::string reason,
                                                 std::shared_ptr<Active> active) {
  nlohmann::json fields = {{"thread_id", claim.thread_id}, {"previous_status", claim.previous_status},
                           {"previous_owner", claim.previous_owner}, {"recoveries", claim.recoveries},
                           {"epoch", claim.epoch}};
  std::optional<std::string> failed;
  try {
    auto load = [this, &claim]() -> std::optional<Loaded> {
      return retry_while_pool_busy(
          [&]() -> std::optional<Loaded> {
            auto rec = store_.get_thread(claim.thread_id);
            if (!rec) return std::nullopt;
            return Loaded{std::move(*rec), store_.latest_checkpoint(claim.thread_id)};
          },
          claim.thread_id, "fail claimed");
    };
    auto load_task = rt_.blocking(std::move(load));
    std::optional<Loaded> loaded = co_await std::move(load_task);
    if (loaded) {
      auto log = log_.open(claim.thread_id, claim.epoch, loaded->rec.last_seq);
      log->emit("error", {{"error", reason}, {"context", "recovery"}});
      events_emitted().inc({{"event_type", "error"}});
      auto finish = finish_thread(*log, store::kFailed, nullptr, files_of_checkpoint(loaded->checkpoint), reason);
      co_await std::move(finish);
      core::log::warn("run failed at recovery", fields);
    }
  } catch (const std::exception& e) {
    failed = e.what();
  }
  if (failed) {
    fields["error"] = *failed;
    core::log::warn("failing a claimed run did not complete; its lease expires and it is claimed again", fields);
  }
  run_ended(claim.thread_id, active);
}

std::map<std::string, std::int64_t> RunManager::owned_local() const {
  std::map<std::string, std::int64_t> out;
  std::lock_guard lk(mu_);
  for (const auto& i : queue_) out[i.thread_id] = i.epoch;
  for (const auto& [id, a] : active_) out[id] = a->epoch;
  return out;
}

void RunManager::lose(const std::string& thread_id, std::int64_t epoch, const std::string& reason) {
  std::lock_guard lk(mu_);
  const auto before = queue_.size();
  std::erase_if(queue_, [&](const Item& i) { return i.thread_id == thread_id && i.epoch == epoch; });
  if (queue_.size() != before) queue_depth().set(static_cast<double>(queue_.size()));
  if (auto it = active_.find(thread_id); it != active_.end() && it->second->epoch == epoch &&
                                         !it->second->finishing) {
    it->second->lose();
    core::log::warn("run stopped: " + reason, {{"thread_id", thread_id}, {"epoch", epoch}});
  }
}

std::size_t RunManager::free_slots() const {
  std::lock_guard lk(mu_);
  if (stopping_ || !accepting_) return 0;
  const std::size_t busy = active_.size() + queue_.size();
  const auto slots = static_cast<std::size_t>(options_.max_concurrent_runs);
  return busy >= slots ? 0 : slots - busy;
}

void RunManager::on_remote_delete(const std::string& thread_id) {
  {
    std::lock_guard lk(mu_);
    std::erase_if(queue_, [&](const Item& i) { return i.thread_id == thread_id; });
    queue_depth().set(static_cast<double>(queue_.size()));
    if (auto it = active_.find(thread_id); it != active_.end()) {
      it->second->deleted = true;
      it->second->lose();
      core::log::info("run stopped: thread deleted on another replica", {{"thread_id", thread_id}});
    }
  }
  hub_.drop_thread(thread_id);
}

void RunManager::start() {
  std::vector<Launch> runs;
  {
    std::lock_guard lk(mu_);
    if (started_ || stopping_) return;
    started_ = true;
    take_runnable_locked(runs);
  }
  launch(std::move(runs));
}

SubmitResult RunManager::submit(Job job) {
  if (!accepting_) return {SubmitOutcome::shutting_down, {}};
  // No lock is held across the SQL below: a submit stuck behind the database (another program
  // holding SQLite's write lock) must not hold every other submit's HTTP thread too; the
  // database's write lock and its bulkhead (DbConfig::max_write_waiters) bound those waits.
  // Only the status: reading the whole row would parse the job's definition and files again.
  if (auto existing = store_.thread_progress(job.job_id)) return {SubmitOutcome::existing, existing->status};
  {
    std::lock_guard lk(mu_);
    // Room for this job: a free run slot, or a place in the queue; the submits between their
    // check and their insert count as taken (with one submit at a time this is the plain
    // "queue_.size() >= max_queue" rule: the queue only holds jobs while no slot is free).
    const auto slots = static_cast<std::size_t>(std::max(0, options_.max_concurrent_runs));
    const std::size_t free_runs = active_.size() >= slots ? 0 : slots - active_.size();
    if (queue_.size() + reserved_ >= options_.max_queue + free_runs) return {SubmitOutcome::queue_full, {}};
    ++reserved_;  // this submit's queue slot, until it is queued or gives up
  }
  struct Reservation {
    RunManager& rm;
    bool held = true;
    ~Reservation() {
      if (!held) return;
      std::lock_guard lk(rm.mu_);
      --rm.reserved_;
    }
  } reservation{*this};
  store::ThreadRecord rec;
  rec.thread_id = job.job_id;
  rec.job_id = job.job_id;
  rec.trace_id = job.trace_id;
  rec.traceparent = job.traceparent;
  rec.status = store::kQueued;
  rec.agent_definition = std::move(job.agent_definition);
  rec.input_payload = job.input_payload.is_null() ? nlohmann::json::object() : std::move(job.input_payload);
  rec.owner = options_.replica_id;
  if (!store_.create_thread(rec, options_.lease_ttl)) {
    // Created concurrently by another engine sharing the database.
    auto existing = store_.thread_progress(rec.thread_id);
    return {SubmitOutcome::existing, existing ? existing->status : std::string(store::kQueued)};
  }
  // The run takes the documents from the queued job (execute_run) instead of the row.
  job.agent_definition = std::move(rec.agent_definition);
  job.input_payload = std::move(rec.input_payload);
  auto submitted = std::make_unique<Job>(std::move(job));
  std::vector<Launch> runs;
  {
    std::lock_guard lk(mu_);
    --reserved_;
    reservation.held = false;
    queue_.push_back({rec.thread_id, 1, false, std::move(submitted)});
    take_runnable_locked(runs);
    // A job that has to wait for a slot keeps only its id: its run reads the documents back
    // from the row, so memory stays bounded by the runs in flight, not by the queue.
    if (!queue_.empty() && queue_.back().thread_id == rec.thread_id) queue_.back().job.reset();
  }
  launch(std::move(runs));
  return {SubmitOutcome::started, rec.status};
}

bool RunManager::remove(const std::string& thread_id) {
  // Rows first: from here on every fenced write of the owner (wherever it runs) is dropped.
  if (!store_.delete_thread(thread_id)) return false;
  std::shared_ptr<Active> active;
  {
    std::unique_lock lk(mu_);
    std::erase_if(queue_, [&](const Item& i) { return i.thread_id == thread_id; });
    queue_depth().set(static_cast<double>(queue_.size()));
    if (auto it = active_.find(thread_id); it != active_.end()) active = it->second;
    if (active) {
      active->cancel = true;
      active->deleted = true;
      active->lose();
      if (!done_cv_.wait_for(lk, options_.cancel_wait, [&] { return active->done; })) {
        core::log::warn("run did not stop in time for delete; its writes are fenced", {{"thread_id", thread_id}});
      }
    }
  }
  if (!active && options_.broadcast_delete) {
    try {
      options_.broadcast_delete(thread_id);  // the owner is another replica: stop it now
    } catch (const std::exception& e) {
      core::log::warn("delete not announced to other replicas; the owner stops at its next write",
                      {{"thread_id", thread_id}, {"error", e.what()}});
    }
  }
  hub_.drop_thread(thread_id);
  core::log::info("thread deleted", {{"thread_id", thread_id}, {"ran_here", active != nullptr}});
  return true;
}

void RunManager::shutdown(std::chrono::milliseconds grace) {
  accepting_ = false;
  std::unique_lock lk(mu_);
  stopping_ = true;  // no new runs start; queued threads stay `queued` in the store
  done_cv_.wait_for(lk, grace, [&] { return active_.empty(); });
  for (auto& [id, a] : active_) {
    a->interrupt = true;
    a->stop.request_stop();
  }
  // Every wait of a run ends on its stop token (model call, backoff, tool budget), so this
  // takes about one event-log commit per run.
  done_cv_.wait(lk, [&] { return active_.empty(); });
}

std::size_t RunManager::queued() const {
  std::lock_guard lk(mu_);
  return queue_.size();
}

std::size_t RunManager::running() const {
  std::lock_guard lk(mu_);
  return active_.size();
}

bool RunManager::queue_full() const {
  std::lock_guard lk(mu_);
  return queue_.size() >= options_.max_queue;
}

void RunManager::take_runnable_locked(std::vector<Launch>& out) {
  while (started_ && !stopping_ && !queue_.empty() &&
         active_.size() < static_cast<std::size_t>(options_.max_concurrent_runs)) {
    Item item = std::move(queue_.front());
    queue_.pop_front();
    auto active = std::make_shared<Active>();
    active->epoch = item.epoch;
    active_[item.thread_id] = active;
    out.emplace_back(std::move(item), std::move(active));
  }
  queue_depth().set(static_cast<double>(queue_.size()));
  runs_in_flight().set(static_cast<double>(active_.size()));
}

void RunManager::launch(std::vector<Launch> runs) {
  for (auto& [item, active] : runs) rt_.spawn(run_one(std::move(item), std::move(active)));
}

core::async::Task<void> RunManager::run_one(Item item, std::shared_ptr<Active> active) {
  std::optional<std::string> crash;
  bool fenced = false;
  try {
    auto run = execute_run(item, active);
    co_await std::move(run);
  } catch (const Fenced&) {
    fenced = true;
  } catch (const std::exception& e) {
    crash = e.what();
  }
  if (fenced) {
    if (active->deleted) {
      core::log::info("run ended", {{"thread_id", item.thread_id}, {"epoch", item.epoch}, {"status", "cancelled"},
                                    {"error", "thread deleted"}});
    } else {
      core::log::info("run ended here: thread owned by another replica or gone",
                      {{"thread_id", item.thread_id}, {"epoch", item.epoch}});
    }
  } else if (crash) {
    // The database failed (the event log retries, so this is rare): leave the thread to its
    // lease; when the lease expires a replica (maybe this one) claims and resumes it.
    core::log::error("run crashed; it is given up here and resumed from its checkpoint by a claim",
                     {{"thread_id", item.thread_id}, {"error", *crash}});
    auto disown = [this, &item] {
      try {
        store_.disown(item.thread_id, item.epoch);
      } catch (const std::exception&) {
        // The database is gone: renewals fail too, so the lease expires by itself.
      }
    };
    auto disown_task = rt_.blocking(std::move(disown));
    co_await std::move(disown_task);
  }
  run_ended(item.thread_id, active);
}

void RunManager::run_ended(const std::string& thread_id, const std::shared_ptr<Active>& active) {
  std::vector<Launch> next;
  {
    std::lock_guard lk(mu_);
    active->done = true;
    if (auto it = active_.find(thread_id); it != active_.end() && it->second == active) active_.erase(it);
    take_runnable_locked(next);
    // Notified under the lock: once it is released, shutdown() may return and the manager go.
    done_cv_.notify_all();
  }
  // Only when not stopping: the new runs hold slots, so the manager outlives this.
  launch(std::move(next));
}

core::async::Task<void> RunManager::execute_run(const Item& item, const std::shared_ptr<Active>& active) {
  auto load = [this, &item]() -> std::optional<Loaded> {
    return retry_while_pool_busy(
        [&]() -> std::optional<Loaded> {
          if (item.job && !item.job->agent_definition.is_null()) {
            return take_submitted(store_, item.thread_id, item.epoch, *item.job, options_.replica_id);
          }
          auto rec = store_.get_thread(item.thread_id);
          if (!rec || store::is_terminal(rec->status) || rec->epoch != item.epoch) return std::nullopt;
          Loaded out{std::move(*rec), std::nullopt};
          if (item.recovered) out.checkpoint = store_.latest_checkpoint(item.thread_id);
          return out;
        },
        item.thread_id, "start");
  };
  auto load_task = rt_.blocking(std::move(load));
  std::optional<Loaded> loaded = co_await std::move(load_task);
  // Also when the thread was deleted here while its row was read (a new thread of the same
  // job id may already have taken its place, at the same epoch).
  if (!loaded || active->lost) co_return;
  const store::ThreadRecord& rec = loaded->rec;

  auto on_fenced = [active] { active->lose(); };
  auto log = log_.open(item.thread_id, item.epoch, rec.last_seq, std::move(on_fenced));
  auto begin_running = [log](Completion done) { log->set_status(store::kRunning, std::move(done)); };
  auto running = await_durable(std::move(begin_running));
  co_await std::move(running);

  Observer observer(log, active);
  runtime::RunEnv env{rt_, http_, active->stop.get_token()};
  // The documents move into the request (the record keeps its scalars): a run holds one copy
  // of its definition, input and checkpoint, not two (thousands of runs at once).
  runtime::RunRequest request;
  request.thread_id = item.thread_id;
  request.definition = std::move(loaded->rec.agent_definition);
  request.input_payload = std::move(loaded->rec.input_payload);
  request.resume_from = std::move(loaded->checkpoint);
  loaded->checkpoint.reset();

  const nlohmann::json log_fields = {{"thread_id", item.thread_id}, {"trace_id", rec.trace_id},
                                     {"traceparent", rec.traceparent}, {"resumed", request.resume_from.has_value()},
                                     {"recovered", item.recovered}, {"epoch", item.epoch}};
  // The run's span continues the invoke's trace (the traceparent stored with the thread, also
  // after a restart); the runtime's GenAI spans nest under it (docs/observability.md).
  core::tracing::Span span = core::tracing::start_span("spec_engine.run", core::tracing::parse_traceparent(rec.traceparent),
                                                       core::tracing::kInternal);
  span.set_attribute("thread_id", item.thread_id);
  span.set_attribute("gen_ai.conversation.id", item.thread_id);
  span.set_attribute("job.trace_id", rec.trace_id);
  span.set_attribute("spec_engine.run.resumed", request.resume_from.has_value());
  span.set_attribute("spec_engine.run.recovered", item.recovered);
  request.trace = span.context();
  runs_started().inc();
  core::log::info("run started", log_fields);
  const auto t0 = std::chrono::steady_clock::now();

  runtime::RunResult res;
  std::optional<std::string> internal;
  try {
    auto run = execute_(request, options_.limits, options_.models, observer, env);
    res = co_await std::move(run);
  } catch (const Fenced&) {
    throw;
  } catch (const std::exception& e) {
    internal = e.what();
  }
  if (internal) {
    if (active->lost) throw Fenced(*internal);
    res = {};
    res.status = store::kFailed;
    res.error = "internal error in the runtime: " + *internal;
    observer.emit("error", {{"error", res.error}, {"context", "runtime"}});
  }
  if (active->lost) throw Fenced("thread " + item.thread_id + " is no longer owned here");
  if (active->interrupt && !active->cancel && res.status == store::kCancelled) {
    // Engine shutdown: keep the run resumable from its last checkpoint; the lease is released
    // afterwards, so another replica (or the next start) claims and resumes it.
    auto begin_requeue = [log](Completion done) { log->set_status(store::kQueued, std::move(done)); };
    auto requeued = await_durable(std::move(begin_requeue));
    co_await std::move(requeued);
    core::log::info("run interrupted by shutdown; it resumes from its checkpoint", log_fields);
    span.set_attribute("spec_engine.run.status", "interrupted");
    co_return;
  }
  if (res.status != store::kCompleted && res.status != store::kFailed && res.status != store::kCancelled) {
    res.error = "runtime returned unknown status '" + res.status + "'";
    res.status = store::kFailed;
  }
  if (res.status == store::kFailed && res.error.empty()) res.error = "run failed";
  if (res.status == store::kCancelled && res.error.empty()) res.error = "cancelled by request";
  const nlohmann::json files = res.files.is_null() ? nlohmann::json::object() : res.files;
  active->finishing = true;
  auto finish = finish_thread(*log, res.status, res.result, files, res.error, res.usage);
  co_await std::move(finish);

  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  run_duration().observe(secs);
  span.set_attribute("spec_engine.run.status", res.status);
  runtime::telemetry::set_usage(span, res.usage);
  if (res.status == store::kFailed) span.set_error(res.error, "run_failed");
  if (res.status == store::kCancelled) span.set_error(res.error, "cancelled");
  nlohmann::json done = log_fields;
  done["status"] = res.status;
  done["duration_s"] = secs;
  if (!res.error.empty()) done["error"] = res.error;
  core::log::info("run ended", done);
}

core::async::Task<void> RunManager::finish_thread(EventLog::Run& log, std::string status, nlohmann::json result,
                                                  nlohmann::json files, std::string error,
                                                  std::optional<runtime::TokenUsage> usage) {
  auto begin = [&log, &status, &result, &files, &error, &usage](Completion done) {
    log.finish(status, std::move(result), std::move(files), error, usage, std::move(done));
  };
  auto stored = await_durable(std::move(begin));
  co_await std::move(stored);
  events_emitted().inc({{"event_type", "end"}});
  runs_completed().inc({{"status", status}});
  if (options_.on_run_end) {
    auto hook = [this, &log, &status, &error] {
      try {
        options_.on_run_end(log.thread_id(), status, error);
      } catch (const std::exception& e) {
        core::log::warn("run-end hook failed", {{"thread_id", log.thread_id()}, {"error", e.what()}});
      }
    };
    auto hook_task = rt_.blocking(std::move(hook));
    co_await std::move(hook_task);
  }
}

}  // namespace spec_engine::bus
