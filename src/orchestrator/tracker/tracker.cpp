// Proposal tracker: see tracker.hpp for the contract (DESIGN.md §5 "Hybrid event processing").
#include "orchestrator/tracker/tracker.hpp"

#include <unistd.h>

#include <algorithm>
#include <optional>
#include <vector>

#include <soci/soci.h>

#include "core/json_parse.hpp"
#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/resilience.hpp"
#include "core/util.hpp"
#include "orchestrator/domain/error.hpp"
#include "orchestrator/domain/files.hpp"
#include "orchestrator/store/repositories.hpp"

namespace orchestrator::tracker {

namespace {

using engine_client::EngineRejected;
using engine_client::EngineUnavailable;
using store::ProposalStatus;
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
      "Proposals leaving the processing state, by outcome (completed, failed, expired).");
  return c;
}

std::string default_instance_id() {
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  std::string h = host[0] ? host : "orchestrator";
  return h + "-" + std::to_string(::getpid()) + "-" + core::random_hex(4);
}

bool is_terminal(const std::string& s) { return s == "completed" || s == "failed" || s == "cancelled"; }

/// Best-effort string of an engine error value (string, or object with "error"/"message").
std::optional<std::string> error_text(const nlohmann::json& v) {
  if (v.is_string() && !v.get<std::string>().empty()) return v.get<std::string>();
  if (v.is_object()) {
    for (const char* k : {"error", "message", "detail"}) {
      if (v.contains(k) && v[k].is_string() && !v[k].get<std::string>().empty()) return v[k].get<std::string>();
    }
    if (!v.empty()) return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return std::nullopt;
}

/// Sentence for a failed/cancelled engine run.
std::string failure_sentence(const std::string& status, const std::optional<std::string>& engine_error) {
  std::string s = status == "cancelled" ? "The refinement run was cancelled on the engine"
                                        : "The refinement run failed on the engine";
  if (engine_error) return s + ": " + *engine_error;
  return s + " (the engine gave no reason).";
}

}  // namespace

/// Book-keeping of one worker thread.
struct Tracker::Worker {
  std::thread thread;
  std::atomic<bool> done{false};
};

Tracker::Tracker(core::db::Database& db, engine_client::EngineClient& engine, TrackerOptions options)
    : db_(db), proposals_(db), engine_(engine), options_(std::move(options)) {
  if (options_.instance_id.empty()) options_.instance_id = default_instance_id();
  if (options_.lease_ttl < std::chrono::milliseconds(300)) options_.lease_ttl = std::chrono::milliseconds(300);
  if (options_.poll_interval <= std::chrono::milliseconds(0)) options_.poll_interval = std::chrono::milliseconds(250);
  if (options_.reconnect_attempts < 1) options_.reconnect_attempts = 1;
  duration_histogram();
  proposals_counter();
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
  std::vector<std::pair<std::string, std::string>> resume;
  {
    const std::string now = core::now_rfc3339();
    for (const auto& p : proposals_.list_processing()) {
      const bool free = !p.lease_owner || *p.lease_owner == options_.instance_id || !p.lease_expires_at ||
                        *p.lease_expires_at < now;
      if (free) resume.emplace_back(p.id, p.thread_id);
    }
  }
  core::log::info("proposal tracker started",
                  {{"instance_id", options_.instance_id}, {"resuming", static_cast<int>(resume.size())}});
  for (const auto& [id, thread] : resume) track(id, thread);
  std::lock_guard lk(mu_);
  sweeper_ = std::thread([this] { sweeper_loop(); });
}

void Tracker::track(const std::string& proposal_id, const std::string& thread_id) {
  std::lock_guard lk(mu_);
  if (stopping_) return;
  reap_finished_locked();
  if (workers_.count(proposal_id)) return;
  auto w = std::make_shared<Worker>();
  workers_[proposal_id] = w;
  w->thread = std::thread([this, w, proposal_id, thread_id] {
    try {
      run_worker(proposal_id, thread_id);
    } catch (const std::exception& e) {
      core::log::error("proposal tracker worker failed; the sweeper will resume it",
                       {{"proposal_id", proposal_id}, {"thread_id", thread_id}, {"error", e.what()}});
      try {
        proposals_.release_lease(proposal_id, options_.instance_id);
      } catch (...) {
      }
    }
    w->done = true;
    cv_.notify_all();
  });
}

void Tracker::stop() {
  std::thread sweeper;
  std::map<std::string, std::shared_ptr<Worker>> workers;
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    sweeper = std::move(sweeper_);
    workers = std::move(workers_);
    workers_.clear();
  }
  cv_.notify_all();
  if (sweeper.joinable()) sweeper.join();
  for (auto& [id, w] : workers) {
    if (w->thread.joinable()) w->thread.join();
  }
}

