// Token buckets with LRU-bounded memory and the draft-ietf-httpapi-ratelimit-headers items.
#include "core/rate_limit.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <stdexcept>

namespace core::ratelimit {

namespace {

/// Whole seconds for `secs` (>= 0), rounded up, so a client waiting that long is never early.
std::chrono::seconds ceil_seconds(double secs) {
  return std::chrono::seconds(static_cast<long long>(std::ceil(std::max(0.0, secs) - 1e-9)));
}

}  // namespace

TokenBuckets::TokenBuckets(Policy policy, std::size_t max_keys, Clock clock)
    : policy_(std::move(policy)), max_keys_(std::max<std::size_t>(1, max_keys)), clock_(std::move(clock)) {
  const bool name_ok = !policy_.name.empty() && std::all_of(policy_.name.begin(), policy_.name.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-' || c == '_';
  });
  if (!name_ok) throw std::invalid_argument("rate limit name '" + policy_.name + "' must be letters, digits, '-' or '_'");
  if (policy_.quota < 1) throw std::invalid_argument("rate limit '" + policy_.name + "' needs a quota of at least 1");
  if (policy_.window.count() < 1)
    throw std::invalid_argument("rate limit '" + policy_.name + "' needs a window of at least 1 second");
  if (!clock_) clock_ = [] { return std::chrono::steady_clock::now(); };
  rate_ = static_cast<double>(policy_.quota) / static_cast<double>(policy_.window.count());
}

void TokenBuckets::give_back(const std::string& key, int cost) {
  std::lock_guard lk(mu_);
  const auto it = buckets_.find(key);
  if (it == buckets_.end()) return;
  it->second.tokens = std::min<double>(policy_.quota, it->second.tokens + std::max(0, cost));
}

Decision TokenBuckets::take(const std::string& key, int cost) {
  const double quota = policy_.quota;
  const double want = std::max(0, cost);
  std::lock_guard lk(mu_);
  const auto now = clock_();
  auto [it, fresh] = buckets_.try_emplace(key, Bucket{quota, now, {}});
  if (fresh) {
    lru_.push_front(key);
    it->second.lru = lru_.begin();
    while (buckets_.size() > max_keys_) {
      buckets_.erase(lru_.back());
      lru_.pop_back();
    }
  } else {
    lru_.splice(lru_.begin(), lru_, it->second.lru);  // most recently used first
  }
  Bucket& b = it->second;
  if (!fresh && now > b.at) {
    const double dt = std::chrono::duration<double>(now - b.at).count();
    b.tokens = std::min(quota, b.tokens + dt * rate_);
    b.at = now;
  }
  Decision d;
  d.allowed = b.tokens + 1e-9 >= want;
  if (d.allowed) b.tokens = std::max(0.0, b.tokens - want);
  d.remaining = static_cast<long long>(std::floor(b.tokens + 1e-9));
  const double to_next = std::max(0.0, (std::max(1.0, want) - b.tokens) / rate_);
  if (!d.allowed) d.retry_after = std::max(std::chrono::seconds(1), ceil_seconds(to_next));
  d.reset = d.remaining > 0 ? ceil_seconds((quota - b.tokens) / rate_)
                            : std::max(std::chrono::seconds(1), ceil_seconds(to_next));
  return d;
}

std::size_t TokenBuckets::size() const {
  std::lock_guard lk(mu_);
  return buckets_.size();
}

std::string policy_item(const Policy& p) {
  return "\"" + p.name + "\";q=" + std::to_string(p.quota) + ";w=" + std::to_string(p.window.count());
}

std::string concurrency_policy_item(const std::string& name, long long limit) {
  return "\"" + name + "\";q=" + std::to_string(limit) + ";qu=\"concurrent-requests\"";
}

std::string limit_item(const Policy& p, const Decision& d) {
  return "\"" + p.name + "\";r=" + std::to_string(d.remaining) + ";t=" + std::to_string(d.reset.count());
}

}  // namespace core::ratelimit
