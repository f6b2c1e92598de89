// core::sse::Decoder (src/core/sse.hpp), the event stream decoder under the model
// client. Property: the events (and a size-limit error) do not depend on how the bytes
// are split across feed() calls — the network may cut anywhere, a CRLF included.
// Input: byte 0 seeds the split points, the rest is the stream.
#include <optional>

#include "core/sse.hpp"
#include "fuzz_common.hpp"

namespace {

struct Outcome {
  std::vector<core::sse::Event> events;
  std::optional<core::sse::Event> last;
  bool too_large = false;
};

bool same_event(const core::sse::Event& a, const core::sse::Event& b) {
  return a.type == b.type && a.data == b.data && a.id == b.id;
}

Outcome decode(std::string_view stream, unsigned seed, bool split) {
  Outcome o;
  core::sse::Decoder d([&](const core::sse::Event& e) { o.events.push_back(e); }, 256);
  try {
    if (split) fuzz::feed_in_pieces(stream, seed, 7, [&](std::string_view piece) { d.feed(piece); });
    else d.feed(stream);
    o.last = d.finish();
  } catch (const core::sse::SseError&) {
    o.too_large = true;
  }
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view stream = fuzz::text(data + 1, size - 1);
  const Outcome whole = decode(stream, data[0], false);
  const Outcome pieces = decode(stream, data[0], true);
  FUZZ_CHECK(whole.too_large == pieces.too_large, "size error depends on the split");
  FUZZ_CHECK(whole.events.size() == pieces.events.size(), "event count depends on the split");
  for (std::size_t i = 0; i < whole.events.size(); ++i)
    FUZZ_CHECK(same_event(whole.events[i], pieces.events[i]), "event " + std::to_string(i) + " depends on the split");
  FUZZ_CHECK(whole.last.has_value() == pieces.last.has_value(), "unterminated event depends on the split");
  if (whole.last) FUZZ_CHECK(same_event(*whole.last, *pieces.last), "unterminated event depends on the split");
  for (const auto& e : whole.events) FUZZ_CHECK(e.data.size() <= 256, "event larger than the bound");
  return 0;
}
