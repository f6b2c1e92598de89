#include "core/util.hpp"

#include <set>

#include <sys/resource.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

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

// Found by fuzz/fuzz_invoke (a CloudEvent `time`): years outside system_clock's range
// (nanoseconds in 64 bits) overflowed when converted (undefined behaviour).
TEST(Util, Rfc3339OutsideTheClockRangeIsRefused) {
  for (const char* t : {"0001-01-01T00:00:00Z", "1677-01-01T00:00:00Z", "2263-01-01T00:00:00Z",
                        "9999-12-31T23:59:59.999999Z", "1000-01-01T00:00:00+23:59"}) {
    EXPECT_THROW(core::parse_rfc3339(t), std::invalid_argument) << t;
  }
  EXPECT_EQ(core::to_rfc3339(core::parse_rfc3339("1700-01-01T00:00:00Z")), "1700-01-01T00:00:00.000000Z");
  EXPECT_EQ(core::to_rfc3339(core::parse_rfc3339("2262-01-01T00:00:00Z")), "2262-01-01T00:00:00.000000Z");
}

TEST(Util, RandomHexLength) {
  EXPECT_EQ(core::random_hex(16).size(), 32u);
  EXPECT_NE(core::random_hex(16), core::random_hex(16));
}

TEST(Util, Utf8TruncateNeverCutsACharacter) {
  const std::string s = "ab\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";  // "abé€😀": 1+1+2+3+4 bytes
  EXPECT_EQ(core::utf8_truncate(s, 100), s);
  EXPECT_EQ(core::utf8_truncate(s, 2), "ab");
  EXPECT_EQ(core::utf8_truncate(s, 3), "ab");  // inside é
  EXPECT_EQ(core::utf8_truncate(s, 4), "ab\xC3\xA9");
  EXPECT_EQ(core::utf8_truncate(s, 6), "ab\xC3\xA9");  // inside €
  EXPECT_EQ(core::utf8_truncate(s, 10), "ab\xC3\xA9\xE2\x82\xAC");  // inside 😀
  EXPECT_EQ(core::utf8_truncate(s, 0), "");
  EXPECT_EQ(core::utf8_truncate("", 5), "");
}

TEST(Util, Utf8TruncateReplacesInvalidBytes) {
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(core::utf8_truncate("a\xFF" "b", 100), "a" + fffd + "b");
  EXPECT_EQ(core::utf8_truncate("\x80", 100), fffd);                    // stray continuation
  EXPECT_EQ(core::utf8_truncate("x\xE2\x82", 100), "x" + fffd + fffd);  // truncated sequence
  EXPECT_EQ(core::utf8_truncate("\xC0\xAF", 100), fffd + fffd);         // overlong '/'
  EXPECT_EQ(core::utf8_truncate("\xED\xA0\x80", 100), fffd + fffd + fffd);  // surrogate U+D800
  EXPECT_EQ(core::utf8_truncate("\xF4\x90\x80\x80", 100).find('\xF4'), std::string::npos);  // > U+10FFFF
  EXPECT_EQ(core::utf8_truncate("a\xFF", 3), "a");  // the replacement does not fit
  // Every result is valid UTF-8: nlohmann::json accepts it strictly.
  const std::string junk = "\xC3\xFF\xE2\x28\xA1\xF0\x28\x8C\xBC" + std::string(10, '\x80');
  for (std::size_t n = 0; n < 40; ++n) {
    const std::string t = core::utf8_truncate(junk, n);
    EXPECT_LE(t.size(), n);
    EXPECT_NO_THROW((void)nlohmann::json(t).dump()) << n;
  }
}

TEST(Util, RaiseFdLimitReachesTheHardLimit) {
  const std::size_t soft = core::raise_fd_limit();
  rlimit lim{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  EXPECT_EQ(lim.rlim_cur, lim.rlim_max);
  EXPECT_EQ(soft, lim.rlim_cur == RLIM_INFINITY ? static_cast<std::size_t>(-1) : lim.rlim_cur);
}

TEST(Util, IsValidUtf8) {
  EXPECT_TRUE(core::is_valid_utf8(""));
  EXPECT_TRUE(core::is_valid_utf8("plain /path.md"));
  EXPECT_TRUE(core::is_valid_utf8("\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80"));  // é € 😀
  EXPECT_FALSE(core::is_valid_utf8("\xff"));
  EXPECT_FALSE(core::is_valid_utf8("\xC3"));              // truncated
  EXPECT_FALSE(core::is_valid_utf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(core::is_valid_utf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(core::is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
}
