// Lease keeper: renew, fence out lost runs, claim expired threads.
#include "spec_engine/bus/lease_keeper.hpp"

#include <set>

#include "core/log.hpp"
#include "core/metrics.hpp"

namespace spec_engine::bus {

namespace {

core::metrics::Counter& claims_total() {
  return core::metrics::global().counter("spec_engine_thread_claims_total",
                                         "Threads claimed from a replica whose lease expired");
}
core::metrics::Counter& lost_total() {
  return core::metrics::global().counter("spec_engine_leases_lost_total",
                                         "Local runs stopped because this replica no longer owns their thread");
}
core::metrics::Gauge& owned_gauge() {
  return core::metrics::global().gauge("spec_engine_owned_threads", "Queued/running threads this replica owns");
}

}  // namespace

LeaseKeeper::LeaseKeeper(store::Store& store, LeaseOptions options, LeaseHooks hooks)
    : store_(store), options_(std::move(options)), hooks_(std::move(hooks)),
      last_ok_(std::chrono::steady_clock::now()) {
  claims_total();
  lost_total();
  owned_gauge();
}

LeaseKeeper::~LeaseKeeper() { stop(false); }

void LeaseKeeper::start() {
  std::lock_guard lk(mu_);
  if (thread_.joinable() || stopping_) return;
  last_ok_ = std::chrono::steady_clock::now();
  thread_ = std::thread([this] { loop(); });
}

void LeaseKeeper::stop(bool release) {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (release) {
    try {
      const int n = store_.release_leases(options_.replica_id);
      core::log::info("leases released", {{"replica_id", options_.replica_id}, {"threads", n}});
    } catch (const std::exception& e) {
      core::log::warn("leases not released; they expire by themselves",
                      {{"replica_id", options_.replica_id}, {"error", e.what()}});
    }
  }
}

void LeaseKeeper::poke() {
  {
    std::lock_guard lk(mu_);
    poked_ = true;
  }
  cv_.notify_all();
}

std::string LeaseKeeper::health() const {
  std::lock_guard lk(mu_);
  if (last_error_.empty()) return "ok";
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - last_ok_);
  return "renewal failing for " + std::to_string(ms.count()) + " ms: " + last_error_;
}

bool LeaseKeeper::finished_here(const std::string& thread_id, std::int64_t epoch) const {
  try {
    const auto t = store_.get_thread(thread_id);
    return t && t->owner == options_.replica_id && t->epoch == epoch && t->status != "queued" &&
           t->status != "running";
  } catch (const std::exception&) {
    return false;  // unknown: treated as lost, which stops a run that may be writing elsewhere
  }
}

bool LeaseKeeper::tick() {
  // Snapshot the local runs BEFORE renewing: every one of them existed (owned) when the renewal
  // ran, so a run missing from the renewed set has really lost its thread.
  const auto local = hooks_.local ? hooks_.local() : std::map<std::string, std::int64_t>{};
  std::erase_if(reported_lost_, [&local](const auto& run) {
    const auto it = local.find(run.first);
    return it == local.end() || it->second != run.second;
  });
  // Reports a local run lost once; a run that takes a while to stop is not reported again.
  const auto report_lost = [this](const std::string& id, std::int64_t epoch, const std::string& why) {
    if (!reported_lost_.emplace(id, epoch).second) return false;
    lost_total().inc();
    if (hooks_.lost) hooks_.lost(id, epoch, why);
    return true;
  };
  std::map<std::string, std::int64_t> owned;
  try {
    owned = store_.renew_leases(options_.replica_id, options_.ttl);
  } catch (const std::exception& e) {
    std::chrono::steady_clock::time_point since;
    {
      std::lock_guard lk(mu_);
      if (last_error_.empty()) core::log::warn("lease renewal failed", {{"error", e.what()}});
      last_error_ = e.what();
      since = last_ok_;
    }
    if (!options_.exclusive && std::chrono::steady_clock::now() - since >= options_.ttl) {
      // Our leases may have expired: another replica may be running these threads now.
      for (const auto& [id, epoch] : local) report_lost(id, epoch, "lease not renewed for a whole TTL");
    }
    return false;
  }
  {
    std::lock_guard lk(mu_);
    if (!last_error_.empty()) core::log::info("lease renewal works again");
    last_error_.clear();
    last_ok_ = std::chrono::steady_clock::now();
  }
  owned_gauge().set(static_cast<double>(owned.size()));
  for (const auto& [id, epoch] : local) {
    auto it = owned.find(id);
    if (it != owned.end() && it->second == epoch) continue;
    if (it == owned.end() && finished_here(id, epoch)) continue;
    if (!report_lost(id, epoch, it == owned.end() ? "thread deleted or finished" : "claimed by another replica")) {
      continue;
    }
    core::log::warn("thread no longer owned by this replica; stopping its run",
                    {{"thread_id", id}, {"epoch", epoch}, {"replica_id", options_.replica_id},
                     {"now_epoch", it == owned.end() ? nlohmann::json(nullptr) : nlohmann::json(it->second)}});
  }
  // Owned here in the database but run nowhere here (a run that crashed while the database was
  // down): seen in two rounds in a row, it is given up so that a claim resumes it.
  std::set<std::string> strays;
  for (const auto& [id, epoch] : owned) {
    if (local.count(id)) continue;
    if (strays_.count(id)) {
      core::log::warn("owned thread not running here; giving it up", {{"thread_id", id}, {"epoch", epoch}});
      try {
        store_.disown(id, epoch);
      } catch (const std::exception& e) {
        core::log::warn("giving up a thread failed", {{"thread_id", id}, {"error", e.what()}});
      }
    } else {
      strays.insert(id);
    }
  }
  strays_ = std::move(strays);
  const std::size_t room = hooks_.capacity ? hooks_.capacity() : 0;
  if (room == 0) return true;
  try {
    for (const auto& c : store_.claim_expired(options_.replica_id, options_.ttl, room)) {
      claims_total().inc();
      core::log::info("thread claimed", {{"thread_id", c.thread_id}, {"epoch", c.epoch},
                                         {"previous_owner", c.previous_owner}, {"previous_status", c.previous_status},
                                         {"recoveries", c.recoveries}, {"replica_id", options_.replica_id}});
      if (hooks_.claimed) hooks_.claimed(c);
    }
  } catch (const std::exception& e) {
    core::log::warn("claiming expired threads failed", {{"error", e.what()}});
    return false;
  }
  return true;
}

void LeaseKeeper::loop() {
  for (;;) {
    try {
      tick();
    } catch (const std::exception& e) {
      core::log::error("lease keeper round failed", {{"error", e.what()}});
    }
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, options_.renew, [&] { return stopping_ || poked_; });
    poked_ = false;
    if (stopping_) return;
  }
}

}  // namespace spec_engine::bus
