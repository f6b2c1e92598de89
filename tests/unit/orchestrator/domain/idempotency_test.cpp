// The Idempotency-Key header's value (domain/idempotency.hpp): a bare token or an RFC 8941
// String, within the key rule.
#include "orchestrator/domain/idempotency.hpp"

#include <gtest/gtest.h>

#include "orchestrator/domain/error.hpp"

namespace {

using orchestrator::domain::InvalidError;
using orchestrator::domain::parse_idempotency_key;

std::string refused(const std::string& header) {
  try {
    parse_idempotency_key(header);
  } catch (const InvalidError& e) {
    EXPECT_EQ(e.field(), "Idempotency-Key");
    return e.what();
  }
  ADD_FAILURE() << "accepted: " << header;
  return "";
}

TEST(IdempotencyKey, BareTokensAndStructuredFieldStringsGiveTheKey) {
  EXPECT_EQ(parse_idempotency_key(std::nullopt), std::nullopt);
  EXPECT_EQ(parse_idempotency_key(std::string("8e03978e-40d5-43e8-bc93-6894a57f9324")),
            std::optional<std::string>("8e03978e-40d5-43e8-bc93-6894a57f9324"));
  // The draft's own form: a quoted String (RFC 8941 §3.3.3), unquoted; escapes \" and \\.
  EXPECT_EQ(parse_idempotency_key(std::string("\"8e03978e-40d5\"")), std::optional<std::string>("8e03978e-40d5"));
  EXPECT_EQ(parse_idempotency_key(std::string(R"("a\"b\\c")")), std::optional<std::string>(R"(a"b\c)"));
  EXPECT_EQ(parse_idempotency_key(std::string("order 17 retry")), std::optional<std::string>("order 17 retry"));
  EXPECT_EQ(parse_idempotency_key(std::string(255, 'x'))->size(), 255u);
}

TEST(IdempotencyKey, ValuesOutsideTheRuleAreRefusedWithAReason) {
  EXPECT_NE(refused("").find("must not be empty"), std::string::npos);
  EXPECT_NE(refused("\"\"").find("must not be empty"), std::string::npos);
  EXPECT_NE(refused(std::string(256, 'x')).find("longer than 255 bytes (256)"), std::string::npos);
  EXPECT_NE(refused("caf\xc3\xa9").find("visible ASCII"), std::string::npos);
  EXPECT_NE(refused("tab\there").find("visible ASCII"), std::string::npos);
  EXPECT_NE(refused("\"open").find("not closed"), std::string::npos);
  EXPECT_NE(refused("\"a\" b").find("text after its closing quote"), std::string::npos);
  EXPECT_NE(refused(R"("a\nb")").find("escape"), std::string::npos);
  EXPECT_NE(refused(" x").find("start or end with a space"), std::string::npos);
  EXPECT_NE(refused("k1, k2").find("comma"), std::string::npos);  // two field lines joined
  EXPECT_EQ(parse_idempotency_key(std::string("\"k1, k2\"")), std::optional<std::string>("k1, k2"));
}

}  // namespace
