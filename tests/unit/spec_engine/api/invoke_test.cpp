// POST /spec-engine/invoke parsing: plain JSON, structured and binary CloudEvents 1.0,
// and the 400/415 cases with every bad field named.
#include "spec_engine/api/invoke.hpp"

#include <gtest/gtest.h>

#include "spec_engine/api/routes.hpp"

namespace {

using spec_engine::api::InvokeError;
using spec_engine::api::ParsedInvoke;
using spec_engine::api::parse_invoke;

nlohmann::json definition() {
  return {{"graph",
           {{"nodes", nlohmann::json::array({{{"id", "main"},
                                              {"type", "AgentNode"},
                                              {"data", {{"name", "Main"}, {"system_prompt", "x"}, {"tools", {"ls"}}}}}})},
            {"edges", nlohmann::json::array()},
            {"entryPoint", "main"}}}};
}

nlohmann::json job(const std::string& id = "job-1") {
  return {{"trace_id", "t-1"}, {"job_id", id}, {"agent_definition", definition()}, {"input_payload", {{"messages", "hi"}}}};
}

core::http::Request request(const std::string& content_type, const std::string& body) {
  core::http::Request r;
  r.method = "POST";
  r.path = "/spec-engine/invoke";
  if (!content_type.empty()) r.headers.set("Content-Type", content_type);
  r.body = body;
  return r;
}

/// Field names of an error result (fails the test on success).
std::vector<std::string> fields(const std::variant<ParsedInvoke, InvokeError>& v, int status = 400) {
  const auto* e = std::get_if<InvokeError>(&v);
  EXPECT_TRUE(e);
  if (!e) return {};
  EXPECT_EQ(e->status, status);
  std::vector<std::string> out;
  for (const auto& f : e->errors) out.push_back(f.field);
  return out;
}

bool has(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

TEST(Invoke, PlainJson) {
  auto v = parse_invoke(request("application/json; charset=utf-8", job().dump()));
  ASSERT_TRUE(std::holds_alternative<ParsedInvoke>(v));
  const auto& p = std::get<ParsedInvoke>(v);
  EXPECT_EQ(p.mode, "json");
  EXPECT_EQ(p.job.job_id, "job-1");
  EXPECT_EQ(p.job.trace_id, "t-1");
  EXPECT_EQ(p.job.input_payload["messages"], "hi");
  EXPECT_TRUE(p.cloudevent.is_null());
}

TEST(Invoke, StructuredCloudEvent) {
  nlohmann::json ce = {{"specversion", "1.0"}, {"id", "ev-1"}, {"source", "/ide-orchestrator"},
                       {"type", "agent.execute.refinement"}, {"time", "2026-01-01T10:00:00Z"},
                       {"datacontenttype", "application/json"}, {"data", job("ce-job")}};
  auto v = parse_invoke(request("application/cloudevents+json", ce.dump()));
  ASSERT_TRUE(std::holds_alternative<ParsedInvoke>(v));
  const auto& p = std::get<ParsedInvoke>(v);
  EXPECT_EQ(p.mode, "cloudevent-structured");
  EXPECT_EQ(p.job.job_id, "ce-job");
  EXPECT_EQ(p.cloudevent["id"], "ev-1");
  EXPECT_FALSE(p.cloudevent.contains("data"));
}

TEST(Invoke, StructuredCloudEventValidation) {
  nlohmann::json ce = {{"specversion", "0.3"}, {"id", ""}, {"source", "has space"}, {"time", "yesterday"},
                       {"Bad_Name", 1}, {"data", {{"agent_definition", definition()}}}};
  auto f = fields(parse_invoke(request("application/cloudevents+json", ce.dump())));
  EXPECT_TRUE(has(f, "specversion"));
  EXPECT_TRUE(has(f, "id"));
  EXPECT_TRUE(has(f, "source"));
  EXPECT_TRUE(has(f, "type"));
  EXPECT_TRUE(has(f, "time"));
  EXPECT_TRUE(has(f, "Bad_Name"));
  EXPECT_TRUE(has(f, "data.job_id"));
  auto no_data = fields(parse_invoke(request("application/cloudevents+json",
                                             R"({"specversion":"1.0","id":"1","source":"s","type":"t"})")));
  EXPECT_TRUE(has(no_data, "data"));
  auto b64 = fields(parse_invoke(request("application/cloudevents+json",
                                         R"({"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"e30="})")));
  EXPECT_TRUE(has(b64, "data_base64"));
}

TEST(Invoke, BinaryCloudEvent) {
  auto r = request("application/json", job("bin-1").dump());
  r.headers.set("ce-specversion", "1.0");
  r.headers.set("ce-id", "ev-2");
  r.headers.set("ce-source", "urn:ide");
  r.headers.set("ce-type", "agent.execute");
  auto v = parse_invoke(r);
  ASSERT_TRUE(std::holds_alternative<ParsedInvoke>(v));
  EXPECT_EQ(std::get<ParsedInvoke>(v).mode, "cloudevent-binary");
  EXPECT_EQ(std::get<ParsedInvoke>(v).cloudevent["source"], "urn:ide");

  auto bad = request("application/json", job().dump());
  bad.headers.set("ce-specversion", "2.0");
  auto f = fields(parse_invoke(bad));
  EXPECT_TRUE(has(f, "ce-specversion"));
  EXPECT_TRUE(has(f, "ce-id"));
  EXPECT_TRUE(has(f, "ce-source"));
  EXPECT_TRUE(has(f, "ce-type"));

  auto wrong_ct = request("text/plain", job().dump());
  wrong_ct.headers.set("ce-specversion", "1.0");
  fields(parse_invoke(wrong_ct), 415);
}

TEST(Invoke, ContentTypes) {
  fields(parse_invoke(request("text/plain", job().dump())), 415);
  fields(parse_invoke(request("", job().dump())), 415);
  fields(parse_invoke(request("application/cloudevents-batch+json", "[]")), 415);
  // RFC 9110 §8.3.1: the media type is parsed; charset, if given, must be utf-8.
  for (const char* ct : {"application/jsonx", "application/json; charset=latin1", "text/json", "application/json x"})
    fields(parse_invoke(request(ct, job().dump())), 415);
  for (const char* ct : {"APPLICATION/JSON; Charset=\"UTF-8\"", "application/vnd.job+json", "application/json;v=1"}) {
    auto v = parse_invoke(request(ct, job().dump()));
    ASSERT_TRUE(std::holds_alternative<ParsedInvoke>(v)) << ct;
    EXPECT_EQ(std::get<ParsedInvoke>(v).mode, "json") << ct;
  }
  auto latin = request("application/cloudevents+json; charset=latin1", "{}");
  fields(parse_invoke(latin), 415);
}

TEST(Invoke, MalformedJsonAndShapes) {
  EXPECT_TRUE(has(fields(parse_invoke(request("application/json", "{\"job_id\": "))), "body"));
  EXPECT_TRUE(has(fields(parse_invoke(request("application/json", "[1,2]"))), "body"));
  EXPECT_TRUE(has(fields(parse_invoke(request("application/json", ""))), "body"));
}

TEST(Invoke, EveryBadFieldIsNamed) {
  nlohmann::json j = {{"trace_id", 5}, {"agent_definition", nlohmann::json::object()}, {"input_payload", "x"}};
  auto f = fields(parse_invoke(request("application/json", j.dump())));
  EXPECT_TRUE(has(f, "job_id"));
  EXPECT_TRUE(has(f, "trace_id"));
  EXPECT_TRUE(has(f, "agent_definition"));
  EXPECT_TRUE(has(f, "input_payload"));
}

TEST(Invoke, JobIdRules) {
  EXPECT_TRUE(spec_engine::api::is_valid_thread_id("550e8400-e29b-41d4-a716-446655440000"));
  EXPECT_TRUE(spec_engine::api::is_valid_thread_id("job_1.a-b"));
  EXPECT_FALSE(spec_engine::api::is_valid_thread_id(""));
  EXPECT_FALSE(spec_engine::api::is_valid_thread_id(".."));
  EXPECT_FALSE(spec_engine::api::is_valid_thread_id("a/b"));
  EXPECT_FALSE(spec_engine::api::is_valid_thread_id("a b"));
  EXPECT_FALSE(spec_engine::api::is_valid_thread_id(std::string(129, 'a')));
  EXPECT_TRUE(has(fields(parse_invoke(request("application/json", job("../x").dump()))), "job_id"));
  auto j = job();
  j["job_id"] = 12;
  EXPECT_TRUE(has(fields(parse_invoke(request("application/json", j.dump()))), "job_id"));
}

TEST(Invoke, DefinitionErrorsComeFromTheRuntimeValidator) {
  auto j = job();
  j["agent_definition"]["graph"]["entryPoint"] = "nobody";
  j["agent_definition"]["graph"]["nodes"][0]["data"]["tools"] = {"ls", "launch_missiles"};
  auto f = fields(parse_invoke(request("application/json", j.dump())));
  EXPECT_TRUE(has(f, "agent_definition.graph.entryPoint"));
  EXPECT_TRUE(has(f, "agent_definition.graph.nodes[0].data.tools[1]"));
}

TEST(Invoke, ProblemResponseShape) {
  auto v = parse_invoke(request("application/json", "{}"));
  auto r = std::get<InvokeError>(v).to_response();
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.headers.get("Content-Type"), "application/problem+json");
  auto body = nlohmann::json::parse(r.body);
  EXPECT_EQ(body["status"], 400);
  ASSERT_TRUE(body["errors"].is_array());
  EXPECT_EQ(body["errors"][0]["field"], "job_id");
}

}  // namespace
