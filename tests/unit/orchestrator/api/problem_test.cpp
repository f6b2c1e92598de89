// Error mapping to RFC 9457 problem details.
#include "orchestrator/api/problem.hpp"

#include <gtest/gtest.h>

#include "orchestrator/domain/error.hpp"
#include "orchestrator/engine_client/engine_client.hpp"
#include "orchestrator/store/unit_of_work.hpp"

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
  // The field is named once: not "Field 'user_prompt' user_prompt must not be empty."
  EXPECT_EQ(body(r)["errors"][0]["message"], "must not be empty");
  EXPECT_EQ(body(r)["detail"], "Field 'user_prompt' must not be empty.");
  r = api::to_response(domain::InvalidError("files./a", "file path must name a file"), req);
  EXPECT_EQ(body(r)["detail"], "Field 'files./a' file path must name a file.");
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

// The database could not do the work now (store/unit_of_work.hpp): 503 with Retry-After, typed,
// saying whether the change may have been applied; a busy pool (any core::Unavailable) too.
// An engine 413 is the caller's too-large job (413 job-too-large with the engine's numeric
// limit); any other refusal is a 502 engine-rejected.
TEST(Problem, EngineRefusalsAre413ForATooLargeJobElse502) {
  Request req;
  auto r = api::to_response(
      engine_client::EngineRejected(413, "the job is 9 bytes as JSON", json{{"limit", 8}, {"status", 413}}), req);
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(body(r)["type"], "https://agentic-ide.dev/problems/job-too-large");
  EXPECT_EQ(body(r)["limit"], 8);
  EXPECT_NE(body(r)["detail"].get<std::string>().find("the job is 9 bytes as JSON"), std::string::npos);
  r = api::to_response(engine_client::EngineRejected(413, "too big", json{{"limit", "lots"}}), req);
  EXPECT_EQ(r.status, 413);
  EXPECT_FALSE(body(r).contains("limit"));  // only a number is passed on
  r = api::to_response(engine_client::EngineRejected(400, "bad job", json{{"errors", json::array()}}), req);
  EXPECT_EQ(r.status, 502);
  EXPECT_EQ(body(r)["type"], "https://agentic-ide.dev/problems/engine-rejected");
  EXPECT_EQ(body(r)["engine_status"], 400);
}

TEST(Problem, DatabaseUnavailableIs503WithRetryAfter) {
  Request req;
  auto r = api::to_response(store::DatabaseUnavailable("The database is not reachable right now; nothing was changed.",
                                                       std::chrono::seconds(2), false),
                            req);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.headers.get("Retry-After").value_or(""), "2");
  EXPECT_EQ(body(r)["type"], api::problem_type("database-unavailable"));
  EXPECT_EQ(body(r)["maybe_applied"], false);
  EXPECT_NE(body(r)["detail"].get<std::string>().find("nothing was changed"), std::string::npos);
  r = api::to_response(store::DatabaseUnavailable("lost while saving", std::chrono::seconds(0), true), req);
  EXPECT_EQ(r.headers.get("Retry-After").value_or(""), "1");  // at least 1 s
  EXPECT_EQ(body(r)["maybe_applied"], true);
  r = api::to_response(core::Unavailable("pool exhausted", std::chrono::seconds(3)), req);
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.headers.get("Retry-After").value_or(""), "3");
  EXPECT_EQ(body(r)["detail"].get<std::string>().find("pool"), std::string::npos);  // no internals
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

TEST(Problem, HostileBodiesAre400sNamingTheLimitOrTheField) {
  Request req;
  auto problem_of = [&](const std::string& text) {
    req.body = text;
    try {
      api::parse_json_object(req);
    } catch (const api::ApiError& e) {
      return e.response();
    }
    ADD_FAILURE() << "accepted: " << text.substr(0, 80);
    return core::http::Response{};
  };
  // Nested 150,000 deep: refused while parsing (it used to overflow the stack on copy).
  auto r = problem_of(R"({"files": )" + std::string(150000, '[') + std::string(150000, ']') + "}");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body(r)["title"], "JSON nested too deeply");
  EXPECT_EQ(body(r)["limit"], 64);
  EXPECT_EQ(body(r)["type"], api::problem_type("json-too-deep"));
  EXPECT_EQ(body(r)["errors"][0]["field"], "(body)");
  EXPECT_NE(body(r)["detail"].get<std::string>().find("files[0][0][0]"), std::string::npos) << r.body;
  // 1e999 anywhere: a 400 naming the field (it used to be a 500, out_of_range.406).
  r = problem_of(R"({"files": {"/a.md": {"content": ["x", 1e999]}}, "base_revision": 1})");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body(r)["type"], api::problem_type("number-out-of-range"));
  EXPECT_EQ(body(r)["errors"][0]["field"], R"(files["/a.md"].content[1])");
  r = problem_of("1e999");
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(body(r)["errors"][0]["field"], "(body)");
}

TEST(Problem, StringFieldsRefuseNul) {
  std::vector<api::FieldProblem> errors;
  const json b = {{"name", std::string("a\0b", 3)}, {"note", std::string("\0", 1)}, {"ok", "fine"}};
  EXPECT_EQ(api::req_string(b, "name", errors), "");
  EXPECT_FALSE(api::opt_string(b, "note", errors).has_value());
  EXPECT_EQ(api::opt_string(b, "ok", errors).value(), "fine");
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].field, "name");
  EXPECT_EQ(errors[1].field, "note");
  EXPECT_NE(errors[0].message.find("NUL"), std::string::npos);
}

TEST(Problem, MalformedIdsLookUnknown) {
  Request req;
  req.path_params["id"] = "not-a-uuid";
  EXPECT_THROW(api::uuid_param(req, "id", "proposal"), domain::NotFoundError);
}

}  // namespace
