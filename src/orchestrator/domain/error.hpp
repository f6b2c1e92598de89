#pragma once
// Typed errors of the orchestrator domain layer. Every service method documents
// which of these it throws; the API layer maps them to RFC 9457 problem details
// with `http_status()` (a resource the caller may not see is not_found -> 404,
// never 403: docs/orchestrator-api.md#errors).

#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace orchestrator::domain {

/// What went wrong, independent of transport.
enum class ErrorKind {
  invalid,          ///< input fails validation; `field()` names it (400)
  not_found,        ///< does not exist OR the caller may not see it (404)
  conflict,         ///< concurrent change: stale revision, three-way merge conflict, duplicate (409)
  precondition,     ///< illegal state transition, e.g. approve a rejected proposal (409)
  unauthenticated,  ///< missing/invalid credentials or token (401)
  forbidden,        ///< caller can see the resource but its role may not change it (403)
  limit_exceeded,   ///< a per-user quota is used up, e.g. concurrent refinements (429, RFC 6585 §4)
  /// an Idempotency-Key sent again with a different request (422,
  /// draft-ietf-httpapi-idempotency-key-header-06 §2.7)
  idempotency_key_reused,
};

/// Base of all domain errors. `what()` is a sentence a person can act on and never
/// contains secrets (passwords, tokens).
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message, nlohmann::json details = nlohmann::json::object())
      : std::runtime_error(message), kind_(kind), details_(std::move(details)) {}
  /// The error category; decides http_status() and slug().
  ErrorKind kind() const noexcept { return kind_; }
  /// Extra machine-readable facts for the problem document (e.g. {"current_status": "rejected"}).
  const nlohmann::json& details() const noexcept { return details_; }
  /// Suggested HTTP status: invalid 400, unauthenticated 401, forbidden 403, not_found 404,
  /// conflict/precondition 409, idempotency_key_reused 422, limit_exceeded 429.
  int http_status() const noexcept;
  /// Short slug for the problem "type" URI, e.g. "not-found", "conflict".
  const char* slug() const noexcept;

 private:
  ErrorKind kind_;
  nlohmann::json details_;
};

/// Invalid input; `field()` is the JSON field (dotted path, e.g. "files./THE_SPEC/plan.md.content").
class InvalidError : public Error {
 public:
  InvalidError(std::string field, const std::string& message)
      : Error(ErrorKind::invalid, message, {{"field", field}}), field_(std::move(field)) {}
  /// The offending JSON field (dotted path); also in details() as "field".
  const std::string& field() const noexcept { return field_; }

 private:
  std::string field_;
};

/// Resource missing or hidden from the caller; `resource()` is "workflow", "proposal", "draft", ...
class NotFoundError : public Error {
 public:
  NotFoundError(std::string resource, const std::string& id)
      : Error(ErrorKind::not_found, resource + " " + id + " was not found",
              {{"resource", resource}, {"id", id}}),
        resource_(std::move(resource)) {}
  /// Resource kind as given to the constructor ("workflow", "proposal", ...); details() also
  /// carries it with the id as {"resource", "id"}.
  const std::string& resource() const noexcept { return resource_; }

 private:
  std::string resource_;
};

/// Concurrent modification. `paths()` lists conflicting file paths for three-way merge
/// conflicts (empty for other conflicts such as a stale draft revision).
class ConflictError : public Error {
 public:
  ConflictError(const std::string& message, std::vector<std::string> paths = {},
                nlohmann::json details = nlohmann::json::object())
      : Error(ErrorKind::conflict, message, with_paths(std::move(details), paths)), paths_(std::move(paths)) {}
  /// Conflicting absolute file paths (docs/orchestrator-api.md#proposals: 409 naming the paths); empty
  /// for non-merge conflicts. When non-empty, details() also carries them as "paths".
  const std::vector<std::string>& paths() const noexcept { return paths_; }

 private:
  static nlohmann::json with_paths(nlohmann::json d, const std::vector<std::string>& p) {
    if (!p.empty()) d["paths"] = p;
    return d;
  }
  std::vector<std::string> paths_;
};

/// The resource is in a state that does not allow the operation (state machine rule).
class PreconditionError : public Error {
 public:
  explicit PreconditionError(const std::string& message, nlohmann::json details = nlohmann::json::object())
      : Error(ErrorKind::precondition, message, std::move(details)) {}
};

