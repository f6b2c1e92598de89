#include "orchestrator/domain/files.hpp"

#include <gtest/gtest.h>

#include "orchestrator/domain/error.hpp"

using namespace orchestrator::domain;
using nlohmann::json;

namespace {
std::string field_of(const json& j) {
  try {
    files_from_json(j);
  } catch (const InvalidError& e) {
    return e.field();
  }
  return "";
}
}  // namespace

TEST(Files, ParsesEngineShapeAndRoundTrips) {
  const json j = {{"/THE_SPEC/plan.md",
                   {{"content", {"# Plan", "", "1. step"}}, {"created_at", "2025-12-18T06:23:59.144559+00:00"},
                    {"modified_at", "2025-12-18T06:23:59.144559+00:00"}}}};
  const auto f = files_from_json(j);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f.at("/THE_SPEC/plan.md").content.size(), 3u);
  EXPECT_EQ(files_to_json(f), j);
}

TEST(Files, StringContentIsSplitAndTimestampsDefaulted) {
  const auto f = files_from_json({{"/a.md", {{"content", "one\ntwo"}}}}, "files", "2026-01-01T00:00:00.000000Z");
  EXPECT_EQ(f.at("/a.md").content, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(f.at("/a.md").created_at, "2026-01-01T00:00:00.000000Z");
}

TEST(Files, ValidationNamesTheField) {
  EXPECT_EQ(field_of(json::array()), "files");
  EXPECT_EQ(field_of({{"relative.md", {{"content", json::array()}}}}), "files.relative.md");
  EXPECT_EQ(field_of({{"/../etc/passwd", {{"content", json::array()}}}}), "files./../etc/passwd");
  EXPECT_EQ(field_of({{"/a//b", {{"content", json::array()}}}}), "files./a//b");
  EXPECT_EQ(field_of({{"/a.md", {{"content", {1, 2}}}}}), "files./a.md.content");
  EXPECT_EQ(field_of({{"/a.md", json::object()}}), "files./a.md.content");
  EXPECT_EQ(field_of({{"/a.md", {{"content", json::array()}, {"created_at", 5}}}}), "files./a.md.created_at");
  EXPECT_EQ(field_of({{std::string("/a\x01"), {{"content", json::array()}}}}), std::string("files./a\x01"));
}

TEST(Files, ContentStorageIsLossless) {
  const std::vector<std::string> lines{"a \"quoted\" line", "", "tab\there", "ünïcödé"};
  EXPECT_EQ(content_from_text(content_to_text(lines)), lines);
}

TEST(Files, StringsAndLinesFollowTheSharedLineModel) {
  // A trailing newline is a final "" line (it used to be dropped here and kept by the engine).
  auto f = files_from_json({{"/a.md", {{"content", "one\ntwo\n"}}}});
  EXPECT_EQ(f.at("/a.md").content, (std::vector<std::string>{"one", "two", ""}));
  // CRLF and CR become LF, in strings and in line arrays alike.
  f = files_from_json({{"/a.md", {{"content", "one\r\ntwo\r\n"}}}, {"/b.md", {{"content", {"x\r", "y\r", ""}}}}});
  EXPECT_EQ(f.at("/a.md").content, (std::vector<std::string>{"one", "two", ""}));
  EXPECT_EQ(f.at("/b.md").content, (std::vector<std::string>{"x", "y", ""}));
  // An element holding a line break is several lines; [] is the empty file [""].
  f = files_from_json({{"/a.md", {{"content", {"one\ntwo"}}}}, {"/e.md", {{"content", json::array()}}}});
  EXPECT_EQ(f.at("/a.md").content, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(f.at("/e.md").content, (std::vector<std::string>{""}));
  // Stored content is read back in the same canonical form.
  EXPECT_EQ(content_from_text("[]"), (std::vector<std::string>{""}));
  EXPECT_EQ(content_from_text(R"(["a\r\nb"])"), (std::vector<std::string>{"a", "b"}));
}

TEST(Files, SharedRulesNameTheField) {
  // Paths the engine refuses are refused here too (they used to make every refinement 502).
  EXPECT_EQ(field_of({{"/x\\..\\y", {{"content", "a"}}}}), "files./x\\..\\y");
  EXPECT_EQ(field_of({{"/a.md", {{"content", std::string("a\0b", 3)}}}}), "files./a.md.content");
  EXPECT_EQ(field_of({{"/a.md", {{"content", {"ok", std::string("\0", 1)}}}}}), "files./a.md.content");
  // Size is the text's byte count, as in the engine: exactly 1 MiB of text is accepted.
  const core::files::Limits limits;
  const std::string mib(limits.max_file_bytes, 'x');
  EXPECT_NO_THROW(files_from_json({{"/a.md", {{"content", mib}}}}));
  EXPECT_NO_THROW(files_from_json({{"/a.md", {{"content", core::files::split_lines(mib.substr(1) + "\n")}}}}));
  EXPECT_EQ(field_of({{"/a.md", {{"content", mib + "\n"}}}}), "files./a.md.content");
  // Totals: file count and bytes over all files.
  json many = json::object();
  for (std::size_t i = 0; i <= limits.max_files; ++i) many["/f" + std::to_string(i)] = {{"content", "x"}};
  EXPECT_EQ(field_of(many), "files");
  json big = json::object();
  for (std::size_t i = 0; i < 9; ++i) big["/f" + std::to_string(i)] = {{"content", mib}};
  EXPECT_EQ(field_of(big), "files");
}
