// ide-orchestrator: authenticated gateway and state manager of the Agentic IDE.
// Subcommands: serve, migrate, user add|list|disable|enable|set-password.
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>

#include <termios.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "apps/cli_options.hpp"
#include "core/async.hpp"
#include "core/data_dir_lock.hpp"
#include "core/db.hpp"
#include "core/json_parse.hpp"
#include "core/log.hpp"
#include "core/tracing.hpp"
#include "core/util.hpp"
#include "orchestrator/api/app.hpp"

namespace {

/// Storage flags shared by every subcommand.
struct StorageFlags {
  std::string data_dir = "./var/ide-orchestrator";
  std::string database_url;
};

void add_storage_flags(CLI::App* cmd, StorageFlags& s) {
  apps::env_option(*cmd, "--data-dir", "IDE_ORCHESTRATOR_DATA_DIR", s.data_dir,
                   "Directory for the embedded SQLite database (orchestrator.db)");
  apps::env_option(*cmd, "--database-url", "IDE_ORCHESTRATOR_DATABASE_URL", s.database_url,
                   "PostgreSQL URL (postgresql://user:pass@host:port[/db]); default database ide_orchestrator. Empty = "
                   "SQLite under --data-dir");
}

core::db::DbConfig db_config(const StorageFlags& s) {
  core::db::DbConfig c;
  c.url = s.database_url;
  c.sqlite_path = std::filesystem::path(s.data_dir) / "orchestrator.db";
  c.default_database = "ide_orchestrator";
  return c;
}

std::string read_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + what + " file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim_newlines(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto b = item.find_first_not_of(" \t");
    auto e = item.find_last_not_of(" \t/");
    if (b != std::string::npos) out.push_back(item.substr(b, e - b + 1));
  }
  return out;
}

/// A password from `file` (its first line) or, without a file, one line of stdin; never from
/// argv, where other users of the machine could read it. On a terminal the typed characters are
/// not echoed. Trailing CR/LF are dropped.
std::string read_password(const std::string& file) {
  std::string line;
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read the password file " + file);
    std::getline(in, line);
    return trim_newlines(line);
  }
  const bool tty = isatty(STDIN_FILENO) == 1;
  termios saved{};
  if (tty && tcgetattr(STDIN_FILENO, &saved) == 0) {
    termios quiet = saved;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    std::cerr << "Password: " << std::flush;
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    std::getline(std::cin, line);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    std::cerr << "\n";
  } else {
    std::getline(std::cin, line);
  }
  return trim_newlines(line);
}

/// `user list` output: a tab-separated table with a header, or a JSON array with --json.
void print_users(const std::vector<orchestrator::domain::User>& users, bool as_json) {
  if (as_json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& u : users)
      out.push_back({{"id", u.id}, {"email", u.email}, {"name", u.name}, {"created_at", u.created_at},
                     {"disabled_at", u.disabled_at ? nlohmann::json(*u.disabled_at) : nlohmann::json(nullptr)}});
    std::cout << out.dump(2) << "\n";
    return;
  }
  std::cout << "ID\tEMAIL\tNAME\tCREATED\tSTATUS\n";
  for (const auto& u : users)
    std::cout << u.id << "\t" << u.email << "\t" << u.name << "\t" << u.created_at << "\t"
              << (u.disabled_at ? "disabled since " + *u.disabled_at : std::string("active")) << "\n";
}

volatile std::sig_atomic_t g_signal = 0;
extern "C" void on_signal(int sig) { g_signal = sig; }

}  // namespace

