// Built-in tools over the virtual file system (DESIGN.md §4 "Built-in tools").
#include <gtest/gtest.h>

#include "spec_engine/tools/builtin.hpp"
#include "spec_engine/tools/vfs.hpp"

using namespace spec_engine::tools;
using nlohmann::json;

namespace {

struct Tools : ::testing::Test {
  FileSystem fs;
  json todos = json::array();
  ToolState st{fs, todos};
  ToolResult run(const std::string& name, const json& args) { return run_builtin_tool(name, args, st); }
};

bool starts_with(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

}  // namespace

TEST(Vfs, NormalizePath) {
  std::string err;
  EXPECT_EQ(normalize_path("/a/b.md", err).value(), "/a/b.md");
  EXPECT_EQ(normalize_path("a//b/./c", err).value(), "/a/b/c");
  EXPECT_EQ(normalize_path("/dir/", err).value(), "/dir");
  EXPECT_FALSE(normalize_path("../etc/passwd", err));
  EXPECT_NE(err.find(".."), std::string::npos);
  EXPECT_FALSE(normalize_path("/a/../../b", err));
  EXPECT_FALSE(normalize_path(std::string("/a\0b", 4), err));
  EXPECT_NE(err.find("NUL"), std::string::npos);
  EXPECT_FALSE(normalize_path("", err));
  EXPECT_FALSE(normalize_path("C:\\x", err));
  EXPECT_FALSE(normalize_path("~/x", err));
  EXPECT_FALSE(normalize_path(std::string(5000, 'a'), err));
}

TEST(Vfs, SplitLinesLikePython) {
  EXPECT_EQ(split_lines("a\nb\n"), (std::vector<std::string>{"a", "b", ""}));
  EXPECT_EQ(split_lines(""), (std::vector<std::string>{""}));
}

TEST(Vfs, LoadAcceptsListsAndStringsAndRejectsBadPaths) {
  FileSystem fs;
  auto errs = fs.load(json{{"/a.md", {{"content", {"x", "y"}}, {"created_at", "2025-01-01T00:00:00Z"}}},
                           {"b.md", {{"content", "one\ntwo"}}},
                           {"/c.md", "plain"}});
  ASSERT_TRUE(errs.empty());
  EXPECT_EQ(fs.find("/b.md")->lines, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(fs.find("/a.md")->created_at, "2025-01-01T00:00:00Z");
  EXPECT_EQ(fs.find("/c.md")->text(), "plain");
  auto j = fs.to_json();
  EXPECT_TRUE(j["/a.md"]["content"].is_array());
  EXPECT_TRUE(j["/a.md"]["modified_at"].is_string());

  FileSystem fs2;
  errs = fs2.load(json{{"/../x", {{"content", "a"}}}});
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].first, "files[\"/../x\"]");
  EXPECT_TRUE(fs2.files().empty());
  errs = fs2.load(json{{"/x", {{"content", {1, 2}}}}});
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].first, "files[\"/x\"].content[0]");
}

TEST(Vfs, Limits) {
  FileSystem fs(VfsLimits{10, 2, 100, 64});
  EXPECT_EQ(fs.put("/a", "0123456789"), "");
  EXPECT_NE(fs.put("/b", "0123456789X").find("limit"), std::string::npos);
  EXPECT_EQ(fs.put("/b", "1"), "");
  EXPECT_NE(fs.put("/c", "1").find("maximum of 2 files"), std::string::npos);
  EXPECT_EQ(fs.put("/a", "overwrite"), "");  // existing file: count unchanged
}

TEST(Vfs, GlobMatch) {
  EXPECT_TRUE(glob_match("/*.md", "/a.md"));
  EXPECT_FALSE(glob_match("/*.md", "/d/a.md"));
  EXPECT_TRUE(glob_match("**/*.md", "/d/e/a.md"));
  EXPECT_TRUE(glob_match("/**/*.md", "/a.md"));
  EXPECT_TRUE(glob_match("/d/**", "/d/e/f"));
  EXPECT_TRUE(glob_match("/d/?.md", "/d/a.md"));
  EXPECT_FALSE(glob_match("/d/?.md", "/d/ab.md"));
  EXPECT_TRUE(glob_match("*.md", "/x.md"));
}

