// Glob matching (tools/glob.hpp): semantics, agreement with the former backtracking
// matcher, and bounded work on patterns that made that matcher exponential.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "spec_engine/tools/glob.hpp"

using namespace spec_engine::tools;

namespace {

// The former recursive matcher, kept as the reference for the semantics: `*` within
// a segment, `**` across segments, "**/" may match nothing, `?` one non-'/' byte,
// patterns anchored at "/". Exponential on "*a*a*a...b", so only fed small inputs.
bool reference_from(std::string_view p, std::size_t pi, std::string_view s, std::size_t si) {
  while (pi < p.size()) {
    char c = p[pi];
    if (c == '*') {
      if (pi + 1 < p.size() && p[pi + 1] == '*') {
        std::size_t next = pi + 2;
        if (next < p.size() && p[next] == '/' && reference_from(p, next + 1, s, si)) return true;
        for (std::size_t k = si; k <= s.size(); ++k) {
          if (reference_from(p, next, s, k)) return true;
        }
        return false;
      }
      for (std::size_t k = si; k <= s.size(); ++k) {
        if (reference_from(p, pi + 1, s, k)) return true;
        if (k < s.size() && s[k] == '/') break;
      }
      return false;
    }
    if (si >= s.size()) return false;
    if (c == '?' ? s[si] == '/' : c != s[si]) return false;
    ++pi;
    ++si;
  }
  return si == s.size();
}

bool reference(std::string_view pattern, std::string_view path) {
  std::string p(pattern);
  if (p.empty() || p.front() != '/') p.insert(p.begin(), '/');
  return reference_from(p, 0, path, 0);
}

}  // namespace

TEST(Glob, Semantics) {
  EXPECT_TRUE(glob_match("/*.md", "/a.md"));
  EXPECT_FALSE(glob_match("/*.md", "/d/a.md"));
  EXPECT_TRUE(glob_match("**/*.md", "/d/e/a.md"));
  EXPECT_TRUE(glob_match("/**/*.md", "/a.md"));  // "/**/" also matches "/"
  EXPECT_TRUE(glob_match("/d/**", "/d/e/f"));
  EXPECT_TRUE(glob_match("/d/**", "/d/"));
  EXPECT_FALSE(glob_match("/d/**", "/d"));
  EXPECT_TRUE(glob_match("/d/?.md", "/d/a.md"));
  EXPECT_FALSE(glob_match("/d/?.md", "/d/ab.md"));
  EXPECT_FALSE(glob_match("/d?a.md", "/d/a.md"));  // ? never matches '/'
  EXPECT_TRUE(glob_match("*.md", "/x.md"));       // anchored at "/"
  EXPECT_FALSE(glob_match("*.md", "/x.mdx"));
  EXPECT_TRUE(glob_match("", "/"));
  EXPECT_FALSE(glob_match("", "/a"));
  EXPECT_TRUE(glob_match("/a***b", "/a/x/yb"));  // "**" then "*"
  EXPECT_TRUE(glob_match("/a**/b", "/ab"));      // "**/" matches nothing
  EXPECT_TRUE(glob_match("**/", "/"));
  EXPECT_TRUE(glob_match("**/", "/a/b/"));
  EXPECT_FALSE(glob_match("**/", "/baa"));        // once inside "**/", only a '/' ends it
  EXPECT_TRUE(glob_match("/THE_CAST/*.md", "/THE_CAST/Writer.md"));
  EXPECT_FALSE(glob_match("/THE_CAST/*.md", "/THE_CAST/sub/Writer.md"));
}

// The NFA matcher agrees with the backtracking reference on every pattern and path
// over a small alphabet (exhaustive over short strings, random over longer ones).
TEST(Glob, AgreesWithTheBacktrackingReference) {
  const std::string alphabet = "a/*?";
  const std::string path_alphabet = "ab/";
  std::mt19937 rng(12345);
  auto random_string = [&](const std::string& chars, std::size_t max_len) {
    std::uniform_int_distribution<std::size_t> len(0, max_len), pick(0, chars.size() - 1);
    std::string s;
    for (std::size_t n = len(rng); n > 0; --n) s += chars[pick(rng)];
    return s;
  };
  int checked = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string pattern = random_string(alphabet + "b", 7);
    std::string path = "/" + random_string(path_alphabet, 8);
    ASSERT_EQ(glob_match(pattern, path), reference(pattern, path)) << "pattern " << pattern << " path " << path;
    ++checked;
  }
  EXPECT_EQ(checked, 20000);
}

// Regression: "*a*a*a*a*a*a*a*a*a*a*a*b" over a 200-character name took the
// backtracking matcher ~200^11 steps. The NFA does at most (n + 1) * (tokens + 1).
TEST(Glob, PathologicalPatternDoesBoundedWork) {
  const std::string pattern = "*a*a*a*a*a*a*a*a*a*a*a*b";
  const std::string name = "/" + std::string(200, 'a');
  GlobPattern g(pattern);
  std::size_t steps = 0;
  EXPECT_FALSE(g.matches(name, &steps));
  EXPECT_GT(steps, 0u);
  EXPECT_LE(steps, (name.size() + 1) * (g.tokens() + 1));
  // The same pattern does match when the name ends in 'b'.
  steps = 0;
  EXPECT_TRUE(g.matches("/" + std::string(199, 'a') + "b", &steps));
  EXPECT_LE(steps, (name.size() + 1) * (g.tokens() + 1));
  // Globstars: "**a**a...**b" over a deep path.
  std::string deep;
  for (int i = 0; i < 100; ++i) deep += "/a";
  GlobPattern g2("/**a**a**a**a**a**a**a**a**a**a**a**b");
  steps = 0;
  EXPECT_FALSE(g2.matches(deep, &steps));
  EXPECT_LE(steps, (deep.size() + 1) * (g2.tokens() + 1));
}

TEST(Glob, WorstCaseStepsAreTheProductOfSizes) {
  // 512-byte pattern, 1024-byte path: the work is bounded by the product, whatever the shape.
  std::string pattern;
  while (pattern.size() < 510) pattern += "*a";
  pattern += "*b";
  const std::string path = "/" + std::string(1023, 'a');
  GlobPattern g(pattern);
  std::size_t steps = 0;
  EXPECT_FALSE(g.matches(path, &steps));
  EXPECT_LE(steps, (path.size() + 1) * (g.tokens() + 1));
}
