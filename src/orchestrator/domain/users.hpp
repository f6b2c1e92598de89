#pragma once
// Users: created by the admin command (`ide-orchestrator user add`), authenticated by
// POST /api/auth/login. Passwords are Argon2id hashes (auth/password.hpp).

#include <optional>
#include <string>

#include "core/db.hpp"
#include "orchestrator/auth/password.hpp"

namespace orchestrator::domain {

/// A user as shown to clients (no password hash).
struct User {
  std::string id, email, name, created_at;
};

/// User accounts. Thread-safe (each call borrows a pooled session).
class UserService {
 public:
  /// Keeps a reference to `db` (must outlive the service). `params` are the Argon2id costs for
  /// new password hashes (auth/password.hpp). Computes one dummy hash with `params` up front
  /// (for authenticate's timing equalisation), so construction costs one hash; throws
  /// std::runtime_error if libsodium cannot initialise or runs out of memory.
  explicit UserService(core::db::Database& db, auth::PasswordParams params = auth::PasswordParams::interactive());

  /// Creates a user. `email` is trimmed and lower-cased; must look like local@domain
  /// (<= 254 bytes, RFC 5321 §4.5.3.1.3); `name` 1..200 bytes; `password` 8..1024 bytes.
  /// Throws InvalidError("email" | "name" | "password") or ConflictError when the e-mail is taken.
  User create(const std::string& email, const std::string& name, const std::string& password);

  /// Checks credentials. Unknown e-mail and wrong password both throw
  /// UnauthenticatedError("invalid e-mail or password") after comparable work (a dummy
  /// hash is verified for unknown e-mails, so timing does not reveal which).
  User authenticate(const std::string& email, const std::string& password);

  /// The user with this id, or nullopt.
  std::optional<User> find(const std::string& id);
  /// The user with this e-mail (normalised as in create), or nullopt.
  std::optional<User> find_by_email(const std::string& email);

  /// The local user for an external identity-provider token (RS256): looked up by the
  /// token's `email` claim (normalised as in create); created on first sight with that
  /// e-mail as name and no usable password (password login always fails for it), in one
  /// transaction with an audit entry "user.create_external" {issuer, subject}.
  /// Throws UnauthenticatedError when `email` is empty or not an e-mail address.
  User find_or_create_external(const std::string& email, const std::string& issuer, const std::string& subject);
  /// Lower-cases and trims an e-mail address.
  static std::string normalize_email(const std::string& email);

 private:
  core::db::Database& db_;
  auth::PasswordParams params_;
  std::string dummy_hash_;
};

}  // namespace orchestrator::domain
