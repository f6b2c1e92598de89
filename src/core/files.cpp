// The workflow file model: line model and rules (files.hpp, docs/files.md).
#include "core/files.hpp"

#include "core/util.hpp"

namespace core::files {

std::string normalize_newlines(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\r') {
      out += text[i];
      continue;
    }
    out += '\n';
    if (i + 1 < text.size() && text[i + 1] == '\n') ++i;  // CRLF is one break
  }
  return out;
}

std::vector<std::string> split_lines(std::string_view text) {
  const bool has_cr = text.find('\r') != std::string_view::npos;
  const std::string normalised = has_cr ? normalize_newlines(text) : std::string();
  const std::string_view t = has_cr ? std::string_view(normalised) : text;
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const auto pos = t.find('\n', start);
    if (pos == std::string_view::npos) {
      out.emplace_back(t.substr(start));
      return out;
    }
    out.emplace_back(t.substr(start, pos - start));
    start = pos + 1;
  }
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  out.reserve(text_bytes(lines));
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i) out += '\n';
    out += lines[i];
  }
  return out;
}

bool is_canonical(const std::vector<std::string>& lines) {
  if (lines.empty()) return false;
  for (const auto& l : lines) {
    // Two single-character searches (memchr each): find_first_of with a set of two tests
    // every byte against the set, which was a visible cost of reading stored files.
    if (l.find('\n') != std::string::npos || l.find('\r') != std::string::npos) return false;
  }
  return true;
}

std::vector<std::string> normalize_lines(const std::vector<std::string>& lines) {
  if (is_canonical(lines)) return lines;
  return split_lines(join_lines(lines));
}

std::size_t text_bytes(const std::vector<std::string>& lines) {
  std::size_t n = lines.empty() ? 0 : lines.size() - 1;
  for (const auto& l : lines) n += l.size();
  return n;
}

bool ends_with_newline(const std::vector<std::string>& lines) { return lines.size() > 1 && lines.back().empty(); }

std::string check_path(std::string_view path, const Limits& limits) {
  if (path.empty()) return "file path is empty; give an absolute path such as /THE_SPEC/plan.md";
  if (path.front() != '/') return "file path must be absolute (start with '/'): " + std::string(path);
  if (path.size() > limits.max_path_bytes)
    return "file path is " + std::to_string(path.size()) + " bytes; the limit is " +
           std::to_string(limits.max_path_bytes) + " bytes";
  for (const char ch : path) {
    const unsigned char c = static_cast<unsigned char>(ch);
    if (c == 0) return "file path contains a NUL character";
    if (c < 0x20 || c == 0x7f) return "file path contains a control character";
    if (c == '\\') return "file path contains a backslash; separate segments with '/': " + std::string(path);
  }
  if (!is_valid_utf8(path)) return "file path is not valid UTF-8";
  if (path.size() > 1 && path.back() == '/') return "file path must name a file, not end with '/': " + std::string(path);
  if (path == "/") return "file path must name a file, not '/'";
  for (std::size_t start = 1; start <= path.size();) {
    auto end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const auto seg = path.substr(start, end - start);
    if (seg.empty() || seg == "." || seg == "..")
      return "file path has an empty, '.' or '..' segment: " + std::string(path);
    start = end + 1;
  }
  return "";
}

std::string check_content(const std::vector<std::string>& lines, const Limits& limits) {
  const std::size_t bytes = text_bytes(lines);
  if (bytes > limits.max_file_bytes)
    return "file is " + std::to_string(bytes) + " bytes; the limit is " + std::to_string(limits.max_file_bytes) +
           " bytes per file";
  for (std::size_t i = 0; i < lines.size(); ++i)
    if (lines[i].find('\0') != std::string::npos)
      return "line " + std::to_string(i + 1) + " contains a NUL character (text files cannot hold NUL)";
  return "";
}

std::string check_totals(std::size_t files, std::size_t total_bytes, const Limits& limits) {
  if (files > limits.max_files)
    return std::to_string(files) + " files; the limit is " + std::to_string(limits.max_files) + " files";
  if (total_bytes > limits.max_total_bytes)
    return std::to_string(total_bytes) + " bytes of text in all files; the limit is " +
           std::to_string(limits.max_total_bytes) + " bytes";
  return "";
}

}  // namespace core::files
