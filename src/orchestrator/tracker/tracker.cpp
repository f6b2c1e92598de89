// Proposal and run tracker: see tracker.hpp for the contract.
//
// Coroutine rule for GCC 12: every lambda handed to rt_.blocking() is a named local capturing
// only references, pointers or `this` (a lambda expression with non-trivial captures inside a
// co_await expression has its captures destroyed twice).
#include "orchestrator/tracker/tracker.hpp"

#include <unistd.h>

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/tracing.hpp"
#include "core/util.hpp"
#include "orchestrator/domain/error.hpp"
#include "orchestrator/domain/files.hpp"
#include "orchestrator/store/repositories.hpp"

// GCC 12 reports -Wmismatched-new-delete for large coroutines whose frames Asio allocates with
// its recycling allocator (a false positive: the frame's own operator new/delete pair is used).
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace orchestrator::tracker {

namespace {

using core::async::Task;
using domain::FailureKind;
using engine_client::EngineRejected;
using engine_client::EngineUnavailable;
using follow::Item;
using Clock = std::chrono::steady_clock;

core::metrics::Histogram& duration_histogram() {
  static auto& h = core::metrics::global().histogram(
      "ide_orchestrator_refinement_duration_seconds",
      "Time from proposal creation to finalisation (completed or failed), in seconds.",
      {1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400});
  return h;
}

core::metrics::Counter& proposals_counter() {
  static auto& c = core::metrics::global().counter(
      "ide_orchestrator_proposals_total",
      "Proposals leaving the processing state, by outcome (completed, failed, expired, restored).");
  return c;
}

std::string default_instance_id() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::string h = host[0] ? host : "orchestrator";
  return h + "-" + std::to_string(::getpid()) + "-" + core::random_hex(4);
}

core::metrics::Counter& runs_counter() {
  static auto& c = core::metrics::global().counter(
      "ide_orchestrator_runs_total", "Workflow runs leaving the processing state, by outcome (completed, failed, expired).");
  return c;
}

/// Sentence for a failed/cancelled engine run of a job of `kind`. Its reason is the run's final
/// error: `end`'s (`end_error`), else the state's `error` (`state` may be null), else the last
/// `error` event's (earlier, possibly recovered, errors come last).
std::string failure_sentence(JobKind kind, const std::string& status, std::optional<std::string> end_error,
                             const nlohmann::json* state, const std::optional<std::string>& last_error) {
  if (!end_error && state) {
    if (auto it = state->find("error"); it != state->end()) end_error = follow::error_text(*it);
  }
  if (!end_error) end_error = last_error;
  std::string s = kind == JobKind::run ? "The run" : "The refinement run";
  s += status == "cancelled" ? " was cancelled on the engine" : " failed on the engine";
  if (end_error) return s + ": " + *end_error;
  return s + " (the engine gave no reason).";
}

/// Log field naming a job's id.
const char* id_field(JobKind kind) { return kind == JobKind::run ? "run_id" : "proposal_id"; }

void observe_finalised(const store::ProposalRecord& p, const char* status) {
  try {
    const double secs =
        std::chrono::duration<double>(std::chrono::system_clock::now() - core::parse_rfc3339(p.created_at)).count();
    duration_histogram().observe(std::max(0.0, secs), {{"status", status}});
  } catch (const std::exception&) {
  }
  proposals_counter().inc({{"outcome", status}});
}

/// "applied" | "already_final" | "missing" (span attribute finalise.result).
const char* to_string(FinaliseResult r) {
  switch (r) {
    case FinaliseResult::applied:
      return "applied";
    case FinaliseResult::already_final:
      return "already_final";
    case FinaliseResult::missing:
      break;
  }
  return "missing";
}

/// The `generated_files` object of a state document, if any.
std::optional<nlohmann::json> state_files(const nlohmann::json& state) {
  auto it = state.find("generated_files");
  if (it != state.end() && it->is_object()) return *it;
  return std::nullopt;
}

/// True if the state document carries the run's `result` object.
bool has_result(const nlohmann::json& state) {
  auto it = state.find("result");
  return it != state.end() && it->is_object();
}

/// The final assistant message of an engine state document: result.output, else the last of
/// result.messages (as text); "" when the state has neither.
std::string final_output(const nlohmann::json& state) {
  if (!has_result(state)) return "";
  const auto& result = state["result"];
  if (result.contains("output") && result["output"].is_string()) return result["output"].get<std::string>();
  if (result.contains("messages") && result["messages"].is_array() && !result["messages"].empty()) {
    const auto& last = result["messages"].back();
    return last.is_string() ? last.get<std::string>() : last.dump();
  }
  return "";
}

}  // namespace

