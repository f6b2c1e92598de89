#pragma once
// Reading a few top-level members of a JSON object without building a document: for hot paths
// that forward the text as it is and only need, say, an event's `seq` and `event_type` (the
// orchestrator's thread follower, the load benchmark's browsers). Values are skipped by
// structure (RFC 8259 §7 strings with their escapes; objects and arrays by bracket depth,
// iteratively); scalars are not validated. Text that needs its values checked goes through
// core::json::try_parse (json_parse.hpp) instead.

#include <optional>
#include <string_view>
#include <vector>

namespace core::json {

/// One top-level member of an object, as raw text: `key` without its quotes (escapes not
/// decoded), `value` exactly as written (a string keeps its quotes).
struct RawMember {
  std::string_view key;
  std::string_view value;
};

/// The top-level members of the object in `text`, in order; views into `text`. nullopt when
/// `text` is not one object of that structure (not an object, unterminated string or
/// bracket, missing `:` or `,`, text after the closing brace).
std::optional<std::vector<RawMember>> scan_object(std::string_view text);

/// The value of a member whose raw value is a string without escapes (the quotes removed);
/// nullopt for anything else (another type, or escapes that would need decoding).
std::optional<std::string_view> plain_string(std::string_view raw_value);

}  // namespace core::json