void Tracker::reap_finished_locked() {
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->second->done) {
      if (it->second->thread.joinable()) it->second->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

std::size_t Tracker::active() const {
  std::lock_guard lk(mu_);
  std::size_t n = 0;
  for (const auto& [id, w] : workers_) n += w->done ? 0 : 1;
  return n;
}

bool Tracker::wait_idle(std::chrono::milliseconds timeout) const {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, timeout, [this] {
    for (const auto& [id, w] : workers_) {
      if (!w->done) return false;
    }
    return true;
  });
}

bool Tracker::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lk(mu_);
  return !cv_.wait_for(lk, d, [this] { return stopping_.load(); });
}

// ------------------------------------------------------------------ finalisation

namespace {
void observe_finalised(const store::ProposalRecord& p, const char* status) {
  try {
    const double secs =
        std::chrono::duration<double>(std::chrono::system_clock::now() - core::parse_rfc3339(p.created_at)).count();
    duration_histogram().observe(std::max(0.0, secs), {{"status", status}});
  } catch (const std::exception&) {
  }
  proposals_counter().inc({{"outcome", status}});
}
}  // namespace

std::optional<std::string> Tracker::thread_of(const std::string& proposal_id) {
  soci::session sql(db_.pool());
  auto p = store::proposals::find(sql, proposal_id);
  if (!p) return std::nullopt;
  return p->thread_id;
}

FinaliseResult Tracker::finalise(const std::string& proposal_id, const nlohmann::json& generated_files) {
  domain::FileMap files;
  try {
    files = domain::files_from_json(generated_files.is_null() ? nlohmann::json::object() : generated_files,
                                    "generated_files", core::now_rfc3339());
  } catch (const domain::Error& e) {
    return finalise_failed(proposal_id, std::string("The refinement engine produced files the orchestrator cannot "
                                                    "store: ") + e.what());
  }
  const auto thread = thread_of(proposal_id);
  if (!thread) return FinaliseResult::missing;
  const auto r = proposals_.finalise(*thread, files);
  if (!r.changed) return FinaliseResult::already_final;
  observe_finalised(r.proposal, "completed");
  core::log::info("proposal completed", {{"proposal_id", proposal_id}, {"thread_id", *thread},
                                         {"files", static_cast<int>(files.size())}});
  return FinaliseResult::applied;
}

FinaliseResult Tracker::finalise_failed(const std::string& proposal_id, const std::string& error) {
  const auto thread = thread_of(proposal_id);
  if (!thread) return FinaliseResult::missing;
  const auto r = proposals_.finalise_failed(*thread, error);
  if (!r.changed) return FinaliseResult::already_final;
  observe_finalised(r.proposal, "failed");
  core::log::warn("proposal failed", {{"proposal_id", proposal_id}, {"thread_id", *thread}, {"error", error}});
  return FinaliseResult::applied;
}

// ------------------------------------------------------------------ worker

