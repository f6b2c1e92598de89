// Blocking HTTP(S)/WebSocket client. Each call owns a private io_context and runs
// one coroutine on the caller's thread with a deadline on every network step.
#include "core/http_client.hpp"

#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/url/parse.hpp>

namespace core::http {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kUserAgent = "agentic-ide-core/0.1";
constexpr std::size_t kMaxResponseBody = 256u * 1024u * 1024u;

/// The parts of an absolute URL the client needs.
struct Target {
  bool tls = false;
  std::string host;         ///< host name or IP literal (no brackets)
  std::string port;         ///< numeric port as text
  std::string host_header;  ///< Host field value (RFC 9110 §7.2)
  std::string target;       ///< origin-form: path + "?" + query
};

/// Parses `url` (scheme must be one of `plain`/`secure`). Throws ClientError(invalid_url).
Target parse_url(const std::string& url, std::string_view plain, std::string_view secure) {
  auto r = boost::urls::parse_absolute_uri(url);
  if (!r) throw ClientError(ClientErrorKind::invalid_url, "invalid URL: " + r.error().message());
  const auto& u = *r;
  Target t;
  const std::string scheme(u.scheme());
  if (scheme == plain) {
    t.tls = false;
  } else if (scheme == secure) {
    t.tls = true;
  } else {
    throw ClientError(ClientErrorKind::invalid_url, "unsupported URL scheme '" + scheme + "'");
  }
  if (!u.has_authority() || u.encoded_host().empty()) {
    throw ClientError(ClientErrorKind::invalid_url, "URL has no host");
  }
  t.host = u.host_address();
  if (!t.host.empty() && t.host.front() == '[' && t.host.back() == ']') t.host = t.host.substr(1, t.host.size() - 2);
  t.port = u.has_port() && !u.port().empty() ? std::string(u.port()) : (t.tls ? "443" : "80");
  t.host_header = std::string(u.encoded_host_and_port());
  t.target = std::string(u.encoded_path());
  if (t.target.empty()) t.target = "/";
  if (u.has_query()) t.target += "?" + std::string(u.encoded_query());
  return t;
}

bool is_ip_literal(const std::string& host) {
  error_code ec;
  asio::ip::make_address(host, ec);
  return !ec;
}

/// Classifies a failed read/write: timeout, peer closed, or protocol error.
ClientError io_error(const error_code& ec, const char* during) {
  if (ec == beast::error::timeout || ec == asio::error::timed_out) {
    return ClientError(ClientErrorKind::timeout, std::string("timed out ") + during);
  }
  if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::error::broken_pipe || ec == ssl::error::stream_truncated || ec == bhttp::error::partial_message ||
      ec == asio::error::operation_aborted) {
    return ClientError(ClientErrorKind::closed, std::string("connection closed ") + during + ": " + ec.message());
  }
  if (ec.category() == asio::error::get_ssl_category()) {
    return ClientError(ClientErrorKind::tls, std::string("TLS error ") + during + ": " + ec.message());
  }
  return ClientError(ClientErrorKind::protocol, std::string("protocol error ") + during + ": " + ec.message());
}

/// Builds the TLS context: peer verification against the system store or `tls.ca_file`.
std::unique_ptr<ssl::context> make_tls_context(const TlsOptions& tls, const std::string& host) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                       ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                   ec);
  if (tls.verify_peer) {
    if (tls.ca_file.empty()) {
      ctx->set_default_verify_paths(ec);
    } else {
      ctx->load_verify_file(tls.ca_file, ec);
    }
    if (ec) throw ClientError(ClientErrorKind::tls, "cannot load CA certificates: " + ec.message());
    ctx->set_verify_mode(ssl::verify_peer);
    ctx->set_verify_callback(ssl::host_name_verification(host));  // RFC 6125 host/IP check
  } else {
    ctx->set_verify_mode(ssl::verify_none);
  }
  return ctx;
}

