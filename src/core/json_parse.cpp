// Bounded JSON parsing over nlohmann/json's SAX interface (json_parse.hpp).
#include "core/json_parse.hpp"

#include <cctype>

#include "core/util.hpp"

namespace core::json {

namespace {

using nlohmann::json;

bool is_identifier(const std::string& s) {
  if (s.empty()) return false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

/// Segments kept in a too_deep path before it is cut with "…".
constexpr std::size_t kDeepPathSegments = 4;
/// Longest excerpt of the input quoted in a message.
constexpr std::size_t kMaxQuoted = 64;

/// SAX handler: nlohmann's own DOM builder, with the nesting depth checked before each
/// container is opened and the path of the value being read kept for error messages.
class BoundedDom {
 public:
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  BoundedDom(json& root, const Limits& limits) : dom_(root, /*allow_exceptions=*/false), limits_(limits) {}

  bool null() { return scalar(dom_.null()); }
  bool boolean(bool v) { return scalar(dom_.boolean(v)); }
  bool number_integer(number_integer_t v) { return scalar(dom_.number_integer(v)); }
  bool number_unsigned(number_unsigned_t v) { return scalar(dom_.number_unsigned(v)); }
  bool number_float(number_float_t v, const string_t& s) { return scalar(dom_.number_float(v, s)); }
  bool string(string_t& v) { return scalar(dom_.string(v)); }
  bool binary(binary_t& v) { return scalar(dom_.binary(v)); }

  bool start_object(std::size_t n) { return open(false) && dom_.start_object(n); }
  bool start_array(std::size_t n) { return open(true) && dom_.start_array(n); }
  bool end_object() { return close(dom_.end_object()); }
  bool end_array() { return close(dom_.end_array()); }
  bool key(string_t& k) {
    frames_.back().key = k;
    return dom_.key(k);
  }

  bool parse_error(std::size_t position, const std::string& last_token, const nlohmann::detail::exception& ex) {
    ParseError e;
    e.byte = position;
    e.path = render_path(path());
    const std::string where = " at byte " + std::to_string(position) + (e.path.empty() ? "" : " (in " + e.path + ")");
    if (ex.id == 406) {  // out_of_range.406: number overflow
      e.kind = ErrorKind::number_out_of_range;
      e.message = "the number " + utf8_truncate(last_token, kMaxQuoted) + where +
                  " is out of range: numbers must fit a 64-bit floating point value";
    } else {
      e.kind = ErrorKind::syntax;
      // nlohmann's message after its "[json.exception.parse_error.101] " tag, cut to a readable size.
      std::string what = ex.what();
      if (const auto tag = what.find("] "); tag != std::string::npos) what.erase(0, tag + 2);
      e.message = "not valid JSON" + where + ": " + utf8_truncate(what, 240);
    }
    error_ = std::move(e);
    return false;
  }

  /// The error that stopped the parse, if any.
  std::optional<ParseError>& error() { return error_; }

 private:
  struct Frame {
    bool array = false;
    std::size_t index = 0;  ///< arrays: index of the element being read
    std::string key;        ///< objects: name of the member being read
  };

  bool scalar(bool ok) {
    if (!frames_.empty() && frames_.back().array) ++frames_.back().index;
    return ok;
  }
  bool open(bool array) {
    if (frames_.size() >= limits_.max_depth) {
      auto p = path();
      std::string rendered;
      if (p.size() > kDeepPathSegments) {
        p.resize(kDeepPathSegments);
        rendered = render_path(p) + "…";
      } else {
        rendered = render_path(p);
      }
      ParseError e;
      e.kind = ErrorKind::too_deep;
      e.limit = limits_.max_depth;
      e.path = rendered;
      e.message = "JSON nesting is deeper than the limit of " + std::to_string(limits_.max_depth) +
                  " levels of arrays and objects" + (rendered.empty() ? "" : " (in " + rendered + ")");
      error_ = std::move(e);
      return false;
    }
    frames_.push_back(Frame{array, 0, {}});
    return true;
  }
  bool close(bool ok) {
    frames_.pop_back();
    return scalar(ok);
  }
  std::vector<PathSegment> path() const {
    std::vector<PathSegment> p;
    p.reserve(frames_.size());
    for (const auto& f : frames_) {
      if (f.array) p.emplace_back(f.index);
      else p.emplace_back(f.key);
    }
    return p;
  }

  nlohmann::detail::json_sax_dom_parser<json> dom_;
  const Limits& limits_;
  std::vector<Frame> frames_;
  std::optional<ParseError> error_;
};

}  // namespace

std::string render_path(const std::vector<PathSegment>& path) {
  std::string out;
  for (const auto& seg : path) {
    if (const auto* i = std::get_if<std::size_t>(&seg)) {
      out += "[" + std::to_string(*i) + "]";
    } else {
      const auto& k = std::get<std::string>(seg);
      if (is_identifier(k)) {
        if (!out.empty()) out += '.';
        out += k;
      } else {
        out += "[" + nlohmann::json(k).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "]";
      }
    }
  }
  return out;
}

std::variant<nlohmann::json, ParseError> try_parse(std::string_view text, const Limits& limits) {
  if (text.size() > limits.max_bytes) {
    ParseError e;
    e.kind = ErrorKind::too_large;
    e.limit = limits.max_bytes;
    e.message = "the JSON text is " + std::to_string(text.size()) + " bytes, more than the limit of " +
                std::to_string(limits.max_bytes) + " bytes";
    return e;
  }
  nlohmann::json root;
  BoundedDom handler(root, limits);
  const bool ok = nlohmann::json::sax_parse(text.data(), text.data() + text.size(), &handler,
                                            nlohmann::json::input_format_t::json, /*strict=*/true);
  if (ok && !handler.error()) return root;
  if (handler.error()) return std::move(*handler.error());
  ParseError e;  // the parser stopped without telling why: cannot happen with this handler
  e.message = "not valid JSON";
  return e;
}

Problem describe(const ParseError& e, const std::string& body_field) {
  Problem p;
  // Only a number names its own field; syntax and nesting errors are the body's (the path,
  // in the detail, only says where they were found).
  p.field = e.kind == ErrorKind::number_out_of_range && !e.path.empty() ? e.path : body_field;
  std::string detail = e.message;
  if (!detail.empty()) detail[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(detail[0])));
  p.detail = detail + ".";
  switch (e.kind) {
    case ErrorKind::syntax:
      p.title = "Malformed JSON";
      p.slug = "malformed-json";
      p.message = "is not valid JSON";
      break;
    case ErrorKind::too_deep:
      p.title = "JSON nested too deeply";
      p.slug = "json-too-deep";
      p.message = "nests arrays and objects deeper than the limit of " + std::to_string(e.limit) + " levels";
      break;
    case ErrorKind::number_out_of_range:
      p.title = "Number out of range";
      p.slug = "number-out-of-range";
      p.message = "is a number out of range (it must fit a 64-bit floating point value)";
      break;
    case ErrorKind::too_large:
      p.status = 413;
      p.title = "Body too large";
      p.slug = "body-too-large";
      p.message = "is larger than the limit of " + std::to_string(e.limit) + " bytes";
      break;
  }
  return p;
}

nlohmann::json parse(std::string_view text, const Limits& limits) {
  auto r = try_parse(text, limits);
  if (auto* e = std::get_if<ParseError>(&r)) throw ParseException(std::move(*e));
  return std::move(std::get<nlohmann::json>(r));
}

std::optional<nlohmann::json> parse_or_null(std::string_view text, const Limits& limits) {
  auto r = try_parse(text, limits);
  if (auto* j = std::get_if<nlohmann::json>(&r)) return std::move(*j);
  return std::nullopt;
}

}  // namespace core::json
