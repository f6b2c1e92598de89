// Top-level member scan (json_scan.hpp).
#include "core/json_scan.hpp"

namespace core::json {

namespace {

bool is_ws(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

void skip_ws(std::string_view t, std::size_t& i) {
  while (i < t.size() && is_ws(t[i])) ++i;
}

/// Moves `i` past the string starting at t[i] == '"'. False when unterminated.
bool skip_string(std::string_view t, std::size_t& i) {
  for (++i; i < t.size(); ++i) {
    if (t[i] == '\\') {
      ++i;
    } else if (t[i] == '"') {
      ++i;
      return true;
    }
  }
  return false;
}

/// Moves `i` past one value. False when malformed or truncated.
bool skip_value(std::string_view t, std::size_t& i) {
  if (i >= t.size()) return false;
  if (t[i] == '"') return skip_string(t, i);
  if (t[i] == '{' || t[i] == '[') {
    std::size_t depth = 0;
    while (i < t.size()) {
      const char c = t[i];
      if (c == '"') {
        if (!skip_string(t, i)) return false;
        continue;
      }
      if (c == '{' || c == '[') ++depth;
      if ((c == '}' || c == ']') && --depth == 0) {
        ++i;
        return true;
      }
      ++i;
    }
    return false;
  }
  const std::size_t start = i;
  while (i < t.size() && t[i] != ',' && t[i] != '}' && t[i] != ']' && !is_ws(t[i])) ++i;
  return i > start;
}

}  // namespace

std::optional<std::vector<RawMember>> scan_object(std::string_view t) {
  std::vector<RawMember> out;
  std::size_t i = 0;
  skip_ws(t, i);
  if (i >= t.size() || t[i] != '{') return std::nullopt;
  ++i;
  skip_ws(t, i);
  bool closed = false;
  if (i < t.size() && t[i] == '}') {
    ++i;
    closed = true;
  }
  while (!closed) {
    skip_ws(t, i);
    if (i >= t.size() || t[i] != '"') return std::nullopt;
    const std::size_t key_start = i + 1;
    if (!skip_string(t, i)) return std::nullopt;
    const std::string_view key = t.substr(key_start, i - 1 - key_start);
    skip_ws(t, i);
    if (i >= t.size() || t[i] != ':') return std::nullopt;
    ++i;
    skip_ws(t, i);
    const std::size_t value_start = i;
    if (!skip_value(t, i)) return std::nullopt;
    out.push_back({key, t.substr(value_start, i - value_start)});
    skip_ws(t, i);
    if (i < t.size() && t[i] == ',') {
      ++i;
      continue;
    }
    if (i < t.size() && t[i] == '}') {
      ++i;
      closed = true;
      continue;
    }
    return std::nullopt;
  }
  skip_ws(t, i);
  if (i != t.size()) return std::nullopt;
  return out;
}

std::optional<std::string_view> plain_string(std::string_view v) {
  if (v.size() < 2 || v.front() != '"' || v.back() != '"') return std::nullopt;
  const std::string_view inner = v.substr(1, v.size() - 2);
  if (inner.find('\\') != std::string_view::npos) return std::nullopt;
  return inner;
}

}  // namespace core::json
