// Transport-neutral HTTP types: header list, problem details (RFC 9457).
#include "core/http_types.hpp"

#include <algorithm>

namespace core::http {

namespace {
char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }
}  // namespace

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

namespace {

/// tchar of RFC 9110 §5.6.2.
bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

/// Reads a token at `i`; empty when there is none.
std::string_view read_token(std::string_view s, std::size_t& i) {
  const std::size_t start = i;
  while (i < s.size() && is_tchar(s[i])) ++i;
  return s.substr(start, i - start);
}

void skip_ows(std::string_view s, std::size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
}

std::string lowered(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = lower(c);
  return out;
}

}  // namespace

std::optional<std::string> MediaType::parameter(std::string_view name) const {
  for (const auto& [k, v] : parameters) {
    if (k == name) return v;
  }
  return std::nullopt;
}

std::optional<MediaType> parse_media_type(std::string_view s) {
  std::size_t i = 0;
  skip_ows(s, i);
  MediaType m;
  const auto type = read_token(s, i);
  if (type.empty() || i >= s.size() || s[i] != '/') return std::nullopt;
  ++i;
  const auto subtype = read_token(s, i);
  if (subtype.empty()) return std::nullopt;
  m.type = lowered(type);
  m.subtype = lowered(subtype);
  for (;;) {
    skip_ows(s, i);
    if (i == s.size()) return m;
    if (s[i] != ';') return std::nullopt;
    ++i;
    skip_ows(s, i);
    if (i == s.size() || s[i] == ';') continue;  // empty parameters are allowed
    const auto name = read_token(s, i);
    if (name.empty() || i >= s.size() || s[i] != '=') return std::nullopt;
    ++i;
    std::string value;
    if (i < s.size() && s[i] == '"') {  // quoted-string with quoted-pairs (§5.6.4)
      ++i;
      bool closed = false;
      while (i < s.size()) {
        const char c = s[i++];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c == '\\') {
          if (i == s.size()) return std::nullopt;
          value += s[i++];
        } else {
          value += c;
        }
      }
      if (!closed) return std::nullopt;
    } else {
      const auto v = read_token(s, i);
      if (v.empty()) return std::nullopt;
      value = std::string(v);
    }
    m.parameters.emplace_back(lowered(name), std::move(value));
  }
}

bool is_json_media_type(const MediaType& media) {
  if (media.type != "application") return false;
  const bool json = media.subtype == "json" || (media.subtype.size() > 5 && media.subtype.ends_with("+json"));
  if (!json) return false;
  const auto charset = media.parameter("charset");
  return !charset || iequals(*charset, "utf-8");
}

bool is_json_content_type(std::string_view content_type) {
  const auto m = parse_media_type(content_type);
  return m && is_json_media_type(*m);
}

std::optional<std::string> Headers::get(std::string_view name) const {
  for (const auto& [k, v] : fields_) {
    if (iequals(k, name)) return v;
  }
  return std::nullopt;
}

std::vector<std::string> Headers::get_all(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [k, v] : fields_) {
    if (iequals(k, name)) out.push_back(v);
  }
  return out;
}

void Headers::set(std::string name, std::string value) {
  erase(name);
  fields_.emplace_back(std::move(name), std::move(value));
}

void Headers::add(std::string name, std::string value) { fields_.emplace_back(std::move(name), std::move(value)); }

void Headers::erase(std::string_view name) {
  std::erase_if(fields_, [&](const auto& f) { return iequals(f.first, name); });
}

std::optional<std::string> Request::query_param(const std::string& name) const {
  auto it = query.find(name);
  if (it == query.end()) return std::nullopt;
  return it->second;
}

Response Response::json(int status, const nlohmann::json& body) {
  Response r;
  r.status = status;
  r.headers.set("Content-Type", "application/json");
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

Response Response::text(int status, std::string body, std::string content_type) {
  Response r;
  r.status = status;
  r.headers.set("Content-Type", std::move(content_type));
  r.body = std::move(body);
  return r;
}

Response Response::problem(int status, std::string title, std::string detail, const nlohmann::json& extra) {
  nlohmann::json p = nlohmann::json::object();
  p["type"] = "about:blank";
  if (extra.is_object()) {
    for (const auto& [k, v] : extra.items()) p[k] = v;  // may override "type" (RFC 9457 §3.1.1)
  }
  p["title"] = std::move(title);
  p["status"] = status;
  p["detail"] = std::move(detail);
  Response r;
  r.status = status;
  r.headers.set("Content-Type", "application/problem+json");
  r.body = p.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

}  // namespace core::http