/// One tracked proposal or run.
struct Tracker::Job {
  JobKind kind = JobKind::proposal;
  std::string id, thread_id;  ///< the proposal's or run's id, and its engine thread
  std::stop_source stop;           ///< lease lost, proposal resolved elsewhere, or shutdown
  bool leased = false;             ///< guarded by Tracker::mu_
  Clock::time_point leased_at{};   ///< guarded by Tracker::mu_
};

Tracker::Tracker(store::Store& store, engine_client::EngineClient& engine, follow::FollowHub& hub,
                 TrackerOptions options)
    : store_(store), proposals_(store), runs_(store), engine_(engine), hub_(hub), rt_(engine.runtime()), options_(std::move(options)),
      tasks_(rt_, "proposal-tracker") {
  if (options_.instance_id.empty()) options_.instance_id = default_instance_id();
  if (options_.lease_ttl < std::chrono::milliseconds(300)) options_.lease_ttl = std::chrono::milliseconds(300);
  if (options_.sweep_interval < std::chrono::milliseconds(10)) options_.sweep_interval = std::chrono::milliseconds(10);
  duration_histogram();
  proposals_counter();
  runs_counter();
}

Tracker::~Tracker() { stop(); }

std::chrono::seconds Tracker::lease_seconds() const {
  return std::max(std::chrono::seconds{1}, std::chrono::ceil<std::chrono::seconds>(options_.lease_ttl));
}

void Tracker::start() {
  {
    std::lock_guard lk(mu_);
    if (started_ || stopping_) return;
    started_ = true;
  }
  core::log::info("proposal tracker started", {{"instance_id", options_.instance_id},
                                               {"lease_ttl_ms", static_cast<long long>(options_.lease_ttl.count())},
                                               {"sweep_interval_ms",
                                                static_cast<long long>(options_.sweep_interval.count())}});
  tasks_.spawn(lease_keeper());
  tasks_.spawn(sweeper());
}

Tracker::Starting::Starting(Tracker* tracker, std::string thread_id)
    : tracker_(tracker), thread_id_(std::move(thread_id)) {
  std::lock_guard lk(tracker_->mu_);
  tracker_->starting_.insert(thread_id_);
}

Tracker::Starting::Starting(Starting&& other) noexcept
    : tracker_(std::exchange(other.tracker_, nullptr)), thread_id_(std::move(other.thread_id_)) {}

Tracker::Starting::~Starting() {
  if (!tracker_) return;
  std::lock_guard lk(tracker_->mu_);
  const auto it = tracker_->starting_.find(thread_id_);
  if (it != tracker_->starting_.end()) tracker_->starting_.erase(it);
}

void Tracker::track(const std::string& proposal_id, const std::string& thread_id) {
  add_job(JobKind::proposal, proposal_id, thread_id);
}

void Tracker::track_run(const std::string& run_id, const std::string& thread_id) {
  add_job(JobKind::run, run_id, thread_id);
}

void Tracker::add_job(JobKind kind, const std::string& id, const std::string& thread_id) {
  std::shared_ptr<Job> job;
  {
    std::lock_guard lk(mu_);
    JobKey key{kind, id};
    if (stopping_ || jobs_.count(key)) return;
    job = std::make_shared<Job>();
    job->kind = kind;
    job->id = id;
    job->thread_id = thread_id;
    jobs_[key] = job;
  }
  tasks_.spawn(follow_job(job));
}

