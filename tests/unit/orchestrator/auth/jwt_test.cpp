#include "orchestrator/auth/jwt.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <jwt.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/util.hpp"
#include "orchestrator/domain/error.hpp"
#include "rsa_keys.hpp"

using namespace orchestrator::auth;
using orchestrator::domain::UnauthenticatedError;
using namespace std::chrono_literals;

namespace {

const std::string kSecret = "0123456789abcdef0123456789abcdef-test-secret";

JwtConfig config() {
  JwtConfig c;
  c.hs256_secret = kSecret;
  return c;
}

std::string reason(const JwtService& s, const std::string& token) {
  try {
    s.verify(token);
  } catch (const UnauthenticatedError& e) {
    return e.what();
  }
  return "accepted";
}

// Signs arbitrary claims with libjwt directly (to craft tokens our issuer would not make).
std::string sign(jwt_alg_t alg, const std::string& key, const nlohmann::json& claims) {
  jwt_t* j = nullptr;
  EXPECT_EQ(jwt_new(&j), 0);
  EXPECT_EQ(jwt_add_grants_json(j, claims.dump().c_str()), 0);
  EXPECT_EQ(jwt_set_alg(j, alg, reinterpret_cast<const unsigned char*>(key.data()), static_cast<int>(key.size())), 0);
  char* s = jwt_encode_str(j);
  std::string out = s ? s : "";
  std::free(s);
  jwt_free(j);
  return out;
}

// HS256 over a payload given as text (numbers libjwt's JSON parser refuses, such as 2^63).
std::string sign_text(const std::string& payload) {
  const std::string signing_input =
      base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." + base64url_encode(payload);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
       reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size(), mac, &len);
  return signing_input + "." + base64url_encode(std::string(reinterpret_cast<const char*>(mac), len));
}

nlohmann::json good_claims() {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  return {{"sub", "user-1"}, {"email", "a@example.com"}, {"iss", "ide-orchestrator"}, {"aud", "agentic-ide"},
          {"iat", now}, {"exp", now + 600}};
}

}  // namespace

TEST(Jwt, IssuedTokenVerifies) {
  JwtService s(config());
  const auto t = s.issue("user-1", "a@example.com");
  const auto c = s.verify(t.token);
  EXPECT_EQ(c.sub, "user-1");
  EXPECT_EQ(c.email, "a@example.com");
  EXPECT_EQ(c.iss, "ide-orchestrator");
  EXPECT_EQ(c.alg, "HS256");
  EXPECT_EQ(c.exp - c.iat, 8 * 3600);
  EXPECT_EQ(t.expires_at_epoch, c.exp);
  EXPECT_EQ(t.expires_at.back(), 'Z');
}

TEST(Jwt, ShortSecretRejectedAtStartup) {
  JwtConfig c;
  c.hs256_secret = std::string(31, 'x');
  EXPECT_THROW(JwtService{c}, std::invalid_argument);
  c.hs256_secret = std::string(32, 'x');
  EXPECT_NO_THROW(JwtService{c});
  c.leeway = 31s;
  EXPECT_THROW(JwtService{c}, std::invalid_argument);
}

TEST(Jwt, TamperedSignatureRejected) {
  JwtService s(config());
  auto tok = s.issue("user-1", "a@example.com").token;
  auto sig_flip = tok;
  sig_flip.back() = sig_flip.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(reason(s, sig_flip), "invalid token signature");
  // Payload swapped for another user's while keeping the signature.
  const auto d1 = tok.find('.'), d2 = tok.find('.', d1 + 1);
  auto claims = nlohmann::json::parse(base64url_decode(tok.substr(d1 + 1, d2 - d1 - 1)));
  claims["sub"] = "admin";
  const auto forged = tok.substr(0, d1) + "." + base64url_encode(claims.dump()) + tok.substr(d2);
  EXPECT_EQ(reason(s, forged), "invalid token signature");
  // Signed with another secret.
  JwtConfig other = config();
  other.hs256_secret = std::string(40, 'z');
  EXPECT_EQ(reason(s, JwtService(other).issue("user-1", "a@example.com").token), "invalid token signature");
}

TEST(Jwt, AlgNoneCraftedByHandRejected) {
  JwtService s(config());
  const auto header = base64url_encode(R"({"alg":"none","typ":"JWT"})");
  const auto payload = base64url_encode(good_claims().dump());
  EXPECT_EQ(reason(s, header + "." + payload + "."), "token algorithm not accepted");
  EXPECT_EQ(reason(s, header + "." + payload + ".c2ln"), "token algorithm not accepted");
  const auto header2 = base64url_encode(R"({"alg":"None"})");
  EXPECT_EQ(reason(s, header2 + "." + payload + "."), "token algorithm not accepted");
  // An HS256 header with an empty signature is not accepted either.
  const auto header3 = base64url_encode(R"({"alg":"HS256","typ":"JWT"})");
  EXPECT_EQ(reason(s, header3 + "." + payload + "."), "invalid token signature");
}

