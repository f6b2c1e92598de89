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
  // Well-formed base64 of text this service never makes: an SQL-looking time, a time out of
  // range, an id with other characters.
  const std::vector<std::string> forged = {encode_cursor({"x' OR 1=1 --", "a"}),
                                           encode_cursor({"2026-13-45T99:99:99Z", k.id}),
                                           encode_cursor({k.created_at, "a' OR '1'='1"})};
  for (const std::string& bad : forged) EXPECT_THROW(decode_cursor(bad), orchestrator::domain::InvalidError) << bad;
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
