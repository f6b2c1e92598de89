#pragma once
// Users: created by the admin command (`ide-orchestrator user add`), authenticated by
// POST /api/auth/login. Passwords are Argon2id hashes (auth/password.hpp).

#include <optional>
#include <string>

#include <vector>

#include "orchestrator/store/unit_of_work.hpp"
#include "orchestrator/auth/password.hpp"
#include "orchestrator/store/records.hpp"
#include "orchestrator/store/tx.hpp"

namespace orchestrator::domain {

/// A user as shown to clients (no password hash).
struct User {
  std::string id, email, name, created_at;
  std::optional<std::string> disabled_at;  ///< set while the account is disabled
};

/// GET /api/me: the signed-in user and the external identities linked to the account.
struct Profile {
  User user;
  std::vector<store::IdentityRecord> identities;  ///< {issuer, subject, user_id, email, created_at}
};

/// Claims of an external identity-provider token that decide which local user it is.
struct ExternalIdentity {
  std::string issuer;           ///< `iss` (RFC 7519 §4.1.1), as verified
  std::string subject;          ///< `sub` (RFC 7519 §4.1.2), non-empty, unique per issuer
  std::string email;            ///< `email` claim; "" when absent
  bool email_verified = false;  ///< `email_verified` claim (OpenID Connect Core 1.0 §5.1); absent = false
};

/// User accounts. Thread-safe (each call borrows a pooled session).
class UserService {
 public:
  /// Keeps a reference to `store` (must outlive the service). `params` are the Argon2id costs for
  /// new password hashes (auth/password.hpp). Computes one dummy hash with `params` up front
  /// (for authenticate's timing equalisation), so construction costs one hash; throws
  /// std::runtime_error if libsodium cannot initialise or runs out of memory.
  explicit UserService(store::Store& store, auth::PasswordParams params = auth::PasswordParams::interactive());

  /// Creates a user. `email` is trimmed and lower-cased; must look like local@domain
  /// (<= 254 bytes, RFC 5321 §4.5.3.1.3); `name` 1..200 bytes; `password` 8..1024 bytes.
  /// Throws InvalidError("email" | "name" | "password") or ConflictError when the e-mail is taken.
  User create(const std::string& email, const std::string& name, const std::string& password);

  /// Checks credentials. Unknown e-mail and wrong password both throw
  /// UnauthenticatedError("invalid e-mail or password") after comparable work (a dummy
  /// hash is verified for unknown e-mails, so timing does not reveal which); the right password
  /// of a disabled account throws UnauthenticatedError saying so. Within the second of the
  /// account's last password change it returns only when that second is over (see
  /// require_token_user).
  User authenticate(const std::string& email, const std::string& password);

  /// The user with this id, or nullopt.
  std::optional<User> find(const std::string& id);
  /// The account a token of ours names, if it may still be used: UnauthenticatedError when the
  /// user no longer exists, is disabled, or the token was issued (`issued_at`, seconds since
  /// the epoch, the `iat` claim) in or before the second of the account's tokens_not_before
  /// (its password was set after the token was issued; authenticate() waits out that second
  /// before a new token is issued).
  User require_token_user(const std::string& id, long long issued_at);
  /// The actor's profile (NotFoundError("user") if the account is gone).
  Profile profile(const std::string& actor);

  // ---- administration (`ide-orchestrator user ...`; no actor: the operator at the console)

  /// Every user, oldest first. InvalidError("limit" | "cursor").
  store::Page<User> list(const store::PageRequest& page = {});
  /// Disables (`disabled` true) or re-enables the user `ref` (id or e-mail, see require_user):
  /// a disabled user cannot sign in and every token of theirs answers 401. Idempotent; audits
  /// "user.disable" / "user.enable" when the state changed. Returns the user after the change.
  User set_disabled(const std::string& ref, bool disabled);
  /// Sets a new password (8..1024 bytes, InvalidError("password")) for the user `ref` and ends
  /// every session: tokens issued before now answer 401. Audits "user.set_password".
  User set_password(const std::string& ref, const std::string& password);
  /// The user with this e-mail (normalised as in create), or nullopt.
  std::optional<User> find_by_email(const std::string& email);

  /// The local user for an external identity-provider token (RS256), by the rules of
  /// README "External identity providers":
  /// 1. (issuer, subject) already linked (user_identities): that user, whatever the e-mail
  ///    claim says now (changes at the provider do not move the identity to another account).
  /// 2. Otherwise the `email` claim (normalised as in create) decides:
  ///    - no account has it: a new user (name = e-mail, no usable password, so password login
  ///      always fails) linked to the identity; audit "user.create_external" {issuer, subject}.
  ///    - an account has it and `email_verified` is true and the account has no other subject
  ///      of this issuer: the identity is linked to it; audit "user.link_external".
  ///    - an account has it but the e-mail is not verified: IdentityLinkError
  ///      "email-not-verified" (403); nothing is linked.
  ///    - the account is linked to another subject of this issuer: IdentityLinkError
  ///      "identity-conflict" (403).
  /// UnauthenticatedError when the identity is not linked and `email` is empty or not an
  /// e-mail address, or when the linked user no longer exists. Concurrent first sign-ins of
  /// one identity link it once (the loser reads the winner's link).
  User sign_in_external(const ExternalIdentity& identity);
  /// Lower-cases and trims an e-mail address.
  static std::string normalize_email(const std::string& email);

 private:
  store::Store& store_;
  auth::PasswordParams params_;
  std::string dummy_hash_;
};

/// The user a reference names: a user id (UUID) or an e-mail address (anything with '@',
/// normalised as in UserService::create). InvalidError("user") when it is neither,
/// NotFoundError("user", ref) when no such user exists.
store::UserRecord require_user(store::UnitOfWork& uow, const std::string& ref);

}  // namespace orchestrator::domain
