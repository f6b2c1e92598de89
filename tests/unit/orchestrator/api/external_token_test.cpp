// Tokens through the domain adapter: external identity-provider tokens (RS256) obey
// --jwt-issuer / --jwt-audience and are linked to a local user by (iss, sub), by a verified
// e-mail for existing accounts; our own tokens stop working when their user is gone.
#include <chrono>
#include <cstdlib>
#include <filesystem>

#include <gtest/gtest.h>
#include <jwt.h>
#include <soci/soci.h>

#include "../auth/rsa_keys.hpp"
#include "../domain/db_fixture.hpp"
#include "core/util.hpp"
#include "orchestrator/api/domain_adapter.hpp"
#include "orchestrator/auth/jwt.hpp"
#include "orchestrator/domain/error.hpp"

namespace {

using nlohmann::json;

std::string sign_rs256(const std::string& private_pem, const json& claims) {
  jwt_t* j = nullptr;
  EXPECT_EQ(jwt_new(&j), 0);
  EXPECT_EQ(jwt_add_grants_json(j, claims.dump().c_str()), 0);
  EXPECT_EQ(jwt_set_alg(j, JWT_ALG_RS256, reinterpret_cast<const unsigned char*>(private_pem.data()),
                        static_cast<int>(private_pem.size())),
            0);
  char* s = jwt_encode_str(j);
  std::string out = s ? s : "";
  std::free(s);
  jwt_free(j);
  return out;
}

TEST(ExternalToken, MapsSubjectToLocalUserByEmail) {
  ::setenv("CONFIG_DIR", (std::string(PROJECT_SOURCE_DIR) + "/config").c_str(), 0);
  const auto dir = std::filesystem::temp_directory_path() / ("ext-tok-" + core::random_hex(6));
  std::filesystem::create_directories(dir);
  core::db::DbConfig cfg;
  cfg.sqlite_path = dir / "orch.db";
  cfg.pool_size = 2;
  core::db::Database db(cfg);
  core::db::migrate(db, std::filesystem::path(PROJECT_SOURCE_DIR) / "migrations/orchestrator/sqlite");
  orchestrator::store::Store units(db);
  const auto keys = orchestrator::testing::openssl_rsa_key_pair();
  orchestrator::api::JwtSettings js;
  js.hs256_secret = "0123456789abcdef0123456789abcdef-test-secret";
  js.rs256_public_key_pem = keys.public_pem;
  js.external_issuer = "https://idp.example.com/";
  js.external_audience = "ide-api";
  orchestrator::api::DomainAdapter dom(units, js);

  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
  const json claims = {{"sub", "idp|12345"}, {"email", "Dana@Example.com"}, {"iss", "https://idp.example.com/"},
                       {"aud", "ide-api"}, {"iat", now}, {"exp", now + 600}};
  const json first = dom.verify_token(sign_rs256(keys.private_pem, claims));
  const std::string uid = first.at("user_id");
  EXPECT_TRUE(core::is_uuid(uid)) << uid;  // a local user id, not the provider's subject
  EXPECT_EQ(first.at("email"), "dana@example.com");
  EXPECT_EQ(dom.verify_token(sign_rs256(keys.private_pem, claims)).at("user_id"), uid);
  EXPECT_THROW(dom.login("dana@example.com", "anything-at-all"), std::exception);  // no password login
  {
    soci::session sql(db.pool());
    int n = 0;
    sql << "SELECT COUNT(*) FROM audit_log WHERE action = 'user.create_external' AND subject_id = :s",
        soci::use(uid), soci::into(n);
    EXPECT_EQ(n, 1);
  }
  // Our own HS256 tokens keep our issuer and map to their subject directly.
  const std::string erin = orchestrator::api::DomainAdapter::create_user(units, "erin@example.com", "Erin", "erin-pass-1");
  const auto own = dom.login("erin@example.com", "erin-pass-1");
  const json own_claims = dom.verify_token(own.token);
  EXPECT_EQ(own_claims.at("user_id"), erin);
  EXPECT_EQ(own_claims.at("iss"), "ide-orchestrator");
  json no_email = claims;
  no_email.erase("email");
  EXPECT_EQ(dom.verify_token(sign_rs256(keys.private_pem, no_email)).at("user_id"), uid);  // linked: no e-mail needed
  no_email["sub"] = "idp|unknown";
  EXPECT_THROW(dom.verify_token(sign_rs256(keys.private_pem, no_email)), orchestrator::domain::UnauthenticatedError);
  json wrong_iss = claims;
  wrong_iss["iss"] = "ide-orchestrator";
  EXPECT_THROW(dom.verify_token(sign_rs256(keys.private_pem, wrong_iss)), std::exception);

  // Another subject with Erin's address: refused unless the provider verified it (403 reason).
  json erin_claims = claims;
  erin_claims["sub"] = "idp|erin";
  erin_claims["email"] = "Erin@Example.com";
  try {
    dom.verify_token(sign_rs256(keys.private_pem, erin_claims));
    ADD_FAILURE() << "an unverified e-mail signed in as Erin";
  } catch (const orchestrator::domain::IdentityLinkError& e) {
    EXPECT_EQ(e.reason(), "email-not-verified");
  }
  erin_claims["email_verified"] = "false";
  EXPECT_THROW(dom.verify_token(sign_rs256(keys.private_pem, erin_claims)), orchestrator::domain::IdentityLinkError);
  erin_claims["email_verified"] = true;
  EXPECT_EQ(dom.verify_token(sign_rs256(keys.private_pem, erin_claims)).at("user_id"), erin);
  erin_claims["email"] = "erin.new@example.com";  // changed at the provider: still Erin
  erin_claims.erase("email_verified");
  EXPECT_EQ(dom.verify_token(sign_rs256(keys.private_pem, erin_claims)).at("user_id"), erin);

  // Our own token for an account that no longer exists is rejected (401), not served.
  orchestrator::auth::JwtConfig jc;
  jc.hs256_secret = js.hs256_secret;
  const orchestrator::auth::JwtService ours(jc);
  EXPECT_THROW(dom.verify_token(ours.issue(core::uuid4(), "ghost@example.com").token),
               orchestrator::domain::UnauthenticatedError);
  const std::string frank = orchestrator::api::DomainAdapter::create_user(units, "frank@example.com", "Frank", "frank-pass-1");
  const auto frank_token = dom.login("frank@example.com", "frank-pass-1").token;
  EXPECT_EQ(dom.verify_token(frank_token).at("user_id"), frank);
  {
    soci::session sql(db.pool());
    sql << "DELETE FROM users WHERE id = :u", soci::use(frank);
  }
  EXPECT_THROW(dom.verify_token(frank_token), orchestrator::domain::UnauthenticatedError);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

}  // namespace
