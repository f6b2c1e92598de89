#include "core/resilience.hpp"

#include <algorithm>

#include <sodium.h>

namespace core {

std::chrono::milliseconds RetryPolicy::delay_for(int retry) const {
  const int shift = std::clamp(retry, 0, 30);
  const auto cap = std::min<long long>(max_delay.count(), base_delay.count() * (1LL << std::min(shift, 20)));
  if (cap <= 0) return std::chrono::milliseconds{0};
  if (sodium_init() < 0) return std::chrono::milliseconds{cap};
  // Full jitter (uniform in [0, cap]).
  return std::chrono::milliseconds{static_cast<long long>(randombytes_uniform(static_cast<uint32_t>(cap) + 1))};
}

CircuitBreaker::CircuitBreaker(Options o) : opt_(o) {}

void CircuitBreaker::maybe_half_open_locked() {
  if (state_ == State::open && std::chrono::steady_clock::now() - opened_at_ >= opt_.open_duration) {
    state_ = State::half_open;
    trials_in_flight_ = 0;
    trial_successes_ = 0;
  }
}

bool CircuitBreaker::allow() {
  std::lock_guard lk(mu_);
  maybe_half_open_locked();
  switch (state_) {
    case State::closed:
      return true;
    case State::open:
      return false;
    case State::half_open:
      if (trials_in_flight_ + trial_successes_ >= opt_.half_open_trials) return false;
      ++trials_in_flight_;
      return true;
  }
  return false;
}

void CircuitBreaker::record_success() {
  std::lock_guard lk(mu_);
  consecutive_failures_ = 0;
  if (state_ == State::half_open) {
    if (trials_in_flight_ > 0) --trials_in_flight_;
    if (++trial_successes_ >= opt_.half_open_trials) state_ = State::closed;
  }
}

void CircuitBreaker::record_failure() {
  std::lock_guard lk(mu_);
  ++consecutive_failures_;
  if (state_ == State::half_open || (state_ == State::closed && consecutive_failures_ > opt_.failure_threshold)) {
    state_ = State::open;
    opened_at_ = std::chrono::steady_clock::now();
    trials_in_flight_ = 0;
    trial_successes_ = 0;
  }
}

void CircuitBreaker::record_ignored() {
  std::lock_guard lk(mu_);
  if (state_ == State::half_open && trials_in_flight_ > 0) --trials_in_flight_;
}

CircuitBreaker::State CircuitBreaker::state() const {
  std::lock_guard lk(mu_);
  const_cast<CircuitBreaker*>(this)->maybe_half_open_locked();
  return state_;
}

std::chrono::milliseconds CircuitBreaker::retry_after() const {
  std::lock_guard lk(mu_);
  if (state_ != State::open) return std::chrono::milliseconds{0};
  const auto left = opt_.open_duration - std::chrono::duration_cast<std::chrono::milliseconds>(
                                             std::chrono::steady_clock::now() - opened_at_);
  return std::max(left, std::chrono::milliseconds{0});
}

const char* CircuitBreaker::name(State s) {
  switch (s) {
    case State::closed: return "closed";
    case State::open: return "open";
    case State::half_open: return "half_open";
  }
  return "unknown";
}

}  // namespace core
