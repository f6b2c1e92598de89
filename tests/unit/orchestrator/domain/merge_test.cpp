// Three-way merge of a proposal into a draft (src/orchestrator/domain/merge.hpp).
#include <gtest/gtest.h>

#include "orchestrator/domain/merge.hpp"

namespace {

using orchestrator::domain::FileEntry;
using orchestrator::domain::FileMap;
using orchestrator::domain::merge_proposal;

FileEntry f(std::vector<std::string> lines) { return FileEntry{std::move(lines), "t0", "t0"}; }

TEST(Merge, AppliesChangesWhereTheDraftDidNotMove) {
  const FileMap base{{"/a", f({"a"})}, {"/b", f({"b"})}};
  const FileMap generated{{"/a", f({"A"})}, {"/b", f({"b"})}, {"/c", f({"c"})}};  // /b unchanged, /c new
  const FileMap current{{"/a", f({"a"})}, {"/b", f({"B"})}, {"/d", f({"d"})}};   // the user edited /b, added /d
  const auto r = merge_proposal(base, generated, current);
  EXPECT_TRUE(r.conflicts.empty());
  EXPECT_EQ(r.changes.size(), 2u);  // /a and /c
  EXPECT_EQ(r.merged.at("/a").content, std::vector<std::string>{"A"});
  EXPECT_EQ(r.merged.at("/b").content, std::vector<std::string>{"B"});  // the user's edit stays
  EXPECT_EQ(r.merged.at("/c").content, std::vector<std::string>{"c"});
  EXPECT_EQ(r.merged.at("/d").content, std::vector<std::string>{"d"});
}

TEST(Merge, BothChangedDifferentlyIsAConflictTheSameWayIsNot) {
  const FileMap base{{"/a", f({"a"})}, {"/b", f({"b"})}};
  const FileMap generated{{"/a", f({"A"})}, {"/b", f({"B"})}, {"/n", f({"new"})}};
  const FileMap current{{"/a", f({"x"})}, {"/b", f({"B"})}, {"/n", f({"other"})}};
  const auto r = merge_proposal(base, generated, current);
  EXPECT_EQ(r.conflicts, (std::vector<std::string>{"/a", "/n"}));
}

TEST(Merge, AbsentFromTheGeneratedFilesIsNotADeletion) {
  const FileMap base{{"/a", f({"a"})}};
  const auto r = merge_proposal(base, FileMap{}, base);
  EXPECT_TRUE(r.changes.empty());
  EXPECT_EQ(r.merged.size(), 1u);
}

}  // namespace
