#include "orchestrator/auth/token_extract.hpp"

#include <gtest/gtest.h>

using namespace orchestrator::auth;

TEST(TokenExtract, AuthorizationBearer) {
  EXPECT_EQ(bearer_from_authorization("Bearer abc.def.ghi"), "abc.def.ghi");
  EXPECT_EQ(bearer_from_authorization("bearer   abc.def.ghi "), "abc.def.ghi");
  EXPECT_FALSE(bearer_from_authorization("Basic dXNlcjpwYXNz"));
  EXPECT_FALSE(bearer_from_authorization("Bearer"));
  EXPECT_FALSE(bearer_from_authorization("Bearer "));
  EXPECT_FALSE(bearer_from_authorization(""));
  EXPECT_FALSE(bearer_from_authorization("Bearer a b"));
}

TEST(TokenExtract, QueryParameter) {
  EXPECT_EQ(token_from_query("token=abc.def.ghi"), "abc.def.ghi");
  EXPECT_EQ(token_from_query("?after_seq=3&token=a%2Eb.c"), "a.b.c");
  EXPECT_FALSE(token_from_query("after_seq=3"));
  EXPECT_FALSE(token_from_query("token="));
  EXPECT_FALSE(token_from_query("xtoken=abc"));
  EXPECT_FALSE(token_from_query("token=%zz"));
}

TEST(TokenExtract, WebSocketProtocol) {
  auto t = token_from_websocket_protocol("bearer, abc.def.ghi");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->token, "abc.def.ghi");
  EXPECT_EQ(t->echo_protocol, "bearer");
  t = token_from_websocket_protocol("json, access_token,abc.def.ghi");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->token, "abc.def.ghi");
  EXPECT_EQ(t->echo_protocol, "access_token");
  EXPECT_FALSE(token_from_websocket_protocol("bearer"));
  EXPECT_FALSE(token_from_websocket_protocol("bearer, "));
  EXPECT_FALSE(token_from_websocket_protocol("json, chat"));
}

TEST(TokenExtract, PrecedenceHeaderThenProtocolThenQuery) {
  auto f = find_token("Bearer h.h.h", "bearer, p.p.p", "token=q.q.q");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->token, "h.h.h");
  EXPECT_EQ(f->source, TokenSource::authorization_header);
  f = find_token("", "bearer, p.p.p", "token=q.q.q");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->source, TokenSource::websocket_protocol);
  EXPECT_EQ(f->echo_protocol, "bearer");
  f = find_token("", "", "token=q.q.q");
  ASSERT_TRUE(f);
  EXPECT_EQ(f->source, TokenSource::query);
  EXPECT_FALSE(find_token("", "", ""));
}
