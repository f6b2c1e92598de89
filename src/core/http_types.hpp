#pragma once
// Transport-neutral HTTP request/response types. Handlers and domain code see
// only these, never Boost.Beast types (DEVELOPERS.md "How to write C++ here").

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace core::http {

/// Ordered list of header fields; names compare case-insensitively (RFC 9110 §5.1).
class Headers {
 public:
  /// Value of the first field named `name`, or nullopt.
  std::optional<std::string> get(std::string_view name) const;
  /// All values of fields named `name`, in order.
  std::vector<std::string> get_all(std::string_view name) const;
  /// Replaces every field named `name` with one field.
  void set(std::string name, std::string value);
  /// Appends a field (keeps existing ones with the same name).
  void add(std::string name, std::string value);
  /// Removes every field named `name`.
  void erase(std::string_view name);
  const std::vector<std::pair<std::string, std::string>>& fields() const { return fields_; }

 private:
  std::vector<std::pair<std::string, std::string>> fields_;
};

/// Case-insensitive ASCII equality (for header names and tokens).
bool iequals(std::string_view a, std::string_view b);

/// A Content-Type value parsed by RFC 9110 §8.3.1: `type "/" subtype *( OWS ";" OWS [ name "="
/// ( token / quoted-string ) ] )`. Type, subtype and parameter names are lower-cased (they are
/// case-insensitive); parameter values are kept as sent, quoted-strings unquoted.
struct MediaType {
  std::string type;     ///< e.g. "application"
  std::string subtype;  ///< e.g. "json", "problem+json"
  std::vector<std::pair<std::string, std::string>> parameters;  ///< in order, names lower-cased

  /// The value of parameter `name` (lower-case), or nullopt.
  std::optional<std::string> parameter(std::string_view name) const;
  /// "type/subtype".
  std::string essence() const { return type + "/" + subtype; }
};

/// Parses a Content-Type field value; nullopt when it is not a media type (missing '/', a
/// character outside the token set, an unterminated quoted-string, a parameter without '=').
std::optional<MediaType> parse_media_type(std::string_view value);

/// True when `media` is JSON: `application/json` or a structured syntax suffix
/// `application/<name>+json` (RFC 6839 §3.1), and its `charset` parameter, if any, is `utf-8`
/// (case-insensitive; JSON exchanged between systems is UTF-8, RFC 8259 §8.1). Other parameters
/// are ignored.
bool is_json_media_type(const MediaType& media);
/// is_json_media_type() of a Content-Type field value; false when it does not parse.
bool is_json_content_type(std::string_view content_type);

/// An incoming request as the router hands it to a handler.
struct Request {
  std::string method;        ///< "GET", "POST", ... (upper case)
  std::string target;        ///< raw request-target, e.g. "/a/b?x=1"
  std::string path;          ///< percent-decoded path without the query, e.g. "/a/b"
  std::multimap<std::string, std::string> query;  ///< decoded query parameters
  Headers headers;
  std::string body;
  std::string remote_addr;   ///< peer IP as text
  std::map<std::string, std::string> path_params;  ///< filled by the router from "{name}" segments
  std::string request_id;    ///< generated per request (also sent as X-Request-Id)
  std::string traceparent;   ///< W3C trace context of this request's server span (set by the server)
  nlohmann::json context = nlohmann::json::object();  ///< per-request data set by middleware (e.g. "user_id")

  /// First value of query parameter `name`, or nullopt.
  std::optional<std::string> query_param(const std::string& name) const;
};

/// An outgoing response.
struct Response {
  int status = 200;
  Headers headers;
  std::string body;

  /// 200-style JSON response; sets Content-Type: application/json.
  static Response json(int status, const nlohmann::json& body);
  /// Plain text response with the given content type.
  static Response text(int status, std::string body, std::string content_type = "text/plain; charset=utf-8");
  /// RFC 9457 problem details (application/problem+json): {type,title,status,detail,...extra}.
  /// `extra` members are merged into the object (e.g. {"errors":[{"field":..,"message":..}]}).
  static Response problem(int status, std::string title, std::string detail,
                          const nlohmann::json& extra = nlohmann::json::object());
};

}  // namespace core::http
