// HTTP(S)/WebSocket client on Beast coroutines. AsyncHttpClient is the implementation: each
// connection lives on its own strand of the runtime's I/O context and every operation on it runs
// there (stop requests post their cancel to the same strand), with a deadline per step. The
// blocking API (request, request_streaming, WsClient) drives it from the calling thread through
// a small process-wide runtime.
#include "core/http_client.hpp"

#include <array>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include <sys/socket.h>
#include <unistd.h>
#include <cerrno>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <boost/url/parse.hpp>

#include "core/async_asio.hpp"

namespace core::http {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using Clock = std::chrono::steady_clock;
using async::Task;

namespace {

constexpr const char* kUserAgent = "agentic-ide-core/0.1";
constexpr std::size_t kMaxResponseBody = 256u * 1024u * 1024u;
/// Bytes asked for per WebSocket read step; a message is read in such steps and its size
/// checked after each (AsyncClientOptions::ws_max_message_bytes).
constexpr std::size_t kWsReadChunk = 64u * 1024u;

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

/// True for "this process is out of descriptors/sockets" (EMFILE, ENFILE, ENOBUFS).
bool is_local_exhaustion(const error_code& ec) {
  return ec == asio::error::no_descriptors || ec == boost::system::errc::too_many_files_open_in_system ||
         ec == boost::system::errc::too_many_files_open || ec == asio::error::no_buffer_space;
}

/// True when this process cannot open another socket right now (EMFILE/ENFILE): Beast's range
/// connect reports a failed socket open as "operation aborted", so a failed connect is checked
/// with a probe before it is blamed on the peer.
bool out_of_descriptors() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    ::close(fd);
    return false;
  }
  return errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM;
}

/// Classifies a failed read/write: timeout, peer closed, or protocol error.
ClientError io_error(const error_code& ec, const char* during, bool stop_requested = false) {
  if (stop_requested) return ClientError(ClientErrorKind::cancelled, std::string("cancelled ") + during);
  if (ec == beast::error::timeout || ec == asio::error::timed_out) {
    return ClientError(ClientErrorKind::timeout, std::string("timed out ") + during);
  }
  if (is_local_exhaustion(ec)) {
    return ClientError(ClientErrorKind::local_resources, std::string("out of local resources ") + during + ": " +
                                                             ec.message());
  }
  if (ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
      ec == asio::error::broken_pipe || ec == ssl::error::stream_truncated || ec == bhttp::error::partial_message ||
      ec == asio::error::operation_aborted || ec == websocket::error::closed) {
    return ClientError(ClientErrorKind::closed, std::string("connection closed ") + during + ": " + ec.message());
  }
  if (ec.category() == asio::error::get_ssl_category()) {
    return ClientError(ClientErrorKind::tls, std::string("TLS error ") + during + ": " + ec.message());
  }
  return ClientError(ClientErrorKind::protocol, std::string("protocol error ") + during + ": " + ec.message());
}

/// Builds a TLS context: peer verification against the system store or `tls.ca_file`. The host
/// name check (RFC 6125) is set per connection (see set_host_check).
std::shared_ptr<ssl::context> make_tls_context(const TlsOptions& tls) {
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
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
  } else {
    ctx->set_verify_mode(ssl::verify_none);
  }
  return ctx;
}

/// Builds the outgoing request with Host, User-Agent and Content-Length.
bhttp::request<bhttp::string_body> build_request(const ClientRequest& req, const Target& t, bool keep_alive) {
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
  r.keep_alive(keep_alive);
  return r;
}

template <class Fields>
Headers to_headers(const Fields& fields) {
  Headers h;
  for (const auto& f : fields) h.add(std::string(f.name_string()), std::string(f.value()));
  return h;
}

/// Pool key: one origin with one TLS configuration.
std::string origin_key(const Target& t, const TlsOptions& tls) {
  return std::string(t.tls ? "https://" : "http://") + t.host + ":" + t.port + (t.tls ? "|" + tls.ca_file : "") +
         (t.tls && !tls.verify_peer ? "|noverify" : "");
}

