#include "orchestrator/domain/diff.hpp"

#include <gtest/gtest.h>

using namespace orchestrator::domain;

namespace {
std::vector<std::string> L(std::initializer_list<const char*> l) { return {l.begin(), l.end()}; }
FileEntry F(std::vector<std::string> c) { return FileEntry{std::move(c), "t", "t"}; }
}  // namespace

TEST(Diff, KnownExampleMatchesGnuDiffU) {
  // Same input as `diff -u` on two 10-line files; expected output taken from GNU diff.
  // Files end with a newline: under the line model their last element is "".
  const auto a = L({"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", ""});
  const auto b = L({"1", "2", "3", "4", "five", "6", "7", "8", "9", "10", "11", ""});
  const auto fa = F(a), fb = F(b);
  EXPECT_EQ(unified_file_diff("/THE_SPEC/plan.md", &fa, &fb),
            "--- a/THE_SPEC/plan.md\n"
            "+++ b/THE_SPEC/plan.md\n"
            "@@ -2,9 +2,10 @@\n"
            " 2\n 3\n 4\n-5\n+five\n 6\n 7\n 8\n 9\n 10\n+11\n");
}

TEST(Diff, SeparateHunksWhenChangesAreFarApart) {
  std::vector<std::string> a;
  for (int i = 1; i <= 20; ++i) a.push_back(std::to_string(i));
  auto b = a;
  b[1] = "two";     // line 2
  b[17] = "eighteen";  // line 18
  EXPECT_EQ(unified_hunks(a, b),
            "@@ -1,5 +1,5 @@\n 1\n-2\n+two\n 3\n 4\n 5\n"
            "@@ -15,6 +15,6 @@\n 15\n 16\n 17\n-18\n+eighteen\n 19\n 20\n");
}

TEST(Diff, AddedAndDeletedFiles) {
  const auto f = F(L({"hello", "world", ""}));
  EXPECT_EQ(unified_file_diff("/new.md", nullptr, &f), "--- /dev/null\n+++ b/new.md\n@@ -0,0 +1,2 @@\n+hello\n+world\n");
  EXPECT_EQ(unified_file_diff("/old.md", &f, nullptr), "--- a/old.md\n+++ /dev/null\n@@ -1,2 +0,0 @@\n-hello\n-world\n");
  EXPECT_EQ(unified_file_diff("/same.md", &f, &f), "");
}

TEST(Diff, SingleLineRangesOmitCount) {
  EXPECT_EQ(unified_hunks(L({"a"}), L({"b"})), "@@ -1 +1 @@\n-a\n+b\n");
  EXPECT_EQ(unified_hunks(L({"a", "b"}), L({"a", "x", "b"})), "@@ -1,2 +1,3 @@\n a\n+x\n b\n");
}

TEST(Diff, EditScriptIsMinimalAndReproducesTarget) {
  const auto a = L({"a", "b", "c", "a", "b", "b", "a"});
  const auto b = L({"c", "b", "a", "b", "a", "c"});
  const auto ops = diff_lines(a, b);
  int edits = 0;
  std::vector<std::string> rebuilt;
  for (const auto& op : ops) {
    if (op.kind != DiffOp::equal) ++edits;
    if (op.kind == DiffOp::equal) rebuilt.push_back(a[op.a_index]);
    if (op.kind == DiffOp::ins) rebuilt.push_back(b[op.b_index]);
  }
  EXPECT_EQ(edits, 5);  // Myers' paper example: D = 5
  EXPECT_EQ(rebuilt, b);
}

TEST(Diff, LargeDistanceFallsBackButStaysCorrect) {
  std::vector<std::string> a, b;
  for (int i = 0; i < 300; ++i) a.push_back("a" + std::to_string(i)), b.push_back("b" + std::to_string(i));
  const auto ops = diff_lines(a, b, 10);
  int del = 0, ins = 0;
  for (const auto& op : ops) del += op.kind == DiffOp::del, ins += op.kind == DiffOp::ins;
  EXPECT_EQ(del, 300);
  EXPECT_EQ(ins, 300);
}

