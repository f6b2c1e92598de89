#pragma once
// Row shapes of the orchestrator database (migrations/orchestrator/*/*.sql).
// The domain services return these as their public types. Timestamps are RFC 3339
// UTC strings with microseconds; ids are UUID v4 text.

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "orchestrator/domain/files.hpp"

namespace orchestrator::store {

/// users row. `password_hash` is an Argon2id PHC string; never serialise it to clients.
struct UserRecord {
  std::string id, email, name, password_hash, created_at;
  std::optional<std::string> disabled_at;        ///< set while the account is disabled (no sign-in, tokens 401)
  std::optional<std::string> tokens_not_before;  ///< tokens with an earlier `iat` are refused (set by set-password)
};

/// user_identities row: an external identity provider's (issuer, subject) linked to a user;
/// `email` is the token's e-mail claim when the link was made (informational).
struct IdentityRecord {
  std::string issuer, subject, user_id, email, created_at;
};

/// workflows row plus the caller's role ("owner" | "editor" | "viewer") when read for a user.
struct WorkflowRecord {
  std::string id, name, description, owner_id, created_at, updated_at;
  std::string role;
};

/// workflow_members row joined with the member's user row (never the password hash).
struct MemberRecord {
  std::string workflow_id, user_id, email, name;
  std::string role;  ///< "owner" | "editor" | "viewer"
  std::string added_at;
};

/// drafts row: one mutable working copy per workflow; `revision` starts at 1 and
/// increments on every change (optimistic concurrency token).
struct DraftRecord {
  std::string id, workflow_id;
  long long revision = 1;
  std::string created_at, updated_at;
};

/// versions row: immutable snapshot number `number` (1, 2, ...) of a workflow.
struct VersionRecord {
  std::string id, workflow_id;
  long long number = 0;
  std::string created_by, created_at;
};

/// Proposal lifecycle (docs/orchestrator-api.md#proposals):
/// processing -> completed | failed | cancelled; completed -> approved | rejected; failed -> rejected.
enum class ProposalStatus { processing, completed, failed, cancelled, approved, rejected };
/// Lower-case name as stored and shown ("processing", ...).
const char* to_string(ProposalStatus s);
/// Parses a stored status; throws std::runtime_error on an unknown value.
ProposalStatus parse_status(const std::string& s);

/// proposals row.
struct ProposalRecord {
  std::string id, workflow_id;
  std::optional<std::string> draft_id;  ///< null once the draft was deleted
  std::string thread_id;                ///< engine thread (= engine job_id), unique
  ProposalStatus status = ProposalStatus::processing;
  std::string user_prompt;
  std::optional<std::string> context_file_path, context_selection;
  std::optional<domain::FileMap> generated_files;  ///< set by finalise()
  domain::FileMap base_files;                      ///< the draft's files when the proposal started
  std::optional<std::string> error;                ///< set by finalise_failed()/fail_stale()
  std::string created_at;
  std::optional<std::string> completed_at, resolved_at;
  std::string created_by_user_id;
  std::optional<std::string> resolved_by_user_id;
  std::optional<std::string> lease_owner, lease_expires_at;
  bool engine_cleanup_pending = false;
  /// Why a failed proposal failed (migration 0004): "engine_failed", "engine_gone",
  /// "engine_unreachable", "engine_rejected", "expired", "invalid_result"; nullopt otherwise.
  std::optional<std::string> failure_kind;
  /// W3C traceparent of the request that started the refinement (migration 0007); "" = none.
  /// The tracker's spans join that trace; the WebSocket proxy's stream spans link to it.
  std::string traceparent;
  /// Idempotency-Key of the request that created it (migration 0009); nullopt = none sent.
  /// Unique per created_by_user_id.
  std::optional<std::string> idempotency_key;
};

/// audit_log row. `details` is a JSON object.
struct AuditRecord {
  std::string id, at;
  std::optional<std::string> user_id, workflow_id;
  std::string action, subject_type, subject_id;
  nlohmann::json details = nlohmann::json::object();
};

}  // namespace orchestrator::store