/// One client connection (plain or TLS) bound to its own strand.
struct Conn {
  explicit Conn(const async::Executor& strand_ex) : strand(strand_ex), plain(strand_ex) {}
  async::Executor strand;
  beast::tcp_stream plain;                                        // used when !tls
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;   // used when tls
  std::shared_ptr<ssl::context> ctx;                              // keeps the TLS context alive
  beast::flat_buffer buffer;  // read buffer kept across keep-alive responses
  std::string key;
  Clock::time_point idle_since{};
  bool reusable = false;

  beast::tcp_stream& lowest() { return secure ? beast::get_lowest_layer(*secure) : plain; }
  /// Cancels pending operations (call on the strand).
  void cancel() {
    error_code ec;
    lowest().socket().cancel(ec);
  }
};

/// Posts a cancel of `conn`'s pending operations to its strand when `stop` is requested.
struct StopGuard {
  StopGuard(std::stop_token stop, const std::shared_ptr<Conn>& conn)
      : cb(std::move(stop), Cancel{std::weak_ptr<Conn>(conn)}) {}
  struct Cancel {
    std::weak_ptr<Conn> conn;
    void operator()() const {
      if (auto c = conn.lock()) asio::post(c->strand, [c] { c->cancel(); });
    }
  };
  std::stop_callback<Cancel> cb;
};

/// Resolves `host:port` before `deadline` with Asio's resolver service; the deadline is raced by
/// a timer, so a hung lookup only costs its own late completion (discarded), not the caller.
Task<tcp::resolver::results_type> resolve(const async::Executor& ex, const Target& t, Clock::time_point deadline) {
  if (is_ip_literal(t.host)) {
    const auto port = static_cast<unsigned short>(std::stoul(t.port));
    co_return tcp::resolver::results_type::create(tcp::endpoint(asio::ip::make_address(t.host), port), t.host, t.port);
  }
  struct Race {
    explicit Race(const async::Executor& e) : resolver(e), timer(e), done(e) {}
    tcp::resolver resolver;
    asio::steady_timer timer;
    async::Oneshot<std::pair<error_code, tcp::resolver::results_type>> done;
  };
  auto race = std::make_shared<Race>(ex);
  race->timer.expires_at(deadline);
  race->timer.async_wait([race](error_code ec) {
    if (!ec) race->done.set_value({asio::error::timed_out, {}});
  });
  race->resolver.async_resolve(t.host, t.port, [race](error_code ec, tcp::resolver::results_type r) {
    race->timer.cancel();
    race->done.set_value({ec, std::move(r)});
  });
  auto [ec, results] = co_await race->done.get();
  if (ec == asio::error::timed_out) {
    race->resolver.cancel();
    throw ClientError(ClientErrorKind::timeout, "timed out resolving " + t.host);
  }
  if (ec) throw ClientError(ClientErrorKind::resolve, "cannot resolve " + t.host + ": " + ec.message());
  co_return results;
}

/// Connects `conn` (TCP, then TLS with SNI and host-name verification when t.tls). Runs on the strand.
Task<void> open_conn(std::shared_ptr<Conn> conn, Target t, std::shared_ptr<ssl::context> ctx,
                     Clock::time_point deadline, std::stop_token stop) {
  StopGuard guard(stop, conn);
  auto endpoints = co_await resolve(conn->strand, t, deadline);
  error_code ec;
  auto& lowest = conn->plain;
  lowest.expires_at(deadline);
  co_await lowest.async_connect(endpoints, asio::redirect_error(asio::use_awaitable, ec));
  if (stop.stop_requested()) throw ClientError(ClientErrorKind::cancelled, "cancelled while connecting");
  if (ec == beast::error::timeout) throw ClientError(ClientErrorKind::timeout, "timed out connecting to " + t.host);
  if (is_local_exhaustion(ec) || (ec && out_of_descriptors())) {
    throw ClientError(ClientErrorKind::local_resources, "cannot open a socket to " + t.host + ": " + ec.message());
  }
  if (ec) throw ClientError(ClientErrorKind::connect, "cannot connect to " + t.host + ":" + t.port + ": " + ec.message());
  if (!t.tls) co_return;
  conn->ctx = ctx;
  conn->secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(conn->plain), *ctx);
  auto& s = *conn->secure;
  if (!is_ip_literal(t.host) && !SSL_set_tlsext_host_name(s.native_handle(), t.host.c_str())) {
    throw ClientError(ClientErrorKind::tls, "cannot set TLS SNI host name");
  }
  if (ctx && SSL_CTX_get_verify_mode(ctx->native_handle()) != SSL_VERIFY_NONE) {
    s.set_verify_callback(ssl::host_name_verification(t.host));  // RFC 6125 host/IP check
  }
  beast::get_lowest_layer(s).expires_at(deadline);
  co_await s.async_handshake(ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
  if (stop.stop_requested()) throw ClientError(ClientErrorKind::cancelled, "cancelled in the TLS handshake");
  if (ec == beast::error::timeout) throw ClientError(ClientErrorKind::timeout, "timed out in TLS handshake");
  if (ec) throw ClientError(ClientErrorKind::tls, "TLS handshake with " + t.host + " failed: " + ec.message());
}

