// spec-engine: the agent runtime service (docs/spec-engine-service.md). Flags have matching
// environment variables (flag wins); see --help.
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "core/async.hpp"
#include "core/db.hpp"
#include "core/http_client.hpp"
#include "core/log.hpp"
#include "core/router.hpp"
#include "core/server.hpp"
#include "core/tracing.hpp"
#include "core/util.hpp"
#include "spec_engine/api/routes.hpp"
#include "spec_engine/bus/event_hub.hpp"
#include "spec_engine/bus/nats_bus.hpp"
#include "spec_engine/bus/run_manager.hpp"
#include "spec_engine/models/factory.hpp"
#include "spec_engine/store/store.hpp"

namespace {

/// Value of environment variable `name`, or `fallback`.
std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"spec-engine: runs agent definitions against an LLM, checkpoints every step and streams events "
               "(docs/spec-engine-service.md)."};
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string data_dir = "./var/spec-engine";
  std::string database_url;
  std::string model_override;
  int max_concurrent = 256;
  std::size_t max_queue = 64;
  // Fits the largest job the orchestrator sends: a full file tree (core/files.hpp: 8 MiB of
  // text) JSON-escaped, plus the agent definition.
  std::size_t max_body = std::size_t{32} << 20;
  std::string log_level = "info";
  std::string ca_file;
  long model_timeout_ms = 120000;
  long model_idle_timeout_ms = 60000;
  int model_max_attempts = 3;
  int max_steps = 100;
  long max_run_seconds = 900;
  long long max_tokens = 2'000'000;
  long tool_budget_ms = 10000;
  std::string recovery = "resume";
  long shutdown_grace_ms = 10000;
  int io_threads = 2;
  int blocking_threads = 8;
  int http_threads = 16;
  std::size_t db_pool_size = 16;
  long db_wait_ms = 5000;
  std::string openai_base_url = env_or("OPENAI_BASE_URL", "https://api.openai.com/v1");
  spec_engine::bus::NatsOptions nats_opts;  // defaults match deploy/claims/spec-engine.yaml

  app.add_option("--host", host, "Listen address")->envname("SPEC_ENGINE_HOST")->capture_default_str();
  app.add_option("--port", port, "Listen port (0 = any free port)")
      ->envname("SPEC_ENGINE_PORT")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  app.add_option("--data-dir", data_dir, "Directory for the SQLite database (spec_engine.db)")
      ->envname("SPEC_ENGINE_DATA_DIR")
      ->capture_default_str();
  app.add_option("--database-url", database_url,
                 "postgresql://user[:pass]@host:port/deepagents_runtime selects PostgreSQL (default: SQLite in "
                 "--data-dir)")
      ->envname("SPEC_ENGINE_DATABASE_URL");
  app.add_option("--model-override", model_override,
                 "Force every node onto one model: scripted:/path/script.json | openai[:MODEL]")
      ->envname("SPEC_ENGINE_MODEL_OVERRIDE");
  app.add_option("--openai-base-url", openai_base_url, "OpenAI-compatible base URL (env OPENAI_BASE_URL)")
      ->capture_default_str();
  app.add_option("--ca-file", ca_file, "PEM CA bundle for HTTPS model endpoints (default: system store)")
      ->envname("SPEC_ENGINE_CA_FILE");
  app.add_option("--model-timeout-ms", model_timeout_ms, "Deadline of one model call, end to end")
      ->envname("SPEC_ENGINE_MODEL_TIMEOUT_MS")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--model-idle-timeout-ms", model_idle_timeout_ms, "Longest gap between streamed model chunks")
      ->envname("SPEC_ENGINE_MODEL_IDLE_TIMEOUT_MS")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--model-max-attempts", model_max_attempts, "Attempts per model call (429/5xx/connect retried)")
      ->envname("SPEC_ENGINE_MODEL_MAX_ATTEMPTS")
      ->check(CLI::Range(1, 20))
      ->capture_default_str();
  app.add_option("--max-concurrent-runs", max_concurrent,
                 "Runs in memory at once (coroutines: a run waiting for the model holds no thread)")
      ->envname("SPEC_ENGINE_MAX_CONCURRENT_RUNS")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  app.add_option("--max-queue", max_queue, "Jobs waiting for a run slot before invoke answers 429")
      ->envname("SPEC_ENGINE_MAX_QUEUE")
      ->capture_default_str();
  app.add_option("--max-body-bytes", max_body, "Largest request body (bigger: 413); the default fits a job carrying the largest file tree (8 MiB of text)")
      ->envname("SPEC_ENGINE_MAX_BODY_BYTES")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-steps", max_steps, "Model calls per run (all agents)")
      ->envname("SPEC_ENGINE_MAX_STEPS")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-run-seconds", max_run_seconds, "Wall-clock budget per run")
      ->envname("SPEC_ENGINE_MAX_RUN_SECONDS")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-tokens", max_tokens, "Prompt+completion tokens per run")
      ->envname("SPEC_ENGINE_MAX_TOKENS")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--tool-budget-ms", tool_budget_ms,
                 "Time budget of one built-in tool call; a call that runs out returns the tool error \"Error: "
                 "<tool>: exceeded its time budget of N ms\" to the model")
      ->envname("SPEC_ENGINE_TOOL_BUDGET_MS")
      ->check(CLI::Range(1L, 3'600'000L))
      ->capture_default_str();
  app.add_option("--recovery", recovery,
                 "Runs left in flight by a previous process: resume (from the last checkpoint) | fail")
      ->envname("SPEC_ENGINE_RECOVERY")
      ->check(CLI::IsMember({"resume", "fail"}))
      ->capture_default_str();
  app.add_option("--shutdown-grace-ms", shutdown_grace_ms,
                 "On SIGINT/SIGTERM, wait this long for runs before interrupting them (they resume at next start)")
      ->envname("SPEC_ENGINE_SHUTDOWN_GRACE_MS")
      ->capture_default_str();
  app.add_option("--io-threads", io_threads,
                 "I/O threads of the run runtime (model streams, timers) and, as many again, of the HTTP server")
      ->envname("SPEC_ENGINE_IO_THREADS")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--blocking-threads", blocking_threads, "Bounded pool running tool calls and the runs' SQL")
      ->envname("SPEC_ENGINE_BLOCKING_THREADS")
      ->check(CLI::Range(1, 1024))
      ->capture_default_str();
  app.add_option("--http-threads", http_threads, "Threads running HTTP handlers and event-stream replays")
      ->envname("SPEC_ENGINE_HTTP_THREADS")
      ->check(CLI::Range(2, 1024))
      ->capture_default_str();
  app.add_option("--db-pool-size", db_pool_size,
                 "Database connections (sized by SQL work, not by runs; PostgreSQL's max_connections is shared)")
      ->envname("SPEC_ENGINE_DB_POOL_SIZE")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1024}))
      ->capture_default_str();
  app.add_option("--db-wait-ms", db_wait_ms,
                 "Longest wait for a free database connection: an HTTP request then gets 503 + Retry-After; a "
                 "run's own writes retry")
      ->envname("SPEC_ENGINE_DB_WAIT_MS")
      ->check(CLI::Range(1L, 600'000L))
      ->capture_default_str();
  app.add_option("--nats-url", nats_opts.url,
                 "NATS server URL(s); when set, jobs are also consumed from JetStream and run status events are "
                 "published to agent.status.<thread_id>")
      ->envname("NATS_URL");
  app.add_option("--nats-stream", nats_opts.stream, "JetStream stream of jobs (created with subjects agent.execute.* "
                                                    "when missing)")
      ->envname("SPEC_ENGINE_NATS_STREAM")
      ->capture_default_str();
  app.add_option("--nats-consumer", nats_opts.consumer, "Durable pull consumer on --nats-stream (created when missing)")
      ->envname("SPEC_ENGINE_NATS_CONSUMER")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace|debug|info|warn|error")
      ->envname("SPEC_ENGINE_LOG_LEVEL")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))
      ->capture_default_str();
  app.footer(
      "Environment: OPENAI_API_KEY (never logged), OPENAI_BASE_URL, OTEL_EXPORTER_OTLP_ENDPOINT (enables trace "
      "export), MIGRATIONS_DIR. Tests only: SPEC_ENGINE_TEST_TOOL_DELAY_MS makes every built-in tool call wait "
      "that long first (a simulated slow tool; never set it in production).");
  CLI11_PARSE(app, argc, argv);

  core::log::init("spec-engine", log_level);
  const std::string otlp = env_or("OTEL_EXPORTER_OTLP_ENDPOINT", "");
  if (!otlp.empty()) core::tracing::init("spec-engine", otlp);

  // Block the stop signals in every thread; the main thread waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  // Thousands of concurrent model streams and WebSockets need as many descriptors.
  const std::size_t fd_limit = core::raise_fd_limit();

  try {
    core::db::DbConfig dbc;
    dbc.url = database_url;
    dbc.sqlite_path = std::filesystem::path(data_dir) / "spec_engine.db";
    dbc.pool_size = db_pool_size;
    dbc.lease_timeout = std::chrono::milliseconds(db_wait_ms);
    core::db::Database db(dbc);
    const int applied = core::db::migrate(db, core::db::migrations_dir("spec_engine", db.dialect()));
    core::log::info("database ready", {{"database", db.describe()}, {"migrations_applied", applied}});

    spec_engine::store::Store store(db);
    spec_engine::bus::EventHub hub;

    // Runs are coroutines on this runtime: its I/O threads wait for model streams and timers,
    // its bounded blocking pool runs tool calls and the runs' SQL. Stopped last (below).
    core::async::Runtime rt(core::async::RuntimeOptions{io_threads, blocking_threads, "runs"});
    rt.start();
    core::http::AsyncHttpClient http(rt);

    spec_engine::bus::RunManagerOptions ro;
    ro.max_concurrent_runs = max_concurrent;
    ro.max_queue = max_queue;
    ro.recovery = recovery;
    ro.limits.max_steps = max_steps;
    ro.limits.max_wall_time = std::chrono::seconds(max_run_seconds);
    ro.limits.max_tokens = max_tokens;
    ro.limits.tool_budget = std::chrono::milliseconds(tool_budget_ms);
    if (const std::string delay = env_or("SPEC_ENGINE_TEST_TOOL_DELAY_MS", ""); !delay.empty()) {
      try {
        ro.limits.test_tool_delay = std::chrono::milliseconds(std::stol(delay));
      } catch (const std::exception&) {
        std::cerr << "spec-engine: SPEC_ENGINE_TEST_TOOL_DELAY_MS must be a number of milliseconds\n";
        return 2;
      }
      core::log::warn("SPEC_ENGINE_TEST_TOOL_DELAY_MS is set: every tool call is slowed down (testing only)",
                      {{"delay_ms", ro.limits.test_tool_delay.count()}});
    }
    if (!model_override.empty()) ro.models.provider_override = model_override;
    ro.models.openai_base_url = openai_base_url;
    ro.models.openai_api_key = env_or("OPENAI_API_KEY", "");
    ro.models.tls.ca_file = ca_file;
    ro.models.request_timeout = std::chrono::milliseconds(model_timeout_ms);
    ro.models.idle_timeout = std::chrono::milliseconds(std::min(model_idle_timeout_ms, model_timeout_ms));
    ro.models.max_attempts = model_max_attempts;
    if (ro.models.provider_override) {
      // Fail at start-up, not on the first run: unknown provider, missing or malformed script.
      try {
        spec_engine::models::ModelRegistry probe(ro.models, &http);
        probe.for_node("startup-check", nullptr);
      } catch (const std::exception& e) {
        std::cerr << "spec-engine: --model-override " << model_override << ": " << e.what() << "\n";
        return 2;
      }
    }
    if (!model_override.empty() && model_override.rfind("scripted", 0) == 0) {
      core::log::warn("model override: every node uses the SCRIPTED model (offline replay, not an LLM)",
                      {{"model_override", model_override}});
    }

    // NATS (optional): connect first so runs ending during recovery already publish status.
    std::unique_ptr<spec_engine::bus::NatsBus> nats;
    if (!nats_opts.url.empty()) {
      nats_opts.max_message_bytes = max_body;
      nats = std::make_unique<spec_engine::bus::NatsBus>(nats_opts);
      nats->connect();
      ro.on_run_end = [bus = nats.get()](const std::string& thread_id, const std::string& status,
                                         const std::string& error) { bus->publish_status(thread_id, status, error); };
    }

    spec_engine::bus::RunManager runs(store, hub, ro, rt, http);
    const int recovered = runs.recover();
    if (recovered > 0) core::log::info("recovered runs from a previous process", {{"count", recovered}});
    runs.start();

    if (nats) nats->start(runs);

    core::http::Router router;
    spec_engine::api::ApiContext api_ctx{&store, &hub, &runs};
    if (nats) api_ctx.nats_state = [bus = nats.get()] { return bus->state(); };
    spec_engine::api::register_routes(router, api_ctx);
    core::http::ServerOptions so;
    so.host = host;
    so.port = static_cast<std::uint16_t>(port);
    so.max_body_bytes = max_body;
    so.io_threads = io_threads;
    so.blocking_threads = http_threads;
    so.service_name = "spec-engine";
    core::http::Server server(so, std::move(router));
    server.start();
    core::log::info("listening", {{"host", host},
                                  {"port", server.port()},
                                  {"database", db.describe()},
                                  {"max_concurrent_runs", max_concurrent},
                                  {"max_queue", max_queue},
                                  {"io_threads", io_threads},
                                  {"blocking_threads", blocking_threads},
                                  {"http_threads", http_threads},
                                  {"db_pool_size", db_pool_size},
                                  {"fd_limit", fd_limit},
                                  {"model_override", model_override},
                                  {"nats_url", nats_opts.url},
                                  {"nats_stream", nats ? nats_opts.stream : std::string()},
                                  {"nats_consumer", nats ? nats_opts.consumer : std::string()},
                                  {"openai_base_url", openai_base_url}});

    int sig = 0;
    sigwait(&stop_signals, &sig);
    core::log::info("stopping", {{"signal", sig}});
    // Stop taking jobs from NATS first (nothing fetched stays un-acked); the connection stays
    // open so runs ending in the grace period still publish their status.
    if (nats) nats->stop();
    // Runs get the grace period, then are interrupted through their stop tokens (model
    // calls, backoffs and tools end at once; they stay resumable from their last checkpoint).
    // Should that still take more than a further 5 s (e.g. a hung database write) we exit
    // anyway: everything checkpointed is durable and the next start resumes it.
    auto stopped = std::async(std::launch::async,
                              [&] { runs.shutdown(std::chrono::milliseconds(shutdown_grace_ms)); });
    if (stopped.wait_for(std::chrono::milliseconds(shutdown_grace_ms) + std::chrono::seconds(5)) !=
        std::future_status::ready) {
      core::log::warn("runs still busy after the grace period; exiting, they resume at next start");
      if (nats) nats->close(std::chrono::milliseconds(1000));
      core::tracing::shutdown();
      std::_Exit(0);
    }
    if (nats) nats->close(std::chrono::milliseconds(5000));  // drain: flushes the last status events
    server.stop();
    rt.stop();  // no run is left; closes idle model connections' I/O
    core::tracing::shutdown();
    core::log::info("stopped");
  } catch (const std::exception& e) {
    core::log::error("fatal", {{"error", e.what()}});
    std::cerr << "spec-engine: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
