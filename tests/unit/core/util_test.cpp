#include "core/util.hpp"

#include <set>

#include <gtest/gtest.h>

TEST(Util, Uuid4IsVersion4AndUnique) {
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const auto id = core::uuid4();
    EXPECT_TRUE(core::is_uuid(id)) << id;
    EXPECT_EQ(id[14], '4');
    EXPECT_NE(std::string("89ab").find(id[19]), std::string::npos);
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 200u);
  EXPECT_FALSE(core::is_uuid("not-a-uuid"));
  EXPECT_FALSE(core::is_uuid("123e4567-e89b-12d3-a456-42661417400g"));
}

TEST(Util, Rfc3339RoundTripAndOffsets) {
  const auto tp = core::parse_rfc3339("2026-11-29T11:32:28.123456Z");
  EXPECT_EQ(core::to_rfc3339(tp), "2026-11-29T11:32:28.123456Z");
  EXPECT_EQ(core::to_rfc3339(core::parse_rfc3339("2026-11-29T12:32:28+01:00")), "2026-11-29T11:32:28.000000Z");
  EXPECT_EQ(core::to_rfc3339(core::parse_rfc3339("2026-11-29T11:32:28.5-00:30")), "2026-11-29T12:02:28.500000Z");
  EXPECT_THROW(core::parse_rfc3339("2026-11-29 11:32"), std::invalid_argument);
  EXPECT_THROW(core::parse_rfc3339("2026-13-29T11:32:28Z"), std::invalid_argument);
}

TEST(Util, RandomHexLength) {
  EXPECT_EQ(core::random_hex(16).size(), 32u);
  EXPECT_NE(core::random_hex(16), core::random_hex(16));
}