void Tracker::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    for (auto& [id, job] : jobs_) job->stop.request_stop();
  }
  stop_.request_stop();
  if (!tasks_.wait(options_.stop_timeout)) {
    core::log::warn("proposal tracker tasks still running at shutdown",
                    {{"running", static_cast<long long>(tasks_.running())}});
  }
}

void Tracker::sweep_once() { rt_.run_sync(sweep()); }

std::size_t Tracker::active() const {
  std::lock_guard lk(mu_);
  return jobs_.size();
}

bool Tracker::wait_idle(std::chrono::milliseconds timeout) const {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [this] { return jobs_.empty(); });
}

// ------------------------------------------------------------------ finalisation

FinaliseResult Tracker::complete_thread(const std::string& proposal_id, const std::string& thread_id,
                                        const nlohmann::json& generated_files) {
  domain::FileMap files;
  try {
    files = domain::files_from_json(generated_files.is_null() ? nlohmann::json::object() : generated_files,
                                    "generated_files", core::now_rfc3339());
  } catch (const domain::Error& e) {
    return fail_thread(proposal_id, thread_id,
                       std::string("The refinement engine produced files the orchestrator cannot store: ") + e.what(),
                       FailureKind::invalid_result);
  }
  const auto r = proposals_.finalise(thread_id, files);
  if (!r.changed) return FinaliseResult::already_final;
  observe_finalised(r.proposal, "completed");
  core::log::info("proposal completed", {{"proposal_id", proposal_id}, {"thread_id", thread_id},
                                         {"files", static_cast<int>(files.size())}});
  return FinaliseResult::applied;
}

FinaliseResult Tracker::fail_thread(const std::string& proposal_id, const std::string& thread_id,
                                    const std::string& error, FailureKind kind) {
  const auto r = proposals_.finalise_failed(thread_id, error, kind);
  if (!r.changed) return FinaliseResult::already_final;
  observe_finalised(r.proposal, "failed");
  core::log::warn("proposal failed", {{"proposal_id", proposal_id}, {"thread_id", thread_id}, {"error", error},
                                      {"failure_kind", domain::to_string(kind)}});
  return FinaliseResult::applied;
}

FinaliseResult Tracker::finalise(const std::string& proposal_id, const nlohmann::json& generated_files) {
  const auto p = store_.run([&](store::UnitOfWork& uow) { return store::proposals::find_summary(uow, proposal_id); });
  if (!p) return FinaliseResult::missing;
  return complete_thread(proposal_id, p->thread_id, generated_files);
}

FinaliseResult Tracker::finalise_failed(const std::string& proposal_id, const std::string& error, FailureKind kind) {
  const auto p = store_.run([&](store::UnitOfWork& uow) { return store::proposals::find_summary(uow, proposal_id); });
  if (!p) return FinaliseResult::missing;
  return fail_thread(proposal_id, p->thread_id, error, kind);
}

FinaliseResult Tracker::complete_run(const std::string& run_id, const std::string& thread_id,
                                     const std::string& output, const nlohmann::json& files) {
  domain::FileMap map;
  try {
    map = domain::files_from_json(files.is_null() ? nlohmann::json::object() : files, "files", core::now_rfc3339());
  } catch (const domain::Error& e) {
    return fail_run(run_id, thread_id, std::string("The engine produced files the orchestrator cannot store: ") + e.what(),
                    FailureKind::invalid_result);
  }
  const auto r = runs_.complete(thread_id, output, map);
  if (!r.changed) return FinaliseResult::already_final;
  runs_counter().inc({{"outcome", "completed"}});
  core::log::info("run completed", {{"run_id", run_id}, {"thread_id", thread_id},
                                    {"files", static_cast<int>(r.run.files ? r.run.files->size() : 0)}});
  return FinaliseResult::applied;
}

