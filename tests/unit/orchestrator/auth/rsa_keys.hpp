#pragma once
// RSA key pair for RS256 tests, made with the openssl CLI (as an operator would).

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "core/util.hpp"

namespace orchestrator::testing {

/// PEM texts of a freshly generated 2048-bit RSA key pair.
struct RsaKeyPair {
  std::string private_pem;  ///< PKCS#8 "-----BEGIN PRIVATE KEY-----"
  std::string public_pem;   ///< SubjectPublicKeyInfo "-----BEGIN PUBLIC KEY-----"
};

/// Generates a key pair with `openssl genpkey` / `openssl pkey -pubout` in a temporary
/// directory (removed afterwards). Throws std::runtime_error if the openssl CLI fails.
inline RsaKeyPair openssl_rsa_key_pair() {
  const auto dir = std::filesystem::temp_directory_path() / ("jwt-rs-" + core::random_hex(6));
  std::filesystem::create_directories(dir);
  const auto priv = dir / "private.pem", pub = dir / "public.pem";
  const std::string cmd = "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " + priv.string() +
                          " 2>/dev/null && openssl pkey -in " + priv.string() + " -pubout -out " + pub.string() +
                          " 2>/dev/null";
  const int rc = std::system(cmd.c_str());
  const auto slurp = [](const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  RsaKeyPair k{slurp(priv), slurp(pub)};
  std::filesystem::remove_all(dir);
  if (rc != 0 || k.private_pem.empty() || k.public_pem.empty()) throw std::runtime_error("openssl CLI failed");
  return k;
}

}  // namespace orchestrator::testing
