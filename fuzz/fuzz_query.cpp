// Request targets and the query values read from them: core::http::parse_request_target
// and parse_after_seq (src/core/query.hpp), the orchestrator's page query (limit, cursor:
// api::page_query) and its cursor codec (src/orchestrator/store/cursor.hpp). Properties:
// only the documented errors escape (ApiError 400 for limit, InvalidError "cursor"); an
// accepted limit is 1..200; an accepted after_seq prints back to the same value; cursors
// round-trip.
// Input: the request target (as after the method in the request line).
#include "core/query.hpp"
#include "fuzz_common.hpp"
#include "orchestrator/api/problem.hpp"
#include "orchestrator/domain/error.hpp"
#include "orchestrator/store/cursor.hpp"

namespace {

namespace store = orchestrator::store;

void cursor(const std::string& c) {
  try {
    const auto key = store::decode_cursor(c);
    FUZZ_CHECK(!key.created_at.empty() && !key.id.empty(), "decoded an empty key");
    const auto again = store::decode_cursor(store::encode_cursor(key));
    FUZZ_CHECK(again.created_at == key.created_at && again.id == key.id, "cursor does not round-trip");
  } catch (const orchestrator::domain::InvalidError& e) {
    FUZZ_CHECK(e.field() == "cursor", e.field());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view target = fuzz::text(data, size);
  core::http::Request req;
  if (!core::http::parse_request_target(target, req)) {
    FUZZ_CHECK(req.path.empty() && req.query.empty(), "a refused target left values behind");
    cursor(std::string(target));
    return 0;
  }
  FUZZ_CHECK(!req.path.empty() && req.path.front() == '/', "path '" + req.path + "'");
  FUZZ_CHECK(req.target == target, "target not kept");

  if (const auto seq = core::http::parse_after_seq(req.query_param("after_seq"))) {
    FUZZ_CHECK(*seq >= 0, "negative after_seq");
    FUZZ_CHECK(core::http::parse_after_seq(std::to_string(*seq)) == *seq, "after_seq does not round-trip");
  }
  try {
    const auto q = orchestrator::api::page_query(req);
    FUZZ_CHECK(q.limit >= 1 && q.limit <= 200, std::to_string(q.limit));
    FUZZ_CHECK(store::checked_limit(store::PageRequest{q.limit, q.cursor}) == q.limit, "checked_limit");
    if (!q.cursor.empty()) cursor(q.cursor);
  } catch (const orchestrator::api::ApiError& e) {
    FUZZ_CHECK(e.response().status == 400, e.response().body);
  }
  // Any created_at/id without the separator round-trips through a cursor.
  if (const auto bar = target.find('|'); bar != std::string_view::npos && bar > 0 && bar + 1 < target.size() &&
                                         target.find('|', bar + 1) == std::string_view::npos) {
    const store::CursorKey key{std::string(target.substr(0, bar)), std::string(target.substr(bar + 1))};
    const std::string c = store::encode_cursor(key);
    if (c.size() <= 400) {
      const auto back = store::decode_cursor(c);
      FUZZ_CHECK(back.created_at == key.created_at && back.id == key.id, "encoded cursor does not decode");
    }
  }
  return 0;
}
