#pragma once
// The one JSON parser of both services: nlohmann/json's SAX parser with the input
// bounded while it is read (nesting depth, size) and every failure turned into a value
// that names where it happened. Every JSON text the services read goes through it:
// HTTP bodies, WebSocket messages, model-server SSE chunks, NATS messages, JWT
// segments, engine-client responses and JSON read back from storage.
//
// Why bound the depth while parsing: nlohmann's parser is iterative, but copying,
// comparing and dumping a value recurse once per nesting level, so a 300 KB body of
// 150,000 nested arrays overflows the stack of whichever thread touches it next. A
// parse that stops at `max_depth` never builds such a value. See docs/json-input.md.

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

namespace core::json {

/// Default deepest nesting of arrays/objects accepted: 64 levels. The deepest legitimate
/// document of the services (an engine event carrying a file map) is about 6 levels deep.
inline constexpr std::size_t kDefaultMaxDepth = 64;
/// Default largest text accepted: 64 MiB (an engine event or state with a full file tree,
/// core/files.hpp max_total_bytes plus JSON escaping, stays well below it).
inline constexpr std::size_t kDefaultMaxBytes = std::size_t{64} << 20;

/// Bounds applied while parsing.
struct Limits {
  std::size_t max_depth = kDefaultMaxDepth;  ///< most nested arrays/objects; the top-level value is depth 1
  std::size_t max_bytes = kDefaultMaxBytes;  ///< longest text, in bytes
};

/// Bounds for JSON the services wrote themselves and read back: stored rows, engine events
/// and engine responses read by the orchestrator. They may wrap a value that passed the
/// input limit in a few envelopes (an on_tool_start event carries the model's arguments
/// three levels down), so they get twice the depth; still far from any stack limit.
inline constexpr Limits kInternalLimits{2 * kDefaultMaxDepth, kDefaultMaxBytes};

/// Why a text was refused.
enum class ErrorKind {
  syntax,               ///< not JSON (RFC 8259), including ill-formed UTF-8 in a string
  too_deep,             ///< nesting deeper than Limits::max_depth
  too_large,            ///< text longer than Limits::max_bytes
  number_out_of_range,  ///< a number that does not fit a double, e.g. 1e999 (RFC 8259 §6 allows refusing it)
};

/// A refused text: what went wrong and where.
struct ParseError {
  ErrorKind kind = ErrorKind::syntax;
  /// Byte offset (1-based, as counted by the parser) where the error was found; 0 when unknown
  /// (too_deep and too_large).
  std::size_t byte = 0;
  /// Path of the value being read when it failed, in the services' field notation
  /// (`input_payload.files["/a.md"].content[3]`, see render_path); "" = the top-level value.
  /// For too_deep it is cut after a few segments and ends with "…".
  std::string path;
  /// One sentence a person can act on, e.g. "the number 1e999 at byte 41 is out of range
  /// (it does not fit a 64-bit floating point number)". Never contains the whole input.
  std::string message;
  /// The limit that was exceeded: Limits::max_depth for too_deep, Limits::max_bytes for
  /// too_large; 0 otherwise.
  std::size_t limit = 0;
};

/// A ParseError as an exception (thrown by parse()).
class ParseException : public std::runtime_error {
 public:
  /// Wraps `error`; what() is error.message.
  explicit ParseException(ParseError error) : std::runtime_error(error.message), error_(std::move(error)) {}
  /// The refused text's error.
  const ParseError& error() const noexcept { return error_; }

 private:
  ParseError error_;
};

/// Parses `text` as one JSON value within `limits`. Never throws for bad input (only
/// std::bad_alloc): the value, or the ParseError naming what is wrong and where.
std::variant<nlohmann::json, ParseError> try_parse(std::string_view text, const Limits& limits = {});

/// try_parse that throws ParseException instead of returning the error.
nlohmann::json parse(std::string_view text, const Limits& limits = {});

/// try_parse that returns nullopt on any error (for inputs where the caller only needs
/// "usable or not", e.g. an optional field of an upstream response).
std::optional<nlohmann::json> parse_or_null(std::string_view text, const Limits& limits = {});

/// How an HTTP-style API reports a refused body (RFC 9457 problem details): the status
/// (400; 413 for too_large), a title, a detail sentence and the one `errors` entry
/// {field, message}. Both services build their problem responses from it, so a refused
/// body reads the same everywhere.
struct Problem {
  int status = 400;
  std::string title;    ///< "Malformed JSON" | "JSON nested too deeply" | "Number out of range" | "Body too large"
  std::string detail;   ///< ParseError::message as a sentence
  std::string field;    ///< number_out_of_range: ParseError::path (or `body_field` at the top level); else `body_field`
  std::string message;  ///< what is wrong with `field`, e.g. "is a number out of range (1e999)"
  std::string slug;     ///< short problem-type name: malformed-json | json-too-deep | number-out-of-range | body-too-large
};

/// Describes `error` for a problem response; `body_field` names the whole body ("(body)",
/// "body") when the error has no path.
Problem describe(const ParseError& error, const std::string& body_field);

/// One step of a path into a JSON value: an object member name or an array index.
using PathSegment = std::variant<std::string, std::size_t>;

/// Renders a path in the services' field notation: member names that are identifiers
/// ([A-Za-z_][A-Za-z0-9_]*) as `.name` (no dot first), others as `["..."]` (JSON string
/// escapes), array indices as `[n]`. E.g. {"files", "/a.md", "content", 3} ->
/// `files["/a.md"].content[3]`. The empty path renders as "".
std::string render_path(const std::vector<PathSegment>& path);

}  // namespace core::json
