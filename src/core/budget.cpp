#include "core/budget.hpp"

#include <algorithm>

namespace core {

const char* budget_stop_name(BudgetStop s) {
  switch (s) {
    case BudgetStop::none:
      return "none";
    case BudgetStop::deadline:
      return "deadline";
    case BudgetStop::cancelled:
      return "cancelled";
  }
  return "none";
}

Budget::Budget(std::chrono::milliseconds limit, CancelFn cancelled, Clock::time_point not_after, std::size_t stride)
    : cancelled_(std::move(cancelled)), limit_ms_(limit.count()), stride_(std::max<std::size_t>(stride, 1)) {
  const auto now = Clock::now();
  // now + limit overflows only for absurd limits; clamp to "no deadline" then.
  const auto room = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::time_point::max() - now);
  deadline_ = limit >= room ? Clock::time_point::max() : now + limit;
  deadline_ = std::min(deadline_, not_after);
}

bool Budget::check_now() {
  if (stop_ != BudgetStop::none) return true;
  ++checks_;
  checked_once_ = true;
  since_check_ = 0;
  if (cancelled_ && cancelled_()) {
    stop_ = BudgetStop::cancelled;
  } else if (deadline_ != Clock::time_point::max() && Clock::now() >= deadline_) {
    stop_ = BudgetStop::deadline;
  }
  return stop_ != BudgetStop::none;
}

bool Budget::exhausted(std::size_t cost) {
  if (stop_ != BudgetStop::none) return true;
  if (!cancelled_ && deadline_ == Clock::time_point::max()) return false;  // unlimited
  since_check_ += cost;
  if (!checked_once_ || since_check_ >= stride_) return check_now();
  return false;
}

}  // namespace core
