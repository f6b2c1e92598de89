#pragma once
// A counting semaphore for coroutines: waiting for a permit holds no thread. Used to bound how
// many calls of one kind are in flight (e.g. engine invokes per orchestrator) when the callers
// are coroutines that would otherwise all go at once.

#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <stop_token>

#include "core/async.hpp"

namespace core::async {

class Semaphore;

/// One permit of a Semaphore; released when destroyed (move-only; an empty Permit releases nothing).
class Permit {
 public:
  Permit() = default;
  explicit Permit(Semaphore* owner) : owner_(owner) {}
  Permit(Permit&& o) noexcept : owner_(o.owner_) { o.owner_ = nullptr; }
  Permit& operator=(Permit&& o) noexcept;
  Permit(const Permit&) = delete;
  Permit& operator=(const Permit&) = delete;
  ~Permit();
  /// Releases the permit now (idempotent).
  void release() noexcept;
  /// True while it holds a permit (false for an empty one, e.g. from a stopped acquire()).
  explicit operator bool() const { return owner_ != nullptr; }

 private:
  Semaphore* owner_ = nullptr;
};

/// `permits` permits handed out first come, first served. Thread-safe; waiters may be on any
/// executor. A waiter destroyed before it got its permit (its runtime stopped) gives nothing up
/// and loses nothing; one destroyed after its permit was handed over passes it on. The
/// semaphore must outlive its permits and waiters.
class Semaphore {
 public:
  /// `permits` >= 1 (0 is taken as 1).
  explicit Semaphore(std::size_t permits);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  /// Waits on the calling coroutine's executor until a permit is free and returns it. Returns an
  /// empty Permit when `stop` is requested first.
  Task<Permit> acquire(std::stop_token stop = {});
  /// Permits free now.
  std::size_t available() const;
  /// Coroutines waiting for a permit now.
  std::size_t waiting() const;

 private:
  friend class Permit;
  struct Waiter;
  void release() noexcept;

  mutable std::mutex mu_;
  std::size_t free_;
  std::deque<std::shared_ptr<Waiter>> waiters_;
};

}  // namespace core::async
