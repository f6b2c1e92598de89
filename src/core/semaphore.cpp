// Semaphore for coroutines: see semaphore.hpp.
#include "core/semaphore.hpp"

#include <algorithm>

#include <boost/asio/this_coro.hpp>

namespace core::async {

/// A queued acquire(), all fields under the semaphore's mutex. The Signal lives in acquire()'s
/// frame (its timer belongs to the waiter's executor, which may go away first): `signal` is
/// cleared before the frame ends, and release() notifies only under the mutex.
struct Semaphore::Waiter {
  Signal* signal = nullptr;
  bool granted = false;  ///< release() handed this waiter the permit
  bool gone = false;     ///< the waiter stopped waiting; release() skips it
};

Permit& Permit::operator=(Permit&& o) noexcept {
  if (this != &o) {
    release();
    owner_ = o.owner_;
    o.owner_ = nullptr;
  }
  return *this;
}

Permit::~Permit() { release(); }

void Permit::release() noexcept {
  if (owner_) std::exchange(owner_, nullptr)->release();
}

Semaphore::Semaphore(std::size_t permits) : free_(std::max<std::size_t>(1, permits)) {}

std::size_t Semaphore::available() const {
  std::lock_guard lk(mu_);
  return free_;
}

std::size_t Semaphore::waiting() const {
  std::lock_guard lk(mu_);
  return static_cast<std::size_t>(
      std::count_if(waiters_.begin(), waiters_.end(), [](const auto& w) { return !w->gone && !w->granted; }));
}

void Semaphore::release() noexcept {
  std::lock_guard lk(mu_);
  while (!waiters_.empty()) {
    auto w = std::move(waiters_.front());
    waiters_.pop_front();
    if (w->gone) continue;
    w->granted = true;
    if (w->signal) w->signal->notify();
    return;
  }
  ++free_;
}

Task<Permit> Semaphore::acquire(std::stop_token stop) {
  std::shared_ptr<Waiter> w;
  {
    std::lock_guard lk(mu_);
    if (free_ > 0 && waiters_.empty()) {
      --free_;
      co_return Permit(this);
    }
  }
  Signal signal(co_await boost::asio::this_coro::executor);
  w = std::make_shared<Waiter>();
  w->signal = &signal;
  {
    std::lock_guard lk(mu_);
    if (free_ > 0 && waiters_.empty()) {  // released while the waiter was being made
      --free_;
      co_return Permit(this);
    }
    waiters_.push_back(w);
  }
  // However this frame ends (a permit taken, stop requested, or destroyed while suspended), a
  // permit handed to it is either returned as a Permit or passed on, never lost.
  struct Leave {
    Semaphore& sem;
    std::shared_ptr<Waiter> w;
    bool taken = false;
    ~Leave() {
      if (taken) return;
      bool pass_on = false;
      {
        std::lock_guard lk(sem.mu_);
        w->gone = true;
        w->signal = nullptr;
        pass_on = w->granted;
      }
      if (pass_on) sem.release();
    }
  } leave{*this, w};
  for (;;) {
    {
      std::lock_guard lk(mu_);
      if (w->granted) {
        leave.taken = true;
        w->signal = nullptr;
        co_return Permit(this);
      }
    }
    Task<bool> woken = signal.wait(stop);
    if (!co_await std::move(woken)) co_return Permit();  // ~Leave passes on a late grant
  }
}

}  // namespace core::async
