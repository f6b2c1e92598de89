// Media types (RFC 9110 §8.3.1) and the JSON media-type rule both services apply to bodies.
#include "core/http_types.hpp"

#include <gtest/gtest.h>

using namespace core::http;

TEST(MediaType, ParsesTypeSubtypeAndParameters) {
  auto m = parse_media_type("Application/JSON ; Charset=\"UTF-8\";profile=x;;");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->essence(), "application/json");
  EXPECT_EQ(m->parameter("charset"), "UTF-8");
  EXPECT_EQ(m->parameter("profile"), "x");
  EXPECT_FALSE(m->parameter("q"));
  m = parse_media_type(R"(text/plain; note="a \"quoted\" \\ value")");
  ASSERT_TRUE(m);
  EXPECT_EQ(m->parameter("note"), R"(a "quoted" \ value)");
  for (const char* bad : {"", "application", "application/", "/json", "application/json x", "application/json;charset",
                          "application/json; charset=\"utf-8", "app lication/json", "application/json;=x",
                          "application/json; a=b c"}) {
    EXPECT_FALSE(parse_media_type(bad)) << bad;
  }
}

TEST(MediaType, JsonIsApplicationJsonOrAPlusJsonSuffixInUtf8) {
  for (const char* ok : {"application/json", "APPLICATION/Json", "application/json; charset=utf-8",
                         "application/json;charset=UTF-8", "application/json; charset=\"utf-8\"",
                         "application/problem+json", "application/merge-patch+json; charset=utf-8",
                         "application/json; version=2", " application/json "}) {
    EXPECT_TRUE(is_json_content_type(ok)) << ok;
  }
  // The trial's application/jsonx was accepted by a substring check; so were these.
  for (const char* no : {"application/jsonx", "application/json-seq", "application/x-json", "text/json",
                         "text/plain+json", "application/+json", "application/json; charset=latin1",
                         "application/json; charset=utf-16", "application/json, text/plain", "x-application/json",
                         "text/plain; note=application/json", "multipart/form-data; boundary=+json"}) {
    EXPECT_FALSE(is_json_content_type(no)) << no;
  }
}