FinaliseResult Tracker::fail_run(const std::string& run_id, const std::string& thread_id, const std::string& error,
                                FailureKind kind) {
  const auto r = runs_.fail(thread_id, error, kind);
  if (!r.changed) return FinaliseResult::already_final;
  runs_counter().inc({{"outcome", "failed"}});
  core::log::warn("run failed", {{"run_id", run_id}, {"thread_id", thread_id}, {"error", error},
                                 {"failure_kind", domain::to_string(kind)}});
  return FinaliseResult::applied;
}

// ------------------------------------------------------------------ one proposal or run

Task<void> Tracker::follow_job(std::shared_ptr<Job> job) {
  const std::string& owner = options_.instance_id;
  const JobKind kind = job->kind;
  const bool is_run = kind == JobKind::run;
  const std::string& id = job->id;
  const std::string& thread = job->thread_id;
  const char* id_key = id_field(kind);
  const auto stop = job->stop.get_token();
  struct Forget {  // leaves the registry however the coroutine ends
    Tracker& t;
    std::shared_ptr<Job> job;
    ~Forget() {
      std::lock_guard lk(t.mu_);
      auto it = t.jobs_.find(JobKey{job->kind, job->id});
      if (it != t.jobs_.end() && it->second == job) t.jobs_.erase(it);
      t.cv_.notify_all();
    }
  } forget{*this, job};

  bool leased = false;
  std::string traceparent;  // of the request that started a proposal's refinement
  const auto ttl = lease_seconds();
  auto acquire = [this, is_run, &id, &owner, ttl, &traceparent] {
    if (is_run) return runs_.try_acquire_lease(id, owner, ttl);
    if (!proposals_.try_acquire_lease(id, owner, ttl)) return false;
    traceparent = proposals_.traceparent_of(id);
    return true;
  };
  try {
    leased = co_await rt_.blocking(acquire);
  } catch (const std::exception& e) {
    core::log::warn("could not take a tracker lease; the sweeper will retry", {{id_key, id}, {"error", e.what()}});
  }
  if (!leased) {
    core::log::debug("not tracked here: lease held elsewhere or no longer processing", {{id_key, id}});
    co_return;
  }
  {
    std::lock_guard lk(mu_);
    job->leased = true;
    job->leased_at = Clock::now();
  }
  core::log::info(is_run ? "tracking run" : "tracking proposal", {{id_key, id}, {"thread_id", thread}, {"owner", owner}});
  // One span for following the thread. A proposal's is a child of the request that started the
  // refinement (stored with the proposal), whichever replica follows it and also after a restart
  // or a takeover; the engine's stream span and the finalisation nest under it
  // (docs/observability.md). Runs store no traceparent: theirs start a trace.
  core::tracing::Span span = core::tracing::start_span(is_run ? "run.track" : "proposal.track",
                                                       core::tracing::parse_traceparent(traceparent),
                                                       core::tracing::kInternal);
  span.set_attribute(id_key, id);
  span.set_attribute("thread_id", thread);
  span.set_attribute("orchestrator.instance_id", owner);
  follow::SubscribeOptions so;
  so.traceparent = span.context().to_traceparent();
  long long events = 0;

  follow::EventPtr last_files_event;    // the last on_state_update carrying files (parsed at the end)
  std::optional<std::string> last_error;  // the last `error` event's text
  // What to do once the stream is over; decided below, applied with SQL on the blocking pool.
  std::optional<nlohmann::json> complete_with;
  std::string output;  // a completed run's final assistant message (the state's result.output)
  std::optional<std::pair<std::string, FailureKind>> fail_with;
  bool stop_engine_run = false;  // delete the engine thread once the failure is recorded
  auto sub = hub_.subscribe(thread, 0, rt_.executor(), so);
  for (bool over = false; !over;) {
    Item item = co_await sub->next(stop);
    switch (item.kind) {
      case Item::Kind::event: {
        const follow::Event& ev = *item.event;
        ++events;
        if (options_.on_event) {
          try {
            options_.on_event(id, ev);
          } catch (...) {
          }
        }
        if (ev.has_files) last_files_event = item.event;
        if (ev.type == "error") {
          last_error = ev.error;
          span.add_event("engine.error", {{"seq", ev.seq}, {"message", ev.error.value_or("")}});
          core::log::warn("engine reported an error during the run", {{id_key, id}, {"error", ev.error.value_or("")}});
        }
        if (!ev.is_end()) break;
        over = true;
        // `end`: data.status decides; the state fills in what the stream lacked (no status, as the
        // Python engine sends; no files; no reason; a run's final message, which only the state has).
        std::string status = ev.end_status;
        const auto last_files = last_files_event ? follow::files_of(*last_files_event) : std::nullopt;
        std::optional<nlohmann::json> state;
        if (status.empty() || (status == "completed" && (!last_files || is_run)) ||
            (status != "completed" && !ev.error)) {
          try {
            state = co_await engine_.get_state_async(thread, stop);
          } catch (const std::exception& e) {
            core::log::warn("engine state unavailable at the end of a run", {{id_key, id}, {"error", e.what()}});
          }
        }
        if (status.empty()) {
          const std::string s = state ? state->value("status", std::string()) : std::string();
          status = follow::is_terminal_status(s) ? s : (last_error ? "failed" : "completed");
        }
        if (status == "completed") {
          complete_with = last_files ? *last_files : state ? state_files(*state).value_or(nlohmann::json::object())
                                                           : nlohmann::json::object();
          if (is_run && state) output = final_output(*state);
          if (is_run && !(state && has_result(*state)))
            core::log::warn("engine state has no result: the run's output is not known", {{id_key, id}});
        } else {
          fail_with.emplace(failure_sentence(kind, status, ev.error, state ? &*state : nullptr, last_error),
                            FailureKind::engine_failed);
        }
        break;
      }
      case Item::Kind::ended: {  // terminal state without an `end` event
        over = true;
        const nlohmann::json& state = *item.state;
        const std::string status = state.value("status", std::string());
        if (status == "completed") {
          complete_with = state_files(state);
          if (!complete_with) {
            auto last_files = last_files_event ? follow::files_of(*last_files_event) : std::nullopt;
            complete_with = last_files ? std::move(*last_files) : nlohmann::json::object();
          }
          output = final_output(state);
        } else {
          fail_with.emplace(failure_sentence(kind, status, std::nullopt, &state, last_error), FailureKind::engine_failed);
        }
        break;
      }
      case Item::Kind::gone:
        over = true;
        fail_with.emplace(item.reason + " No result can be collected.", FailureKind::engine_gone);
        span.set_error(item.reason, "engine_gone");
        break;
      case Item::Kind::too_large:
        // The run may go on for many steps on the engine, spending model tokens on a result no
        // one can collect: its thread is deleted (which stops it) once the failure is recorded.
        over = true;
        stop_engine_run = true;
        fail_with.emplace(item.reason + " No result can be collected.", FailureKind::invalid_result);
        span.set_error(item.reason, "event_too_large");
        break;
      case Item::Kind::too_slow:  // not with unbounded options; resubscribe where we were
        sub = hub_.subscribe(thread, sub->last_seq(), rt_.executor(), so);
        break;
      case Item::Kind::stopped:
        over = true;
        break;
    }
  }
  sub.reset();
  span.set_attribute("events", events);

  bool finalised_here = false;  // our finalising update cleared the lease with the status
  if (complete_with || fail_with) {
    core::tracing::Span finalise = core::tracing::start_span(is_run ? "run.finalise" : "proposal.finalise",
                                                             span.context(), core::tracing::kInternal);
    finalise.set_attribute(id_key, id);
    finalise.set_attribute("finalise.status", complete_with ? "completed" : "failed");
    if (fail_with) finalise.set_attribute("finalise.failure_kind", domain::to_string(fail_with->second));
    FinaliseResult result = FinaliseResult::missing;
    auto apply = [this, is_run, &id, &thread, &complete_with, &output, &fail_with, &result] {
      if (is_run && complete_with) result = complete_run(id, thread, output, *complete_with);
      else if (is_run) result = fail_run(id, thread, fail_with->first, fail_with->second);
      else if (complete_with) result = complete_thread(id, thread, *complete_with);
      else result = fail_thread(id, thread, fail_with->first, fail_with->second);
    };
    try {
      co_await rt_.blocking(apply);
      finalise.set_attribute("finalise.result", to_string(result));
      finalised_here = result == FinaliseResult::applied;
    } catch (const std::exception& e) {
      finalise.set_error(e.what(), "finalise_failed");
      core::log::error("could not finalise a tracked job; the sweeper will follow it again",
                       {{id_key, id}, {"error", e.what()}});
    }
    if (stop_engine_run && result == FinaliseResult::applied) {
      // Best effort: a thread not deleted now is deleted by the sweeper after the orphan TTL.
      bool deleted = false;
      try {
        Task<bool> deleting = engine_.delete_thread_async(thread, stop);
        deleted = co_await std::move(deleting);
      } catch (const std::exception& e) {
        core::log::warn("could not delete the engine thread of a run whose events are too large",
                        {{id_key, id}, {"thread_id", thread}, {"error", e.what()}});
      }
      span.set_attribute("engine_thread_deleted", deleted);
    }
    span.set_attribute("outcome", complete_with ? "completed" : "failed");
  } else {
    span.set_attribute("outcome", "stopped");
    if (!stop.stop_requested()) {
      core::log::info(is_run ? "stopped tracking a run" : "stopped tracking a proposal", {{id_key, id}});
    }
  }
  if (finalised_here) co_return;  // one write less per job: the lease went with `processing`
  auto release = [this, is_run, &id, &owner] {
    if (is_run) runs_.release_lease(id, owner);
    else proposals_.release_lease(id, owner);
  };
  try {
    co_await rt_.blocking(release);
  } catch (const std::exception& e) {
    core::log::warn("could not release a tracker lease", {{id_key, id}, {"error", e.what()}});
  }
}

