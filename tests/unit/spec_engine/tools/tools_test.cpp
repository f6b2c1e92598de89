// Built-in tools over the virtual file system (docs/engine-api.md#built-in-tools).
#include <gtest/gtest.h>

#include <atomic>

#include "spec_engine/tools/builtin.hpp"
#include "spec_engine/tools/vfs.hpp"
#include "tool_fixture.hpp"

using namespace spec_engine::tools;
using spec_engine::tools::test_support::Tools;
using nlohmann::json;

namespace {

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

TEST(Vfs, LoadAcceptsListsAndStringsAndRejectsNonCanonicalPaths) {
  FileSystem fs;
  auto errs = fs.load(json{{"/a.md", {{"content", {"x", "y"}}, {"created_at", "2025-01-01T00:00:00Z"}}},
                           {"/b.md", {{"content", "one\ntwo"}}},
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
  errs = fs2.load(json{{"b.md", {{"content", "a"}}}});  // canonical paths only (the tools normalise theirs)
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].first, "files[\"b.md\"]");
  EXPECT_NE(errs[0].second.find("must be absolute"), std::string::npos) << errs[0].second;
  errs = fs2.load(json{{"/x", {{"content", {1, 2}}}}});
  ASSERT_EQ(errs.size(), 1u);
  EXPECT_EQ(errs[0].first, "files[\"/x\"].content[0]");
}

TEST(Vfs, Limits) {
  FileSystem fs(VfsLimits{10, 2, 100, 64});
  EXPECT_EQ(fs.put("/a", "0123456789"), "");
  EXPECT_NE(fs.put("/b", "0123456789X").find("limit"), std::string::npos);
  EXPECT_EQ(fs.put("/b", "1"), "");
  EXPECT_NE(fs.put("/c", "1").find("limit is 2 files"), std::string::npos);
  EXPECT_EQ(fs.put("/a", "overwrite"), "");  // existing file: count unchanged
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
  // Any number of stars is fine now that matching is linear; the length is bounded.
  EXPECT_EQ(run("glob", {{"pattern", std::string(40, '*')}}).output, "/a.md\n/docs/b.md\n/docs/deep/c.txt");
  EXPECT_EQ(run("glob", {{"pattern", std::string(513, 'a')}}).output, "Error: glob: pattern must be 1..512 characters");
  EXPECT_EQ(run("grep", {{"pattern", "x"}, {"glob", std::string(513, '*')}}).output,
            "Error: grep: glob must be 1..512 characters");
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

// Found by fuzz/fuzz_tools: a todo whose text is not valid UTF-8 made write_todos throw
// nlohmann's type_error 316 from its reply (tools must never throw for model input).
TEST_F(Tools, TodosWithIllFormedUtf8DoNotThrow) {
  ToolResult r;
  ASSERT_NO_THROW(r = run("write_todos", {{"todos", {{{"content", std::string("caf\xC3")}, {"status", "pending"}}}}}));
  EXPECT_FALSE(r.error) << r.output;
  EXPECT_NE(r.output.find("caf\xEF\xBF\xBD"), std::string::npos) << r.output;  // U+FFFD in the reply
}

// Seen while writing fuzz/fuzz_tools: an integral float beyond long long (offset 1e300) was
// converted to long long, which is undefined behaviour; it is refused like any other bad integer.
TEST_F(Tools, HugeFloatIntegersAreRefused) {
  ASSERT_TRUE(fs.put("/n.md", "a\nb\n").empty());
  for (const double v : {1e300, -1e300, 9.3e18, 1.5}) {
    const auto r = run("read_file", {{"file_path", "/n.md"}, {"offset", v}});
    EXPECT_TRUE(r.error) << v;
    EXPECT_EQ(r.output, "Error: read_file: argument 'offset' must be a non-negative integer") << v;
  }
  EXPECT_FALSE(run("read_file", {{"file_path", "/n.md"}, {"offset", 1.0}}).error);
}

// Found by fuzz/fuzz_tools: read_file with limit 0 answered an empty tool message, which
// tells the model nothing; it is an error that says what to send instead.
TEST_F(Tools, ReadFileLimitZeroIsAnError) {
  ASSERT_TRUE(fs.put("/z.md", "a\nb\n").empty());
  const auto r = run("read_file", {{"file_path", "/z.md"}, {"limit", 0}});
  EXPECT_TRUE(r.error);
  EXPECT_EQ(r.output, "Error: read_file: argument 'limit' must be at least 1 (lines to read)");
  EXPECT_EQ(run("read_file", {{"file_path", "/z.md"}, {"limit", 1}}).output, "     1\ta");
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

// Regression (issue: a model-issued glob pinned a run): the pathological pattern over a
// 200-character name answers at once through both tools.
TEST_F(Tools, PathologicalGlobThroughGlobAndGrep) {
  const std::string name = "/" + std::string(200, 'a');
  ASSERT_EQ(fs.put(name, "a line"), "");
  ASSERT_EQ(fs.put("/" + std::string(199, 'a') + "b", "b line"), "");
  const std::string pattern = "*a*a*a*a*a*a*a*a*a*a*a*b";
  EXPECT_EQ(run("glob", {{"pattern", pattern}}).output, "/" + std::string(199, 'a') + "b");
  EXPECT_EQ(run("grep", {{"pattern", "line"}, {"glob", pattern}}).output,
            "/" + std::string(199, 'a') + "b:1: b line");
}

// Literal search is linear: a needle that nearly matches everywhere (the worst case of a
// naive search) over a long line gives the right answer.
TEST_F(Tools, GrepAndEditWithNearMissNeedles) {
  const std::string line(200000, 'a');
  ASSERT_EQ(fs.put("/long.txt", line + "\nx" + std::string(5000, 'a') + "b"), "");
  const std::string needle = std::string(5000, 'a') + "b";
  EXPECT_EQ(run("grep", {{"pattern", needle}}).output.substr(0, 14), "/long.txt:2: x");
  auto r = run("edit_file", {{"file_path", "/long.txt"}, {"old_string", needle}, {"new_string", "B"}});
  EXPECT_FALSE(r.error) << r.output;
  EXPECT_EQ(fs.find("/long.txt")->lines[1], "xB");
}

namespace {

// A budget whose cancel predicate counts its calls and turns true after `after` calls.
struct CountingCancel {
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  int after;
  explicit CountingCancel(int a) : after(a) {}
  core::Budget budget(std::chrono::milliseconds limit = std::chrono::hours(1)) const {
    auto c = calls;
    int n = after;
    return core::Budget(limit, [c, n] { return ++*c > n; }, core::Budget::Clock::time_point::max(), 1);
  }
};

}  // namespace

// Every looping tool polls its budget inside its loops: an already exhausted budget ends
// the call with the budget error, and edit_file changes nothing.
TEST_F(Tools, ExhaustedBudgetEndsEveryToolWithAReadableError) {
  ASSERT_EQ(fs.put("/a.md", "alpha\nbeta"), "");
  const std::vector<std::pair<std::string, json>> calls = {
      {"ls", json::object()},
      {"read_file", {{"file_path", "/a.md"}}},
      {"glob", {{"pattern", "**"}}},
      {"grep", {{"pattern", "beta"}}},
      {"edit_file", {{"file_path", "/a.md"}, {"old_string", "alpha"}, {"new_string", "gamma"}}},
  };
  for (const auto& [name, args] : calls) {
    core::Budget spent(std::chrono::milliseconds(0));
    auto r = run_builtin_tool(name, args, st, spent);
    EXPECT_TRUE(r.error) << name;
    EXPECT_EQ(r.output, "Error: " + name + ": exceeded its time budget of 0 ms");
    EXPECT_EQ(spent.stop(), core::BudgetStop::deadline);
  }
  EXPECT_EQ(fs.find("/a.md")->text(), "alpha\nbeta");
  core::Budget ample(std::chrono::minutes(1));
  EXPECT_EQ(run_builtin_tool("grep", {{"pattern", "beta"}}, st, ample).output, "/a.md:2: beta");
}

// Cancellation is noticed inside a call, not only between calls: grep over 100 files of
// 100 lines polls per line, and stops at the poll where the predicate turns true.
TEST_F(Tools, CancelIsNoticedInsideGrep) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "line " + std::to_string(i) + "\n";
  for (int f = 0; f < 100; ++f) ASSERT_EQ(fs.put("/f" + std::to_string(f) + ".txt", text), "");
  CountingCancel never(1 << 30);
  auto b1 = never.budget();
  EXPECT_FALSE(run_builtin_tool("grep", {{"pattern", "zzz"}}, st, b1).error);
  EXPECT_GE(b1.checks(), 100u * 100u);  // at least once per line
  CountingCancel soon(500);
  auto b2 = soon.budget();
  auto r = run_builtin_tool("grep", {{"pattern", "zzz"}}, st, b2);
  EXPECT_EQ(r.output, "Error: grep: cancelled");
  EXPECT_EQ(b2.stop(), core::BudgetStop::cancelled);
  EXPECT_EQ(soon.calls->load(), 501);  // stopped at the first poll that saw the request
}

// The simulated slow tool (test hook) waits under the budget like real work.
TEST_F(Tools, SimulatedLatencyHonoursTheBudget) {
  st.simulated_latency = std::chrono::hours(1);
  core::Budget short_budget(std::chrono::milliseconds(20));
  auto r = run_builtin_tool("ls", json::object(), st, short_budget);
  EXPECT_EQ(r.output, "Error: ls: exceeded its time budget of 20 ms");
  CountingCancel cancel(3);
  auto b = cancel.budget();
  EXPECT_EQ(run_builtin_tool("ls", json::object(), st, b).output, "Error: ls: cancelled");
}
