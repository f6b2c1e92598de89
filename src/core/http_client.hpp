#pragma once
// HTTP(S) and WebSocket client (RFC 9110/9112, RFC 6455). AsyncHttpClient is the one
// implementation: coroutines on a core::async::Runtime, keep-alive connection reuse, a deadline
// on every network step, cancellation by std::stop_token. The blocking functions below
// (request, request_streaming, WsClient) are thin facades over it for code on worker threads
// and for tests. Beast stays in the .cpp.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "core/async.hpp"
#include "core/http_types.hpp"

namespace core::http {

/// Why a client call failed before an HTTP status was obtained.
/// `local_resources`: this process ran out of file descriptors (EMFILE/ENFILE) or sockets; not
/// the peer's fault, so callers must not count it against the peer (circuit breakers).
/// `cancelled`: the caller's stop token was triggered.
/// `too_large`: a WebSocket message over AsyncClientOptions::ws_max_message_bytes (the
/// connection is closed with 1009, RFC 6455 §7.4.1); a new connection to the same stream
/// would get the same message again.
enum class ClientErrorKind {
  invalid_url,
  resolve,
  connect,
  tls,
  timeout,
  protocol,
  closed,
  local_resources,
  cancelled,
  too_large
};

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
  /// The request may be sent twice (RFC 9110 §9.2.2: GET/HEAD/PUT/DELETE/OPTIONS are; set it for
  /// a POST the server deduplicates, e.g. by an idempotency key). When a reused keep-alive
  /// connection turns out to be closed before any response byte arrived, such a request is
  /// retried once on a fresh connection (RFC 9112 §9.3.1); others fail with kind `closed`.
  bool idempotent = false;
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


/// Settings of an AsyncHttpClient.
struct AsyncClientOptions {
  /// Idle keep-alive connections kept per origin (scheme, host, port, TLS settings); 0 disables reuse.
  std::size_t max_idle_per_origin = 32;
  /// An idle connection unused for this long is closed instead of reused (servers drop idle
  /// connections too; Beast's server default is 60 s here).
  std::chrono::milliseconds idle_keepalive{30000};
  /// WebSocket connections: no frame (data, ping or pong) for this long fails the connection;
  /// the client pings the server after half of it (RFC 6455 §5.5.2).
  std::chrono::milliseconds ws_idle_timeout{60000};
  /// Largest WebSocket message read, in bytes (as Beast's own default, 16 MiB): a larger one
  /// fails read() with ClientErrorKind::too_large. A message is held twice while it is handed
  /// out. The orchestrator's engine client raises it to fit the engine's largest event.
  std::size_t ws_max_message_bytes = std::size_t{16} << 20;
};

class AsyncWsClient;

/// Asynchronous HTTP/1.1 client with keep-alive connection reuse (RFC 9112 §9.3). Every step
/// (resolve, connect, TLS handshake, write, read) has a deadline; name resolution uses Asio's
/// resolver service (no thread per call) and is raced against the deadline. An answer the
/// server sent before it read the whole body (a 413, then a reset) is returned, not the write
/// error (RFC 9112 §9.5). Thread-safe; the Runtime must outlive the client and its connections.
class AsyncHttpClient {
 public:
  explicit AsyncHttpClient(async::Runtime& runtime, AsyncClientOptions options = {});
  ~AsyncHttpClient();
  AsyncHttpClient(const AsyncHttpClient&) = delete;
  AsyncHttpClient& operator=(const AsyncHttpClient&) = delete;

  /// Performs one request. Throws ClientError on transport failure, timeout (kind timeout) or
  /// when `stop` is requested (kind cancelled); HTTP error statuses are returned, not thrown.
  async::Task<ClientResponse> request(ClientRequest req, std::stop_token stop = {});

  /// Performs one request and delivers the body incrementally (SSE, chunked streams):
  /// `on_status` once with status and headers, then `on_chunk` with each body piece as it
  /// arrives (both on an I/O thread; keep them short). `on_chunk` may throw to abort the call
  /// (the exception propagates unchanged and the connection is dropped). `req.timeout` bounds
  /// the whole call, `idle_timeout` each gap between pieces. Returns the status.
  async::Task<int> request_streaming(ClientRequest req, std::function<void(int status, const Headers&)> on_status,
                                     std::function<void(std::string_view chunk)> on_chunk,
                                     std::chrono::milliseconds idle_timeout, std::stop_token stop = {});

  /// Opens a WebSocket (ws:// or wss://). Non-101 answers throw WsHandshakeError; transport
  /// failures ClientError. `timeout` bounds connect + handshake.
  async::Task<std::shared_ptr<AsyncWsClient>> connect_ws(std::string url, Headers headers,
                                                         std::chrono::milliseconds timeout, TlsOptions tls = {},
                                                         std::stop_token stop = {});

  /// request() for callers on threads that are not this runtime's I/O threads (e.g. HTTP
  /// handlers on the blocking pool): blocks until the answer.
  ClientResponse request_blocking(const ClientRequest& req);

  /// Idle keep-alive connections currently pooled (all origins).
  std::size_t idle_connections() const;
  /// Connections opened so far (for tests and metrics: reuse keeps it low).
  std::size_t connections_opened() const;
  async::Runtime& runtime() { return runtime_; }

  struct Impl;

 private:
  async::Runtime& runtime_;
  std::shared_ptr<Impl> impl_;
};

/// An asynchronous client WebSocket connection (RFC 6455). One read and one send may be in
/// flight at the same time; calls of the same kind must not overlap.
class AsyncWsClient {
 public:
  virtual ~AsyncWsClient() = default;
  /// Next text message; nullopt when the peer closed the connection (see close_code()).
  /// Throws ClientError when the connection broke or went silent for the idle timeout, or
  /// kind cancelled when `stop` was requested (the connection is unusable afterwards).
  virtual async::Task<std::optional<std::string>> read(std::stop_token stop = {}) = 0;
  /// Sends one text frame. Throws ClientError.
  virtual async::Task<void> send(std::string text) = 0;
  /// Sends a close frame (1000) and waits briefly for the peer's; never throws.
  virtual async::Task<void> close() = 0;
  /// Close code received from the peer (0 if none yet).
  virtual int close_code() const = 0;
  /// Sets the callback for each ping the peer sends, with its application data (RFC 6455
  /// §5.5.2; the pong is answered automatically). It runs on the connection's I/O strand
  /// while a read() is in flight; keep it short. Replaces an earlier callback; thread-safe
  /// (it takes effect before any read() started after this call).
  virtual void on_ping(std::function<void(std::string_view payload)> cb) = 0;
};

}  // namespace core::http