/// Resolves a host name before `deadline`. getaddrinfo cannot be cancelled, so it runs on a
/// detached helper thread; on timeout the caller gives up and the late result is discarded
/// (the thread ends on its own when the lookup returns). Asio's async_resolve would instead
/// keep the call (and the io_context's destructor) waiting for the lookup.
tcp::resolver::results_type resolve_before(const std::string& host, const std::string& port,
                                           Clock::time_point deadline) {
  struct Lookup {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    error_code ec;
    tcp::resolver::results_type results;
  };
  auto lookup = std::make_shared<Lookup>();
  std::thread([lookup, host, port] {
    asio::io_context local;
    tcp::resolver resolver(local);
    error_code ec;
    auto res = resolver.resolve(host, port, ec);  // synchronous: getaddrinfo on this thread
    std::lock_guard lk(lookup->mu);
    lookup->ec = ec;
    lookup->results = std::move(res);
    lookup->done = true;
    lookup->cv.notify_all();
  }).detach();
  std::unique_lock lk(lookup->mu);
  if (!lookup->cv.wait_until(lk, deadline, [&] { return lookup->done; })) {
    throw ClientError(ClientErrorKind::timeout, "timed out resolving " + host);
  }
  if (lookup->ec) throw ClientError(ClientErrorKind::resolve, "cannot resolve " + host + ": " + lookup->ec.message());
  return lookup->results;
}

/// Resolves (unless an IP literal: no lookup at all) and connects the lowest layer before `deadline`.
asio::awaitable<void> connect_tcp(beast::tcp_stream& stream, const Target& t, Clock::time_point deadline) {
  error_code ec;
  tcp::resolver::results_type endpoints;
  if (is_ip_literal(t.host)) {
    const auto port = static_cast<unsigned short>(std::stoul(t.port));
    endpoints = tcp::resolver::results_type::create(tcp::endpoint(asio::ip::make_address(t.host), port), t.host,
                                                    t.port);
  } else {
    // Blocks this call's private I/O thread, which serves nothing else meanwhile.
    endpoints = resolve_before(t.host, t.port, deadline);
  }
  stream.expires_at(deadline);
  co_await stream.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (ec == beast::error::timeout) throw ClientError(ClientErrorKind::timeout, "timed out connecting to " + t.host);
  if (ec) throw ClientError(ClientErrorKind::connect, "cannot connect to " + t.host + ":" + t.port + ": " + ec.message());
}

