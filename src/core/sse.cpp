#include "core/sse.hpp"

namespace core::sse {

namespace {
constexpr std::string_view kBom = "\xEF\xBB\xBF";  // U+FEFF in UTF-8

/// The first CR or LF at or after `from`, else npos. One pass over the bytes: find_first_of
/// with a set tests every byte against the set (a memchr call per byte in libstdc++).
std::size_t find_eol(std::string_view s, std::size_t from) {
  for (std::size_t k = from; k < s.size(); ++k) {
    if (s[k] == '\n' || s[k] == '\r') return k;
  }
  return std::string_view::npos;
}
}  // namespace

Decoder::Decoder(Sink on_event, std::size_t max_event_bytes)
    : on_event_(std::move(on_event)), max_bytes_(max_event_bytes) {}

void Decoder::feed(std::string_view bytes) {
  if (bytes.empty()) return;
  std::size_t i = 0;
  if (after_cr_ && bytes.front() == '\n') i = 1;  // the LF of a CRLF split across feeds
  after_cr_ = false;
  while (i < bytes.size()) {
    const std::size_t j = find_eol(bytes, i);
    const std::size_t end = j == std::string_view::npos ? bytes.size() : j;
    if (line_.size() + (end - i) > max_bytes_) {
      throw SseError("event stream line longer than " + std::to_string(max_bytes_) + " bytes");
    }
    line_.append(bytes.substr(i, end - i));
    if (j == std::string_view::npos) return;
    i = j + 1;
    if (bytes[j] == '\r') {
      if (i == bytes.size()) after_cr_ = true;  // an LF may start the next feed
      else if (bytes[i] == '\n') ++i;
    }
    std::string l;
    l.swap(line_);
    line(l);
  }
}

std::optional<Event> Decoder::finish() {
  if (!line_.empty()) {
    std::string l;
    l.swap(line_);
    line(l);
  }
  return take();
}

std::optional<Event> Decoder::take() {
  if (data_.empty()) {
    type_.clear();
    return std::nullopt;
  }
  Event ev;
  if (!type_.empty()) ev.type = type_;
  ev.data = std::move(data_);
  ev.data.pop_back();  // the "\n" appended after the last data line
  ev.id = last_id_;
  data_.clear();
  type_.clear();
  return ev;
}

void Decoder::line(std::string_view l) {
  if (start_) {
    start_ = false;
    if (l.substr(0, kBom.size()) == kBom) l.remove_prefix(kBom.size());
  }
  if (l.empty()) {
    dispatch();
    return;
  }
  if (l.front() == ':') return;  // comment, e.g. ": keep-alive"
  const std::size_t colon = l.find(':');
  const std::string_view field = l.substr(0, colon);
  std::string_view value = colon == std::string_view::npos ? std::string_view() : l.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "data") {
    if (data_.size() + value.size() + 1 > max_bytes_) {
      throw SseError("event stream event larger than " + std::to_string(max_bytes_) + " bytes");
    }
    data_.append(value);
    data_.push_back('\n');
  } else if (field == "event") {
    type_.assign(value);
  } else if (field == "id") {
    if (value.find('\0') == std::string_view::npos) last_id_.assign(value);
  }
  // "retry" (reconnection time) and unknown fields are ignored.
}

void Decoder::dispatch() {
  if (auto ev = take()) on_event_(*ev);
}

}  // namespace core::sse
