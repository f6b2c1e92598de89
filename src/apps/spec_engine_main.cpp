// spec-engine: the agent runtime service (docs/spec-engine-service.md). Flags have matching
// environment variables (flag wins); see --help.
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <future>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <unistd.h>

#include "apps/cli_options.hpp"
#include "core/async.hpp"
#include "core/data_dir_lock.hpp"
#include "core/db.hpp"
#include "core/http_client.hpp"
#include "core/log.hpp"
#include "core/router.hpp"
#include "core/server.hpp"
#include "core/tracing.hpp"
#include "core/util.hpp"
#include "spec_engine/api/routes.hpp"
#include "spec_engine/bus/event_hub.hpp"
#include "spec_engine/bus/event_log.hpp"
#include "spec_engine/bus/lease_keeper.hpp"
#include "spec_engine/bus/nats_bus.hpp"
#include "spec_engine/bus/nats_link.hpp"
#include "spec_engine/bus/pg_link.hpp"
#include "spec_engine/bus/run_manager.hpp"
#include "spec_engine/models/factory.hpp"
#include "spec_engine/store/store.hpp"

namespace {

/// Value of environment variable `name`, or `fallback`.
std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : fallback;
}

/// This host's name ("engine" when unknown).
std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "engine";
  return buf;
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
  // Fits the largest job the orchestrator sends (a full file tree, core/files.hpp: 8 MiB of
  // text, plus the agent definition) unless its text is mostly control characters or empty
  // lines, which JSON writes in up to 6 bytes each; the orchestrator answers such a job 413.
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
  int io_threads = 0;  // 0 = apps::auto_io_threads()
  int blocking_threads = 8;
  int http_threads = 16;
  std::size_t db_pool_size = 16;
  long db_wait_ms = 5000;
  long lease_ttl_ms = 15000;
  long lease_renew_ms = 5000;
  int max_recoveries = 3;
  long delta_flush_ms = 50;
  std::size_t delta_flush_bytes = 1024;
  long group_commit_ms = 10;
  std::string replica_id = host_name() + "-" + core::random_hex(4);
  std::string openai_base_url = env_or("OPENAI_BASE_URL", "https://api.openai.com/v1");
  spec_engine::bus::NatsOptions nats_opts;  // defaults match deploy/claims/spec-engine.yaml

  apps::env_option(app, "--host", "SPEC_ENGINE_HOST", host, "Listen address");
  apps::env_option(app, "--port", "SPEC_ENGINE_PORT", port, "Listen port (0 = any free port)")
      ->check(CLI::Range(0, 65535));
  apps::env_option(app, "--data-dir", "SPEC_ENGINE_DATA_DIR", data_dir,
                   "Directory for the SQLite database (spec_engine.db)");
  apps::env_option(app, "--database-url", "SPEC_ENGINE_DATABASE_URL", database_url,
                   "postgresql://user[:pass]@host:port/deepagents_runtime selects PostgreSQL (default: SQLite in "
                   "--data-dir)");
  apps::env_option(app, "--model-override", "SPEC_ENGINE_MODEL_OVERRIDE", model_override,
                   "Force every node onto one model: scripted:/path/script.json | openai[:MODEL]");
  app.add_option("--openai-base-url", openai_base_url, "OpenAI-compatible base URL (env OPENAI_BASE_URL)")
      ->capture_default_str();
  apps::env_option(app, "--ca-file", "SPEC_ENGINE_CA_FILE", ca_file,
                   "PEM CA bundle for HTTPS model endpoints (default: system store)");
  apps::env_option(app, "--model-timeout-ms", "SPEC_ENGINE_MODEL_TIMEOUT_MS", model_timeout_ms,
                   "Deadline of one model call, end to end")
      ->check(CLI::PositiveNumber);
  apps::env_option(app, "--model-idle-timeout-ms", "SPEC_ENGINE_MODEL_IDLE_TIMEOUT_MS", model_idle_timeout_ms,
                   "Longest gap between streamed model chunks")
      ->check(CLI::PositiveNumber);
  apps::env_option(app, "--model-max-attempts", "SPEC_ENGINE_MODEL_MAX_ATTEMPTS", model_max_attempts,
                   "Attempts per model call (429/5xx/connect retried)")
      ->check(CLI::Range(1, 20));
  apps::env_option(app, "--max-concurrent-runs", "SPEC_ENGINE_MAX_CONCURRENT_RUNS", max_concurrent,
                   "Runs in memory at once (coroutines: a run waiting for the model holds no thread)")
      ->check(CLI::Range(1, 100000));
  apps::env_option(app, "--max-queue", "SPEC_ENGINE_MAX_QUEUE", max_queue,
                   "Jobs waiting for a run slot before invoke answers 429");
  apps::env_option(app, "--max-body-bytes", "SPEC_ENGINE_MAX_BODY_BYTES", max_body,
                   "Largest request body (bigger: 413); the default fits a job carrying the largest file tree (8 MiB "
                   "of text)")
      ->check(CLI::PositiveNumber);
  apps::env_option(app, "--max-steps", "SPEC_ENGINE_MAX_STEPS", max_steps, "Model calls per run (all agents)")
      ->check(CLI::PositiveNumber);
  apps::env_option(app, "--max-run-seconds", "SPEC_ENGINE_MAX_RUN_SECONDS", max_run_seconds,
                   "Wall-clock budget per run")
      ->check(CLI::PositiveNumber);
  apps::env_option(app, "--max-tokens", "SPEC_ENGINE_MAX_TOKENS", max_tokens, "Prompt+completion tokens per run")
      ->check(CLI::PositiveNumber);
  apps::env_option(app, "--tool-budget-ms", "SPEC_ENGINE_TOOL_BUDGET_MS", tool_budget_ms,
                   "Time budget of one built-in tool call; a call that runs out returns the tool error \"Error: "
                   "<tool>: exceeded its time budget of N ms\" to the model")
      ->check(CLI::Range(1L, 3'600'000L));
  apps::env_option(app, "--recovery", "SPEC_ENGINE_RECOVERY", recovery,
                   "Runs whose engine died or lost its lease, when another replica (or the next start) claims them: "
                   "resume (from the last checkpoint) | fail")
      ->check(CLI::IsMember({"resume", "fail"}));
  apps::env_option(app, "--max-recoveries", "SPEC_ENGINE_MAX_RECOVERIES", max_recoveries,
                   "A run claimed after its owner went away more often than this is failed with a reason")
      ->check(CLI::Range(0, 1000));
  apps::env_option(app, "--lease-ttl-ms", "SPEC_ENGINE_LEASE_TTL_MS", lease_ttl_ms,
                   "Lease of a queued/running thread on its replica (database clock); a replica that dies loses its "
                   "threads to another replica this long after its last renewal")
      ->check(CLI::Range(1000L, 3'600'000L));
  apps::env_option(app, "--lease-renew-ms", "SPEC_ENGINE_LEASE_RENEW_MS", lease_renew_ms,
                   "How often a replica renews its leases and claims expired threads (must be below --lease-ttl-ms; a "
                   "third of it is a good value)")
      ->check(CLI::Range(100L, 3'600'000L));
  app.add_option("--replica-id", replica_id,
                 "Owner id of this replica in the threads table (default: <hostname>-<random>); unique per running "
                 "process")
      ->envname("SPEC_ENGINE_REPLICA_ID");
  apps::env_option(app, "--delta-flush-ms", "SPEC_ENGINE_DELTA_FLUSH_MS", delta_flush_ms,
                   "on_llm_stream deltas of a run are merged into one event for at most this long")
      ->check(CLI::Range(0L, 10'000L));
  apps::env_option(app, "--delta-flush-bytes", "SPEC_ENGINE_DELTA_FLUSH_BYTES", delta_flush_bytes,
                   "... or until the merged text reaches this size")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  apps::env_option(app, "--group-commit-ms", "SPEC_ENGINE_GROUP_COMMIT_MS", group_commit_ms,
                   "Group commit: events and checkpoints are committed once the oldest has waited this long, so "
                   "one transaction carries the writes of many runs (fewer WAL writes per event); events are "
                   "published after their commit, so this adds at most this much latency. 0 = commit at once")
      ->check(CLI::Range(0L, 1000L));
  apps::env_option(app, "--shutdown-grace-ms", "SPEC_ENGINE_SHUTDOWN_GRACE_MS", shutdown_grace_ms,
                   "On SIGINT/SIGTERM, wait this long for runs before interrupting them (their leases are released; "
                   "another replica, or the next start, resumes them)");
  apps::env_option(app, "--io-threads", "SPEC_ENGINE_IO_THREADS", io_threads,
                   "I/O threads of the run runtime (model streams, timers) and, as many again, of the HTTP server; 0 = "
                   "half the processors, at least 1")
      ->check(CLI::Range(0, 64));
  apps::env_option(app, "--blocking-threads", "SPEC_ENGINE_BLOCKING_THREADS", blocking_threads,
                   "Bounded pool running tool calls, the runs' SQL and the streams' replay pages")
      ->check(CLI::Range(1, 1024));
  apps::env_option(app, "--http-threads", "SPEC_ENGINE_HTTP_THREADS", http_threads, "Threads running HTTP handlers")
      ->check(CLI::Range(2, 1024));
  apps::env_option(app, "--db-pool-size", "SPEC_ENGINE_DB_POOL_SIZE", db_pool_size,
                   "Database connections (sized by SQL work, not by runs; PostgreSQL's max_connections is shared)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1024}));
  apps::env_option(app, "--db-wait-ms", "SPEC_ENGINE_DB_WAIT_MS", db_wait_ms,
                   "Longest wait for a free database connection: an HTTP request then gets 503 + Retry-After; a run's "
                   "own reads retry (its writes go through the event log's own connection)")
      ->check(CLI::Range(1L, 600'000L));
  apps::env_option(app, "--nats-url", "NATS_URL", nats_opts.url,
                   "NATS server URL(s); when set, jobs are also consumed from JetStream and run status events are "
                   "published to agent.status.<thread_id>");
  apps::env_option(app, "--nats-stream", "SPEC_ENGINE_NATS_STREAM", nats_opts.stream,
                   "JetStream stream of jobs (created with subjects agent.execute.* when missing)");
  apps::env_option(app, "--nats-subjects", "SPEC_ENGINE_NATS_SUBJECTS", nats_opts.subjects,
                   "Subjects of the job stream when this engine creates it (an existing stream is used as it is)");
  apps::env_option(app, "--nats-consumer", "SPEC_ENGINE_NATS_CONSUMER", nats_opts.consumer,
                   "Durable pull consumer on --nats-stream (created when missing)");
  apps::env_option(app, "--log-level", "SPEC_ENGINE_LOG_LEVEL", log_level, "trace|debug|info|warn|error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  app.footer(
      "Environment: OPENAI_API_KEY (never logged), OPENAI_BASE_URL, OTEL_EXPORTER_OTLP_ENDPOINT (enables trace "
      "export), MIGRATIONS_DIR. Tests only: SPEC_ENGINE_TEST_TOOL_DELAY_MS makes every built-in tool call wait "
      "that long first (a simulated slow tool; never set it in production).");
  CLI11_PARSE(app, argc, argv);
  if (io_threads == 0) io_threads = apps::auto_io_threads();
  if (lease_renew_ms >= lease_ttl_ms) {
    std::cerr << "spec-engine: --lease-renew-ms (" << lease_renew_ms << ") must be below --lease-ttl-ms ("
              << lease_ttl_ms << ")\n";
    return 2;
  }
  if (replica_id.empty() || replica_id.size() > 100 ||
      replica_id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") !=
          std::string::npos) {
    std::cerr << "spec-engine: --replica-id must be 1-100 characters of [A-Za-z0-9._-]\n";
    return 2;
  }

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
    // SQLite: one engine per data directory (replicas need PostgreSQL); checked before opening it.
    // One engine per SQLite database: SQLite serialises one process's writers, but leases need a
    // shared clock and LISTEN/NOTIFY, so replicas need PostgreSQL.
    std::unique_ptr<core::DataDirLock> dir_lock;
    if (database_url.empty())
      dir_lock = std::make_unique<core::DataDirLock>(
          std::filesystem::path(data_dir), "spec_engine.lock", "spec-engine",
          "only one engine may use an SQLite data directory. Run replicas on PostgreSQL (--database-url), or give "
          "this engine its own --data-dir");

    core::db::DbConfig dbc;
    dbc.url = database_url;
    dbc.sqlite_path = std::filesystem::path(data_dir) / "spec_engine.db";
    dbc.pool_size = db_pool_size;
    dbc.lease_timeout = std::chrono::milliseconds(db_wait_ms);
    dbc.default_database = "deepagents_runtime";
    // SQLite: while its write lock is stalled (another program holds the file), at most half the
    // HTTP threads wait for it; further writes answer 503 at once, so /health, /ready and reads
    // keep their threads. The event writer and the lease keeper wait on the same lock: when they
    // are turned away the writer retries its batch, and a failed renewal stops no run here (the
    // data-directory lock keeps other engines out).
    dbc.max_write_waiters = static_cast<std::size_t>(std::max(1, http_threads / 2));
    core::db::Database db(dbc);
    const int applied = core::db::migrate(db, core::db::migrations_dir("spec_engine", db.dialect()));
    core::log::info("database ready", {{"database", db.describe()}, {"migrations_applied", applied}});
    const bool pg = db.dialect() == core::db::Dialect::postgres;
    // The event writer and the lease keeper each have a connection of their own, so a busy pool
    // never delays a group commit or a lease renewal.
    core::db::DbConfig one = dbc;
    one.pool_size = 1;
    one.create_if_missing = false;
    core::db::Database keeper_db(one);
    one.lease_timeout = std::chrono::milliseconds(30000);  // only the writer uses it: never busy for long
    core::db::Database writer_db(one);
    spec_engine::store::Store store(db);
    spec_engine::store::Store writer_store(writer_db);
    spec_engine::store::Store keeper_store(keeper_db);
    spec_engine::bus::EventHub hub;

    // Runs are coroutines on this runtime: its I/O threads wait for model streams and timers,
    // its bounded blocking pool runs tool calls, the runs' SQL and the streams' replay pages.
    // Stopped last (below).
    core::async::Runtime rt(core::async::RuntimeOptions{io_threads, blocking_threads, "runs"});
    rt.start();
    core::http::AsyncHttpClient http(rt);

    spec_engine::bus::RunManagerOptions ro;
    ro.max_concurrent_runs = max_concurrent;
    ro.max_queue = max_queue;
    ro.recovery = recovery;
    ro.max_recoveries = max_recoveries;
    ro.replica_id = replica_id;
    ro.lease_ttl = std::chrono::milliseconds(lease_ttl_ms);
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
        probe.for_node("", nullptr);  // "" = check every script of a script set
      } catch (const std::exception& e) {
        std::cerr << "spec-engine: --model-override " << model_override << ": " << e.what() << "\n";
        return 2;
      }
    }
    if (!model_override.empty() && model_override.rfind("scripted", 0) == 0) {
      core::log::warn("model override: every node uses the SCRIPTED model (offline replay, not an LLM)",
                      {{"model_override", model_override}});
    }

    // NATS (optional): connect first so runs ending early already publish status.
    std::unique_ptr<spec_engine::bus::NatsBus> nats;
    if (!nats_opts.url.empty()) {
      nats_opts.max_message_bytes = max_body;
      nats = std::make_unique<spec_engine::bus::NatsBus>(nats_opts);
      nats->connect();
      ro.on_run_end = [bus = nats.get()](const std::string& thread_id, const std::string& status,
                                         const std::string& error) { bus->publish_status(thread_id, status, error); };
    }

    // How events and deletes reach the other replicas: NATS when configured, else PostgreSQL
    // LISTEN/NOTIFY; SQLite runs one process and needs neither.
    spec_engine::bus::RunManager* runs_ptr = nullptr;
    auto on_remote_delete = [&runs_ptr](const std::string& thread_id) {
      if (runs_ptr) runs_ptr->on_remote_delete(thread_id);
    };
    std::unique_ptr<spec_engine::bus::ReplicaLink> link;
    if (nats) {
      link = std::make_unique<spec_engine::bus::NatsLink>(*nats, hub, on_remote_delete);
    } else if (pg) {
      spec_engine::bus::PgLinkOptions lo;
      lo.url = core::db::with_database(database_url, core::db::database_of(database_url).empty()
                                                         ? std::string("deepagents_runtime")
                                                         : core::db::database_of(database_url));
      lo.replica_id = replica_id;
      link = std::make_unique<spec_engine::bus::PgLink>(lo, store, hub, on_remote_delete);
    }
    if (link) {
      auto* l = link.get();
      hub.set_watch_hooks([l](const std::string& id) { l->watch(id); }, [l](const std::string& id) { l->unwatch(id); });
      ro.broadcast_delete = [l](const std::string& id) { l->send_delete(id); };
    }

    spec_engine::bus::EventLogOptions lo;
    lo.delta_flush = std::chrono::milliseconds(delta_flush_ms);
    lo.delta_flush_bytes = delta_flush_bytes;
    lo.group_commit = std::chrono::milliseconds(group_commit_ms);
    if (pg && !nats) lo.notify_origin = replica_id;
    auto publish = [&hub, l = link.get()](const std::vector<spec_engine::store::EventRecord>& events) {
      hub.publish(events);
      if (l) l->published(events);
    };
    spec_engine::bus::EventLog event_log(writer_store, publish, lo);
    event_log.start();

    spec_engine::bus::RunManager runs(store, event_log, hub, ro, rt, http);
    runs_ptr = &runs;
    if (!pg) {
      // The data-directory lock proves no other engine lives: threads a previous process left
      // queued/running are claimable now, not only after their leases expire.
      const int n = store.expire_foreign_leases(replica_id);
      if (n > 0) core::log::info("threads of a previous process are claimable", {{"count", n}});
    }
    runs.start();
    if (link) link->start();

    spec_engine::bus::LeaseHooks hooks;
    hooks.local = [&runs] { return runs.owned_local(); };
    hooks.lost = [&runs](const std::string& id, std::int64_t epoch, const std::string& why) { runs.lose(id, epoch, why); };
    hooks.capacity = [&runs] { return runs.free_slots(); };
    hooks.claimed = [&runs](const spec_engine::store::Claim& c) { runs.adopt(c); };
    spec_engine::bus::LeaseKeeper keeper(
        keeper_store,
        {replica_id, std::chrono::milliseconds(lease_ttl_ms), std::chrono::milliseconds(lease_renew_ms),
         /*exclusive=*/database_url.empty()},  // SQLite: the data directory lock keeps other replicas out
        hooks);
    keeper.start();  // its first round claims what is claimable at once

    if (nats) nats->start(runs);

    core::http::Router router;
    spec_engine::api::ApiContext api_ctx{&store, &hub, &runs, &rt};
    if (nats) api_ctx.nats_state = [bus = nats.get()] { return bus->state(); };
    if (link) api_ctx.link_health = [l = link.get()] { return l->health(); };
    api_ctx.lease_health = [&keeper] { return keeper.health(); };
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
                                  {"replica_id", replica_id},
                                  {"replica_link", link ? link->name() : std::string("in-process")},
                                  {"lease_ttl_ms", lease_ttl_ms},
                                  {"lease_renew_ms", lease_renew_ms},
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
      core::log::warn("runs still busy after the grace period; exiting, another replica resumes them");
      event_log.stop(std::chrono::milliseconds(1000));
      keeper.stop(/*release=*/true);  // a stuck run's later writes are fenced by the claimer's epoch
      if (nats) nats->close(std::chrono::milliseconds(1000));
      core::tracing::shutdown();
      std::_Exit(0);
    }
    // Store what the runs left (interrupted runs are `queued`), then release the leases so
    // another replica claims those threads at its next round instead of after the TTL.
    event_log.stop(std::chrono::milliseconds(5000));
    keeper.stop(/*release=*/true);
    if (link) link->stop();
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
