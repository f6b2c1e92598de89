// The engine's virtual file system under the shared file model (core/files.hpp): one line
// model and one set of rules with the orchestrator.
#include <gtest/gtest.h>

#include "core/files.hpp"
#include "core/json_text.hpp"
#include "spec_engine/tools/builtin.hpp"
#include "spec_engine/tools/vfs.hpp"
#include "tool_fixture.hpp"

using namespace spec_engine::tools;
using nlohmann::json;
using VfsModel = spec_engine::tools::test_support::Tools;

TEST_F(VfsModel, TrailingNewlineIsAFinalEmptyLine) {
  ASSERT_EQ(fs.put("/a.md", "one\ntwo\n"), "");
  EXPECT_EQ(fs.find("/a.md")->lines, (std::vector<std::string>{"one", "two", ""}));
  EXPECT_EQ(fs.find("/a.md")->text(), "one\ntwo\n");
  EXPECT_EQ(fs.find("/a.md")->bytes(), 8u);
}

TEST_F(VfsModel, CrlfTextIsStoredWithLf) {
  auto r = run("write_file", {{"file_path", "/w.md"}, {"content", "alpha\r\nbeta\r\ngamma\r\n"}});
  ASSERT_FALSE(r.error) << r.output;
  EXPECT_EQ(fs.find("/w.md")->lines, (std::vector<std::string>{"alpha", "beta", "gamma", ""}));
  // Files loaded from input_payload (lines with '\r', or one CRLF string) too.
  ASSERT_TRUE(fs.load(json{{"/l.md", {{"content", {"x\r", "y\r", ""}}}}, {"/s.md", "p\r\nq"}}).empty());
  EXPECT_EQ(fs.find("/l.md")->lines, (std::vector<std::string>{"x", "y", ""}));
  EXPECT_EQ(fs.find("/s.md")->lines, (std::vector<std::string>{"p", "q"}));
}

TEST_F(VfsModel, EditSpanningLinesMatchesCrlfText) {
  ASSERT_FALSE(run("write_file", {{"file_path", "/c.md"}, {"content", "one\r\ntwo\r\nthree\r\n"}}).error);
  // The model quotes the file as read (LF) or as it was written (CRLF): both match.
  auto r = run("edit_file", {{"file_path", "/c.md"}, {"old_string", "one\ntwo"}, {"new_string", "1\n2"}});
  ASSERT_FALSE(r.error) << r.output;
  r = run("edit_file", {{"file_path", "/c.md"}, {"old_string", "2\r\nthree"}, {"new_string", "2\r\n3"}});
  ASSERT_FALSE(r.error) << r.output;
  EXPECT_EQ(fs.find("/c.md")->lines, (std::vector<std::string>{"1", "2", "3", ""}));
}

TEST_F(VfsModel, PathsTheOrchestratorRefusesAreToolErrors) {
  for (const std::string& bad : std::vector<std::string>{"/x\\..\\y", "/a\x01", std::string("/a\0b", 4), "/\xff.md"}) {
    auto r = run("write_file", {{"file_path", bad}, {"content", "x"}});
    EXPECT_TRUE(r.error) << testing::PrintToString(bad);
    EXPECT_EQ(r.output.rfind("Error: ", 0), 0u) << r.output;
    EXPECT_NE(core::files::check_path(bad), "");
  }
  auto r = run("write_file", {{"file_path", "/" + std::string(600, 'a')}, {"content", "x"}});
  EXPECT_TRUE(r.error);
  EXPECT_NE(r.output.find("512"), std::string::npos) << r.output;
  EXPECT_TRUE(fs.files().empty());
  // Every path the engine accepts, the orchestrator accepts.
  for (const std::string& ok : std::vector<std::string>{"docs//a.md", "./b.md", "/c/./d.md", "ünï/cödé.md"}) {
    std::string err;
    auto p = normalize_path(ok, err);
    ASSERT_TRUE(p) << err;
    EXPECT_EQ(core::files::check_path(*p), "") << *p;
  }
}

TEST_F(VfsModel, SizesAreTheSharedLimits) {
  const core::files::Limits limits;
  EXPECT_EQ(fs.limits().max_file_bytes, limits.max_file_bytes);
  EXPECT_EQ(fs.limits().max_files, limits.max_files);
  EXPECT_EQ(fs.limits().max_total_bytes, limits.max_total_bytes);
  // Exactly the limit (text bytes) is accepted, CRLF counted after normalisation.
  EXPECT_EQ(fs.put("/max.md", std::string(limits.max_file_bytes, 'x')), "");
  std::string crlf;
  while (crlf.size() < limits.max_file_bytes) crlf += "0123456\r\n";  // 9 bytes, 8 after normalisation
  EXPECT_EQ(fs.put("/crlf.md", crlf), "") << "CRLF text counts as its LF form";
  EXPECT_LE(fs.find("/crlf.md")->bytes(), limits.max_file_bytes);
  auto e = fs.put("/over.md", std::string(limits.max_file_bytes + 1, 'x'));
  EXPECT_NE(e.find("bytes per file"), std::string::npos) << e;
  e = fs.put("/nul.md", std::string("a\0b", 3));
  EXPECT_NE(e.find("NUL"), std::string::npos) << e;
  // Total bytes over all files: about 1.9 MiB so far, 6 more MiB fit, the 7th does not.
  for (int i = 0; i < 6; ++i) ASSERT_EQ(fs.put("/t" + std::to_string(i), std::string(limits.max_file_bytes, 'y')), "");
  e = fs.put("/t6", std::string(limits.max_file_bytes, 'y'));
  EXPECT_NE(e.find("bytes of text in all files"), std::string::npos) << e;
}

TEST_F(VfsModel, TextIsTheSerializedMapAfterEveryChange) {
  const auto same = [this](const char* when) { EXPECT_EQ(fs.to_text(), core::json::dump(fs.to_json())) << when; };
  same("empty");
  ASSERT_EQ(fs.put("/b.md", "one\ntwo\n"), "");
  ASSERT_EQ(fs.put("/a \"quoted\" \u00e9.md", "tab\there \"q\" \\ back\n"), "");
  same("two files");
  const std::string before = fs.to_text();
  // Overwritten, edited by a tool and added: each change shows in the next text.
  ASSERT_EQ(fs.put("/b.md", "changed\n"), "");
  same("overwritten");
  EXPECT_NE(fs.to_text(), before);
  auto r = run("edit_file", {{"file_path", "/b.md"}, {"old_string", "changed"}, {"new_string", "edited"}});
  ASSERT_FALSE(r.error) << r.output;
  EXPECT_NE(fs.to_text().find("edited"), std::string::npos);
  same("edited");
  ASSERT_EQ(fs.put("/c/d.md", ""), "");
  same("added");
  // A load replaces the whole map: no text of the files before it is kept.
  ASSERT_TRUE(fs.load(json{{"/z.md", {{"content", {"z"}}, {"created_at", "t0"}, {"modified_at", "t1"}}}}).empty());
  same("loaded");
  EXPECT_EQ(fs.to_text(), R"({"/z.md":{"content":["z"],"created_at":"t0","modified_at":"t1"}})");
}