/// Outcome of one exchange on a connection.
struct Exchange {
  ClientResponse response;
  bool keep_alive = false;
};

/// Tracks whether any response byte arrived (a failure before that on a reused connection is
/// the server having closed it while idle).
struct Progress {
  bool response_started = false;
};

/// Sends the request and reads the whole response on `s`. Runs on the connection's strand.
template <class Stream>
Task<Exchange> exchange_on(Stream& s, Conn& conn, const ClientRequest& req, const Target& t, Clock::time_point deadline,
                           std::stop_token stop, Progress& progress) {
  auto r = build_request(req, t, true);
  error_code ec;
  auto& lowest = conn.lowest();
  lowest.expires_at(deadline);
  co_await bhttp::async_write(s, r, asio::redirect_error(asio::use_awaitable, ec));
  // A server may answer before it has read the whole body (e.g. 413) and close (RFC 9112
  // §9.5/§9.6): our write then fails, but its answer may be waiting in the socket. Read it
  // (within 2 s) rather than report the write error; without one, the write error stands.
  const bool answered_early = ec && !req.body.empty() && !stop.stop_requested() &&
                              (ec == asio::error::broken_pipe || ec == asio::error::connection_reset);
  const error_code write_error = ec;
  if (ec && !answered_early) throw io_error(ec, "sending the request", stop.stop_requested());
  bhttp::response_parser<bhttp::string_body> p;
  p.body_limit(kMaxResponseBody);
  p.skip(req.method == "HEAD");  // RFC 9110 §9.3.2: no body follows, whatever Content-Length says
  lowest.expires_at(answered_early ? std::min(deadline, Clock::now() + std::chrono::seconds(2)) : deadline);
  co_await bhttp::async_read_header(s, conn.buffer, p, asio::redirect_error(asio::use_awaitable, ec));
  if (ec && answered_early) throw io_error(write_error, "sending the request", false);
  if (ec) throw io_error(ec, "reading the response", stop.stop_requested());
  progress.response_started = true;
  if (!p.is_done()) {
    co_await bhttp::async_read(s, conn.buffer, p, asio::redirect_error(asio::use_awaitable, ec));
    if (ec && answered_early) throw io_error(write_error, "sending the request", false);
    if (ec) throw io_error(ec, "reading the response", stop.stop_requested());
  }
  Exchange out;
  out.response.status = static_cast<int>(p.get().result_int());
  out.response.headers = to_headers(p.get());
  out.keep_alive = p.get().keep_alive() && !answered_early;
  out.response.body = std::move(p.get().body());
  co_return out;
}

