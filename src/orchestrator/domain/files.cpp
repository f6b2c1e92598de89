#include "orchestrator/domain/files.hpp"

#include "core/json_parse.hpp"
#include "core/util.hpp"
#include "orchestrator/domain/error.hpp"

namespace orchestrator::domain {

void validate_path(const std::string& path, const std::string& field) {
  if (auto why = core::files::check_path(path); !why.empty()) throw InvalidError(field, why);
}

void validate_totals(const FileMap& files, const std::string& field, const std::string& what) {
  std::size_t bytes = 0;
  for (const auto& [path, f] : files) bytes += core::files::text_bytes(f.content);
  if (auto why = core::files::check_totals(files.size(), bytes); !why.empty())
    throw InvalidError(field, what + " would hold " + why);
}

FileMap files_from_json(const nlohmann::json& j, const std::string& field, const std::string& now_in) {
  if (!j.is_object()) throw InvalidError(field, "must be an object mapping absolute paths to files");
  const core::files::Limits limits;
  if (j.size() > limits.max_files)
    throw InvalidError(field, "at most " + std::to_string(limits.max_files) + " files are allowed");
  const std::string now = now_in.empty() ? core::now_rfc3339() : now_in;
  FileMap out;
  for (const auto& [path, f] : j.items()) {
    const std::string fld = field + "." + path;
    validate_path(path, fld);
    if (!f.is_object()) throw InvalidError(fld, "must be an object {content, created_at, modified_at}");
    FileEntry e;
    const auto c = f.find("content");
    if (c == f.end()) throw InvalidError(fld + ".content", "is required");
    if (c->is_string()) {
      e.content = core::files::split_lines(c->get_ref<const std::string&>());
    } else if (c->is_array()) {
      for (const auto& l : *c) {
        if (!l.is_string()) throw InvalidError(fld + ".content", "must be an array of strings (lines)");
        e.content.push_back(l.get<std::string>());
      }
      e.content = core::files::normalize_lines(e.content);
    } else {
      throw InvalidError(fld + ".content", "must be an array of strings (lines)");
    }
    if (auto why = core::files::check_content(e.content, limits); !why.empty()) throw InvalidError(fld + ".content", why);
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
  validate_totals(out, field, "the files");
  return out;
}

DraftPatch draft_patch_from_json(const nlohmann::json& j, const std::string& field, const std::string& now) {
  DraftPatch patch;
  nlohmann::json upserts = nlohmann::json::object();
  for (const auto& [path, f] : j.items()) {
    if (f.is_null()) {
      validate_path(path, field + "." + path);
      patch.deletes.push_back(path);
    } else {
      upserts[path] = f;
    }
  }
  patch.upserts = files_from_json(upserts, field, now);
  return patch;
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
  const auto j = core::json::parse_or_null(text, core::json::kInternalLimits);
  if (!j || !j->is_array()) throw std::runtime_error("stored file content is not a JSON array of lines");
  for (const auto& l : *j)
    if (!l.is_string()) throw std::runtime_error("stored file content is not a JSON array of lines");
  return core::files::normalize_lines(j->get<std::vector<std::string>>());
}

}  // namespace orchestrator::domain
