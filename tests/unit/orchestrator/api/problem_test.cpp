// Error mapping to RFC 9457 problem details.
#include "orchestrator/api/problem.hpp"

#include <gtest/gtest.h>

#include "orchestrator/domain/error.hpp"
#include "orchestrator/engine_client/engine_client.hpp"

namespace {

using core::http::Request;
using nlohmann::json;
using namespace orchestrator;

json body(const core::http::Response& r) { return json::parse(r.body); }

TEST(Problem, InvalidNamesTheField) {
  Request req;
  auto r = api::to_response(domain::InvalidError("user_prompt", "user_prompt must not be empty"), req);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.headers.get("Content-Type").value_or(""), "application/problem+json");
  EXPECT_EQ(body(r)["errors"][0]["field"], "user_prompt");
}

TEST(Problem, ConflictListsPaths) {
  Request req;
  auto r = api::to_response(domain::ConflictError("Both changed /a.md", {"/a.md"}), req);
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(body(r)["paths"][0], "/a.md");
}

TEST(Problem, EngineUnavailableIs503WithRetryAfter) {
  Request req;
  auto r = api::to_response(engine_client::EngineUnavailable("connect refused", std::chrono::seconds(7)), req);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.headers.get("Retry-After").value_or(""), "7");
  EXPECT_NE(body(r)["detail"].get<std::string>().find("try again in 7 seconds"), std::string::npos);
}

TEST(Problem, UnknownErrorsHideDetails) {
  Request req;
  req.request_id = "rid-1";
  auto r = api::to_response(std::runtime_error("SELECT secret FROM x failed"), req);
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.body.find("secret"), std::string::npos);
  EXPECT_NE(r.body.find("rid-1"), std::string::npos);
}

TEST(Problem, MalformedJsonAndWrongShape) {
  Request req;
  req.body = "{\"a\":";
  try {
    api::parse_json_object(req);
    FAIL();
  } catch (const api::ApiError& e) {
    EXPECT_EQ(e.response().status, 400);
    EXPECT_EQ(body(e.response())["errors"][0]["field"], "(body)");
  }
  req.body = "[1]";
  EXPECT_THROW(api::parse_json_object(req), api::ApiError);
  req.body = "{}";
  req.headers.set("Content-Type", "text/plain");
  try {
    api::parse_json_object(req);
    FAIL();
  } catch (const api::ApiError& e) {
    EXPECT_EQ(e.response().status, 415);
  }
}

TEST(Problem, MalformedIdsLookUnknown) {
  Request req;
  req.path_params["id"] = "not-a-uuid";
  EXPECT_THROW(api::uuid_param(req, "id", "proposal"), domain::NotFoundError);
}

}  // namespace
