// HTTP/1.1 (RFC 9112) + WebSocket (RFC 6455) server on Boost.Beast with C++20
// coroutines. One coroutine per connection runs on its own strand; every network
// step has a deadline; handlers and middleware run on a separate blocking pool.
#include "core/server.hpp"

#include <array>
#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <thread>

#include <sys/socket.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "core/log.hpp"
#include "core/metrics.hpp"
#include "core/pool_call.hpp"
#include "core/query.hpp"
#include "core/response_stream.hpp"
#include "core/tracing.hpp"
#include "core/unavailable.hpp"
#include "core/util.hpp"
#include "core/ws.hpp"

namespace core::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace websocket = boost::beast::websocket;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;

namespace {

using Clock = std::chrono::steady_clock;

/// Runs `f` on `pool` (a handler thread) and resumes the calling coroutine on its own executor
/// with the result (core::detail::call_on_pool). Exceptions thrown by `f` are rethrown in the caller.
template <class F>
asio::awaitable<std::invoke_result_t<F>> run_blocking(asio::thread_pool& pool, F f) {
  co_return co_await core::detail::call_on_pool(pool, [fn = std::move(f)]() mutable {
    name_this_thread_once("http-handler");
    return fn();
  });
}

/// Converts Beast header fields into core::http::Headers.
template <class Fields>
Headers to_headers(const Fields& fields) {
  Headers h;
  for (const auto& f : fields) h.add(std::string(f.name_string()), std::string(f.value()));
  return h;
}

/// True for errors that just mean "the peer went away" (no response possible).
bool is_disconnect(const error_code& ec) {
  return ec == bhttp::error::end_of_stream || ec == asio::error::eof || ec == asio::error::connection_reset ||
         ec == asio::error::broken_pipe || ec == asio::error::operation_aborted || ec == beast::error::timeout ||
         ec == asio::error::not_connected || ec == asio::error::bad_descriptor;
}

bool is_websocket_upgrade(const bhttp::request<bhttp::string_body>& req) { return websocket::is_upgrade(req); }

/// Closes a connection in stages after an answer that left request bytes unread (RFC 9112
/// §9.6, "Tear-down"; nginx calls it a lingering close): half-closes our side, then reads and
/// discards what the client still sends until it closes, for at most 30 s in all and 5 s
/// without data. Closing at once with unread bytes makes the kernel send a TCP reset, and a
/// client still writing its body (a 48 MiB job against a 32 MiB limit) then sees "broken pipe"
/// instead of our 413, and may take it for an engine that is down.
asio::awaitable<void> linger(beast::tcp_stream& stream) {
  constexpr auto kTotal = std::chrono::seconds{30};
  constexpr auto kIdle = std::chrono::seconds{5};
  error_code ec;
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  if (ec) co_return;
  std::array<char, 8192> sink;
  const auto deadline = Clock::now() + kTotal;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) co_return;
    stream.expires_after(std::min<std::chrono::milliseconds>(left, kIdle));
    co_await stream.async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
  }
}

/// Metric label for a request method: the standard methods as-is, anything else "OTHER",
/// so arbitrary client-chosen methods cannot create unbounded label sets.
std::string method_label(const std::string& method) {
  static constexpr std::string_view known[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"};
  for (auto k : known) {
    if (method == k) return method;
  }
  return "OTHER";
}

/// 503 problem details with Retry-After for a handler that ran out of a local resource
/// (core/unavailable.hpp), e.g. no database session free within the pool's bounded wait.
Response unavailable(const core::Unavailable& e, const Request& request) {
  const auto secs = std::to_string(std::max<long long>(1, e.retry_after().count()));
  log::warn("http_handler_unavailable", {{"error", e.what()}, {"request_id", request.request_id}});
  auto r = Response::problem(503, "Service Unavailable",
                             "The server is temporarily out of capacity; retry after " + secs + " s.");
  r.headers.set("Retry-After", secs);
  return r;
}

}  // namespace

/// The server's io_context, shared with every WebSocket connection so that a connection handle
/// kept by another thread never outlives the context its socket and timer belong to. After
/// mark_stopped() nothing is posted to it any more and connections turn into no-ops.
struct IoState {
  /// io_context that lets the server destroy pending handlers and coroutine frames at stop
  /// (execution_context::shutdown) while the context object itself stays alive for late holders.
  struct Context : asio::io_context {
    using asio::io_context::io_context;
    using asio::execution_context::shutdown;
  };

  explicit IoState(int threads) : ioc(threads) {}

  /// Posts `f` to `ex` unless the server is stopped; false when dropped.
  template <class Executor, class F>
  bool post(const Executor& ex, F&& f) {
    std::shared_lock lk(mu);
    if (stopped.load()) return false;
    asio::post(ex, std::forward<F>(f));
    return true;
  }

  /// From now on post() drops work; waits for posts in progress to finish.
  void mark_stopped() {
    std::unique_lock lk(mu);
    stopped = true;
  }

  Context ioc;
  std::shared_mutex mu;  // shared while posting, exclusive to stop
  std::atomic<bool> stopped{false};
};

class WsConnImpl;

/// What run_stream reports back to the session loop.
struct StreamOutcome {
  bool reusable = false;  ///< the connection may serve the next request
  int status = 0;         ///< the status sent (0 = none)
};

struct Server::Impl {
  Impl(ServerOptions o, Router r, Middleware m)
      : opts(std::move(o)),
        router(std::move(r)),
        middleware(std::move(m)),
        requests_total(metrics::global().counter("http_requests_total", "HTTP requests by method, route and status")),
        request_duration(metrics::global().histogram("http_request_duration_seconds",
                                                     "HTTP request latency in seconds by route")),
        ws_gauge(metrics::global().gauge("websocket_connections", "Open WebSocket connections")) {}

  ServerOptions opts;
  Router router;
  Middleware middleware;
  metrics::Counter& requests_total;
  metrics::Histogram& request_duration;
  metrics::Gauge& ws_gauge;

