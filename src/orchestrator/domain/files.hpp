#pragma once
// The workflow file tree in the engine's file shape (docs/engine-api.md#events,
// docs/orchestrator-api.md#shapes): a map from absolute path to {"content": [lines], "created_at",
// "modified_at"}. Used by drafts, versions and proposals alike. Lines and the rules for
// paths, content and sizes are the shared file model of core/files.hpp (docs/files.md),
// the same the engine applies, so a file one service accepts the other accepts too.

#include <algorithm>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/files.hpp"

namespace orchestrator::domain {

/// One file: its canonical lines (core/files.hpp line model: a text ending with '\n' has a
/// final "" line) and RFC 3339 timestamps (kept as given).
struct FileEntry {
  std::vector<std::string> content;
  std::string created_at;
  std::string modified_at;
  /// Content equality only (timestamps are ignored when deciding "changed").
  bool same_content(const FileEntry& o) const { return content == o.content; }
};

/// Absolute path -> file, ordered by path.
using FileMap = std::map<std::string, FileEntry>;

/// True if both maps hold the same paths with the same contents (timestamps ignored).
inline bool same_contents(const FileMap& a, const FileMap& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](const auto& x, const auto& y) {
           return x.first == y.first && x.second.same_content(y.second);
         });
}

/// Checks a workflow file path against the shared rules (core::files::check_path).
/// Throws InvalidError(field, ...) naming `field`.
void validate_path(const std::string& path, const std::string& field);

/// Checks a whole tree against the shared totals (core::files::check_totals: file count and
/// text bytes). Throws InvalidError(field, "<what> would hold ...") naming `field`.
void validate_totals(const FileMap& files, const std::string& field, const std::string& what = "the draft");

/// Parses and validates a JSON file map. Accepts `content` as an array of strings
/// (the engine shape) or as one string; either is brought to canonical lines
/// (core::files: CRLF/CR become LF, a trailing newline is a final "" line). Checks every
/// path, every file's content and the totals against the shared rules. Missing timestamps
/// are set to `now` (RFC 3339). Throws InvalidError naming the bad field, e.g.
/// "files./a.md.content".
FileMap files_from_json(const nlohmann::json& j, const std::string& field = "files", const std::string& now = "");

/// A draft edit (the `files` member of PUT /api/workflows/{id}/draft/files): files to
/// create or replace, and paths to delete.
struct DraftPatch {
  FileMap upserts;                   ///< path -> new file (files_from_json rules)
  std::vector<std::string> deletes;  ///< paths given as null, in the order given
};

/// Parses a draft edit: each member of `j` maps a path to a file or to null (delete that
/// path; the path is checked all the same). Files follow files_from_json(upserts, field, now).
/// Throws InvalidError naming the bad field, e.g. "files./a\\b" or "files./a.md.content".
DraftPatch draft_patch_from_json(const nlohmann::json& j, const std::string& field = "files",
                                 const std::string& now = "");

/// Serialises a file map to the engine shape.
nlohmann::json files_to_json(const FileMap& files);

/// Lines <-> storage text: content is stored as the JSON array text of its lines (lossless).
std::string content_to_text(const std::vector<std::string>& lines);
/// Inverse of content_to_text (read with core::json::parse, brought to canonical lines).
/// Throws std::runtime_error on corrupt storage.
std::vector<std::string> content_from_text(const std::string& text);

}  // namespace orchestrator::domain
