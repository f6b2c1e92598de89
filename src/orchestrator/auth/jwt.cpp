#include "orchestrator/auth/jwt.hpp"

#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <unordered_map>

#include <jwt.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include "core/json_parse.hpp"
#include "core/util.hpp"
#include "orchestrator/auth/password.hpp"
#include "orchestrator/domain/error.hpp"

namespace orchestrator::auth {

using domain::UnauthenticatedError;

namespace {

constexpr std::size_t kMaxTokenBytes = 8192;
/// Largest magnitude of a NumericDate (RFC 7519 §2) accepted in exp/nbf/iat: 2^53 seconds,
/// the largest integer a double holds exactly and some 285 million years away. Beyond it a
/// claim is malformed: converting a larger double to int64 is undefined behaviour, and
/// adding the leeway to a value near INT64_MAX would overflow.
constexpr double kMaxNumericDate = 9007199254740992.0;

struct JwtDeleter {
  void operator()(jwt_t* j) const { jwt_free(j); }
};
using JwtPtr = std::unique_ptr<jwt_t, JwtDeleter>;
struct FreeDeleter {
  void operator()(char* p) const { std::free(p); }
};

bool is_b64url(std::string_view s) {
  for (char c : s)
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
      return false;
  return true;
}

std::int64_t to_epoch(std::chrono::system_clock::time_point tp) {
  return std::chrono::duration_cast<std::chrono::seconds>(tp.time_since_epoch()).count();
}

/// Checks the NumericDate claims exp, nbf and iat (RFC 7519 §2, §4.1.4-6) of `claims`: each,
/// when present, a number within ±kMaxNumericDate. Throws UnauthenticatedError naming the claim.
void check_numeric_dates(const nlohmann::json& claims) {
  for (const char* k : {"exp", "nbf", "iat"}) {
    const auto it = claims.find(k);
    if (it == claims.end()) continue;
    if (!it->is_number())
      throw UnauthenticatedError(std::string("the token's ") + k + " claim is not a number (RFC 7519 NumericDate)");
    const double v = it->get<double>();
    if (!(v >= -kMaxNumericDate && v <= kMaxNumericDate))
      throw UnauthenticatedError(std::string("the token's ") + k +
                                 " claim is out of range (a NumericDate must be within 2^53 seconds of 1970)");
  }
}

/// The token's claims as our bounded parser reads them; nullopt when they are not a JSON object.
std::optional<nlohmann::json> payload_claims(std::string_view p64) {
  try {
    auto j = core::json::parse_or_null(base64url_decode(p64));
    if (j && j->is_object()) return j;
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

}  // namespace

std::string base64url_encode(std::string_view bytes) {
  ensure_sodium();
  std::string out(sodium_base64_encoded_len(bytes.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(std::char_traits<char>::length(out.c_str()));
  return out;
}

std::string base64url_decode(std::string_view text) {
  ensure_sodium();
  std::string out(text.size(), '\0');
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(), text.size(), nullptr,
                        &len, &end, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      end != text.data() + text.size())
    throw std::invalid_argument("invalid base64url");
  out.resize(len);
  return out;
}

/// Tokens that passed verify_uncached, by their text, with the claims the clock is checked
/// against again on each use.
struct JwtService::VerifiedCache {
  struct Entry {
    Claims claims;
    std::optional<std::int64_t> nbf;
  };
  std::mutex mu;
  std::unordered_map<std::string, Entry> by_token;
};

JwtService::JwtService(JwtConfig config)
    : config_(std::move(config)), verified_(std::make_shared<VerifiedCache>()) {
  if (config_.hs256_secret.size() < 32)
    throw std::invalid_argument("JWT secret must be at least 32 bytes (RFC 7518 §3.2); set JWT_SECRET to a longer value");
  if (config_.issuer.empty()) throw std::invalid_argument("JWT issuer must not be empty");
  if (config_.audience.empty()) throw std::invalid_argument("JWT audience must not be empty");
  if (config_.lifetime.count() <= 0) throw std::invalid_argument("JWT lifetime must be positive");
  if (config_.leeway.count() < 0 || config_.leeway.count() > 30)
    throw std::invalid_argument("JWT leeway must be between 0 and 30 seconds");
  if (!config_.rs256_public_key_pem.empty() &&
      config_.rs256_public_key_pem.find("-----BEGIN") == std::string::npos)
    throw std::invalid_argument("RS256 public key must be PEM text (-----BEGIN PUBLIC KEY-----)");
  ensure_sodium();
}

IssuedToken JwtService::issue(const std::string& user_id, const std::string& email) const {
  return issue_at(user_id, email, std::chrono::system_clock::now());
}

IssuedToken JwtService::issue_at(const std::string& user_id, const std::string& email,
                                 std::chrono::system_clock::time_point now) const {
  if (user_id.empty()) throw std::invalid_argument("cannot issue a token without a subject");
  jwt_t* raw = nullptr;
  if (jwt_new(&raw) != 0) throw std::runtime_error("jwt_new failed");
  JwtPtr j(raw);
  const std::int64_t iat = to_epoch(now);
  const std::int64_t exp = iat + config_.lifetime.count();
  const std::string jti = core::random_hex(16);
  if (jwt_add_grant(j.get(), "sub", user_id.c_str()) != 0 || jwt_add_grant(j.get(), "email", email.c_str()) != 0 ||
      jwt_add_grant(j.get(), "iss", config_.issuer.c_str()) != 0 ||
      jwt_add_grant(j.get(), "aud", config_.audience.c_str()) != 0 ||
      jwt_add_grant(j.get(), "jti", jti.c_str()) != 0 || jwt_add_grant_int(j.get(), "iat", static_cast<long>(iat)) != 0 ||
      jwt_add_grant_int(j.get(), "exp", static_cast<long>(exp)) != 0)
    throw std::runtime_error("jwt_add_grant failed");
  if (jwt_set_alg(j.get(), JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(config_.hs256_secret.data()),
                  static_cast<int>(config_.hs256_secret.size())) != 0)
    throw std::runtime_error("jwt_set_alg failed");
  std::unique_ptr<char, FreeDeleter> enc(jwt_encode_str(j.get()));
  if (!enc) throw std::runtime_error("jwt_encode_str failed");
  IssuedToken t;
  t.token = enc.get();
  t.expires_at_epoch = exp;
  t.expires_at = core::to_rfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(exp)));
  return t;
}

Claims JwtService::verify(std::string_view token) const { return verify_at(token, std::chrono::system_clock::now()); }

Claims JwtService::verify_at(std::string_view token, std::chrono::system_clock::time_point now) const {
  std::optional<VerifiedCache::Entry> hit;
  {
    std::lock_guard lk(verified_->mu);
    if (auto it = verified_->by_token.find(std::string(token)); it != verified_->by_token.end()) hit = it->second;
  }
  if (hit) {
    // The same checks of the clock as verify_uncached, in the same order and words.
    const std::int64_t t = to_epoch(now), leeway = config_.leeway.count();
    if (t > hit->claims.exp + leeway) throw UnauthenticatedError("token expired");
    if (hit->nbf && t + leeway < *hit->nbf) throw UnauthenticatedError("token not yet valid");
    if (hit->claims.iat != 0 && t + leeway < hit->claims.iat) throw UnauthenticatedError("token issued in the future");
    return hit->claims;
  }
  std::optional<std::int64_t> nbf;
  Claims c = verify_uncached(token, now, nbf);
  std::lock_guard lk(verified_->mu);
  if (verified_->by_token.size() >= kVerifiedTokens) verified_->by_token.clear();
  verified_->by_token.insert_or_assign(std::string(token), VerifiedCache::Entry{c, nbf});
  return c;
}

Claims JwtService::verify_uncached(std::string_view token, std::chrono::system_clock::time_point now,
                                   std::optional<std::int64_t>& nbf_out) const {
  if (token.empty()) throw UnauthenticatedError("missing token");
  if (token.size() > kMaxTokenBytes) throw UnauthenticatedError("malformed token");
  // 1. Shape: three base64url segments, none empty (an empty signature is `alg: none`).
  const auto d1 = token.find('.');
  const auto d2 = d1 == std::string_view::npos ? d1 : token.find('.', d1 + 1);
  if (d1 == std::string_view::npos || d2 == std::string_view::npos || token.find('.', d2 + 1) != std::string_view::npos)
    throw UnauthenticatedError("malformed token");
  const auto h64 = token.substr(0, d1), p64 = token.substr(d1 + 1, d2 - d1 - 1), s64 = token.substr(d2 + 1);
  if (h64.empty() || p64.empty() || !is_b64url(h64) || !is_b64url(p64) || !is_b64url(s64))
    throw UnauthenticatedError("malformed token");
  // 2. Header: decide the algorithm ourselves (RFC 8725 §3.1) before anything else.
  nlohmann::json header;
  try {
    header = core::json::parse(base64url_decode(h64));
  } catch (...) {
    throw UnauthenticatedError("malformed token");
  }
  if (!header.is_object() || !header.contains("alg") || !header["alg"].is_string())
    throw UnauthenticatedError("malformed token");
  if (header.contains("crit")) throw UnauthenticatedError("unsupported token header");  // RFC 7515 §4.1.11
  const std::string alg = header["alg"].get<std::string>();
  const bool rs = alg == "RS256" && !config_.rs256_public_key_pem.empty();
  if (alg != "HS256" && !rs) throw UnauthenticatedError("token algorithm not accepted");
  if (s64.empty()) throw UnauthenticatedError("invalid token signature");
  // 3. Signature. HS256: our own constant-time check first (libjwt 1.x compares with strcmp).
  if (!rs) {
    std::string sig;
    try {
      sig = base64url_decode(s64);
    } catch (...) {
      throw UnauthenticatedError("invalid token signature");
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    const std::string_view signing_input = token.substr(0, d2);
    if (!HMAC(EVP_sha256(), config_.hs256_secret.data(), static_cast<int>(config_.hs256_secret.size()),
              reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac, &mac_len) ||
        mac_len != 32 || sig.size() != 32 || sodium_memcmp(mac, sig.data(), 32) != 0)
      throw UnauthenticatedError("invalid token signature");
    // The signature is right: a claim libjwt cannot read (an exp of 2^63, beyond its 64-bit
    // integers) is a claim problem, not a signature problem.
    if (const auto claims = payload_claims(p64)) check_numeric_dates(*claims);
  }
  const std::string tok(token);
  const std::string& key = rs ? config_.rs256_public_key_pem : config_.hs256_secret;
  jwt_t* raw = nullptr;
  if (jwt_decode(&raw, tok.c_str(), reinterpret_cast<const unsigned char*>(key.data()), static_cast<int>(key.size())) != 0 ||
      raw == nullptr) {
    if (!rs) throw UnauthenticatedError("malformed token");  // the HS256 signature was verified above
    // RS256: libjwt also refuses claims it cannot read; an out-of-range date is refused whatever
    // the signature, so say that rather than blame the signature.
    if (const auto claims = payload_claims(p64)) check_numeric_dates(*claims);
    throw UnauthenticatedError("invalid token signature");
  }
  JwtPtr j(raw);
  if (jwt_get_alg(j.get()) != (rs ? JWT_ALG_RS256 : JWT_ALG_HS256)) throw UnauthenticatedError("token algorithm not accepted");
  // 4. Claims (RFC 7519 §4.1), read from the verified token.
  nlohmann::json claims;
  {
    std::unique_ptr<char, FreeDeleter> cj(jwt_get_grants_json(j.get(), nullptr));
    if (!cj) throw UnauthenticatedError("malformed token");
    claims = core::json::parse_or_null(cj.get()).value_or(nullptr);
  }
  if (!claims.is_object()) throw UnauthenticatedError("malformed token");
  const std::int64_t t = to_epoch(now), leeway = config_.leeway.count();
  check_numeric_dates(claims);
  auto num = [&](const char* k) -> std::optional<std::int64_t> {
    const auto it = claims.find(k);
    if (it == claims.end()) return std::nullopt;
    return static_cast<std::int64_t>(it->get<double>());
  };
  const auto exp = num("exp");
  if (!exp) throw UnauthenticatedError("token has no expiry");
  if (t > *exp + leeway) throw UnauthenticatedError("token expired");
  const auto nbf = num("nbf");
  if (nbf && t + leeway < *nbf) throw UnauthenticatedError("token not yet valid");
  nbf_out = nbf;
  const auto iat = num("iat");
  if (iat && t + leeway < *iat) throw UnauthenticatedError("token issued in the future");
  // External (RS256) tokens carry the identity provider's iss/aud; ours carry ours.
  const std::string& want_iss =
      rs && !config_.external_issuer.empty() ? config_.external_issuer : config_.issuer;
  const std::string& want_aud =
      rs && !config_.external_audience.empty() ? config_.external_audience : config_.audience;
  const auto iss = claims.find("iss");
  if (iss == claims.end() || !iss->is_string() || *iss != want_iss) throw UnauthenticatedError("wrong token issuer");
  bool aud_ok = false;
  if (const auto aud = claims.find("aud"); aud != claims.end()) {
    if (aud->is_string()) aud_ok = *aud == want_aud;
    if (aud->is_array())
      for (const auto& a : *aud) aud_ok = aud_ok || (a.is_string() && a == want_aud);
  }
  if (!aud_ok) throw UnauthenticatedError("wrong token audience");
  const auto sub = claims.find("sub");
  if (sub == claims.end() || !sub->is_string() || sub->get<std::string>().empty())
    throw UnauthenticatedError("token has no subject");
  Claims c;
  c.sub = sub->get<std::string>();
  if (const auto e = claims.find("email"); e != claims.end() && e->is_string()) c.email = e->get<std::string>();
  if (const auto v = claims.find("email_verified"); v != claims.end())
    c.email_verified = (v->is_boolean() && v->get<bool>()) || (v->is_string() && v->get<std::string>() == "true");
  c.iss = want_iss;
  c.iat = iat.value_or(0);
  c.exp = *exp;
  c.alg = rs ? "RS256" : "HS256";
  return c;
}

}  // namespace orchestrator::auth
