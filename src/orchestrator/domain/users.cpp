#include "orchestrator/domain/users.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <thread>

#include "core/util.hpp"
#include "orchestrator/domain/audit.hpp"
#include "orchestrator/domain/error.hpp"
#include "orchestrator/store/repositories.hpp"
#include "orchestrator/store/tx.hpp"

namespace orchestrator::domain {

namespace {
User to_user(const store::UserRecord& r) { return {r.id, r.email, r.name, r.created_at, r.disabled_at}; }

/// Thrown as a copy (`throw UnauthenticatedError(kDisabled)`): signing in again cannot help.
const UnauthenticatedError kDisabled("this account is disabled; ask an administrator to enable it", false);

void check_password_length(const std::string& password) {
  if (password.size() < 8 || password.size() > 1024)
    throw InvalidError("password", "password must be 8 to 1024 bytes");
}
}  // namespace

UserService::UserService(store::Store& store, auth::PasswordParams params)
    : store_(store), params_(params), dummy_hash_(auth::hash_password("dummy-password-for-timing", params)) {}

std::string UserService::normalize_email(const std::string& email) {
  std::string e = email;
  const auto b = e.find_first_not_of(" \t\r\n");
  const auto l = e.find_last_not_of(" \t\r\n");
  e = b == std::string::npos ? "" : e.substr(b, l - b + 1);
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e;
}

namespace {
/// local@domain, <= 254 bytes, no spaces or control characters (already normalised).
bool plausible_email(const std::string& email) {
  const auto at = email.find('@');
  return !email.empty() && email.size() <= 254 && at != std::string::npos && at != 0 && at + 1 != email.size() &&
         email.find('@', at + 1) == std::string::npos &&
         std::none_of(email.begin(), email.end(), [](unsigned char c) { return c <= ' ' || c == 0x7f; });
}
/// Stored as the password hash of external users: not an Argon2 string, so it never verifies.
constexpr const char* kNoPassword = "!external-identity";
}  // namespace

User UserService::create(const std::string& email_in, const std::string& name, const std::string& password) {
  const std::string email = normalize_email(email_in);
  if (!plausible_email(email)) throw InvalidError("email", "e-mail must look like name@example.com");
  if (name.empty() || name.size() > 200) throw InvalidError("name", "name must be 1 to 200 bytes");
  check_password_length(password);
  store::UserRecord r{core::uuid4(), email, name, auth::hash_password(password, params_), core::now_rfc3339()};
  return store_.run([&](store::UnitOfWork& uow) -> User {
    if (!store::users::insert(uow, r)) throw ConflictError("a user with e-mail " + email + " already exists");
    return to_user(r);
  });
}

User UserService::authenticate(const std::string& email, const std::string& password) {
  std::optional<store::UserRecord> r;
  r = store_.run([&](store::UnitOfWork& uow) { return store::users::find_by_email(uow, normalize_email(email)); });
  const bool ok = auth::verify_password(password, r ? r->password_hash : dummy_hash_);
  if (!r || !ok) throw UnauthenticatedError("invalid e-mail or password");
  // Said only to someone who knows the password, so it reveals nothing to a guesser.
  if (r->disabled_at) throw UnauthenticatedError(kDisabled);
  // Tokens carry `iat` in whole seconds and those issued in or before the second of the last
  // password change are refused (require_token_user). Within that second, wait for the next
  // one, so the token about to be issued is never mistaken for an older one (at most 1 s,
  // only right after a change).
  if (r->tokens_not_before) {
    const auto next = std::chrono::floor<std::chrono::seconds>(core::parse_rfc3339(*r->tokens_not_before)) +
                      std::chrono::seconds(1);
    std::this_thread::sleep_until(next);
  }
  return to_user(*r);
}

User UserService::sign_in_external(const ExternalIdentity& identity) {
  return store_.run([&](store::UnitOfWork& uow) -> User {
    const auto linked_user = [&](const std::string& user_id) {
      auto u = store::users::find_by_id(uow, user_id);
      if (!u) throw UnauthenticatedError("the account of this identity no longer exists", false);
      if (u->disabled_at) throw UnauthenticatedError(kDisabled);
      return to_user(*u);
    };
    if (auto id = store::users::find_identity(uow, identity.issuer, identity.subject)) return linked_user(*id);

    const std::string email = normalize_email(identity.email);
    if (!plausible_email(email)) throw UnauthenticatedError("external token has no usable email claim");
    const std::string now = core::now_rfc3339();
    const nlohmann::json details = {{"issuer", core::utf8_truncate(identity.issuer, 500)},
                                    {"subject", core::utf8_truncate(identity.subject, 500)}};
    try {
      store::Tx tx(uow);
      if (auto existing = store::users::find_by_email(uow, email)) {
        if (existing->disabled_at) throw UnauthenticatedError(kDisabled);
        store::users::lock(uow, uow.dialect(), existing->id);  // one link per issuer, even when racing
        // Re-read under the lock: a concurrent first sign-in of this identity may have linked it.
        if (auto id = store::users::find_identity(uow, identity.issuer, identity.subject)) return linked_user(*id);
        if (!identity.email_verified) {
          throw IdentityLinkError(
              "email-not-verified",
              "an account with the e-mail address " + email +
                  " exists, but your identity provider has not verified that address (email_verified is not true), "
                  "so it cannot be linked to your sign-in; verify the address with your identity provider and sign in "
                  "again, or ask an administrator");
        }
        if (store::users::has_identity_from(uow, existing->id, identity.issuer)) {
          throw IdentityLinkError("identity-conflict",
                                  "the account with the e-mail address " + email +
                                      " is already linked to another identity of this provider; sign in with that "
                                      "identity, or ask an administrator");
        }
        store::users::insert_identity(uow, {identity.issuer, identity.subject, existing->id, email, now});
        audit_append(uow, existing->id, "", "user.link_external", "user", existing->id, details);
        tx.commit();
        return to_user(*existing);
      }
      store::UserRecord r{core::uuid4(), email, email, kNoPassword, now};
      if (store::users::insert(uow, r)) {
        store::users::insert_identity(uow, {identity.issuer, identity.subject, r.id, email, now});
        audit_append(uow, r.id, "", "user.create_external", "user", r.id, details);
        tx.commit();
        return to_user(r);
      }
    } catch (const std::exception& e) {
      // Lost a race (the same identity or e-mail linked concurrently); the transaction rolled back.
      if (!store::is_database_error(e) || store::is_connection_lost(e)) throw;
    }
    if (auto id = store::users::find_identity(uow, identity.issuer, identity.subject)) return linked_user(*id);
    throw UnauthenticatedError("could not link the external identity; try again");
  });
}

std::optional<User> UserService::find(const std::string& id) {
  return store_.run([&](store::UnitOfWork& uow) -> std::optional<User> {
    auto r = store::users::find_by_id(uow, id);
    if (!r) return std::nullopt;
    return to_user(*r);
  });
}

User UserService::require_token_user(const std::string& id, long long issued_at) {
  return store_.run([&](store::UnitOfWork& uow) -> User {
    const auto r = store::users::find_by_id(uow, id);
    if (!r) throw UnauthenticatedError("the account of this token no longer exists", false);
    if (r->disabled_at) throw UnauthenticatedError(kDisabled);
    // tokens_not_before has microseconds, `iat` whole seconds: every token issued in or before
    // the second of the change is refused (authenticate() waits for the next second before a
    // token is issued, so no new token falls into it).
    if (r->tokens_not_before) {
      const auto nb = std::chrono::floor<std::chrono::seconds>(core::parse_rfc3339(*r->tokens_not_before));
      if (issued_at <= nb.time_since_epoch().count())
        throw UnauthenticatedError("this token was issued before the account's password changed");
    }
    return to_user(*r);
  });
}

Profile UserService::profile(const std::string& actor) {
  return store_.run([&](store::UnitOfWork& uow) -> Profile {
    const auto r = store::users::find_by_id(uow, actor);
    if (!r) throw NotFoundError("user", actor);
    return {to_user(*r), store::users::list_identities(uow, actor)};
  });
}

store::Page<User> UserService::list(const store::PageRequest& page) {
  return store_.run([&](store::UnitOfWork& uow) -> store::Page<User> {
    auto records = store::fetch_page(
        page, [&](int n, const auto& after) { return store::users::list(uow, n, after); },
        [](const store::UserRecord& u) { return store::CursorKey{u.created_at, u.id}; });
    store::Page<User> out;
    out.next_cursor = records.next_cursor;
    for (const auto& r : records.items) out.items.push_back(to_user(r));
    return out;
  });
}

User UserService::set_disabled(const std::string& ref, bool disabled) {
  return store_.run([&](store::UnitOfWork& uow) -> User {
    store::Tx tx(uow);
    auto r = require_user(uow, ref);
    if (r.disabled_at.has_value() == disabled) return to_user(r);
    r.disabled_at = disabled ? std::optional<std::string>(core::now_rfc3339()) : std::nullopt;
    store::users::set_disabled(uow, r.id, r.disabled_at);
    audit_append(uow, "", "", disabled ? "user.disable" : "user.enable", "user", r.id, {{"email", r.email}});
    tx.commit();
    return to_user(r);
  });
}

User UserService::set_password(const std::string& ref, const std::string& password) {
  check_password_length(password);
  const std::string hash = auth::hash_password(password, params_);
  return store_.run([&](store::UnitOfWork& uow) -> User {
    store::Tx tx(uow);
    const auto r = require_user(uow, ref);
    store::users::set_password(uow, r.id, hash, core::now_rfc3339());
    audit_append(uow, "", "", "user.set_password", "user", r.id, {{"email", r.email}});
    tx.commit();
    return to_user(r);
  });
}

store::UserRecord require_user(store::UnitOfWork& uow, const std::string& ref) {
  std::optional<store::UserRecord> r;
  if (ref.find('@') != std::string::npos) {
    r = store::users::find_by_email(uow, UserService::normalize_email(ref));
  } else if (core::is_uuid(ref)) {
    r = store::users::find_by_id(uow, ref);
  } else {
    throw InvalidError("user", "name the user by id (a UUID) or by e-mail address");
  }
  if (!r) throw NotFoundError("user", core::utf8_truncate(ref, 320));
  return *r;
}

std::optional<User> UserService::find_by_email(const std::string& email) {
  return store_.run([&](store::UnitOfWork& uow) -> std::optional<User> {
    auto r = store::users::find_by_email(uow, normalize_email(email));
    if (!r) return std::nullopt;
    return to_user(*r);
  });
}

}  // namespace orchestrator::domain
