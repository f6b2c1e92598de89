#include "orchestrator/auth/password.hpp"

#include <stdexcept>

#include <sodium.h>

namespace orchestrator::auth {

void ensure_sodium() {
  static const int rc = sodium_init();
  if (rc < 0) throw std::runtime_error("libsodium failed to initialise");
}

PasswordParams PasswordParams::interactive() {
  return {crypto_pwhash_argon2id_OPSLIMIT_INTERACTIVE, crypto_pwhash_argon2id_MEMLIMIT_INTERACTIVE};
}
PasswordParams PasswordParams::moderate() {
  return {crypto_pwhash_argon2id_OPSLIMIT_MODERATE, crypto_pwhash_argon2id_MEMLIMIT_MODERATE};
}
PasswordParams PasswordParams::minimal() {
  return {crypto_pwhash_argon2id_OPSLIMIT_MIN, crypto_pwhash_argon2id_MEMLIMIT_MIN};
}

std::string hash_password(const std::string& password, const PasswordParams& params) {
  ensure_sodium();
  if (password.empty()) throw std::invalid_argument("password must not be empty");
  if (password.size() > 4096) throw std::invalid_argument("password must be at most 4096 bytes");
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), params.opslimit, params.memlimit,
                            crypto_pwhash_ALG_ARGON2ID13) != 0)
    throw std::runtime_error("password hashing failed (out of memory)");
  return std::string(out);
}

bool verify_password(const std::string& password, const std::string& hash) noexcept {
  try {
    ensure_sodium();
  } catch (...) {
    return false;
  }
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return false;
  char buf[crypto_pwhash_STRBYTES] = {};
  hash.copy(buf, hash.size());
  return crypto_pwhash_str_verify(buf, password.data(), password.size()) == 0;
}

bool needs_rehash(const std::string& hash, const PasswordParams& params) noexcept {
  if (hash.empty() || hash.size() >= crypto_pwhash_STRBYTES) return true;
  char buf[crypto_pwhash_STRBYTES] = {};
  hash.copy(buf, hash.size());
  return crypto_pwhash_str_needs_rehash(buf, params.opslimit, params.memlimit) != 0;
}

}  // namespace orchestrator::auth
