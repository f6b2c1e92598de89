#include "core/json_parse.hpp"

#include <random>

#include <gtest/gtest.h>

using core::json::ErrorKind;
using core::json::Limits;
using core::json::ParseError;
using nlohmann::json;

namespace {

ParseError error_of(std::string_view text, const Limits& limits = {}) {
  auto r = core::json::try_parse(text, limits);
  if (auto* e = std::get_if<ParseError>(&r)) return *e;
  ADD_FAILURE() << "parsed: " << std::string(text.substr(0, 80));
  return {};
}

std::string nested(char open, char close, std::size_t depth) {
  return std::string(depth, open) + std::string(depth, close);
}

/// 100,000 nested objects: {"a":{"a":...{}...}}.
std::string nested_objects(std::size_t depth) {
  std::string s;
  for (std::size_t i = 0; i < depth; ++i) s += "{\"a\":";
  s += "{}";
  s += std::string(depth, '}');
  return s;
}

json random_value(std::mt19937& rng, int depth) {
  std::uniform_int_distribution<int> kind(0, depth > 0 ? 7 : 5);
  switch (kind(rng)) {
    case 0: return nullptr;
    case 1: return std::uniform_int_distribution<int>(0, 1)(rng) == 1;
    case 2: return std::uniform_int_distribution<long long>(-1'000'000'000'000LL, 1'000'000'000'000LL)(rng);
    case 3: return std::uniform_real_distribution<double>(-1e300, 1e300)(rng);
    case 4: return std::uniform_int_distribution<unsigned long long>()(rng);
    case 5: {
      std::string s;
      const char* alphabet[] = {"a", "Z", " ", "\"", "\\", "\n", "\t", "/", "\xC3\xA9", "\xE2\x82\xAC", "\x01"};
      const int n = std::uniform_int_distribution<int>(0, 8)(rng);
      for (int i = 0; i < n; ++i) s += alphabet[std::uniform_int_distribution<int>(0, 10)(rng)];
      return s;
    }
    case 6: {
      json a = json::array();
      const int n = std::uniform_int_distribution<int>(0, 4)(rng);
      for (int i = 0; i < n; ++i) a.push_back(random_value(rng, depth - 1));
      return a;
    }
    default: {
      json o = json::object();
      const int n = std::uniform_int_distribution<int>(0, 4)(rng);
      for (int i = 0; i < n; ++i) o["k" + std::to_string(i) + (i % 2 ? "/x" : "")] = random_value(rng, depth - 1);
      return o;
    }
  }
}

}  // namespace

TEST(JsonParse, ParsesLikeNlohmann) {
  const auto j = core::json::parse(R"({"a": [1, 2.5, "x", null, true, {"b": -3}], "u": 18446744073709551615})");
  EXPECT_EQ(j, json::parse(R"({"a": [1, 2.5, "x", null, true, {"b": -3}], "u": 18446744073709551615})"));
  EXPECT_TRUE(j["u"].is_number_unsigned());
}

TEST(JsonParse, RandomDocumentsRoundTrip) {
  std::mt19937 rng(20260101);
  for (int i = 0; i < 2000; ++i) {
    const json v = random_value(rng, 6);
    const std::string text = v.dump();
    auto r = core::json::try_parse(text);
    ASSERT_TRUE(std::holds_alternative<json>(r)) << text;
    EXPECT_EQ(std::get<json>(r), v) << text;
  }
}

