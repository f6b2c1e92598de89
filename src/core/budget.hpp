#pragma once
// A cooperative time budget and cancellation token for one bounded piece of work
// (e.g. one tool call of an agent run): a deadline plus a cancel predicate, polled by
// the work itself inside its loops. Nothing is interrupted from outside; the work
// sees `exhausted()` turn true, stops, and reports why (stop()).
//
// The shape follows Go's context.Context (a deadline plus cancellation, checked by
// the callee) and C++20's std::stop_token (a cooperative stop request); unlike
// std::stop_token it carries a deadline and is not tied to std::jthread, so the
// same token works whether the work runs on the caller's thread or on a pool.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace core {

/// Why a Budget told its work to stop.
enum class BudgetStop : std::uint8_t {
  none,       ///< not stopped (yet)
  deadline,   ///< the deadline passed
  cancelled,  ///< the cancel predicate returned true
};

/// Lower-case name of `s`: "none", "deadline", "cancelled" (for logs and metrics labels).
const char* budget_stop_name(BudgetStop s);

/// A deadline plus a cancel predicate, polled cooperatively.
///
/// Usage: the work calls `exhausted(cost)` once per loop iteration with a rough
/// count of the work done since the last call (bytes scanned, matcher steps, items
/// visited). The first call and then every `stride` units of cost read the clock and
/// the cancel predicate; other calls only add to a counter, so polling in hot
/// loops is cheap. Once stopped, a Budget stays stopped.
///
/// Thread-safety: one Budget is polled by one thread at a time (it may be handed
/// to another thread between polls); the cancel predicate may be called from
/// whichever thread polls, so it must be thread-safe (typically it reads atomics).
class Budget {
 public:
  using Clock = std::chrono::steady_clock;
  /// Returns true once the work should stop. Must be cheap and thread-safe.
  using CancelFn = std::function<bool()>;
  /// Default polling stride in cost units (a unit is about one byte or one step;
  /// 64 Ki units is tens of microseconds of scanning).
  static constexpr std::size_t kDefaultStride = 64 * 1024;

  /// An unlimited budget: no deadline, never cancelled (exhausted() is always false).
  Budget() = default;
  /// A budget of `limit` from now, ending earlier at `not_after` when that comes
  /// first (e.g. the deadline of the whole run), and whenever `cancelled` returns
  /// true. `limit` is kept for messages (limit_ms()). A zero or negative `limit` is
  /// already exhausted at the first poll.
  Budget(std::chrono::milliseconds limit, CancelFn cancelled = {},
         Clock::time_point not_after = Clock::time_point::max(), std::size_t stride = kDefaultStride);

  /// Accounts `cost` units of work and returns true when the work must stop. Reads
  /// the clock and the cancel predicate on the first call and then once every
  /// `stride` units; returns the cached answer in between.
  bool exhausted(std::size_t cost = 1);
  /// Reads the clock and the cancel predicate now (ignores the stride).
  bool check_now();
  /// Why the work was told to stop (none while it may continue). Cancellation wins
  /// over the deadline when both hold at the same check.
  BudgetStop stop() const { return stop_; }
  /// The length of the budget as given to the constructor, in milliseconds (0 when unlimited).
  std::int64_t limit_ms() const { return limit_ms_; }
  /// The effective deadline: min(construction time + limit, not_after); max() when unlimited.
  Clock::time_point deadline() const { return deadline_; }
  /// How many times the clock and predicate were actually read (for tests and metrics).
  std::uint64_t checks() const { return checks_; }

 private:
  Clock::time_point deadline_ = Clock::time_point::max();
  CancelFn cancelled_;
  std::int64_t limit_ms_ = 0;
  std::size_t stride_ = kDefaultStride;
  std::size_t since_check_ = 0;
  std::uint64_t checks_ = 0;
  bool checked_once_ = false;
  BudgetStop stop_ = BudgetStop::none;
};

}  // namespace core
