#pragma once
// Server-side WebSocket connection handle, independent of Beast.

#include <cstdint>
#include <functional>
#include <string>

namespace core::http {

/// An open server-side WebSocket (RFC 6455). All methods are thread-safe.
/// Outgoing messages are queued and written in order; the server sends pings
/// every `ping_interval` and drops a peer that does not answer.
class WsConnection {
 public:
  virtual ~WsConnection() = default;
  /// Queues one text frame. Ignored (returns false) once the connection is closing/closed.
  virtual bool send_text(std::string message) = 0;
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
};

}  // namespace core::http
