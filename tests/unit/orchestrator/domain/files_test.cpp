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