/// TLS handshake with SNI (RFC 6066 §3; not for IP literals).
template <class SslStream>
asio::awaitable<void> tls_handshake(SslStream& s, const Target& t, Clock::time_point deadline) {
  if (!is_ip_literal(t.host) && !SSL_set_tlsext_host_name(s.native_handle(), t.host.c_str())) {
    throw ClientError(ClientErrorKind::tls, "cannot set TLS SNI host name");
  }
  beast::get_lowest_layer(s).expires_at(deadline);
  error_code ec;
  co_await s.async_handshake(ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
  if (ec == beast::error::timeout) throw ClientError(ClientErrorKind::timeout, "timed out in TLS handshake");
  if (ec) throw ClientError(ClientErrorKind::tls, "TLS handshake with " + t.host + " failed: " + ec.message());
}

/// Builds the outgoing request with Host, User-Agent and Content-Length.
bhttp::request<bhttp::string_body> build_request(const ClientRequest& req, const Target& t) {
  bhttp::request<bhttp::string_body> r;
  r.version(11);
  r.method_string(req.method);
  r.target(t.target);
  r.set(bhttp::field::host, t.host_header);
  r.set(bhttp::field::user_agent, kUserAgent);
  for (const auto& [k, v] : req.headers.fields()) {
    if (iequals(k, "Host") || iequals(k, "User-Agent") || iequals(k, "Content-Length")) {
      r.set(k, v);
    } else {
      r.insert(k, v);
    }
  }
  r.body() = req.body;
  if (!req.body.empty() || req.method == "POST" || req.method == "PUT" || req.method == "PATCH") {
    r.content_length(req.body.size());
  }
  return r;
}

template <class Fields>
Headers to_headers(const Fields& fields) {
  Headers h;
  for (const auto& f : fields) h.add(std::string(f.name_string()), std::string(f.value()));
  return h;
}

/// Runs `aw` on `ioc` on this thread; a backstop deadline catches steps without their own timer.
template <class T>
T run_sync(asio::io_context& ioc, asio::awaitable<T> aw, Clock::time_point deadline) {
  bool done = false;
  std::exception_ptr err;
  std::optional<T> value;
  asio::co_spawn(ioc, std::move(aw), [&](std::exception_ptr e, T v) {
    done = true;
    err = e;
    if (!e) value = std::move(v);
    ioc.stop();
  });
  ioc.run_until(deadline + std::chrono::milliseconds(250));
  if (!done) throw ClientError(ClientErrorKind::timeout, "request timed out");
  if (err) std::rethrow_exception(err);
  return std::move(*value);
}

/// Sends the request and hands the response to `body_step` over whichever stream type (plain or TLS).
template <class Stream>
asio::awaitable<ClientResponse> do_request(Stream& s, const ClientRequest& req, const Target& t,
                                           Clock::time_point deadline) {
  auto r = build_request(req, t);
  error_code ec;
  beast::get_lowest_layer(s).expires_at(deadline);
  co_await bhttp::async_write(s, r, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) throw io_error(ec, "sending the request");
  beast::flat_buffer buf;
  bhttp::response_parser<bhttp::string_body> p;
  p.body_limit(kMaxResponseBody);
  beast::get_lowest_layer(s).expires_at(deadline);
  co_await bhttp::async_read(s, buf, p, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) throw io_error(ec, "reading the response");
  ClientResponse out;
  out.status = static_cast<int>(p.get().result_int());
  out.headers = to_headers(p.get());
  out.body = std::move(p.get().body());
  co_return out;
}

/// Streams the response body piece by piece (buffer_body + read_some); `idle` bounds each gap.
template <class Stream>
asio::awaitable<int> do_streaming(Stream& s, const ClientRequest& req, const Target& t, Clock::time_point deadline,
                                  std::chrono::milliseconds idle,
                                  const std::function<void(int, const Headers&)>& on_status,
                                  const std::function<void(std::string_view)>& on_chunk) {
  auto r = build_request(req, t);
  error_code ec;
  auto& lowest = beast::get_lowest_layer(s);
  auto step_deadline = [&] { return std::min(deadline, Clock::now() + idle); };
  lowest.expires_at(deadline);
  co_await bhttp::async_write(s, r, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) throw io_error(ec, "sending the request");
  beast::flat_buffer buf;
  bhttp::response_parser<bhttp::buffer_body> p;
  p.body_limit(boost::none);
  lowest.expires_at(step_deadline());
  co_await bhttp::async_read_header(s, buf, p, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) throw io_error(ec, "reading the response header");
  const int status = static_cast<int>(p.get().result_int());
  if (on_status) on_status(status, to_headers(p.get()));
  std::array<char, 16 * 1024> piece{};
  while (!p.is_done()) {
    p.get().body().data = piece.data();
    p.get().body().size = piece.size();
    lowest.expires_at(step_deadline());
    co_await bhttp::async_read_some(s, buf, p, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) throw io_error(ec, "reading the response body");
    const std::size_t n = piece.size() - p.get().body().size;
    if (n > 0 && on_chunk) on_chunk(std::string_view(piece.data(), n));
  }
  co_return status;
}

/// Connects (and handshakes TLS if needed), then runs `body` with the ready stream.
template <class T, class Body>
T with_connection(const ClientRequest& req, Body&& body) {
  const Target t = parse_url(req.url, "http", "https");
  const auto deadline = Clock::now() + req.timeout;
  asio::io_context ioc(1);
  if (!t.tls) {
    beast::tcp_stream stream(ioc);
    auto co = [&]() -> asio::awaitable<T> {
      co_await connect_tcp(stream, t, deadline);
      T v = co_await body(stream, t, deadline);
      error_code ec;
      stream.socket().shutdown(tcp::socket::shutdown_both, ec);
      co_return v;
    };
    return run_sync<T>(ioc, co(), deadline);
  }
  auto ctx = make_tls_context(req.tls, t.host);
  beast::ssl_stream<beast::tcp_stream> stream(ioc, *ctx);
  auto co = [&]() -> asio::awaitable<T> {
    co_await connect_tcp(beast::get_lowest_layer(stream), t, deadline);
    co_await tls_handshake(stream, t, deadline);
    T v = co_await body(stream, t, deadline);
    // No TLS close_notify round trip: the response is complete, the socket is simply closed.
    co_return v;
  };
  return run_sync<T>(ioc, co(), deadline);
}

}  // namespace