/// Streams the response body piece by piece (buffer_body + read_some); `idle` bounds each gap.
template <class Stream>
Task<Exchange> stream_on(Stream& s, Conn& conn, const ClientRequest& req, const Target& t, Clock::time_point deadline,
                         std::chrono::milliseconds idle, std::stop_token stop, Progress& progress,
                         const std::function<void(int, const Headers&)>& on_status,
                         const std::function<void(std::string_view)>& on_chunk) {
  error_code ec;
  auto& lowest = conn.lowest();
  auto step_deadline = [&] { return std::min(deadline, Clock::now() + idle); };
  lowest.expires_at(deadline);
  {
    // The serialized request (a copy of the body) is released once sent: a model stream lasts
    // as long as the model talks, and thousands of them are open at once.
    auto r = build_request(req, t, true);
    co_await bhttp::async_write(s, r, asio::redirect_error(asio::use_awaitable, ec));
  }
  if (ec) throw io_error(ec, "sending the request", stop.stop_requested());
  bhttp::response_parser<bhttp::buffer_body> p;
  p.body_limit(boost::none);
  p.skip(req.method == "HEAD");
  lowest.expires_at(step_deadline());
  co_await bhttp::async_read_header(s, conn.buffer, p, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) throw io_error(ec, "reading the response header", stop.stop_requested());
  progress.response_started = true;
  Exchange out;
  out.response.status = static_cast<int>(p.get().result_int());
  out.response.headers = to_headers(p.get());
  if (on_status) on_status(out.response.status, out.response.headers);
  // Part of the coroutine frame for the whole response: kept small (a streamed response
  // arrives in small pieces, and what the connection already buffered is copied out without
  // another read from the socket).
  std::array<char, 4 * 1024> piece{};
  while (!p.is_done()) {
    p.get().body().data = piece.data();
    p.get().body().size = piece.size();
    lowest.expires_at(step_deadline());
    co_await bhttp::async_read_some(s, conn.buffer, p, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) throw io_error(ec, "reading the response body", stop.stop_requested());
    const std::size_t n = piece.size() - p.get().body().size;
    if (n > 0 && on_chunk) on_chunk(std::string_view(piece.data(), n));
  }
  out.keep_alive = p.get().keep_alive();
  co_return out;
}

}  // namespace

// ---- AsyncHttpClient ---------------------------------------------------------------------

struct AsyncHttpClient::Impl {
  Impl(async::Runtime& rt, AsyncClientOptions o) : runtime(rt), options(o) {}
  async::Runtime& runtime;
  AsyncClientOptions options;
  mutable std::mutex mu;
  std::map<std::string, std::deque<std::shared_ptr<Conn>>> idle;  // guarded by mu
  std::map<std::string, std::shared_ptr<ssl::context>> tls_contexts;  // guarded by mu
  std::atomic<std::size_t> opened{0};

  std::shared_ptr<ssl::context> tls_context(const TlsOptions& tls) {
    const std::string key = tls.ca_file + (tls.verify_peer ? "|verify" : "|noverify");
    std::lock_guard lk(mu);
    auto& ctx = tls_contexts[key];
    if (!ctx) ctx = make_tls_context(tls);
    return ctx;
  }

  /// An idle connection for `key` that is still young enough, or null.
  std::shared_ptr<Conn> take_idle(const std::string& key) {
    std::lock_guard lk(mu);
    auto it = idle.find(key);
    if (it == idle.end()) return nullptr;
    auto& q = it->second;
    while (!q.empty()) {
      auto c = std::move(q.back());
      q.pop_back();
      if (Clock::now() - c->idle_since < options.idle_keepalive) return c;
    }
    return nullptr;
  }

  void put_idle(std::shared_ptr<Conn> c) {
    if (options.max_idle_per_origin == 0) return;
    c->idle_since = Clock::now();
    std::lock_guard lk(mu);
    auto& q = idle[c->key];
    // Oldest first out when full.
    while (q.size() >= options.max_idle_per_origin) q.pop_front();
    q.push_back(std::move(c));
  }

  /// A connected Conn for the request (reused when possible); `reused` tells which.
  Task<std::shared_ptr<Conn>> acquire(const Target& t, const TlsOptions& tls, Clock::time_point deadline,
                                      std::stop_token stop, bool allow_reuse, bool& reused) {
    const std::string key = origin_key(t, tls);
    if (allow_reuse) {
      if (auto c = take_idle(key)) {
        reused = true;
        co_return c;
      }
    }
    reused = false;
    auto ctx = t.tls ? tls_context(tls) : nullptr;
    auto c = std::make_shared<Conn>(runtime.make_strand());
    c->key = key;
    ++opened;
    co_await asio::co_spawn(c->strand, open_conn(c, t, ctx, deadline, stop), asio::use_awaitable);
    co_return c;
  }
};

