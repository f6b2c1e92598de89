#pragma once
// JSON Web Tokens (RFC 7519) signed with HS256 (RFC 7518 §3.2) for the orchestrator's own
// logins, optionally verified with RS256 (RFC 7518 §3.3) for tokens from an external
// identity provider. Built on libjwt 1.x; the JOSE header is checked by us before
// libjwt is trusted with the token (RFC 8725 §3.1: never let the token choose the
// algorithm; `alg: none` is always rejected). Tokens are never logged.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace orchestrator::auth {

/// Token settings. Construction of JwtService validates them.
struct JwtConfig {
  /// HS256 key: at least 32 bytes (RFC 7518 §3.2 requires a key >= hash size); required.
  std::string hs256_secret;
  /// Optional PEM public key ("-----BEGIN PUBLIC KEY-----"): enables RS256 verification.
  std::string rs256_public_key_pem;
  /// `iss` issued and required (RFC 7519 §4.1.1).
  std::string issuer = "ide-orchestrator";
  /// `aud` issued and required (RFC 7519 §4.1.3; a string or an array containing it).
  std::string audience = "agentic-ide";
  /// `iss` required of external RS256 tokens; empty = `issuer` (our own HS256 tokens
  /// always use `issuer`).
  std::string external_issuer;
  /// `aud` required of external RS256 tokens; empty = `audience`.
  std::string external_audience;
  /// Lifetime of issued tokens (exp - iat). Default 8 h.
  std::chrono::seconds lifetime{8 * 3600};
  /// Clock skew allowed on exp/nbf/iat (RFC 7519 §4.1.4 "small leeway"); 0..30 s.
  std::chrono::seconds leeway{30};
};

/// Verified claims of a token.
struct Claims {
  std::string sub;    ///< user id (RFC 7519 §4.1.2), non-empty
  std::string email;  ///< may be empty for external tokens
  /// `email_verified` (OpenID Connect Core 1.0 §5.1): true only for the JSON value true or the
  /// string "true" (some providers send a string); absent or anything else is false.
  bool email_verified = false;
  std::string iss;
  std::int64_t iat = 0;  ///< seconds since the epoch
  std::int64_t exp = 0;  ///< seconds since the epoch
  std::string alg;       ///< "HS256" | "RS256"
};

/// An issued token and its expiry.
struct IssuedToken {
  std::string token;
  std::int64_t expires_at_epoch = 0;  ///< seconds since the epoch
  std::string expires_at;             ///< RFC 3339 UTC
};

/// Issues and verifies tokens. Thread-safe (immutable after construction).
class JwtService {
 public:
  /// Throws std::invalid_argument when the secret is shorter than 32 bytes, issuer or
  /// audience is empty, lifetime <= 0, or leeway is outside 0..30 s. (Start-up error.)
  explicit JwtService(JwtConfig config);

  /// HS256 token with sub, email, iss, aud, iat, exp (and a random jti). Throws
  /// std::runtime_error if libjwt fails.
  IssuedToken issue(const std::string& user_id, const std::string& email) const;
  /// Same with an explicit clock (tests).
  IssuedToken issue_at(const std::string& user_id, const std::string& email,
                       std::chrono::system_clock::time_point now) const;

  /// Verifies signature, algorithm (only HS256, or RS256 when a public key is configured,
  /// as named by the header AND confirmed by libjwt), exp/nbf/iat with leeway, iss, aud
  /// (issuer/audience for HS256, external_issuer/external_audience for RS256) and a
  /// non-empty sub; exp/nbf/iat must be numbers of at most 2^53 seconds in magnitude ("the
  /// token's exp claim is out of range" otherwise, also when libjwt cannot read the claim,
  /// e.g. an exp of 2^63). Tokens are accepted up to `leeway` after exp (RFC 7519 §4.1.4).
  /// Throws domain::UnauthenticatedError with a generic reason ("token expired", "invalid
  /// token signature", ...) that never echoes the token.
  ///
  /// A token that passed is remembered by its exact text (up to kVerifiedTokens of them): the
  /// next verify of the same text checks only exp/nbf/iat against the clock, not the signature
  /// and claims again (a client sends the same token with every request). Thread-safe.
  Claims verify(std::string_view token) const;
  /// Same with an explicit clock (tests).
  Claims verify_at(std::string_view token, std::chrono::system_clock::time_point now) const;

  const JwtConfig& config() const { return config_; }

  /// Most verified tokens remembered (all are forgotten when one more would not fit).
  static constexpr std::size_t kVerifiedTokens = 4096;

 private:
  struct VerifiedCache;
  /// The full verification of verify_at(); `nbf` receives the token's nbf claim, if any.
  Claims verify_uncached(std::string_view token, std::chrono::system_clock::time_point now,
                         std::optional<std::int64_t>& nbf) const;

  JwtConfig config_;
  std::shared_ptr<VerifiedCache> verified_;
};

/// base64url without padding (RFC 4648 §5), as used in JWS compact serialisation.
std::string base64url_encode(std::string_view bytes);
/// Inverse of base64url_encode; throws std::invalid_argument on bad input.
std::string base64url_decode(std::string_view text);

}  // namespace orchestrator::auth
