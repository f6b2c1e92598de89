// Process wiring of ide-orchestrator.
#include "orchestrator/api/app.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "core/json_parse.hpp"
#include "core/log.hpp"
#include "orchestrator/api/domain_adapter.hpp"
#include "orchestrator/api/routes.hpp"
#include "orchestrator/api/static_site.hpp"
#include "orchestrator/domain/refinements.hpp"
#include "orchestrator/store/unit_of_work.hpp"

namespace orchestrator::api {

namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p, const std::string& what) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read the " + what + " at " + p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

fs::path exe_dir() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : p.parent_path();
}

std::unique_ptr<core::db::Database> open_and_migrate(const core::db::DbConfig& cfg) {
  auto db = std::make_unique<core::db::Database>(cfg);
  const int n = core::db::migrate(*db, core::db::migrations_dir("orchestrator", db->dialect()));
  core::log::info("database_ready", {{"database", db->describe()}, {"migrations_applied", n}});
  return db;
}

/// The refinement use case's engine port over the engine client: engine failures become answers
/// carrying the client's exception (rendered 503 / 502 by problem.cpp).
class EnginePort : public domain::RefinementEngine {
 public:
  explicit EnginePort(engine_client::EngineClient& engine) : engine_(engine) {}
  core::async::Task<Answer> invoke(nlohmann::json job, std::string traceparent) override {
    core::async::Task<std::string> sent = engine_.invoke_async(std::move(job), std::move(traceparent));
    try {
      (void)co_await std::move(sent);
      co_return Answer{};
    } catch (const engine_client::EngineUnavailable& e) {
      co_return Answer{Outcome::unavailable, e.what(), std::current_exception()};
    } catch (const engine_client::EngineRejected& e) {
      co_return Answer{Outcome::rejected, e.what(), std::current_exception()};
    }
  }

 private:
  engine_client::EngineClient& engine_;
};

/// The refinement use case's (and the run route's) tracker port over tracker::Tracker: the starting() hold wraps a
/// Tracker::Starting guard; the lease is the tracker's instance id and lease length.
class TrackerPort : public domain::RefinementTracker {
 public:
  explicit TrackerPort(tracker::Tracker& tracker) : tracker_(tracker) {}
  std::unique_ptr<Hold> starting(const std::string& thread_id) override {
    return std::make_unique<StartingHold>(tracker_.starting(thread_id));
  }
  std::string lease_owner() const override { return tracker_.instance_id(); }
  std::chrono::seconds lease_ttl() const override { return tracker_.lease_seconds(); }
  void track(const std::string& proposal_id, const std::string& thread_id) override {
    tracker_.track(proposal_id, thread_id);
  }
  void track_run(const std::string& run_id, const std::string& thread_id) override {
    tracker_.track_run(run_id, thread_id);
  }

 private:
  struct StartingHold : Hold {
    explicit StartingHold(tracker::Tracker::Starting g) : guard(std::move(g)) {}
    tracker::Tracker::Starting guard;
  };
  tracker::Tracker& tracker_;
};

}  // namespace

fs::path find_resource(const std::string& rel) {
  std::vector<fs::path> tried;
  if (const char* home = std::getenv("IDE_ORCHESTRATOR_HOME"); home && *home) tried.push_back(fs::path(home) / rel);
  if (auto e = exe_dir(); !e.empty()) tried.push_back(e / ".." / ".." / rel);
  tried.push_back(fs::current_path() / rel);
  tried.push_back(fs::path("/usr/share/agentic-ide") / rel);
  for (const auto& p : tried) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return fs::weakly_canonical(p, ec);
  }
  std::string list;
  for (const auto& p : tried) list += (list.empty() ? "" : ", ") + p.string();
  throw std::runtime_error("cannot find " + rel + " (looked in " + list + "); set IDE_ORCHESTRATOR_HOME to the source tree");
}

std::optional<fs::path> resolve_web_dir(const fs::path& configured) {
  std::error_code ec;
  if (!configured.empty()) {
    if (!fs::is_regular_file(configured / "index.html", ec)) {
      throw std::runtime_error("--web-dir " + configured.string() +
                               " holds no index.html; build the console (make build) or fix the path");
    }
    return fs::weakly_canonical(configured, ec);
  }
  std::vector<fs::path> candidates;
  if (auto e = exe_dir(); !e.empty()) candidates.push_back(e / ".." / "web");
  candidates.push_back("/usr/share/agentic-ide/web");
  for (const auto& c : candidates) {
    if (fs::is_regular_file(c / "index.html", ec)) return fs::weakly_canonical(c, ec);
  }
  return std::nullopt;
}