TEST_F(Tools, WriteReadNumbered) {
  auto r = run("write_file", {{"file_path", "/docs/a.md"}, {"content", "one\ntwo\nthree"}});
  EXPECT_FALSE(r.error) << r.output;
  EXPECT_TRUE(r.files_changed);
  r = run("read_file", {{"file_path", "/docs/a.md"}});
  EXPECT_EQ(r.output, "     1\tone\n     2\ttwo\n     3\tthree");
  r = run("read_file", {{"file_path", "/docs/a.md"}, {"offset", 1}, {"limit", 1}});
  EXPECT_EQ(r.output, "     2\ttwo");
  r = run("read_file", {{"file_path", "/docs/a.md"}, {"offset", 9}});
  EXPECT_TRUE(r.error);
  EXPECT_NE(r.output.find("exceeds file length (3 lines)"), std::string::npos);
  r = run("read_file", {{"file_path", "/nope.md"}});
  EXPECT_EQ(r.output, "Error: File '/nope.md' not found");
  r = run("read_file", {{"file_path", "/docs/a.md"}, {"offset", -1}});
  EXPECT_TRUE(r.error);
  r = run("read_file", {{"file_path", "/docs/a.md"}, {"limit", "ten"}});
  EXPECT_TRUE(r.error);
}

TEST_F(Tools, BadPathsAndArgumentsAreToolErrors) {
  auto r = run("write_file", {{"file_path", "../escape.md"}, {"content", "x"}});
  EXPECT_TRUE(r.error);
  EXPECT_TRUE(starts_with(r.output, "Error:"));
  EXPECT_NE(r.output.find(".."), std::string::npos);
  r = run("write_file", {{"file_path", std::string("/a\0b", 4)}, {"content", "x"}});
  EXPECT_TRUE(r.error);
  EXPECT_NE(r.output.find("NUL"), std::string::npos);
  r = run("write_file", {{"content", "x"}});
  EXPECT_EQ(r.output, "Error: write_file: missing required argument 'file_path' (string)");
  r = run("write_file", {{"file_path", "/a"}, {"content", 5}});
  EXPECT_NE(r.output.find("'content' must be a string"), std::string::npos);
  r = run("write_file", json::array());
  EXPECT_NE(r.output.find("must be a JSON object"), std::string::npos);
  r = run("write_file", {{"file_path", "/big"}, {"content", std::string(1024 * 1024 + 1, 'x')}});
  EXPECT_TRUE(r.error);
  EXPECT_NE(r.output.find("bytes per file"), std::string::npos);
  r = run("frobnicate", json::object());
  EXPECT_EQ(r.output, "Error: unknown tool 'frobnicate'");
  EXPECT_TRUE(fs.files().empty());
}

TEST_F(Tools, TooManyFiles) {
  for (int i = 0; i < 500; ++i) ASSERT_EQ(fs.put("/f" + std::to_string(i), "x"), "");
  auto r = run("write_file", {{"file_path", "/one-more"}, {"content", "x"}});
  EXPECT_TRUE(r.error);
  EXPECT_NE(r.output.find("500"), std::string::npos);
}

TEST_F(Tools, Edit) {
  run("write_file", {{"file_path", "/a.md"}, {"content", "foo bar foo\nbaz"}});
  auto r = run("edit_file", {{"file_path", "/a.md"}, {"old_string", "nothing"}, {"new_string", "x"}});
  EXPECT_TRUE(r.error);
  EXPECT_EQ(r.output, "Error: String not found in file: 'nothing'");
  r = run("edit_file", {{"file_path", "/a.md"}, {"old_string", "foo"}, {"new_string", "x"}});
  EXPECT_TRUE(r.error);
  EXPECT_NE(r.output.find("appears 2 times"), std::string::npos);
  EXPECT_EQ(fs.find("/a.md")->text(), "foo bar foo\nbaz");
  r = run("edit_file", {{"file_path", "/a.md"}, {"old_string", "baz"}, {"new_string", "qux\nquux"}});
  EXPECT_FALSE(r.error) << r.output;
  EXPECT_EQ(fs.find("/a.md")->lines, (std::vector<std::string>{"foo bar foo", "qux", "quux"}));
  r = run("edit_file", {{"file_path", "/a.md"}, {"old_string", "foo"}, {"new_string", "F"}, {"replace_all", true}});
  EXPECT_FALSE(r.error);
  EXPECT_NE(r.output.find("2 instance"), std::string::npos);
  EXPECT_EQ(fs.find("/a.md")->lines[0], "F bar F");
  r = run("edit_file", {{"file_path", "/missing"}, {"old_string", "a"}, {"new_string", "b"}});
  EXPECT_EQ(r.output, "Error: File '/missing' not found");
  r = run("edit_file", {{"file_path", "/a.md"}, {"old_string", "a"}});
  EXPECT_NE(r.output.find("'new_string'"), std::string::npos);
  r = run("edit_file", {{"file_path", "/a.md"}, {"old_string", "F"}, {"new_string", "b"}, {"replace_all", "yes"}});
  EXPECT_NE(r.output.find("'replace_all' must be a boolean"), std::string::npos);
}

