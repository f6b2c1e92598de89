// core::json (src/core/json_parse.hpp): the bounded parser behind every JSON input of
// both services. Properties: never throws for bad input; a refused text says why with a
// non-empty message; a small depth limit refuses what the default accepts only as
// too_deep; an accepted value dumps to JSON that parses back to the same value.
#include "core/json_parse.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in = fuzz::text(data, size);
  auto r = core::json::try_parse(in);
  if (auto* e = std::get_if<core::json::ParseError>(&r)) {
    FUZZ_CHECK(!e->message.empty(), "empty error message");
    const auto p = core::json::describe(*e, "(body)");
    FUZZ_CHECK(p.status == 400 || p.status == 413, std::to_string(p.status));
    FUZZ_CHECK(!p.field.empty() && !p.title.empty(), p.detail);
    // Messages end up in JSON problem documents: they must dump.
    (void)nlohmann::json(p.detail).dump();
    (void)nlohmann::json(p.field).dump();
    return 0;
  }
  const auto& v = std::get<nlohmann::json>(r);
  const std::string dumped = v.dump();
  auto again = core::json::try_parse(dumped);
  FUZZ_CHECK(std::holds_alternative<nlohmann::json>(again), "dump of an accepted value is refused: " + dumped.substr(0, 200));
  FUZZ_CHECK(std::get<nlohmann::json>(again) == v,
             "round trip changed the value: " + dumped.substr(0, 200));

  // A tight depth limit refuses only by depth.
  auto shallow = core::json::try_parse(in, core::json::Limits{3, core::json::kDefaultMaxBytes});
  if (auto* e = std::get_if<core::json::ParseError>(&shallow)) {
    FUZZ_CHECK(e->kind == core::json::ErrorKind::too_deep, e->message);
    FUZZ_CHECK(e->limit == 3, e->message);
  }
  // A tight size limit refuses only by size.
  if (size > 8) {
    auto small = core::json::try_parse(in, core::json::Limits{core::json::kDefaultMaxDepth, 8});
    FUZZ_CHECK(std::holds_alternative<core::json::ParseError>(small) &&
                   std::get<core::json::ParseError>(small).kind == core::json::ErrorKind::too_large,
               "size limit not applied");
  }
  return 0;
}
