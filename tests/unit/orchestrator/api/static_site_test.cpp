// The web console's static files: content types, caching and ETags, CSP, path checks.
#include "orchestrator/api/static_site.hpp"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/util.hpp"
#include "orchestrator/api/middleware.hpp"

namespace {

namespace fs = std::filesystem;
using core::http::Request;
using core::http::Response;
using orchestrator::api::StaticSite;

class StaticSiteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() / ("static-site-" + core::random_hex(6));
    root_ = base_ / "web";
    fs::create_directories(root_ / "assets");
    write(root_ / "index.html", "<!doctype html><title>Console</title><script type=\"module\" src=\"/assets/index-AbC123.js\"></script>");
    write(root_ / "assets" / "index-AbC123.js", "console.log('hi');");
    write(root_ / "assets" / "index-Def456.css", "body{margin:0}");
    write(root_ / "assets" / "logo-9f8e.svg", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>");
    write(base_ / "secret.txt", "do not serve");
  }
  void TearDown() override { fs::remove_all(base_); }

  static void write(const fs::path& p, const std::string& s) { std::ofstream(p, std::ios::binary) << s; }
  static Request get(const std::string& path) {
    Request r;
    r.method = "GET";
    r.path = path;
    r.target = path;
    r.headers.set("Host", "127.0.0.1:8080");
    return r;
  }
  /// Runs GET `path` through a router holding the console routes, as the server would.
  Response route(const StaticSite& site, Request req) {
    core::http::Router router;
    site.register_routes(router);
    auto m = router.match(req.method, req.path, false);
    if (!m.handler) return Response::problem(404, "Not Found", "no route");
    req.path_params = m.params;
    return (*m.handler)(req);
  }

  fs::path base_, root_;
};

