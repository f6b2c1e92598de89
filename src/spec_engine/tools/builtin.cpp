#include "spec_engine/tools/builtin.hpp"

#include <algorithm>
#include <cstdio>
#include <optional>
#include <stdexcept>

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
    } else if (v.is_number_float() && v.get<double>() == static_cast<double>(static_cast<long long>(v.get<double>()))) {
      n = static_cast<long long>(v.get<double>());
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

std::string numbered(const File& f, std::size_t offset, std::size_t limit) {
  std::string out;
  std::size_t end = std::min(f.lines.size(), offset + limit);
  char num[32];
  for (std::size_t i = offset; i < end; ++i) {
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

ToolResult do_ls(Args& args, ToolState& st) {
  auto dir = path_arg(args, "path", false);
  if (!dir) return fail(args.err);
  std::vector<std::string> entries;
  for (const auto& [p, f] : st.files.files()) {
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

ToolResult do_read(Args& args, ToolState& st) {
  auto path = path_arg(args, "file_path", true);
  if (!path) return fail(args.err);
  auto offset = args.integer("offset", 0);
  if (!offset) return fail(args.err);
  auto limit = args.integer("limit", kDefaultReadLimit);
  if (!limit) return fail(args.err);
  const File* f = st.files.find(*path);
  if (!f) return fail("Error: File '" + *path + "' not found");
  if (f->bytes() == 0) return {"System reminder: File exists but has empty contents", false, false};
  if (static_cast<std::size_t>(*offset) >= f->lines.size()) {
    return fail("Error: Line offset " + std::to_string(*offset) + " exceeds file length (" +
                std::to_string(f->lines.size()) + " lines)");
  }
  return {numbered(*f, static_cast<std::size_t>(*offset), static_cast<std::size_t>(*limit)), false, false};
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

std::size_t count_occurrences(const std::string& hay, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + needle.size())) ++n;
  return n;
}

ToolResult do_edit(Args& args, ToolState& st) {
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
  std::string text = f->text();
  std::size_t n = count_occurrences(text, *olds);
  if (n == 0) return fail("Error: String not found in file: '" + *olds + "'");
  if (n > 1 && !*all) {
    return fail("Error: String '" + *olds + "' appears " + std::to_string(n) +
                " times in file. Use replace_all=true to replace all instances, or provide a more "
                "specific string with surrounding context.");
  }
  std::string out;
  std::size_t start = 0;
  for (auto pos = text.find(*olds); pos != std::string::npos; pos = text.find(*olds, start)) {
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

ToolResult do_glob(Args& args, ToolState& st) {
  auto pattern = args.str("pattern", true);
  if (!pattern) return fail(args.err);
  if (pattern->empty() || pattern->size() > 512) return fail("Error: glob: pattern must be 1..512 characters");
  if (pattern->find('\0') != std::string::npos) return fail("Error: glob: pattern contains a NUL byte");
  if (std::count(pattern->begin(), pattern->end(), '*') > kMaxGlobStars) {
    return fail("Error: glob: at most " + std::to_string(kMaxGlobStars) + " '*' in a pattern");
  }
  std::string out;
  for (const auto& [p, f] : st.files.files()) {
    if (glob_match(*pattern, p)) {
      if (!out.empty()) out += '\n';
      out += p;
    }
  }
  if (out.empty()) return {"No files found matching pattern '" + *pattern + "'", false, false};
  return {out, false, false};
}

ToolResult do_grep(Args& args, ToolState& st) {
  auto pattern = args.str("pattern", true);
  if (!pattern) return fail(args.err);
  if (pattern->empty()) return fail("Error: grep: pattern must not be empty");
  auto dir = path_arg(args, "path", false);
  if (!dir) return fail(args.err);
  auto filter = args.str("glob", false);
  if (!filter && !args.err.empty()) return fail(args.err);
  if (filter && std::count(filter->begin(), filter->end(), '*') > kMaxGlobStars) {
    return fail("Error: grep: at most " + std::to_string(kMaxGlobStars) + " '*' in glob");
  }
  std::string out;
  std::size_t matches = 0;
  for (const auto& [p, f] : st.files.files()) {
    if (!under(p, *dir)) continue;
    if (filter && !glob_match(*filter, p) && !glob_match("**/" + *filter, p)) continue;
    for (std::size_t i = 0; i < f.lines.size(); ++i) {
      if (f.lines[i].find(*pattern) == std::string::npos) continue;
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
  return {"Updated todo list to " + out.dump(), false, false};
}

}  // namespace

ToolResult run_builtin_tool(const std::string& name, const json& args, ToolState& state) {
  if (!args.is_object()) return fail("Error: " + name + ": arguments must be a JSON object");
  Args a{name, args, {}};
  if (name == "ls") return do_ls(a, state);
  if (name == "read_file") return do_read(a, state);
  if (name == "write_file") return do_write(a, state);
  if (name == "edit_file") return do_edit(a, state);
  if (name == "glob") return do_glob(a, state);
  if (name == "grep") return do_grep(a, state);
  if (name == "write_todos") return do_todos(a, state);
  return fail("Error: unknown tool '" + name + "'");
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
               {"limit", {{"type", "integer"}, {"minimum", 0}, {"description", "Max lines (default 2000)"}}}},
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
