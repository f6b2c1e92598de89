// refinement-load: N concurrent refinements through the whole product, measured (README
// "Benchmarks"). For each storage and N it starts fresh services on loopback — the paced model
// server, spec-engine on it, ide-orchestrator on the engine, and nginx relaying the engine's
// WebSocket stream as the anchor — creates users and workflows, then starts N refinements at once,
// each followed by a browser WebSocket through the orchestrator's proxy and an anchor subscriber
// through nginx, and reports time, lag, CPU, threads, memory and stream integrity.
// With --replicas K (PostgreSQL only) there are K engines and K orchestrators on one database and
// a NATS server, orchestrator i on engine i, nginx relaying every engine, sessions round-robin.
// It only talks HTTP/WebSocket to the real binaries and reads /proc.
#include <csignal>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <regex>
#include <sstream>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/http_client.hpp"
#include "core/util.hpp"
#include "load.hpp"
#include "proc.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace refinement_load;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

/// Command-line settings.
struct Settings {
  std::vector<int> sessions{100, 1000};
  std::vector<std::string> storages{"sqlite"};
  std::string database_url;
  int replicas = 1;
  std::string nats_url;  // "" = start one when replicas > 1; "none" = PostgreSQL LISTEN/NOTIFY
  std::string nats_server = "nats-server";
  int turns = 4;
  int chunks = 4;
  double rate = 2.0;
  int sessions_per_user = 100;
  std::string anchor = "nginx";
  std::string nginx = "nginx";
  std::string bin_dir;
  int io_threads = 2;
  int engine_max_runs = 0;  // 0 = auto
  std::vector<std::string> engine_args;
  std::vector<std::string> orchestrator_args;
  std::string service_log_level = "warn";
  double timeout = 0;  // 0 = auto
  double request_timeout = 300;
  std::string work_dir;
  std::string json_out;
  bool keep = false;
};

/// What one process of a service cost during the load.
struct ProcCost {
  double cpu = 0;    // CPU seconds
  long threads = 0;  // peak threads
  long rss = 0;      // peak RSS, bytes
};

/// Everything measured for one storage and N. CPU, threads and RSS of a service kind are summed
/// over its replicas (peaks of the sum); engine_procs/orch_procs hold each process's own.
struct Row {
  std::string storage;
  int n = 0;
  int replicas = 1;
  std::string bus = "none";  // how engine replicas share live events (replicas > 1)
  std::string failure;  // set when the row could not run (a service failed ...)
  int sessions_ok = 0;
  int proposals_completed = 0;
  double pacing = 0, wall = 0;
  double lag_p50 = 0, lag_p95 = 0, lag_p99 = 0, lag_max = 0;
  double anchor_lag_p50 = 0, anchor_lag_p99 = 0;
  long events = 0, anchor_events = 0;
  long lost = 0, duplicated = 0, without_seq = 0, reconnects = 0;
  long anchor_lost = 0, anchor_duplicated = 0, anchor_without_seq = 0;
  double cpu_engine = 0, cpu_orch = 0, cpu_nginx = 0, cpu_model = 0, cpu_harness = 0;
  /// CPU seconds per thread role (the services' thread names), summed over replicas.
  std::map<std::string, double> roles_engine, roles_orch;
  long thr_engine = 0, thr_orch = 0, thr_nginx = 0, thr_model = 0;
  long rss_engine = 0, rss_orch = 0, rss_nginx = 0, rss_model = 0;
  int nginx_workers = 0;
  bool nats_measured = false;  // nats-server started by this row (its cost is below)
  double cpu_nats = 0;
  long thr_nats = 0, rss_nats = 0;
  std::vector<ProcCost> engine_procs, orch_procs;
  double session_p50 = 0, session_p95 = 0;
  double start_p50 = 0, start_p95 = 0, start_max = 0;  // POST refinements -> 202, seconds
  long waits = 0;
  long model_requests = 0;
  json model_per_conversation = json::object();
  std::map<std::string, int> failures;  // failure reason -> sessions
  std::string load_after;              // 1-minute load average when the load ended
  bool ok() const { return failure.empty() && sessions_ok == n; }
};

/// This executable (the anchor worker is another process of it).
fs::path self_exe() {
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path("refinement-load") : exe;
}

std::string self_dir() { return self_exe().parent_path().string(); }

double pct(std::vector<float>& v, double p) {
  if (v.empty()) return NAN;
  const auto k = static_cast<std::size_t>(std::llround(p / 100.0 * static_cast<double>(v.size() - 1)));
  std::nth_element(v.begin(), v.begin() + static_cast<long>(k), v.end());
  return v[k];
}

std::string help_of(const std::vector<std::string>& argv) {
  const auto r = run_to_completion(argv, {}, "", "/dev/null", 30s);
  return r.out;
}

bool has_flag(const std::string& help, const std::string& flag) {
  return help.find("  " + flag + " ") != std::string::npos || help.find("  " + flag + ",") != std::string::npos;
}

/// The upper bound of a flag's range as --help prints it ("--x INT:INT in [1 - 1024]").
std::optional<long> flag_max(const std::string& help, const std::string& flag) {
  const std::regex re(flag + R"( [A-Z]+:[A-Z]+ in \[-?[0-9]+ - ([0-9]+)\])");
  std::smatch m;
  if (std::regex_search(help, m, re)) return std::stol(m[1]);
  return std::nullopt;
}

std::string random_secret() { return core::random_hex(32); }

/// The thread roles the services name (core::name_this_thread); any other name counts as "other".
bool is_role(const std::string& name) {
  return name == "http-io" || name == "http-handler" || name == "rt-io" || name == "rt-blocking" ||
         name == "event-writer";
}

/// Adds each thread role's CPU between two samples of one process to `roles`.
void add_roles(std::map<std::string, double>& roles, const ProcSample& before, const ProcSample& after) {
  for (const auto& [name, cpu] : after.cpu_by_thread) {
    const auto was = before.cpu_by_thread.find(name);
    roles[is_role(name) ? name : "other"] += cpu - (was == before.cpu_by_thread.end() ? 0.0 : was->second);
  }
}

/// CPU of a service's I/O threads (http-io and rt-io): relaying, WebSocket and HTTP I/O, no
/// handlers, SQL or tools (those run on http-handler and rt-blocking).
double io_cpu(const std::map<std::string, double>& roles) {
  double sum = 0;
  for (const char* k : {"http-io", "rt-io"})
    if (auto it = roles.find(k); it != roles.end()) sum += it->second;
  return sum;
}

/// The 1-minute load average (other work on the machine skews every number here).
std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string one;
  f >> one;
  return one.empty() ? "n/a" : one;
}

