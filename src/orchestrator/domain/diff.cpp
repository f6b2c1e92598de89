#include "orchestrator/domain/diff.hpp"

#include <algorithm>

#include "core/files.hpp"

namespace orchestrator::domain {

namespace {

/// A file's canonical lines (core/files.hpp) as GNU diff compares them: without the final
/// "" that stands for a trailing newline, the empty file [""] as no lines, and a last line
/// that has no newline ending in '\n' (which no canonical line holds), so "a" and "a\n"
/// differ as in `diff -u` and unified_hunks marks it "\ No newline at end of file".
std::vector<std::string> diff_keys(const std::vector<std::string>& content) {
  std::vector<std::string> keys = content;
  if (core::files::ends_with_newline(keys)) keys.pop_back();
  else if (keys.size() == 1 && keys[0].empty()) keys.clear();
  else if (!keys.empty()) keys.back() += '\n';
  return keys;
}

/// One line of a hunk: prefix, text, then '\n' or, for a last line without newline (see
/// diff_keys), GNU's marker line.
void emit(std::string& out, char prefix, const std::string& line) {
  out += prefix;
  out += line;
  if (!line.empty() && line.back() == '\n') out += "\\ No newline at end of file\n";
  else out += '\n';
}

// Myers on a[a0,a1) x b[b0,b1); appends ops in order. Returns false if D > max_d.
bool myers(const std::vector<std::string>& a, std::size_t a0, std::size_t a1, const std::vector<std::string>& b,
           std::size_t b0, std::size_t b1, std::size_t max_d, std::vector<DiffOp>& out) {
  const long n = static_cast<long>(a1 - a0), m = static_cast<long>(b1 - b0);
  const long max = n + m;
  if (max == 0) return true;
  const long offset = max + 1;
  std::vector<long> v(static_cast<std::size_t>(2 * max + 3), 0);
  // trace[d] holds v[k] for k in [-d, d] as it was at the start of round d.
  std::vector<std::vector<long>> trace;
  long found_d = -1;
  for (long d = 0; d <= max && static_cast<std::size_t>(d) <= max_d; ++d) {
    std::vector<long> snap(static_cast<std::size_t>(2 * d + 3));
    for (long k = -d - 1; k <= d + 1; ++k) snap[static_cast<std::size_t>(k + d + 1)] = v[static_cast<std::size_t>(k + offset)];
    trace.push_back(std::move(snap));
    for (long k = -d; k <= d; k += 2) {
      long x;
      if (k == -d || (k != d && v[static_cast<std::size_t>(k - 1 + offset)] < v[static_cast<std::size_t>(k + 1 + offset)]))
        x = v[static_cast<std::size_t>(k + 1 + offset)];
      else
        x = v[static_cast<std::size_t>(k - 1 + offset)] + 1;
      long y = x - k;
      while (x < n && y < m && a[a0 + static_cast<std::size_t>(x)] == b[b0 + static_cast<std::size_t>(y)]) ++x, ++y;
      v[static_cast<std::size_t>(k + offset)] = x;
      if (x >= n && y >= m) {
        found_d = d;
        break;
      }
    }
    if (found_d >= 0) break;
  }
  if (found_d < 0) return false;
  std::vector<DiffOp> rev;
  long x = n, y = m;
  for (long d = found_d; d >= 0; --d) {
    const auto& snap = trace[static_cast<std::size_t>(d)];
    auto at = [&](long k) { return snap[static_cast<std::size_t>(k + d + 1)]; };
    const long k = x - y;
    const long prev_k = (k == -d || (k != d && at(k - 1) < at(k + 1))) ? k + 1 : k - 1;
    const long prev_x = d == 0 ? 0 : at(prev_k);
    const long prev_y = d == 0 ? 0 : prev_x - prev_k;
    while (x > prev_x && y > prev_y) {
      --x, --y;
      rev.push_back({DiffOp::equal, a0 + static_cast<std::size_t>(x), b0 + static_cast<std::size_t>(y)});
    }
    if (d > 0) {
      if (x == prev_x) {
        --y;
        rev.push_back({DiffOp::ins, a0 + static_cast<std::size_t>(x), b0 + static_cast<std::size_t>(y)});
      } else {
        --x;
        rev.push_back({DiffOp::del, a0 + static_cast<std::size_t>(x), b0 + static_cast<std::size_t>(y)});
      }
    }
  }
  out.insert(out.end(), rev.rbegin(), rev.rend());
  return true;
}

std::string range(std::size_t start, std::size_t len) {
  // GNU diff: 1-based start; an empty range names the line before it; ",1" is omitted.
  const std::size_t s = len == 0 ? start : start + 1;
  return len == 1 ? std::to_string(s) : std::to_string(s) + "," + std::to_string(len);
}

}  // namespace

std::vector<DiffOp> diff_lines(const std::vector<std::string>& a, const std::vector<std::string>& b,
                               std::size_t max_d) {
  std::vector<DiffOp> ops;
  std::size_t pre = 0;
  while (pre < a.size() && pre < b.size() && a[pre] == b[pre]) ops.push_back({DiffOp::equal, pre, pre}), ++pre;
  std::size_t suf = 0;
  while (suf < a.size() - pre && suf < b.size() - pre && a[a.size() - 1 - suf] == b[b.size() - 1 - suf]) ++suf;
  const std::size_t a1 = a.size() - suf, b1 = b.size() - suf;
  if (!myers(a, pre, a1, b, pre, b1, max_d, ops)) {
    for (std::size_t i = pre; i < a1; ++i) ops.push_back({DiffOp::del, i, pre});
    for (std::size_t j = pre; j < b1; ++j) ops.push_back({DiffOp::ins, a1, j});
  }
  for (std::size_t i = 0; i < suf; ++i) ops.push_back({DiffOp::equal, a1 + i, b1 + i});
  return ops;
}

std::string unified_hunks(const std::vector<std::string>& a, const std::vector<std::string>& b, int context) {
  const auto ops = diff_lines(a, b);
  const std::size_t ctx = static_cast<std::size_t>(std::max(context, 0));
  std::string out;
  std::size_t i = 0;
  while (i < ops.size()) {
    // Find the next change.
    std::size_t first = i;
    while (first < ops.size() && ops[first].kind == DiffOp::equal) ++first;
    if (first == ops.size()) break;
    // Extend the hunk while the gap of equal lines between changes is <= 2*ctx.
    std::size_t last = first;  // index of last change op in the hunk
    std::size_t j = first;
    while (j < ops.size()) {
      if (ops[j].kind != DiffOp::equal) {
        last = j;
        ++j;
        continue;
      }
      std::size_t k = j;
      while (k < ops.size() && ops[k].kind == DiffOp::equal) ++k;
      if (k == ops.size() || k - j > 2 * ctx) break;
      j = k;
    }
    const std::size_t start = first >= ctx ? std::max(first - ctx, i == 0 ? 0 : i) : 0;
    const std::size_t end = std::min(last + 1 + ctx, ops.size());
    std::size_t a_start = 0, b_start = 0, a_len = 0, b_len = 0;
    bool have_a = false, have_b = false;
    std::string body;
    for (std::size_t p = start; p < end; ++p) {
      const auto& op = ops[p];
      switch (op.kind) {
        case DiffOp::equal:
          if (!have_a) a_start = op.a_index, have_a = true;
          if (!have_b) b_start = op.b_index, have_b = true;
          ++a_len, ++b_len;
          emit(body, ' ', a[op.a_index]);
          break;
        case DiffOp::del:
          if (!have_a) a_start = op.a_index, have_a = true;
          ++a_len;
          emit(body, '-', a[op.a_index]);
          break;
        case DiffOp::ins:
          if (!have_b) b_start = op.b_index, have_b = true;
          ++b_len;
          emit(body, '+', b[op.b_index]);
          break;
      }
    }
    // A side with no lines in the hunk: its position is where the other side's lines sit.
    if (!have_a) a_start = ops[start].a_index;
    if (!have_b) b_start = ops[start].b_index;
    out += "@@ -" + range(a_start, a_len) + " +" + range(b_start, b_len) + " @@\n" + body;
    i = end;
  }
  return out;
}

std::string unified_file_diff(const std::string& path, const FileEntry* old_file, const FileEntry* new_file,
                              int context) {
  if (!old_file && !new_file) return "";
  if (old_file && new_file && old_file->content == new_file->content) return "";
  const auto a = old_file ? diff_keys(old_file->content) : std::vector<std::string>{};
  const auto b = new_file ? diff_keys(new_file->content) : std::vector<std::string>{};
  const std::string rel = !path.empty() && path[0] == '/' ? path.substr(1) : path;
  std::string out = "--- " + (old_file ? "a/" + rel : std::string("/dev/null")) + "\n";
  out += "+++ " + (new_file ? "b/" + rel : std::string("/dev/null")) + "\n";
  out += unified_hunks(a, b, context);
  return out;
}

const char* to_string(FileChange::Kind k) {
  switch (k) {
    case FileChange::added: return "added";
    case FileChange::modified: return "modified";
    case FileChange::deleted: return "deleted";
    case FileChange::unchanged: return "unchanged";
  }
  return "unchanged";
}

std::vector<FileChange> summarize_changes(const FileMap& before, const FileMap& after) {
  std::vector<FileChange> out;
  static const std::vector<std::string> empty;
  auto count = [](const std::vector<std::string>& a, const std::vector<std::string>& b, FileChange& c) {
    for (const auto& op : diff_lines(diff_keys(a), diff_keys(b))) {
      if (op.kind == DiffOp::ins) ++c.lines_added;
      if (op.kind == DiffOp::del) ++c.lines_removed;
    }
  };
  auto bi = before.begin();
  auto ai = after.begin();
  while (bi != before.end() || ai != after.end()) {
    FileChange c{};
    if (ai == after.end() || (bi != before.end() && bi->first < ai->first)) {
      c.kind = FileChange::deleted, c.path = bi->first;
      count(bi->second.content, empty, c);
      ++bi;
    } else if (bi == before.end() || ai->first < bi->first) {
      c.kind = FileChange::added, c.path = ai->first;
      count(empty, ai->second.content, c);
      ++ai;
    } else {
      c.path = ai->first;
      if (bi->second.content == ai->second.content) {
        c.kind = FileChange::unchanged;
      } else {
        c.kind = FileChange::modified;
        count(bi->second.content, ai->second.content, c);
      }
      ++ai, ++bi;
    }
    out.push_back(std::move(c));
  }
  return out;
}

}  // namespace orchestrator::domain