TEST(StaticSiteRules, ContentTypes) {
  EXPECT_EQ(StaticSite::content_type(".html"), "text/html; charset=utf-8");
  EXPECT_EQ(StaticSite::content_type(".js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(StaticSite::content_type(".css"), "text/css; charset=utf-8");
  EXPECT_EQ(StaticSite::content_type(".svg"), "image/svg+xml");
  EXPECT_EQ(StaticSite::content_type(".woff2"), "font/woff2");
  EXPECT_EQ(StaticSite::content_type(".exe"), "application/octet-stream");
  EXPECT_EQ(StaticSite::content_type(""), "application/octet-stream");
}

TEST(StaticSiteRules, SafeFileNames) {
  EXPECT_TRUE(StaticSite::safe_file_name("index-AbC123.js"));
  EXPECT_TRUE(StaticSite::safe_file_name("diff2html_x.min.css"));
  for (const char* bad : {"", "..", "...", "../secret.txt", "a/b", "a\\b", ".hidden", "-x", "a..b", "a b", "a%2fb",
                          "a\nb", "\xc3\xa9.js"}) {
    EXPECT_FALSE(StaticSite::safe_file_name(bad)) << bad;
  }
  EXPECT_FALSE(StaticSite::safe_file_name(std::string(256, 'a')));
  EXPECT_FALSE(StaticSite::safe_file_name(std::string("a\0b", 3)));
}

TEST(StaticSiteRules, EntityTagsAndIfNoneMatch) {
  const std::string a = StaticSite::entity_tag("one"), b = StaticSite::entity_tag("two");
  EXPECT_NE(a, b);
  EXPECT_EQ(a, StaticSite::entity_tag("one"));
  EXPECT_EQ(a.front(), '"');
  EXPECT_EQ(a.back(), '"');
  EXPECT_TRUE(StaticSite::none_match(a, a));
  EXPECT_TRUE(StaticSite::none_match("W/" + a, a));
  EXPECT_TRUE(StaticSite::none_match(b + ", " + a, a));
  EXPECT_TRUE(StaticSite::none_match("*", a));
  EXPECT_FALSE(StaticSite::none_match(b, a));
  EXPECT_FALSE(StaticSite::none_match("", a));
}

TEST_F(StaticSiteTest, IndexIsRevalidatedWithAnEtagAndTheConsolePolicy) {
  StaticSite site(root_);
  ASSERT_TRUE(site.available());
  Response r = route(site, get("/"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.get("Content-Type").value_or(""), "text/html; charset=utf-8");
  EXPECT_EQ(r.headers.get("Cache-Control").value_or(""), "no-cache");
  EXPECT_NE(r.body.find("/assets/index-AbC123.js"), std::string::npos);
  const std::string csp = r.headers.get("Content-Security-Policy").value_or("");
  EXPECT_NE(csp.find("script-src 'self'"), std::string::npos);
  EXPECT_NE(csp.find("style-src 'self'"), std::string::npos);
  EXPECT_EQ(csp.find("unsafe-inline"), std::string::npos);
  EXPECT_EQ(csp.find("unsafe-eval"), std::string::npos);
  const std::string etag = r.headers.get("ETag").value_or("");
  ASSERT_FALSE(etag.empty());

  Request again = get("/");
  again.headers.set("If-None-Match", etag);
  Response r304 = route(site, again);
  EXPECT_EQ(r304.status, 304);
  EXPECT_TRUE(r304.body.empty());
  EXPECT_EQ(r304.headers.get("ETag").value_or(""), etag);

  write(root_ / "index.html", "<!doctype html><title>Rebuilt</title>");  // a rebuilt console is served at once
  Response changed = route(site, again);
  EXPECT_EQ(changed.status, 200);
  EXPECT_NE(changed.headers.get("ETag").value_or(""), etag);
  EXPECT_NE(changed.body.find("Rebuilt"), std::string::npos);
}

TEST_F(StaticSiteTest, HashedAssetsAreImmutableWithTheirContentType) {
  StaticSite site(root_);
  struct Case {
    const char* path;
    const char* type;
  };
  for (const Case& c : {Case{"/assets/index-AbC123.js", "text/javascript; charset=utf-8"},
                        Case{"/assets/index-Def456.css", "text/css; charset=utf-8"},
                        Case{"/assets/logo-9f8e.svg", "image/svg+xml"}}) {
    Response r = route(site, get(c.path));
    EXPECT_EQ(r.status, 200) << c.path;
    EXPECT_EQ(r.headers.get("Content-Type").value_or(""), c.type) << c.path;
    EXPECT_EQ(r.headers.get("Cache-Control").value_or(""), "public, max-age=31536000, immutable") << c.path;
    EXPECT_TRUE(r.headers.get("ETag")) << c.path;
    EXPECT_TRUE(r.headers.get("Content-Security-Policy")) << c.path;
  }
  EXPECT_EQ(route(site, get("/assets/index-AbC123.js")).body, "console.log('hi');");
}

TEST_F(StaticSiteTest, MissingAndEscapingPathsAre404) {
  StaticSite site(root_);
  fs::create_symlink(base_ / "secret.txt", root_ / "assets" / "link.txt");
  for (const char* name : {"missing.js", "..", "../secret.txt", ".hidden", "link.txt"}) {
    Request req = get(std::string("/assets/") + name);
    Response r = site.asset(req, name);
    EXPECT_EQ(r.status, 404) << name;
    EXPECT_EQ(r.body.find("do not serve"), std::string::npos) << name;
  }
  // Through the router: a decoded "/" never reaches the handler as part of one name.
  EXPECT_EQ(route(site, get("/assets/../secret.txt")).status, 404);
  EXPECT_EQ(route(site, get("/assets")).status, 404);
  // A directory is not a file.
  fs::create_directories(root_ / "assets" / "sub");
  EXPECT_EQ(site.asset(get("/assets/sub"), "sub").status, 404);
}

TEST_F(StaticSiteTest, OversizedFilesAreRefused) {
  StaticSite site(root_, 8);
  EXPECT_EQ(site.asset(get("/assets/index-AbC123.js"), "index-AbC123.js").status, 500);
}

TEST_F(StaticSiteTest, WithoutABuildTheRootPageSaysSo) {
  for (const StaticSite& site : {StaticSite(std::nullopt), StaticSite(base_ / "nowhere")}) {
    EXPECT_FALSE(site.available());
    Response r = route(site, get("/"));
    EXPECT_EQ(r.status, 404);
    EXPECT_EQ(r.headers.get("Content-Type").value_or(""), "text/html; charset=utf-8");
    EXPECT_NE(r.body.find("was not built"), std::string::npos);
    EXPECT_NE(r.body.find("make build"), std::string::npos);
    EXPECT_NE(r.body.find("--web-dir"), std::string::npos);
    EXPECT_EQ(route(site, get("/assets/index-AbC123.js")).status, 404);
  }
}

TEST_F(StaticSiteTest, MiddlewareKeepsTheConsolePolicyAndTheApiKeepsItsOwn) {
  StaticSite site(root_);
  auto mw = orchestrator::api::make_middleware({}, [](const std::string&) -> nlohmann::json {
    return {{"user_id", "11111111-1111-4111-8111-111111111111"}};
  });
  Request req = get("/");
  EXPECT_FALSE(mw.before(req)) << "the console needs no token";
  Response r = site.index(req);
  mw.after(req, r);
  EXPECT_EQ(r.headers.get("Content-Security-Policy").value_or(""), std::string(orchestrator::api::kConsoleCsp));
  EXPECT_EQ(r.headers.get("X-Content-Type-Options").value_or(""), "nosniff");
  EXPECT_EQ(r.headers.get("Cache-Control").value_or(""), "no-cache");

  Request api = get("/api/workflows");
  Response j = Response::json(200, {{"items", nlohmann::json::array()}});
  mw.after(api, j);
  EXPECT_EQ(j.headers.get("Content-Security-Policy").value_or(""), "default-src 'none'; frame-ancestors 'none'");
  EXPECT_EQ(j.headers.get("Cache-Control").value_or(""), "no-store");
}

}  // namespace
