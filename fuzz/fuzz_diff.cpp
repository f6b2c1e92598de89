// Line diffs of proposals: orchestrator::domain::diff_lines (Myers), unified_hunks,
// unified_file_diff and summarize_changes (src/orchestrator/domain/diff.hpp). Properties:
// the edit script walks both files in order and keeps only equal lines; it is minimal
// (checked against an LCS table on small inputs); the unified diff, applied as a patch to
// the old file, gives the new one; the per-file summary counts the diff's '+'/'-' lines.
// Input: old text, NUL, new text (split into lines by the shared line model).
#include <algorithm>

#include "core/files.hpp"
#include "fuzz_common.hpp"
#include "orchestrator/domain/diff.hpp"

namespace {

using orchestrator::domain::DiffOp;
using Lines = std::vector<std::string>;

/// The lines unified_file_diff compares (diff.hpp: a last line without newline ends in '\n').
Lines keys(Lines l) {
  if (core::files::ends_with_newline(l)) l.pop_back();
  else if (l.size() == 1 && l[0].empty()) l.clear();
  else if (!l.empty()) l.back() += '\n';
  return l;
}

/// Applies unified hunks to `a`; FUZZ_CHECKs that every context and removed line matches.
Lines patch(const Lines& a, std::string_view hunks, int& added, int& removed) {
  Lines out;
  std::size_t pos = 0;
  std::vector<std::string_view> rows;
  while (!hunks.empty()) {
    const auto nl = hunks.find('\n');
    FUZZ_CHECK(nl != std::string_view::npos, "diff does not end with a newline");
    rows.push_back(hunks.substr(0, nl));
    hunks.remove_prefix(nl + 1);
  }
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const auto row = rows[r];
    const bool no_newline = r + 1 < rows.size() && rows[r + 1] == "\\ No newline at end of file";
    std::string text = row.size() > 1 ? std::string(row.substr(1)) : std::string();
    if (no_newline) text += '\n';
    if (row.rfind("@@ -", 0) == 0) {
      unsigned long s = 0, l = 1;
      const auto comma = row.find(',');
      const auto space = row.find(' ', 4);
      s = std::stoul(std::string(row.substr(4, std::min(comma, space) - 4)));
      if (comma < space) l = std::stoul(std::string(row.substr(comma + 1, space - comma - 1)));
      const std::size_t start = l == 0 ? s : s - 1;
      FUZZ_CHECK(start >= pos && start <= a.size(), "hunk starts out of order");
      while (pos < start) out.push_back(a[pos++]);
    } else if (row == "\\ No newline at end of file") {
      continue;
    } else if (!row.empty() && (row[0] == ' ' || row[0] == '-')) {
      FUZZ_CHECK(pos < a.size() && a[pos] == text, "context or removed line does not match the old file");
      if (row[0] == ' ') out.push_back(text);
      else ++removed;
      ++pos;
    } else {
      FUZZ_CHECK(!row.empty() && row[0] == '+', "unknown diff row");
      out.push_back(text);
      ++added;
    }
  }
  while (pos < a.size()) out.push_back(a[pos++]);
  return out;
}

std::size_t lcs(const Lines& a, const Lines& b) {
  std::vector<std::vector<std::size_t>> t(a.size() + 1, std::vector<std::size_t>(b.size() + 1, 0));
  for (std::size_t i = a.size(); i-- > 0;)
    for (std::size_t j = b.size(); j-- > 0;)
      t[i][j] = a[i] == b[j] ? t[i + 1][j + 1] + 1 : std::max(t[i + 1][j], t[i][j + 1]);
  return t[0][0];
}

void script(const Lines& a, const Lines& b, std::size_t max_d) {
  const auto ops = orchestrator::domain::diff_lines(a, b, max_d);
  std::size_t ai = 0, bi = 0, edits = 0;
  for (const auto& op : ops) {
    if (op.kind == DiffOp::equal) {
      FUZZ_CHECK(op.a_index == ai && op.b_index == bi && a[ai] == b[bi], "bad equal op");
      ++ai, ++bi;
    } else if (op.kind == DiffOp::del) {
      FUZZ_CHECK(op.a_index == ai, "deletion out of order");
      ++ai, ++edits;
    } else {
      FUZZ_CHECK(op.b_index == bi, "insertion out of order");
      ++bi, ++edits;
    }
  }
  FUZZ_CHECK(ai == a.size() && bi == b.size(), "the script does not cover both files");
  if (max_d >= a.size() + b.size() && a.size() <= 64 && b.size() <= 64)
    FUZZ_CHECK(edits == a.size() + b.size() - 2 * lcs(a, b), "the edit script is not minimal");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto parts = fuzz::split(fuzz::text(data, size), 2);
  const orchestrator::domain::FileEntry before{core::files::split_lines(parts[0]), "t", "t"};
  const orchestrator::domain::FileEntry after{core::files::split_lines(parts[1]), "t", "t"};
  script(before.content, after.content, 4000);
  script(before.content, after.content, 2);  // the bounded fallback must still be a valid script

  const std::string diff = orchestrator::domain::unified_file_diff("/a.md", &before, &after);
  FUZZ_CHECK(diff.empty() == (before.content == after.content), "empty diff iff same content");
  int added = 0, removed = 0;
  if (!diff.empty()) {
    const auto body = std::string_view(diff).substr(diff.find("\n+++ ") + 1);
    const auto hunks = body.substr(body.find('\n') + 1);
    FUZZ_CHECK(patch(keys(before.content), hunks, added, removed) == keys(after.content),
               "the diff applied to the old file does not give the new file");
  }
  const auto changes = orchestrator::domain::summarize_changes({{"/a.md", before}}, {{"/a.md", after}});
  FUZZ_CHECK(changes.size() == 1 && changes[0].lines_added == added && changes[0].lines_removed == removed,
             "summary counts differ from the diff");
  // Added and deleted files diff against /dev/null.
  int add2 = 0, rem2 = 0;
  const std::string created = orchestrator::domain::unified_file_diff("/n.md", nullptr, &after);
  const auto cb = std::string_view(created).substr(created.find("\n+++ ") + 1);
  FUZZ_CHECK(patch({}, cb.substr(cb.find('\n') + 1), add2, rem2) == keys(after.content), "added file diff");
  return 0;
}