ClientResponse request(const ClientRequest& req) {
  return with_connection<ClientResponse>(req, [&](auto& s, const Target& t, Clock::time_point deadline) {
    return do_request(s, req, t, deadline);
  });
}

int request_streaming(const ClientRequest& req, const std::function<void(int status, const Headers&)>& on_status,
                      const std::function<void(std::string_view chunk)>& on_chunk,
                      std::chrono::milliseconds idle_timeout) {
  return with_connection<int>(req, [&](auto& s, const Target& t, Clock::time_point deadline) {
    return do_streaming(s, req, t, deadline, idle_timeout, on_status, on_chunk);
  });
}

namespace {

/// WebSocket client over `NextLayer` (tcp_stream or ssl_stream<tcp_stream>). All I/O runs on
/// the private io_context during calls; a read that times out stays pending, so the next
/// read() picks up its result and the connection stays usable.
template <class NextLayer>
class WsClientImpl final : public WsClient {
 public:
  WsClientImpl(std::unique_ptr<asio::io_context> ioc, std::unique_ptr<ssl::context> ctx)
      : ioc_(std::move(ioc)), ctx_(std::move(ctx)), ws_(make_stream()) {}

  ~WsClientImpl() override {
    // Pending handlers reference this object: destroy them before the members they touch.
    ioc_->stop();
  }

  websocket::stream<NextLayer>& ws() { return ws_; }
  asio::io_context& ioc() { return *ioc_; }

  std::optional<std::string> read(std::chrono::milliseconds timeout) override {
    if (closed_) return std::nullopt;
    if (failed_) throw ClientError(ClientErrorKind::closed, "websocket connection is broken: " + fail_msg_);
    if (!read_pending_ && !read_ready_) start_read();
    run_until([this] { return read_ready_; }, Clock::now() + timeout);
    if (!read_ready_) throw ClientError(ClientErrorKind::timeout, "no websocket message within the timeout");
    read_ready_ = false;
    const error_code ec = read_ec_;
    if (ec == websocket::error::closed) {
      closed_ = true;
      close_code_ = ws_.reason().code;
      return std::nullopt;
    }
    if (ec) {
      failed_ = true;
      fail_msg_ = ec.message();
      throw io_error(ec, "reading a websocket message");
    }
    std::string msg = beast::buffers_to_string(read_buf_.data());
    read_buf_.consume(read_buf_.size());
    return msg;
  }

  void send(const std::string& text) override {
    if (closed_ || failed_) throw ClientError(ClientErrorKind::closed, "websocket connection is closed");
    bool done = false;
    error_code wec;
    auto data = std::make_shared<std::string>(text);
    ws_.text(true);
    ws_.async_write(asio::buffer(*data), [&done, &wec, data](error_code ec, std::size_t) {
      done = true;
      wec = ec;
    });
    run_until([&] { return done; }, Clock::now() + std::chrono::seconds(10));
    if (!done) {
      failed_ = true;
      fail_msg_ = "write timed out";
      throw ClientError(ClientErrorKind::timeout, "websocket send timed out");
    }
    if (wec) {
      failed_ = true;
      fail_msg_ = wec.message();
      throw io_error(wec, "sending a websocket message");
    }
  }

  void close() noexcept override {
    if (closed_ || failed_) return;
    try {
      bool done = false;
      ws_.async_close(websocket::close_code::normal, [&done](error_code) { done = true; });
      // With a read pending, Beast lets that read consume the peer's close frame.
      run_until([&] { return done; }, Clock::now() + std::chrono::seconds(2));
      if (read_ready_ && read_ec_ == websocket::error::closed) close_code_ = ws_.reason().code;
    } catch (...) {
      // close never throws
    }
    closed_ = true;
  }