// ------------------------------------------------------------------ lease keeper

Task<void> Tracker::lease_keeper() {
  const auto period = std::max(options_.lease_ttl / 3, std::chrono::milliseconds(100));
  const auto stop = stop_.get_token();
  while (co_await core::async::sleep_for(period, stop)) {
    const auto started = Clock::now();
    // One statement per table: the proposals and the runs this replica still holds.
    std::vector<std::string> held_proposals, held_runs;
    bool renewed_proposals = false, renewed_runs = false;
    auto renew_proposals = [this, &held_proposals] {
      held_proposals = proposals_.renew_leases(options_.instance_id, options_.lease_ttl);
    };
    auto renew_runs = [this, &held_runs] { held_runs = runs_.renew_leases(options_.instance_id, options_.lease_ttl); };
    try {
      co_await rt_.blocking(renew_proposals);
      renewed_proposals = true;
    } catch (const std::exception& e) {
      core::log::warn("proposal lease renewal failed", {{"error", e.what()}});
    }
    try {
      co_await rt_.blocking(renew_runs);
      renewed_runs = true;
    } catch (const std::exception& e) {
      core::log::warn("run lease renewal failed", {{"error", e.what()}});
    }
    std::set<JobKey> still;
    for (auto& id : held_proposals) still.emplace(JobKind::proposal, std::move(id));
    for (auto& id : held_runs) still.emplace(JobKind::run, std::move(id));
    std::lock_guard lk(mu_);
    for (auto& [key, job] : jobs_) {
      const bool renewed = key.first == JobKind::run ? renewed_runs : renewed_proposals;
      // Leases taken after the renewal started may not be in its answer yet.
      if (!renewed || !job->leased || job->leased_at >= started || still.count(key)) continue;
      core::log::info("lease lost or job resolved elsewhere; no longer tracking it", {{id_field(key.first), key.second}});
      job->stop.request_stop();
    }
  }
}

