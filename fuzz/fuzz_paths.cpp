// File paths, glob patterns and the line model shared by both services:
// core::files (src/core/files.hpp), spec_engine::tools::normalize_path (tools/vfs.hpp) and
// GlobPattern (tools/glob.hpp). Properties: the line model round-trips (rules 1-5 of
// files.hpp); a normalised path is valid under check_path and normalises to itself; the
// glob matcher agrees with a straightforward backtracking matcher of the documented syntax
// on small inputs and never takes more than (path + 1) * (tokens + 1) steps.
// Input: glob pattern, NUL, path (the whole input is also used as file text).
#include <map>
#include <utility>

#include "core/files.hpp"
#include "fuzz_common.hpp"
#include "spec_engine/tools/glob.hpp"
#include "spec_engine/tools/vfs.hpp"

namespace {

namespace files = core::files;

/// Reference matcher: the syntax of glob.hpp read literally, by backtracking with a memo.
class Reference {
 public:
  Reference(std::string_view pattern, std::string_view path) : path_(path) {
    if (pattern.empty() || pattern.front() != '/') toks_.push_back({Kind::lit, '/'});
    for (std::size_t i = 0; i < pattern.size();) {
      if (pattern.substr(i, 3) == "**/") {
        toks_.push_back({Kind::any_dirs, 0});
        i += 3;
      } else if (pattern.substr(i, 2) == "**") {
        toks_.push_back({Kind::any_run, 0});
        i += 2;
      } else if (pattern[i] == '*') {
        toks_.push_back({Kind::seg_run, 0});
        ++i;
      } else if (pattern[i] == '?') {
        toks_.push_back({Kind::one, 0});
        ++i;
      } else {
        toks_.push_back({Kind::lit, pattern[i]});
        ++i;
      }
    }
  }
  bool match() { return at(0, 0); }

 private:
  enum class Kind { lit, one, seg_run, any_run, any_dirs };
  struct Tok {
    Kind kind;
    char c;
  };
  bool at(std::size_t t, std::size_t p) {
    if (t == toks_.size()) return p == path_.size();
    const auto key = std::make_pair(t, p);
    if (auto it = memo_.find(key); it != memo_.end()) return it->second;
    bool r = false;
    const Tok& k = toks_[t];
    switch (k.kind) {
      case Kind::lit: r = p < path_.size() && path_[p] == k.c && at(t + 1, p + 1); break;
      case Kind::one: r = p < path_.size() && path_[p] != '/' && at(t + 1, p + 1); break;
      case Kind::seg_run:  // zero or more bytes other than '/'
        for (std::size_t q = p;; ++q) {
          if (at(t + 1, q)) { r = true; break; }
          if (q == path_.size() || path_[q] == '/') break;
        }
        break;
      case Kind::any_run:  // zero or more bytes
        for (std::size_t q = p; q <= path_.size() && !r; ++q) r = at(t + 1, q);
        break;
      case Kind::any_dirs:  // nothing, or any bytes ending with '/'
        r = at(t + 1, p);
        for (std::size_t q = p; q < path_.size() && !r; ++q)
          if (path_[q] == '/') r = at(t + 1, q + 1);
        break;
    }
    memo_[key] = r;
    return r;
  }
  std::string_view path_;
  std::vector<Tok> toks_;
  std::map<std::pair<std::size_t, std::size_t>, bool> memo_;
};

void line_model(std::string_view text) {
  const auto lines = files::split_lines(text);
  FUZZ_CHECK(!lines.empty(), "split gave no line");
  FUZZ_CHECK(files::is_canonical(lines), "split lines are not canonical");
  const std::string joined = files::join_lines(lines);
  FUZZ_CHECK(joined == files::normalize_newlines(text), "join(split(text)) != normalize_newlines(text)");
  FUZZ_CHECK(files::text_bytes(lines) == joined.size(), "text_bytes differs from the joined size");
  FUZZ_CHECK(files::normalize_lines(lines) == lines, "canonical lines change when normalised");
  FUZZ_CHECK(files::split_lines(joined) == lines, "split(join(lines)) != lines");
  FUZZ_CHECK(files::ends_with_newline(lines) == (!joined.empty() && joined.back() == '\n'), "ends_with_newline");
  // Lines from outside, cut anywhere (rule 4): canonicalising is joining and splitting.
  std::vector<std::string> raw;
  for (std::size_t i = 0; i < text.size(); i += 5) raw.emplace_back(text.substr(i, 5));
  const auto canon = files::normalize_lines(raw);
  FUZZ_CHECK(files::is_canonical(canon), "normalize_lines is not canonical");
  FUZZ_CHECK(files::join_lines(canon) == files::normalize_newlines(files::join_lines(raw)), "normalize_lines");
  (void)files::check_content(lines);
}

void paths(const std::string& path) {
  const std::string why = files::check_path(path);
  std::string err;
  const auto norm = spec_engine::tools::normalize_path(path, err);
  if (!norm) {
    FUZZ_CHECK(err.rfind("Error: ", 0) == 0, err);
    return;
  }
  if (*norm != "/") FUZZ_CHECK(files::check_path(*norm).empty(), "normalised path is invalid: " + files::check_path(*norm));
  std::string err2;
  const auto again = spec_engine::tools::normalize_path(*norm, err2);
  FUZZ_CHECK(again && *again == *norm, "normalize_path is not idempotent");
  // A valid canonical path is its own normal form.
  if (why.empty()) FUZZ_CHECK(*norm == path, "a valid path was changed by normalize_path");
}

void glob(const std::string& pattern, const std::string& path) {
  const spec_engine::tools::GlobPattern g(pattern);
  std::size_t steps = 0;
  const bool hit = g.matches(path, &steps);
  FUZZ_CHECK(steps <= (path.size() + 1) * (g.tokens() + 1), "glob took more steps than its bound");
  if (pattern.size() <= 48 && path.size() <= 64) {
    Reference ref(pattern, path);
    FUZZ_CHECK(ref.match() == hit, "glob disagrees with the reference matcher on '" + pattern + "' vs '" + path + "'");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = fuzz::text(data, size);
  const auto parts = fuzz::split(in, 2);
  line_model(in);
  paths(parts[1]);
  paths(parts[0]);
  glob(parts[0], parts[1]);
  return 0;
}
