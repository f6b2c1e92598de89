// The parse step of the orchestrator's handlers (src/orchestrator/api/commands.hpp).
#include <gtest/gtest.h>

#include "orchestrator/api/commands.hpp"
#include "orchestrator/api/problem.hpp"
#include "orchestrator/domain/error.hpp"

namespace {

using namespace orchestrator::api;

core::http::Request body(const std::string& b, const std::string& content_type = "application/json") {
  core::http::Request r;
  r.method = "POST";
  if (!content_type.empty()) r.headers.set("Content-Type", content_type);
  r.body = b;
  return r;
}

/// Status and field names of the ApiError `f` throws.
std::pair<int, std::vector<std::string>> refusal(const std::function<void()>& f) {
  try {
    f();
  } catch (const ApiError& e) {
    const auto j = nlohmann::json::parse(e.response().body);
    std::vector<std::string> fields;
    if (j.contains("errors"))
      for (const auto& x : j["errors"]) fields.push_back(x["field"]);
    return {e.response().status, fields};
  }
  return {0, {}};
}

TEST(Commands, Login) {
  const auto c = parse_login(body(R"({"email":"a@example.com","password":"pw"})"));
  EXPECT_EQ(c.email, "a@example.com");
  EXPECT_EQ(c.password, "pw");
  EXPECT_EQ(refusal([] { parse_login(body(R"({"email":""})")); }),
            (std::pair<int, std::vector<std::string>>{400, {"email", "password"}}));
  EXPECT_EQ(refusal([] { parse_login(body("{}", "text/plain")); }).first, 415);
}

// RFC 9110 §8.3.1: the media type is parsed, not searched for "json".
TEST(Commands, BodiesMustBeSentAsJson) {
  const std::string login = R"({"email":"a@example.com","password":"pw"})";
  for (const std::string ct : {"application/json", "Application/JSON; charset=UTF-8", "application/json;profile=x",
                               "application/vnd.example+json"})
    EXPECT_EQ(parse_login(body(login, ct)).email, "a@example.com") << ct;
  EXPECT_EQ(parse_login(body(login, "")).email, "a@example.com");  // no Content-Type at all: read as JSON
  for (const std::string ct : {"application/jsonx", "text/json", "application/json; charset=iso-8859-1",
                               "text/plain; a=application/json", "application/json-patch"}) {
    try {
      parse_login(body(login, ct));
      ADD_FAILURE() << "accepted " << ct;
    } catch (const ApiError& e) {
      const auto j = nlohmann::json::parse(e.response().body);
      EXPECT_EQ(e.response().status, 415) << ct;
      EXPECT_EQ(j["type"], "https://agentic-ide.dev/problems/unsupported-media-type");
      EXPECT_NE(j["detail"].get<std::string>().find("got '" + ct + "'"), std::string::npos) << j.dump();
    }
  }
}

TEST(Commands, CreateWorkflowRefusesTemplateWithFiles) {
  const auto c = parse_create_workflow(body(R"({"name":"W","files":{"/a.md":{"content":"x"}}})"));
  EXPECT_EQ(c.name, "W");
  ASSERT_TRUE(c.files);
  EXPECT_FALSE(c.template_name);
  EXPECT_EQ(refusal([] { parse_create_workflow(body(R"({"name":"W","template":"t","files":{}})")); }).second,
            std::vector<std::string>{"files"});
}

TEST(Commands, RevisionsAreBounded) {
  EXPECT_FALSE(parse_publish_version(body("")).base_revision);
  EXPECT_EQ(parse_publish_version(body(R"({"base_revision":7})")).base_revision, 7);
  for (const char* b : {R"({"base_revision":0})", R"({"base_revision":9007199254740992})",
                        R"({"base_revision":9223372036854775808})", R"({"base_revision":1.5})"})
    EXPECT_EQ(refusal([b] { parse_publish_version(body(b)); }).second, std::vector<std::string>{"base_revision"}) << b;
  EXPECT_EQ(refusal([] { parse_put_draft_files(body(R"({"files":{}})")); }).second,
            std::vector<std::string>{"base_revision"});
  EXPECT_EQ(parse_put_draft_files(body(R"({"files":{},"base_revision":3})")).base_revision, 3);
}

TEST(Commands, RefinementChecksTheContextPath) {
  const auto c = parse_start_refinement(body(R"({"user_prompt":"go","context_file_path":"/a.md"})"));
  EXPECT_EQ(c.context_file_path, "/a.md");
  try {
    parse_start_refinement(body(R"({"user_prompt":"go","context_file_path":"/x\\..\\y"})"));
    ADD_FAILURE();
  } catch (const orchestrator::domain::InvalidError& e) {
    EXPECT_EQ(e.field(), "context_file_path");
  }
  EXPECT_EQ(refusal([] { parse_start_refinement(body(R"({"user_prompt":"go","context_selection":7})")); }).second,
            std::vector<std::string>{"context_selection"});
}

TEST(Commands, DeployNamesAnOptionalBoundedVersion) {
  EXPECT_FALSE(parse_deploy(body("")).version);
  EXPECT_FALSE(parse_deploy(body("{}")).version);
  EXPECT_EQ(parse_deploy(body(R"({"version":2})")).version, 2);
  for (const char* b : {R"({"version":0})", R"({"version":"2"})", R"({"version":9223372036854775808})"})
    EXPECT_EQ(refusal([b] { parse_deploy(body(b)); }).second, std::vector<std::string>{"version"}) << b;
}

TEST(Commands, StartRunTakesAMessageAndAVersionOrTheDraft) {
  const auto deployed = parse_start_run(body(R"({"input":"Brief me"})"));
  EXPECT_EQ(deployed.input, "Brief me");
  EXPECT_FALSE(deployed.version);
  EXPECT_FALSE(deployed.draft);
  EXPECT_EQ(parse_start_run(body(R"({"input":"go","version":3})")).version, 3);
  const auto draft = parse_start_run(body(R"({"input":"go","version":"draft"})"));
  EXPECT_TRUE(draft.draft);
  EXPECT_FALSE(draft.version);
  EXPECT_FALSE(parse_start_run(body(R"({"input":"go","version":null})")).version);
  for (const char* b : {R"({"input":"go","version":0})", R"({"input":"go","version":"latest"})",
                        R"({"input":"go","version":1.5})", R"({"input":"go","version":9007199254740992})"})
    EXPECT_EQ(refusal([b] { parse_start_run(body(b)); }).second, std::vector<std::string>{"version"}) << b;
  EXPECT_EQ(refusal([] { parse_start_run(body(R"({"version":1})")); }).second, std::vector<std::string>{"input"});
  const std::string long_input = R"({"input":")" + std::string(kMaxRunInputBytes + 1, 'x') + R"("})";
  EXPECT_EQ(refusal([&] { parse_start_run(body(long_input)); }).second, std::vector<std::string>{"input"});
}

}  // namespace
