#pragma once
// The run's virtual file system (docs/engine-api.md#built-in-tools): an in-memory map
// of absolute path -> file, in the deepagents file shape
//   {"/path": {"content": ["line", ...], "created_at": RFC3339, "modified_at": RFC3339}}.
// Text <-> lines and the rules for paths, content and sizes are the shared file model
// of core/files.hpp (docs/files.md): content is split on '\n' like Python's
// str.split("\n") after CRLF/CR become LF, so "a\nb\n" <-> ["a", "b", ""] round-trips,
// and a file the orchestrator stores is never refused here (or the other way round).
// Shared by every agent of a run.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/files.hpp"

namespace spec_engine::tools {

/// Size limits of the virtual file system: the shared rules of core/files.hpp (violations
/// are tool errors, not exceptions).
using VfsLimits = core::files::Limits;

/// One file: its lines and RFC 3339 timestamps.
struct File {
  std::vector<std::string> lines;
  std::string created_at;
  std::string modified_at;
  /// Content joined with '\n' (core::files::join_lines).
  std::string text() const;
  /// Total bytes of text().
  std::size_t bytes() const;
};

/// Text -> lines of the shared line model (core/files.hpp: CRLF/CR become LF, then
/// Python str.split("\n") semantics; "" -> [""]).
using core::files::split_lines;

/// Normalises a model-supplied path to an absolute path: prepends "/" when missing,
/// collapses "//" and "." segments, drops a trailing "/". Returns nullopt and sets
/// `error` (a message the model reads, "Error: ...") for: empty, any ".." segment, "~"
/// prefixes, and any result that breaks the shared path rules (core::files::check_path:
/// NUL or control characters, backslashes, ill-formed UTF-8, over-long paths). "/" is
/// returned as is (a directory for ls/grep; put refuses it).
std::optional<std::string> normalize_path(std::string_view path, std::string& error,
                                          std::size_t max_bytes = VfsLimits{}.max_path_bytes);

/// The file map of a run. Not thread-safe (a run is single-threaded).
class FileSystem {
 public:
  explicit FileSystem(VfsLimits limits = {}) : limits_(limits) {}

  /// Loads files from the deepagents shape; `content` may be a list of lines or one
  /// string; missing timestamps are set to now. Paths must be canonical
  /// (core::files::check_path: "a.md", "//a.md", "/./a.md" and "/a/" are refused, not
  /// normalised). Returns a list of problems ("<prefix>[\"/p\"].content: ...") and loads
  /// nothing if any.
  std::vector<std::pair<std::string, std::string>> load(const nlohmann::json& files,
                                                        const std::string& prefix = "files");
  /// The full map in the deepagents shape (keys sorted).
  nlohmann::json to_json() const;
  /// core::json::dump(to_json()), built from each file's text, kept from the last call until
  /// the file changes: a step that wrote one file serializes that file only. The kept texts
  /// cost about the files' size again in memory.
  std::string to_text() const;

  /// File at an already-normalised path, or nullptr.
  const File* find(const std::string& path) const;
  /// Creates or overwrites (keeping created_at) a file with `content` split into lines
  /// (core::files::split_lines). Returns an error message for the model ("Error: ...")
  /// when the path, the content (NUL, size) or the totals break the shared rules
  /// (core/files.hpp); "" on success.
  std::string put(const std::string& path, std::string_view content);
  /// All files, sorted by path.
  const std::map<std::string, File>& files() const { return files_; }
  /// Incremented on every change; lets callers detect "files changed in this step".
  std::uint64_t version() const { return version_; }
  const VfsLimits& limits() const { return limits_; }

 private:
  VfsLimits limits_;
  std::map<std::string, File> files_;
  /// Path -> the JSON text of files_[path]'s value, for to_text(); dropped when the file changes.
  mutable std::map<std::string, std::string, std::less<>> entry_text_;
  std::size_t total_bytes_ = 0;
  std::uint64_t version_ = 0;
};

}  // namespace spec_engine::tools
