#pragma once
// Compact JSON serialization (the form the engine stores and streams its documents in), and
// building a document's text around a member that is already serialized.
//
// Why splice text: a run's step writes the same file map (often hundreds of KB) into its
// checkpoint and into its on_state_update event. Serializing the map once, from text kept
// per file, and splicing it into both documents costs one string copy per document
// instead of a tree copy and two serializations (docs/event-path-and-replicas.md).

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace core::json {

/// Compact text of `j` (no spaces), object members in nlohmann's order (std::map: keys
/// sorted bytewise); invalid UTF-8 in a string becomes U+FFFD instead of throwing.
std::string dump(const nlohmann::json& j);

/// dump() of `object` with one more member `key` whose value is the JSON text `value_text`,
/// placed where the sorted order puts it: equal to dump() of the object with the member added,
/// without building or serializing the member's value. `value_text` must be one valid JSON
/// value (it is inserted as given). Throws std::invalid_argument when `object` is not an
/// object or already has `key`.
std::string dump_with_member(const nlohmann::json& object, std::string_view key, std::string_view value_text);

}  // namespace core::json