/// Waits until GET url answers 200; false when `child` died or `limit` passed.
bool wait_healthy(core::http::AsyncHttpClient& client, const std::string& url, Child& child,
                  std::chrono::seconds limit = 120s) {
  const auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (!child.alive()) return false;
    try {
      core::http::ClientRequest r;
      r.url = url;
      r.timeout = 2s;
      if (client.request_blocking(r).status == 200) return true;
    } catch (const std::exception&) {
    }
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

/// Descriptors each process needs for N sessions over K replicas: one per socket (the
/// orchestrator keeps one upstream per engine thread for its tracker and every browser of it),
/// plus a margin for listeners, database connections, logs and pooled keep-alive connections.
struct FdPlan {
  long engine = 0;        ///< per replica: orchestrator follower + model stream + anchor subscriber, per session
  long orchestrator = 0;  ///< per replica: browser + engine follower, per session
  long model = 0;         ///< the paced model server: one stream per session
  long harness = 0;       ///< browsers (one connection per session at a time) + idle keep-alive pool
  long anchor_worker = 0; ///< the anchor's subscribers
  int nginx_workers = 0;  ///< nginx worker processes (reuseport spreads connections evenly)
  long nginx_worker = 0;  ///< per nginx worker: 2 per subscriber (client + upstream)
  /// The largest need of one process.
  long largest() const {
    return std::max({engine, orchestrator, model, harness, anchor_worker, nginx_worker});
  }
};

FdPlan fd_plan(long n, int replicas, bool anchored) {
  const long per = (n + replicas - 1) / replicas;
  FdPlan p;
  p.engine = per * (anchored ? 3 : 2) + 256;
  p.orchestrator = 2 * per + 256;
  p.model = n + 64;
  p.harness = n + 256L * replicas + 64;
  p.anchor_worker = anchored ? n + 64 : 0;
  // About 4,000 descriptors per worker: far below any per-process limit, and as few workers as
  // that allows (at least 2, one per core here).
  p.nginx_workers = anchored ? static_cast<int>(std::clamp<long>((2 * n + 3999) / 4000, 2, 16)) : 0;
  p.nginx_worker = anchored ? 2 * n / p.nginx_workers + 256 : 0;
  return p;
}

/// nginx relaying the WebSocket streams of the engine replicas: replica i behind 127.0.0.1:listen_ports[i].
/// Each worker may hold `worker_fds` descriptors (capped at the process limit `fd_limit`).
std::string nginx_conf(const fs::path& dir, const std::vector<int>& listen_ports, const std::vector<int>& engine_ports,
                       int workers, long worker_fds, std::size_t fd_limit) {
  // Connections counted by nginx are client and upstream sockets; leave room for the rest.
  const long rlimit = std::min<long>(static_cast<long>(fd_limit), 2 * worker_fds + 1024);
  const long connections = std::max<long>(1024, rlimit - 64);
  std::ostringstream c;
  c << "# Relay anchor written by refinement-load: nginx proxying spec-engine's WebSocket stream.\n"
    << "worker_processes " << workers << ";\n"
    << "worker_rlimit_nofile " << rlimit << ";\n"
    << "pid " << (dir / "nginx.pid").string() << ";\n"
    << "error_log " << (dir / "nginx-error.log").string() << " warn;\n"
    << "daemon off;\n"
    << "events { worker_connections " << connections << "; multi_accept on; }\n"
    << "http {\n"
    << "  access_log off;\n"
    << "  client_body_temp_path " << (dir / "client_body").string() << ";\n"
    << "  proxy_temp_path " << (dir / "proxy").string() << ";\n"
    << "  fastcgi_temp_path " << (dir / "fastcgi").string() << ";\n"
    << "  uwsgi_temp_path " << (dir / "uwsgi").string() << ";\n"
    << "  scgi_temp_path " << (dir / "scgi").string() << ";\n";
  for (std::size_t i = 0; i < listen_ports.size(); ++i) {
    c << "  server {\n"
      // reuseport: one listening socket per worker, the kernel spreads connections by hash, so no
      // worker runs out of descriptors while another idles.
      << "    listen 127.0.0.1:" << listen_ports[i] << " backlog=4096 reuseport;\n"
      << "    location = /health { return 200 \"ok\"; }\n"
      << "    location /spec-engine/stream/ {\n"
      << "      proxy_pass http://127.0.0.1:" << engine_ports[i] << ";\n"
      << "      proxy_http_version 1.1;\n"
      << "      proxy_set_header Upgrade $http_upgrade;\n"
      << "      proxy_set_header Connection \"upgrade\";\n"
      << "      proxy_set_header Host $host;\n"
      << "      proxy_read_timeout 900s;\n"
      << "      proxy_send_timeout 900s;\n"
      // Its own source address: the anchor's upstream connections get a port space of their own.
      << "      proxy_bind 127.0.0.2;\n"
      << "    }\n"
      << "  }\n";
  }
  c << "}\n";
  return c.str();
}

/// Drops a throwaway PostgreSQL database with psql (best effort).
void drop_database(const std::string& server_url, const std::string& name) {
  const std::string admin = server_url;
  run_to_completion({"psql", "-q", admin, "-c", "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"}, {}, "",
                    "/dev/null", 60s);
}

/// `url` with its database replaced by `name` (postgresql://user@host:port/db?query).
std::string with_database(const std::string& url, const std::string& name) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) throw std::invalid_argument("--database-url must be a postgresql:// URL");
  const auto slash = url.find('/', scheme + 3);
  const auto q = url.find('?', scheme + 3);
  std::string base = url.substr(0, slash == std::string::npos ? (q == std::string::npos ? url.size() : q) : slash);
  return base + "/" + name + (q == std::string::npos ? "" : url.substr(q));
}

/// Engine replica flags for live events between replicas (docs/event-path-and-replicas.md): NATS
/// subjects of a stream of their own (a shared server stays usable by others), or none (PostgreSQL
/// LISTEN/NOTIFY). Empty with one replica.
std::vector<std::string> nats_flags(const std::string& url, const std::string& tag) {
  if (url.empty()) return {};
  return {"--nats-url", url, "--nats-stream", "RL_" + tag, "--nats-subjects", "agent.execute.RL_" + tag + ".*",
          "--nats-consumer", "rl_" + tag};
}