  std::unique_ptr<asio::thread_pool> pool;
  std::mutex ws_mu;
  std::map<std::uint64_t, std::weak_ptr<WsConnImpl>> ws_conns;
  std::uint64_t next_ws_id = 0;
  std::atomic<std::size_t> ws_open{0};
  std::mutex streams_mu;
  std::map<std::uint64_t, std::stop_source> streams;  // streamed responses in progress (stopped at shutdown)
  std::uint64_t next_stream_id = 0;
  std::atomic<std::size_t> streams_open{0};
  std::atomic<bool> started{false};
  std::atomic<bool> stopping{false};
  std::mutex stop_mu;
  std::uint16_t bound_port = 0;
  std::vector<std::thread> threads;
  // Declared last: destroyed first, so pending coroutine frames die while the members above still exist.
  // Shared with WebSocket connections (see IoState); shutdown() destroys its pending work explicitly.
  std::shared_ptr<IoState> io;
  asio::io_context* ioc = nullptr;  // &io->ioc while started
  std::unique_ptr<tcp::acceptor> acceptor;

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> session(tcp::socket socket);
  asio::awaitable<void> run_websocket(beast::tcp_stream stream, bhttp::request<bhttp::string_body> req,
                                      Request request, WsAccept accept, Clock::time_point started_at);
  asio::awaitable<StreamOutcome> run_stream(beast::tcp_stream& stream, unsigned version, bool keep_alive,
                                            Request& request, const RouteMatch& match, const std::string& route,
                                            Clock::time_point started_at);
  void record(const Request& req, const std::string& route, int status, Clock::time_point started_at);
  void shutdown();
};

/// Server-side WebSocket connection: one reader loop (the session coroutine) and
/// one writer coroutine, both on the connection's strand. Public methods are thread-safe.
class WsConnImpl final : public WsConnection, public std::enable_shared_from_this<WsConnImpl> {
 public:
  /// `max_message_bytes`: largest message accepted from the peer (see run()).
  WsConnImpl(std::shared_ptr<IoState> io, websocket::stream<beast::tcp_stream> ws, std::size_t max_message_bytes)
      : io_(std::move(io)),
        ws_(std::move(ws)),
        wake_(ws_.get_executor()),
        writable_(ws_.get_executor()),
        max_message_bytes_(max_message_bytes) {
    wake_.expires_at(Clock::time_point::max());
    // The bound is enforced by run(), not by Beast: Beast fails an oversized message by sending
    // 1009 and closing the socket while the peer is still sending, so the peer's TCP stack
    // answers with a reset and the peer never reads the close frame (it sees 1006).
    ws_.read_message_max(0);
  }
  ~WsConnImpl() override { fire_close(); }

  bool send_text(std::string message) override {
    {
      std::lock_guard lk(mu_);
      if (closing_ || done_ || io_->stopped) return false;
      queued_bytes_ += message.size();
      queue_.push_back(std::move(message));
    }
    wake();
    return true;
  }

  bool ping(std::string payload) override {
    if (payload.size() > websocket::ping_data::static_capacity) {
      throw std::invalid_argument("a WebSocket ping carries at most 125 bytes (RFC 6455 section 5.5)");
    }
    {
      std::lock_guard lk(mu_);
      if (closing_ || done_ || io_->stopped) return false;
      ping_ = std::move(payload);
      ping_after_ = queue_.size();  // the frames queued before it go first, later ones after it
    }
    wake();
    return true;
  }

  void close(std::uint16_t code, std::string reason) override {
    {
      std::lock_guard lk(mu_);
      if (closing_ || done_ || io_->stopped) return;
      closing_ = true;
      close_code_ = code;
      close_reason_ = std::move(reason);
    }
    wake();
  }

  void on_message(std::function<void(const std::string&)> cb) override {
    // Messages that arrived before a callback existed are delivered first, in order.
    std::unique_lock lk(mu_);
    while (!pending_.empty()) {
      auto batch = std::move(pending_);
      pending_.clear();
      lk.unlock();
      for (const auto& m : batch) {
        try {
          if (cb) cb(m);
        } catch (const std::exception& e) {
          log::warn("websocket_on_message_failed", {{"error", e.what()}});
        }
      }
      lk.lock();
    }
    on_msg_ = std::move(cb);
  }

  void on_close(std::function<void()> cb) override {
    {
      std::lock_guard lk(mu_);
      if (!close_fired_) {
        on_close_ = std::move(cb);
        return;
      }
    }
    if (cb) cb();
  }

  bool is_open() const override {
    std::lock_guard lk(mu_);
    return !closing_ && !done_ && !peer_closed_ && !io_->stopped;
  }

  std::size_t queued() const override {
    std::lock_guard lk(mu_);
    return queue_.size();
  }

  std::size_t queued_bytes() const override {
    std::lock_guard lk(mu_);
    return queued_bytes_;
  }

  async::Task<bool> wait_writable(std::size_t max_frames, std::size_t max_bytes,
                                  std::chrono::milliseconds timeout) override {
    auto self = shared_from_this();
    const auto deadline = Clock::now() + timeout;
    for (;;) {
      {
        std::lock_guard lk(mu_);
        if (closing_ || done_ || peer_closed_ || io_->stopped) co_return false;
        if (queue_.size() < max_frames && queued_bytes_ < max_bytes) co_return true;
      }
      const auto now = Clock::now();
      if (now >= deadline) co_return false;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      co_await writable_.wait(left);
    }
  }

  /// Keeps messages that arrive before on_message() for an asynchronous open (bounded).
  void keep_pending_for_async_open() {
    std::lock_guard lk(mu_);
    async_open_ = true;
  }

  /// Server stopped (I/O threads joined): the connection is finished; runs the close callback.
  void server_stopped() {
    {
      std::lock_guard lk(mu_);
      queue_.clear();
      queued_bytes_ = 0;
    }
    fire_close();
  }

  /// Marks that on_open has returned: later messages without a callback are dropped.
  void open_returned() {
    std::lock_guard lk(mu_);
    open_returned_ = true;
  }

