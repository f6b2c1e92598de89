// The engine's built-in file tools as a model drives them: spec_engine::tools::
// run_builtin_tool (src/spec_engine/tools/builtin.hpp) over the run's virtual file system
// (tools/vfs.hpp) — ls, read_file, write_file, edit_file, glob, grep, write_todos — with
// small limits so the size rules are reached. Properties: nothing throws; a result is an
// "Error: ..." exactly when flagged as an error, and an error changes no file; edit_file
// produces what a plain find-and-replace of its (newline-normalised) strings produces;
// the file system keeps its invariants (valid paths, canonical lines, limits, totals).
// Input: a sequence of tool calls decoded with FuzzedDataProvider (a tool, then its
// arguments as strings, integers and booleans; sometimes the raw arguments as JSON text).
#include <fuzzer/FuzzedDataProvider.h>

#include "core/files.hpp"
#include "core/json_parse.hpp"
#include "fuzz_common.hpp"
#include "spec_engine/tools/builtin.hpp"

namespace {

using nlohmann::json;
using spec_engine::tools::FileSystem;
using spec_engine::tools::ToolResult;

const char* const kTools[] = {"ls", "read_file", "write_file", "edit_file", "glob", "grep", "write_todos", "task", "nope"};
const char* const kPaths[] = {"/THE_SPEC/plan.md", "THE_SPEC/plan.md", "/THE_CAST/Writer.md", "/definition.json",
                              "/a//b/./c.md", "/x/../y", "/", "~/x", "/new.md"};

std::string path_value(FuzzedDataProvider& in) {
  if (in.ConsumeBool()) return kPaths[in.ConsumeIntegralInRange<std::size_t>(0, std::size(kPaths) - 1)];
  return in.ConsumeRandomLengthString(80);
}

json args_for(const std::string& tool, FuzzedDataProvider& in) {
  if (in.ConsumeIntegralInRange<int>(0, 7) == 0) {  // raw arguments, as a model might send anything
    return core::json::parse_or_null(in.ConsumeRandomLengthString(400)).value_or(json());
  }
  json a = json::object();
  if (tool == "ls" || tool == "grep") {
    if (in.ConsumeBool()) a["path"] = path_value(in);
  }
  if (tool == "read_file" || tool == "write_file" || tool == "edit_file") a["file_path"] = path_value(in);
  if (tool == "read_file") {
    if (in.ConsumeBool()) a["offset"] = in.ConsumeIntegralInRange<long long>(-2, 40);
    if (in.ConsumeBool()) a["limit"] = in.ConsumeIntegralInRange<long long>(-2, 40);
  }
  if (tool == "write_file") a["content"] = in.ConsumeRandomLengthString(600);
  if (tool == "edit_file") {
    a["old_string"] = in.ConsumeRandomLengthString(40);
    a["new_string"] = in.ConsumeRandomLengthString(80);
    if (in.ConsumeBool()) a["replace_all"] = in.ConsumeBool();
  }
  if (tool == "glob" || tool == "grep") a["pattern"] = in.ConsumeRandomLengthString(40);
  if (tool == "grep" && in.ConsumeBool()) a["glob"] = in.ConsumeRandomLengthString(20);
  if (tool == "write_todos") {
    json todos = json::array();
    const int n = in.ConsumeIntegralInRange<int>(0, 3);
    for (int i = 0; i < n; ++i)
      todos.push_back({{"content", in.ConsumeRandomLengthString(20)},
                       {"status", in.ConsumeBool() ? "pending" : in.ConsumeRandomLengthString(12)}});
    a["todos"] = todos;
  }
  return a;
}

/// Expected text of a successful edit_file: non-overlapping occurrences, left to right.
std::string replaced(const std::string& text, const std::string& olds, const std::string& news, bool all) {
  std::string out;
  std::size_t start = 0;
  for (auto pos = text.find(olds); pos != std::string::npos; pos = text.find(olds, start)) {
    out.append(text, start, pos - start);
    out += news;
    start = pos + olds.size();
    if (!all) break;
  }
  out.append(text, start, std::string::npos);
  return out;
}

void check_invariants(const FileSystem& fs) {
  std::size_t total = 0;
  for (const auto& [path, f] : fs.files()) {
    FUZZ_CHECK(core::files::check_path(path, fs.limits()).empty(), "stored path is invalid: " + path);
    FUZZ_CHECK(core::files::is_canonical(f.lines), "stored lines are not canonical: " + path);
    FUZZ_CHECK(core::files::check_content(f.lines, fs.limits()).empty(), "stored content breaks the rules: " + path);
    total += f.bytes();
  }
  FUZZ_CHECK(core::files::check_totals(fs.files().size(), total, fs.limits()).empty(), "totals over the limits");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  spec_engine::tools::VfsLimits limits;
  limits.max_file_bytes = 2048;
  limits.max_files = 8;
  limits.max_total_bytes = 6000;
  limits.max_path_bytes = 64;
  FileSystem fs(limits);
  (void)fs.put("/THE_SPEC/plan.md", "# Plan\n\n1. Research\r\n2. Write\n");
  (void)fs.put("/THE_CAST/Writer.md", "You write.\nYou write well.\n");
  json todos = json::array();
  spec_engine::tools::ToolState state{fs, todos};

  for (int call = 0; call < 12 && in.remaining_bytes() > 0; ++call) {
    const std::string tool = kTools[in.ConsumeIntegralInRange<std::size_t>(0, std::size(kTools) - 1)];
    const json args = args_for(tool, in);
    const auto before_version = fs.version();
    const auto before = fs.files();
    const ToolResult r = spec_engine::tools::run_builtin_tool(tool, args, state);
    FUZZ_CHECK(!r.output.empty(), tool + " gave no output");
    FUZZ_CHECK(r.error == (r.output.rfind("Error:", 0) == 0), tool + ": error flag and text disagree: " + r.output);
    FUZZ_CHECK(!r.error || (fs.version() == before_version && !r.files_changed), tool + ": an error changed files");
    FUZZ_CHECK(r.files_changed == (fs.version() != before_version), tool + ": files_changed is wrong");
    if (tool == "edit_file" && !r.error) {
      std::string err;
      const auto path = spec_engine::tools::normalize_path(args["file_path"].get<std::string>(), err, limits.max_path_bytes);
      FUZZ_CHECK(path && before.count(*path) && fs.find(*path), "edit_file succeeded on a missing file");
      const std::string olds = core::files::normalize_newlines(args["old_string"].get<std::string>());
      const std::string news = core::files::normalize_newlines(args["new_string"].get<std::string>());
      const bool all = args.contains("replace_all") && args["replace_all"].is_boolean() && args["replace_all"].get<bool>();
      const std::string want = replaced(before.at(*path).text(), olds, news, all);
      FUZZ_CHECK(fs.find(*path)->text() == want, "edit_file result differs from find-and-replace");
    }
    check_invariants(fs);
    (void)json(r.output).dump(-1, ' ', false, json::error_handler_t::replace);
  }
  return 0;
}
