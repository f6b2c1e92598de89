#pragma once
// The web console's static files (web/, built by Vite into build/web): served at `/`
// on the same origin as /api, so the browser needs no CORS.
//
//   GET /                 index.html, Cache-Control: no-cache, strong ETag (RFC 9110 §8.8.3),
//                         304 on a matching If-None-Match (RFC 9110 §13.1.2)
//   GET /assets/{file}    content-hashed bundles: Cache-Control: public, max-age=31536000,
//                         immutable (RFC 8246), same ETag handling
//
// Every answer carries the console's Content-Security-Policy (W3C CSP Level 3): scripts,
// styles and connections only from this origin, no inline script or style. When the
// console was not built (no npm at build time) `/` answers 404 with a page that says so;
// the API is unaffected.

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "core/router.hpp"

namespace orchestrator::api {

/// Content-Security-Policy of the console's documents and assets. Same-origin `connect-src`
/// covers the API and the WebSocket proxy (CSP3 'self' matches ws:/wss: of the same host).
inline constexpr std::string_view kConsoleCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Serves one built console directory (the one holding index.html and assets/).
class StaticSite {
 public:
  /// `root`: the built console directory, or nullopt when it was not built. Files are read
  /// per request (on the server's blocking pool), so a rebuilt console is served at once.
  explicit StaticSite(std::optional<std::filesystem::path> root, std::size_t max_file_bytes = 32u << 20);

  /// True when `root` holds an index.html.
  bool available() const;
  /// The directory served, if any.
  const std::optional<std::filesystem::path>& root() const { return root_; }

  /// GET `/`: index.html, or a 404 HTML page explaining how to build the console.
  core::http::Response index(const core::http::Request& req) const;
  /// GET `/assets/{file}`: one file of root/assets. 404 problem details for names that are
  /// not a plain file name ([A-Za-z0-9][A-Za-z0-9._-]*, no ".."), for files outside root
  /// (symlinks are resolved first) and for missing files; 500 for files over max_file_bytes.
  core::http::Response asset(const core::http::Request& req, const std::string& name) const;

  /// Registers GET / and GET /assets/{file}. `this` must outlive the router.
  void register_routes(core::http::Router& router) const;

  /// Media type for a file extension such as ".js" (RFC 9239 for JavaScript, RFC 6838
  /// registrations otherwise); application/octet-stream when unknown.
  static std::string content_type(std::string_view extension);
  /// True if `name` is a single safe path segment: [A-Za-z0-9][A-Za-z0-9._-]*, no "..",
  /// at most 255 bytes.
  static bool safe_file_name(std::string_view name);
  /// Strong entity tag of `body` (quoted hex of a SHA-256 prefix, RFC 9110 §8.8.3).
  static std::string entity_tag(std::string_view body);
  /// True if an If-None-Match header value matches `etag` (weak comparison, "*" matches;
  /// RFC 9110 §13.1.2).
  static bool none_match(std::string_view if_none_match, std::string_view etag);

 private:
  core::http::Response file(const core::http::Request& req, const std::filesystem::path& path,
                            const std::string& cache_control) const;

  std::optional<std::filesystem::path> root_;
  std::size_t max_file_bytes_;
};

}  // namespace orchestrator::api