  /// Reader loop; returns when the connection is finished. Runs on the strand. A message larger
  /// than max_message_bytes closes the connection with 1009 "message too big" (RFC 6455
  /// §7.4.1): the close frame goes out through the writer, and reading goes on, discarding, until
  /// the peer's close frame (within the close handshake timeout), so the peer reads our close.
  asio::awaitable<void> run() {
    auto self = shared_from_this();
    asio::co_spawn(ws_.get_executor(), writer(), asio::detached);
    constexpr std::size_t kReadPiece = 64 * 1024;
    beast::flat_buffer buf;
    bool discarding = false;  // after a message too big: nothing more is delivered
    for (;;) {
      error_code ec;
      co_await ws_.async_read_some(buf, kReadPiece, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec != websocket::error::closed && !is_disconnect(ec)) {
          log::debug("websocket_read_failed", {{"error", ec.message()}});
        }
        break;
      }
      if (!discarding && buf.size() > max_message_bytes_) {
        log::info("websocket_message_too_big", {{"limit", max_message_bytes_}});
        close(1009, "message too big; the limit is " + std::to_string(max_message_bytes_) + " bytes");
        discarding = true;
      }
      if (discarding) {
        buf.clear();
        continue;
      }
      if (!ws_.is_message_done()) continue;
      if (!ws_.got_text()) {  // binary frames are not part of the protocol here
        buf.clear();
        continue;
      }
      std::string msg = beast::buffers_to_string(buf.data());
      buf.clear();
      std::function<void(const std::string&)> cb;
      {
        std::lock_guard lk(mu_);
        if (!on_msg_) {
          // Kept for a callback still to come; an asynchronous open keeps at most 64.
          if (!open_returned_ && (!async_open_ || pending_.size() < 64)) pending_.push_back(std::move(msg));
          continue;
        }
        cb = on_msg_;
      }
      try {
        cb(msg);
      } catch (const std::exception& e) {
        log::warn("websocket_on_message_failed", {{"error", e.what()}});
      }
    }
    {
      std::lock_guard lk(mu_);
      done_ = true;
      peer_closed_ = true;
    }
    wake_.cancel();
    writable_.notify();
    fire_close();
  }

  /// The connection's strand (coroutines of an asynchronous open run here).
  async::Executor executor() { return ws_.get_executor(); }

  /// Server shutdown: close with 1001 "going away" (RFC 6455 §7.4.1).
  void going_away() { close(1001, "server shutting down"); }

 private:
  void wake() {
    io_->post(ws_.get_executor(), [self = shared_from_this()] { self->wake_.cancel(); });
  }

  /// Writes queued frames in order, a waiting ping after the frames queued before it (frames
  /// queued later wait for it); after a close request, flushes and sends the close frame (a
  /// ping still waiting then is dropped).
  asio::awaitable<void> writer() {
    auto self = shared_from_this();
    for (;;) {
      std::optional<std::string> next;
      std::optional<std::string> ping;
      bool send_close = false;
      websocket::close_reason cr;
      {
        std::lock_guard lk(mu_);
        if (done_) break;
        if (ping_ && !closing_ && (ping_after_ == 0 || queue_.empty())) {
          ping = std::move(ping_);
          ping_.reset();
        } else if (!queue_.empty()) {
          next = std::move(queue_.front());
          queue_.pop_front();
          queued_bytes_ -= next->size();
          if (ping_after_ > 0) --ping_after_;
        } else if (closing_) {
          send_close = true;
          cr.code = close_code_;
          cr.reason = close_reason_;
        }
      }
      error_code ec;
      if (next) {
        ws_.text(true);
        co_await ws_.async_write(asio::buffer(*next), asio::redirect_error(asio::use_awaitable, ec));
        writable_.notify();
        if (ec) break;
      } else if (ping) {
        const websocket::ping_data data(ping->data(), ping->size());
        co_await ws_.async_ping(data, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
      } else if (send_close) {
        co_await ws_.async_close(cr, asio::redirect_error(asio::use_awaitable, ec));
        break;
      } else {
        co_await wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
    }
    {
      std::lock_guard lk(mu_);
      queue_.clear();
      queued_bytes_ = 0;
    }
    writable_.notify();
  }

  void fire_close() {
    std::function<void()> cb;
    {
      std::lock_guard lk(mu_);
      if (close_fired_) return;
      close_fired_ = true;
      done_ = true;
      cb = std::move(on_close_);
    }
    if (cb) {
      try {
        cb();
      } catch (const std::exception& e) {
        log::warn("websocket_on_close_failed", {{"error", e.what()}});
      }
    }
  }

  std::shared_ptr<IoState> io_;  // first member: the context outlives the socket and timer below
  websocket::stream<beast::tcp_stream> ws_;
  asio::steady_timer wake_;
  async::Signal writable_;  // notified after each written frame and when the connection ends
  std::size_t max_message_bytes_;
  mutable std::mutex mu_;
  std::deque<std::string> queue_;
  std::size_t queued_bytes_ = 0;  // payload bytes in queue_
  std::optional<std::string> ping_;  // a ping to send once the frames queued before it are written (ping())
  std::size_t ping_after_ = 0;       // how many of queue_'s first frames go before ping_
  std::vector<std::string> pending_;
  std::function<void(const std::string&)> on_msg_;
  std::function<void()> on_close_;
  bool closing_ = false;      // close() requested
  bool done_ = false;         // socket finished
  bool peer_closed_ = false;  // read side ended
  bool close_fired_ = false;
  bool open_returned_ = false;
  bool async_open_ = false;
  std::uint16_t close_code_ = 1000;
  std::string close_reason_;
};

void Server::Impl::record(const Request& req, const std::string& route, int status, Clock::time_point started_at) {
  const double secs = std::chrono::duration<double>(Clock::now() - started_at).count();
  try {
    log::info("http_request", {{"method", req.method},
                               {"path", req.path},
                               {"status", status},
                               {"duration_ms", secs * 1000.0},
                               {"request_id", req.request_id},
                               {"route", route}});
    requests_total.inc({{"service", opts.service_name},
                        {"method", method_label(req.method)},
                        {"route", route},
                        {"status", std::to_string(status)}});
    request_duration.observe(secs, {{"service", opts.service_name}, {"route", route}});
  } catch (const std::exception&) {
    // observability must never break serving
  }
}

asio::awaitable<void> Server::Impl::accept_loop() {
  for (;;) {
    error_code ec;
    tcp::socket sock = co_await acceptor->async_accept(asio::make_strand(*ioc),
                                                       asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || stopping) co_return;
      log::warn("http_accept_failed", {{"error", ec.message()}});
      asio::steady_timer t(co_await asio::this_coro::executor, std::chrono::milliseconds(50));
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    auto ex = sock.get_executor();
    asio::co_spawn(ex, session(std::move(sock)), [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex2) {
        log::error("http_session_failed", {{"error", ex2.what()}});
      }
    });
  }
}