  int close_code() const override { return close_code_ ? close_code_ : static_cast<int>(ws_.reason().code); }

 private:
  websocket::stream<NextLayer> make_stream() {
    if constexpr (std::is_same_v<NextLayer, beast::tcp_stream>) {
      return websocket::stream<NextLayer>(*ioc_);
    } else {
      return websocket::stream<NextLayer>(*ioc_, *ctx_);
    }
  }

  void start_read() {
    read_pending_ = true;
    read_buf_.consume(read_buf_.size());
    ws_.async_read(read_buf_, [this](error_code ec, std::size_t) {
      read_ec_ = ec;
      read_pending_ = false;
      read_ready_ = true;
    });
  }

  /// Runs handlers on this thread until `pred()` or `deadline`.
  template <class Pred>
  void run_until(Pred pred, Clock::time_point deadline) {
    ioc_->restart();
    while (!pred() && Clock::now() < deadline) {
      if (ioc_->run_one_until(deadline) == 0 && ioc_->stopped()) break;
    }
  }

  std::unique_ptr<asio::io_context> ioc_;
  std::unique_ptr<ssl::context> ctx_;
  websocket::stream<NextLayer> ws_;
  beast::flat_buffer read_buf_;
  bool read_pending_ = false;  // an async_read is in flight
  bool read_ready_ = false;    // a read finished; its result (read_buf_/read_ec_) is not yet returned
  error_code read_ec_;
  bool closed_ = false;
  bool failed_ = false;
  std::string fail_msg_;
  int close_code_ = 0;
};

/// Handshake refusal or success; fills `res` with the server's answer.
template <class NextLayer>
asio::awaitable<int> ws_handshake(websocket::stream<NextLayer>& ws, const Target& t, const Headers& headers,
                                  Clock::time_point deadline, websocket::response_type& res) {
  ws.set_option(websocket::stream_base::decorator([headers](websocket::request_type& r) {
    r.set(bhttp::field::user_agent, kUserAgent);
    for (const auto& [k, v] : headers.fields()) r.set(k, v);
  }));
  beast::get_lowest_layer(ws).expires_at(deadline);
  error_code ec;
  co_await ws.async_handshake(res, t.host_header, t.target, asio::redirect_error(asio::use_awaitable, ec));
  beast::get_lowest_layer(ws).expires_never();  // the websocket stream manages its own timeouts from here
  if (ec == websocket::error::upgrade_declined) {
    throw WsHandshakeError(static_cast<int>(res.result_int()), res.body());
  }
  if (ec) throw io_error(ec, "in the websocket handshake");
  ws.set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
  co_return 101;
}

}  // namespace

std::unique_ptr<WsClient> WsClient::connect(const std::string& url, const Headers& headers,
                                            std::chrono::milliseconds timeout, const TlsOptions& tls) {
  const Target t = parse_url(url, "ws", "wss");
  const auto deadline = Clock::now() + timeout;
  auto ioc = std::make_unique<asio::io_context>(1);
  websocket::response_type res;
  if (!t.tls) {
    auto client = std::make_unique<WsClientImpl<beast::tcp_stream>>(std::move(ioc), nullptr);
    auto& ws = client->ws();
    auto co = [&]() -> asio::awaitable<int> {
      co_await connect_tcp(beast::get_lowest_layer(ws), t, deadline);
      co_return co_await ws_handshake(ws, t, headers, deadline, res);
    };
    run_sync<int>(client->ioc(), co(), deadline);
    return client;
  }
  auto ctx = make_tls_context(tls, t.host);
  auto client = std::make_unique<WsClientImpl<beast::ssl_stream<beast::tcp_stream>>>(std::move(ioc), std::move(ctx));
  auto& ws = client->ws();
  auto co = [&]() -> asio::awaitable<int> {
    co_await connect_tcp(beast::get_lowest_layer(ws), t, deadline);
    co_await tls_handshake(ws.next_layer(), t, deadline);
    co_return co_await ws_handshake(ws, t, headers, deadline, res);
  };
  run_sync<int>(client->ioc(), co(), deadline);
  return client;
}

}  // namespace core::http