AsyncHttpClient::AsyncHttpClient(async::Runtime& runtime, AsyncClientOptions options)
    : runtime_(runtime), impl_(std::make_shared<Impl>(runtime, options)) {}

AsyncHttpClient::~AsyncHttpClient() = default;

std::size_t AsyncHttpClient::idle_connections() const {
  std::lock_guard lk(impl_->mu);
  std::size_t n = 0;
  for (const auto& [k, q] : impl_->idle) n += q.size();
  return n;
}

std::size_t AsyncHttpClient::connections_opened() const { return impl_->opened.load(); }

namespace {

/// True when a failure on a reused connection means "the server closed it while idle".
bool stale_connection_error(const ClientError& e) {
  return e.kind() == ClientErrorKind::closed || e.kind() == ClientErrorKind::protocol;
}

}  // namespace

Task<ClientResponse> AsyncHttpClient::request(ClientRequest req, std::stop_token stop) {
  const Target t = parse_url(req.url, "http", "https");
  const auto deadline = Clock::now() + req.timeout;
  auto impl = impl_;
  for (int attempt = 0;; ++attempt) {
    bool reused = false;
    auto conn = co_await impl->acquire(t, req.tls, deadline, stop, attempt == 0, reused);
    Progress progress;
    try {
      auto run = [](std::shared_ptr<Conn> c, const ClientRequest& r, const Target& tt, Clock::time_point d,
                    std::stop_token st, Progress& pr) -> Task<Exchange> {
        StopGuard guard(st, c);
        if (c->secure) co_return co_await exchange_on(*c->secure, *c, r, tt, d, st, pr);
        co_return co_await exchange_on(c->plain, *c, r, tt, d, st, pr);
      };
      Exchange ex = co_await asio::co_spawn(conn->strand, run(conn, req, t, deadline, stop, progress),
                                            asio::use_awaitable);
      if (ex.keep_alive) impl->put_idle(std::move(conn));
      co_return std::move(ex.response);
    } catch (const ClientError& e) {
      const bool retry = reused && !progress.response_started && stale_connection_error(e) && attempt == 0 &&
                         (req.idempotent || req.method == "GET" || req.method == "HEAD" || req.method == "PUT" ||
                          req.method == "DELETE" || req.method == "OPTIONS") &&
                         !stop.stop_requested() && Clock::now() < deadline;
      if (!retry) throw;
    }
  }
}

Task<int> AsyncHttpClient::request_streaming(ClientRequest req, std::function<void(int, const Headers&)> on_status,
                                             std::function<void(std::string_view)> on_chunk,
                                             std::chrono::milliseconds idle_timeout, std::stop_token stop) {
  const Target t = parse_url(req.url, "http", "https");
  const auto deadline = Clock::now() + req.timeout;
  auto impl = impl_;
  for (int attempt = 0;; ++attempt) {
    bool reused = false;
    auto conn = co_await impl->acquire(t, req.tls, deadline, stop, attempt == 0, reused);
    Progress progress;
    try {
      auto run = [](std::shared_ptr<Conn> c, const ClientRequest& r, const Target& tt, Clock::time_point d,
                    std::chrono::milliseconds idle, std::stop_token st, Progress& pr,
                    const std::function<void(int, const Headers&)>& os,
                    const std::function<void(std::string_view)>& oc) -> Task<Exchange> {
        StopGuard guard(st, c);
        if (c->secure) co_return co_await stream_on(*c->secure, *c, r, tt, d, idle, st, pr, os, oc);
        co_return co_await stream_on(c->plain, *c, r, tt, d, idle, st, pr, os, oc);
      };
      Exchange ex = co_await asio::co_spawn(
          conn->strand, run(conn, req, t, deadline, idle_timeout, stop, progress, on_status, on_chunk),
          asio::use_awaitable);
      if (ex.keep_alive) impl->put_idle(std::move(conn));
      co_return ex.response.status;
    } catch (const ClientError& e) {
      const bool retry = reused && !progress.response_started && stale_connection_error(e) && attempt == 0 &&
                         req.idempotent && !stop.stop_requested() && Clock::now() < deadline;
      if (!retry) throw;
    }
  }
}

