#pragma once
// Blocking HTTP(S) and WebSocket client. Each call runs its own short-lived I/O
// loop with a deadline, so callers on worker threads need no Asio. Beast stays in the .cpp.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/http_types.hpp"

namespace core::http {

/// Why a client call failed before an HTTP status was obtained.
enum class ClientErrorKind { invalid_url, resolve, connect, tls, timeout, protocol, closed };

/// Thrown by the client for transport failures (not for HTTP error statuses).
class ClientError : public std::runtime_error {
 public:
  ClientError(ClientErrorKind kind, const std::string& what) : std::runtime_error(what), kind_(kind) {}
  ClientErrorKind kind() const { return kind_; }
 private:
  ClientErrorKind kind_;
};

/// TLS settings for https:// and wss:// URLs.
struct TlsOptions {
  bool verify_peer = true;      ///< verify the certificate chain and host name (RFC 6125)
  std::string ca_file;          ///< PEM bundle; empty = system default CA store
};

/// One outgoing HTTP/1.1 request (RFC 9110/9112) for request() and request_streaming().
struct ClientRequest {
  std::string method = "GET";   ///< request method token, sent as given (e.g. "GET", "POST")
  std::string url;              ///< absolute http:// or https:// URL
  /// Extra header fields. Host and User-Agent are set by the client; a Host or User-Agent
  /// given here replaces the client's value, other fields are appended as given.
  Headers headers;
  /// Request body bytes. Content-Length is sent when non-empty or the method is POST/PUT/PATCH.
  std::string body;
  std::chrono::milliseconds timeout{10000};  ///< whole call: connect + send + full response
  TlsOptions tls;               ///< used only for https:// URLs
};

/// The answer to request(): any status, including 4xx/5xx (those are not thrown).
struct ClientResponse {
  int status = 0;               ///< HTTP status code (RFC 9110 §15), e.g. 200
  Headers headers;              ///< response header fields as received
  std::string body;             ///< full response body (at most 256 MiB; larger fails the call)
};

/// Performs one request. Throws ClientError on transport failure or timeout.
ClientResponse request(const ClientRequest& req);

/// Performs one request and delivers the body incrementally (for SSE / chunked streams).
/// `on_status` is called once with status and headers; `on_chunk` with each body piece as it arrives.
/// `req.timeout` bounds the whole call; `idle_timeout` bounds the gap between chunks.
/// Returns the status. Throws ClientError on transport failure or timeout.
int request_streaming(const ClientRequest& req,
                      const std::function<void(int status, const Headers&)>& on_status,
                      const std::function<void(std::string_view chunk)>& on_chunk,
                      std::chrono::milliseconds idle_timeout = std::chrono::milliseconds{60000});

/// A blocking WebSocket client connection (RFC 6455) over ws:// or wss://.
class WsClient {
 public:
  /// Connects and performs the handshake. Non-101 answers throw WsHandshakeError
  /// carrying the HTTP status and body; transport failures throw ClientError.
  static std::unique_ptr<WsClient> connect(const std::string& url, const Headers& headers,
                                           std::chrono::milliseconds timeout,
                                           const TlsOptions& tls = {});
  virtual ~WsClient() = default;
  /// Next text message. nullopt when the peer closed normally. Throws ClientError
  /// (kind timeout) if nothing arrived within `timeout`, or on a broken connection.
  virtual std::optional<std::string> read(std::chrono::milliseconds timeout) = 0;
  /// Sends one text frame.
  virtual void send(const std::string& text) = 0;
  /// Sends a close frame (code 1000) and waits briefly for the peer's close. Never throws.
  virtual void close() noexcept = 0;
  /// Close code received from the peer (0 if none yet).
  virtual int close_code() const = 0;
};

/// Upgrade refused by the server: the HTTP status and body of its answer.
class WsHandshakeError : public std::runtime_error {
 public:
  WsHandshakeError(int status, std::string body)
      : std::runtime_error("websocket upgrade refused with HTTP " + std::to_string(status)),
        status_(status), body_(std::move(body)) {}
  int status() const { return status_; }
  const std::string& body() const { return body_; }
 private:
  int status_;
  std::string body_;
};

}  // namespace core::http