namespace {

/// Builds the Beast response for `r` (adds X-Request-Id, Content-Length). For a HEAD request
/// (`head`) the header fields are those of the full response, Content-Length included, and no
/// body is sent (RFC 9110 §9.3.2; a handler's own Content-Length with an empty body is kept).
bhttp::response<bhttp::string_body> to_beast(const Response& r, const std::string& request_id, unsigned version,
                                             bool keep_alive, bool head = false) {
  bhttp::response<bhttp::string_body> res;
  res.version(version);
  res.result(static_cast<unsigned>(r.status));
  for (const auto& [k, v] : r.headers.fields()) res.insert(k, v);
  if (!request_id.empty()) res.set("X-Request-Id", request_id);
  res.keep_alive(keep_alive);
  if (head && r.body.empty() && r.headers.get("Content-Length")) return res;
  res.body() = r.body;
  res.prepare_payload();
  if (head) res.body().clear();  // the serializer writes the header fields and nothing after them
  return res;
}

/// Fills method/target/path/query of `out` from the request line. False if the target is malformed.
bool parse_target(const bhttp::request<bhttp::string_body>& req, Request& out) {
  out.method = std::string(req.method_string());
  return parse_request_target(req.target(), out);
}

}  // namespace

/// ResponseStream over one server connection (see core/response_stream.hpp). Lives in run_stream's
/// frame for one request; every method runs on the connection's strand. A read-readiness wait on
/// the socket (not a read: nothing is consumed) notices a client that closed or reset the
/// connection while the handler waits between writes.
class StreamImpl final : public ResponseStream {
 public:
  StreamImpl(beast::tcp_stream& stream, const Request& request, unsigned version, bool keep_alive,
             std::chrono::milliseconds write_timeout, asio::thread_pool& pool, const Middleware& middleware)
      : stream_(stream),
        request_(request),
        version_(version),
        chunked_(version >= 11),
        keep_alive_(keep_alive && version >= 11),
        head_(request.method == "HEAD"),
        write_timeout_(write_timeout),
        pool_(pool),
        middleware_(middleware),
        watch_(std::make_shared<Watch>()) {
    watch_->stop = stop_;
  }
  ~StreamImpl() override { unwatch(); }
  StreamImpl(const StreamImpl&) = delete;
  StreamImpl& operator=(const StreamImpl&) = delete;

  async::Task<bool> start(int status, const Headers& headers) override {
    if (started_) throw std::logic_error("ResponseStream::start: the response was already started");
    started_ = true;
    status_ = status;
    Response head;
    head.status = status;
    head.headers = headers;
    co_await run_after_hook(head);
    head.headers.erase("Content-Length");
    head.headers.erase("Transfer-Encoding");
    bhttp::response<bhttp::empty_body> res;
    res.version(version_);
    res.result(static_cast<unsigned>(head.status));
    for (const auto& [k, v] : head.headers.fields()) res.insert(k, v);
    if (!request_.request_id.empty()) res.set("X-Request-Id", request_.request_id);
    if (chunked_) res.chunked(true);
    res.keep_alive(keep_alive_);
    bhttp::response_serializer<bhttp::empty_body> sr{res};
    error_code ec;
    stream_.expires_after(write_timeout_);
    co_await bhttp::async_write_header(stream_, sr, asio::redirect_error(asio::use_awaitable, ec));
    if (head_) {
      // HEAD (RFC 9110 §9.3.2): the header fields are the whole response; the handler's writes
      // are dropped and its stop token tells it to end.
      finished_ = true;
      stop_.request_stop();
    }
    co_return done_writing(ec);
  }

