#pragma once
// Server-side WebSocket connection handle, independent of Beast.

#include <chrono>
#include <cstdint>
#include <cstddef>
#include <functional>
#include <string>

#include "core/async.hpp"

namespace core::http {

/// An open server-side WebSocket (RFC 6455). All methods are thread-safe.
/// Outgoing messages are queued and written in order; the server sends pings
/// every `ping_interval` and drops a peer that does not answer.
/// A handle may be kept (e.g. by another thread) after the server stopped: from then on
/// send_text() returns false, close() does nothing, is_open() is false and the close
/// callback has run; the handle stays valid until its last owner releases it.
class WsConnection {
 public:
  virtual ~WsConnection() = default;
  /// Queues one text frame. Ignored (returns false) once the connection is closing/closed.
  virtual bool send_text(std::string message) = 0;
  /// Queues a ping (RFC 6455 §5.5.2) whose application data is `payload`, sent once the text
  /// frames queued before it are written; a ping still waiting is replaced by the newer one
  /// (only the latest matters). The peer answers with a pong automatically; applications read
  /// the payload as a signal (the engine's streams send a thread's status this way). Returns
  /// false once the connection is closing or closed. Throws std::invalid_argument when
  /// `payload` is longer than 125 bytes (§5.5: control frames carry at most 125).
  virtual bool ping(std::string payload) = 0;
  /// Flushes queued frames, then sends a close frame with `code` (1000 = normal) and `reason`.
  virtual void close(std::uint16_t code = 1000, std::string reason = {}) = 0;
  /// Sets the callback for each text message from the peer (called on an I/O thread; keep it short).
  virtual void on_message(std::function<void(const std::string&)> cb) = 0;
  /// Sets the callback run exactly once when the connection is gone (peer close, error, or our close).
  /// If the connection is already closed, runs it immediately.
  virtual void on_close(std::function<void()> cb) = 0;
  /// True until a close frame was sent or received or the socket failed.
  virtual bool is_open() const = 0;
  /// Number of frames queued but not yet written (back-pressure signal).
  virtual std::size_t queued() const = 0;
  /// Total payload bytes of the frames counted by queued() (back-pressure signal for large frames).
  virtual std::size_t queued_bytes() const = 0;
  /// Waits until fewer than `max_frames` frames and fewer than `max_bytes` bytes are queued
  /// (true), or the connection closed or `timeout` passed (false). For coroutines that produce
  /// faster than the peer reads (paced replay). One waiter at a time.
  virtual async::Task<bool> wait_writable(std::size_t max_frames, std::size_t max_bytes,
                                          std::chrono::milliseconds timeout) = 0;
};

}  // namespace core::http
