#pragma once
// Raw POSIX sockets on 127.0.0.1 for the core server and client tests: what a misbehaving peer
// does (a listener that never accepts, bytes written by hand) that our own client never would.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include <gtest/gtest.h>

namespace core_test {

/// A listening TCP socket on 127.0.0.1 with an ephemeral port; never accepts unless asked.
/// Closes the socket on destruction.
struct RawListener {
  int fd = -1;
  int port = 0;
  RawListener() {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd, 8), 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~RawListener() { ::close(fd); }
  RawListener(const RawListener&) = delete;
  RawListener& operator=(const RawListener&) = delete;
};

/// A TCP socket connected to 127.0.0.1:`port`, or -1 when the connect fails.
inline int connect_loopback(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    if (fd >= 0) ::close(fd);
    return -1;
  }
  return fd;
}

/// Writes all of `s` to `fd`; stops early when the peer is gone (no SIGPIPE).
inline void send_all(int fd, const std::string& s) {
  std::size_t off = 0;
  while (off < s.size()) {
    const auto n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<std::size_t>(n);
  }
}

/// Sends `raw` on a new connection to 127.0.0.1:`port` and reads until the server closes it;
/// "" when the connect fails.
inline std::string raw_exchange(std::uint16_t port, const std::string& raw) {
  const int fd = connect_loopback(port);
  if (fd < 0) return {};
  send_all(fd, raw);
  std::string got;
  char buf[4096];
  for (;;) {
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return got;
}

}  // namespace core_test