int main(int argc, char** argv) {
  CLI::App cli{"ide-orchestrator: workflows, drafts, versions and AI refinement proposals"};
  cli.name("ide-orchestrator");  // in --help and errors, whatever path started the binary
  cli.require_subcommand(1);
  cli.fallthrough();  // `serve --log-level debug` as well as `--log-level debug serve`
  std::string log_level = "info";
  apps::env_option(cli, "--log-level", "IDE_ORCHESTRATOR_LOG_LEVEL", log_level, "trace|debug|info|warn|error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));

  // serve
  auto* serve = cli.add_subcommand("serve", "Run the HTTP/WebSocket API");
  serve->footer(
      "Environment: JWT_SECRET (required unless --jwt-secret-file), OTEL_EXPORTER_OTLP_ENDPOINT (e.g. "
      "http://collector:4318: export spans as OTLP/HTTP JSON, docs/observability.md), MIGRATIONS_DIR, CONFIG_DIR.");
  StorageFlags serve_storage;
  add_storage_flags(serve, serve_storage);
  std::string host = "127.0.0.1", engine_url = "http://127.0.0.1:8000", cors, jwt_secret_file, jwt_pubkey_file;
  int port = 8080;
  std::size_t max_body = 1 << 20;
  double orphan_ttl_hours = 24, breaker_open_seconds = 30, lease_ttl_seconds = 30, sweep_period_seconds = 15;
  double engine_timeout_seconds = 5;
  double engine_stream_open_seconds = 30;
  int engine_max_invokes = 16;
  std::size_t engine_max_event_bytes = std::size_t{64} << 20;
  int login_limit = 10, user_limit = 600, refinement_limit = 10, ip_limit = 300, max_runs_per_user = 3;
  int io_threads = 0, blocking_threads = 16, db_wait_ms = 5000, ws_recheck_seconds = 30;
  std::size_t db_pool_size = 0;
  std::string refinement_agent_file, refinement_model, openapi_file, trusted_proxies, web_dir;
  std::string jwt_issuer = "ide-orchestrator", jwt_audience = "agentic-ide";
  apps::env_option(*serve, "--host", "IDE_ORCHESTRATOR_HOST", host, "Address to listen on");
  apps::env_option(*serve, "--port", "IDE_ORCHESTRATOR_PORT", port, "Port (0 = any free port)")
      ->check(CLI::Range(0, 65535));
  apps::env_option(*serve, "--engine-url", "IDE_ORCHESTRATOR_ENGINE_URL", engine_url, "Spec Engine base URL")
      ->check(CLI::Validator(
          [](std::string& v) -> std::string {
            // http(s)://host[:port][/path], no query or fragment (RFC 3986 §3).
            static const std::regex re(R"(^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[^?#\s]*)?$)");
            return std::regex_match(v, re) ? std::string{} : "expected http://host[:port] or https://host[:port], got '" + v + "'";
          },
          "URL"));
  apps::env_option(*serve, "--jwt-secret-file", "IDE_ORCHESTRATOR_JWT_SECRET_FILE", jwt_secret_file,
                   "File with the HS256 secret (>= 32 bytes); default: the JWT_SECRET environment variable");
  apps::env_option(*serve, "--jwt-public-key-file", "IDE_ORCHESTRATOR_JWT_PUBLIC_KEY_FILE", jwt_pubkey_file,
                   "PEM public key: also accept RS256 tokens from an external identity provider");
  apps::env_option(*serve, "--jwt-issuer", "IDE_ORCHESTRATOR_JWT_ISSUER", jwt_issuer,
                   "`iss` required of external RS256 tokens (our own HS256 tokens keep ide-orchestrator)");
  apps::env_option(*serve, "--jwt-audience", "IDE_ORCHESTRATOR_JWT_AUDIENCE", jwt_audience,
                   "`aud` required of external RS256 tokens (our own HS256 tokens keep agentic-ide)");
  apps::env_option(*serve, "--cors-origins", "IDE_ORCHESTRATOR_CORS_ORIGINS", cors,
                   "Comma-separated browser origins allowed (CORS and WebSocket Origin). When set, only these; when "
                   "empty, only same-origin requests (Origin == http(s)://<Host>)");
  apps::env_option(*serve, "--trusted-proxies", "IDE_ORCHESTRATOR_TRUSTED_PROXIES", trusted_proxies,
                   "Comma-separated reverse-proxy IPs whose X-Forwarded-For, X-Forwarded-Host and X-Forwarded-Proto "
                   "are believed (from any other peer they are ignored): the client address (per-IP rate limits) is "
                   "then the right-most X-Forwarded-For entry that is not a trusted proxy, and a refinement's "
                   "websocket_url uses the forwarded host and scheme");
  apps::env_option(*serve, "--max-body-bytes", "IDE_ORCHESTRATOR_MAX_BODY_BYTES", max_body,
                   "Largest accepted request body")
      ->check(CLI::Range(std::size_t{1024}, std::size_t{1} << 30));
  apps::env_option(*serve, "--orphan-ttl", "IDE_ORCHESTRATOR_ORPHAN_TTL_HOURS", orphan_ttl_hours,
                   "Hours after which a proposal or workflow run still processing is failed; a proposal failed, or a "
                   "run finished, this long ago has its engine thread deleted")
      ->check(CLI::PositiveNumber);
  apps::env_option(*serve, "--lease-ttl-seconds", "IDE_ORCHESTRATOR_LEASE_TTL_SECONDS", lease_ttl_seconds,
                   "Seconds a replica's lease on a proposal or run it tracks lasts (renewed every third of it); another "
                   "replica takes over a dead replica's proposals and runs once their lease expired")
      ->check(CLI::Range(0.3, 86400.0));
  apps::env_option(*serve, "--sweep-period-seconds", "IDE_ORCHESTRATOR_SWEEP_PERIOD_SECONDS", sweep_period_seconds,
                   "Seconds between sweeps: orphans failed, engine threads of resolved proposals and finished runs "
                   "deleted, proposals failed while the engine was unreachable re-checked, unleased proposals and runs "
                   "taken over")
      ->check(CLI::Range(0.05, 86400.0));
  apps::env_option(*serve, "--io-threads", "IDE_ORCHESTRATOR_IO_THREADS", io_threads,
                   "I/O threads of the HTTP server, and as many again for the engine streams followed (each thread "
                   "serves any number of connections); 0 = half the processors, at least 1")
      ->check(CLI::Range(0, 64));
  apps::env_option(*serve, "--blocking-threads", "IDE_ORCHESTRATOR_BLOCKING_THREADS", blocking_threads,
                   "Threads running HTTP handlers (SQL, engine calls); the proposal tracker's SQL runs on a quarter as "
                   "many more (at least 2)")
      ->check(CLI::Range(1, 1024));
  apps::env_option(*serve, "--ws-recheck-seconds", "IDE_ORCHESTRATOR_WS_RECHECK_SECONDS", ws_recheck_seconds,
                   "Seconds between checks of an open browser stream's access: a member removed from the workflow "
                   "or a disabled or deleted account ends the stream with close code 1008 (0 = check only at the "
                   "upgrade); a deleted workflow's streams end with 1011 once its engine threads are deleted")
      ->check(CLI::Range(0, 86400));
  apps::env_option(*serve, "--db-wait-ms", "IDE_ORCHESTRATOR_DB_WAIT_MS", db_wait_ms,
                   "Longest wait of a request (or of the tracker) for a free pooled database connection; past it "
                   "the request answers 503 with Retry-After")
      ->check(CLI::Range(1, 600000));
  apps::env_option(*serve, "--db-pool-size", "IDE_ORCHESTRATOR_DB_POOL_SIZE", db_pool_size,
                   "Pooled database connections (0 = automatic: on SQLite one per thread that runs SQL, the "
                   "--blocking-threads plus the tracker's plus one, at most 1024, so a write waiting for SQLite's "
                   "write lock never keeps a "
                   "read from a connection; on PostgreSQL 8, since the server's max_connections is shared)")
      ->check(CLI::Range(std::size_t{0}, std::size_t{1024}));
  apps::env_option(*serve, "--engine-timeout-seconds", "IDE_ORCHESTRATOR_ENGINE_TIMEOUT_SECONDS",
                   engine_timeout_seconds,
                   "Seconds one attempt of an engine call may take (invoke, state, delete); transient failures are "
                   "tried 3 times. Raise it when the engine answers slowly under load: an invoke that timed out is "
                   "sent again with the same job_id, and the engine answers with the thread it already has")
      ->check(CLI::Range(0.1, 600.0));
  apps::env_option(*serve, "--engine-max-invokes", "IDE_ORCHESTRATOR_ENGINE_MAX_INVOKES", engine_max_invokes,
                   "Engine invokes (refinement, retry and run starts) in flight at once; more starts wait for their "
                   "turn without holding a thread, instead of piling up in the engine's queues past "
                   "--engine-timeout-seconds")
      ->check(CLI::Range(1, 4096));
  apps::env_option(*serve, "--engine-max-event-bytes", "IDE_ORCHESTRATOR_ENGINE_MAX_EVENT_BYTES",
                   engine_max_event_bytes,
                   "Largest engine event relayed, in bytes (at most 64 MiB, the JSON parser's limit); a run with a "
                   "larger one ends for its browsers with an error event and close code 1011, its proposal or run "
                   "fails and its engine thread is deleted. The default fits a state update carrying the largest "
                   "file tree")
      ->check(CLI::Range(std::size_t{1024}, core::json::kDefaultMaxBytes));  // what the orchestrator parses
  apps::env_option(*serve, "--engine-stream-open-seconds", "IDE_ORCHESTRATOR_ENGINE_STREAM_OPEN_SECONDS",
                   engine_stream_open_seconds,
                   "Seconds an engine stream (following a refinement) may take to connect and upgrade before it is "
                   "given up and tried again; followers retry for as long as anyone follows, so a longer wait only "
                   "spares a busy engine upgrades it was about to answer")
      ->check(CLI::Range(0.1, 600.0));
  apps::env_option(*serve, "--engine-breaker-open-seconds", "IDE_ORCHESTRATOR_ENGINE_BREAKER_OPEN_SECONDS",
                   breaker_open_seconds,
                   "Seconds the engine circuit breaker stays open before trial calls")
      ->check(CLI::PositiveNumber);
  // Rate limits: token buckets per replica (README "Rate limits"); each refills evenly over a minute.
  apps::env_option(*serve, "--login-rate-limit", "IDE_ORCHESTRATOR_LOGIN_RATE_LIMIT", login_limit,
                   "Login attempts per client IP per minute (per replica)")
      ->check(CLI::Range(1, 1000000));
  apps::env_option(*serve, "--user-rate-limit", "IDE_ORCHESTRATOR_USER_RATE_LIMIT", user_limit,
                   "API requests per signed-in user per minute, every /api route and WebSocket upgrade (per replica)")
      ->check(CLI::Range(1, 1000000));
  apps::env_option(*serve, "--refinement-rate-limit", "IDE_ORCHESTRATOR_REFINEMENT_RATE_LIMIT", refinement_limit,
                   "Refinements a user may start per minute, on top of --user-rate-limit; each costs model "
                   "tokens (per replica)")
      ->check(CLI::Range(1, 1000000));
  apps::env_option(*serve, "--ip-rate-limit", "IDE_ORCHESTRATOR_IP_RATE_LIMIT", ip_limit,
                   "Requests per client IP per minute that carry no accepted token (login, OpenAPI document, probes, "
                   "metrics, rejected tokens; per replica)")
      ->check(CLI::Range(1, 1000000));
  apps::env_option(*serve, "--max-concurrent-runs-per-user", "IDE_ORCHESTRATOR_MAX_CONCURRENT_RUNS_PER_USER",
                   max_runs_per_user,
                   "Refinements and workflow runs one user may have processing at once, counted in the database "
                   "across replicas (0 = no cap)")
      ->check(CLI::Range(0, 100000));
  apps::env_option(*serve, "--refinement-agent-file", "IDE_ORCHESTRATOR_REFINEMENT_AGENT_FILE", refinement_agent_file,
                   "Agent definition sent with refinements (default config/refinement-agent.json)");
  apps::env_option(*serve, "--refinement-model", "IDE_ORCHESTRATOR_REFINEMENT_MODEL", refinement_model,
                   "Model name for every agent of the refinement (replaces llm_config.model of the refinement agent "
                   "file, e.g. llama3.1 on Ollama); the engine's --model-override still wins (default: the file's)");
  apps::env_option(*serve, "--openapi-file", "IDE_ORCHESTRATOR_OPENAPI_FILE", openapi_file,
                   "OpenAPI document to serve (default docs/openapi.json)");
  apps::env_option(*serve, "--web-dir", "IDE_ORCHESTRATOR_WEB_DIR", web_dir,
                   "Built web console served at / (default: <binary dir>/../web, where make build puts it, then "
                   "/usr/share/agentic-ide/web; none found = / says the console was not built)");

  // migrate
  auto* migrate = cli.add_subcommand("migrate", "Apply pending database migrations and exit");
  StorageFlags migrate_storage;
  add_storage_flags(migrate, migrate_storage);

  // user add
  auto* user = cli.add_subcommand("user", "Manage users");
  user->require_subcommand(1);
  auto* user_add = user->add_subcommand("add", "Create a user; the password is read from stdin (one line)");
  StorageFlags user_storage;
  add_storage_flags(user_add, user_storage);
  std::string email, name;
  user_add->add_option("--email", email, "E-mail address (login name)")->required();
  user_add->add_option("--name", name, "Display name")->required();
  auto* user_list = user->add_subcommand("list", "List every user (id, e-mail, name, created, active or disabled)");
  StorageFlags list_storage;
  add_storage_flags(user_list, list_storage);
  bool list_json = false;
  user_list->add_flag("--json", list_json, "Print a JSON array instead of a tab-separated table");
  const char* user_ref_help = "The user: an id (UUID) or an e-mail address";
  auto* user_disable = user->add_subcommand(
      "disable", "Disable a user: they can no longer sign in and every token of theirs answers 401 (idempotent)");
  auto* user_enable = user->add_subcommand("enable", "Enable a disabled user again (idempotent)");
  StorageFlags disable_storage, enable_storage;
  add_storage_flags(user_disable, disable_storage);
  add_storage_flags(user_enable, enable_storage);
  std::string disable_ref, enable_ref;
  user_disable->add_option("user", disable_ref, user_ref_help)->required();
  user_enable->add_option("user", enable_ref, user_ref_help)->required();
  auto* user_password = user->add_subcommand(
      "set-password",
      "Set a user's password, read from stdin (one line) or --password-file, never from the command line; "
      "sessions started before the change end (their tokens answer 401)");
  StorageFlags password_storage;
  add_storage_flags(user_password, password_storage);
  std::string password_ref, password_file;
  user_password->add_option("user", password_ref, user_ref_help)->required();
  user_password->add_option("--password-file", password_file, "Read the password from the first line of this file")
      ->check(CLI::ExistingFile);

  if (const auto code = apps::parse_command_line(cli, argc, argv)) return *code;
  if (io_threads == 0) io_threads = apps::auto_io_threads();
  core::log::init("ide-orchestrator", log_level);

  try {
    if (*migrate) {
      const int n = orchestrator::api::run_migrations(db_config(migrate_storage));
      std::cout << "applied " << n << " migration(s)\n";
      return 0;
    }
    if (*user_add) {
      const std::string id = orchestrator::api::add_user(db_config(user_storage), email, name, read_password(""));
      std::cout << id << "\n";
      return 0;
    }
    if (*user_list) {
      print_users(orchestrator::api::list_users(db_config(list_storage)), list_json);
      return 0;
    }
    if (*user_disable || *user_enable) {
      const bool disable = user_disable->parsed();
      const auto u = orchestrator::api::set_user_disabled(db_config(disable ? disable_storage : enable_storage),
                                                          disable ? disable_ref : enable_ref, disable);
      std::cout << u.id << "\t" << u.email << "\t" << (u.disabled_at ? "disabled" : "active") << "\n";
      return 0;
    }
    if (*user_password) {
      const auto u = orchestrator::api::set_user_password(db_config(password_storage), password_ref,
                                                          read_password(password_file));
      std::cout << u.id << "\t" << u.email << "\tpassword set\n";
      return 0;
    }

    // serve
    orchestrator::api::AppOptions o;
    o.server.host = host;
    o.server.port = static_cast<std::uint16_t>(port);
    o.server.max_body_bytes = max_body;
    o.server.service_name = "ide-orchestrator";
    o.server.io_threads = io_threads;
    o.server.blocking_threads = blocking_threads;
    o.db = db_config(serve_storage);
    o.db.lease_timeout = std::chrono::milliseconds(db_wait_ms);
    const int tracker_threads = std::max(2, blocking_threads / 4);  // the runtime's blocking pool (below)
    o.db.pool_size = db_pool_size != 0 ? db_pool_size
                     : serve_storage.database_url.empty()
                         ? std::min<std::size_t>(static_cast<std::size_t>(blocking_threads + tracker_threads + 1), 1024)
                         : std::size_t{8};
    // SQLite: while its write lock is stalled (another program holds the file), at most half the
    // handler threads wait for it; further writes answer 503 at once and the rest serve reads.
    o.db.max_write_waiters = static_cast<std::size_t>(std::max(1, blocking_threads / 2));
    const std::size_t db_pool = o.db.pool_size;
    o.ws.recheck_interval = std::chrono::seconds(ws_recheck_seconds);
    o.engine.base_url = engine_url;
    while (!o.engine.base_url.empty() && o.engine.base_url.back() == '/') o.engine.base_url.pop_back();
    o.engine.breaker.open_duration = std::chrono::milliseconds(static_cast<long long>(breaker_open_seconds * 1000));
    o.engine.request_timeout = std::chrono::milliseconds(static_cast<long long>(engine_timeout_seconds * 1000));
    o.engine.max_invokes_in_flight = engine_max_invokes;
    o.engine.max_event_bytes = engine_max_event_bytes;
    o.engine.stream_open_timeout =
        std::chrono::milliseconds(static_cast<long long>(engine_stream_open_seconds * 1000));
    o.tracker.orphan_ttl = std::chrono::milliseconds(static_cast<long long>(orphan_ttl_hours * 3600 * 1000));
    o.tracker.lease_ttl = std::chrono::milliseconds(static_cast<long long>(lease_ttl_seconds * 1000));
    o.tracker.sweep_interval = std::chrono::milliseconds(static_cast<long long>(sweep_period_seconds * 1000));
    o.middleware.cors_origins = split_list(cors);
    o.middleware.rate_limits.login.quota = login_limit;
    o.middleware.rate_limits.user.quota = user_limit;
    o.middleware.rate_limits.refinement.quota = refinement_limit;
    o.middleware.rate_limits.ip.quota = ip_limit;
    o.proposals.max_concurrent_runs_per_user = max_runs_per_user;
    o.middleware.trusted_proxies = split_list(trusted_proxies);
    o.refinement_agent_file = refinement_agent_file;
    o.refinement_model = refinement_model;
    o.openapi_file = openapi_file;
    o.web_dir = web_dir;
    if (!jwt_secret_file.empty()) {
      o.jwt.hs256_secret = trim_newlines(read_file(jwt_secret_file, "JWT secret"));
    } else if (const char* s = std::getenv("JWT_SECRET")) {
      o.jwt.hs256_secret = s;
    }
    if (!jwt_pubkey_file.empty()) o.jwt.rs256_public_key_pem = read_file(jwt_pubkey_file, "JWT public key");
    o.jwt.external_issuer = jwt_issuer;
    o.jwt.external_audience = jwt_audience;
    if (o.jwt.hs256_secret.size() < 32) {
      std::cerr << "ide-orchestrator: set JWT_SECRET (or --jwt-secret-file) to a secret of at least 32 bytes, "
                   "e.g. JWT_SECRET=$(openssl rand -hex 32)\n";
      return 2;
    }
    if (const char* ep = std::getenv("OTEL_EXPORTER_OTLP_ENDPOINT"); ep && *ep) core::tracing::init("ide-orchestrator", ep);

    // One orchestrator per SQLite database: its write lock and pool are per process (replicas need
    // PostgreSQL). The user subcommands may still run next to it.
    std::unique_ptr<core::DataDirLock> dir_lock;
    if (serve_storage.database_url.empty())
      dir_lock = std::make_unique<core::DataDirLock>(
          std::filesystem::path(serve_storage.data_dir), "orchestrator.lock", "ide-orchestrator",
          "only one orchestrator may serve an SQLite data directory. Run replicas on PostgreSQL (--database-url), "
          "or give this orchestrator its own --data-dir");

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    // Thousands of browser and engine sockets: the administrator's hard limit, not the soft 1024.
    const std::size_t fd_limit = core::raise_fd_limit();
    // The runtime of the engine client, the thread followers and the tracker: it outlives the App's
    // services (App::stop() ends their coroutines first) and is stopped after them.
    core::async::Runtime runtime({io_threads, tracker_threads, "ide-orchestrator"});
    runtime.start();
    {
      orchestrator::api::App app(std::move(o), runtime);
      app.start();
      core::log::info("ide_orchestrator_ready", {{"port", app.port()},
                                                 {"engine_url", engine_url},
                                                 {"open_files_limit", static_cast<long long>(fd_limit)},
                                                 {"io_threads", io_threads},
                                                 {"blocking_threads", blocking_threads},
                                                 {"db_pool_size", static_cast<long long>(db_pool)}});
      while (!g_signal) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      core::log::info("ide_orchestrator_stopping", {{"signal", static_cast<int>(g_signal)}});
      app.stop();
      runtime.stop();
    }
    core::tracing::shutdown();
    return 0;
  } catch (const std::exception& e) {
    core::log::error("ide_orchestrator_failed", {{"error", e.what()}});
    std::cerr << "ide-orchestrator: " << e.what() << "\n";
    return 1;
  }
}
