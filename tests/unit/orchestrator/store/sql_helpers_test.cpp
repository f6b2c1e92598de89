// File-map blobs of the orchestrator store (src/orchestrator/store/sql_helpers.hpp).
#include <stdexcept>
#include <string>

#include <gtest/gtest.h>

#include "orchestrator/store/sql_helpers.hpp"

using orchestrator::domain::FileEntry;
using orchestrator::domain::FileMap;
using orchestrator::store::sqlh::files_blob;
using orchestrator::store::sqlh::files_from_blob;

// What files_blob writes reads back unchanged (the fast path of files_from_blob).
TEST(FilesBlob, RoundTrips) {
  FileMap m;
  m["/THE_SPEC/plan.md"] = FileEntry{{"# Plan", "", "- one", ""}, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"};
  m["/THE_SPEC/empty.md"] = FileEntry{{""}, "2026-01-03T00:00:00Z", "2026-01-03T00:00:00Z"};
  const FileMap back = files_from_blob(files_blob(m));
  ASSERT_EQ(back.size(), 2u);
  for (const auto& [path, f] : m) {
    ASSERT_TRUE(back.count(path)) << path;
    EXPECT_EQ(back.at(path).content, f.content) << path;
    EXPECT_EQ(back.at(path).created_at, f.created_at) << path;
    EXPECT_EQ(back.at(path).modified_at, f.modified_at) << path;
  }
  // The written shape is taken as it is, not validated again: a path the validation refuses
  // (relative) still reads back. This is what makes the read cheap; rows come only from
  // files_blob of validated file maps.
  const FileMap trusted = files_from_blob(
      R"({"relative.md": {"content": ["x"], "created_at": "2026-01-01T00:00:00Z", "modified_at": "2026-01-01T00:00:00Z"}})");
  EXPECT_EQ(trusted.at("relative.md").content, (std::vector<std::string>{"x"}));
}

// A blob in another shape (content as text, lines holding newlines, a missing timestamp) is
// read through the full validation, which normalizes it, instead of being taken as it is.
TEST(FilesBlob, OtherShapesAreValidatedAndNormalized) {
  const FileMap text = files_from_blob(
      R"({"/a.md": {"content": "x\ny", "created_at": "2026-01-01T00:00:00Z", "modified_at": "2026-01-01T00:00:00Z"}})");
  EXPECT_EQ(text.at("/a.md").content, (std::vector<std::string>{"x", "y"}));
  const FileMap lines = files_from_blob(
      R"({"/a.md": {"content": ["x\ny", "z"], "created_at": "2026-01-01T00:00:00Z", "modified_at": "2026-01-01T00:00:00Z"}})");
  EXPECT_EQ(lines.at("/a.md").content, (std::vector<std::string>{"x", "y", "z"}));
  const FileMap no_time = files_from_blob(R"({"/a.md": {"content": ["x"]}})");
  EXPECT_EQ(no_time.at("/a.md").created_at, "1970-01-01T00:00:00Z");
  // The validation still refuses what is not a file map.
  EXPECT_ANY_THROW(files_from_blob(R"({"relative.md": {"content": 7}})"));
  EXPECT_ANY_THROW(files_from_blob("[1, 2]"));
  EXPECT_ANY_THROW(files_from_blob("not json"));
}
