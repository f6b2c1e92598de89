#pragma once
// Text that a model server streams in pieces, one JSON chunk per piece, where a
// piece may end inside a character: byte-slicing servers put half of a UTF-8
// sequence into a chunk as raw bytes (ill-formed UTF-8, RFC 3629 §3), and servers
// that slice UTF-16 strings send half of a surrogate pair as an escape ("\ud83d",
// RFC 8259 §7 allows the escape but no JSON parser can decode it alone). A strict
// parser rejects both chunks although the joined text is fine.
//
// parse_stream_chunk() parses such a chunk anyway by standing in a placeholder code
// point for every unit that is not a whole character, and join_split_code_points()
// replaces the placeholders once the pieces are joined. Placeholders come from
// Supplementary Private Use Area-A (Unicode §23.5):
//   ill-formed byte b (0x80..0xFF)       -> U+F0000 + b         (U+F0080..U+F00FF)
//   unpaired surrogate u (0xD800..0xDFFF) -> U+F1000 + u - 0xD800 (U+F1000..U+F17FF)
// Only text of a stream that needed placeholders is ever joined this way, so a
// model that emits those private-use characters itself is affected only in a
// stream that also split a character.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace spec_engine::models {

/// Parses one JSON chunk. Strict RFC 8259 first; if that fails and the chunk's
/// strings hold ill-formed UTF-8 bytes or unpaired surrogate escapes, parses it again
/// with placeholders for them and sets `placeholders` (else leaves it false). nullopt
/// when the text is not JSON either way, or breaks the bounds of core/json_parse.hpp
/// (nesting deeper than 64, numbers out of range).
std::optional<nlohmann::json> parse_stream_chunk(std::string_view text, bool& placeholders);

/// Joined text with placeholders turned back: a run of byte placeholders becomes those
/// bytes, a high + low surrogate placeholder pair becomes its character; whatever still
/// does not form a character becomes U+FFFD. The result is valid UTF-8.
std::string join_split_code_points(std::string_view text);

/// Length in bytes of the end of `text` that may still combine with the next piece:
/// byte placeholders forming the start of an unfinished UTF-8 sequence, or a high
/// surrogate placeholder. 0 when the text can be joined and delivered as it is.
std::size_t unfinished_tail(std::string_view text);

}  // namespace spec_engine::models
