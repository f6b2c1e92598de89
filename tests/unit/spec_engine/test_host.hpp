#pragma once
// What a run needs from its host in the Spec Engine tests: a started core::async::Runtime (I/O
// threads + blocking pool) and an AsyncHttpClient on it. Members are destroyed in reverse
// order: the client first, then the runtime (which stops and destroys suspended coroutines).

#include "core/async.hpp"
#include "core/http_client.hpp"

namespace spec_engine::testing {

/// A runtime with `io` I/O threads and `blocking` pool threads, started, plus its HTTP client.
struct Host {
  explicit Host(int io = 2, int blocking = 4) : rt(core::async::RuntimeOptions{io, blocking, "test"}), http(rt) {
    rt.start();
  }
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  core::async::Runtime rt;
  core::http::AsyncHttpClient http;
};

}  // namespace spec_engine::testing
