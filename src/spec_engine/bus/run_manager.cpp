// Run manager: worker pool, bounded queue, idempotent submit, cancel, recovery.
#include "spec_engine/bus/run_manager.hpp"

#include <algorithm>

#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/tracing.hpp"
#include "core/util.hpp"

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
  return core::metrics::global().gauge("spec_engine_queue_depth", "Jobs waiting for a worker");
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

/// Observer of one run: seq assignment, storage, fan-out, checkpoints, cancel flag.
class RunManager::Observer : public runtime::RunObserver {
 public:
  Observer(RunManager& m, std::string thread_id, std::int64_t last_seq, std::shared_ptr<Active> active)
      : m_(m), thread_id_(std::move(thread_id)), seq_(last_seq), active_(std::move(active)) {}

  void emit(const std::string& event_type, const nlohmann::json& data) override {
    if (active_->deleted) return;
    store::EventRecord ev;
    ev.thread_id = thread_id_;
    ev.seq = seq_ + 1;
    ev.event_type = event_type;
    ev.data = data;
    ev.ts = core::now_rfc3339();
    m_.store_.append_event(ev);
    seq_ = ev.seq;
    m_.hub_.publish(ev);
    events_emitted().inc({{"event_type", event_type}});
  }

  void checkpoint(const nlohmann::json& state) override {
    if (active_->deleted) return;
    m_.store_.save_checkpoint(thread_id_, seq_, state);
  }

  bool cancelled() override { return active_->cancel || active_->interrupt; }

  std::int64_t& seq() { return seq_; }

 private:
  RunManager& m_;
  std::string thread_id_;
  std::int64_t seq_;
  std::shared_ptr<Active> active_;
};

RunManager::RunManager(store::Store& store, EventHub& hub, RunManagerOptions options, ExecuteFn execute)
    : store_(store), hub_(hub), options_(std::move(options)), execute_(std::move(execute)) {
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
  cv_.notify_all();
  return handled;
}

void RunManager::start() {
  std::lock_guard lk(mu_);
  if (!workers_.empty() || stopping_) return;
  for (int i = 0; i < options_.max_concurrent_runs; ++i) workers_.emplace_back([this] { worker_loop(); });
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
  {
    std::lock_guard lk(mu_);
    queue_.push_back({rec.thread_id, false});
    queue_depth().set(static_cast<double>(queue_.size()));
  }
  cv_.notify_one();
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
      if (!done_cv_.wait_for(lk, options_.cancel_wait, [&] { return active->done; })) {
        active->deleted = true;  // still running: its later writes are dropped and cleaned up
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
  std::vector<std::thread> workers;
  {
    std::unique_lock lk(mu_);
    stopping_ = true;  // workers take no new items; queued threads stay `queued` in the store
    cv_.notify_all();
    done_cv_.wait_for(lk, grace, [&] { return active_.empty(); });
    for (auto& [id, a] : active_) a->interrupt = true;
    workers.swap(workers_);
  }
  cv_.notify_all();
  for (auto& t : workers) {
    if (t.joinable()) t.join();
  }
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

void RunManager::worker_loop() {
  for (;;) {
    Item item;
    std::shared_ptr<Active> active;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      item = queue_.front();
      queue_.pop_front();
      queue_depth().set(static_cast<double>(queue_.size()));
      active = std::make_shared<Active>();
      active_[item.thread_id] = active;
      runs_in_flight().set(static_cast<double>(active_.size()));
    }
    try {
      run_one(item, active);
    } catch (const std::exception& e) {
      core::log::error("run crashed", {{"thread_id", item.thread_id}, {"error", e.what()}});
      try {
        store_.set_status(item.thread_id, store::kFailed, std::string("internal error: ") + e.what());
      } catch (const std::exception&) {
        // The database is gone; recovery at the next start fixes the status.
      }
    }
    if (active->deleted) {
      try {
        store_.delete_thread(item.thread_id);  // writes that raced with DELETE
      } catch (const std::exception&) {
      }
    }
    {
      std::lock_guard lk(mu_);
      active->done = true;
      active_.erase(item.thread_id);
      runs_in_flight().set(static_cast<double>(active_.size()));
    }
    done_cv_.notify_all();
  }
}

void RunManager::run_one(const Item& item, const std::shared_ptr<Active>& active) {
  auto rec = store_.get_thread(item.thread_id);
  if (!rec || store::is_terminal(rec->status)) return;
  std::optional<nlohmann::json> resume;
  if (item.recovered) resume = store_.latest_checkpoint(item.thread_id);
  store_.set_status(item.thread_id, store::kRunning);

  Observer observer(*this, item.thread_id, rec->last_seq, active);
  runtime::RunRequest request;
  request.thread_id = item.thread_id;
  request.definition = rec->agent_definition;
  request.input_payload = rec->input_payload;
  request.resume_from = resume;

  const nlohmann::json log_fields = {{"thread_id", item.thread_id}, {"trace_id", rec->trace_id},
                                     {"traceparent", rec->traceparent}, {"resumed", resume.has_value()},
                                     {"recovered", item.recovered}};
  auto parent = core::tracing::parse_traceparent(rec->traceparent);
  core::tracing::Span span("spec_engine.run", parent ? core::tracing::child_of(*parent) : core::tracing::new_root(),
                           parent ? std::optional<std::string>(parent->span_id) : std::nullopt, 1);
  span.set_attribute("thread_id", item.thread_id);
  span.set_attribute("job.trace_id", rec->trace_id);
  runs_started().inc();
  core::log::info("run started", log_fields);
  const auto t0 = std::chrono::steady_clock::now();

  runtime::RunResult res;
  try {
    res = execute_(request, options_.limits, options_.models, observer);
  } catch (const std::exception& e) {
    res = {};
    res.status = store::kFailed;
    res.error = std::string("internal error in the runtime: ") + e.what();
    try {
      observer.emit("error", {{"error", res.error}, {"context", "runtime"}});
    } catch (const std::exception&) {
    }
  }
  if (active->deleted) return;
  if (active->interrupt && !active->cancel && res.status == store::kCancelled) {
    // Engine shutdown: keep the run resumable from its last checkpoint.
    store_.set_status(item.thread_id, store::kQueued);
    core::log::info("run interrupted by shutdown; will resume at next start", log_fields);
    return;
  }
  if (res.status != store::kCompleted && res.status != store::kFailed && res.status != store::kCancelled) {
    res.error = "runtime returned unknown status '" + res.status + "'";
    res.status = store::kFailed;
  }
  if (res.status == store::kFailed && res.error.empty()) res.error = "run failed";
  if (res.status == store::kCancelled && res.error.empty()) res.error = "cancelled by request";
  nlohmann::json files = res.files.is_null() ? nlohmann::json::object() : res.files;
  finish_thread(item.thread_id, observer.seq(), res.status, res.result, files, res.error);

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