/// One storage × N: fresh services, setup, the measured load, teardown.
Row run_row(const Settings& s, const std::string& storage, int n, int row_index, const fs::path& work,
            std::size_t fd_limit, core::async::Runtime& rt, core::http::AsyncHttpClient& client) {
  Row row;
  row.storage = storage;
  row.n = n;
  row.replicas = s.replicas;
  row.pacing = s.turns * s.chunks / s.rate;
  const int k = s.replicas;
  const fs::path dir = work / (storage + "-" + std::to_string(n) + (k > 1 ? "-k" + std::to_string(k) : ""));
  fs::create_directories(dir);
  const fs::path bin = s.bin_dir;
  const bool pg = storage == "postgres";
  std::string engine_db, orch_db;
  const std::string db_prefix = "rl_" + std::to_string(::getpid()) + "_" + std::to_string(row_index);
  if (pg) {
    engine_db = with_database(s.database_url, db_prefix + "_engine");
    orch_db = with_database(s.database_url, db_prefix + "_orch");
  }
  // Drops this row's PostgreSQL databases however the row ends (after the services, which are
  // declared later and so stopped first).
  struct DropDatabases {
    const Settings& s;
    std::string prefix;
    bool pg;
    ~DropDatabases() {
      if (!pg) return;
      try {
        drop_database(s.database_url, prefix + "_engine");
        drop_database(s.database_url, prefix + "_orch");
      } catch (const std::exception&) {
        // best effort: the cluster is a throwaway one
      }
    }
  } drop{s, db_prefix, pg};
  auto note = [&](const std::string& what) {
    std::cout << "  [" << storage << " N=" << n << (k > 1 ? " K=" + std::to_string(k) : "") << "] " << what
              << std::endl;
  };
  auto fail = [&](const std::string& why, const Child* c) {
    row.failure = why;
    if (c) row.failure += "\n" + c->log_tail();
    return row;
  };

  // Model server.
  const int model_port = free_port();
  Child model = Child::start({(bin / "paced-model-server").string(), "--port", std::to_string(model_port), "--turns",
                              std::to_string(s.turns), "--chunks", std::to_string(s.chunks), "--rate",
                              std::to_string(s.rate), "--model", "paced"},
                             {}, dir / "model.log");
  if (!wait_healthy(client, "http://127.0.0.1:" + std::to_string(model_port) + "/health", model)) {
    return fail("paced-model-server did not start", &model);
  }

  // NATS for the engine replicas' live events: the given server, or one of this row's own.
  Child nats;
  std::string nats_url;
  if (k > 1 && s.nats_url != "none") {
    nats_url = s.nats_url;
    if (nats_url.empty()) {
      const int nats_port = free_port();
      const int monitor_port = free_port();
      nats = Child::start({s.nats_server, "-a", "127.0.0.1", "-p", std::to_string(nats_port), "-m",
                           std::to_string(monitor_port), "-js", "-sd", (dir / "nats").string()},
                          {}, dir / "nats.log");
      if (!wait_healthy(client, "http://127.0.0.1:" + std::to_string(monitor_port) + "/healthz", nats, 30s)) {
        return fail("nats-server did not start", &nats);
      }
      nats_url = "nats://127.0.0.1:" + std::to_string(nats_port);
      row.bus = "NATS (nats-server started for the row)";
      row.nats_measured = true;
    } else {
      row.bus = "NATS at " + nats_url;
    }
  } else if (k > 1) {
    row.bus = "PostgreSQL LISTEN/NOTIFY";
  }

  // Engines: replica i serves the sessions of orchestrator i.
  const std::string engine_bin = (bin / "spec-engine").string();
  const std::string engine_help = help_of({engine_bin, "--help"});
  const int per_replica = (n + k - 1) / k;
  int runs = s.engine_max_runs;
  if (runs <= 0) {
    runs = static_cast<int>(
        std::min<long>(per_replica, flag_max(engine_help, "--max-concurrent-runs").value_or(per_replica)));
  }
  const std::string nats_tag = std::to_string(::getpid()) + "_" + std::to_string(row_index);
  std::vector<Child> engines;
  std::vector<int> engine_ports;
  std::vector<std::string> engine_urls;
  for (int i = 0; i < k; ++i) {
    const int port = free_port();
    const std::string name = k > 1 ? "engine-" + std::to_string(i + 1) : "engine";
    std::vector<std::string> eargs{engine_bin,        "--host",          "127.0.0.1",
                                   "--port",          std::to_string(port), "--model-override",
                                   "openai:paced",    "--max-concurrent-runs", std::to_string(runs),
                                   "--max-queue",     std::to_string(std::max(n, 64)), "--log-level",
                                   s.service_log_level};
    if (pg) {
      eargs.insert(eargs.end(), {"--database-url", engine_db, "--replica-id", "rl-" + name});
    } else {
      eargs.insert(eargs.end(), {"--data-dir", (dir / name).string()});
    }
    const auto bus = nats_flags(nats_url, nats_tag);
    eargs.insert(eargs.end(), bus.begin(), bus.end());
    eargs.insert(eargs.end(), s.engine_args.begin(), s.engine_args.end());
    engines.push_back(Child::start(eargs,
                                   {{"OPENAI_BASE_URL", "http://127.0.0.1:" + std::to_string(model_port) + "/v1"},
                                    {"OPENAI_API_KEY", "paced-model-server-needs-no-key"},
                                    {"NATS_URL", ""}},  // only --nats-url above, never the caller's
                                   dir / (name + ".log"), dir));
    engine_ports.push_back(port);
    engine_urls.push_back("http://127.0.0.1:" + std::to_string(port));
    if (!wait_healthy(client, engine_urls.back() + "/health", engines.back())) {
      return fail(name + " (spec-engine) did not start", &engines.back());
    }
  }

  // Orchestrators, replica i on engine i, with their per-user and rate limits raised when they have
  // them: the load comes from one address and a few users. One JWT secret: a token is good on any.
  const std::string orch_bin = (bin / "ide-orchestrator").string();
  const std::string orch_help = help_of({orch_bin, "serve", "--help"});
  std::vector<std::string> storage_flags =
      pg ? std::vector<std::string>{"--database-url", orch_db} : std::vector<std::string>{"--data-dir", (dir / "orchestrator").string()};
  const std::map<std::string, std::string> orch_env{{"JWT_SECRET", random_secret()}};
  std::vector<Child> orchs;
  LoadOptions lo;
  for (int i = 0; i < k; ++i) {
    const int port = free_port();
    const std::string name = k > 1 ? "orchestrator-" + std::to_string(i + 1) : "orchestrator";
    std::vector<std::string> oargs{orch_bin, "--log-level", s.service_log_level, "serve", "--host", "127.0.0.1",
                                   "--port", std::to_string(port), "--engine-url", engine_urls[static_cast<std::size_t>(i)]};
    oargs.insert(oargs.end(), storage_flags.begin(), storage_flags.end());
    for (const char* flag : {"--login-rate-limit", "--user-rate-limit", "--refinement-rate-limit", "--ip-rate-limit",
                             "--max-concurrent-runs-per-user"}) {
      if (!has_flag(orch_help, flag)) continue;
      const long high = std::min<long>(flag_max(orch_help, flag).value_or(1000000), 1000000);
      oargs.insert(oargs.end(), {flag, std::to_string(high)});
    }
    oargs.insert(oargs.end(), s.orchestrator_args.begin(), s.orchestrator_args.end());
    orchs.push_back(Child::start(oargs, orch_env, dir / (name + ".log"), dir));
    lo.orchestrator_urls.push_back("http://127.0.0.1:" + std::to_string(port));
    if (!wait_healthy(client, lo.orchestrator_urls.back() + "/health", orchs.back())) {
      return fail(name + " (ide-orchestrator) did not start", &orchs.back());
    }
  }

  // Users and workflows (not measured).
  lo.turns = s.turns;
  lo.request_timeout = std::chrono::milliseconds(static_cast<long>(s.request_timeout * 1000));
  lo.run_tag = core::random_hex(4);
  const int users = std::max(1, (n + s.sessions_per_user - 1) / s.sessions_per_user);
  const auto setup0 = Clock::now();
  std::vector<Account> accounts;
  for (int u = 0; u < users; ++u) {
    const std::string email = "load" + std::to_string(u) + "@bench.example";
    const std::string password = "paced load password " + std::to_string(u);
    std::vector<std::string> add{orch_bin, "user", "add", "--email", email, "--name", "Load " + std::to_string(u)};
    add.insert(add.end(), storage_flags.begin(), storage_flags.end());
    const auto r = run_to_completion(add, orch_env, password + "\n", dir / "user-add.log");
    if (r.status != 0) {
      row.failure = "ide-orchestrator user add failed (exit " + std::to_string(r.status) + ", see " +
                    (dir / "user-add.log").string() + ")";
      return row;
    }
    accounts.push_back({email, login(client, lo.orchestrator_for(static_cast<std::size_t>(u)), email, password, lo)});
  }
  std::vector<std::string> workflows;
  try {
    workflows = create_workflows(rt, client, lo, accounts, n, 16);
  } catch (const std::exception& e) {
    return fail(e.what(), &orchs.front());
  }
  note(std::to_string(users) + " users, " + std::to_string(n) + " workflows in " +
       std::to_string(std::chrono::duration<double>(Clock::now() - setup0).count()).substr(0, 5) + " s; " +
       (k > 1 ? std::to_string(k) + " engines run " : "engine runs ") + std::to_string(runs) + " at once" +
       (k > 1 ? " each; replicas share live events by " + row.bus : ""));

  // The relay anchor: nginx in front of every engine, followed by a worker process of this binary.
  Child nginx;
  std::unique_ptr<AnchorRelay> anchor;
  std::vector<pid_t> nginx_pids;
  if (s.anchor == "nginx") {
    const FdPlan plan = fd_plan(n, k, true);
    std::vector<int> listen_ports;
    for (int i = 0; i < k; ++i) listen_ports.push_back(free_port());
    for (const char* sub : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) fs::create_directories(dir / sub);
    std::ofstream(dir / "nginx.conf") << nginx_conf(dir, listen_ports, engine_ports, plan.nginx_workers,
                                                    plan.nginx_worker, fd_limit);
    row.nginx_workers = plan.nginx_workers;
    nginx = Child::start({s.nginx, "-p", dir.string(), "-c", (dir / "nginx.conf").string(), "-e",
                          (dir / "nginx-error.log").string()},
                         {}, dir / "nginx.log", dir);
    for (int port : listen_ports) {
      if (!wait_healthy(client, "http://127.0.0.1:" + std::to_string(port) + "/health", nginx, 30s)) {
        return fail("nginx did not start (see " + (dir / "nginx-error.log").string() + ")", &nginx);
      }
      lo.anchor_urls.push_back("ws://127.0.0.1:" + std::to_string(port));
    }
    nginx_pids = children_of(nginx.pid());
    nginx_pids.push_back(nginx.pid());
    anchor = std::make_unique<AnchorRelay>(self_exe().string(), s.io_threads, dir / "anchor-worker.log");
  }

  // The measured phase.
  std::vector<pid_t> engine_pids, orch_pids;
  for (auto& e : engines) engine_pids.push_back(e.pid());
  for (auto& o : orchs) orch_pids.push_back(o.pid());
  PeakSampler peaks;
  peaks.watch("engine", engine_pids);
  peaks.watch("orchestrator", orch_pids);
  for (int i = 0; i < k; ++i) {
    peaks.watch("engine#" + std::to_string(i), {engine_pids[static_cast<std::size_t>(i)]});
    peaks.watch("orchestrator#" + std::to_string(i), {orch_pids[static_cast<std::size_t>(i)]});
  }
  peaks.watch("model", {model.pid()});
  if (!nginx_pids.empty()) peaks.watch("nginx", nginx_pids);
  if (row.nats_measured) peaks.watch("nats", {nats.pid()});
  std::vector<ProcSample> e0, o0;
  for (pid_t p : engine_pids) e0.push_back(sample(p, true));
  for (pid_t p : orch_pids) o0.push_back(sample(p, true));
  const ProcSample m0 = sample(model.pid()), n0 = sample_all(nginx_pids);
  const ProcSample nats0 = row.nats_measured ? sample(nats.pid()) : ProcSample{};
  const double h0 = self_cpu_seconds() + (anchor ? sample(anchor->pid()).cpu_seconds : 0.0);
  peaks.start();
  const double timeout = s.timeout > 0 ? s.timeout : 300.0 + row.pacing * 4 + n * 0.15;
  note("starting " + std::to_string(n) + " refinements at once (model pacing " + std::to_string(row.pacing).substr(0, 5) +
       " s per run); load average " + loadavg());
  const auto t0 = Clock::now();
  auto results = run_sessions(rt, client, lo, accounts, workflows, anchor.get(),
                              t0 + std::chrono::milliseconds(static_cast<long>(timeout * 1000)));
  row.wall = std::chrono::duration<double>(Clock::now() - t0).count();
  row.load_after = loadavg();
  peaks.stop();
  const double anchor_cpu = anchor ? sample(anchor->pid()).cpu_seconds : 0.0;
  row.cpu_harness = self_cpu_seconds() + anchor_cpu - h0;
  for (int i = 0; i < k; ++i) {
    const auto u = static_cast<std::size_t>(i);
    const ProcSample e1 = sample(engine_pids[u], true), o1 = sample(orch_pids[u], true);
    add_roles(row.roles_engine, e0[u], e1);
    add_roles(row.roles_orch, o0[u], o1);
    ProcCost e{e1.cpu_seconds - e0[u].cpu_seconds, peaks.peak_threads("engine#" + std::to_string(i)),
               peaks.peak_rss("engine#" + std::to_string(i))};
    ProcCost o{o1.cpu_seconds - o0[u].cpu_seconds,
               peaks.peak_threads("orchestrator#" + std::to_string(i)), peaks.peak_rss("orchestrator#" + std::to_string(i))};
    row.cpu_engine += e.cpu;
    row.cpu_orch += o.cpu;
    row.engine_procs.push_back(e);
    row.orch_procs.push_back(o);
  }
  row.cpu_model = sample(model.pid()).cpu_seconds - m0.cpu_seconds;
  row.cpu_nginx = sample_all(nginx_pids).cpu_seconds - n0.cpu_seconds;
  if (row.nats_measured) {
    row.cpu_nats = sample(nats.pid()).cpu_seconds - nats0.cpu_seconds;
    row.thr_nats = peaks.peak_threads("nats");
    row.rss_nats = peaks.peak_rss("nats");
  }
  row.thr_engine = peaks.peak_threads("engine");
  row.thr_orch = peaks.peak_threads("orchestrator");
  row.thr_model = peaks.peak_threads("model");
  row.thr_nginx = peaks.peak_threads("nginx");
  row.rss_engine = peaks.peak_rss("engine");
  row.rss_orch = peaks.peak_rss("orchestrator");
  row.rss_model = peaks.peak_rss("model");
  row.rss_nginx = peaks.peak_rss("nginx");

  std::vector<float> lags, anchor_lags, walls, starts;
  const bool anchored = anchor != nullptr;
  for (auto& r : results) {
    const bool good = r.ok(anchored);
    row.sessions_ok += good ? 1 : 0;
    row.proposals_completed += r.proposal_status == "completed" ? 1 : 0;
    row.events += r.browser.events;
    row.lost += r.browser.lost;
    row.duplicated += r.browser.duplicated;
    row.without_seq += r.browser.without_seq;
    row.reconnects += r.browser.reconnects + r.anchor.reconnects;
    row.anchor_events += r.anchor.events;
    row.anchor_lost += r.anchor.lost;
    row.anchor_duplicated += r.anchor.duplicated;
    row.anchor_without_seq += r.anchor.without_seq;
    row.waits += r.waits;
    lags.insert(lags.end(), r.browser.lag_ms.begin(), r.browser.lag_ms.end());
    anchor_lags.insert(anchor_lags.end(), r.anchor.lag_ms.begin(), r.anchor.lag_ms.end());
    if (good) walls.push_back(static_cast<float>(r.wall_seconds));
    if (r.start_seconds >= 0) starts.push_back(static_cast<float>(r.start_seconds));
    if (!good) {
      std::string why = r.error;
      if (why.empty()) why = r.browser.error.empty() ? "" : "browser stream: " + r.browser.error;
      if (why.empty()) why = r.anchor.error.empty() ? "" : "anchor stream: " + r.anchor.error;
      if (why.empty()) {
        why = "end=" + r.browser.end_status + " lost=" + std::to_string(r.browser.lost) +
              " dup=" + std::to_string(r.browser.duplicated) + " proposal=" + r.proposal_status +
              " files_ok=" + std::to_string(r.files_ok);
      }
      // Grouped by reason: ids and numbers vary per session, the reason does not.
      why = std::regex_replace(why.substr(0, 160), std::regex("[0-9a-f]{8}-[0-9a-f-]{27}|[0-9]+"), "#");
      ++row.failures[why];
    }
  }
  row.lag_p50 = pct(lags, 50);
  row.lag_p95 = pct(lags, 95);
  row.lag_p99 = pct(lags, 99);
  row.lag_max = lags.empty() ? NAN : *std::max_element(lags.begin(), lags.end());
  row.anchor_lag_p50 = pct(anchor_lags, 50);
  row.anchor_lag_p99 = pct(anchor_lags, 99);
  row.session_p50 = pct(walls, 50);
  row.session_p95 = pct(walls, 95);
  row.start_p50 = pct(starts, 50);
  row.start_p95 = pct(starts, 95);
  row.start_max = starts.empty() ? NAN : *std::max_element(starts.begin(), starts.end());

  try {
    core::http::ClientRequest st;
    st.url = "http://127.0.0.1:" + std::to_string(model_port) + "/stats?detail=0";
    const json stats = json::parse(client.request_blocking(st).body);
    row.model_requests = stats.value("requests", 0L);
    row.model_per_conversation = stats.value("requests_per_conversation", json::object());
  } catch (const std::exception& e) {
    ++row.failures[std::string("model /stats: ") + e.what()];
  }
  for (auto* group : {&engines, &orchs}) {
    for (auto& c : *group) {
      if (!c.alive()) row.failure = "a service exited during the load (" + c.log().string() + "):\n" + c.log_tail();
    }
  }
  if (anchor) anchor->finish();
  nginx.stop();
  for (auto& o : orchs) o.stop();
  for (auto& e : engines) e.stop();
  nats.stop();
  model.stop();
  return row;
}