void Tracker::run_worker(const std::string& proposal_id, const std::string& thread_id) {
  const std::string& owner = options_.instance_id;
  {
    if (!proposals_.try_acquire_lease(proposal_id, owner, lease_seconds())) {
      core::log::debug("proposal not tracked here: lease held elsewhere or no longer processing",
                       {{"proposal_id", proposal_id}});
      return;
    }
  }
  core::log::info("tracking proposal", {{"proposal_id", proposal_id}, {"thread_id", thread_id}, {"owner", owner}});

  long long last_seq = 0;                        // last seq seen (engine's, or our own count)
  std::optional<nlohmann::json> last_files;      // data.files of the last on_state_update carrying them
  std::optional<std::string> last_error;         // data.error of the last `error` event
  int failures = 0;                              // consecutive reconnect failures
  bool finished = false;
  bool lease_lost = false;
  auto next_renew = Clock::now() + options_.lease_ttl / 3;

  auto renew = [&]() -> bool {
    if (Clock::now() < next_renew) return true;
    next_renew = Clock::now() + options_.lease_ttl / 3;
    if (!proposals_.renew_lease(proposal_id, owner, lease_seconds())) {
      lease_lost = true;
      return false;
    }
    return true;
  };

  // Finalises from an engine state document; returns true when the state was terminal.
  auto finish_from_state = [&](const nlohmann::json& state) -> bool {
    const std::string status = state.value("status", std::string());
    if (!is_terminal(status)) return false;
    if (status == "completed") {
      nlohmann::json files = nlohmann::json::object();
      if (state.contains("generated_files") && state["generated_files"].is_object()) files = state["generated_files"];
      else if (last_files) files = *last_files;
      finalise(proposal_id, files);
    } else {
      std::optional<std::string> err;
      if (state.contains("error")) err = error_text(state["error"]);
      if (!err) err = last_error;
      finalise_failed(proposal_id, failure_sentence(status, err));
    }
    return true;
  };

  // GET state fallback: true if the proposal was finalised (terminal state or unknown thread).
  // Throws EngineUnavailable when the engine cannot be reached.
  auto check_state = [&]() -> bool {
    auto state = engine_.get_state(thread_id);
    if (!state) {
      finalise_failed(proposal_id, "The refinement engine no longer knows run " + thread_id +
                                       " (it was deleted or lost), so no result can be collected.");
      return true;
    }
    return finish_from_state(*state);
  };

  // Handles `end`: decides completed/failed from data.status (state when absent).
  auto on_end = [&](const nlohmann::json& data) {
    std::string status = data.is_object() ? data.value("status", std::string()) : std::string();
    std::optional<nlohmann::json> state;
    if (status.empty() || (status == "completed" && !last_files) || (status != "completed" && !data.contains("error"))) {
      try {
        state = engine_.get_state(thread_id);
      } catch (const std::exception& e) {
        core::log::warn("engine state unavailable at end of stream",
                        {{"proposal_id", proposal_id}, {"error", e.what()}});
      }
    }
    if (status.empty()) {
      // Streams from the original engine end with `{}`: the state (when known) decides;
      // else an `error` event before `end` means failure, otherwise success.
      const std::string s = state ? state->value("status", std::string()) : std::string();
      status = is_terminal(s) ? s : (last_error ? "failed" : "completed");
    }
    if (status == "completed") {
      nlohmann::json files = nlohmann::json::object();
      if (last_files) files = *last_files;
      else if (state && state->contains("generated_files") && (*state)["generated_files"].is_object())
        files = (*state)["generated_files"];
      finalise(proposal_id, files);
    } else {
      std::optional<std::string> err;
      if (data.is_object() && data.contains("error")) err = error_text(data["error"]);
      // The run's final error (end, then state) beats earlier, possibly recovered, error events.
      if (!err && state && state->contains("error")) err = error_text((*state)["error"]);
      if (!err) err = last_error;
      finalise_failed(proposal_id, failure_sentence(status, err));
    }
  };

  while (!finished && !stopping_ && !lease_lost) {
    if (!renew()) break;
    std::unique_ptr<core::http::WsClient> ws;
    try {
      ws = engine_.open_stream(thread_id, last_seq);
    } catch (const EngineRejected& e) {
      core::log::warn("engine refused the stream; checking state",
                      {{"proposal_id", proposal_id}, {"status", e.status()}, {"error", e.what()}});
    } catch (const EngineUnavailable& e) {
      core::log::warn("engine stream unavailable", {{"proposal_id", proposal_id}, {"error", e.what()}});
    }

    if (ws) {
      auto last_message = Clock::now();
      bool broken = false;
      while (!stopping_ && !finished) {
        if (!renew()) break;
        std::optional<std::string> msg;
        try {
          msg = ws->read(options_.poll_interval);
        } catch (const core::http::ClientError& e) {
          if (e.kind() == core::http::ClientErrorKind::timeout) {
            if (Clock::now() - last_message < options_.read_timeout) continue;
            // Silent for read_timeout: the run may have ended without us hearing `end`.
            last_message = Clock::now();
            try {
              if (check_state()) finished = true;
            } catch (const std::exception& se) {
              core::log::warn("engine state unavailable while stream is idle",
                              {{"proposal_id", proposal_id}, {"error", se.what()}});
              broken = true;
              break;
            }
            continue;
          }
          core::log::warn("engine stream broke", {{"proposal_id", proposal_id}, {"error", e.what()}});
          broken = true;
          break;
        }
        if (!msg) {  // normal close without `end`
          broken = true;
          break;
        }
        last_message = Clock::now();
        nlohmann::json ev;
        try {
          ev = core::json::parse(*msg, core::json::kInternalLimits);
        } catch (const std::exception&) {
          core::log::warn("ignoring unreadable engine event", {{"proposal_id", proposal_id}});
          ++last_seq;
          continue;
        }
        if (!ev.is_object()) { ++last_seq; continue; }
        if (ev.contains("seq") && ev["seq"].is_number_integer()) {
          const long long s = ev["seq"].get<long long>();
          if (s <= last_seq) continue;  // replayed duplicate
          last_seq = s;
        } else {
          ++last_seq;  // engines without seq (recorded Python streams): position in the stream
        }
        failures = 0;
        if (options_.on_event) {
          try {
            options_.on_event(proposal_id, ev);
          } catch (...) {
          }
        }
        const std::string type = ev.value("event_type", std::string());
        const nlohmann::json data = ev.contains("data") ? ev["data"] : nlohmann::json::object();
        if (type == "on_state_update") {
          if (data.is_object() && data.contains("files") && data["files"].is_object()) last_files = data["files"];
        } else if (type == "error") {
          last_error = data.is_object() && data.contains("error") ? error_text(data["error"]) : error_text(data);
          core::log::warn("engine reported an error during the run",
                          {{"proposal_id", proposal_id}, {"error", last_error.value_or("")}});
        } else if (type == "end") {
          on_end(data);
          finished = true;
        }
      }
      ws->close();
      if (finished || stopping_ || lease_lost) break;
      if (!broken) continue;
    }

    // Stream could not be opened or broke: fall back to GET state, then reconnect with backoff.
    try {
      if (check_state()) {
        finished = true;
        break;
      }
      // The engine answers and the run is still going: reconnect promptly.
      failures = std::min(failures, 1);
    } catch (const EngineUnavailable& e) {
      ++failures;
      core::log::warn("engine unreachable while tracking", {{"proposal_id", proposal_id},
                                                            {"attempt", failures}, {"error", e.what()}});
    } catch (const EngineRejected& e) {
      ++failures;
      core::log::warn("engine rejected the state request", {{"proposal_id", proposal_id}, {"error", e.what()}});
    }
    if (failures >= options_.reconnect_attempts) {
      finalise_failed(proposal_id,
                      "The refinement engine stopped responding while the run was in progress (" +
                          std::to_string(failures) + " reconnection attempts failed); start the refinement again.");
      finished = true;
      break;
    }
    core::RetryPolicy backoff{options_.reconnect_attempts, options_.reconnect_base_delay, options_.reconnect_max_delay};
    // Floor of base_delay/2 so an engine that keeps closing streams early is not hammered.
    const auto delay = std::max(backoff.delay_for(std::max(0, failures - 1)), options_.reconnect_base_delay / 2);
    if (!sleep_for(delay)) break;
  }

  if (lease_lost) {
    core::log::info("stopped tracking: lease lost or proposal no longer processing", {{"proposal_id", proposal_id}});
  }
  try {
    proposals_.release_lease(proposal_id, owner);
  } catch (const std::exception& e) {
    core::log::warn("could not release proposal lease", {{"proposal_id", proposal_id}, {"error", e.what()}});
  }
}

