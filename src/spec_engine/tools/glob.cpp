#include "spec_engine/tools/glob.hpp"

#include <algorithm>

namespace spec_engine::tools {

GlobPattern::GlobPattern(std::string_view p) {
  if (p.empty() || p.front() != '/') toks_.push_back({Op::literal, '/'});
  for (std::size_t i = 0; i < p.size();) {
    const char c = p[i];
    if (c == '*' && i + 1 < p.size() && p[i + 1] == '*') {
      if (i + 2 < p.size() && p[i + 2] == '/') {  // (.*/)? : two states, see Op
        toks_.push_back({Op::skip_or_enter, 0});
        toks_.push_back({Op::globstar_slash, '/'});
        i += 3;
      } else {
        toks_.push_back({Op::globstar, 0});
        i += 2;
      }
    } else if (c == '*') {
      toks_.push_back({Op::star, 0});
      ++i;
    } else {
      toks_.push_back({c == '?' ? Op::any : Op::literal, c});
      ++i;
    }
  }
}

bool GlobPattern::matches(std::string_view path, std::size_t* steps) const {
  const std::size_t n = toks_.size();  // state n = the whole pattern matched
  std::vector<std::uint8_t> cur(n + 1, 0), next(n + 1, 0);
  // Empty moves: `*` and `**` may match nothing (i -> i + 1); the start of "**/" enters
  // its loop (i -> i + 1) or skips it (i -> i + 2). The loop itself has no empty move: once
  // inside, only a '/' leaves it. Moves only go forward, so one forward pass closes the set.
  const auto close = [&](std::vector<std::uint8_t>& live) {
    for (std::size_t i = 0; i < n; ++i) {
      if (!live[i]) continue;
      const Op op = toks_[i].op;
      if (op == Op::star || op == Op::globstar || op == Op::skip_or_enter) live[i + 1] = 1;
      if (op == Op::skip_or_enter) live[i + 2] = 1;
    }
  };
  std::size_t visits = 0;
  cur[0] = 1;
  close(cur);
  bool alive = true;
  for (const char c : path) {
    std::fill(next.begin(), next.end(), 0);
    alive = false;
    for (std::size_t i = 0; i < n; ++i) {
      if (!cur[i]) continue;
      ++visits;
      const Tok& t = toks_[i];
      switch (t.op) {
        case Op::literal:
          if (c == t.c) next[i + 1] = alive = true;
          break;
        case Op::any:
          if (c != '/') next[i + 1] = alive = true;
          break;
        case Op::star:
          if (c != '/') next[i] = alive = true;
          break;
        case Op::globstar:
          next[i] = alive = true;
          break;
        case Op::skip_or_enter:
          break;  // empty moves only
        case Op::globstar_slash:
          next[i] = alive = true;
          if (c == '/') next[i + 1] = 1;
          break;
      }
    }
    if (!alive) break;
    close(next);
    cur.swap(next);
  }
  if (steps) *steps += visits + 1;
  return alive && cur[n];
}

bool glob_match(std::string_view pattern, std::string_view path) { return GlobPattern(pattern).matches(path); }

}  // namespace spec_engine::tools
