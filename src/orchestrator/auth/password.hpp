#pragma once
// Password hashing with Argon2id (RFC 9106) through libsodium's crypto_pwhash_str:
// the result is a self-describing PHC string ("$argon2id$v=19$m=...,t=...,p=1$salt$hash")
// with a random salt; verification is constant-time inside libsodium.

#include <string>

namespace orchestrator::auth {

/// Cost parameters. Defaults are libsodium's "interactive" limits (2 passes, 64 MiB);
/// tests may use `minimal()` to stay fast.
struct PasswordParams {
  /// Argon2id passes (time cost t, RFC 9106 §3.1)
  unsigned long long opslimit;
  std::size_t memlimit;  ///< bytes
  /// libsodium argon2id INTERACTIVE: 2 passes, 64 MiB; the default for user passwords.
  static PasswordParams interactive();
  /// libsodium argon2id MODERATE: 3 passes, 256 MiB (slower, for higher-value secrets).
  static PasswordParams moderate();
  /// libsodium argon2id MIN: 1 pass, 8 KiB.
  static PasswordParams minimal();  ///< libsodium minimums: for tests only
};

/// Hashes `password` (any bytes, 1..4096 long). Throws std::invalid_argument for an empty
/// or over-long password and std::runtime_error if libsodium runs out of memory.
std::string hash_password(const std::string& password, const PasswordParams& params = PasswordParams::interactive());

/// True if `password` matches the PHC string `hash` (false for malformed hashes; never throws).
bool verify_password(const std::string& password, const std::string& hash) noexcept;

/// True if `hash` was made with other parameters than `params` (rehash after next login).
bool needs_rehash(const std::string& hash, const PasswordParams& params = PasswordParams::interactive()) noexcept;

/// Initialises libsodium once (thread-safe); throws std::runtime_error if it cannot.
void ensure_sodium();

}  // namespace orchestrator::auth