ClientResponse AsyncHttpClient::request_blocking(const ClientRequest& req) {
  return runtime_.run_sync(request(req));
}

// ---- AsyncWsClient -----------------------------------------------------------------------

namespace {

/// Performs the handshake on `ws`; throws WsHandshakeError for a refused upgrade.
template <class NextLayer>
Task<void> ws_handshake(websocket::stream<NextLayer>& ws, const Target& t, const Headers& headers,
                        Clock::time_point deadline, std::chrono::milliseconds idle) {
  websocket::response_type res;
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
  websocket::stream_base::timeout to{};
  to.handshake_timeout = std::chrono::seconds(10);
  to.idle_timeout = idle;
  to.keep_alive_pings = true;
  ws.set_option(to);
}

/// WebSocket client over `NextLayer` (tcp_stream or ssl_stream<tcp_stream>); every operation
/// runs on the connection's strand.
template <class NextLayer>
class AsyncWsImpl final : public AsyncWsClient, public std::enable_shared_from_this<AsyncWsImpl<NextLayer>> {
 public:
  AsyncWsImpl(async::Executor strand, websocket::stream<NextLayer> ws, std::shared_ptr<ssl::context> ctx,
              std::size_t max_message_bytes)
      : strand_(std::move(strand)), ctx_(std::move(ctx)), ws_(std::move(ws)), max_message_bytes_(max_message_bytes) {
    // The size is checked in do_read: Beast's own check reports message_too_big only when its
    // close handshake succeeds (else a timeout or reset that looks like a lost connection).
    ws_.read_message_max(0);
  }

  Task<std::optional<std::string>> read(std::stop_token stop) override {
    auto self = this->shared_from_this();
    co_return co_await asio::co_spawn(strand_, self->do_read(stop), asio::use_awaitable);
  }

  Task<void> send(std::string text) override {
    auto self = this->shared_from_this();
    co_await asio::co_spawn(strand_, self->do_send(std::move(text)), asio::use_awaitable);
  }

  Task<void> close() override {
    auto self = this->shared_from_this();
    try {
      co_await asio::co_spawn(strand_, self->do_close(), asio::use_awaitable);
    } catch (...) {
      // close never throws
    }
  }

  int close_code() const override { return close_code_.load(); }

  void on_ping(std::function<void(std::string_view payload)> cb) override {
    // On the strand: Beast's stream is not thread-safe, and a read() started later is queued
    // behind this on the same strand.
    auto self = this->shared_from_this();
    asio::post(strand_, [self, cb = std::move(cb)]() mutable {
      self->ws_.control_callback([cb = std::move(cb)](websocket::frame_type kind, beast::string_view payload) {
        if (kind == websocket::frame_type::ping && cb) cb(std::string_view(payload.data(), payload.size()));
      });
    });
  }

  /// Performs the opening handshake on the strand (before the client is handed out).
  Task<void> handshake(Target t, Headers headers, Clock::time_point deadline, std::chrono::milliseconds idle) {
    auto self = this->shared_from_this();
    auto run = [](std::shared_ptr<AsyncWsImpl> me, Target tt, Headers h, Clock::time_point d,
                  std::chrono::milliseconds i) -> Task<void> { co_await ws_handshake(me->ws_, tt, h, d, i); };
    co_await asio::co_spawn(strand_, run(self, std::move(t), std::move(headers), deadline, idle), asio::use_awaitable);
  }

