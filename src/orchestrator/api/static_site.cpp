// Static files of the web console: content types, caching, ETags, CSP, path checks.
#include "orchestrator/api/static_site.hpp"

#include <array>
#include <fstream>
#include <sstream>

#include <openssl/sha.h>

#include "core/log.hpp"

namespace orchestrator::api {

namespace fs = std::filesystem;
using core::http::Request;
using core::http::Response;

namespace {

constexpr const char* kIndexCache = "no-cache";  // revalidate every time (RFC 9111 §5.2.2.4)
constexpr const char* kAssetCache = "public, max-age=31536000, immutable";  // RFC 8246

Response with_csp(Response r) {
  r.headers.set("Content-Security-Policy", std::string(kConsoleCsp));
  return r;
}

/// The page `/` answers when the console was not built. Plain HTML: no script, no style.
Response not_built() {
  Response r = Response::text(
      404,
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Web console not built"
      "</title></head><body>\n<h1>The web console was not built</h1>\n"
      "<p>This ide-orchestrator serves the API at <code>/api</code> (described in "
      "<a href=\"/api/openapi.json\">/api/openapi.json</a>), but it found no built console.</p>\n"
      "<p>To build it, install Node.js and npm and run <code>make build</code> (the console goes to "
      "<code>build/web</code>), or point <code>--web-dir</code> / <code>IDE_ORCHESTRATOR_WEB_DIR</code> at a "
      "directory holding the console's <code>index.html</code>.</p>\n</body></html>\n",
      "text/html; charset=utf-8");
  r.headers.set("Cache-Control", "no-store");
  return with_csp(std::move(r));
}

Response not_found(const std::string& path) {
  return with_csp(Response::problem(404, "Not Found", "No console file at " + path + "."));
}

/// `child` lies inside `dir` (both canonical).
bool inside(const fs::path& dir, const fs::path& child) {
  auto d = dir.begin(), c = child.begin();
  for (; d != dir.end(); ++d, ++c) {
    if (c == child.end() || *d != *c) return false;
  }
  return c != child.end();
}

}  // namespace

StaticSite::StaticSite(std::optional<fs::path> root, std::size_t max_file_bytes)
    : root_(std::move(root)), max_file_bytes_(max_file_bytes) {}

bool StaticSite::available() const {
  std::error_code ec;
  return root_ && fs::is_regular_file(*root_ / "index.html", ec);
}

std::string StaticSite::content_type(std::string_view ext) {
  static const std::array<std::pair<std::string_view, std::string_view>, 16> types{{
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},  // RFC 9239
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".webp", "image/webp"},
      {".ico", "image/vnd.microsoft.icon"},
      {".woff2", "font/woff2"},  // RFC 8081
      {".woff", "font/woff"},
      {".txt", "text/plain; charset=utf-8"},
      {".wasm", "application/wasm"},
      {".webmanifest", "application/manifest+json"},
  }};
  for (const auto& [e, t] : types) {
    if (e == ext) return std::string(t);
  }
  return "application/octet-stream";
}

bool StaticSite::safe_file_name(std::string_view name) {
  if (name.empty() || name.size() > 255 || name.find("..") != std::string_view::npos) return false;
  const auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front())) return false;
  for (char c : name) {
    if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

std::string StaticSite::entity_tag(std::string_view body) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(body.data()), body.size(), digest);
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (int i = 0; i < 16; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 0xf]);
  }
  out.push_back('"');
  return out;
}

bool StaticSite::none_match(std::string_view value, std::string_view etag) {
  const auto strip_weak = [](std::string_view t) { return t.substr(0, 2) == "W/" ? t.substr(2) : t; };
  const std::string_view want = strip_weak(etag);
  while (!value.empty()) {
    const auto comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (item == "*" || strip_weak(item) == want) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

Response StaticSite::file(const Request& req, const fs::path& path, const std::string& cache_control) const {
  std::error_code ec;
  const fs::path base = fs::canonical(*root_, ec);
  if (ec) return not_found(req.path);
  const fs::path real = fs::canonical(path, ec);  // resolves symlinks: the target must stay inside root
  if (ec || !inside(base, real) || !fs::is_regular_file(real, ec)) return not_found(req.path);
  const auto size = fs::file_size(real, ec);
  if (ec || size > max_file_bytes_) {
    core::log::error("console_file_unreadable", {{"path", real.string()}, {"bytes", ec ? 0 : size}});
    return with_csp(Response::problem(500, "Internal Server Error", "The console file " + req.path + " cannot be served."));
  }
  std::ifstream in(real, std::ios::binary);
  std::ostringstream body;
  body << in.rdbuf();
  if (!in.good() && !in.eof()) return not_found(req.path);

  Response r;
  r.body = std::move(body).str();
  const std::string etag = entity_tag(r.body);
  r.headers.set("ETag", etag);
  r.headers.set("Cache-Control", cache_control);
  if (auto inm = req.headers.get("If-None-Match"); inm && none_match(*inm, etag)) {
    r.status = 304;  // no body, same validators and caching (RFC 9110 §15.4.5)
    r.body.clear();
    return with_csp(std::move(r));
  }
  r.status = 200;
  r.headers.set("Content-Type", content_type(real.extension().string()));
  return with_csp(std::move(r));
}

Response StaticSite::index(const Request& req) const {
  if (!available()) return not_built();
  return file(req, *root_ / "index.html", kIndexCache);
}

Response StaticSite::asset(const Request& req, const std::string& name) const {
  if (!root_ || !safe_file_name(name)) return not_found(req.path);
  return file(req, *root_ / "assets" / name, kAssetCache);
}

void StaticSite::register_routes(core::http::Router& router) const {
  router.add("GET", "/", [this](Request& req) { return index(req); });
  router.add("GET", "/assets/{file}", [this](Request& req) { return asset(req, req.path_params.at("file")); });
}

}  // namespace orchestrator::api
