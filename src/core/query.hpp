#pragma once
// The request target and the query values both services read from it: one parser per
// concern, shared (and fuzzed, fuzz/fuzz_query.cpp) instead of re-implemented per route.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/http_types.hpp"

namespace core::http {

/// Fills `out.target`, `out.path` and `out.query` from an origin-form request target
/// (RFC 9112 §3.2.1: absolute-path [ "?" query ]), e.g. "/a%20b/c?x=1&x=2&y" ->
/// path "/a b/c", query {x: "1", x: "2", y: ""}. Path and parameters are percent-decoded
/// (RFC 3986 §2.1); an empty path becomes "/". Returns false, leaving path and query empty, when `target` is not origin-form
/// (e.g. "*", "http://h/x", "a/b", a bad percent escape). Never throws for bad input.
bool parse_request_target(std::string_view target, Request& out);

/// Largest `after_seq` parse_after_seq() accepts: 18 digits, 10^18 - 1.
inline constexpr std::int64_t kMaxAfterSeq = 999'999'999'999'999'999;

/// Parses an `after_seq` query value (the last stream event seq a client saw): a decimal
/// integer 0..kMaxAfterSeq written with digits only (no sign, no spaces, at most 18
/// digits). Absent (nullopt) means 0; nullopt is returned for any other text.
std::optional<std::int64_t> parse_after_seq(const std::optional<std::string>& value);

/// What a refused `after_seq` must be, for the 400 both services answer: "must be a decimal
/// integer from 0 to 999999999999999999".
std::string after_seq_rule();

}  // namespace core::http