int run_migrations(const core::db::DbConfig& db) {
  core::db::Database d(db);
  return core::db::migrate(d, core::db::migrations_dir("orchestrator", d.dialect()));
}

std::string add_user(const core::db::DbConfig& db, const std::string& email, const std::string& name,
                     const std::string& password) {
  auto d = open_and_migrate(db);
  store::Store units(*d);
  return DomainAdapter::create_user(units, email, name, password);
}

std::vector<domain::User> list_users(const core::db::DbConfig& db) {
  auto d = open_and_migrate(db);
  store::Store units(*d);
  domain::UserService users(units);
  std::vector<domain::User> out;
  store::PageRequest page{store::kMaxPageLimit, ""};
  while (true) {
    auto p = users.list(page);
    out.insert(out.end(), p.items.begin(), p.items.end());
    if (!p.next_cursor) return out;
    page.cursor = *p.next_cursor;
  }
}

domain::User set_user_disabled(const core::db::DbConfig& db, const std::string& user, bool disabled) {
  auto d = open_and_migrate(db);
  store::Store units(*d);
  return domain::UserService(units).set_disabled(user, disabled);
}

domain::User set_user_password(const core::db::DbConfig& db, const std::string& user, const std::string& password) {
  auto d = open_and_migrate(db);
  store::Store units(*d);
  return domain::UserService(units).set_password(user, password);
}

int override_agent_model(nlohmann::json& agent, const std::string& model) {
  int n = 0;
  auto graph = agent.find("graph");
  if (graph == agent.end() || !graph->is_object() || !graph->contains("nodes") || !(*graph)["nodes"].is_array()) return 0;
  for (auto& node : (*graph)["nodes"]) {
    if (!node.is_object()) continue;
    auto& data = node["data"];
    if (!data.is_object()) data = nlohmann::json::object();
    auto& cfg = data["llm_config"];
    if (!cfg.is_object()) cfg = nlohmann::json::object();
    cfg["model"] = model;
    ++n;
  }
  return n;
}

struct App::Impl {
  AppOptions options;
  std::unique_ptr<core::db::Database> db;
  std::unique_ptr<store::Store> store;
  std::unique_ptr<engine_client::EngineClient> engine;
  std::unique_ptr<EnginePort> engine_port;
  std::unique_ptr<TrackerPort> tracker_port;
  std::unique_ptr<domain::ProposalService> proposals;
  std::unique_ptr<domain::RefinementService> refinements;
  std::unique_ptr<follow::FollowHub> hub;
  std::unique_ptr<tracker::Tracker> tracker;
  std::unique_ptr<DomainAdapter> domain;
  std::unique_ptr<WsProxy> ws;
  StartsInFlight starts;
  std::unique_ptr<RouteDeps> deps;
  std::unique_ptr<StaticSite> console;
  core::http::Router router;
  std::unique_ptr<core::http::Server> server;
  bool stopped = false;
};

