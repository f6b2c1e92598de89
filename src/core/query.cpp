// Request target and query value parsing (query.hpp).
#include "core/query.hpp"

#include <charconv>

#include <boost/url/parse.hpp>

namespace core::http {

bool parse_request_target(std::string_view target, Request& out) {
  out.target = std::string(target);
  out.path.clear();
  out.query.clear();
  auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) return false;
  out.path = parsed->path();
  if (out.path.empty()) out.path.push_back('/');  // (not = "/": GCC 12 -Wrestrict false positive)
  for (auto p : parsed->params()) out.query.emplace(std::string(p.key), std::string(p.value));
  return true;
}

std::string after_seq_rule() { return "must be a decimal integer from 0 to " + std::to_string(kMaxAfterSeq); }

std::optional<std::int64_t> parse_after_seq(const std::optional<std::string>& value) {
  if (!value) return 0;
  if (value->empty() || value->size() > 18) return std::nullopt;
  for (const char c : *value)
    if (c < '0' || c > '9') return std::nullopt;
  std::int64_t n = 0;
  auto [p, ec] = std::from_chars(value->data(), value->data() + value->size(), n);
  if (ec != std::errc() || p != value->data() + value->size()) return std::nullopt;
  return n;
}

}  // namespace core::http
