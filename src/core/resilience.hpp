#pragma once
// Retry with exponential backoff + full jitter, and a circuit breaker
// (docs/orchestrator-api.md#engine-client).

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace core {

/// Exponential backoff policy: attempt n (0-based) waits a random time in
/// [0, min(max_delay, base_delay * 2^n)] ("full jitter").
struct RetryPolicy {
  int max_attempts = 3;                              ///< total attempts including the first
  std::chrono::milliseconds base_delay{200};
  std::chrono::milliseconds max_delay{5000};
  /// Delay before retry number `retry` (0 = before the second attempt).
  std::chrono::milliseconds delay_for(int retry) const;
};

/// Calls `fn` until it succeeds, `is_transient(exception)` says no, or attempts run out;
/// sleeps per `policy` between attempts and rethrows the last exception.
template <class Fn>
auto retry(const RetryPolicy& policy, const std::function<bool(const std::exception&)>& is_transient, Fn&& fn)
    -> decltype(fn()) {
  for (int attempt = 0;; ++attempt) {
    try {
      return fn();
    } catch (const std::exception& e) {
      if (attempt + 1 >= policy.max_attempts || !is_transient(e)) throw;
      std::this_thread::sleep_for(policy.delay_for(attempt));
    }
  }
}

/// Circuit breaker: closed -> open after more than `failure_threshold` consecutive
/// failures; open -> half-open after `open_duration`; half-open admits
/// `half_open_trials` trial calls: all succeeding closes it, any failure reopens it.
class CircuitBreaker {
 public:
  enum class State { closed, open, half_open };
  struct Options {
    int failure_threshold = 5;                 ///< opens when consecutive failures exceed this
    /// how long the breaker stays open before admitting trial calls (half-open); 30 s per docs/orchestrator-api.md#engine-client
    std::chrono::milliseconds open_duration{30000};
    /// trial calls admitted while half-open; this many successes close it (docs/orchestrator-api.md#engine-client)
    int half_open_trials = 3;
  };
  explicit CircuitBreaker(Options o);
  CircuitBreaker() : CircuitBreaker(Options{}) {}
  /// True if a call may proceed now (in half-open, reserves one trial slot).
  bool allow();
  /// Reports a call that succeeded: resets the consecutive-failure count; in half-open,
  /// frees the trial slot and closes the breaker once `half_open_trials` trials have succeeded.
  void record_success();
  /// Reports a failed call: counts a consecutive failure; opens the breaker (restarting the
  /// `open_duration` timer) when the count exceeds `failure_threshold` while closed, or at
  /// once when half-open.
  void record_failure();
  /// Reports a call that never reached the peer (e.g. this process ran out of file descriptors):
  /// counts neither way; in half-open, frees the trial slot allow() reserved.
  void record_ignored();
  /// Current state; an open breaker whose `open_duration` has elapsed is reported (and
  /// becomes) half-open. Thread-safe, never throws.
  State state() const;
  /// Time until an open breaker goes half-open (0 when not open); for Retry-After.
  std::chrono::milliseconds retry_after() const;
  /// Lower-case name of `s` ("closed", "open", "half_open"), e.g. for logs and metrics labels.
  static const char* name(State s);

 private:
  void maybe_half_open_locked();
  Options opt_;
  mutable std::mutex mu_;
  State state_ = State::closed;
  int consecutive_failures_ = 0;
  int trials_in_flight_ = 0;
  int trial_successes_ = 0;
  std::chrono::steady_clock::time_point opened_at_{};
};

}  // namespace core