 private:
  Task<std::optional<std::string>> do_read(std::stop_token stop) {
    auto self = this->shared_from_this();
    if (closed_) co_return std::nullopt;
    std::stop_callback cb(stop, [self] {
      asio::post(self->strand_, [self] {
        error_code ec;
        beast::get_lowest_layer(self->ws_).socket().cancel(ec);
      });
    });
    beast::flat_buffer buf;
    error_code ec;
    for (;;) {
      buf.consume(buf.size());
      // One message, read in parts so that its size is checked as it grows.
      bool too_big = false;
      do {
        co_await ws_.async_read_some(buf, kWsReadChunk, asio::redirect_error(asio::use_awaitable, ec));
        too_big = !ec && buf.size() > max_message_bytes_;
      } while (!ec && !too_big && !ws_.is_message_done());
      if (too_big) {
        co_await close_with(websocket::close_code::too_big);  // RFC 6455 §7.4.1: 1009
        throw ClientError(ClientErrorKind::too_large, "a websocket message is larger than the limit of " +
                                                          std::to_string(max_message_bytes_) + " bytes");
      }
      if (ec == websocket::error::closed) {
        closed_ = true;
        close_code_ = static_cast<int>(ws_.reason().code);
        co_return std::nullopt;
      }
      if (ec) throw io_error(ec, "reading a websocket message", stop.stop_requested());
      if (!ws_.got_text()) continue;
      co_return beast::buffers_to_string(buf.data());
    }
  }

  Task<void> do_send(std::string text) {
    auto self = this->shared_from_this();
    error_code ec;
    ws_.text(true);
    co_await ws_.async_write(asio::buffer(text), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) throw io_error(ec, "sending a websocket message");
  }

  Task<void> do_close() {
    auto self = this->shared_from_this();
    if (closed_) co_return;
    co_await close_with(websocket::close_code::normal);
  }

  /// Sends a close frame with `code` and waits at most 2 s for the peer's; on the strand.
  Task<void> close_with(websocket::close_code code) {
    closed_ = true;
    websocket::stream_base::timeout to{};
    to.handshake_timeout = std::chrono::seconds(2);  // bounds the close handshake
    to.idle_timeout = websocket::stream_base::none();
    to.keep_alive_pings = false;
    ws_.set_option(to);
    error_code ec;
    co_await ws_.async_close(code, asio::redirect_error(asio::use_awaitable, ec));
  }

  async::Executor strand_;
  std::shared_ptr<ssl::context> ctx_;
  websocket::stream<NextLayer> ws_;
  std::size_t max_message_bytes_;
  bool closed_ = false;
  std::atomic<int> close_code_{0};
};

}  // namespace

Task<std::shared_ptr<AsyncWsClient>> AsyncHttpClient::connect_ws(std::string url, Headers headers,
                                                                 std::chrono::milliseconds timeout, TlsOptions tls,
                                                                 std::stop_token stop) {
  const Target t = parse_url(url, "ws", "wss");
  const auto deadline = Clock::now() + timeout;
  auto impl = impl_;
  auto ctx = t.tls ? impl->tls_context(tls) : nullptr;
  auto conn = std::make_shared<Conn>(runtime_.make_strand());
  ++impl->opened;
  co_await asio::co_spawn(conn->strand, open_conn(conn, t, ctx, deadline, stop), asio::use_awaitable);
  const auto idle = impl->options.ws_idle_timeout;
  if (!conn->secure) {
    auto ws = std::make_shared<AsyncWsImpl<beast::tcp_stream>>(
        conn->strand, websocket::stream<beast::tcp_stream>(std::move(conn->plain)), nullptr,
        impl->options.ws_max_message_bytes);
    co_await ws->handshake(t, std::move(headers), deadline, idle);
    co_return ws;
  }
  using Tls = beast::ssl_stream<beast::tcp_stream>;
  auto ws = std::make_shared<AsyncWsImpl<Tls>>(conn->strand, websocket::stream<Tls>(std::move(*conn->secure)), ctx,
                                               impl->options.ws_max_message_bytes);
  co_await ws->handshake(t, std::move(headers), deadline, idle);
  co_return ws;
}

// ---- blocking facades --------------------------------------------------------------------