  async::Task<bool> write(std::string_view data) override {
    if (!started_) throw std::logic_error("ResponseStream::write before start()");
    if (finished_ || client_gone()) co_return false;
    if (data.empty()) co_return true;
    error_code ec;
    stream_.expires_after(write_timeout_);
    if (chunked_) {
      // RFC 9112 §7.1: chunk-size CRLF chunk-data CRLF, gathered into one write.
      const auto chunk = bhttp::make_chunk(asio::const_buffer(data.data(), data.size()));
      co_await asio::async_write(stream_, chunk, asio::redirect_error(asio::use_awaitable, ec));
    } else {
      co_await asio::async_write(stream_, asio::const_buffer(data.data(), data.size()),
                                 asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return done_writing(ec);
  }

  async::Task<bool> finish() override {
    if (!started_) throw std::logic_error("ResponseStream::finish before start()");
    if (finished_) co_return !client_gone();
    finished_ = true;
    if (client_gone()) co_return false;
    if (!chunked_) co_return true;  // HTTP/1.0: the end of the connection ends the body
    error_code ec;
    stream_.expires_after(write_timeout_);
    const auto last = bhttp::make_chunk_last();  // RFC 9112 §7.1: last-chunk, empty trailer section
    co_await asio::async_write(stream_, last, asio::redirect_error(asio::use_awaitable, ec));
    co_return done_writing(ec);
  }

  async::Task<bool> respond(const Response& response) override {
    if (started_) throw std::logic_error("ResponseStream::respond: the response was already started");
    started_ = true;
    finished_ = true;
    Response r = response;
    co_await run_after_hook(r);
    status_ = r.status;
    auto res = to_beast(r, request_.request_id, version_, keep_alive_, head_);
    error_code ec;
    stream_.expires_after(write_timeout_);
    co_await bhttp::async_write(stream_, res, asio::redirect_error(asio::use_awaitable, ec));
    co_return done_writing(ec);
  }

  std::stop_token stop_token() const override { return stop_.get_token(); }
  bool client_gone() const override { return watch_->gone; }
  bool started() const override { return started_; }

  /// The stop source behind stop_token() (the server triggers it at shutdown).
  std::stop_source& stop_source() { return stop_; }
  /// The status sent (0 before start()/respond()).
  int status() const { return status_; }
  /// The whole response was sent and the connection may carry the next request.
  bool reusable() const { return finished_ && !client_gone() && keep_alive_; }
  /// The handler failed after start(): the body stays unfinished and the connection is closed.
  void abort() { finished_ = true; keep_alive_ = false; }

  /// Starts watching the socket for the client going away (while the handler runs).
  void watch() {
    watch_->socket = &stream_.socket();
    arm(watch_);
  }

  /// Stops watching; a wait still pending completes later with operation_aborted and touches
  /// nothing but the shared state. Call before the connection reads its next request.
  void unwatch() {
    if (!watch_->socket) return;
    watch_->socket = nullptr;
    if (watch_->pending) {
      error_code ec;
      stream_.socket().cancel(ec);  // only the readiness wait is outstanding here
    }
  }

 private:
  /// State shared with the pending readiness wait (it may complete after this object is gone).
  struct Watch {
    tcp::socket* socket = nullptr;  // null once unwatch() ran
    std::stop_source stop;
    bool pending = false;
    bool gone = false;
  };

  /// Arms one readiness wait. Readable + a peek of 0 bytes = the client closed (EOF); an error =
  /// reset; readable data = a pipelined next request (left in place; watching ends there).
  static void arm(const std::shared_ptr<Watch>& w) {
    w->pending = true;
    w->socket->async_wait(tcp::socket::wait_read, [w](error_code ec) {
      w->pending = false;
      if (!w->socket || ec == asio::error::operation_aborted) return;
      if (ec) {
        mark_gone(*w);
        return;
      }
      char byte = 0;
      const ssize_t n = ::recv(w->socket->native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        mark_gone(*w);
      } else if (n < 0) {
        arm(w);  // spurious readiness
      }
    });
  }

  static void mark_gone(Watch& w) {
    w.gone = true;
    w.stop.request_stop();
  }

  /// After a write: clears the deadline (an expired deadline with nothing pending would fail the
  /// next read of this keep-alive connection) and records a failure as the client being gone.
  bool done_writing(const error_code& ec) {
    stream_.expires_never();
    if (ec) {
      if (!is_disconnect(ec)) log::debug("stream_write_failed", {{"error", ec.message()}});
      mark_gone(*watch_);
      keep_alive_ = false;
      return false;
    }
    return true;
  }

  /// The middleware's `after` hook, on the blocking pool (where the hooks always run).
  async::Task<void> run_after_hook(Response& r) {
    if (!middleware_.after) co_return;
    try {
      auto job = [this, &r] { middleware_.after(request_, r); };
      co_await run_blocking(pool_, job);
    } catch (const std::exception& e) {
      log::error("http_middleware_failed", {{"error", e.what()}, {"request_id", request_.request_id}});
    }
  }

  beast::tcp_stream& stream_;
  const Request& request_;
  unsigned version_;
  bool chunked_;
  bool keep_alive_;
  bool head_;  // a HEAD request: no body is ever sent
  std::chrono::milliseconds write_timeout_;
  asio::thread_pool& pool_;
  const Middleware& middleware_;
  std::stop_source stop_;
  std::shared_ptr<Watch> watch_;
  bool started_ = false;
  bool finished_ = false;
  int status_ = 0;
};

asio::awaitable<StreamOutcome> Server::Impl::run_stream(beast::tcp_stream& stream, unsigned version, bool keep_alive,
                                                        Request& request, const RouteMatch& match,
                                                        const std::string& route, Clock::time_point started_at) {
  // The `before` hook may answer instead (auth, CORS preflight); it runs on the blocking pool.
  // Without a hook the handler starts at once (no pool hop).
  std::optional<Response> early;
  bool before_failed = false;
  if (middleware.before) {
    try {
      early = co_await run_blocking(*pool, [this, &request]() { return middleware.before(request); });
    } catch (const std::exception& e) {
      log::error("http_middleware_failed", {{"error", e.what()}, {"request_id", request.request_id}});
      before_failed = true;
    }
  }
  request.path_params = match.params;

  StreamImpl out(stream, request, version, keep_alive, opts.stream_write_timeout, *pool, middleware);
  // Registered so that shutdown() can stop the handler; unregistered however the frame ends.
  struct Registration {
    Impl& im;
    std::uint64_t id;
    ~Registration() {
      std::lock_guard lk(im.streams_mu);
      im.streams.erase(id);
      --im.streams_open;
    }
  };
  std::uint64_t id = 0;
  {
    std::lock_guard lk(streams_mu);
    id = next_stream_id++;
    streams.emplace(id, out.stop_source());
    ++streams_open;
  }
  Registration registration{*this, id};
  if (stopping) out.stop_source().request_stop();

  const Response internal_error =
      Response::problem(500, "Internal Server Error", "The server failed to handle the request.");
  if (before_failed) {
    co_await out.respond(internal_error);
  } else if (early) {
    co_await out.respond(*early);
  } else {
    out.watch();
    std::string failure;
    try {
      co_await (*match.stream_handler)(request, out);
    } catch (const std::exception& e) {
      failure = e.what();
    } catch (...) {
      failure = "unknown exception";
    }
    out.unwatch();
    if (!failure.empty()) {
      log::error("http_handler_failed", {{"error", failure}, {"request_id", request.request_id}});
      if (out.started()) {
        out.abort();  // the client must not mistake a cut-off body for a complete one
      } else {
        co_await out.respond(internal_error);
      }
    } else if (!out.started()) {
      log::error("http_handler_failed",
                 {{"error", "streaming handler returned without a response"}, {"request_id", request.request_id}});
      co_await out.respond(internal_error);
    } else {
      co_await out.finish();
    }
  }
  record(request, route, out.status(), started_at);
  co_return StreamOutcome{out.reusable(), out.status()};
}

asio::awaitable<void> Server::Impl::session(tcp::socket socket) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  std::string remote;
  {
    error_code ec;
    auto ep = stream.socket().remote_endpoint(ec);
    if (!ec) remote = ep.address().to_string();
  }
  bool first = true;
  for (;;) {
    bhttp::request_parser<bhttp::string_body> parser;
    parser.body_limit(opts.max_body_bytes);
    parser.header_limit(16 * 1024);
    error_code ec;
    stream.expires_after(first ? opts.read_timeout : opts.idle_timeout);
    first = false;
    co_await bhttp::async_read_header(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
    const auto started_at = Clock::now();
    Request request;
    request.remote_addr = remote;
    request.request_id = core::uuid4();

    // Sends an error answer produced by the server itself (never reaches a handler) and closes.
    // 413 problems name the limit in bytes (docs/json-input.md).
    const nlohmann::json no_extra = nlohmann::json::object();
    const nlohmann::json body_limit = {{"limit", opts.max_body_bytes}};
    // `unread`: request bytes may be left unread (the body, or the rest of a bad header), so
    // the connection is closed in stages (linger) for the client to read this answer.
    auto fail = [&](int status, const std::string& title, const std::string& detail, const nlohmann::json& extra,
                    bool unread = true) -> asio::awaitable<void> {
      if (request.method.empty()) request.method = "UNKNOWN";
      Response r = Response::problem(status, title, detail, extra);
      auto res = to_beast(r, request.request_id, 11, false);
      record(request, "unmatched", status, started_at);
      error_code wec;
      stream.expires_after(opts.read_timeout);
      co_await bhttp::async_write(stream, res, asio::redirect_error(asio::use_awaitable, wec));
      if (!wec && unread) co_await linger(stream);
    };

    if (ec) {
      if (ec == bhttp::error::body_limit) {
        parse_target(parser.get(), request);
        co_await fail(413, "Payload Too Large",
                      "The request body exceeds the limit of " + std::to_string(opts.max_body_bytes) + " bytes.",
                      body_limit);
      } else if (ec == bhttp::error::header_limit) {
        // RFC 6585 §5: the header section is too large.
        co_await fail(431, "Request Header Fields Too Large",
                      "The request's header section exceeds the limit of 16384 bytes.", no_extra);
      } else if (ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category() &&
                 ec != bhttp::error::end_of_stream && ec != bhttp::error::partial_message) {
        co_await fail(400, "Bad Request", "The request could not be parsed as HTTP/1.1.", no_extra);
      }
      break;  // timeout, disconnect or protocol error: close the connection
    }

    if (!parse_target(parser.get(), request)) {
      co_await fail(400, "Bad Request", "The request target is malformed.", no_extra);
      break;
    }
    if (parser.get()[bhttp::field::expect] == "100-continue") {
      bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, parser.get().version()};
      stream.expires_after(opts.read_timeout);
      co_await bhttp::async_write(stream, cont, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;
    }
    if (!parser.is_done()) {
      stream.expires_after(opts.read_timeout);
      co_await bhttp::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == bhttp::error::body_limit) {
          co_await fail(413, "Payload Too Large",
                        "The request body exceeds the limit of " + std::to_string(opts.max_body_bytes) + " bytes.",
                        body_limit);
        } else if (!is_disconnect(ec) && ec != bhttp::error::partial_message) {
          co_await fail(400, "Bad Request", "The request body could not be read: " + ec.message(), no_extra);
        }
        break;
      }
    }

    bhttp::request<bhttp::string_body> req = parser.release();
    // RFC 9112 §3.2: a server answers 400 to an HTTP/1.1 request without a Host header field.
    if (req.version() >= 11 && req.find(bhttp::field::host) == req.end()) {
      co_await fail(400, "Bad Request", "An HTTP/1.1 request must carry a Host header field (RFC 9112 §3.2).",
                    no_extra, false);
      break;
    }
    request.headers = to_headers(req);
    request.body = std::move(req.body());

    // W3C trace context: continue the caller's trace or start a new one.
    std::optional<tracing::TraceContext> incoming;
    if (auto tp = request.headers.get("traceparent")) incoming = tracing::parse_traceparent(*tp);
    const tracing::TraceContext span_ctx = incoming ? tracing::child_of(*incoming) : tracing::new_root();
    request.traceparent = span_ctx.to_traceparent();

    const bool upgrade = is_websocket_upgrade(req);
    const RouteMatch match = router.match(request.method, request.path, upgrade);
    const std::string route = match.pattern.empty() ? "unmatched" : match.pattern;
    tracing::Span span(request.method + " " + route, span_ctx,
                       incoming ? std::optional<std::string>(incoming->span_id) : std::nullopt, 2);
    span.set_attribute("http.request.method", request.method);
    span.set_attribute("http.route", route);
    span.set_attribute("url.path", request.path);

    if (match.ws_handler) {
      WsAccept accept;
      try {
        accept = co_await run_blocking(*pool, [this, &request, &match]() -> WsAccept {
          if (middleware.before) {
            if (auto early = middleware.before(request)) {
              WsAccept a;
              a.reject = std::move(*early);
              return a;
            }
          }
          request.path_params = match.params;
          WsAccept a = (*match.ws_handler)(request);
          if (a.reject && middleware.after) middleware.after(request, *a.reject);
          return a;
        });
      } catch (const core::Unavailable& e) {
        accept = WsAccept{};
        accept.reject = unavailable(e, request);
      } catch (const std::exception& e) {
        log::error("websocket_handler_failed", {{"error", e.what()}, {"request_id", request.request_id}});
        accept = WsAccept{};
        accept.reject = Response::problem(500, "Internal Server Error", "The server failed to handle the request.");
      }
      if (!accept.reject) {
        span.set_attribute("http.response.status_code", 101);
        span.end();
        co_await run_websocket(std::move(stream), std::move(req), std::move(request), std::move(accept), started_at);
        co_return;
      }
      const int status = accept.reject->status;
      auto res = to_beast(*accept.reject, request.request_id, req.version(), false);
      record(request, route, status, started_at);
      stream.expires_after(opts.read_timeout);
      co_await bhttp::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
      span.set_attribute("http.response.status_code", status);
      span.end();
      break;
    }

    if (match.stream_handler) {
      const bool keep_alive = req.keep_alive() && !stopping;
      const StreamOutcome outcome =
          co_await run_stream(stream, req.version(), keep_alive, request, match, route, started_at);
      span.set_attribute("http.response.status_code", outcome.status);
      if (outcome.status >= 500) span.set_error("HTTP " + std::to_string(outcome.status));
      span.end();
      if (!outcome.reusable || stopping) break;
      continue;
    }

    Response response;
    try {
      response = co_await run_blocking(*pool, [this, &request, &match, upgrade]() -> Response {
        Response r;
        bool answered = false;
        if (middleware.before) {
          if (auto early = middleware.before(request)) {
            r = std::move(*early);
            answered = true;
          }
        }
        if (!answered) {
          if (match.handler) {
            request.path_params = match.params;
            try {
              r = (*match.handler)(request);
            } catch (const core::Unavailable& e) {
              r = unavailable(e, request);
            } catch (const std::exception& e) {
              log::error("http_handler_failed", {{"error", e.what()}, {"request_id", request.request_id}});
              r = Response::problem(500, "Internal Server Error", "The server failed to handle the request.");
            } catch (...) {
              r = Response::problem(500, "Internal Server Error", "The server failed to handle the request.");
            }
          } else if (match.path_exists) {
            std::string allow;
            bool get_listed = false;
            for (const auto& m : match.allowed_methods) {
              allow += (allow.empty() ? "" : ", ") + m;
              get_listed = get_listed || m == "GET";
            }
            // A plain GET (or HEAD) on a WebSocket-only path needs the Upgrade handshake
            // (RFC 9110 §15.5.22).
            const bool only_get_ws = (request.method == "GET" || request.method == "HEAD") && !upgrade && get_listed;
            if (only_get_ws) {
              r = Response::problem(426, "Upgrade Required", "This endpoint only accepts WebSocket connections.");
              r.headers.set("Upgrade", "websocket");
              r.headers.set("Connection", "Upgrade");
            } else {
              r = Response::problem(405, "Method Not Allowed",
                                    "Method " + request.method + " is not allowed here; allowed: " + allow + ".");
              r.headers.set("Allow", allow);
            }
          } else {
            r = Response::problem(404, "Not Found", "No resource at " + request.path + ".");
          }
        }
        if (middleware.after) middleware.after(request, r);
        return r;
      });
    } catch (const std::exception& e) {
      log::error("http_middleware_failed", {{"error", e.what()}, {"request_id", request.request_id}});
      response = Response::problem(500, "Internal Server Error", "The server failed to handle the request.");
    }

    const bool keep_alive = req.keep_alive() && !stopping;
    auto res = to_beast(response, request.request_id, req.version(), keep_alive, request.method == "HEAD");
    // Recorded before the write, so a client that saw the response also sees it in /metrics.
    record(request, route, response.status, started_at);
    stream.expires_after(opts.read_timeout);
    co_await bhttp::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
    span.set_attribute("http.response.status_code", response.status);
    if (response.status >= 500) span.set_error("HTTP " + std::to_string(response.status));
    span.end();
    if (ec || !keep_alive) break;
  }
  error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

asio::awaitable<void> Server::Impl::run_websocket(beast::tcp_stream stream, bhttp::request<bhttp::string_body> req,
                                                  Request request, WsAccept accept, Clock::time_point started_at) {
  stream.expires_never();  // the websocket stream manages its own timeouts
  websocket::stream<beast::tcp_stream> ws(std::move(stream));
  websocket::stream_base::timeout to{};
  to.handshake_timeout = opts.read_timeout;
  // Beast pings after half the idle time and drops the peer after the full idle time without traffic.
  to.idle_timeout = 2 * opts.ws_ping_interval;
  to.keep_alive_pings = true;
  ws.set_option(to);
  const std::optional<std::string> sub = accept.subprotocol;
  const std::string rid = request.request_id;
  ws.set_option(websocket::stream_base::decorator([sub, rid](websocket::response_type& res) {
    if (sub) res.set(bhttp::field::sec_websocket_protocol, *sub);
    res.set("X-Request-Id", rid);
  }));
  error_code ec;
  co_await ws.async_accept(req, asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    log::info("websocket_accept_failed", {{"error", ec.message()}, {"request_id", request.request_id}});
    record(request, "unmatched", 400, started_at);
    co_return;
  }
  const std::string route = router.match(request.method, request.path, true).pattern;
  record(request, route.empty() ? "unmatched" : route, 101, started_at);

  auto conn = std::make_shared<WsConnImpl>(io, std::move(ws), opts.ws_max_message_bytes);
  std::uint64_t id = 0;
  {
    std::lock_guard lk(ws_mu);
    id = next_ws_id++;
    ws_conns[id] = conn;
  }
  ++ws_open;
  ws_gauge.inc({{"service", opts.service_name}});
  if (stopping) conn->going_away();

  // The asynchronous open runs on the connection's strand after the synchronous one (if any).
  std::function<void()> start_async;
  if (accept.on_open_async) {
    conn->keep_pending_for_async_open();
    start_async = [this, conn, cb = std::move(accept.on_open_async), rid]() {
      auto task = cb(conn);
      auto on_done = [conn, rid](std::exception_ptr e) {
        if (!e) return;
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          log::error("websocket_on_open_failed", {{"error", ex.what()}, {"request_id", rid}});
        } catch (...) {
          log::error("websocket_on_open_failed", {{"error", "unknown exception"}, {"request_id", rid}});
        }
        conn->close(1011, "internal error");
      };
      io->post(conn->executor(), [conn, t = std::make_shared<async::Task<void>>(std::move(task)),
                                  done = std::move(on_done)]() mutable {
        asio::co_spawn(conn->executor(), std::move(*t), std::move(done));
      });
    };
  }
  if (accept.on_open) {
    asio::post(*pool, [conn, cb = std::move(accept.on_open), rid, start_async]() {
      try {
        cb(conn);
      } catch (const std::exception& e) {
        log::error("websocket_on_open_failed", {{"error", e.what()}, {"request_id", rid}});
        conn->close(1011, "internal error");
      }
      conn->open_returned();
      if (start_async) start_async();
    });
  } else {
    if (!start_async) conn->open_returned();
    if (start_async) start_async();
  }
  co_await conn->run();