std::string fixed(double v, int prec) {
  if (std::isnan(v)) return "n/a";
  std::ostringstream o;
  o << std::fixed << std::setprecision(prec) << v;
  return o.str();
}

std::string mib(long bytes) { return std::to_string(bytes / (1024 * 1024)) + " MiB"; }

/// CPU milliseconds per event (= CPU seconds per 1,000 events).
double per_event_ms(double cpu_seconds, long events) {
  return events > 0 ? cpu_seconds * 1000.0 / static_cast<double>(events) : NAN;
}

/// The largest peak thread count / RSS of one process among `procs`.
long max_threads(const std::vector<ProcCost>& procs) {
  long m = 0;
  for (const auto& p : procs) m = std::max(m, p.threads);
  return m;
}
long max_rss(const std::vector<ProcCost>& procs) {
  long m = 0;
  for (const auto& p : procs) m = std::max(m, p.rss);
  return m;
}

void print_row(const Row& r, bool anchored) {
  std::cout << "\n== " << r.storage << ", N=" << r.n
            << (r.replicas > 1 ? ", " + std::to_string(r.replicas) + " replicas (live events: " + r.bus + ")" : "")
            << (r.ok() ? "" : "  ** FAILED **") << "\n";
  if (!r.failure.empty()) {
    std::cout << "  " << r.failure << "\n";
    if (r.events == 0 && r.sessions_ok == 0) return;  // nothing was measured
  }
  std::cout << "  sessions correct          " << r.sessions_ok << "/" << r.n << " (proposals completed "
            << r.proposals_completed << ")\n"
            << "  wall                      " << fixed(r.wall, 1) << " s against " << fixed(r.pacing, 1)
            << " s of model pacing (" << fixed(r.wall / r.pacing, 2) << "x); per session p50 "
            << fixed(r.session_p50, 1) << " s, p95 " << fixed(r.session_p95, 1) << " s; load average after "
            << r.load_after << "\n"
            << "  start (POST -> 202)       p50 " << fixed(r.start_p50, 2) << " s, p95 " << fixed(r.start_p95, 2)
            << " s, max " << fixed(r.start_max, 2) << " s\n"
            << "  lag (ts -> browser)       p50 " << fixed(r.lag_p50, 1) << " ms, p95 " << fixed(r.lag_p95, 1)
            << " ms, p99 " << fixed(r.lag_p99, 1) << " ms, max " << fixed(r.lag_max, 1) << " ms\n";
  if (anchored) {
    std::cout << "  lag (ts -> nginx anchor)  p50 " << fixed(r.anchor_lag_p50, 1) << " ms, p99 "
              << fixed(r.anchor_lag_p99, 1) << " ms\n";
  }
  std::cout << "  events                    " << r.events << " to browsers (" << fixed(r.events / r.wall, 0)
            << "/s)";
  if (anchored) std::cout << ", " << r.anchor_events << " through nginx";
  std::cout << "\n"
            << "  lost / duplicated         " << r.lost << " / " << r.duplicated << " (browsers)";
  if (anchored) std::cout << ", " << r.anchor_lost << " / " << r.anchor_duplicated << " (nginx)";
  std::cout << "; frames without seq " << r.without_seq + r.anchor_without_seq << "; reconnects " << r.reconnects
            << "; 429/503 waits " << r.waits << "\n"
            << "  CPU ms per event          engine " << fixed(per_event_ms(r.cpu_engine, r.events), 3)
            << ", orchestrator " << fixed(per_event_ms(r.cpu_orch, r.events), 3);
  if (anchored) std::cout << ", nginx " << fixed(per_event_ms(r.cpu_nginx, r.anchor_events), 4);
  std::cout << "   (= CPU-s per 1,000 events)\n";
  for (const auto* svc : {&r.roles_engine, &r.roles_orch}) {
    std::cout << (svc == &r.roles_engine ? "    engine by thread role   " : "    orchestrator by role    ");
    bool first = true;
    for (const auto& [name, cpu] : *svc) {
      std::cout << (first ? "" : ", ") << name << " " << fixed(per_event_ms(cpu, r.events), 3);
      first = false;
    }
    std::cout << "\n";
  }
  std::cout
            << "  CPU seconds               engine " << fixed(r.cpu_engine, 1) << ", orchestrator "
            << fixed(r.cpu_orch, 1);
  if (anchored) std::cout << ", nginx " << fixed(r.cpu_nginx, 2);
  if (r.nats_measured) std::cout << ", nats-server " << fixed(r.cpu_nats, 1);
  std::cout << ", model server " << fixed(r.cpu_model, 1) << " (" << fixed(100 * r.cpu_model / r.wall, 0)
            << "% of a core), harness " << fixed(r.cpu_harness, 1) << " (" << fixed(100 * r.cpu_harness / r.wall, 0)
            << "% of a core" << (anchored ? ", 2 processes" : "") << ")\n"
            << "  peak threads              engine " << r.thr_engine << ", orchestrator " << r.thr_orch
            << ", model server " << r.thr_model;
  if (anchored) std::cout << ", nginx " << r.thr_nginx << " (" << r.nginx_workers << " workers)";
  if (r.nats_measured) std::cout << ", nats-server " << r.thr_nats;
  std::cout << "\n"
            << "  peak RSS                  engine " << mib(r.rss_engine) << ", orchestrator " << mib(r.rss_orch)
            << " (both " << mib(r.rss_engine + r.rss_orch) << "), model server " << mib(r.rss_model);
  if (anchored) std::cout << ", nginx " << mib(r.rss_nginx);
  if (r.nats_measured) std::cout << ", nats-server " << mib(r.rss_nats);
  std::cout << "\n";
  if (r.replicas > 1) {
    // Limits (threads, descriptors, memory) apply per process.
    std::cout << "  per process               ";
    for (std::size_t i = 0; i < r.engine_procs.size(); ++i) {
      const auto& p = r.engine_procs[i];
      std::cout << "engine-" << i + 1 << " " << fixed(p.cpu, 1) << " CPU-s, " << p.threads << " threads, " << mib(p.rss)
                << "; ";
    }
    for (std::size_t i = 0; i < r.orch_procs.size(); ++i) {
      const auto& p = r.orch_procs[i];
      std::cout << "orchestrator-" << i + 1 << " " << fixed(p.cpu, 1) << " CPU-s, " << p.threads << " threads, "
                << mib(p.rss) << (i + 1 < r.orch_procs.size() ? "; " : "\n");
    }
  }
  std::cout
            << "  model requests            " << r.model_requests << " (conversations by requests: "
            << r.model_per_conversation.dump() << ")\n";
  std::vector<std::pair<int, std::string>> reasons;
  for (const auto& [why, count] : r.failures) reasons.emplace_back(count, why);
  std::sort(reasons.rbegin(), reasons.rend());
  for (std::size_t i = 0; i < reasons.size() && i < 6; ++i) {
    std::cout << "  failed sessions: " << reasons[i].first << " x " << reasons[i].second << "\n";
  }
  // The issue's targets, stated for the 2-core machine (N = 1,000 at 2 chunks/s; RSS at 10,000).
  auto mark = [](bool met) { return met ? "met" : "MISSED"; };
  const double orch_ms = per_event_ms(r.cpu_orch, r.events);
  const double nginx_ms = per_event_ms(r.cpu_nginx, r.anchor_events);
  // The relay is the orchestrator's I/O threads (an upper bound: they also read every HTTP
  // request and answer it; handlers and SQL run on the pools).
  const double relay_ms = per_event_ms(io_cpu(r.roles_orch), r.events);
  std::cout << "  targets: wall <= 1.3x pacing " << mark(r.wall <= 1.3 * r.pacing) << "; p99 lag <= 100 ms "
            << mark(r.lag_p99 <= 100) << "; engine <= 0.1 ms/event " << mark(per_event_ms(r.cpu_engine, r.events) <= 0.1)
            << "; orchestrator <= 0.05 ms/event " << mark(orch_ms <= 0.05) << "; threads <= 64 per process "
            << mark(max_threads(r.engine_procs) <= 64 && max_threads(r.orch_procs) <= 64)
            << (r.replicas > 1 ? "; RSS of all replicas <= 2 GiB " : "; RSS of both <= 2 GiB ")
            << mark(r.rss_engine + r.rss_orch <= (2L << 30));
  if (anchored) {
    std::cout << "; orchestrator relay (its I/O threads) <= 2x nginx per event " << mark(relay_ms <= 2 * nginx_ms)
              << " (" << fixed(relay_ms / nginx_ms, 1) << "x; the whole orchestrator " << fixed(orch_ms / nginx_ms, 1)
              << "x)";
  }
  std::cout << "\n";
}

