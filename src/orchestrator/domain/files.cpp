#include "orchestrator/domain/files.hpp"

#include <sstream>

#include "core/util.hpp"
#include "orchestrator/domain/error.hpp"

namespace orchestrator::domain {

void validate_path(const std::string& path, const std::string& field) {
  if (path.empty() || path[0] != '/') throw InvalidError(field, "file path must be absolute (start with '/'): " + path);
  if (path.size() > kMaxPathLength)
    throw InvalidError(field, "file path is longer than " + std::to_string(kMaxPathLength) + " bytes");
  if (path.size() > 1 && path.back() == '/') throw InvalidError(field, "file path must not end with '/': " + path);
  for (unsigned char c : path)
    if (c < 0x20 || c == 0x7f) throw InvalidError(field, "file path contains a control character");
  std::size_t start = 1;
  while (start <= path.size()) {
    auto end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    const std::string_view seg(path.data() + start, end - start);
    if (seg.empty() || seg == "." || seg == "..")
      throw InvalidError(field, "file path has an empty, '.' or '..' segment: " + path);
    start = end + 1;
  }
}

FileMap files_from_json(const nlohmann::json& j, const std::string& field, const std::string& now_in) {
  if (!j.is_object()) throw InvalidError(field, "must be an object mapping absolute paths to files");
  if (j.size() > kMaxFiles) throw InvalidError(field, "at most " + std::to_string(kMaxFiles) + " files are allowed");
  const std::string now = now_in.empty() ? core::now_rfc3339() : now_in;
  FileMap out;
  for (const auto& [path, f] : j.items()) {
    const std::string fld = field + "." + path;
    validate_path(path, fld);
    if (!f.is_object()) throw InvalidError(fld, "must be an object {content, created_at, modified_at}");
    FileEntry e;
    const auto c = f.find("content");
    if (c == f.end()) throw InvalidError(fld + ".content", "is required");
    std::size_t bytes = 0;
    if (c->is_string()) {
      std::istringstream in(c->get<std::string>());
      std::string line;
      while (std::getline(in, line)) e.content.push_back(line);
    } else if (c->is_array()) {
      for (const auto& l : *c) {
        if (!l.is_string()) throw InvalidError(fld + ".content", "must be an array of strings (lines)");
        e.content.push_back(l.get<std::string>());
      }
    } else {
      throw InvalidError(fld + ".content", "must be an array of strings (lines)");
    }
    for (const auto& l : e.content) bytes += l.size() + 1;
    if (bytes > kMaxFileBytes)
      throw InvalidError(fld + ".content", "file is larger than " + std::to_string(kMaxFileBytes) + " bytes");
    for (const char* ts : {"created_at", "modified_at"}) {
      const auto t = f.find(ts);
      std::string& dst = std::string(ts) == "created_at" ? e.created_at : e.modified_at;
      if (t == f.end() || t->is_null()) {
        dst = now;
      } else if (t->is_string()) {
        dst = t->get<std::string>();
      } else {
        throw InvalidError(fld + "." + ts, "must be an RFC 3339 timestamp string");
      }
    }
    out.emplace(path, std::move(e));
  }
  return out;
}

nlohmann::json files_to_json(const FileMap& files) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [path, f] : files)
    j[path] = {{"content", f.content}, {"created_at", f.created_at}, {"modified_at", f.modified_at}};
  return j;
}

std::string content_to_text(const std::vector<std::string>& lines) {
  return nlohmann::json(lines).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<std::string> content_from_text(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_array()) throw std::runtime_error("stored file content is not a JSON array of lines");
  return j.get<std::vector<std::string>>();
}

}  // namespace orchestrator::domain
