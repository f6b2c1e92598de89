#include "core/files.hpp"

#include <algorithm>
#include <random>

#include <gtest/gtest.h>

using namespace core::files;

namespace {

using Lines = std::vector<std::string>;

/// Random text over pieces that exercise the rules: line breaks of every kind, empty
/// lines, multi-byte UTF-8 and characters next to '\n'.
std::string random_text(std::mt19937& rng) {
  static const char* pieces[] = {"a", "bc", " ", "\n", "\r", "\r\n", "\n\n", "\xC3\xA9", "\t", "\\r", "\r\r\n"};
  const int n = std::uniform_int_distribution<int>(0, 12)(rng);
  std::string s;
  for (int i = 0; i < n; ++i) s += pieces[std::uniform_int_distribution<int>(0, 10)(rng)];
  return s;
}

/// Random canonical lines: at least one, none holding '\r' or '\n'.
Lines random_canonical(std::mt19937& rng) {
  static const char* pieces[] = {"", "x", "yz", " ", "\t", "\xE2\x82\xAC", "//"};
  const int n = std::uniform_int_distribution<int>(1, 8)(rng);
  Lines out;
  for (int i = 0; i < n; ++i) {
    std::string l;
    const int k = std::uniform_int_distribution<int>(0, 3)(rng);
    for (int j = 0; j < k; ++j) l += pieces[std::uniform_int_distribution<int>(0, 6)(rng)];
    out.push_back(l);
  }
  return out;
}

/// Random line arrays as clients send them: maybe empty, elements may hold line breaks.
Lines random_array(std::mt19937& rng) {
  const int n = std::uniform_int_distribution<int>(0, 5)(rng);
  Lines out;
  for (int i = 0; i < n; ++i) out.push_back(random_text(rng));
  return out;
}

constexpr int kRounds = 5000;

}  // namespace

// ---------------------------------------------------------------- examples (docs/files.md)

TEST(FileLines, DocumentedExamples) {
  EXPECT_EQ(split_lines("a\nb\n"), (Lines{"a", "b", ""}));
  EXPECT_EQ(split_lines("a\nb"), (Lines{"a", "b"}));
  EXPECT_EQ(split_lines(""), (Lines{""}));
  EXPECT_EQ(split_lines("\n"), (Lines{"", ""}));
  EXPECT_EQ(split_lines("a\r\nb\r\n"), (Lines{"a", "b", ""}));
  EXPECT_EQ(split_lines("a\rb"), (Lines{"a", "b"}));
  EXPECT_EQ(split_lines("a\r\rb"), (Lines{"a", "", "b"}));
  EXPECT_EQ(join_lines({"a", "b", ""}), "a\nb\n");
  EXPECT_EQ(join_lines({}), "");
  EXPECT_EQ(normalize_lines({}), (Lines{""}));
  EXPECT_EQ(normalize_lines({"a\r", "b"}), (Lines{"a", "b"}));
  EXPECT_EQ(normalize_lines({"a\nb", ""}), (Lines{"a", "b", ""}));
  EXPECT_TRUE(ends_with_newline({"a", ""}));
  EXPECT_TRUE(ends_with_newline({"", ""}));
  EXPECT_FALSE(ends_with_newline({""}));
  EXPECT_FALSE(ends_with_newline({"a"}));
  EXPECT_EQ(text_bytes({"ab", "c", ""}), 5u);
}

// ---------------------------------------------------------------- properties

TEST(FileLinesProperty, TextToLinesToTextIsIdentityUnderNormalisation) {
  std::mt19937 rng(1);
  for (int i = 0; i < kRounds; ++i) {
    const std::string s = random_text(rng);
    EXPECT_EQ(join_lines(split_lines(s)), normalize_newlines(s)) << testing::PrintToString(s);
  }
}

TEST(FileLinesProperty, LinesToTextToLinesIsIdentityOnCanonicalLines) {
  std::mt19937 rng(2);
  for (int i = 0; i < kRounds; ++i) {
    const Lines l = random_canonical(rng);
    ASSERT_TRUE(is_canonical(l));
    EXPECT_EQ(split_lines(join_lines(l)), l) << testing::PrintToString(l);
    EXPECT_EQ(normalize_lines(l), l);
  }
}