TEST(Diff, ChangeSummary) {
  FileMap before{{"/a.md", F(L({"1", "2", ""}))}, {"/b.md", F(L({"x", ""}))}, {"/c.md", F(L({"keep"}))}};
  FileMap after{{"/a.md", F(L({"1", "2", "3", ""}))}, {"/c.md", F(L({"keep"}))}, {"/d.md", F(L({"n1", "n2", ""}))}};
  const auto s = summarize_changes(before, after);
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].path, "/a.md");
  EXPECT_EQ(s[0].kind, FileChange::modified);
  EXPECT_EQ(s[0].lines_added, 1);
  EXPECT_EQ(s[0].lines_removed, 0);
  EXPECT_EQ(s[1].kind, FileChange::deleted);
  EXPECT_EQ(s[1].lines_removed, 1);
  EXPECT_EQ(s[2].kind, FileChange::unchanged);
  EXPECT_EQ(s[3].kind, FileChange::added);
  EXPECT_EQ(s[3].lines_added, 2);
  EXPECT_STREQ(to_string(s[3].kind), "added");
}

TEST(Diff, MissingFinalNewlineIsMarkedLikeGnuDiff) {
  // printf 'a\nb' > old; printf 'a\nb\n' > new; diff -u old new
  const auto no_eol = F(L({"a", "b"})), eol = F(L({"a", "b", ""}));
  EXPECT_EQ(unified_file_diff("/x.md", &no_eol, &eol),
            "--- a/x.md\n+++ b/x.md\n@@ -1,2 +1,2 @@\n a\n-b\n\\ No newline at end of file\n+b\n");
  EXPECT_EQ(unified_file_diff("/x.md", &eol, &no_eol),
            "--- a/x.md\n+++ b/x.md\n@@ -1,2 +1,2 @@\n a\n-b\n+b\n\\ No newline at end of file\n");
  // Unchanged last line without newline is context with the marker.
  const auto c1 = F(L({"x", "tail"})), c2 = F(L({"y", "tail"}));
  EXPECT_EQ(unified_hunks(L({"x", "tail\n"}), L({"y", "tail\n"})),
            "@@ -1,2 +1,2 @@\n-x\n+y\n tail\n\\ No newline at end of file\n");
  EXPECT_EQ(unified_file_diff("/t.md", &c1, &c2),
            "--- a/t.md\n+++ b/t.md\n@@ -1,2 +1,2 @@\n-x\n+y\n tail\n\\ No newline at end of file\n");
  // The empty file has no lines.
  const auto empty = F(L({""}));
  EXPECT_EQ(unified_file_diff("/e.md", nullptr, &empty), "--- /dev/null\n+++ b/e.md\n");
  const auto s = summarize_changes({{"/x.md", no_eol}}, {{"/x.md", eol}});
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].kind, FileChange::modified);
  EXPECT_EQ(s[0].lines_added, 1);
  EXPECT_EQ(s[0].lines_removed, 1);
}

TEST(Diff, SameTextSentAsStringOrLinesIsUnchanged) {
  // The false "modified" of the issue: "a\nb\n" as a string and as lines is one file.
  const auto as_string = files_from_json({{"/a.md", {{"content", "a\nb\n"}}}});
  const auto as_lines = files_from_json({{"/a.md", {{"content", {"a", "b", ""}}}}});
  const auto as_crlf = files_from_json({{"/a.md", {{"content", "a\r\nb\r\n"}}}});
  const auto s = summarize_changes(as_string, as_lines);
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0].kind, FileChange::unchanged);
  EXPECT_EQ(summarize_changes(as_lines, as_crlf)[0].kind, FileChange::unchanged);
  EXPECT_EQ(unified_file_diff("/a.md", &as_string.at("/a.md"), &as_crlf.at("/a.md")), "");
}
