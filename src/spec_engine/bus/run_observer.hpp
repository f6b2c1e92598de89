#pragma once
// The RunObserver of one run in the RunManager: numbers the run's events (seq = last stored
// + 1, 2, ...), stores them and its checkpoints in order, and publishes each stored event to
// the EventHub (stored before published). emit() never waits: it queues the write; one
// drain task per run at a time stores the queue on the runtime's blocking pool, so no SQL
// runs on an I/O thread and a run's writes keep their order. checkpoint() completes once
// the checkpoint (and every event before it) is stored.
//
// A write that fails (database error) is remembered: later writes of the run are dropped
// and the next checkpoint() or flush() throws it, which ends the run. A write that only
// found the database pool busy (core::db::PoolTimeout) is retried (retry_while_pool_busy).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/async.hpp"
#include "core/db.hpp"
#include "core/log.hpp"
#include "spec_engine/bus/event_hub.hpp"
#include "spec_engine/runtime/run.hpp"
#include "spec_engine/store/store.hpp"

namespace spec_engine::bus {

/// How often a run's store call is retried when no database session frees up within the
/// pool's bounded wait: the run waits for the database instead of failing. An HTTP request in
/// the same situation is answered 503 instead (core/server).
inline constexpr int kPoolBusyAttempts = 12;

/// Calls `fn` (a store call on a blocking thread), retrying it up to kPoolBusyAttempts times
/// while it throws core::db::PoolTimeout (nothing was written then: no session was leased).
/// Other exceptions, and the last PoolTimeout, propagate. `what` names the call in the log.
template <class F>
auto retry_while_pool_busy(F&& fn, const std::string& thread_id, const char* what) -> decltype(fn()) {
  for (int attempt = 1;; ++attempt) {
    try {
      return fn();
    } catch (const core::db::PoolTimeout& e) {
      if (attempt >= kPoolBusyAttempts) throw;
      core::log::warn("database pool busy; retrying a run's write",
                      {{"thread_id", thread_id}, {"what", what}, {"attempt", attempt}, {"error", e.what()}});
    }
  }
}

/// The store-backed observer of one run. Thread-safe. Lifecycle: construct, hand to
/// runtime::execute, then `co_await flush()` before reading last_seq() or destroying it.
class StoreRunObserver final : public runtime::RunObserver {
 public:
  /// `last_seq`: the thread's highest stored seq (events continue after it). `dropped`: once
  /// true (the thread was deleted), queued and later writes are discarded. The store, hub and
  /// runtime must outlive every flush().
  StoreRunObserver(store::Store& store, EventHub& hub, core::async::Runtime& rt, std::string thread_id,
                   std::int64_t last_seq, std::shared_ptr<const std::atomic<bool>> dropped);
  ~StoreRunObserver() override;
  StoreRunObserver(const StoreRunObserver&) = delete;
  StoreRunObserver& operator=(const StoreRunObserver&) = delete;

  /// Assigns the next seq and queues the event; never blocks, never throws for a store error.
  void emit(const std::string& event_type, const nlohmann::json& data) override;
  /// Queues the checkpoint (taken after the last emitted event) and completes once it is
  /// stored. Throws the error of a failed write of this run.
  core::async::Task<void> checkpoint(const nlohmann::json& state) override;
  /// Completes once everything queued so far is stored (or dropped). Throws the error of a
  /// failed write of this run.
  core::async::Task<void> flush();
  /// The seq of the last emitted event (stored once flush() completed without error).
  std::int64_t last_seq() const;

  struct Queue;

 private:
  std::shared_ptr<Queue> q_;
};

}  // namespace spec_engine::bus
