#include "orchestrator/auth/password.hpp"

#include <gtest/gtest.h>

using namespace orchestrator::auth;

TEST(Password, HashIsArgon2idAndVerifies) {
  const auto h = hash_password("correct horse battery staple", PasswordParams::minimal());
  EXPECT_EQ(h.rfind("$argon2id$", 0), 0u) << h;
  EXPECT_TRUE(verify_password("correct horse battery staple", h));
  EXPECT_FALSE(verify_password("correct horse battery stapler", h));
  EXPECT_FALSE(verify_password("", h));
}

TEST(Password, SaltedSoSamePasswordHashesDiffer) {
  const auto a = hash_password("same-password", PasswordParams::minimal());
  const auto b = hash_password("same-password", PasswordParams::minimal());
  EXPECT_NE(a, b);
  EXPECT_TRUE(verify_password("same-password", a));
  EXPECT_TRUE(verify_password("same-password", b));
}

TEST(Password, MalformedHashNeverVerifies) {
  EXPECT_FALSE(verify_password("x", ""));
  EXPECT_FALSE(verify_password("x", "$argon2id$garbage"));
  EXPECT_FALSE(verify_password("x", std::string(500, 'a')));
}

TEST(Password, RejectsEmptyPassword) { EXPECT_THROW(hash_password(""), std::invalid_argument); }

TEST(Password, NeedsRehashWhenParamsChange) {
  const auto h = hash_password("pw-pw-pw-pw", PasswordParams::minimal());
  EXPECT_FALSE(needs_rehash(h, PasswordParams::minimal()));
  EXPECT_TRUE(needs_rehash(h, PasswordParams::interactive()));
}
