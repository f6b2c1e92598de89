#pragma once
// Keyset pagination without SQL: the page request, the position of a row and the opaque
// cursor that encodes it (used by tx.hpp's fetch_page; fuzzed by fuzz/fuzz_query.cpp).

#include <optional>
#include <string>
#include <vector>

namespace orchestrator::store {

/// Pagination request: `limit` 1..200 (default 50; out of range -> InvalidError field
/// "limit"), `cursor` opaque, empty for the first page (bad cursor -> InvalidError "cursor").
struct PageRequest {
  int limit = 50;
  std::string cursor;
};
inline constexpr int kDefaultPageLimit = 50;
inline constexpr int kMaxPageLimit = 200;

/// One page: items newest first; `next_cursor` set when more items follow.
template <class T>
struct Page {
  std::vector<T> items;
  std::optional<std::string> next_cursor;
};

/// Position of a row in (created_at DESC, id DESC) order.
struct CursorKey {
  std::string created_at;
  std::string id;
};

/// Opaque cursor: base64url (no padding) of "created_at|id".
std::string encode_cursor(const CursorKey& key);
/// Decodes a cursor; throws domain::InvalidError("cursor", ...) when malformed.
CursorKey decode_cursor(const std::string& cursor);
/// Validates `req.limit`; throws domain::InvalidError("limit", ...). Returns the limit.
int checked_limit(const PageRequest& req);

}  // namespace orchestrator::store
