#include "spec_engine/tools/builtin.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <thread>

#include "spec_engine/tools/glob.hpp"

namespace spec_engine::tools {

using nlohmann::json;

const std::vector<std::string>& builtin_tool_names() {
  static const std::vector<std::string> names = {"write_todos", "ls",   "read_file", "write_file",
                                                 "edit_file",   "glob", "grep",      "task"};
  return names;
}

bool is_builtin_tool(const std::string& name) {
  const auto& n = builtin_tool_names();
  return std::find(n.begin(), n.end(), name) != n.end();
}

namespace {

ToolResult fail(std::string msg) { return ToolResult{std::move(msg), true, false}; }

/// The result of a call whose budget stopped it.
ToolResult stopped(const std::string& tool, const core::Budget& budget) {
  if (budget.stop() == core::BudgetStop::cancelled) return fail("Error: " + tool + ": cancelled");
  return fail("Error: " + tool + ": exceeded its time budget of " + std::to_string(budget.limit_ms()) + " ms");
}

/// Position of `needle` in `hay` at or after `from`, or npos. glibc's memmem runs the
/// Two-Way algorithm (Crochemore-Perrin, linear time) for needles over 256 bytes and a
/// shift-table scan for shorter ones, so one search costs O(haystack) for long needles
/// and at most O(haystack x 256) otherwise; std::string::find is O(haystack x needle) on
/// inputs like "aaa...a" / "aa...ab", which with 1 MiB of each is beyond any budget.
std::size_t find_literal(std::string_view hay, std::string_view needle, std::size_t from = 0) {
  if (from > hay.size() || needle.size() > hay.size() - from) return std::string_view::npos;
  if (needle.empty()) return from;
  const void* p = ::memmem(hay.data() + from, hay.size() - from, needle.data(), needle.size());
  return p ? static_cast<std::size_t>(static_cast<const char*>(p) - hay.data()) : std::string_view::npos;
}

/// Validates a glob pattern argument; "" when fine, else the error for the model.
std::string check_glob(const std::string& tool, const char* key, const std::string& pattern) {
  if (pattern.empty() || pattern.size() > kMaxGlobPatternBytes) {
    return "Error: " + tool + ": " + key + " must be 1.." + std::to_string(kMaxGlobPatternBytes) + " characters";
  }
  if (pattern.find('\0') != std::string::npos) return "Error: " + tool + ": " + key + " contains a NUL byte";
  return "";
}

// Argument accessors: set `err` and return nullopt on a missing/wrong-typed field.
struct Args {
  const std::string& tool;
  const json& a;
  std::string err;

