#pragma once
// Wiring of the ide-orchestrator process: database + migrations, engine client, thread
// followers, proposal tracker, domain services, routes, middleware and the HTTP server. The
// binary's main parses flags into AppOptions and owns the core::async::Runtime that the engine
// client, the followers and the tracker run on.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/async.hpp"
#include "core/db.hpp"
#include "core/router.hpp"
#include "core/server.hpp"
#include "orchestrator/api/middleware.hpp"
#include "orchestrator/api/ws_proxy.hpp"
#include "orchestrator/domain/users.hpp"
#include "orchestrator/engine_client/engine_client.hpp"
#include "orchestrator/follow/follower.hpp"
#include "orchestrator/tracker/tracker.hpp"

namespace orchestrator::api {

/// Token settings. Exactly one of `hs256_secret` (>= 32 bytes) or `rs256_public_key_pem`
/// is used for verification; issuing tokens (login) needs the HS256 secret.
struct JwtSettings {
  std::string hs256_secret;            ///< shared secret; never logged
  std::string rs256_public_key_pem;    ///< PEM public key for tokens from an external IdP
  std::string external_issuer;         ///< `iss` required of external RS256 tokens; empty = ours
  std::string external_audience;       ///< `aud` required of external RS256 tokens; empty = ours
  std::chrono::seconds ttl{std::chrono::hours(8)};  ///< lifetime of issued tokens
};

/// Everything the process needs to run.
struct AppOptions {
  core::http::ServerOptions server;        ///< host, port, body limit, threads
  /// SQLite file or postgresql:// URL (database ide_orchestrator); `lease_timeout` bounds the wait
  /// for a pooled connection (--db-wait-ms; past it a request answers 503 + Retry-After).
  core::db::DbConfig db;
  /// /ready's wait for a pooled connection to ping the database on (connecting and the query are
  /// bounded by the connection's own network timeouts, core/db.hpp).
  std::chrono::milliseconds ready_db_timeout{1000};
  engine_client::EngineClientOptions engine;
  follow::FollowOptions follow;            ///< upstream engine streams shared per thread
  tracker::TrackerOptions tracker;
  MiddlewareOptions middleware;            ///< CORS origins, rate limits (per user, per IP, login, refinements)
  domain::ProposalLimits proposals;        ///< refinements in flight per user (counted in the database)
  WsProxyOptions ws;
  JwtSettings jwt;
  /// Refinement agent definition (JSON). Empty = search "config/refinement-agent.json".
  std::filesystem::path refinement_agent_file;
  /// Model name given to every node of the refinement agent (its llm_config.model), replacing
  /// the file's; empty = keep the file's. The engine's --model-override still wins over both.
  std::string refinement_model;
  /// OpenAPI document served at /api/openapi.json. Empty = search "docs/openapi.json".
  std::filesystem::path openapi_file;
  /// Built web console served at `/` (holds index.html). Empty = the first of <exe>/../web
  /// (where `make build` puts it) and /usr/share/agentic-ide/web that holds an index.html;
  /// none: `/` says the console was not built. A given directory without index.html is an error.
  std::filesystem::path web_dir;
};

/// Finds a file shipped with the sources or installed: tries `rel` under
/// $IDE_ORCHESTRATOR_HOME, <exe>/../.., the working directory and /usr/share/agentic-ide.
/// Throws std::runtime_error listing the places tried.
std::filesystem::path find_resource(const std::string& rel);

/// The web console directory App serves: `configured` when non-empty (std::runtime_error
/// unless it holds index.html), else the default search of AppOptions::web_dir; nullopt when none is found.
std::optional<std::filesystem::path> resolve_web_dir(const std::filesystem::path& configured);

/// Opens the database described by `db` and applies pending migrations. Returns the count applied.
int run_migrations(const core::db::DbConfig& db);

/// Creates a user with an Argon2id password hash. Throws domain::InvalidError (bad e-mail,
/// short password) or domain::ConflictError (e-mail taken). Returns the new user's id.
std::string add_user(const core::db::DbConfig& db, const std::string& email, const std::string& name,
                     const std::string& password);

/// Every user, oldest first (`ide-orchestrator user list`).
std::vector<domain::User> list_users(const core::db::DbConfig& db);

/// Disables (`disabled` true) or enables the user named by id or e-mail (`ide-orchestrator user
/// disable|enable`); returns the user after the change. Throws domain::NotFoundError /
/// InvalidError("user").
domain::User set_user_disabled(const core::db::DbConfig& db, const std::string& user, bool disabled);

/// Sets the password of the user named by id or e-mail and ends their sessions
/// (`ide-orchestrator user set-password`). Throws domain::NotFoundError / InvalidError.
domain::User set_user_password(const core::db::DbConfig& db, const std::string& user, const std::string& password);


/// Sets llm_config.model = `model` on every node of `agent` (an engine agent definition with
/// graph.nodes), creating llm_config when a node has none. Returns the number of nodes changed.
int override_agent_model(nlohmann::json& agent, const std::string& model);

/// The running service.
class App {
 public:
  /// Opens the database, migrates, loads the agent definition and the OpenAPI document.
  /// `runtime` (started by the caller, stopped only after stop()) runs the engine client, the
  /// thread followers and the tracker. Throws std::runtime_error with a message a person can act on.
  App(AppOptions options, core::async::Runtime& runtime);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  /// Starts the tracker and the HTTP server.
  void start();
  /// The bound port (after start()).
  std::uint16_t port() const;
  /// Stops, in order: the HTTP server (browsers get 1001; handlers finish), the tracker (leases
  /// released), the thread followers. Idempotent. Stop the runtime afterwards.
  void stop();
  /// The routes this app registers (for tests): method ("WS" for WebSockets) and pattern.
  std::vector<core::http::Router::RouteInfo> routes() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace orchestrator::api