TEST(FileLinesProperty, SplitAlwaysGivesCanonicalLines) {
  std::mt19937 rng(3);
  for (int i = 0; i < kRounds; ++i) {
    const std::string s = random_text(rng);
    const Lines l = split_lines(s);
    EXPECT_TRUE(is_canonical(l)) << testing::PrintToString(s);
    const std::string n = normalize_newlines(s);
    EXPECT_EQ(l.size(), static_cast<std::size_t>(std::count(n.begin(), n.end(), '\n')) + 1);
    EXPECT_EQ(ends_with_newline(l), !n.empty() && n.back() == '\n') << testing::PrintToString(s);
  }
}

TEST(FileLinesProperty, NormalisationIsIdempotentAndRemovesEveryCarriageReturn) {
  std::mt19937 rng(4);
  for (int i = 0; i < kRounds; ++i) {
    const std::string s = random_text(rng);
    const std::string n = normalize_newlines(s);
    EXPECT_EQ(n.find('\r'), std::string::npos);
    EXPECT_EQ(normalize_newlines(n), n);
    // Only line breaks change: the text without them is the same.
    auto strip = [](std::string t) {
      t.erase(std::remove_if(t.begin(), t.end(), [](char c) { return c == '\r' || c == '\n'; }), t.end());
      return t;
    };
    EXPECT_EQ(strip(n), strip(s));
  }
}

TEST(FileLinesProperty, ArraysAndStringsOfTheSameTextAgree) {
  // The bug behind false "modified" entries: a file sent as a string and the same file sent
  // as lines must end up equal, whichever service reads it.
  std::mt19937 rng(5);
  for (int i = 0; i < kRounds; ++i) {
    const Lines arr = random_array(rng);
    const Lines canon = normalize_lines(arr);
    EXPECT_TRUE(is_canonical(canon));
    EXPECT_EQ(normalize_lines(canon), canon);
    EXPECT_EQ(split_lines(join_lines(arr)), canon);
    EXPECT_EQ(text_bytes(canon), join_lines(canon).size());
    EXPECT_EQ(text_bytes(arr), join_lines(arr).size());
  }
}

// ---------------------------------------------------------------- rules

TEST(FileRules, Paths) {
  EXPECT_EQ(check_path("/THE_SPEC/plan.md"), "");
  EXPECT_EQ(check_path("/ünï cödé/~x.md"), "");
  for (const std::string& bad : std::vector<std::string>{"", "relative.md", "/", "/a/", "/a//b", "/a/./b", "/a/../b", "/..", "/x\\..\\y",
                                std::string("/a\0b", 4), "/a\x01", "/a\x7f", "/a\nb", "/\xff\xfe"}) {
    EXPECT_NE(check_path(bad), "") << testing::PrintToString(bad);
  }
  EXPECT_NE(check_path("/x\\..\\y").find("backslash"), std::string::npos);
  // An empty path is called empty (it used to read "must be absolute (start with '/'): ").
  EXPECT_EQ(check_path(""), "file path is empty; give an absolute path such as /THE_SPEC/plan.md");
  EXPECT_NE(check_path(std::string("/a\0b", 4)).find("NUL"), std::string::npos);
  EXPECT_EQ(check_path("/" + std::string(511, 'a')), "");
  EXPECT_NE(check_path("/" + std::string(512, 'a')).find("limit is 512"), std::string::npos);
}

TEST(FileRules, ContentAndTotals) {
  Limits l;
  EXPECT_EQ(check_content({"a", "b", ""}), "");
  EXPECT_NE(check_content({"a", std::string("b\0c", 3)}).find("line 2 contains a NUL"), std::string::npos);
  // Exactly max_file_bytes of text is allowed, one more is not (the size is the text's, rule 5).
  const Lines exact = split_lines(std::string(l.max_file_bytes - 1, 'x') + "\n");
  EXPECT_EQ(text_bytes(exact), l.max_file_bytes);
  EXPECT_EQ(check_content(exact), "");
  EXPECT_NE(check_content(split_lines(std::string(l.max_file_bytes, 'x') + "\n")), "");
  EXPECT_EQ(check_totals(l.max_files, l.max_total_bytes), "");
  EXPECT_NE(check_totals(l.max_files + 1, 0).find("limit is 500 files"), std::string::npos);
  EXPECT_NE(check_totals(1, l.max_total_bytes + 1), "");
}
