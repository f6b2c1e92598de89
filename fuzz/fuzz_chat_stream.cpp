// The OpenAI-compatible chat stream assembler: core::sse::Decoder +
// spec_engine::models::ChatStreamParser (src/spec_engine/models/chat_stream.hpp), which
// turns a model server's SSE body into one assistant turn. Properties: only ModelError
// escapes; the turn does not depend on how the body is split into network reads; the
// streamed deltas add up to the turn's content; all text is valid UTF-8 and the turn
// serialises to JSON (as the engine stores it in events).
// Input: byte 0 seeds the split points, the rest is the response body.
#include <optional>

#include "core/util.hpp"
#include "fuzz_common.hpp"
#include "spec_engine/models/chat_stream.hpp"

namespace {

using spec_engine::models::ChatStreamParser;
using spec_engine::models::ModelError;
using spec_engine::models::ModelTurn;

struct Outcome {
  std::optional<ModelTurn> turn;  ///< nullopt: ModelError
  std::string deltas;
  bool complete = false;
};

Outcome run(std::string_view body, unsigned seed, bool split) {
  Outcome o;
  ChatStreamParser p([&](std::string_view d) { o.deltas += d; });
  try {
    if (split) fuzz::feed_in_pieces(body, seed, 13, [&](std::string_view piece) { p.feed(piece); });
    else p.feed(body);
    o.turn = p.finish();
    o.complete = p.complete();
  } catch (const ModelError&) {
    o.turn.reset();
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view body = fuzz::text(data + 1, size - 1);
  const Outcome whole = run(body, data[0], false);
  const Outcome pieces = run(body, data[0], true);
  FUZZ_CHECK(whole.turn.has_value() == pieces.turn.has_value(), "a stream error depends on the split");
  if (!whole.turn) return 0;
  const ModelTurn& a = *whole.turn;
  const ModelTurn& b = *pieces.turn;
  FUZZ_CHECK(whole.complete == pieces.complete, "completeness depends on the split");
  FUZZ_CHECK(a.content == b.content && a.finish_reason == b.finish_reason, "the turn depends on the split");
  FUZZ_CHECK(whole.deltas == a.content && pieces.deltas == b.content, "deltas do not add up to the content");
  FUZZ_CHECK(a.tool_calls.size() == b.tool_calls.size(), "tool calls depend on the split");
  FUZZ_CHECK(core::is_valid_utf8(a.content), "content is not valid UTF-8");
  for (std::size_t i = 0; i < a.tool_calls.size(); ++i) {
    const auto& x = a.tool_calls[i];
    const auto& y = b.tool_calls[i];
    FUZZ_CHECK(x.id == y.id && x.name == y.name && x.arguments_raw == y.arguments_raw, "tool call depends on the split");
    FUZZ_CHECK(!x.id.empty(), "tool call without id");
    FUZZ_CHECK(x.arguments.is_object(), "arguments are not an object");
    FUZZ_CHECK(core::is_valid_utf8(x.id) && core::is_valid_utf8(x.name) && core::is_valid_utf8(x.arguments_raw),
               "tool call text is not valid UTF-8");
    (void)x.to_json().dump();  // throws on invalid UTF-8: the engine stores this in events
  }
  return 0;
}