void print_table(const std::vector<Row>& rows, bool anchored) {
  std::cout << "\n| storage | N | replicas | wall (pacing) | lag p50 / p95 / p99 | events/s | CPU ms/event engine / "
               "orchestrator"
            << (anchored ? " / nginx" : "")
            << " | peak threads per process engine / orchestrator | peak RSS per process engine / orchestrator"
            << " | CPU-s model server / harness | lost / dup | correct |\n"
            << "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    std::cout << "| " << r.storage << " | " << r.n << " | " << r.replicas << " | ";
    if (!r.failure.empty() && r.events == 0) {
      std::cout << "failed: " << r.failure.substr(0, r.failure.find('\n')) << " | | | | | | | | |\n";
      continue;
    }
    std::cout << fixed(r.wall, 1) << " s (" << fixed(r.pacing, 0) << " s) | " << fixed(r.lag_p50, 0) << " / "
              << fixed(r.lag_p95, 0) << " / " << fixed(r.lag_p99, 0) << " ms | " << fixed(r.events / r.wall, 0)
              << " | " << fixed(per_event_ms(r.cpu_engine, r.events), 3) << " / "
              << fixed(per_event_ms(r.cpu_orch, r.events), 3);
    if (anchored) std::cout << " / " << fixed(per_event_ms(r.cpu_nginx, r.anchor_events), 4);
    std::cout << " | " << max_threads(r.engine_procs) << " / " << max_threads(r.orch_procs) << " | "
              << mib(max_rss(r.engine_procs)) << " / " << mib(max_rss(r.orch_procs)) << " | " << fixed(r.cpu_model, 1) << " / " << fixed(r.cpu_harness, 1) << " | "
              << r.lost + r.anchor_lost << " / " << r.duplicated + r.anchor_duplicated << " | " << r.sessions_ok
              << "/" << r.n << " |\n";
  }
}

