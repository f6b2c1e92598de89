// Request target and query value parsing (src/core/query.hpp).
#include <gtest/gtest.h>

#include "core/query.hpp"

namespace {

using core::http::parse_after_seq;
using core::http::parse_request_target;
using core::http::Request;

TEST(Query, AfterSeq) {
  EXPECT_EQ(parse_after_seq(std::nullopt), 0);
  EXPECT_EQ(parse_after_seq(std::string("0")), 0);
  EXPECT_EQ(parse_after_seq(std::string("17")), 17);
  EXPECT_EQ(parse_after_seq(std::string("999999999999999999")), 999999999999999999LL);
  EXPECT_FALSE(parse_after_seq(std::string("-1")));
  EXPECT_FALSE(parse_after_seq(std::string("x")));
  EXPECT_FALSE(parse_after_seq(std::string("")));
  EXPECT_FALSE(parse_after_seq(std::string("1x")));
  EXPECT_FALSE(parse_after_seq(std::string("99999999999999999999")));
  // The bound the 400 states (the trial's 10^18 was refused as "not a non-negative integer").
  EXPECT_EQ(parse_after_seq(std::to_string(core::http::kMaxAfterSeq)), core::http::kMaxAfterSeq);
  EXPECT_FALSE(parse_after_seq(std::string("1000000000000000000")));
  EXPECT_EQ(core::http::after_seq_rule(), "must be a decimal integer from 0 to 999999999999999999");
  // Digits only: no sign or spaces (std::stoll would have taken them).
  EXPECT_FALSE(parse_after_seq(std::string("+5")));
  EXPECT_FALSE(parse_after_seq(std::string(" 5")));
}

TEST(Query, RequestTargetDecodesPathAndParameters) {
  Request r;
  ASSERT_TRUE(parse_request_target("/a%20b/c?x=1&x=2&y&z=%2F", r));
  EXPECT_EQ(r.target, "/a%20b/c?x=1&x=2&y&z=%2F");
  EXPECT_EQ(r.path, "/a b/c");
  EXPECT_EQ(r.query.count("x"), 2u);
  EXPECT_EQ(r.query_param("y"), "");
  EXPECT_EQ(r.query_param("z"), "/");
}

TEST(Query, RequestTargetRefusesOtherForms) {
  for (const char* bad : {"*", "http://h/x", "a/b", "/%zz", ""}) {
    Request r;
    EXPECT_FALSE(parse_request_target(bad, r)) << bad;
    EXPECT_TRUE(r.path.empty()) << bad;
    EXPECT_TRUE(r.query.empty()) << bad;
  }
}

}  // namespace