TEST(Jwt, OtherAlgorithmsRejectedEvenWhenValidlySigned) {
  JwtService s(config());
  EXPECT_EQ(reason(s, sign(JWT_ALG_HS512, kSecret, good_claims())), "token algorithm not accepted");
  EXPECT_EQ(reason(s, sign(JWT_ALG_HS256, kSecret, good_claims())), "accepted");
}

TEST(Jwt, ExpiredRejectedWithSmallLeeway) {
  JwtService s(config());
  const auto now = std::chrono::system_clock::now();
  const auto t = s.issue_at("user-1", "a@example.com", now - 8h - 10s);  // expired 10 s ago
  EXPECT_NO_THROW(s.verify_at(t.token, now));                             // within 30 s leeway
  EXPECT_THROW(s.verify_at(t.token, now + 25s), UnauthenticatedError);     // 35 s past exp
  const auto old = s.issue_at("user-1", "a@example.com", now - 9h);
  EXPECT_EQ(reason(s, old.token), "token expired");
  const auto future = s.issue_at("user-1", "a@example.com", now + 1h);
  EXPECT_EQ(reason(s, future.token), "token issued in the future");
}

// A verified token is remembered by its text, but every later verify still holds it against
// the clock (exp, nbf, iat), and only the exact text is remembered: a changed signature or
// payload is verified in full.
TEST(Jwt, RememberedTokenIsStillCheckedAgainstTheClock) {
  JwtService s(config());
  const auto now = std::chrono::system_clock::now();
  const std::int64_t t0 = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  auto claims = good_claims();
  claims["iat"] = t0;
  claims["nbf"] = t0 + 100;
  claims["exp"] = t0 + 600;
  const std::string tok = sign(JWT_ALG_HS256, kSecret, claims);
  EXPECT_EQ(s.verify_at(tok, now + 200s).sub, "user-1");  // verified in full, remembered
  EXPECT_EQ(s.verify_at(tok, now + 300s).sub, "user-1");  // remembered
  try {
    s.verify_at(tok, now);  // before nbf (minus the 30 s leeway)
    ADD_FAILURE() << "a remembered token was accepted before its nbf";
  } catch (const UnauthenticatedError& e) {
    EXPECT_STREQ(e.what(), "token not yet valid");
  }
  try {
    s.verify_at(tok, now + 700s);  // past exp and the leeway
    ADD_FAILURE() << "a remembered token was accepted after its exp";
  } catch (const UnauthenticatedError& e) {
    EXPECT_STREQ(e.what(), "token expired");
  }
  auto flipped = tok;
  flipped.back() = flipped.back() == 'A' ? 'B' : 'A';
  try {
    s.verify_at(flipped, now + 200s);
    ADD_FAILURE() << "a token differing from a remembered one in its signature was accepted";
  } catch (const UnauthenticatedError& e) {
    EXPECT_STREQ(e.what(), "invalid token signature");
  }
}

TEST(Jwt, WrongIssuerOrAudienceRejected) {
  JwtService s(config());
  auto c = config();
  c.issuer = "someone-else";
  EXPECT_EQ(reason(s, JwtService(c).issue("u", "e").token), "wrong token issuer");
  c = config();
  c.audience = "other-app";
  EXPECT_EQ(reason(s, JwtService(c).issue("u", "e").token), "wrong token audience");
  auto claims = good_claims();
  claims["aud"] = nlohmann::json::array({"x", "agentic-ide"});
  EXPECT_EQ(reason(s, sign(JWT_ALG_HS256, kSecret, claims)), "accepted");
  claims.erase("aud");
  EXPECT_EQ(reason(s, sign(JWT_ALG_HS256, kSecret, claims)), "wrong token audience");
}

TEST(Jwt, MissingSubOrExpRejected) {
  JwtService s(config());
  auto claims = good_claims();
  claims.erase("sub");
  EXPECT_EQ(reason(s, sign(JWT_ALG_HS256, kSecret, claims)), "token has no subject");
  claims = good_claims();
  claims["sub"] = "";
  EXPECT_EQ(reason(s, sign(JWT_ALG_HS256, kSecret, claims)), "token has no subject");
  claims = good_claims();
  claims.erase("exp");
  EXPECT_EQ(reason(s, sign(JWT_ALG_HS256, kSecret, claims)), "token has no expiry");
}