  std::optional<std::string> str(const char* key, bool required) {
    if (!a.contains(key) || a[key].is_null()) {
      if (required) err = "Error: " + tool + ": missing required argument '" + key + "' (string)";
      return std::nullopt;
    }
    if (!a[key].is_string()) {
      err = "Error: " + tool + ": argument '" + key + "' must be a string, got " + a[key].type_name();
      return std::nullopt;
    }
    return a[key].get<std::string>();
  }
  // Optional non-negative integer; accepts integral floats (some models send 10.0).
  std::optional<long long> integer(const char* key, long long dflt) {
    if (!a.contains(key) || a[key].is_null()) return dflt;
    const auto& v = a[key];
    long long n = 0;
    if (v.is_number_integer()) {
      n = v.get<long long>();
    } else if (const double d = v.is_number_float() ? v.get<double>() : 0.5;
               d == std::floor(d) && d > -9.2e18 && d < 9.2e18) {  // integral and within long long
      n = static_cast<long long>(d);
    } else {
      err = "Error: " + tool + ": argument '" + key + "' must be a non-negative integer";
      return std::nullopt;
    }
    if (n < 0) {
      err = "Error: " + tool + ": argument '" + key + "' must be a non-negative integer";
      return std::nullopt;
    }
    return n;
  }
  std::optional<bool> boolean(const char* key, bool dflt) {
    if (!a.contains(key) || a[key].is_null()) return dflt;
    if (!a[key].is_boolean()) {
      err = "Error: " + tool + ": argument '" + key + "' must be a boolean";
      return std::nullopt;
    }
    return a[key].get<bool>();
  }
};

std::optional<std::string> path_arg(Args& args, const char* key, bool required, std::string dflt = "/") {
  auto raw = args.str(key, required);
  if (!raw) {
    if (!args.err.empty()) return std::nullopt;
    return dflt;
  }
  std::string perr;
  auto p = normalize_path(*raw, perr);
  if (!p) args.err = perr;
  return p;
}

// Lines [offset, offset + limit) in cat -n form; nullopt when the budget stopped it.
std::optional<std::string> numbered(const File& f, std::size_t offset, std::size_t limit, core::Budget& budget) {
  std::string out;
  std::size_t end = std::min(f.lines.size(), offset + limit);
  char num[32];
  for (std::size_t i = offset; i < end; ++i) {
    if (budget.exhausted(f.lines[i].size() + 8)) return std::nullopt;
    std::snprintf(num, sizeof num, "%6zu\t", i + 1);
    out += num;
    const auto& l = f.lines[i];
    out += l.size() > kMaxLineChars ? l.substr(0, kMaxLineChars) : l;
    if (i + 1 < end) out += '\n';
  }
  return out;
}

bool under(const std::string& path, const std::string& dir) {
  if (dir == "/") return true;
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/');
}

ToolResult do_ls(Args& args, ToolState& st, core::Budget& budget) {
  auto dir = path_arg(args, "path", false);
  if (!dir) return fail(args.err);
  std::vector<std::string> entries;
  for (const auto& [p, f] : st.files.files()) {
    if (budget.exhausted(p.size())) return stopped(args.tool, budget);
    if (p == *dir) {  // ls of a file lists the file itself
      entries.push_back(p);
      continue;
    }
    if (!under(p, *dir)) continue;
    std::size_t base = *dir == "/" ? 1 : dir->size() + 1;
    auto slash = p.find('/', base);
    std::string entry = slash == std::string::npos ? p : p.substr(0, slash + 1);
    if (entries.empty() || entries.back() != entry) entries.push_back(entry);
  }
  if (entries.empty()) return {"No files found in " + *dir, false, false};
  std::string out;
  for (const auto& e : entries) {
    if (!out.empty()) out += '\n';
    out += e;
  }
  return {out, false, false};
}

ToolResult do_read(Args& args, ToolState& st, core::Budget& budget) {
  auto path = path_arg(args, "file_path", true);
  if (!path) return fail(args.err);
  auto offset = args.integer("offset", 0);
  if (!offset) return fail(args.err);
  auto limit = args.integer("limit", kDefaultReadLimit);
  if (!limit) return fail(args.err);
  if (*limit == 0) return fail("Error: read_file: argument 'limit' must be at least 1 (lines to read)");
  const File* f = st.files.find(*path);
  if (!f) return fail("Error: File '" + *path + "' not found");
  if (f->bytes() == 0) return {"System reminder: File exists but has empty contents", false, false};
  if (static_cast<std::size_t>(*offset) >= f->lines.size()) {
    return fail("Error: Line offset " + std::to_string(*offset) + " exceeds file length (" +
                std::to_string(f->lines.size()) + " lines)");
  }
  auto text = numbered(*f, static_cast<std::size_t>(*offset), static_cast<std::size_t>(*limit), budget);
  if (!text) return stopped(args.tool, budget);
  return {std::move(*text), false, false};
}

ToolResult do_write(Args& args, ToolState& st) {
  auto path = path_arg(args, "file_path", true);
  if (!path) return fail(args.err);
  auto content = args.str("content", true);
  if (!content) return fail(args.err);
  if (*path == "/") return fail("Error: write_file: file_path must name a file, not '/'");
  bool existed = st.files.find(*path) != nullptr;
  auto e = st.files.put(*path, *content);
  if (!e.empty()) return fail(e);
  return {(existed ? "Updated file " : "Created file ") + *path, false, true};
}

// Non-overlapping occurrences of a non-empty `needle`; nullopt when the budget stopped it.
std::optional<std::size_t> count_occurrences(std::string_view hay, std::string_view needle, core::Budget& budget) {
  std::size_t n = 0;
  std::size_t from = 0;
  for (auto pos = find_literal(hay, needle); pos != std::string_view::npos; pos = find_literal(hay, needle, from)) {
    if (budget.exhausted(pos + needle.size() - from)) return std::nullopt;
    from = pos + needle.size();
    ++n;
  }
  return n;
}

ToolResult do_edit(Args& args, ToolState& st, core::Budget& budget) {
  auto path = path_arg(args, "file_path", true);
  if (!path) return fail(args.err);
  auto olds = args.str("old_string", true);
  if (!olds) return fail(args.err);
  auto news = args.str("new_string", true);
  if (!news) return fail(args.err);
  auto all = args.boolean("replace_all", false);
  if (!all) return fail(args.err);
  const File* f = st.files.find(*path);
  if (!f) return fail("Error: File '" + *path + "' not found");
  if (olds->empty()) return fail("Error: edit_file: old_string must not be empty");
  // Files hold LF line breaks only (core/files.hpp): match and replace in the same model.
  *olds = core::files::normalize_newlines(*olds);
  *news = core::files::normalize_newlines(*news);
  std::string text = f->text();
  auto counted = count_occurrences(text, *olds, budget);
  if (!counted) return stopped(args.tool, budget);
  std::size_t n = *counted;
  if (n == 0) return fail("Error: String not found in file: '" + *olds + "'");
  if (n > 1 && !*all) {
    return fail("Error: String '" + *olds + "' appears " + std::to_string(n) +
                " times in file. Use replace_all=true to replace all instances, or provide a more "
                "specific string with surrounding context.");
  }
  std::string out;
  std::size_t start = 0;
  for (auto pos = find_literal(text, *olds); pos != std::string::npos; pos = find_literal(text, *olds, start)) {
    if (budget.exhausted(pos + olds->size() - start + news->size())) return stopped(args.tool, budget);
    out.append(text, start, pos - start);
    out += *news;
    start = pos + olds->size();
  }
  out.append(text, start, std::string::npos);
  auto e = st.files.put(*path, out);
  if (!e.empty()) return fail(e);
  return {"Successfully replaced " + std::to_string(n) + " instance(s) of the string in '" + *path + "'",
          false, true};
}

ToolResult do_glob(Args& args, ToolState& st, core::Budget& budget) {
  auto pattern = args.str("pattern", true);
  if (!pattern) return fail(args.err);
  if (auto e = check_glob(args.tool, "pattern", *pattern); !e.empty()) return fail(e);
  const GlobPattern glob(*pattern);
  std::string out;
  for (const auto& [p, f] : st.files.files()) {
    std::size_t steps = 0;
    const bool hit = glob.matches(p, &steps);
    if (budget.exhausted(steps)) return stopped(args.tool, budget);
    if (hit) {
      if (!out.empty()) out += '\n';
      out += p;
    }
  }
  if (out.empty()) return {"No files found matching pattern '" + *pattern + "'", false, false};
  return {out, false, false};
}

ToolResult do_grep(Args& args, ToolState& st, core::Budget& budget) {
  auto pattern = args.str("pattern", true);
  if (!pattern) return fail(args.err);
  if (pattern->empty()) return fail("Error: grep: pattern must not be empty");
  auto dir = path_arg(args, "path", false);
  if (!dir) return fail(args.err);
  auto filter = args.str("glob", false);
  if (!filter && !args.err.empty()) return fail(args.err);
  if (filter) {
    if (auto e = check_glob(args.tool, "glob", *filter); !e.empty()) return fail(e);
  }
  // A filter like "*.md" matches at any depth: the pattern itself or "**/" + pattern.
  const std::optional<GlobPattern> anchored = filter ? std::optional<GlobPattern>(*filter) : std::nullopt;
  const std::optional<GlobPattern> anywhere = filter ? std::optional<GlobPattern>("**/" + *filter) : std::nullopt;
  std::string out;
  std::size_t matches = 0;
  for (const auto& [p, f] : st.files.files()) {
    if (budget.exhausted(p.size())) return stopped(args.tool, budget);
    if (!under(p, *dir)) continue;
    if (filter) {
      std::size_t steps = 0;
      const bool hit = anchored->matches(p, &steps) || anywhere->matches(p, &steps);
      if (budget.exhausted(steps)) return stopped(args.tool, budget);
      if (!hit) continue;
    }
    for (std::size_t i = 0; i < f.lines.size(); ++i) {
      if (budget.exhausted(f.lines[i].size() + 1)) return stopped(args.tool, budget);
      if (find_literal(f.lines[i], *pattern) == std::string_view::npos) continue;
      if (matches == kMaxGrepMatches) {
        out += "\n... (stopped after " + std::to_string(kMaxGrepMatches) + " matches)";
        return {out, false, false};
      }
      if (!out.empty()) out += '\n';
      const auto& l = f.lines[i];
      out += p + ":" + std::to_string(i + 1) + ": " + (l.size() > kMaxLineChars ? l.substr(0, kMaxLineChars) : l);
      ++matches;
    }
  }
  if (out.empty()) return {"No matches found for '" + *pattern + "'", false, false};
  return {out, false, false};
}

ToolResult do_todos(Args& args, ToolState& st) {
  if (!args.a.contains("todos")) return fail("Error: write_todos: missing required argument 'todos' (list)");
  const auto& todos = args.a["todos"];
  if (!todos.is_array()) return fail("Error: write_todos: argument 'todos' must be a list");
  if (todos.size() > 200) return fail("Error: write_todos: at most 200 todos");
  json out = json::array();
  for (std::size_t i = 0; i < todos.size(); ++i) {
    const auto& t = todos[i];
    std::string where = "Error: write_todos: todos[" + std::to_string(i) + "]";
    if (!t.is_object()) return fail(where + " must be an object {content, status}");
    if (!t.contains("content") || !t["content"].is_string()) return fail(where + ".content must be a string");
    if (!t.contains("status") || !t["status"].is_string()) return fail(where + ".status must be a string");
    auto s = t["status"].get<std::string>();
    if (s != "pending" && s != "in_progress" && s != "completed") {
      return fail(where + ".status must be one of pending, in_progress, completed (got '" + s + "')");
    }
    out.push_back({{"content", t["content"]}, {"status", s}});
  }
  st.todos = out;
  // Replacement characters for ill-formed UTF-8: a strict dump would throw on it, and nothing
  // here may throw for model input.
  return {"Updated todo list to " + out.dump(-1, ' ', false, json::error_handler_t::replace), false, false};
}

}  // namespace

ToolResult run_builtin_tool(const std::string& name, const json& args, ToolState& state, core::Budget& budget) {
  if (!args.is_object()) return fail("Error: " + name + ": arguments must be a JSON object");
  if (!is_builtin_tool(name) || name == "task") return fail("Error: unknown tool '" + name + "'");
  if (state.simulated_latency.count() > 0) {
    const auto until = std::chrono::steady_clock::now() + state.simulated_latency;
    for (auto now = std::chrono::steady_clock::now(); now < until; now = std::chrono::steady_clock::now()) {
      if (budget.check_now()) return stopped(name, budget);
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(until - now, std::chrono::milliseconds(5)));
    }
  }
  if (budget.check_now()) return stopped(name, budget);
  Args a{name, args, {}};
  if (name == "ls") return do_ls(a, state, budget);
  if (name == "read_file") return do_read(a, state, budget);
  if (name == "write_file") return do_write(a, state);
  if (name == "edit_file") return do_edit(a, state, budget);
  if (name == "glob") return do_glob(a, state, budget);
  if (name == "grep") return do_grep(a, state, budget);
  return do_todos(a, state);
}

