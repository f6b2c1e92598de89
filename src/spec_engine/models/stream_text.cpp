#include "spec_engine/models/stream_text.hpp"

#include <limits>

#include "core/json_parse.hpp"
#include "core/util.hpp"

namespace spec_engine::models {

namespace {

constexpr char32_t kByteBase = 0xF0000;       // + byte 0x80..0xFF
constexpr char32_t kSurrogateBase = 0xF1000;  // + (unit - 0xD800), unit 0xD800..0xDFFF
constexpr char32_t kSurrogateEnd = kSurrogateBase + 0x800;

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// The code point of the well-formed `n`-byte sequence at s[i].
char32_t decode(std::string_view s, std::size_t i, std::size_t n) {
  const auto b = [&](std::size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(s[i + k])); };
  switch (n) {
    case 1:
      return b(0);
    case 2:
      return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3:
      return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default:
      return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

// The 4 hex digits at s[i..i+4) as a UTF-16 unit, or -1.
long hex4(std::string_view s, std::size_t i) {
  if (i + 4 > s.size()) return -1;
  long v = 0;
  for (std::size_t k = i; k < i + 4; ++k) {
    const char c = s[k];
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
    else return -1;
    v = v * 16 + d;
  }
  return v;
}

// `s` with placeholders for the ill-formed bytes and unpaired surrogate escapes inside
// its JSON strings; `changed` tells whether any was needed. Outside strings nothing
// changes (the parser reports what is wrong there).
std::string with_placeholders(std::string_view s, bool& changed) {
  std::string out;
  out.reserve(s.size() + 16);
  bool in_string = false;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (!in_string || c == '"') {
      if (c == '"') in_string = !in_string;
      out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    if (c == '\\') {
      const long u = i + 1 < s.size() && s[i + 1] == 'u' ? hex4(s, i + 2) : -1;
      if (u >= 0xD800 && u <= 0xDFFF) {
        const bool paired = u <= 0xDBFF && i + 8 < s.size() && s[i + 6] == '\\' && s[i + 7] == 'u' &&
                            hex4(s, i + 8) >= 0xDC00 && hex4(s, i + 8) <= 0xDFFF;
        if (paired) {
          out.append(s.substr(i, 12));
          i += 12;
        } else {
          append_utf8(out, kSurrogateBase + static_cast<char32_t>(u - 0xD800));
          changed = true;
          i += 6;
        }
        continue;
      }
      out.append(s.substr(i, 2));  // any other escape: validity is the parser's business
      i += 2;
      continue;
    }
    const std::size_t n = c < 0x80 ? 1 : core::utf8_sequence_length(s, i);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      append_utf8(out, kByteBase + c);
      changed = true;
      ++i;
    }
  }
  return out;
}

bool is_byte_placeholder(char32_t cp) { return cp >= kByteBase + 0x80 && cp <= kByteBase + 0xFF; }
bool is_surrogate_placeholder(char32_t cp) { return cp >= kSurrogateBase && cp < kSurrogateEnd; }

// Expected length of a UTF-8 sequence starting with lead byte `b` (0 if not a lead byte).
std::size_t lead_length(unsigned char b) {
  if (b >= 0xC2 && b <= 0xDF) return 2;
  if (b >= 0xE0 && b <= 0xEF) return 3;
  if (b >= 0xF0 && b <= 0xF4) return 4;
  return 0;
}

}  // namespace

std::optional<nlohmann::json> parse_stream_chunk(std::string_view text, bool& placeholders) {
  placeholders = false;
  if (auto j = core::json::parse_or_null(text)) return j;
  bool changed = false;
  const std::string fixed = with_placeholders(text, changed);
  if (!changed) return std::nullopt;
  auto j = core::json::parse_or_null(fixed);
  if (!j) return std::nullopt;
  placeholders = true;
  return j;
}

std::string join_split_code_points(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const std::size_t n = core::utf8_sequence_length(text, i);
    if (n == 0) {  // not from the JSON parser; keep it for the final clean-up
      out.push_back(text[i++]);
      continue;
    }
    const char32_t cp = decode(text, i, n);
    if (is_byte_placeholder(cp)) {
      out.push_back(static_cast<char>(cp - kByteBase));
    } else if (is_surrogate_placeholder(cp)) {
      const char32_t hi = 0xD800 + (cp - kSurrogateBase);
      const std::size_t m = i + n < text.size() ? core::utf8_sequence_length(text, i + n) : 0;
      const char32_t next = m ? decode(text, i + n, m) : 0;
      const char32_t lo = is_surrogate_placeholder(next) ? 0xD800 + (next - kSurrogateBase) : 0;
      if (hi <= 0xDBFF && lo >= 0xDC00 && lo <= 0xDFFF) {
        append_utf8(out, 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
        i += n + m;
        continue;
      }
      append_utf8(out, 0xFFFD);
    } else {
      out.append(text.substr(i, n));
    }
    i += n;
  }
  // Byte runs that still do not form characters become U+FFFD.
  return core::utf8_truncate(out, std::numeric_limits<std::size_t>::max());
}

std::size_t unfinished_tail(std::string_view text) {
  // Byte placeholders at the end (at most three: an unfinished sequence is never longer).
  std::string bytes;
  std::size_t end = text.size();
  while (end >= 4 && bytes.size() < 3) {
    const std::size_t i = end - 4;
    if (core::utf8_sequence_length(text, i) != 4) break;  // placeholders are 4 bytes long
    const char32_t cp = decode(text, i, 4);
    if (is_surrogate_placeholder(cp)) {
      if (bytes.empty() && cp < kSurrogateBase + 0x400) return 4;  // a high surrogate waits for its low half
      break;
    }
    if (!is_byte_placeholder(cp)) break;
    bytes.insert(bytes.begin(), static_cast<char>(cp - kByteBase));
    end = i;
  }
  // The last lead byte decides: unfinished when fewer bytes follow it than it announces.
  for (std::size_t k = 1; k <= bytes.size(); ++k) {
    const auto b = static_cast<unsigned char>(bytes[bytes.size() - k]);
    if (b >= 0x80 && b <= 0xBF) continue;  // continuation byte
    const std::size_t need = lead_length(b);
    return need > k ? 4 * k : 0;
  }
  return 0;
}

}  // namespace spec_engine::models
