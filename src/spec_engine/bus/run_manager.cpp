// Run manager: runs as coroutines, bounded queue, idempotent submit, cancel, recovery.
#include "spec_engine/bus/run_manager.hpp"

#include <algorithm>

#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/tracing.hpp"
#include "core/util.hpp"
#include "spec_engine/bus/run_observer.hpp"

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

}  // namespace

RunManager::RunManager(store::Store& store, EventHub& hub, RunManagerOptions options, core::async::Runtime& rt,
                       core::http::AsyncHttpClient& http, ExecuteFn execute)
    : store_(store), hub_(hub), options_(std::move(options)), rt_(rt), http_(http), execute_(std::move(execute)) {
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

int RunManager::recover() {
  int handled = 0;
  for (const auto& rec : store_.threads_with_status({store::kRunning, store::kQueued})) {
    ++handled;
    const int n = store_.bump_recoveries(rec.thread_id);
    const bool give_up = options_.recovery == "fail" || n > options_.max_recoveries;
    nlohmann::json fields = {{"thread_id", rec.thread_id}, {"trace_id", rec.trace_id},
                             {"previous_status", rec.status}, {"recoveries", n}};
    if (give_up) {
      const std::string reason =
          options_.recovery == "fail"
              ? "run interrupted by an engine restart while " + rec.status + "; recovery is disabled (--recovery=fail)"
              : "run interrupted by engine restarts " + std::to_string(n) + " times; giving up";
      std::int64_t seq = rec.last_seq;
      store::EventRecord err{rec.thread_id, ++seq, "error", {{"error", reason}, {"context", "recovery"}},
                             core::now_rfc3339()};
      store_.append_event(err);
      finish_thread(rec.thread_id, seq, store::kFailed, nullptr,
                    files_of_checkpoint(store_.latest_checkpoint(rec.thread_id)), reason);
      core::log::warn("run failed at recovery", fields);
    } else {
      store_.set_status(rec.thread_id, store::kQueued);
      std::lock_guard lk(mu_);
      queue_.push_back({rec.thread_id, true});
      queue_depth().set(static_cast<double>(queue_.size()));
      core::log::info("run re-queued at recovery", fields);
    }
  }
  return handled;
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

SubmitResult RunManager::submit(const Job& job) {
  if (!accepting_) return {SubmitOutcome::shutting_down, std::nullopt};
  std::lock_guard submit_lk(submit_mu_);
  if (auto existing = store_.get_thread(job.job_id)) return {SubmitOutcome::existing, std::move(existing)};
  {
    std::lock_guard lk(mu_);
    if (queue_.size() >= options_.max_queue) return {SubmitOutcome::queue_full, std::nullopt};
  }
  store::ThreadRecord rec;
  rec.thread_id = job.job_id;
  rec.job_id = job.job_id;
  rec.trace_id = job.trace_id;
  rec.traceparent = job.traceparent;
  rec.status = store::kQueued;
  rec.agent_definition = job.agent_definition;
  rec.input_payload = job.input_payload.is_null() ? nlohmann::json::object() : job.input_payload;
  if (!store_.create_thread(rec)) {
    // Created concurrently by another engine sharing the database.
    return {SubmitOutcome::existing, store_.get_thread(job.job_id)};
  }
  std::vector<Launch> runs;
  {
    std::lock_guard lk(mu_);
    queue_.push_back({rec.thread_id, false});
    take_runnable_locked(runs);
    queue_depth().set(static_cast<double>(queue_.size()));
  }
  launch(std::move(runs));
  return {SubmitOutcome::started, store_.get_thread(job.job_id)};
}

bool RunManager::remove(const std::string& thread_id) {
  if (!store_.get_thread(thread_id)) return false;
  std::shared_ptr<Active> active;
  {
    std::unique_lock lk(mu_);
    std::erase_if(queue_, [&](const Item& i) { return i.thread_id == thread_id; });
    queue_depth().set(static_cast<double>(queue_.size()));
    if (auto it = active_.find(thread_id); it != active_.end()) active = it->second;
    if (active) {
      active->cancel = true;
      active->stop.request_stop();
      if (!done_cv_.wait_for(lk, options_.cancel_wait, [&] { return active->done; })) {
        *active->deleted = true;  // still running: its later writes are dropped and cleaned up
        core::log::warn("run did not stop in time for delete", {{"thread_id", thread_id}});
      }
    }
  }
  store_.delete_thread(thread_id);
  hub_.drop_thread(thread_id);
  core::log::info("thread deleted", {{"thread_id", thread_id}});
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
  // takes about one store write per run.
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
  try {
    auto run = execute_run(item, active);
    co_await std::move(run);
  } catch (const std::exception& e) {
    crash = e.what();
  }
  if (crash) {
    core::log::error("run crashed", {{"thread_id", item.thread_id}, {"error", *crash}});
    auto mark_failed = [this, &item, &crash] {
      try {
        store_.set_status(item.thread_id, store::kFailed, "internal error: " + *crash);
      } catch (const std::exception&) {
        // The database is gone; recovery at the next start fixes the status.
      }
    };
    auto mark_failed_task = rt_.blocking(std::move(mark_failed));
    co_await std::move(mark_failed_task);
  }
  if (active->deleted->load()) {
    auto purge = [this, &item] {
      try {
        store_.delete_thread(item.thread_id);  // writes that raced with DELETE
      } catch (const std::exception&) {
      }
    };
    auto purge_task = rt_.blocking(std::move(purge));
    co_await std::move(purge_task);
  }
  run_ended(item.thread_id, active);
}

void RunManager::run_ended(const std::string& thread_id, const std::shared_ptr<Active>& active) {
  std::vector<Launch> next;
  {
    std::lock_guard lk(mu_);
    active->done = true;
    active_.erase(thread_id);
    take_runnable_locked(next);
    // Notified under the lock: once it is released, shutdown() may return and the manager go.
    done_cv_.notify_all();
  }
  // Only when not stopping: the new runs hold slots, so the manager outlives this.
  launch(std::move(next));
}

core::async::Task<void> RunManager::execute_run(const Item& item, const std::shared_ptr<Active>& active) {
  struct Loaded {
    store::ThreadRecord rec;
    std::optional<nlohmann::json> resume;
  };
  auto load = [this, &item]() -> std::optional<Loaded> {
    return retry_while_pool_busy(
        [&]() -> std::optional<Loaded> {
          auto rec = store_.get_thread(item.thread_id);
          if (!rec || store::is_terminal(rec->status)) return std::nullopt;
          Loaded out{std::move(*rec), std::nullopt};
          if (item.recovered) out.resume = store_.latest_checkpoint(item.thread_id);
          store_.set_status(item.thread_id, store::kRunning);
          return out;
        },
        item.thread_id, "start");
  };
  auto load_task = rt_.blocking(std::move(load));
  std::optional<Loaded> loaded = co_await std::move(load_task);
  if (!loaded) co_return;
  const store::ThreadRecord& rec = loaded->rec;

  StoreRunObserver observer(store_, hub_, rt_, item.thread_id, rec.last_seq, active->deleted);
  runtime::RunEnv env{rt_, http_, active->stop.get_token()};
  runtime::RunRequest request;
  request.thread_id = item.thread_id;
  request.definition = rec.agent_definition;
  request.input_payload = rec.input_payload;
  request.resume_from = loaded->resume;

  const nlohmann::json log_fields = {{"thread_id", item.thread_id}, {"trace_id", rec.trace_id},
                                     {"traceparent", rec.traceparent}, {"resumed", request.resume_from.has_value()},
                                     {"recovered", item.recovered}};
  auto parent = core::tracing::parse_traceparent(rec.traceparent);
  core::tracing::Span span("spec_engine.run", parent ? core::tracing::child_of(*parent) : core::tracing::new_root(),
                           parent ? std::optional<std::string>(parent->span_id) : std::nullopt, 1);
  span.set_attribute("thread_id", item.thread_id);
  span.set_attribute("job.trace_id", rec.trace_id);
  runs_started().inc();
  core::log::info("run started", log_fields);
  const auto t0 = std::chrono::steady_clock::now();

  runtime::RunResult res;
  std::optional<std::string> internal;
  try {
    auto run = execute_(request, options_.limits, options_.models, observer, env);
    res = co_await std::move(run);
  } catch (const std::exception& e) {
    internal = e.what();
  }
  if (internal) {
    res = {};
    res.status = store::kFailed;
    res.error = "internal error in the runtime: " + *internal;
    observer.emit("error", {{"error", res.error}, {"context", "runtime"}});
  }
  auto stored = observer.flush();  // throws when a write failed: run_one marks the run failed
  co_await std::move(stored);
  if (active->deleted->load()) co_return;
  if (active->interrupt && !active->cancel && res.status == store::kCancelled) {
    // Engine shutdown: keep the run resumable from its last checkpoint.
    auto requeue = [this, &item] {
      retry_while_pool_busy([&] { store_.set_status(item.thread_id, store::kQueued); }, item.thread_id, "requeue");
    };
    auto requeue_task = rt_.blocking(std::move(requeue));
    co_await std::move(requeue_task);
    core::log::info("run interrupted by shutdown; will resume at next start", log_fields);
    co_return;
  }
  if (res.status != store::kCompleted && res.status != store::kFailed && res.status != store::kCancelled) {
    res.error = "runtime returned unknown status '" + res.status + "'";
    res.status = store::kFailed;
  }
  if (res.status == store::kFailed && res.error.empty()) res.error = "run failed";
  if (res.status == store::kCancelled && res.error.empty()) res.error = "cancelled by request";
  const nlohmann::json files = res.files.is_null() ? nlohmann::json::object() : res.files;
  std::int64_t seq = observer.last_seq();
  auto finish = [this, &item, &seq, &res, &files] {
    retry_while_pool_busy([&] { finish_thread(item.thread_id, seq, res.status, res.result, files, res.error); },
                          item.thread_id, "finish");
  };
  auto finish_task = rt_.blocking(std::move(finish));
  co_await std::move(finish_task);

  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  run_duration().observe(secs);
  if (res.status == store::kFailed) span.set_error(res.error);
  nlohmann::json done = log_fields;
  done["status"] = res.status;
  done["duration_s"] = secs;
  if (!res.error.empty()) done["error"] = res.error;
  core::log::info("run ended", done);
}

void RunManager::finish_thread(const std::string& thread_id, std::int64_t& seq, const std::string& status,
                               const nlohmann::json& result, const nlohmann::json& files, const std::string& error) {
  store::EventRecord end;
  end.thread_id = thread_id;
  end.seq = seq + 1;
  end.event_type = "end";
  end.data = {{"status", status}};
  if (!error.empty()) end.data["error"] = error;
  end.ts = core::now_rfc3339();
  store_.finish(thread_id, status, result, files, error, end);
  seq = end.seq;
  hub_.publish(end);
  events_emitted().inc({{"event_type", "end"}});
  runs_completed().inc({{"status", status}});
  if (options_.on_run_end) {
    try {
      options_.on_run_end(thread_id, status, error);
    } catch (const std::exception& e) {
      core::log::warn("run-end hook failed", {{"thread_id", thread_id}, {"error", e.what()}});
    }
  }
}

}  // namespace spec_engine::bus
