// paced-model-server: an OpenAI-compatible Chat Completions server that streams at a fixed rate
// with a fixed script per conversation (paced_model.hpp). For load tests and benchmarks.
#include <csignal>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "core/log.hpp"
#include "core/server.hpp"
#include "core/util.hpp"
#include "paced_model.hpp"

int main(int argc, char** argv) {
  CLI::App app{
      "paced-model-server: an OpenAI-compatible Chat Completions server (POST /v1/chat/completions, streaming "
      "and not) that answers every conversation with the same script at a fixed pace: --turns turns of --chunks "
      "text chunks at --rate chunks/s, each ending in a write_file tool call, then a plain text answer. The turn "
      "is the number of assistant messages in the request, so any number of conversations (and engine restarts) "
      "work. GET /stats counts requests per conversation."};
  std::string host = "127.0.0.1";
  int port = 8090;
  int io_threads = 1;
  std::size_t max_body = 16u << 20;
  std::string log_level = "warn";
  paced_model::Script script;
  app.add_option("--host", host, "Listen address")->envname("PACED_MODEL_HOST")->capture_default_str();
  app.add_option("--port", port, "Listen port (0 = any free port, printed on stdout)")
      ->envname("PACED_MODEL_PORT")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--turns", script.turns, "Tool-call turns per conversation before the final answer")
      ->envname("PACED_MODEL_TURNS")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  app.add_option("--chunks", script.chunks, "Text chunks per tool-call turn")
      ->envname("PACED_MODEL_CHUNKS")
      ->check(CLI::Range(1, 10000))
      ->capture_default_str();
  app.add_option("--rate", script.rate, "Text chunks per second per stream")
      ->envname("PACED_MODEL_RATE")
      ->check(CLI::Range(0.001, 100000.0))
      ->capture_default_str();
  app.add_option("--model", script.model, "Model id reported in responses and /v1/models")
      ->envname("PACED_MODEL_MODEL")
      ->capture_default_str();
  app.add_option("--io-threads", io_threads, "Threads running the event loop (streams never hold a thread)")
      ->envname("PACED_MODEL_IO_THREADS")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--max-body-bytes", max_body, "Largest request body (bigger: 413)")
      ->envname("PACED_MODEL_MAX_BODY_BYTES")
      ->check(CLI::Range(std::size_t{1024}, std::size_t{1} << 30))
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error (info logs every request)")
      ->envname("PACED_MODEL_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  core::log::init("paced-model-server", log_level);
  core::raise_fd_limit();

  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  paced_model::Stats stats;
  core::http::ServerOptions so;
  so.host = host;
  so.port = static_cast<std::uint16_t>(port);
  so.io_threads = io_threads;
  so.blocking_threads = 2;  // only /stats, /v1/models and /health use the blocking pool
  so.max_body_bytes = max_body;
  so.idle_timeout = std::chrono::seconds(120);
  so.service_name = "paced-model-server";
  try {
    core::http::Server server(so, paced_model::make_router(script, stats));
    server.start();
    std::cout << "paced-model-server listening on http://" << host << ":" << server.port() << "/v1 (turns="
              << script.turns << " chunks=" << script.chunks << " rate=" << script.rate
              << "/s pacing=" << script.pacing_seconds() << " s)" << std::endl;
    int sig = 0;
    sigwait(&stop_signals, &sig);
    server.stop();
  } catch (const std::exception& e) {
    std::cerr << "paced-model-server: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
