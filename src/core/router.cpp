// Path-pattern router: literal segments and "{name}" captures.
#include "core/router.hpp"

#include <algorithm>

namespace core::http {

namespace {

/// Splits "/a/b/" into {"a","b",""}; the leading slash is dropped, empty trailing segment kept.
std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::size_t i = 0;
  if (!path.empty() && path[0] == '/') i = 1;
  while (true) {
    auto j = path.find('/', i);
    if (j == std::string::npos) {
      out.push_back(path.substr(i));
      break;
    }
    out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

bool is_capture(const std::string& seg) { return seg.size() >= 2 && seg.front() == '{' && seg.back() == '}'; }

/// Matches pattern segments against path segments; fills `params` on success.
bool match_segments(const std::vector<std::string>& pat, const std::vector<std::string>& path,
                    std::map<std::string, std::string>& params) {
  if (pat.size() != path.size()) return false;
  std::map<std::string, std::string> out;
  for (std::size_t i = 0; i < pat.size(); ++i) {
    if (is_capture(pat[i])) {
      if (path[i].empty()) return false;
      out[pat[i].substr(1, pat[i].size() - 2)] = path[i];
    } else if (pat[i] != path[i]) {
      return false;
    }
  }
  params = std::move(out);
  return true;
}

}  // namespace

void Router::add(std::string method, std::string pattern, Handler handler) {
  Route r;
  r.method = std::move(method);
  r.segments = split_path(pattern);
  r.pattern = std::move(pattern);
  r.handler = std::move(handler);
  routes_.push_back(std::move(r));
}

void Router::add_ws(std::string pattern, WsHandler handler) {
  Route r;
  r.method = "WS";
  r.segments = split_path(pattern);
  r.pattern = std::move(pattern);
  r.ws_handler = std::move(handler);
  routes_.push_back(std::move(r));
}

void Router::add_stream(std::string method, std::string pattern, StreamHandler handler) {
  Route r;
  r.method = std::move(method);
  r.segments = split_path(pattern);
  r.pattern = std::move(pattern);
  r.stream_handler = std::move(handler);
  routes_.push_back(std::move(r));
}

RouteMatch Router::match(const std::string& method, const std::string& path, bool is_upgrade) const {
  RouteMatch m = match_exact(method, path, is_upgrade);
  if (method == "HEAD" && !m.handler && !m.stream_handler && !m.ws_handler) {
    // RFC 9110 §9.3.2: HEAD is answered wherever GET is, by the GET route (the server sends
    // its status and header fields without the body).
    RouteMatch get = match_exact("GET", path, false);
    if (get.handler || get.stream_handler) return get;
  }
  // HEAD is allowed wherever GET is (RFC 9110 §9.3.2, §10.2.1 Allow).
  const auto& allowed = m.allowed_methods;
  const auto get_at = std::find(allowed.begin(), allowed.end(), "GET");
  if (get_at != allowed.end() && std::find(allowed.begin(), allowed.end(), "HEAD") == allowed.end()) {
    m.allowed_methods.insert(get_at + 1, "HEAD");
  }
  return m;
}

RouteMatch Router::match_exact(const std::string& method, const std::string& path, bool is_upgrade) const {
  RouteMatch m;
  const auto segs = split_path(path);
  // Literal routes win over captures: prefer the match with the most literal segments.
  const Route* best = nullptr;
  int best_literals = -1;
  std::map<std::string, std::string> best_params;
  for (const auto& r : routes_) {
    std::map<std::string, std::string> params;
    if (!match_segments(r.segments, segs, params)) continue;
    const bool is_ws = r.method == "WS";
    bool method_ok = false;
    if (is_ws) {
      method_ok = is_upgrade && method == "GET";
    } else {
      method_ok = r.method == method;
    }
    if (!method_ok) {
      const std::string allowed = is_ws ? std::string("GET") : r.method;
      if (std::find(m.allowed_methods.begin(), m.allowed_methods.end(), allowed) == m.allowed_methods.end()) {
        m.allowed_methods.push_back(allowed);
      }
      continue;
    }
    const int literals = static_cast<int>(std::count_if(r.segments.begin(), r.segments.end(),
                                                        [](const std::string& s) { return !is_capture(s); }));
    if (literals > best_literals) {
      best = &r;
      best_literals = literals;
      best_params = std::move(params);
    }
  }
  if (best) {
    if (best->method == "WS") {
      m.ws_handler = &best->ws_handler;
    } else if (best->stream_handler) {
      m.stream_handler = &best->stream_handler;
    } else {
      m.handler = &best->handler;
    }
    m.params = std::move(best_params);
    m.pattern = best->pattern;
    m.allowed_methods.clear();
    return m;
  }
  m.path_exists = !m.allowed_methods.empty();
  return m;
}

std::vector<Router::RouteInfo> Router::routes() const {
  std::vector<RouteInfo> out;
  out.reserve(routes_.size());
  for (const auto& r : routes_) out.push_back({r.method, r.pattern});
  return out;
}

}  // namespace core::http
