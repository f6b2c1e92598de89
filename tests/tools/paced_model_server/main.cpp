// paced-model-server: an OpenAI-compatible Chat Completions server that streams at a fixed rate
// with a fixed script per conversation (paced_model.hpp). For load tests and benchmarks.
#include <csignal>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "apps/cli_options.hpp"
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
  apps::env_option(app, "--host", "PACED_MODEL_HOST", host, "Listen address");
  apps::env_option(app, "--port", "PACED_MODEL_PORT", port, "Listen port (0 = any free port, printed on stdout)")
      ->check(CLI::Range(0, 65535));
  apps::env_option(app, "--turns", "PACED_MODEL_TURNS", script.turns,
                   "Tool-call turns per conversation before the final answer")
      ->check(CLI::Range(0, 1000));
  apps::env_option(app, "--chunks", "PACED_MODEL_CHUNKS", script.chunks, "Text chunks per tool-call turn")
      ->check(CLI::Range(1, 10000));
  apps::env_option(app, "--rate", "PACED_MODEL_RATE", script.rate, "Text chunks per second per stream")
      ->check(CLI::Range(0.001, 100000.0));
  apps::env_option(app, "--model", "PACED_MODEL_MODEL", script.model, "Model id reported in responses and /v1/models");
  apps::env_option(app, "--io-threads", "PACED_MODEL_IO_THREADS", io_threads,
                   "Threads running the event loop (streams never hold a thread)")
      ->check(CLI::Range(1, 64));
  apps::env_option(app, "--max-body-bytes", "PACED_MODEL_MAX_BODY_BYTES", max_body,
                   "Largest request body (bigger: 413)")
      ->check(CLI::Range(std::size_t{1024}, std::size_t{1} << 30));
  apps::env_option(app, "--log-level", "PACED_MODEL_LOG_LEVEL", log_level,
                   "trace|debug|info|warn|error (info logs every request)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
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
