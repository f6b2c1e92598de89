#pragma once
// Glob patterns over the virtual file system's absolute paths (the `glob` tool and
// `grep`'s `glob` filter):
//   `*`   any run of characters within one path segment (never '/')
//   `**`  any run of characters across segments (including '/'); "**/" also
//         matches nothing, so "/docs/**/*.md" matches "/docs/a.md"
//   `?`   exactly one character other than '/'
//   anything else matches itself (no character classes, no escapes).
// A pattern without a leading '/' is anchored at "/" ("*.md" is "/*.md").
// `***` reads as `**` followed by `*`.
//
// Matching simulates the pattern's NFA over the path (Thompson's construction,
// the technique of RE2 and of Russ Cox's "Regular Expression Matching Can Be
// Simple And Fast"): every input character advances the set of live pattern
// positions at once, so one match costs at most (path bytes + 1) * (pattern
// tokens + 1) steps whatever the pattern. A backtracking matcher takes time
// exponential in the number of stars on patterns like "*a*a*a*a*b".

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace spec_engine::tools {

/// A compiled glob pattern (syntax above). Immutable after construction; cheap to
/// match against many paths.
class GlobPattern {
 public:
  /// Compiles `pattern` (any bytes; the caller bounds its length).
  explicit GlobPattern(std::string_view pattern);
  /// True if the whole `path` matches. When `steps` is given, adds the number of
  /// NFA state visits made (at most (path.size() + 1) * (tokens() + 1)).
  bool matches(std::string_view path, std::size_t* steps = nullptr) const;
  /// Number of NFA states before the final one (one per literal byte, '?', `*` or `**`,
  /// two per "**/", plus the anchoring '/' when the pattern lacks it).
  std::size_t tokens() const { return toks_.size(); }

 private:
  enum class Op : std::uint8_t {
    literal,         ///< one byte, `c`
    any,             ///< `?`: one byte other than '/'
    star,            ///< `*`: zero or more bytes other than '/'
    globstar,        ///< `**`: zero or more bytes
    skip_or_enter,   ///< start of `**/`: moves on to the loop below, or skips `**/` entirely
    globstar_slash,  ///< rest of `**/`: zero or more bytes, then '/'
  };
  struct Tok {
    Op op;
    char c;
  };
  std::vector<Tok> toks_;
};

/// One-off match of `path` against `pattern` (compiles, then GlobPattern::matches).
bool glob_match(std::string_view pattern, std::string_view path);

}  // namespace spec_engine::tools
