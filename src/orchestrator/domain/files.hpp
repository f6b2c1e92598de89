#pragma once
// The workflow file tree in the engine's file shape (DESIGN.md §4 "Events", §5
// "Shapes"): a map from absolute path to {"content": [lines], "created_at",
// "modified_at"}. Used by drafts, versions and proposals alike.

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace orchestrator::domain {

/// One file: its lines (without trailing '\n') and RFC 3339 timestamps (kept as given).
struct FileEntry {
  std::vector<std::string> content;
  std::string created_at;
  std::string modified_at;
  /// Content equality only (timestamps are ignored when deciding "changed").
  bool same_content(const FileEntry& o) const { return content == o.content; }
};

/// Absolute path -> file, ordered by path.
using FileMap = std::map<std::string, FileEntry>;

/// Limits enforced by `files_from_json` / `validate_path`.
inline constexpr std::size_t kMaxPathLength = 512;
inline constexpr std::size_t kMaxFileBytes = 1 << 20;   ///< per file, sum of line bytes
inline constexpr std::size_t kMaxFiles = 1000;          ///< per map

/// Checks a workflow file path: starts with '/', at most kMaxPathLength bytes, no NUL,
/// no control characters, no empty, "." or ".." segments, no trailing '/'.
/// Throws InvalidError(field, ...) naming `field`.
void validate_path(const std::string& path, const std::string& field);

/// Parses and validates a JSON file map. Accepts `content` as an array of strings
/// (the engine shape) or as one string (split on '\n'). Missing timestamps are set to
/// `now` (RFC 3339). Throws InvalidError naming the bad field, e.g. "files./a.md.content".
FileMap files_from_json(const nlohmann::json& j, const std::string& field = "files", const std::string& now = "");

/// Serialises a file map to the engine shape.
nlohmann::json files_to_json(const FileMap& files);

/// Lines <-> storage text: content is stored as the JSON array text of its lines (lossless).
std::string content_to_text(const std::vector<std::string>& lines);
/// Inverse of content_to_text. Throws std::runtime_error on corrupt storage.
std::vector<std::string> content_from_text(const std::string& text);

}  // namespace orchestrator::domain