// ------------------------------------------------------------------ sweeper

void Tracker::sweeper_loop() {
  while (!stopping_) {
    try {
      sweep_once();
    } catch (const std::exception& e) {
      core::log::error("proposal sweep failed", {{"error", e.what()}});
    }
    if (!sleep_for(options_.sweep_interval)) break;
  }
}

void Tracker::sweep_once() {
  // 1. Orphans: processing longer than orphan_ttl -> failed, engine thread scheduled for deletion.
  const auto ttl = std::chrono::ceil<std::chrono::seconds>(options_.orphan_ttl);
  for (const auto& thread : proposals_.fail_stale(ttl)) {
    proposals_counter().inc({{"outcome", "expired"}});
    core::log::warn("orphaned proposal failed", {{"thread_id", thread}, {"ttl_seconds", ttl.count()}});
  }

  // 1b. Proposals left failed (nobody rejected them) keep their engine thread for orphan_ttl,
  //     then it is scheduled for deletion like a decided proposal's.
  for (const auto& thread : proposals_.schedule_failed_cleanup(ttl, options_.cleanup_batch)) {
    core::log::info("failed proposal's engine thread scheduled for deletion",
                    {{"thread_id", thread}, {"ttl_seconds", ttl.count()}});
  }

  // 2. Engine cleanup for resolved proposals, retried every sweep until the engine confirms.
  for (const auto& item : proposals_.list_pending_cleanup(options_.cleanup_batch)) {
    if (stopping_) return;
    try {
      if (engine_.delete_thread(item.thread_id)) {
        proposals_.mark_cleaned(item.proposal_id);
        core::log::info("engine thread deleted", {{"proposal_id", item.proposal_id}, {"thread_id", item.thread_id}});
      }
    } catch (const EngineUnavailable& e) {
      core::log::warn("engine thread cleanup postponed", {{"proposal_id", item.proposal_id}, {"error", e.what()}});
      break;  // engine down: try again next sweep
    } catch (const EngineRejected& e) {
      core::log::warn("engine refused thread deletion; will retry",
                      {{"proposal_id", item.proposal_id}, {"error", e.what()}});
    }
  }

  // 3. Resume processing proposals nobody tracks (lease free or expired, e.g. a crashed replica).
  std::vector<std::pair<std::string, std::string>> resume;
  {
    const std::string now = core::now_rfc3339();
    for (const auto& p : proposals_.list_processing()) {
      const bool free = !p.lease_owner || *p.lease_owner == options_.instance_id || !p.lease_expires_at ||
                        *p.lease_expires_at < now;
      if (free) resume.emplace_back(p.id, p.thread_id);  // track() is a no-op if a local worker runs
    }
  }
  for (const auto& [id, thread] : resume) track(id, thread);
}

}  // namespace orchestrator::tracker
