// HTTPS client: peer verification against a throwaway CA made with the openssl CLI.
#include "core/http_client.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <gtest/gtest.h>

using namespace core::http;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

/// Creates ca.pem and server cert/key (SAN 127.0.0.1, localhost) in a fresh temp dir.
fs::path make_pki() {
  fs::path dir = fs::temp_directory_path() / ("core-tls-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "ext.cnf") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                    "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                                    "extendedKeyUsage=serverAuth\n";
  const std::string d = dir.string();
  const std::string cmd =
      "cd '" + d + "' && "
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 1 -subj '/CN=Test CA' "
      "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign && "
      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj '/CN=localhost' && "
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 1 "
      "-extfile ext.cnf";
  const int rc = std::system(("(" + cmd + ") >/dev/null 2>&1").c_str());
  EXPECT_EQ(rc, 0) << "openssl failed";
  return dir;
}

/// Serves `n` connections: TLS handshake, read the request head, answer 200 "secure".
class TinyTlsServer {
 public:
  TinyTlsServer(const fs::path& dir, int n) : ctx_(asio::ssl::context::tls_server), acc_(ioc_) {
    ctx_.use_certificate_chain_file((dir / "server.pem").string());
    ctx_.use_private_key_file((dir / "server.key").string(), asio::ssl::context::pem);
    asio::ip::tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acc_.open(ep.protocol());
    acc_.bind(ep);
    acc_.listen();
    port_ = acc_.local_endpoint().port();
    thread_ = std::thread([this, n] {
      for (int i = 0; i < n; ++i) {
        asio::ssl::stream<asio::ip::tcp::socket> s(ioc_, ctx_);
        boost::system::error_code ec;
        acc_.accept(s.next_layer(), ec);
        if (ec) return;
        s.handshake(asio::ssl::stream_base::server, ec);
        if (ec) continue;  // e.g. the client rejected our certificate
        std::string got;
        char buf[1024];
        while (got.find("\r\n\r\n") == std::string::npos) {
          auto k = s.read_some(asio::buffer(buf), ec);
          if (ec) break;
          got.append(buf, k);
        }
        const std::string res = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecure";
        asio::write(s, asio::buffer(res), ec);
        s.shutdown(ec);
      }
    });
  }
  ~TinyTlsServer() { thread_.join(); }
  unsigned short port() const { return port_; }

 private:
  asio::io_context ioc_;
  asio::ssl::context ctx_;
  asio::ip::tcp::acceptor acc_;
  unsigned short port_ = 0;
  std::thread thread_;
};

}  // namespace

TEST(HttpClientTls, VerifiesAgainstCaFileAndRejectsUnknownCa) {
  const fs::path dir = make_pki();
  ASSERT_TRUE(fs::exists(dir / "server.pem"));
  {
    TinyTlsServer srv(dir, 3);
    ClientRequest r;
    r.url = "https://127.0.0.1:" + std::to_string(srv.port()) + "/x?y=1";
    r.timeout = 5s;
    r.tls.ca_file = (dir / "ca.pem").string();
    auto res = request(r);
    EXPECT_EQ(res.status, 200);
    EXPECT_EQ(res.body, "secure");

    r.url = "https://localhost:" + std::to_string(srv.port()) + "/";  // SNI + DNS name check
    res = request(r);
    EXPECT_EQ(res.status, 200);

    r.url = "https://127.0.0.1:" + std::to_string(srv.port()) + "/";
    r.tls.ca_file.clear();  // system store does not know our CA
    try {
      request(r);
      ADD_FAILURE() << "expected a TLS failure";
    } catch (const ClientError& e) {
      EXPECT_EQ(e.kind(), ClientErrorKind::tls) << e.what();
    }
  }
  fs::remove_all(dir);
}
