// Pagination cursors (src/orchestrator/store/cursor.hpp).
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "orchestrator/domain/error.hpp"
#include "orchestrator/store/cursor.hpp"

using namespace orchestrator::store;

TEST(Cursor, RoundTripsAndRejectsGarbage) {
  const CursorKey k{"2026-01-01T00:00:00.000001Z", "0b7c0c1e-0000-4000-8000-000000000000"};
  const auto c = encode_cursor(k);
  EXPECT_EQ(c.find_first_of("+/="), std::string::npos);
  const auto d = decode_cursor(c);
  EXPECT_EQ(d.created_at, k.created_at);
  EXPECT_EQ(d.id, k.id);
  for (const std::string& bad : std::vector<std::string>{"", "***", "bm9waXBl", std::string(500, 'A')}) {
    try {
      decode_cursor(bad);
      ADD_FAILURE() << bad;
    } catch (const orchestrator::domain::InvalidError& e) {
      EXPECT_EQ(e.field(), "cursor");
    }
  }
  EXPECT_EQ(checked_limit(PageRequest{}), 50);
  EXPECT_THROW(checked_limit(PageRequest{0, ""}), orchestrator::domain::InvalidError);
  EXPECT_THROW(checked_limit(PageRequest{201, ""}), orchestrator::domain::InvalidError);
}