  {
    std::lock_guard lk(ws_mu);
    ws_conns.erase(id);
  }
  --ws_open;
  ws_gauge.dec({{"service", opts.service_name}});
}

void Server::Impl::shutdown() {
  std::lock_guard lk(stop_mu);
  if (!started || stopping.exchange(true)) return;
  // 1. stop accepting, 2. ask every WebSocket to go away (1001), wait briefly for them.
  asio::post(acceptor->get_executor(), [this] {
    error_code ec;
    acceptor->close(ec);
  });
  {
    std::lock_guard wl(ws_mu);
    for (auto& [id, w] : ws_conns) {
      if (auto c = w.lock()) c->going_away();
    }
  }
  {
    std::lock_guard sl(streams_mu);
    for (auto& [id, src] : streams) src.request_stop();  // streaming handlers end their bodies
  }
  const auto deadline = Clock::now() + std::chrono::seconds(3);
  while (ws_open.load() + streams_open.load() > 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  // 3. stop the I/O loop and join its threads. From now on connections post nothing and
  //    their methods are no-ops, so handlers still running or queued finish quickly.
  io->mark_stopped();
  ioc->stop();
  for (auto& t : threads) {
    if (t.joinable()) t.join();
  }
  threads.clear();
  // 4. connections still registered are finished: run their close callbacks (unsubscribe etc.).
  std::vector<std::shared_ptr<WsConnImpl>> left;
  {
    std::lock_guard wl(ws_mu);
    for (auto& [id, w] : ws_conns) {
      if (auto c = w.lock()) left.push_back(std::move(c));
    }
  }
  for (auto& c : left) c->server_stopped();
  left.clear();
  // 5. let the blocking pool drain: queued on_open callbacks and handlers run to completion
  //    (nothing is dropped with a connection inside it).
  pool->join();
  // 6. destroy pending handlers and coroutine frames (open HTTP connections) while the pool and
  //    router still exist. The io_context object itself lives on while another thread still
  //    holds a WebSocket connection (shared ownership), so that handle stays safe to use.
  {
    error_code ec;
    if (acceptor) acceptor->close(ec);
  }
  acceptor.reset();
  io->ioc.shutdown();
  ioc = nullptr;
  io.reset();
}

Server::Server(ServerOptions options, Router router, Middleware middleware)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(router), std::move(middleware))) {}

