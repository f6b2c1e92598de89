// JWT verification: orchestrator::auth::JwtService::verify_at (src/orchestrator/auth/jwt.hpp),
// which guards every /api route. A fuzzer cannot forge a signature, so besides the raw
// input as a token, the harness signs the fuzzed header and claims itself (HS256 with the
// service's secret; RS256 with a key generated at start-up when the header names RS256) to
// reach the header and claim checks behind the signature. Properties: only
// UnauthenticatedError escapes; an accepted token has a subject, a known algorithm and an
// expiry not yet passed; base64url round-trips. Token extraction (token_extract.hpp: the
// Authorization header, the WebSocket subprotocol pair, ?token=) runs first, as in the
// auth middleware, and what it finds is verified too.
// Input: header JSON, NUL, claims JSON (a raw token is the whole input). For extraction the
// same input reads as Authorization value, NUL, Sec-WebSocket-Protocol value, NUL, query.
#include <chrono>
#include <memory>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "fuzz_common.hpp"
#include "orchestrator/auth/jwt.hpp"
#include "orchestrator/auth/token_extract.hpp"
#include "orchestrator/domain/error.hpp"

namespace {

using orchestrator::auth::base64url_decode;
using orchestrator::auth::base64url_encode;
using orchestrator::auth::JwtService;

const std::string kSecret = "fuzzing-secret-fuzzing-secret-0123456789";
const auto kNow = std::chrono::system_clock::time_point(std::chrono::seconds(1767225600));  // 2026-01-01

struct Keys {
  EVP_PKEY* key = nullptr;
  std::string public_pem;
};

const Keys& keys() {
  static const Keys k = [] {
    Keys out;
    out.key = EVP_RSA_gen(1024);
    BIO* bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, out.key);
    char* p = nullptr;
    const long n = BIO_get_mem_data(bio, &p);
    out.public_pem.assign(p, static_cast<std::size_t>(n));
    BIO_free(bio);
    return out;
  }();
  return k;
}

const JwtService& service() {
  static const JwtService s = [] {
    orchestrator::auth::JwtConfig c;
    c.hs256_secret = kSecret;
    c.rs256_public_key_pem = keys().public_pem;
    c.external_issuer = "https://idp.example";
    c.external_audience = "agentic-ide-external";
    return JwtService(c);
  }();
  return s;
}

std::string hs256(std::string_view input) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()), reinterpret_cast<const unsigned char*>(input.data()),
       input.size(), mac, &len);
  return std::string(reinterpret_cast<const char*>(mac), len);
}

std::string rs256(std::string_view input) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::size_t len = 0;
  std::string sig;
  if (EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, keys().key) == 1 &&
      EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1) {
    sig.resize(len);
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                   reinterpret_cast<const unsigned char*>(input.data()), input.size());
    sig.resize(len);
  }
  EVP_MD_CTX_free(ctx);
  return sig;
}

void verify(std::string_view token) {
  try {
    const auto c = service().verify_at(token, kNow);
    FUZZ_CHECK(!c.sub.empty(), "accepted a token without subject");
    FUZZ_CHECK(c.alg == "HS256" || c.alg == "RS256", c.alg);
    FUZZ_CHECK(c.exp + 30 >= 1767225600, "accepted an expired token");
  } catch (const orchestrator::domain::UnauthenticatedError& e) {
    FUZZ_CHECK(std::string_view(e.what()).find('.') == std::string_view::npos || token.size() < 3,
               "the reason may echo the token");
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)service();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = fuzz::text(data, size);
  verify(in);

  const auto fields = fuzz::split(in, 3);
  if (const auto found = orchestrator::auth::find_token(fields[0], fields[1], fields[2])) {
    FUZZ_CHECK(!found->token.empty(), "found an empty token");
    FUZZ_CHECK(found->echo_protocol.has_value() == (found->source == orchestrator::auth::TokenSource::websocket_protocol),
               "echo protocol");
    if (found->echo_protocol)
      FUZZ_CHECK(*found->echo_protocol == "bearer" || *found->echo_protocol == "access_token", *found->echo_protocol);
    verify(found->token);
  }

  const auto parts = fuzz::split(in, 2);
  const std::string signing_input = base64url_encode(parts[0]) + "." + base64url_encode(parts[1]);
  const bool rs = parts[0].find("RS256") != std::string::npos;
  verify(signing_input + "." + base64url_encode(rs ? rs256(signing_input) : hs256(signing_input)));

  FUZZ_CHECK(base64url_decode(base64url_encode(in)) == in, "base64url does not round-trip");
  try {
    (void)base64url_decode(in);
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
