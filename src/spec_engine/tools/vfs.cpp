#include "spec_engine/tools/vfs.hpp"

#include "core/json_text.hpp"
#include "core/util.hpp"

namespace spec_engine::tools {

std::string File::text() const { return core::files::join_lines(lines); }

std::size_t File::bytes() const { return core::files::text_bytes(lines); }

std::optional<std::string> normalize_path(std::string_view path, std::string& error,
                                          std::size_t max_bytes) {
  if (path.empty()) {
    error = "Error: path must not be empty";
    return std::nullopt;
  }
  if (path.size() > max_bytes) {  // before any work on it
    error = "Error: path is longer than " + std::to_string(max_bytes) + " bytes";
    return std::nullopt;
  }
  if (path.front() == '~') {
    error = "Error: path must be absolute inside the virtual file system (no '~'): " + std::string(path);
    return std::nullopt;
  }
  std::string out;
  std::size_t i = 0;
  while (i <= path.size()) {
    auto j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    auto seg = path.substr(i, j - i);
    if (seg == "..") {
      error = "Error: path traversal ('..') is not allowed: " + std::string(path);
      return std::nullopt;
    }
    if (!seg.empty() && seg != ".") {
      out += '/';
      out += seg;
    }
    i = j + 1;
  }
  if (out.empty()) return std::string("/");
  core::files::Limits rules;
  rules.max_path_bytes = max_bytes;
  if (auto why = core::files::check_path(out, rules); !why.empty()) {
    error = "Error: " + why;
    return std::nullopt;
  }
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
    // Paths of a job (and of a checkpoint) are taken as given, by the orchestrator's rule:
    // canonical or refused (docs/files.md), never normalised, so "a.md" and "/a.md" cannot
    // both be sent and silently merge. Only the model's tools accept loose paths.
    if (auto why = core::files::check_path(it.key(), limits_); !why.empty()) {
      errs.emplace_back(field, why);
      continue;
    }
    const std::string& path = it.key();
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
    auto e = staged.put(path, text);
    if (!e.empty()) {
      errs.emplace_back(field, e.rfind("Error: ", 0) == 0 ? e.substr(7) : e);
      continue;
    }
    auto& f = staged.files_[path];
    if (!created.empty()) f.created_at = created;
    if (!modified.empty()) f.modified_at = modified;
  }
  if (errs.empty()) {
    files_ = std::move(staged.files_);
    entry_text_.clear();
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

std::string FileSystem::to_text() const {
  std::size_t size = 2;
  for (const auto& [path, f] : files_) {
    auto it = entry_text_.find(path);
    if (it == entry_text_.end()) {
      const nlohmann::json entry = {{"content", f.lines}, {"created_at", f.created_at}, {"modified_at", f.modified_at}};
      it = entry_text_.emplace(path, core::json::dump(entry)).first;
    }
    size += path.size() + it->second.size() + 8;  // quotes, ':' and ',' (escapes may add more)
  }
  std::string out;
  out.reserve(size);
  out += '{';
  for (const auto& [path, f] : files_) {
    if (out.size() > 1) out += ',';
    out += core::json::dump(nlohmann::json(path));
    out += ':';
    out += entry_text_.find(path)->second;
  }
  out += '}';
  return out;
}

const File* FileSystem::find(const std::string& path) const {
  auto it = files_.find(path);
  return it == files_.end() ? nullptr : &it->second;
}

std::string FileSystem::put(const std::string& path, std::string_view content) {
  if (auto why = core::files::check_path(path, limits_); !why.empty()) return "Error: cannot write " + path + ": " + why;
  if (content.size() > 2 * limits_.max_file_bytes) {  // clearly too large: refuse before splitting it
    return "Error: cannot write " + path + ": file is " + std::to_string(content.size()) + " bytes; the limit is " +
           std::to_string(limits_.max_file_bytes) + " bytes per file";
  }
  auto lines = split_lines(content);
  if (auto why = core::files::check_content(lines, limits_); !why.empty()) return "Error: cannot write " + path + ": " + why;
  const std::size_t bytes = core::files::text_bytes(lines);
  auto it = files_.find(path);
  const std::size_t old = it == files_.end() ? 0 : it->second.bytes();
  const std::size_t count = files_.size() + (it == files_.end() ? 1 : 0);
  if (auto why = core::files::check_totals(count, total_bytes_ - old + bytes, limits_); !why.empty()) {
    return "Error: cannot write " + path + ": the virtual file system would hold " + why;
  }
  auto now = core::now_rfc3339();
  if (it == files_.end()) {
    it = files_.emplace(path, File{{}, now, now}).first;
  } else {
    it->second.modified_at = now;
  }
  it->second.lines = std::move(lines);
  entry_text_.erase(path);
  total_bytes_ = total_bytes_ - old + bytes;
  ++version_;
  return "";
}

}  // namespace spec_engine::tools
