// docs/openapi.json documents exactly the routes ide-orchestrator registers (issue 3:
// "every route the server registers is documented and every documented route exists").
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/util.hpp"
#include "orchestrator/api/app.hpp"

namespace {

using Route = std::pair<std::string, std::string>;  // METHOD, path pattern

nlohmann::json load_openapi() {
  std::ifstream in(std::string(PROJECT_SOURCE_DIR) + "/docs/openapi.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

std::set<Route> documented(const nlohmann::json& doc) {
  std::set<Route> out;
  for (const auto& [path, ops] : doc.at("paths").items()) {
    for (const auto& [method, op] : ops.items()) {
      if (method == "parameters" || method == "summary" || method == "description") continue;
      std::string m = method;
      std::transform(m.begin(), m.end(), m.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
      out.insert({m, path});
    }
  }
  return out;
}

std::set<Route> registered() {
  const auto dir = std::filesystem::temp_directory_path() / ("openapi-test-" + core::random_hex(6));
  orchestrator::api::AppOptions o;
  o.db.sqlite_path = dir / "orchestrator.db";
  o.jwt.hs256_secret = std::string(40, 'k');
  o.engine.base_url = "http://127.0.0.1:9";
  o.refinement_agent_file = std::string(PROJECT_SOURCE_DIR) + "/config/refinement-agent.json";
  o.openapi_file = std::string(PROJECT_SOURCE_DIR) + "/docs/openapi.json";
  std::set<Route> out;
  {
    core::async::Runtime rt;
    rt.start();
    orchestrator::api::App app(o, rt);
    for (const auto& r : app.routes()) out.insert({r.method == "WS" ? "GET" : r.method, r.pattern});
  }
  std::filesystem::remove_all(dir);
  return out;
}

}  // namespace

TEST(OpenApi, IsAnOpenApi31Document) {
  const auto doc = load_openapi();
  EXPECT_EQ(doc.at("openapi").get<std::string>().rfind("3.1", 0), 0u);
  EXPECT_TRUE(doc.at("info").contains("title"));
  EXPECT_TRUE(doc.at("components").at("securitySchemes").contains("bearerAuth"));
}

TEST(OpenApi, EveryRegisteredRouteIsDocumented) {
  const auto docs = documented(load_openapi());
  for (const auto& r : registered()) {
    EXPECT_TRUE(docs.count(r)) << r.first << " " << r.second << " is registered but missing from docs/openapi.json";
  }
}

TEST(OpenApi, EveryDocumentedRouteExists) {
  const auto regs = registered();
  for (const auto& d : documented(load_openapi())) {
    EXPECT_TRUE(regs.count(d)) << d.first << " " << d.second << " is documented but the server does not register it";
  }
}

TEST(OpenApi, EveryOperationHasResponsesAndAnOperationId) {
  std::set<std::string> ids;
  for (const auto& [path, ops] : load_openapi().at("paths").items()) {
    for (const auto& [method, op] : ops.items()) {
      EXPECT_TRUE(op.contains("responses") && !op["responses"].empty()) << method << " " << path;
      ASSERT_TRUE(op.contains("operationId")) << method << " " << path;
      EXPECT_TRUE(ids.insert(op["operationId"].get<std::string>()).second) << "duplicate operationId at " << path;
    }
  }
}
