#include "spec_engine/tools/vfs.hpp"

#include "core/util.hpp"

namespace spec_engine::tools {

std::string File::text() const {
  std::string out;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i) out += '\n';
    out += lines[i];
  }
  return out;
}

std::size_t File::bytes() const {
  std::size_t n = lines.empty() ? 0 : lines.size() - 1;
  for (const auto& l : lines) n += l.size();
  return n;
}

std::vector<std::string> split_lines(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    auto pos = text.find('\n', start);
    if (pos == std::string_view::npos) {
      out.emplace_back(text.substr(start));
      return out;
    }
    out.emplace_back(text.substr(start, pos - start));
    start = pos + 1;
  }
}

std::optional<std::string> normalize_path(std::string_view path, std::string& error,
                                          std::size_t max_bytes) {
  if (path.empty()) {
    error = "Error: path must not be empty";
    return std::nullopt;
  }
  if (path.size() > max_bytes) {
    error = "Error: path is longer than " + std::to_string(max_bytes) + " bytes";
    return std::nullopt;
  }
  for (unsigned char c : path) {
    if (c == 0) {
      error = "Error: path contains a NUL byte";
      return std::nullopt;
    }
    if (c < 0x20 || c == 0x7f) {
      error = "Error: path contains a control character";
      return std::nullopt;
    }
    if (c == '\\') {
      error = "Error: path contains a backslash; use '/' separated absolute paths like /docs/spec.md";
      return std::nullopt;
    }
  }
  if (path.front() == '~') {
    error = "Error: path must be absolute inside the virtual file system (no '~'): " + std::string(path);
    return std::nullopt;
  }
  std::vector<std::string_view> segs;
  std::size_t i = 0;
  while (i <= path.size()) {
    auto j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    auto seg = path.substr(i, j - i);
    if (seg == "..") {
      error = "Error: path traversal ('..') is not allowed: " + std::string(path);
      return std::nullopt;
    }
    if (!seg.empty() && seg != ".") segs.push_back(seg);
    i = j + 1;
  }
  std::string out;
  for (auto s : segs) {
    out += '/';
    out += s;
  }
  if (out.empty()) out = "/";
  return out;
}

std::vector<std::pair<std::string, std::string>> FileSystem::load(const nlohmann::json& files,
                                                                  const std::string& prefix) {
  std::vector<std::pair<std::string, std::string>> errs;
  if (files.is_null()) return errs;
  if (!files.is_object()) {
    errs.emplace_back(prefix, "must be an object mapping absolute paths to files");
    return errs;
  }
  FileSystem staged(limits_);
  for (auto it = files.begin(); it != files.end(); ++it) {
    std::string field = prefix + "[\"" + it.key() + "\"]";
    std::string perr;
    auto p = normalize_path(it.key(), perr, limits_.max_path_bytes);
    if (!p || *p == "/") {
      errs.emplace_back(field, p ? "path must name a file" : perr.substr(7));
      continue;
    }
    const auto& v = it.value();
    std::string text;
    std::string created, modified;
    const nlohmann::json* content = nullptr;
    if (v.is_string()) {
      content = &v;
    } else if (v.is_object() && v.contains("content")) {
      content = &v["content"];
      if (v.contains("created_at") && v["created_at"].is_string()) created = v["created_at"];
      if (v.contains("modified_at") && v["modified_at"].is_string()) modified = v["modified_at"];
    } else {
      errs.emplace_back(field, "must be {\"content\": [lines] or string}");
      continue;
    }
    if (content->is_string()) {
      text = content->get<std::string>();
    } else if (content->is_array()) {
      bool ok = true;
      for (std::size_t k = 0; k < content->size(); ++k) {
        if (!(*content)[k].is_string()) {
          errs.emplace_back(field + ".content[" + std::to_string(k) + "]", "must be a string");
          ok = false;
          break;
        }
        if (k) text += '\n';
        text += (*content)[k].get_ref<const std::string&>();
      }
      if (!ok) continue;
    } else {
      errs.emplace_back(field + ".content", "must be a list of lines or a string");
      continue;
    }
    auto e = staged.put(*p, text);
    if (!e.empty()) {
      errs.emplace_back(field, e.rfind("Error: ", 0) == 0 ? e.substr(7) : e);
      continue;
    }
    auto& f = staged.files_[*p];
    if (!created.empty()) f.created_at = created;
    if (!modified.empty()) f.modified_at = modified;
  }
  if (errs.empty()) {
    files_ = std::move(staged.files_);
    total_bytes_ = staged.total_bytes_;
    ++version_;
  }
  return errs;
}

nlohmann::json FileSystem::to_json() const {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [path, f] : files_) {
    out[path] = {{"content", f.lines}, {"created_at", f.created_at}, {"modified_at", f.modified_at}};
  }
  return out;
}

const File* FileSystem::find(const std::string& path) const {
  auto it = files_.find(path);
  return it == files_.end() ? nullptr : &it->second;
}

std::string FileSystem::put(const std::string& path, std::string_view content) {
  if (content.size() > limits_.max_file_bytes) {
    return "Error: content of " + path + " is " + std::to_string(content.size()) +
           " bytes; the limit is " + std::to_string(limits_.max_file_bytes) + " bytes per file";
  }
  if (content.find('\0') != std::string_view::npos) {
    return "Error: content of " + path + " contains a NUL byte";
  }
  auto it = files_.find(path);
  std::size_t old = it == files_.end() ? 0 : it->second.bytes();
  if (it == files_.end() && files_.size() >= limits_.max_files) {
    return "Error: cannot create " + path + ": the file system already holds the maximum of " +
           std::to_string(limits_.max_files) + " files";
  }
  if (total_bytes_ - old + content.size() > limits_.max_total_bytes) {
    return "Error: cannot write " + path + ": total file size would exceed " +
           std::to_string(limits_.max_total_bytes) + " bytes";
  }
  auto now = core::now_rfc3339();
  if (it == files_.end()) {
    it = files_.emplace(path, File{{}, now, now}).first;
  } else {
    it->second.modified_at = now;
  }
  it->second.lines = split_lines(content);
  total_bytes_ = total_bytes_ - old + content.size();
  ++version_;
  return "";
}

}  // namespace spec_engine::tools