/// One row as JSON (--json): totals per service kind (CPU summed, peaks of the summed samples)
/// and, under "per_process", each replica's own CPU seconds, peak threads and peak RSS.
json row_json(const Row& r) {
  auto procs = [](const std::vector<ProcCost>& v) {
    json out = json::array();
    for (const auto& p : v) out.push_back({{"cpu_s", p.cpu}, {"peak_threads", p.threads}, {"peak_rss_bytes", p.rss}});
    return out;
  };
  json j = {{"storage", r.storage},
            {"sessions", r.n},
            {"replicas", r.replicas},
            {"live_events_between_replicas", r.bus},
            {"ok", r.ok()},
            {"failure", r.failure},
            {"sessions_ok", r.sessions_ok},
            {"wall_s", r.wall},
            {"pacing_s", r.pacing},
            {"session_s", {{"p50", r.session_p50}, {"p95", r.session_p95}}},
            {"start_s", {{"p50", r.start_p50}, {"p95", r.start_p95}, {"max", r.start_max}}},
            {"lag_ms", {{"p50", r.lag_p50}, {"p95", r.lag_p95}, {"p99", r.lag_p99}, {"max", r.lag_max}}},
            {"anchor_lag_ms", {{"p50", r.anchor_lag_p50}, {"p99", r.anchor_lag_p99}}},
            {"events", r.events},
            {"anchor_events", r.anchor_events},
            {"lost", r.lost + r.anchor_lost},
            {"duplicated", r.duplicated + r.anchor_duplicated},
            {"cpu_s", {{"engine", r.cpu_engine}, {"orchestrator", r.cpu_orch}, {"nginx", r.cpu_nginx},
                       {"model", r.cpu_model}, {"harness", r.cpu_harness}}},
            {"cpu_s_by_thread_role", {{"engine", r.roles_engine}, {"orchestrator", r.roles_orch}}},
            {"peak_threads", {{"engine", r.thr_engine}, {"orchestrator", r.thr_orch}, {"nginx", r.thr_nginx}, {"model", r.thr_model}}},
            {"peak_rss_bytes", {{"engine", r.rss_engine}, {"orchestrator", r.rss_orch}, {"nginx", r.rss_nginx}, {"model", r.rss_model}}},
            {"per_process", {{"engine", procs(r.engine_procs)}, {"orchestrator", procs(r.orch_procs)}}},
            {"nginx_workers", r.nginx_workers},
            {"load_average_after", r.load_after}};
  if (r.nats_measured) {
    j["cpu_s"]["nats"] = r.cpu_nats;
    j["peak_threads"]["nats"] = r.thr_nats;
    j["peak_rss_bytes"]["nats"] = r.rss_nats;
  }
  return j;
}