Server::~Server() {
  try {
    stop();
  } catch (...) {
    // never throw from a destructor
  }
}

void Server::start() {
  auto& im = *impl_;
  std::lock_guard lk(im.stop_mu);
  if (im.started) throw std::logic_error("Server::start called twice");
  im.io = std::make_shared<IoState>(std::max(1, im.opts.io_threads));
  im.ioc = &im.io->ioc;
  im.pool = std::make_unique<asio::thread_pool>(static_cast<std::size_t>(std::max(1, im.opts.blocking_threads)));
  error_code ec;
  tcp::endpoint ep;
  auto addr = asio::ip::make_address(im.opts.host, ec);
  if (!ec) {
    ep = tcp::endpoint(addr, im.opts.port);
  } else {
    tcp::resolver resolver(*im.ioc);
    auto results = resolver.resolve(im.opts.host, std::to_string(im.opts.port), ec);
    if (ec || results.empty()) {
      throw std::runtime_error("cannot resolve listen address " + im.opts.host + ": " + ec.message());
    }
    ep = results.begin()->endpoint();
  }
  im.acceptor = std::make_unique<tcp::acceptor>(asio::make_strand(*im.ioc));
  auto check = [&](const char* what) {
    if (ec) {
      throw std::runtime_error(std::string("cannot ") + what + " " + im.opts.host + ":" +
                               std::to_string(im.opts.port) + ": " + ec.message());
    }
  };
  im.acceptor->open(ep.protocol(), ec);
  check("open");
  im.acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  check("configure");
  im.acceptor->bind(ep, ec);
  check("bind");
  im.acceptor->listen(asio::socket_base::max_listen_connections, ec);
  check("listen on");
  im.bound_port = im.acceptor->local_endpoint().port();
  asio::co_spawn(im.acceptor->get_executor(), im.accept_loop(), asio::detached);
  for (int i = 0; i < std::max(1, im.opts.io_threads); ++i) {
    im.threads.emplace_back([&im] {
      name_this_thread("http-io");
      for (;;) {
        try {
          im.ioc->run();
          return;
        } catch (const std::exception& e) {
          log::error("io_thread_exception", {{"error", e.what()}});
        }
      }
    });
  }
  im.started = true;
  log::info("http_server_started",
            {{"service", im.opts.service_name}, {"host", im.opts.host}, {"port", im.bound_port}});
}

std::uint16_t Server::port() const { return impl_->bound_port; }

void Server::stop() { impl_->shutdown(); }

std::size_t Server::websocket_count() const { return impl_->ws_open.load(); }

std::size_t Server::stream_count() const { return impl_->streams_open.load(); }

}  // namespace core::http
