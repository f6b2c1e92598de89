#include "core/tracing.hpp"

#include <gtest/gtest.h>

using core::tracing::parse_traceparent;

TEST(Tracing, ParsesValidTraceparent) {
  auto c = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(c->span_id, "00f067aa0ba902b7");
  EXPECT_TRUE(c->sampled);
  EXPECT_EQ(c->to_traceparent(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
}

TEST(Tracing, RejectsMalformedTraceparent) {
  EXPECT_FALSE(parse_traceparent(""));
  EXPECT_FALSE(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"));  // zero trace id
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"));  // zero span id
  EXPECT_FALSE(parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"));  // upper case
  EXPECT_FALSE(parse_traceparent("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));  // version ff
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"));  // v00 too long
  EXPECT_TRUE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-later"));  // future version
}

TEST(Tracing, ChildKeepsTraceIdWithNewSpan) {
  const auto root = core::tracing::new_root();
  const auto child = core::tracing::child_of(root);
  EXPECT_EQ(child.trace_id, root.trace_id);
  EXPECT_NE(child.span_id, root.span_id);
  EXPECT_TRUE(parse_traceparent(child.to_traceparent()));
}

namespace {

/// The value of attribute `key` in an OTLP/JSON KeyValue list (null when absent).
nlohmann::json attr(const nlohmann::json& kvs, const std::string& key) {
  for (const auto& kv : kvs)
    if (kv["key"] == key) return kv["value"];
  return nullptr;
}

}  // namespace

TEST(Tracing, StartSpanContinuesTheParentOrStartsATrace) {
  const auto parent = *parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  core::tracing::Span child = core::tracing::start_span("child", parent, core::tracing::kClient);
  const auto j = child.to_otlp();
  EXPECT_EQ(j["traceId"], parent.trace_id);
  EXPECT_EQ(j["parentSpanId"], parent.span_id);
  EXPECT_NE(j["spanId"], parent.span_id);
  EXPECT_EQ(j["kind"], 3);
  core::tracing::Span root = core::tracing::start_span("root", std::nullopt, core::tracing::kInternal);
  EXPECT_FALSE(root.to_otlp().contains("parentSpanId"));
  EXPECT_NE(root.context().trace_id, parent.trace_id);
}

TEST(Tracing, OtlpJsonMapsAttributesLinksEventsAndErrors) {
  core::tracing::Span span("op", core::tracing::new_root(), std::nullopt, core::tracing::kInternal);
  span.set_attribute("s", "text");
  span.set_attribute("i", 42);
  span.set_attribute("d", 0.5);
  span.set_attribute("b", true);
  span.set_attribute("a", nlohmann::json::array({"stop", 2}));
  span.set_attribute("o", {{"k", 1}});
  const auto linked = core::tracing::new_root();
  span.add_link(linked, {{"why", "refinement"}});
  span.add_event("engine.error", {{"message", "boom"}});
  EXPECT_FALSE(span.failed());
  span.set_error("it broke", "tool_error");
  EXPECT_TRUE(span.failed());
  const auto j = span.to_otlp();
  EXPECT_EQ(attr(j["attributes"], "s"), (nlohmann::json{{"stringValue", "text"}}));
  EXPECT_EQ(attr(j["attributes"], "i"), (nlohmann::json{{"intValue", "42"}}));  // int64 as a string (OTLP/JSON)
  EXPECT_EQ(attr(j["attributes"], "d"), (nlohmann::json{{"doubleValue", 0.5}}));
  EXPECT_EQ(attr(j["attributes"], "b"), (nlohmann::json{{"boolValue", true}}));
  EXPECT_EQ(attr(j["attributes"], "a"),
            (nlohmann::json{{"arrayValue", {{"values", {{{"stringValue", "stop"}}, {{"intValue", "2"}}}}}}}));
  EXPECT_EQ(attr(j["attributes"], "o"), (nlohmann::json{{"stringValue", R"({"k":1})"}}));
  EXPECT_EQ(attr(j["attributes"], "error.type"), (nlohmann::json{{"stringValue", "tool_error"}}));
  EXPECT_EQ(j["status"], (nlohmann::json{{"code", 2}, {"message", "it broke"}}));
  ASSERT_EQ(j["links"].size(), 1u);
  EXPECT_EQ(j["links"][0]["traceId"], linked.trace_id);
  EXPECT_EQ(j["links"][0]["spanId"], linked.span_id);
  EXPECT_EQ(attr(j["links"][0]["attributes"], "why"), (nlohmann::json{{"stringValue", "refinement"}}));
  ASSERT_EQ(j["events"].size(), 1u);
  EXPECT_EQ(j["events"][0]["name"], "engine.error");
  EXPECT_FALSE(j["events"][0]["timeUnixNano"].get<std::string>().empty());
  EXPECT_LE(std::stoll(j["startTimeUnixNano"].get<std::string>()), std::stoll(j["endTimeUnixNano"].get<std::string>()));
}

TEST(Tracing, LinksAndEventsAreBoundedAndCounted) {
  core::tracing::Span span("op", core::tracing::new_root(), std::nullopt, core::tracing::kInternal);
  for (std::size_t i = 0; i < core::tracing::kMaxEvents + 3; ++i) span.add_event("e");
  for (std::size_t i = 0; i < core::tracing::kMaxLinks + 2; ++i) span.add_link(core::tracing::new_root());
  const auto j = span.to_otlp();
  EXPECT_EQ(j["events"].size(), core::tracing::kMaxEvents);
  EXPECT_EQ(j["droppedEventsCount"], 3);
  EXPECT_EQ(j["links"].size(), core::tracing::kMaxLinks);
  EXPECT_EQ(j["droppedLinksCount"], 2);
}

TEST(Tracing, EndedSpansReachTheTestSinkOnceAndMovedFromSpansNever) {
  std::vector<nlohmann::json> got;
  core::tracing::set_test_sink([&](const nlohmann::json& s) { got.push_back(s); });
  {
    core::tracing::Span a("a", core::tracing::new_root(), std::nullopt, core::tracing::kInternal);
    a.end();
    a.end();  // idempotent
    core::tracing::Span b("b", core::tracing::new_root(), std::nullopt, core::tracing::kInternal);
    core::tracing::Span moved(std::move(b));  // b exports nothing; `moved` does, once, at scope end
    auto unsampled = core::tracing::new_root();
    unsampled.sampled = false;
    core::tracing::Span c("c", unsampled, std::nullopt, core::tracing::kInternal);
  }
  core::tracing::set_test_sink({});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0]["name"], "a");
  EXPECT_EQ(got[1]["name"], "b");
}