namespace {

/// The runtime and client behind the blocking functions: one I/O thread, started on first use
/// and kept until the process exits (never destroyed, so no exit-time ordering issues). No
/// connection reuse: each blocking call opens and closes its own connection, as callers expect.
struct BlockingBackend {
  BlockingBackend() : rt(async::RuntimeOptions{1, 1, "blocking-http-client"}), client(rt, no_reuse()) { rt.start(); }
  static AsyncClientOptions no_reuse() {
    AsyncClientOptions o;
    o.max_idle_per_origin = 0;
    return o;
  }
  async::Runtime rt;
  AsyncHttpClient client;
};

BlockingBackend& backend() {
  static auto* b = new BlockingBackend();
  return *b;
}

/// Blocking WebSocket facade: a read that times out stays pending, so the next read() picks up
/// its result and the connection stays usable.
class BlockingWs final : public WsClient {
 public:
  explicit BlockingWs(std::shared_ptr<AsyncWsClient> ws) : ws_(std::move(ws)) {}
  ~BlockingWs() override { stop_.request_stop(); }

  std::optional<std::string> read(std::chrono::milliseconds timeout) override {
    if (closed_) return std::nullopt;
    if (failed_) throw ClientError(ClientErrorKind::closed, "websocket connection is broken: " + fail_msg_);
    if (!pending_) {
      pending_ = std::make_shared<Pending>();
      auto read_one = [](std::shared_ptr<AsyncWsClient> ws, std::shared_ptr<Pending> p,
                         std::stop_token st) -> Task<void> {
        std::optional<std::string> msg;
        std::exception_ptr err;
        try {
          msg = co_await ws->read(st);
        } catch (...) {
          err = std::current_exception();
        }
        std::lock_guard lk(p->mu);
        p->msg = std::move(msg);
        p->error = err;
        p->done = true;
        p->cv.notify_all();
      };
      backend().rt.spawn(read_one(ws_, pending_, stop_.get_token()));
    }
    auto p = pending_;
    std::unique_lock lk(p->mu);
    if (!p->cv.wait_for(lk, timeout, [&] { return p->done; })) {
      throw ClientError(ClientErrorKind::timeout, "no websocket message within the timeout");
    }
    pending_.reset();
    if (p->error) {
      failed_ = true;
      try {
        std::rethrow_exception(p->error);
      } catch (const std::exception& e) {
        fail_msg_ = e.what();
      }
      std::rethrow_exception(p->error);
    }
    if (!p->msg) closed_ = true;
    return std::move(p->msg);
  }

  void send(const std::string& text) override {
    if (closed_ || failed_) throw ClientError(ClientErrorKind::closed, "websocket connection is closed");
    try {
      backend().rt.run_sync(ws_->send(text));
    } catch (const std::exception& e) {
      failed_ = true;
      fail_msg_ = e.what();
      throw;
    }
  }

  void close() noexcept override {
    if (closed_ || failed_) return;
    try {
      backend().rt.run_sync(ws_->close());
    } catch (...) {
    }
    closed_ = true;
  }

  int close_code() const override { return ws_->close_code(); }

 private:
  struct Pending {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::optional<std::string> msg;
    std::exception_ptr error;
  };
  std::shared_ptr<AsyncWsClient> ws_;
  std::shared_ptr<Pending> pending_;
  std::stop_source stop_;
  bool closed_ = false;
  bool failed_ = false;
  std::string fail_msg_;
};

}  // namespace

ClientResponse request(const ClientRequest& req) { return backend().client.request_blocking(req); }

int request_streaming(const ClientRequest& req, const std::function<void(int status, const Headers&)>& on_status,
                      const std::function<void(std::string_view chunk)>& on_chunk,
                      std::chrono::milliseconds idle_timeout) {
  return backend().rt.run_sync(backend().client.request_streaming(req, on_status, on_chunk, idle_timeout));
}

std::unique_ptr<WsClient> WsClient::connect(const std::string& url, const Headers& headers,
                                            std::chrono::milliseconds timeout, const TlsOptions& tls) {
  auto ws = backend().rt.run_sync(backend().client.connect_ws(url, headers, timeout, tls));
  return std::make_unique<BlockingWs>(std::move(ws));
}

}  // namespace core::http
