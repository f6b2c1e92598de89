#pragma once
// Small shared helpers: ids, clocks, RFC 3339 timestamps.

#include <chrono>
#include <string>
#include <string_view>

namespace core {

/// Random UUID version 4 (RFC 9562 §5.4), lower-case text.
std::string uuid4();
/// True if `s` is a UUID in 8-4-4-4-12 hex form (any version).
bool is_uuid(const std::string& s);
/// Current UTC time as RFC 3339 with microseconds, e.g. "2026-11-29T11:32:28.123456Z".
std::string now_rfc3339();
/// Formats a time point as RFC 3339 UTC with microseconds.
std::string to_rfc3339(std::chrono::system_clock::time_point tp);
/// Parses RFC 3339 ("...Z" or "+hh:mm" offsets, optional fraction). Throws std::invalid_argument
/// for other text and for times system_clock cannot hold (before 1677-09-22 or after 2262-04-11).
std::chrono::system_clock::time_point parse_rfc3339(const std::string& s);
/// `n` random bytes as lower-case hex (libsodium randombytes).
std::string random_hex(std::size_t n);
/// Length (1-4) of the well-formed UTF-8 sequence that starts at s[i], or 0 when the
/// bytes there are not one (RFC 3629 §4: no overlong forms, no surrogates, nothing above
/// U+10FFFF, no truncated sequence). `i` must be < s.size().
std::size_t utf8_sequence_length(std::string_view s, std::size_t i);
/// Valid UTF-8 of at most `max_bytes` bytes made from `s`: the longest prefix that
/// ends on a character boundary (a multi-byte character is never cut), with every
/// byte that is not part of a well-formed UTF-8 sequence (stray continuation bytes,
/// truncated or overlong sequences, surrogates, code points above U+10FFFF) replaced
/// by U+FFFD. Use it wherever text is cut to a size before it is stored or dumped as
/// JSON (nlohmann::json::dump throws on invalid UTF-8; PostgreSQL rejects it).
std::string utf8_truncate(std::string_view s, std::size_t max_bytes);
/// True if `s` is well-formed UTF-8 (RFC 3629 §4: no overlong forms, surrogates or code
/// points above U+10FFFF).
bool is_valid_utf8(std::string_view s);

/// Raises this process's soft RLIMIT_NOFILE (open file descriptors) to its hard limit, so a
/// service holding thousands of sockets is bounded by the administrator's limit rather than the
/// usual default soft limit of 1024. Returns the soft limit in effect afterwards (0 if unknown).
/// Never throws.
std::size_t raise_fd_limit() noexcept;

/// Names the calling thread (Linux: at most 15 bytes are kept, the rest is cut), as `top -H`,
/// `ps -L`, perf and /proc/<pid>/task/<tid>/comm show it. The services name their threads by
/// role: http-io, http-handler (the HTTP server's I/O threads and handler pool), rt-io,
/// rt-blocking (core::async::Runtime's), event-writer (the engine's group commit); the load
/// benchmark sums CPU by these names. Failure is ignored (a name is a diagnostic aid).
void name_this_thread(const char* name);

/// name_this_thread(name) once per thread: for pool threads that are not created by us (Asio's
/// thread_pool), called at the start of every job; later calls on a named thread do nothing.
void name_this_thread_once(const char* name);

}  // namespace core