// Found by fuzz/fuzz_jwt: exp 1e300 was converted to int64 (undefined behaviour; on x86 it
// became INT64_MIN and read as "token expired"), and an exp near INT64_MAX overflowed when
// the leeway was added. Dates beyond 2^53 s are refused, naming the claim.
TEST(Jwt, OutOfRangeNumericDatesAreRefusedNamingTheClaim) {
  JwtService s(config());
  for (const char* claim : {"exp", "nbf", "iat"}) {
    for (const nlohmann::json& v : {nlohmann::json(1e300), nlohmann::json(-1e300),
                                    nlohmann::json(9223372036854775807LL),
                                    nlohmann::json(9007199254740993.0 * 2)}) {
      auto claims = good_claims();
      claims[claim] = v;
      EXPECT_EQ(reason(s, sign(JWT_ALG_HS256, kSecret, claims)),
                std::string("the token's ") + claim + " claim is out of range (a NumericDate must be within 2^53 "
                "seconds of 1970)") << claim << " = " << v.dump();
    }
    auto claims = good_claims();
    claims[claim] = "soon";
    EXPECT_EQ(reason(s, sign(JWT_ALG_HS256, kSecret, claims)),
              std::string("the token's ") + claim + " claim is not a number (RFC 7519 NumericDate)");
  }
  // A correctly signed exp of 2^63 and more (libjwt cannot read it) is a claim problem, not
  // "invalid token signature" as it used to be.
  for (const std::string exp : {"9223372036854775808", "18446744073709551615", "1e19"}) {
    const std::string payload = R"({"sub":"user-1","iss":"ide-orchestrator","aud":"agentic-ide","exp":)" + exp + "}";
    EXPECT_EQ(reason(s, sign_text(payload)),
              "the token's exp claim is out of range (a NumericDate must be within 2^53 seconds of 1970)")
        << exp;
  }
  EXPECT_EQ(reason(s, sign_text("{\"sub\":")), "malformed token");
  // 2^53 itself is a date (far away): a token expiring then is accepted.
  auto claims = good_claims();
  claims["exp"] = 9007199254740992LL;
  EXPECT_EQ(reason(s, sign(JWT_ALG_HS256, kSecret, claims)), "accepted");
}

TEST(Jwt, MalformedTokensRejected) {
  JwtService s(config());
  for (const std::string t : {"", "abc", "a.b", "a.b.c.d", "!!.??.##", "e30.e30.e30"})
    EXPECT_THROW(s.verify(t), UnauthenticatedError) << t;
  EXPECT_THROW(s.verify(std::string(10000, 'a')), UnauthenticatedError);
}

TEST(Jwt, Rs256WithOpensslKeyPair) {
  const auto keys = orchestrator::testing::openssl_rsa_key_pair();
  const auto &priv_pem = keys.private_pem, &pub_pem = keys.public_pem;

  auto c = config();
  c.rs256_public_key_pem = pub_pem;
  JwtService s(c);
  const auto rs_token = sign(JWT_ALG_RS256, priv_pem, good_claims());
  const auto claims = s.verify(rs_token);
  EXPECT_EQ(claims.alg, "RS256");
  EXPECT_EQ(claims.sub, "user-1");
  // Our own HS256 tokens still verify.
  EXPECT_NO_THROW(s.verify(s.issue("user-2", "b@example.com").token));
  // Algorithm confusion: HS256 signed with the public key as the HMAC secret.
  EXPECT_EQ(reason(s, sign(JWT_ALG_HS256, pub_pem, good_claims())), "invalid token signature");
  // Tampered RS256 payload.
  const auto d1 = rs_token.find('.'), d2 = rs_token.find('.', d1 + 1);
  auto body = good_claims();
  body["sub"] = "admin";
  EXPECT_EQ(reason(s, rs_token.substr(0, d1) + "." + base64url_encode(body.dump()) + rs_token.substr(d2)),
            "invalid token signature");
  // Without a configured public key RS256 is not accepted at all.
  EXPECT_EQ(reason(JwtService(config()), rs_token), "token algorithm not accepted");
}

// External identity providers have their own iss/aud; our HS256 tokens keep ours.
TEST(Jwt, ExternalIssuerAndAudienceApplyToRs256Only) {
  const auto keys = orchestrator::testing::openssl_rsa_key_pair();
  auto c = config();
  c.rs256_public_key_pem = keys.public_pem;
  c.external_issuer = "https://idp.example.com/";
  c.external_audience = "ide-api";
  JwtService s(c);
  auto ext = good_claims();
  ext["iss"] = "https://idp.example.com/";
  ext["aud"] = nlohmann::json::array({"other", "ide-api"});
  const auto claims = s.verify(sign(JWT_ALG_RS256, keys.private_pem, ext));
  EXPECT_EQ(claims.iss, "https://idp.example.com/");
  EXPECT_EQ(claims.alg, "RS256");
  // An RS256 token with our issuer/audience is not from the configured provider.
  EXPECT_EQ(reason(s, sign(JWT_ALG_RS256, keys.private_pem, good_claims())), "wrong token issuer");
  auto wrong_aud = ext;
  wrong_aud["aud"] = "agentic-ide";
  EXPECT_EQ(reason(s, sign(JWT_ALG_RS256, keys.private_pem, wrong_aud)), "wrong token audience");
  // HS256 tokens must carry ours, never the provider's.
  EXPECT_EQ(s.verify(s.issue("user-2", "b@example.com").token).iss, "ide-orchestrator");
  EXPECT_EQ(reason(s, sign(JWT_ALG_HS256, kSecret, ext)), "wrong token issuer");
}

TEST(Jwt, Base64Url) {
  EXPECT_EQ(base64url_encode("\xfb\xff"), "-_8");
  EXPECT_EQ(base64url_decode("-_8"), "\xfb\xff");
  EXPECT_THROW(base64url_decode("a=b"), std::invalid_argument);
}
