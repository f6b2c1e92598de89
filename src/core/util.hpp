#pragma once
// Small shared helpers: ids, clocks, RFC 3339 timestamps.

#include <chrono>
#include <string>

namespace core {

/// Random UUID version 4 (RFC 9562 §5.4), lower-case text.
std::string uuid4();
/// True if `s` is a UUID in 8-4-4-4-12 hex form (any version).
bool is_uuid(const std::string& s);
/// Current UTC time as RFC 3339 with microseconds, e.g. "2026-11-29T11:32:28.123456Z".
std::string now_rfc3339();
/// Formats a time point as RFC 3339 UTC with microseconds.
std::string to_rfc3339(std::chrono::system_clock::time_point tp);
/// Parses RFC 3339 ("...Z" or "+hh:mm" offsets, optional fraction). Throws std::invalid_argument.
std::chrono::system_clock::time_point parse_rfc3339(const std::string& s);
/// `n` random bytes as lower-case hex (libsodium randombytes).
std::string random_hex(std::size_t n);

}  // namespace core
