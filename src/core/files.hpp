#pragma once
// The workflow file model shared by both services (docs/files.md): how a file's text
// maps to its lines, and the one set of rules for paths, content and sizes. The engine
// enforces them in its virtual file system (model tools answer a readable tool error),
// the orchestrator wherever a draft, version or proposal file is written (400 naming the
// field), so a file one service accepts is never refused by the other.
//
// Line model (the deepagents file shape, `{"content": ["line", ...]}`, which splits text
// exactly like Python's str.split("\n")):
//   1. Line breaks are normalised first: CRLF ("\r\n") and a lone CR ("\r") become LF
//      ("\n"), as in Python's universal-newlines mode. No stored line holds '\r' or '\n'.
//   2. text -> lines splits on '\n'; the result always has at least one element.
//      A trailing newline is kept as a final empty line: "a\nb\n" -> ["a", "b", ""],
//      "a\nb" -> ["a", "b"], "" -> [""], "\n" -> ["", ""].
//   3. lines -> text joins with '\n'. So text -> lines -> text is the identity on
//      normalised text, and lines -> text -> lines is the identity on canonical lines.
//   4. A line array from outside is canonicalised as split(join(lines)): an element
//      holding a line break becomes several lines, "\r\n" inside becomes "\n", and the
//      empty array becomes [""] (the empty file).
//   5. A file's size is the byte length of its text (join with '\n'), so the same file
//      has the same size in both services whichever shape it arrived in.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace core::files {

// ---------------------------------------------------------------- line model

/// Text with CRLF and lone CR turned into LF (rule 1).
std::string normalize_newlines(std::string_view text);

/// Lines of `text` (rules 1-2): normalize_newlines, then split on '\n'. Never empty.
std::vector<std::string> split_lines(std::string_view text);

/// Text of `lines` (rule 3): joined with '\n'; [] and [""] both give "".
std::string join_lines(const std::vector<std::string>& lines);

/// Canonical form of a line array (rule 4): split_lines(join_lines(lines)).
std::vector<std::string> normalize_lines(const std::vector<std::string>& lines);

/// True if `lines` is already canonical (non-empty, no element holds '\r' or '\n').
bool is_canonical(const std::vector<std::string>& lines);

/// Byte length of join_lines(lines) without building it (rule 5).
std::size_t text_bytes(const std::vector<std::string>& lines);

/// True if the text of canonical `lines` ends with a newline (its last element is "" and
/// it has more than one element). The empty file [""] has no lines and no final newline.
bool ends_with_newline(const std::vector<std::string>& lines);

// ---------------------------------------------------------------- rules

/// Size limits of one file tree (a draft, a version, a proposal, an engine run's files).
/// The defaults are the services' rules; tests may pass smaller ones.
struct Limits {
  std::size_t max_file_bytes = std::size_t{1} << 20;    ///< text bytes of one file (1 MiB, rule 5)
  std::size_t max_files = 500;                          ///< files in one tree
  std::size_t max_total_bytes = std::size_t{8} << 20;   ///< text bytes of all files of a tree (8 MiB)
  std::size_t max_path_bytes = 512;                     ///< bytes of one path
};

/// Checks a canonical file path. Returns "" when valid, else why not (a sentence fragment
/// without a leading "Error:", e.g. "file path has an empty, '.' or '..' segment: /a//b").
/// A valid path: starts with '/'; at most `max_path_bytes` bytes; well-formed UTF-8;
/// no control character (U+0000-U+001F, U+007F) and no backslash; segments separated by
/// single '/', none empty, "." or ".."; no trailing '/' (so "/" itself names no file).
std::string check_path(std::string_view path, const Limits& limits = {});

/// Checks one file's content given as canonical lines: no NUL character, at most
/// `max_file_bytes` text bytes. Returns "" when valid, else why not.
std::string check_content(const std::vector<std::string>& lines, const Limits& limits = {});

/// Checks a whole tree's totals: at most `max_files` files and `max_total_bytes` text
/// bytes over all files. Returns "" when valid, else what is too much, phrased to follow
/// "would hold ": "501 files; the limit is 500 files" or "9000000 bytes of text in all
/// files; the limit is 8388608 bytes".
std::string check_totals(std::size_t files, std::size_t total_bytes, const Limits& limits = {});

}  // namespace core::files