TEST_F(Tools, LsGlobGrep) {
  run("write_file", {{"file_path", "/a.md"}, {"content", "hello world"}});
  run("write_file", {{"file_path", "/docs/b.md"}, {"content", "nothing\nsay hello"}});
  run("write_file", {{"file_path", "/docs/deep/c.txt"}, {"content", "hello.*"}});
  EXPECT_EQ(run("ls", json::object()).output, "/a.md\n/docs/");
  EXPECT_EQ(run("ls", {{"path", "/docs"}}).output, "/docs/b.md\n/docs/deep/");
  EXPECT_TRUE(run("ls", {{"path", "/../"}}).error);
  EXPECT_EQ(run("glob", {{"pattern", "**/*.md"}}).output, "/a.md\n/docs/b.md");
  EXPECT_EQ(run("glob", {{"pattern", "/docs/*"}}).output, "/docs/b.md");
  EXPECT_NE(run("glob", {{"pattern", "/zzz*"}}).output.find("No files found"), std::string::npos);
  EXPECT_TRUE(run("glob", json::object()).error);
  EXPECT_TRUE(run("glob", {{"pattern", std::string(40, '*')}}).error);
  EXPECT_EQ(run("grep", {{"pattern", "hello"}}).output,
            "/a.md:1: hello world\n/docs/b.md:2: say hello\n/docs/deep/c.txt:1: hello.*");
  EXPECT_EQ(run("grep", {{"pattern", "hello.*"}}).output, "/docs/deep/c.txt:1: hello.*");  // literal
  EXPECT_EQ(run("grep", {{"pattern", "hello"}, {"path", "/docs"}, {"glob", "*.md"}}).output, "/docs/b.md:2: say hello");
  EXPECT_TRUE(run("grep", {{"pattern", 3}}).error);
}

TEST_F(Tools, Todos) {
  auto r = run("write_todos", {{"todos", {{{"content", "plan"}, {"status", "in_progress"}}, {{"content", "write"}, {"status", "pending"}}}}});
  EXPECT_FALSE(r.error) << r.output;
  ASSERT_EQ(todos.size(), 2u);
  EXPECT_EQ(todos[0]["status"], "in_progress");
  r = run("write_todos", {{"todos", {{{"content", "x"}, {"status", "done"}}}}});
  EXPECT_TRUE(r.error);
  EXPECT_NE(r.output.find("todos[0].status"), std::string::npos);
  EXPECT_EQ(todos.size(), 2u);
  EXPECT_TRUE(run("write_todos", json::object()).error);
}

TEST(TaskArgs, Checks) {
  EXPECT_EQ(check_task_args({{"description", "do it"}, {"subagent_type", "writer"}}, {"writer"}), "");
  EXPECT_NE(check_task_args({{"subagent_type", "writer"}}, {"writer"}).find("description"), std::string::npos);
  EXPECT_NE(check_task_args({{"description", "x"}, {"subagent_type", "nope"}}, {"writer"}).find("allowed: writer"),
            std::string::npos);
}

TEST(Schemas, AllBuiltinsHaveSchemas) {
  for (const auto& n : builtin_tool_names()) {
    auto s = tool_schema(n, {"writer"});
    EXPECT_EQ(s["type"], "function");
    EXPECT_EQ(s["function"]["name"], n);
    EXPECT_EQ(s["function"]["parameters"]["type"], "object");
  }
  EXPECT_EQ(tool_schema("task", {"a", "b"})["function"]["parameters"]["properties"]["subagent_type"]["enum"],
            json({"a", "b"}));
  EXPECT_EQ(tool_schema("read_file")["function"]["parameters"]["required"], json({"file_path"}));
}
