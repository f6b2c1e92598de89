// Idempotency-Key parsing and rule (idempotency.hpp).
#include "orchestrator/domain/idempotency.hpp"

#include "orchestrator/domain/error.hpp"

namespace orchestrator::domain {

namespace {

[[noreturn]] void invalid(const std::string& why) { throw InvalidError("Idempotency-Key", "Idempotency-Key " + why); }

}  // namespace

void check_idempotency_key(const std::string& key) {
  if (key.empty()) invalid("must not be empty");
  if (key.size() > kMaxIdempotencyKey)
    invalid("is longer than " + std::to_string(kMaxIdempotencyKey) + " bytes (" + std::to_string(key.size()) + ")");
  for (const char c : key) {
    const auto b = static_cast<unsigned char>(c);
    if (b < 0x20 || b > 0x7E) invalid("must be visible ASCII (a UUID is a good key); it has a byte outside that range");
  }
  if (key.front() == ' ' || key.back() == ' ') invalid("must not start or end with a space");
}

std::optional<std::string> parse_idempotency_key(const std::optional<std::string>& header) {
  if (!header) return std::nullopt;
  const std::string& v = *header;
  if (v.size() >= 1 && v.front() == '"') {
    // RFC 8941 §4.2.5: a String is DQUOTE *(unescaped / escaped) DQUOTE, escapes \" and \\ only.
    std::string out;
    std::size_t i = 1;
    for (; i < v.size() && v[i] != '"'; ++i) {
      if (v[i] == '\\') {
        if (i + 1 >= v.size() || (v[i + 1] != '"' && v[i + 1] != '\\'))
          invalid("is a quoted string with an escape other than \\\" or \\\\");
        ++i;
      }
      out += v[i];
    }
    if (i != v.size() - 1) invalid("is a quoted string that is not closed, or has text after its closing quote");
    check_idempotency_key(out);
    return out;
  }
  // RFC 9110 §5.3: a proxy may join two field lines with ", "; a bare key with a comma could be
  // two keys.
  if (v.find(',') != std::string::npos)
    invalid("must not contain a comma unless sent as a quoted string (two keys joined by a proxy look like that)");
  check_idempotency_key(v);
  return v;
}

}  // namespace orchestrator::domain
