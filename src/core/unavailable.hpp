#pragma once
// "Try again later" errors: a local resource is exhausted for the moment (no database session
// free within the pool's bounded wait, ...). The request may succeed if repeated, so an HTTP
// server answers 503 Service Unavailable with Retry-After (RFC 9110 §15.6.4, §10.2.3) instead
// of 500 (core/server.cpp does so for every handler).

#include <chrono>
#include <stdexcept>
#include <string>

namespace core {

/// A temporary lack of capacity; `retry_after` is the advised wait before repeating the request.
class Unavailable : public std::runtime_error {
 public:
  explicit Unavailable(const std::string& what, std::chrono::seconds retry_after = std::chrono::seconds(1))
      : std::runtime_error(what), retry_after_(retry_after) {}
  /// Advised wait before a retry (whole seconds, for the Retry-After header).
  std::chrono::seconds retry_after() const { return retry_after_; }

 private:
  std::chrono::seconds retry_after_;
};

}  // namespace core