TEST(JsonParse, DeepArraysAreRefusedWithoutCrashing) {
  // The crash of the issue: 150,000 nested arrays in 300 KB.
  const auto e = error_of(nested('[', ']', 150'000));
  EXPECT_EQ(e.kind, ErrorKind::too_deep);
  EXPECT_NE(e.message.find("limit of 64 levels"), std::string::npos) << e.message;
  EXPECT_EQ(e.path, "[0][0][0][0]…");
}

TEST(JsonParse, DeepObjectsAreRefusedWithoutCrashing) {
  const auto e = error_of(nested_objects(100'000));
  EXPECT_EQ(e.kind, ErrorKind::too_deep);
  EXPECT_EQ(e.path, "a.a.a.a…");
}

TEST(JsonParse, DepthLimitIsExact) {
  Limits l;
  l.max_depth = 5;
  EXPECT_TRUE(std::holds_alternative<json>(core::json::try_parse(nested('[', ']', 5), l)));
  EXPECT_EQ(error_of(nested('[', ']', 6), l).kind, ErrorKind::too_deep);
  EXPECT_TRUE(std::holds_alternative<json>(core::json::try_parse(nested('[', ']', 64))));
  EXPECT_EQ(error_of(nested('[', ']', 65)).kind, ErrorKind::too_deep);
  // Depth counts containers on one path, not containers in total.
  std::string wide = "[";
  for (int i = 0; i < 1000; ++i) wide += std::string(i ? "," : "") + "[[1]]";
  wide += "]";
  EXPECT_TRUE(std::holds_alternative<json>(core::json::try_parse(wide, l)));
}

TEST(JsonParse, InternalLimitsLeaveRoomForEnvelopes) {
  // An engine event wraps tool arguments that passed the input limit in three more levels.
  const std::string args = nested('[', ']', 64);
  const std::string event = R"({"event_type": "on_tool_start", "data": {"input": {"a": )" + args + "}}}";
  EXPECT_EQ(error_of(event).kind, ErrorKind::too_deep);
  EXPECT_TRUE(std::holds_alternative<json>(core::json::try_parse(event, core::json::kInternalLimits)));
  EXPECT_TRUE(std::holds_alternative<json>(core::json::try_parse(nested('[', ']', 128), core::json::kInternalLimits)));
  EXPECT_EQ(error_of(nested('[', ']', 129), core::json::kInternalLimits).kind, ErrorKind::too_deep);
}

TEST(JsonParse, DeepKeyInsideAnObjectNamesWhereItStarts) {
  const auto e = error_of(R"({"job_id": "x", "input_payload": {"extra": )" + nested('[', ']', 1000) + "}}");
  EXPECT_EQ(e.kind, ErrorKind::too_deep);
  EXPECT_EQ(e.path, "input_payload.extra[0][0]…");
}

TEST(JsonParse, NumberOutOfRangeNamesTheField) {
  auto e = error_of(R"({"files": {"/a.md": {"content": ["x", 1e999]}}})");
  EXPECT_EQ(e.kind, ErrorKind::number_out_of_range);
  EXPECT_EQ(e.path, R"(files["/a.md"].content[1])");
  EXPECT_NE(e.message.find("1e999"), std::string::npos) << e.message;
  EXPECT_NE(e.message.find("out of range"), std::string::npos) << e.message;
  EXPECT_GT(e.byte, 0u);

  e = error_of(R"({"base_revision": -1e999})");
  EXPECT_EQ(e.kind, ErrorKind::number_out_of_range);
  EXPECT_EQ(e.path, "base_revision");

  e = error_of("1e999");
  EXPECT_EQ(e.kind, ErrorKind::number_out_of_range);
  EXPECT_EQ(e.path, "");
  EXPECT_NE(e.message.find("at byte 5"), std::string::npos) << e.message;

  // Tiny numbers underflow to 0 and huge integers become doubles: both are in range.
  EXPECT_EQ(core::json::parse("1e-999"), json(0.0));
  EXPECT_TRUE(core::json::parse("123456789012345678901234567890").is_number_float());
}

TEST(JsonParse, SyntaxErrorsNameTheByteAndThePath) {
  auto e = error_of(R"({"a": [1, 2, tru]})");
  EXPECT_EQ(e.kind, ErrorKind::syntax);
  EXPECT_EQ(e.path, "a[2]");
  EXPECT_NE(e.message.find("at byte"), std::string::npos) << e.message;
  EXPECT_EQ(e.message.find("json.exception"), std::string::npos) << e.message;
  EXPECT_EQ(error_of("").kind, ErrorKind::syntax);
  EXPECT_EQ(error_of("{} x").kind, ErrorKind::syntax);
  EXPECT_EQ(error_of("\"\xff\"").kind, ErrorKind::syntax);  // ill-formed UTF-8
  // A long unterminated string is not echoed back whole.
  e = error_of("\"" + std::string(100'000, 'x'));
  EXPECT_LT(e.message.size(), 400u);
}

TEST(JsonParse, SizeLimit) {
  Limits l;
  l.max_bytes = 10;
  EXPECT_TRUE(std::holds_alternative<json>(core::json::try_parse("[1,2,3,4]", l)));
  const auto e = error_of("[1,2,3,4,5]", l);
  EXPECT_EQ(e.kind, ErrorKind::too_large);
  EXPECT_NE(e.message.find("limit of 10 bytes"), std::string::npos) << e.message;
}

TEST(JsonParse, ThrowingAndOptionalForms) {
  try {
    core::json::parse("[1e999]");
    FAIL() << "no exception";
  } catch (const core::json::ParseException& ex) {
    EXPECT_EQ(ex.error().kind, ErrorKind::number_out_of_range);
    EXPECT_EQ(ex.error().path, "[0]");
  }
  EXPECT_FALSE(core::json::parse_or_null(nested('[', ']', 100)));
  EXPECT_EQ(core::json::parse_or_null("{\"a\":1}").value(), json({{"a", 1}}));
}

TEST(JsonParse, RenderPath) {
  using core::json::render_path;
  EXPECT_EQ(render_path({}), "");
  EXPECT_EQ(render_path({std::string("a"), std::size_t{0}, std::string("b_2")}), "a[0].b_2");
  EXPECT_EQ(render_path({std::string("files"), std::string("/x \"y\".md")}), R"(files["/x \"y\".md"])");
  EXPECT_EQ(render_path({std::size_t{3}, std::string("2x")}), R"([3]["2x"])");
  EXPECT_EQ(render_path({std::string("")}), R"([""])");
}
