// Pagination cursors (cursor.hpp).
#include "orchestrator/store/cursor.hpp"

#include <algorithm>
#include <cctype>

#include <sodium.h>

#include "core/util.hpp"
#include "orchestrator/domain/error.hpp"

namespace orchestrator::store {

std::string encode_cursor(const CursorKey& key) {
  const std::string raw = key.created_at + "|" + key.id;
  std::string out(sodium_base64_encoded_len(raw.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(raw.data()), raw.size(),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(std::char_traits<char>::length(out.c_str()));
  return out;
}

CursorKey decode_cursor(const std::string& cursor) {
  std::string raw(cursor.size(), '\0');
  std::size_t len = 0;
  if (cursor.size() > 400 ||
      sodium_base642bin(reinterpret_cast<unsigned char*>(raw.data()), raw.size(), cursor.data(), cursor.size(),
                        nullptr, &len, nullptr, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
    throw domain::InvalidError("cursor", "cursor is not valid; pass the next_cursor of a previous page");
  raw.resize(len);
  const auto bar = raw.find('|');
  if (bar == std::string::npos || bar == 0 || bar + 1 == raw.size())
    throw domain::InvalidError("cursor", "cursor is not valid; pass the next_cursor of a previous page");
  CursorKey key{raw.substr(0, bar), raw.substr(bar + 1)};
  // A cursor this service made: an RFC 3339 time and an id of letters, digits and '-' (UUIDs).
  // Anything else decoded from base64 was made by hand and is refused, not used as a bound.
  bool ok = key.id.size() <= 64 && std::all_of(key.id.begin(), key.id.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '-';
  });
  try {
    if (ok) core::parse_rfc3339(key.created_at);
  } catch (const std::exception&) {
    ok = false;
  }
  if (!ok) throw domain::InvalidError("cursor", "cursor is not valid; pass the next_cursor of a previous page");
  return key;
}

int checked_limit(const PageRequest& req) {
  if (req.limit < 1 || req.limit > kMaxPageLimit)
    throw domain::InvalidError("limit", "limit must be between 1 and " + std::to_string(kMaxPageLimit));
  return req.limit;
}

}  // namespace orchestrator::store