// ------------------------------------------------------------------ sweeper

Task<void> Tracker::sweeper() {
  const auto stop = stop_.get_token();
  do {
    try {
      co_await sweep();
    } catch (const std::exception& e) {
      core::log::error("proposal sweep failed", {{"error", e.what()}});
    }
  } while (co_await core::async::sleep_for(options_.sweep_interval, stop));
}

Task<void> Tracker::sweep() {
  const auto stop = stop_.get_token();
  const auto ttl = std::chrono::ceil<std::chrono::seconds>(options_.orphan_ttl);
  const int batch = options_.cleanup_batch;

  // 1. Orphans: processing longer than orphan_ttl -> failed, engine thread scheduled for deletion.
  std::vector<std::string> expired;
  auto fail_stale = [this, &expired, ttl] { expired = proposals_.fail_stale(ttl); };
  co_await rt_.blocking(fail_stale);
  for (const auto& thread : expired) {
    proposals_counter().inc({{"outcome", "expired"}});
    core::log::warn("orphaned proposal failed", {{"thread_id", thread}, {"ttl_seconds", ttl.count()}});
  }

  // 1a. Runs still processing after orphan_ttl fail the same way.
  std::vector<std::string> expired_runs;
  auto fail_stale_runs = [this, &expired_runs, ttl] { expired_runs = runs_.fail_stale(ttl); };
  co_await rt_.blocking(fail_stale_runs);
  for (const auto& thread : expired_runs) {
    runs_counter().inc({{"outcome", "expired"}});
    core::log::warn("orphaned run failed", {{"thread_id", thread}, {"ttl_seconds", ttl.count()}});
  }

  // 1b. Proposals left failed (nobody rejected them) keep their engine thread for orphan_ttl,
  //     then it is scheduled for deletion like a decided proposal's.
  std::vector<std::string> scheduled;
  auto schedule = [this, &scheduled, ttl, batch] { scheduled = proposals_.schedule_failed_cleanup(ttl, batch); };
  co_await rt_.blocking(schedule);
  for (const auto& thread : scheduled) {
    core::log::info("failed proposal's engine thread scheduled for deletion",
                    {{"thread_id", thread}, {"ttl_seconds", ttl.count()}});
  }

  // 1c. Finished runs (completed, failed) keep their engine thread for orphan_ttl too, so their
  //     stream can be replayed; then it is scheduled for deletion.
  std::vector<std::string> scheduled_runs;
  auto schedule_runs = [this, &scheduled_runs, ttl, batch] { scheduled_runs = runs_.schedule_finished_cleanup(ttl, batch); };
  co_await rt_.blocking(schedule_runs);
  for (const auto& thread : scheduled_runs) {
    core::log::info("finished run's engine thread scheduled for deletion",
                    {{"thread_id", thread}, {"ttl_seconds", ttl.count()}});
  }

  // 2. Engine cleanup for resolved proposals and finished runs, retried every sweep until the
  //    engine confirms.
  struct Pending {
    JobKind kind;
    std::string id, thread_id;  // the proposal's or the run's id, and its engine thread
  };
  std::vector<Pending> cleanup;
  auto list_cleanup = [this, &cleanup, batch] {
    for (auto& item : proposals_.list_pending_cleanup(batch))
      cleanup.push_back({JobKind::proposal, std::move(item.proposal_id), std::move(item.thread_id)});
    for (auto& item : runs_.list_pending_cleanup(batch))
      cleanup.push_back({JobKind::run, std::move(item.run_id), std::move(item.thread_id)});
  };
  co_await rt_.blocking(list_cleanup);
  for (const auto& item : cleanup) {
    if (stop.stop_requested()) co_return;
    bool gone = false;
    bool engine_down = false;
    try {
      gone = co_await engine_.delete_thread_async(item.thread_id, stop);
    } catch (const EngineUnavailable& e) {
      core::log::warn("engine thread cleanup postponed", {{id_field(item.kind), item.id}, {"error", e.what()}});
      engine_down = true;
    } catch (const EngineRejected& e) {
      core::log::warn("engine refused thread deletion; will retry", {{id_field(item.kind), item.id}, {"error", e.what()}});
    }
    if (engine_down) break;  // try again next sweep
    if (!gone) continue;
    const Pending* cleaned = &item;
    bool recorded = true;
    auto mark = [this, cleaned, &recorded] {
      // A run the engine could not be reached for may still get its thread (the invoke may be
      // in the engine's hands): deleted again next sweep until the grace passed.
      if (cleaned->kind == JobKind::run)
        recorded = runs_.mark_cleaned(cleaned->id, options_.unreachable_grace);
      else
        proposals_.mark_cleaned(cleaned->id);
    };
    co_await rt_.blocking(mark);
    if (!recorded) continue;
    core::log::info("engine thread deleted", {{id_field(item.kind), item.id}, {"thread_id", item.thread_id}});
  }

  // 3. Proposals failed only because the engine was unreachable: ask the engine again. A run that
  //    completed after all brings its proposal back to `completed` (audit "proposal.restored").
  std::vector<domain::ProposalThread> unsure;
  auto list_unsure = [this, &unsure, batch] { unsure = proposals_.list_unreachable_failures(batch); };
  co_await rt_.blocking(list_unsure);
  for (const auto& item : unsure) {
    if (stop.stop_requested()) co_return;
    std::optional<nlohmann::json> state;
    bool reached = false;
    try {
      state = co_await engine_.get_state_async(item.thread_id, stop);
      reached = true;
    } catch (const std::exception& e) {
      core::log::debug("engine still unreachable for a failed proposal", {{"proposal_id", item.proposal_id},
                                                                          {"error", e.what()}});
    }
    if (!reached) break;
    const std::string status = state ? state->value("status", std::string()) : std::string();
    if (state && !follow::is_terminal_status(status)) continue;  // still running: ask again next sweep
    const std::string& pid = item.proposal_id;
    const std::string& tid = item.thread_id;
    bool restored = false;
    auto settle = [this, &pid, &tid, &state, &status, &restored] {
      // No thread (yet): final only once the engine cannot be creating it any more.
      if (!state)
        return proposals_.settle_unreachable_failure(pid, FailureKind::engine_gone, options_.unreachable_grace);
      if (status != "completed") return proposals_.settle_unreachable_failure(pid, FailureKind::engine_failed);
      domain::FileMap files;
      try {
        files = domain::files_from_json(state_files(*state).value_or(nlohmann::json::object()), "generated_files",
                                        core::now_rfc3339());
      } catch (const domain::Error&) {
        return proposals_.settle_unreachable_failure(pid, FailureKind::invalid_result);
      }
      const auto r = proposals_.restore_completed(tid, files);
      restored = r.changed;
      if (restored) observe_finalised(r.proposal, "completed");
    };
    co_await rt_.blocking(settle);
    if (restored) {
      proposals_counter().inc({{"outcome", "restored"}});
      core::log::warn("proposal failed while the engine was unreachable completed after all; restored",
                      {{"proposal_id", pid}, {"thread_id", tid}});
    }
  }

  // 4. Track processing proposals and runs nobody tracks (lease free or expired, e.g. a dead
  //    replica's; or this instance's, left over from a finished coroutine). add_job() skips
  //    local ones; jobs this replica is still starting (engine invoke in flight) are left alone.
  std::vector<domain::ProposalThread> claimable;
  std::vector<domain::RunThread> claimable_runs;
  auto list_claimable = [this, &claimable, &claimable_runs] {
    claimable = proposals_.list_claimable(options_.instance_id);
    claimable_runs = runs_.list_claimable(options_.instance_id);
  };
  co_await rt_.blocking(list_claimable);
  auto being_started = [this](const std::string& thread_id) {
    std::lock_guard lk(mu_);
    return starting_.count(thread_id) > 0;
  };
  for (const auto& item : claimable)
    if (!being_started(item.thread_id)) track(item.proposal_id, item.thread_id);
  for (const auto& item : claimable_runs)
    if (!being_started(item.thread_id)) track_run(item.run_id, item.thread_id);
}

}  // namespace orchestrator::tracker