ToolResult run_builtin_tool(const std::string& name, const json& args, ToolState& state) {
  core::Budget unlimited;
  return run_builtin_tool(name, args, state, unlimited);
}

std::string check_task_args(const json& args, const std::vector<std::string>& allowed) {
  if (!args.is_object()) return "Error: task: arguments must be a JSON object";
  if (!args.contains("description") || !args["description"].is_string() ||
      args["description"].get_ref<const std::string&>().empty()) {
    return "Error: task: missing required argument 'description' (non-empty string)";
  }
  if (!args.contains("subagent_type") || !args["subagent_type"].is_string()) {
    return "Error: task: missing required argument 'subagent_type' (string)";
  }
  auto t = args["subagent_type"].get<std::string>();
  if (std::find(allowed.begin(), allowed.end(), t) == allowed.end()) {
    std::string list;
    for (const auto& s : allowed) list += (list.empty() ? "" : ", ") + s;
    return "Error: task: invalid subagent_type '" + t + "'; allowed: " + (list.empty() ? "(none)" : list);
  }
  return "";
}

json tool_schema(const std::string& name, const std::vector<std::string>& subagents) {
  auto fn = [](const std::string& n, const std::string& desc, json props, json required) {
    return json{{"type", "function"},
                {"function",
                 {{"name", n},
                  {"description", desc},
                  {"parameters",
                   {{"type", "object"}, {"properties", std::move(props)}, {"required", std::move(required)}}}}}};
  };
  auto str = [](const std::string& d) { return json{{"type", "string"}, {"description", d}}; };
  if (name == "ls") {
    return fn(name, "List the files and directories directly under a directory of the virtual file system.",
              {{"path", str("Absolute directory path; defaults to '/'.")}}, json::array());
  }
  if (name == "read_file") {
    return fn(name,
              "Read a file. Returns numbered lines (cat -n format). Use offset/limit for long files.",
              {{"file_path", str("Absolute path of the file, e.g. /docs/spec.md")},
               {"offset", {{"type", "integer"}, {"minimum", 0}, {"description", "0-based first line (default 0)"}}},
               {"limit", {{"type", "integer"}, {"minimum", 1}, {"description", "Max lines (default 2000)"}}}},
              {"file_path"});
  }
  if (name == "write_file") {
    return fn(name, "Create a file (or replace its whole content).",
              {{"file_path", str("Absolute path of the file")}, {"content", str("Full file content")}},
              {"file_path", "content"});
  }
  if (name == "edit_file") {
    return fn(name,
              "Replace an exact string in a file. old_string must occur exactly once unless replace_all is true.",
              {{"file_path", str("Absolute path of the file")},
               {"old_string", str("Exact text to replace")},
               {"new_string", str("Replacement text")},
               {"replace_all", {{"type", "boolean"}, {"description", "Replace every occurrence (default false)"}}}},
              {"file_path", "old_string", "new_string"});
  }
  if (name == "glob") {
    return fn(name, "Find files by glob pattern: * within a path segment, ** across segments, ? one character.",
              {{"pattern", str("Glob pattern, e.g. /docs/**/*.md")}}, {"pattern"});
  }
  if (name == "grep") {
    return fn(name, "Search file contents for a literal string. Returns 'path:line: text' for each match.",
              {{"pattern", str("Literal text to search for (not a regular expression)")},
               {"path", str("Directory or file to search (default '/')")},
               {"glob", str("Only search files matching this glob, e.g. *.md")}},
              {"pattern"});
  }
  if (name == "write_todos") {
    return fn(name, "Replace the todo list used to plan and track this task.",
              {{"todos",
                {{"type", "array"},
                 {"items",
                  {{"type", "object"},
                   {"properties",
                    {{"content", {{"type", "string"}}},
                     {"status", {{"type", "string"}, {"enum", {"pending", "in_progress", "completed"}}}}}},
                   {"required", {"content", "status"}}}}}}},
              {"todos"});
  }
  if (name == "task") {
    json type = str("Which sub-agent runs the task");
    type["enum"] = subagents;
    return fn(name,
              "Delegate a task to a sub-agent. It works on the same files and returns its final answer.",
              {{"description", str("Complete, self-contained description of the task")}, {"subagent_type", type}},
              {"description", "subagent_type"});
  }
  throw std::invalid_argument("tool_schema: unknown tool " + name);
}

}  // namespace spec_engine::tools
