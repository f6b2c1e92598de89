#pragma once
// Line diffs for proposals: Myers' O(ND) algorithm (E. Myers, "An O(ND) Difference
// Algorithm and Its Variations", 1986) and the unified diff format as written by GNU
// diff -u (hunks "@@ -l,s +l,s @@" with 3 lines of context, ",s" omitted when s == 1).

#include <string>
#include <vector>

#include "orchestrator/domain/files.hpp"

namespace orchestrator::domain {

/// One step of an edit script turning `a` into `b`.
struct DiffOp {
  enum Kind { equal, del, ins } kind;
  std::size_t a_index;  ///< line index in a (equal, del)
  std::size_t b_index;  ///< line index in b (equal, ins)
};

/// Shortest edit script (common prefix/suffix trimmed, then Myers). Falls back to
/// "delete all, insert all" for the middle when the distance exceeds `max_d` (bounds memory).
std::vector<DiffOp> diff_lines(const std::vector<std::string>& a, const std::vector<std::string>& b,
                               std::size_t max_d = 4000);

/// Unified diff hunks (without the ---/+++ header) of a -> b, `context` lines around changes.
/// Empty string when a == b. Each element is one line without its '\n'; an element that
/// ends with '\n' is a last line that has no newline and is followed by GNU's
/// "\ No newline at end of file" (unified_file_diff uses this).
std::string unified_hunks(const std::vector<std::string>& a, const std::vector<std::string>& b, int context = 3);

/// Unified diff of one file, comparing texts as GNU `diff -u` does under the shared line
/// model (core/files.hpp: a final "" line is the text's trailing newline; a text without it
/// gets "\ No newline at end of file"). `old_file`/`new_file` null means absent (added/deleted):
/// header "--- a/<path>" / "+++ b/<path>" (leading '/' of the absolute path dropped),
/// "/dev/null" for the absent side. Empty string when the content is the same.
std::string unified_file_diff(const std::string& path, const FileEntry* old_file, const FileEntry* new_file,
                              int context = 3);

/// How one file differs between two trees.
struct FileChange {
  enum Kind { added, modified, deleted, unchanged } kind;
  std::string path;
  int lines_added = 0;    ///< '+' lines
  int lines_removed = 0;  ///< '-' lines
};
/// "added" | "modified" | "deleted" | "unchanged".
const char* to_string(FileChange::Kind k);

/// Per-file summary of `before` -> `after` over the union of paths, ordered by path; line
/// counts as in unified_file_diff (a trailing newline is not a line of its own).
/// A path only in `after` is added, only in `before` deleted.
std::vector<FileChange> summarize_changes(const FileMap& before, const FileMap& after);

}  // namespace orchestrator::domain
