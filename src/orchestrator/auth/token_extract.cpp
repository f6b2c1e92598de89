#include "orchestrator/auth/token_extract.hpp"

#include <cctype>
#include <vector>

namespace orchestrator::auth {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  return true;
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> pct_decode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
      if (h < 0 || l < 0) return std::nullopt;
      out.push_back(static_cast<char>(h * 16 + l));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> bearer_from_authorization(std::string_view v) {
  v = trim(v);
  const auto sp = v.find(' ');
  if (sp == std::string_view::npos) return std::nullopt;
  if (!iequals(v.substr(0, sp), "bearer")) return std::nullopt;
  const auto tok = trim(v.substr(sp + 1));
  if (tok.empty() || tok.find(' ') != std::string_view::npos) return std::nullopt;
  return std::string(tok);
}

std::optional<std::string> token_from_query(std::string_view q) {
  if (!q.empty() && q.front() == '?') q.remove_prefix(1);
  while (!q.empty()) {
    const auto amp = q.find('&');
    const auto part = q.substr(0, amp);
    const auto eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == "token") {
      auto v = pct_decode(part.substr(eq + 1));
      if (v && !v->empty()) return v;
      return std::nullopt;
    }
    if (amp == std::string_view::npos) break;
    q.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::optional<WsProtocolToken> token_from_websocket_protocol(std::string_view v) {
  std::vector<std::string_view> parts;
  while (true) {
    const auto c = v.find(',');
    parts.push_back(trim(v.substr(0, c)));
    if (c == std::string_view::npos) break;
    v.remove_prefix(c + 1);
  }
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    if ((parts[i] == "bearer" || parts[i] == "access_token") && !parts[i + 1].empty())
      return WsProtocolToken{std::string(parts[i + 1]), std::string(parts[i])};
  }
  return std::nullopt;
}

std::optional<FoundToken> find_token(std::string_view authorization, std::string_view websocket_protocol,
                                     std::string_view raw_query) {
  if (auto t = bearer_from_authorization(authorization)) return FoundToken{*t, TokenSource::authorization_header, {}};
  if (auto t = token_from_websocket_protocol(websocket_protocol))
    return FoundToken{t->token, TokenSource::websocket_protocol, t->echo_protocol};
  if (auto t = token_from_query(raw_query)) return FoundToken{*t, TokenSource::query, {}};
  return std::nullopt;
}

}  // namespace orchestrator::auth