/// Authentication failed (bad password, bad/expired token). The message is generic on purpose.
class UnauthenticatedError : public Error {
 public:
  /// `sign_in_helps`: whether signing in again can fix it (an expired token: yes; a disabled or
  /// deleted account: no). The API adds "sign in again" to its 401 only when it does, so the
  /// message itself never carries that advice.
  explicit UnauthenticatedError(const std::string& message, bool sign_in_helps = true)
      : Error(ErrorKind::unauthenticated, message), sign_in_helps_(sign_in_helps) {}
  bool sign_in_helps() const noexcept { return sign_in_helps_; }

 private:
  bool sign_in_helps_;
};

/// The caller may see the resource (e.g. a workflow "viewer") but not modify it. Used only
/// when the resource is already visible; invisible resources are NotFoundError.
class ForbiddenError : public Error {
 public:
  explicit ForbiddenError(const std::string& message) : Error(ErrorKind::forbidden, message) {}
};

/// A valid external identity that may not sign in as the account it names (403): its e-mail
/// matches an existing account but is not verified by the identity provider, or that account
/// is already linked to another subject of the same provider. `reason()` is the problem-type
/// slug: "email-not-verified" | "identity-conflict".
class IdentityLinkError : public ForbiddenError {
 public:
  IdentityLinkError(std::string reason, const std::string& message)
      : ForbiddenError(message), reason_(std::move(reason)) {}
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string reason_;
};

/// The caller sent an Idempotency-Key it had already used for a different request (another
/// workflow, prompt, context or input): 422 (draft-ietf-httpapi-idempotency-key-header-06 §2.7).
/// details(): {"idempotency_key", "resource" ("proposal" | "run"), "id" (the one the key created)}.
class IdempotencyKeyReusedError : public Error {
 public:
  IdempotencyKeyReusedError(const std::string& key, const std::string& resource, const std::string& id)
      : Error(ErrorKind::idempotency_key_reused,
              "Idempotency-Key " + key + " was already used for a different request (it started " + resource + " " +
                  id + "); send a new key for a new request",
              {{"idempotency_key", key}, {"resource", resource}, {"id", id}}) {}
};

/// A per-user concurrency quota is used up (429 Too Many Requests, RFC 6585 §4), e.g. too many
/// refinements in flight. `policy()` names the quota and `limit()` is its size, advertised as a
/// "concurrent-requests" quota policy (draft-ietf-httpapi-ratelimit-headers-11 §3.1.2);
/// `retry_after()` is a hint in seconds for Retry-After. details() also carries
/// {"limit", "violated-policies": [policy]} plus whatever the thrower adds.
class LimitExceededError : public Error {
 public:
  LimitExceededError(const std::string& message, std::string policy, long long limit, long long retry_after_seconds,
                     nlohmann::json details = nlohmann::json::object())
      : Error(ErrorKind::limit_exceeded, message, with_policy(std::move(details), policy, limit)),
        policy_(std::move(policy)),
        limit_(limit),
        retry_after_(retry_after_seconds) {}
  const std::string& policy() const noexcept { return policy_; }
  long long limit() const noexcept { return limit_; }
  long long retry_after() const noexcept { return retry_after_; }

 private:
  static nlohmann::json with_policy(nlohmann::json d, const std::string& policy, long long limit) {
    d["limit"] = limit;
    d["violated-policies"] = nlohmann::json::array({policy});
    return d;
  }
  std::string policy_;
  long long limit_;
  long long retry_after_;
};

inline int Error::http_status() const noexcept {
  switch (kind_) {
    case ErrorKind::invalid: return 400;
    case ErrorKind::unauthenticated: return 401;
    case ErrorKind::forbidden: return 403;
    case ErrorKind::not_found: return 404;
    case ErrorKind::conflict:
    case ErrorKind::precondition: return 409;
    case ErrorKind::idempotency_key_reused: return 422;
    case ErrorKind::limit_exceeded: return 429;
  }
  return 500;
}

inline const char* Error::slug() const noexcept {
  switch (kind_) {
    case ErrorKind::invalid: return "invalid-request";
    case ErrorKind::unauthenticated: return "unauthenticated";
    case ErrorKind::forbidden: return "forbidden";
    case ErrorKind::not_found: return "not-found";
    case ErrorKind::conflict: return "conflict";
    case ErrorKind::precondition: return "invalid-state";
    case ErrorKind::limit_exceeded: return "limit-exceeded";
    case ErrorKind::idempotency_key_reused: return "idempotency-key-reused";
  }
  return "internal";
}

}  // namespace orchestrator::domain
