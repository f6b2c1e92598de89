#pragma once
// The parse step of the orchestrator's handlers (routes.cpp: parse, call the domain,
// render): each request body becomes one command, or an error naming the bad field.
// Pure (no I/O, no engine, no database), so it is unit-tested and fuzzed
// (fuzz/fuzz_bodies.cpp) on its own. Every parser reads the body with parse_json_object
// (bounded JSON, problem.hpp) and throws:
//   - ApiError: 400 validation_problem listing every bad field, 400/413 for a body that
//     is not JSON / too deep / holds a number out of range, 415 for a non-JSON media type;
//   - domain::InvalidError: a path that breaks the shared file rules (core/files.hpp).

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "core/http_types.hpp"

namespace orchestrator::api {

/// Longest refinement prompt and context selection, bytes.
inline constexpr std::size_t kMaxPromptBytes = 20000;

/// Largest draft revision a client may name: 2^53 - 1, the largest integer every JSON
/// implementation holds exactly (RFC 8259 §6, RFC 7493 §2.2). Bounding it also keeps
/// `revision + 1` from overflowing.
inline constexpr long long kMaxRevision = (1LL << 53) - 1;

/// POST /api/auth/login {email (1..320 bytes), password (1..1024 bytes)}.
struct LoginCommand {
  std::string email;
  std::string password;
};
LoginCommand parse_login(const core::http::Request& req);

/// POST /api/workflows {name (1..200 bytes), description?, template?, files?}: `files`
/// (an object; converted by domain::files_from_json) and `template` exclude each other.
struct CreateWorkflowCommand {
  std::string name;
  std::string description;                   ///< "" when absent
  std::optional<std::string> template_name;  ///< `template`
  std::optional<nlohmann::json> files;       ///< the `files` object as given
};
CreateWorkflowCommand parse_create_workflow(const core::http::Request& req);

/// POST /api/workflows/{id}/versions with an optional body {base_revision?: 1..kMaxRevision};
/// an empty body is {}.
struct PublishVersionCommand {
  std::optional<long long> base_revision;
};
PublishVersionCommand parse_publish_version(const core::http::Request& req);

/// PUT /api/workflows/{id}/draft/files {files: object, base_revision: 1..kMaxRevision};
/// `files` maps paths to files or null (domain::draft_patch_from_json).
struct PutDraftFilesCommand {
  nlohmann::json files;   ///< an object
  long long base_revision = 0;
};
PutDraftFilesCommand parse_put_draft_files(const core::http::Request& req);

/// POST /api/workflows/{id}/refinements {user_prompt (1..kMaxPromptBytes bytes),
/// context_file_path? (a valid file path), context_selection? (at most kMaxPromptBytes)}.
struct StartRefinementCommand {
  std::string user_prompt;
  std::optional<std::string> context_file_path;
  std::optional<std::string> context_selection;
};
StartRefinementCommand parse_start_refinement(const core::http::Request& req);

/// The request's Idempotency-Key header (refinement and run starts), parsed by
/// domain::parse_idempotency_key; nullopt without one. Throws the 400 problem naming
/// `Idempotency-Key` for a bad value (domain::InvalidError) or for more than one field.
std::optional<std::string> parse_idempotency_key_header(const core::http::Request& req);

/// POST /api/workflows/{id}/deploy with an optional body {version?: 1..kMaxRevision}; an
/// empty body is {} (deploy the latest version).
struct DeployCommand {
  std::optional<long long> version;  ///< nullopt = the latest published version
};
DeployCommand parse_deploy(const core::http::Request& req);

/// Longest message a run is started with, bytes.
inline constexpr std::size_t kMaxRunInputBytes = 20000;

/// POST /api/workflows/{id}/runs {input (1..kMaxRunInputBytes bytes), version?: 1..kMaxRevision
/// | "draft"}: what to run. `version` absent or null runs the deployed version.
struct StartRunCommand {
  std::string input;                 ///< the user's message to the entry agent
  std::optional<long long> version;  ///< a version number; nullopt with draft == false = deployed
  bool draft = false;                ///< `"version": "draft"`: run the current draft
};
StartRunCommand parse_start_run(const core::http::Request& req);

}  // namespace orchestrator::api