App::App(AppOptions options, core::async::Runtime& runtime) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.options = std::move(options);
  const fs::path agent_file = m.options.refinement_agent_file.empty() ? find_resource("config/refinement-agent.json")
                                                                        : m.options.refinement_agent_file;
  const fs::path openapi_file =
      m.options.openapi_file.empty() ? find_resource("docs/openapi.json") : m.options.openapi_file;
  auto parsed = core::json::try_parse(slurp(agent_file, "refinement agent definition"));
  if (auto* e = std::get_if<core::json::ParseError>(&parsed))
    throw std::runtime_error("the refinement agent definition " + agent_file.string() + " is not valid JSON: " + e->message);
  nlohmann::json agent = std::move(std::get<nlohmann::json>(parsed));
  if (!agent.is_object() || !agent.contains("graph")) {
    throw std::runtime_error("the refinement agent definition " + agent_file.string() +
                             " is not a JSON object with a \"graph\"");
  }
  std::string openapi = slurp(openapi_file, "OpenAPI document");
  if (!m.options.refinement_model.empty()) {
    const int nodes = override_agent_model(agent, m.options.refinement_model);
    core::log::info("refinement_model_override", {{"model", m.options.refinement_model}, {"nodes", nodes}});
  }

  m.db = open_and_migrate(m.options.db);
  m.store = std::make_unique<store::Store>(*m.db);
  m.engine = std::make_unique<engine_client::EngineClient>(m.options.engine, runtime);
  m.hub = std::make_unique<follow::FollowHub>(*m.engine, m.options.follow);
  m.tracker = std::make_unique<tracker::Tracker>(*m.store, *m.engine, *m.hub, m.options.tracker);
  m.domain = std::make_unique<DomainAdapter>(*m.store, m.options.jwt, m.options.proposals);
  m.engine_port = std::make_unique<EnginePort>(*m.engine);
  m.proposals = std::make_unique<domain::ProposalService>(*m.store, m.options.proposals);
  m.tracker_port = std::make_unique<TrackerPort>(*m.tracker);
  m.refinements = std::make_unique<domain::RefinementService>(*m.proposals, *m.engine_port, std::move(agent),
                                                              m.tracker_port.get(), runtime);
  DomainAdapter* dom = m.domain.get();
  m.ws = std::make_unique<WsProxy>(
      *m.hub, [dom](const std::string& thread, const std::string& user) { return dom->watch_thread(user, thread); },
      m.options.ws, &runtime);
  store::Store* units = m.store.get();
  const auto ping_budget = m.options.ready_db_timeout;
  m.deps = std::make_unique<RouteDeps>(RouteDeps{*m.domain, *m.refinements, *m.engine, *m.ws, std::move(openapi),
                                                 [units, ping_budget] { return units->health(ping_budget); },
                                                 m.tracker_port.get(), &runtime, &m.starts});
  register_routes(m.router, *m.deps);
  m.console = std::make_unique<StaticSite>(resolve_web_dir(m.options.web_dir));
  m.console->register_routes(m.router);
  if (m.console->available()) {
    core::log::info("web_console_ready", {{"dir", m.console->root()->string()}});
  } else {
    core::log::warn("web_console_not_built", {{"detail", "GET / explains how to build it; the API is unaffected"}});
  }
  core::log::info("refinement_agent_loaded", {{"file", agent_file.string()}});
}

App::~App() { stop(); }

void App::start() {
  Impl& m = *impl_;
  m.tracker->start();
  m.server = std::make_unique<core::http::Server>(
      m.options.server, m.router,
      make_middleware(
          m.options.middleware, [dom = m.domain.get()](const std::string& t) { return dom->verify_token(t); },
          [dom = m.domain.get()](const std::string& user, const std::string& key) {
            return dom->refinement_key_used(user, key);
          }));
  m.server->start();
}

std::uint16_t App::port() const { return impl_->server ? impl_->server->port() : 0; }

void App::stop() {
  Impl& m = *impl_;
  if (m.stopped) return;
  m.stopped = true;
  // 1. The server: no new requests, browsers closed (1001), handlers finished, the proxy's
  //    coroutines (subscribers of the followers) destroyed; then the starts it stopped waiting
  //    for (they run on the runtime) end. 2. The tracker: its coroutines end
  //    and release their leases (SQL on the runtime's blocking pool). 3. The followers. The
  //    caller stops the runtime afterwards, then the members here are destroyed.
  if (m.server) m.server->stop();
  // Starts the server stopped waiting for still run on the runtime: let them record their outcome
  // and hand their proposal or run to the tracker, for as long as one engine call can take (its
  // attempts and the backoff between them) plus 5 s for the SQL around it. A start still queued
  // for an invoke slot after that is cut off when the runtime stops; a sweeper takes its proposal
  // or run over once the lease expired.
  const int attempts = std::max(1, m.options.engine.retry.max_attempts);
  const auto engine_bound = m.options.engine.request_timeout * attempts +
                            m.options.engine.retry.max_delay * (attempts - 1) + std::chrono::milliseconds(5000);
  if (!m.starts.wait_idle(std::chrono::duration_cast<std::chrono::milliseconds>(engine_bound))) {
    core::log::warn("starts_still_running_at_shutdown", {{"running", static_cast<long long>(m.starts.running())}});
  }
  if (m.tracker) m.tracker->stop();
  if (m.hub) m.hub->stop();
}

std::vector<core::http::Router::RouteInfo> App::routes() const { return impl_->router.routes(); }

}  // namespace orchestrator::api
