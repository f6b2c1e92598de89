#pragma once
// Token-bucket rate limiting keyed by client (a user id, an IP address), and the IETF
// RateLimit / RateLimit-Policy header fields that advertise it
// (draft-ietf-httpapi-ratelimit-headers-11, "RateLimit header fields for HTTP", §3 and §4).
// One component for every request limit of a service: the orchestrator's per-user,
// per-IP, login and refinement limits are all instances of TokenBuckets. No Beast types.

#include <chrono>
#include <cstddef>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace core::ratelimit {

/// A quota policy: a bucket of `quota` tokens per key that refills evenly, `quota` tokens
/// per `window` (so an idle client may burst `quota` requests, a busy one gets
/// quota/window per second). Advertised as the draft's Quota Policy Item
/// `"<name>";q=<quota>;w=<window seconds>` (§3.1).
struct Policy {
  std::string name;                 ///< policy identifier (letters, digits, '-', '_'), e.g. "user"
  int quota = 1;                    ///< bucket capacity in requests (>= 1)
  std::chrono::seconds window{60};  ///< time to refill an empty bucket completely (>= 1 s)
};

/// The outcome of one TokenBuckets::take().
struct Decision {
  bool allowed = true;
  /// Whole tokens left after this request: the draft's available quota `r` (§4.1.1).
  long long remaining = 0;
  /// The draft's effective window `t` (§4.1.2), seconds: when remaining > 0, the time until the
  /// bucket is full again (spending `remaining` evenly over it never empties the bucket);
  /// when remaining == 0, the time until the next token (equal to retry_after when refused,
  /// so Retry-After never points before the end of the window, §6).
  std::chrono::seconds reset{0};
  /// When refused: seconds until one token is available (>= 1), for Retry-After (RFC 9110
  /// §10.2.3). 0 when allowed.
  std::chrono::seconds retry_after{0};
};

/// Token buckets of one policy, one bucket per key. Thread-safe. Memory is bounded: beyond
/// `max_keys` keys the least recently used bucket is evicted (never all at once, so a flood of
/// new keys cannot reset the bucket of a client that keeps sending). A key seen again after
/// eviction starts with a full bucket, as does a key idle for a whole window.
class TokenBuckets {
 public:
  /// Monotonic time source; injectable for tests.
  using Clock = std::function<std::chrono::steady_clock::time_point()>;

  /// `policy.quota` < 1 or `policy.window` < 1 s throw std::invalid_argument (a start-up error).
  /// `max_keys` 0 is treated as 1. An empty `clock` means std::chrono::steady_clock::now.
  TokenBuckets(Policy policy, std::size_t max_keys, Clock clock = {});

  /// Takes `cost` tokens (default 1) for `key` when it has them; otherwise takes nothing.
  Decision take(const std::string& key, int cost = 1);

  /// Returns `cost` tokens (default 1) to `key`'s bucket, never beyond the quota: for a request
  /// that was charged but then refused before it did any work. Nothing when `key` has no bucket.
  void give_back(const std::string& key, int cost = 1);

  /// The policy this instance enforces.
  const Policy& policy() const { return policy_; }
  /// Keys currently tracked (<= max_keys).
  std::size_t size() const;

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point at;  ///< when `tokens` was last computed
    std::list<std::string>::iterator lru;      ///< position in lru_
  };
  Policy policy_;
  double rate_;  ///< tokens per second
  std::size_t max_keys_;
  Clock clock_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
  std::list<std::string> lru_;  ///< keys, most recently used first
};

/// Quota Policy Item of `p` (draft §3.1): `"user";q=600;w=60`.
std::string policy_item(const Policy& p);
/// Quota Policy Item of a concurrency limit (draft §3.1.2 quota unit "concurrent-requests"):
/// `"<name>";q=<limit>;qu="concurrent-requests"`.
std::string concurrency_policy_item(const std::string& name, long long limit);
/// Service Limit Item (draft §4.1): `"user";r=<remaining>;t=<reset seconds>`.
std::string limit_item(const Policy& p, const Decision& d);

}  // namespace core::ratelimit
