#pragma once
// A response written incrementally by a streaming route (Router::add_stream), independent of
// Beast: Server-Sent Events, long downloads, model streams.

#include <stop_token>
#include <string_view>

#include "core/async.hpp"
#include "core/http_types.hpp"

namespace core::http {

/// The response side of one streaming request. On HTTP/1.1 the body is sent with the chunked
/// transfer coding (RFC 9112 §7.1): start() sends the status line and header fields with
/// `Transfer-Encoding: chunked`, each write() one chunk, finish() the last-chunk, after which the
/// connection may serve the next request (keep-alive). An HTTP/1.0 client gets the raw bytes and
/// the end of the body is the end of the connection (RFC 9112 §6.3, rule 8).
///
/// Every write has a deadline (ServerOptions::stream_write_timeout): a client that stops reading
/// fails the write instead of holding the handler. When the client goes away (it closed or reset
/// the connection, a write failed or timed out) or the server stops, stop_token() is triggered,
/// so a handler that waits between writes (sleep_for(d, out.stop_token())) learns it at once.
///
/// Not thread-safe: call it only from the handler coroutine (it runs on the connection's
/// strand). Arguments are only read during the call; pass named locals (GCC 12 destroys
/// non-trivial temporaries inside a co_await expression twice).
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;

  /// Sends the status line and `headers`. Content-Length and Transfer-Encoding given here are
  /// replaced by the server's framing; X-Request-Id is added; the middleware's `after` hook sees
  /// a Response with this status and these headers (and no body). Call once, before write().
  /// False when the client is gone or the write failed or timed out. Throws std::logic_error
  /// when the response was already started.
  virtual async::Task<bool> start(int status, const Headers& headers) = 0;

  /// Sends `data` as one chunk (an empty `data` sends nothing: a zero-length chunk would end the
  /// body). False when the client is gone, the write failed or timed out, or the body is
  /// finished; the stream is unusable afterwards. Throws std::logic_error before start().
  virtual async::Task<bool> write(std::string_view data) = 0;

  /// Ends the body (the zero-length last-chunk, no trailer fields). Idempotent; the server calls
  /// it when the handler returns without it. False when the client is gone.
  virtual async::Task<bool> finish() = 0;

  /// Answers with a complete, non-streamed response instead (e.g. a 400 problem before any
  /// output). Throws std::logic_error when the response was already started.
  virtual async::Task<bool> respond(const Response& response) = 0;

  /// Triggered when the client went away, a write failed or timed out, or the server is stopping;
  /// for a HEAD request also once start() sent the header fields (RFC 9110 §9.3.2: there is no
  /// body, write() returns false).
  virtual std::stop_token stop_token() const = 0;
  /// True once the client is known to be gone (a write failed, or the peer closed its side).
  virtual bool client_gone() const = 0;
  /// True once start() or respond() sent the status line.
  virtual bool started() const = 0;
};

}  // namespace core::http