std::vector<int> parse_ints(const std::string& list) {
  std::vector<int> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    std::size_t used = 0;
    const int v = std::stoi(item, &used);
    if (used != item.size() || v < 1) throw std::invalid_argument("--sessions: '" + item + "' is not a positive integer");
    out.push_back(v);
  }
  return out;
}


}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "refinement-load: N concurrent refinements through ide-orchestrator, each with a browser WebSocket through "
      "its proxy, on a paced OpenAI-compatible model (paced-model-server), with nginx relaying the engine's stream "
      "to the same N subscribers as the anchor. Starts fresh services per storage and N on loopback and prints "
      "wall time against the model's pacing, delivery lag, events/s, CPU per event, peak threads and RSS per "
      "service, the harness's and the model server's CPU, and lost/duplicated events. Exit status 0 only when "
      "every stream arrived complete and gapless and every proposal completed with the model's files; timings "
      "never fail it. With --replicas K it runs K engines and K orchestrators on one PostgreSQL (the production "
      "topology; orchestrator i invokes and follows engine i, sessions are spread round-robin), which is how "
      "N = 10,000 fits under a per-process descriptor limit of 20,000."};
  Settings s;
  std::string sessions = "100,1000";
  std::string storages = "sqlite";
  app.add_option("--sessions", sessions, "Comma-separated N (concurrent refinements), one run each")
      ->capture_default_str();
  app.add_option("--storage", storages, "Comma-separated storages: sqlite, postgres")->capture_default_str();
  app.add_option("--database-url", s.database_url,
                 "PostgreSQL server for the postgres rows (each row creates and drops its own databases; default: "
                 "$TEST_PG_URL)")
      ->envname("TEST_PG_URL");
  app.add_option("--replicas", s.replicas,
                 "Engine and orchestrator processes (K of each, replica i of the orchestrator on replica i of the "
                 "engine; needs --storage postgres when above 1). Threads, RSS and CPU are summed per service and "
                 "shown per process")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--nats-url", s.nats_url,
                 "NATS server the engine replicas share live events through when --replicas > 1 (default: "
                 "$TEST_NATS_URL, then $NATS_URL; when neither is set each row starts --nats-server of its own and "
                 "measures it; 'none': PostgreSQL LISTEN/NOTIFY instead)");
  app.add_option("--nats-server", s.nats_server, "nats-server binary started when --replicas > 1 and no --nats-url")
      ->capture_default_str();
  app.add_option("--turns", s.turns, "Model turns per run, each ending in a write_file call")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  app.add_option("--chunks", s.chunks, "Text chunks per turn")->check(CLI::Range(1, 1000))->capture_default_str();
  app.add_option("--rate", s.rate, "Model text chunks per second per session (the token rate)")
      ->check(CLI::Range(0.01, 10000.0))
      ->capture_default_str();
  app.add_option("--sessions-per-user", s.sessions_per_user, "Refinements per user (users = ceil(N / this))")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  app.add_option("--anchor", s.anchor, "Relay anchor next to the orchestrator (nginx in front of every engine replica): nginx | none")
      ->check(CLI::IsMember({"nginx", "none"}))
      ->capture_default_str();
  app.add_option("--nginx", s.nginx, "nginx binary (Debian: /usr/sbin/nginx)")->capture_default_str();
  app.add_option("--bin-dir", s.bin_dir, "Directory of spec-engine, ide-orchestrator and paced-model-server "
                                         "(default: this binary's directory)")
      ->envname("BIN_DIR");
  app.add_option("--io-threads", s.io_threads, "Harness I/O threads (sessions are coroutines, not threads)")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  app.add_option("--engine-max-runs", s.engine_max_runs,
                 "spec-engine --max-concurrent-runs of each replica (default: its share of N, capped at the engine's own maximum)");
  app.add_option("--engine-arg", s.engine_args, "Extra spec-engine flag (repeat; e.g. --engine-arg=--blocking-threads=32)");
  app.add_option("--orchestrator-arg", s.orchestrator_args, "Extra ide-orchestrator serve flag (repeat)");
  app.add_option("--service-log-level", s.service_log_level, "--log-level of both services")->capture_default_str();
  app.add_option("--timeout", s.timeout,
                 "Seconds allowed for one N after the start (default: 300 + 4x pacing + 0.15 s per session)");
  app.add_option("--request-timeout", s.request_timeout,
                 "Seconds one HTTP request or WebSocket handshake of a session may take (a POST that times out is "
                 "not sent again: it may have started a run)")
      ->check(CLI::Range(1.0, 3600.0))
      ->capture_default_str();
  app.add_option("--work-dir", s.work_dir, "Where logs and databases go (default: a new /tmp/refinement-load.* dir)");
  app.add_flag("--keep", s.keep, "Keep the work directory (it is always kept when something failed)");
  app.add_option("--json", s.json_out, "Append one JSON object per row to this file");
  bool anchor_worker = false;
  app.add_flag("--anchor-worker", anchor_worker, "(internal) run as the anchor's subscriber process")->group("");
  CLI11_PARSE(app, argc, argv);
  if (anchor_worker) {
    std::signal(SIGPIPE, SIG_IGN);
    return run_anchor_worker(s.io_threads);
  }

  try {
    s.sessions = parse_ints(sessions);
  } catch (const std::exception& e) {
    std::cerr << "refinement-load: " << e.what() << "\n";
    return 2;
  }
  s.storages.clear();
  {
    std::stringstream ss(storages);
    std::string item;
    while (std::getline(ss, item, ',')) {
      if (item != "sqlite" && item != "postgres") {
        std::cerr << "refinement-load: --storage: '" << item << "' is neither sqlite nor postgres\n";
        return 2;
      }
      s.storages.push_back(item);
    }
  }
  if (s.replicas > 1 && std::find(s.storages.begin(), s.storages.end(), "sqlite") != s.storages.end()) {
    std::cerr << "refinement-load: --replicas " << s.replicas
              << " needs --storage postgres: SQLite is one process (a second engine on the same data directory "
                 "refuses to start)\n";
    return 2;
  }
  if (s.nats_url.empty()) {
    for (const char* var : {"TEST_NATS_URL", "NATS_URL"}) {
      if (const char* v = std::getenv(var); v && *v) {
        s.nats_url = v;
        break;
      }
    }
  }
  if (s.replicas > 1 && s.nats_url.empty() && s.nats_server.find('/') == std::string::npos &&
      fs::exists("/usr/sbin/" + s.nats_server)) {
    s.nats_server = "/usr/sbin/" + s.nats_server;
  }
  if (std::find(s.storages.begin(), s.storages.end(), "postgres") != s.storages.end() && s.database_url.empty()) {
    std::cerr << "refinement-load: --storage postgres needs --database-url (or TEST_PG_URL), e.g. run it under "
                 "scripts/with-test-services.sh\n";
    return 2;
  }
  if (s.bin_dir.empty()) s.bin_dir = self_dir();
  for (const char* b : {"spec-engine", "ide-orchestrator", "paced-model-server"}) {
    if (!fs::exists(fs::path(s.bin_dir) / b)) {
      std::cerr << "refinement-load: " << (fs::path(s.bin_dir) / b).string() << " not found (--bin-dir; make build)\n";
      return 2;
    }
  }
  if (s.anchor == "nginx" && s.nginx == "nginx" && fs::exists("/usr/sbin/nginx")) s.nginx = "/usr/sbin/nginx";
  if (s.anchor == "nginx" && s.nginx.find('/') != std::string::npos && !fs::exists(s.nginx)) {
    std::cerr << "refinement-load: nginx not found at " << s.nginx
              << " (scripts/install-deps.sh installs it; or pass --anchor none)\n";
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  stop_children_on_signal();

  const int max_n = *std::max_element(s.sessions.begin(), s.sessions.end());
  const std::size_t fds = raise_nofile(static_cast<std::size_t>(max_n) * 8 + 65536);
  const auto [port_lo, port_hi] = ephemeral_port_range();
  fs::path work = s.work_dir;
  if (work.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "refinement-load.XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) {
      std::cerr << "refinement-load: cannot create a work directory\n";
      return 2;
    }
    work = tmpl;
  }
  fs::create_directories(work);

  std::cout << "refinement-load: " << s.turns << " turns x " << s.chunks << " chunks at " << s.rate
            << " chunks/s per session = " << s.turns * s.chunks / s.rate << " s of model pacing per run; N = "
            << sessions << "; storage " << storages << "; anchor " << s.anchor << "\n"
            << "  machine: " << std::thread::hardware_concurrency() << " cores; RLIMIT_NOFILE " << fds
            << " (inherited by the services); ephemeral ports " << port_lo << "-" << port_hi << " ("
            << port_hi - port_lo + 1 << " per destination)\n"
            << "  services log at --log-level " << s.service_log_level << "; work dir " << work.string() << "\n";
  // Descriptors per process (every process has the same limit, inherited from here).
  const bool anchored = s.anchor == "nginx";
  const FdPlan plan = fd_plan(max_n, s.replicas, anchored);
  std::cout << "  descriptors per process at N=" << max_n << " with " << s.replicas << " replica"
            << (s.replicas > 1 ? "s" : "") << ": engine ~" << plan.engine << ", orchestrator ~" << plan.orchestrator
            << ", model server ~" << plan.model << ", harness ~" << plan.harness;
  if (anchored) {
    std::cout << ", anchor worker ~" << plan.anchor_worker << ", nginx ~" << plan.nginx_worker << " per worker ("
              << plan.nginx_workers << " workers)";
  }
  std::cout << "\n";
  if (static_cast<std::size_t>(plan.largest()) > fds) {
    int enough = s.replicas;
    while (enough < 64 && static_cast<std::size_t>(fd_plan(max_n, enough, anchored).largest()) > fds) ++enough;
    std::cout << "  warning: some process needs more than RLIMIT_NOFILE " << fds
              << " descriptors (raising the hard limit needs CAP_SYS_RESOURCE)";
    if (static_cast<std::size_t>(fd_plan(max_n, enough, anchored).largest()) <= fds) {
      std::cout << "; --replicas " << enough << " fits";
    }
    std::cout << "\n";
  }
  // Loopback connections to one destination need one ephemeral port each: the model server gets
  // one per session from the engines (all on 127.0.0.1), an engine one per session of its replica
  // from its orchestrator (nginx binds 127.0.0.2 for its own).
  if (port_hi - port_lo + 1 < max_n + 1000) {
    std::cout << "  warning: " << max_n << " connections to the model server need a wider "
              << "net.ipv4.ip_local_port_range\n";
  }

  core::async::Runtime rt(core::async::RuntimeOptions{s.io_threads, 2, "refinement-load"});
  rt.start();
  core::http::AsyncClientOptions co;
  co.max_idle_per_origin = 256;
  co.ws_idle_timeout = std::chrono::milliseconds(static_cast<long>(std::max(120.0, 10 * s.chunks / s.rate) * 1000));
  core::http::AsyncHttpClient client(rt, co);

  std::vector<Row> rows;
  bool all_ok = true;
  int index = 0;
  for (const auto& storage : s.storages) {
    for (int n : s.sessions) {
      Row r;
      try {
        r = run_row(s, storage, n, index++, work, fds, rt, client);
      } catch (const std::exception& e) {
        r.storage = storage;
        r.n = n;
        r.replicas = s.replicas;
        r.failure = e.what();
      }
      print_row(r, s.anchor == "nginx");
      all_ok = all_ok && r.ok();
      if (!s.json_out.empty()) std::ofstream(s.json_out, std::ios::app) << row_json(r).dump() << "\n";
      rows.push_back(std::move(r));
    }
  }
  print_table(rows, s.anchor == "nginx");
  rt.stop();
  if (all_ok && !s.keep) {
    std::error_code ec;
    fs::remove_all(work, ec);
  } else {
    std::cout << "\nlogs kept in " << work.string() << "\n";
  }
  std::cout << (all_ok ? "\nrefinement-load: every stream complete and gapless, every proposal completed\n"
                       : "\nrefinement-load: FAILED (see above)\n");
  return all_ok ? 0 : 1;
}
