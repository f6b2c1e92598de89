#pragma once
// Where a request carries its bearer token. HTTP: `Authorization: Bearer <token>`
// (RFC 6750 §2.1). WebSocket upgrades from browsers cannot set headers, so also:
// the `token` query parameter (RFC 6750 §2.3, discouraged but needed) and the
// `Sec-WebSocket-Protocol` header (RFC 6455 §4.1).
//
// Sec-WebSocket-Protocol convention: the client offers two protocol values, a marker
// followed immediately by the token: "bearer, <token>" or "access_token, <token>"
// (other offered protocols may come before or after the pair). The server MUST echo the
// marker (never the token) as the selected subprotocol, otherwise browsers fail the
// handshake. Tokens are never logged.

#include <optional>
#include <string>
#include <string_view>

namespace orchestrator::auth {

/// Token from an Authorization header value: scheme "Bearer" (case-insensitive), one or
/// more spaces, a token68. nullopt for other schemes or an empty token.
std::optional<std::string> bearer_from_authorization(std::string_view header_value);

/// Value of the `token` parameter of a raw query string ("a=1&token=x"), percent-decoded
/// ('+' stays '+', as JWTs never contain spaces). nullopt if absent or empty.
std::optional<std::string> token_from_query(std::string_view raw_query);

/// A token found in Sec-WebSocket-Protocol and the subprotocol to echo back.
struct WsProtocolToken {
  std::string token;
  std::string echo_protocol;  ///< "bearer" or "access_token": put this in the response header
};
/// Parses a Sec-WebSocket-Protocol header value (comma-separated, whitespace-trimmed).
/// nullopt if no marker is followed by a non-empty token.
std::optional<WsProtocolToken> token_from_websocket_protocol(std::string_view header_value);

/// Where a token was found, in order of precedence (header, subprotocol, query).
enum class TokenSource { authorization_header, websocket_protocol, query };

/// Picks the first token present: Authorization header, then Sec-WebSocket-Protocol, then
/// `?token=`. Pass empty views for absent headers. `echo_protocol` is set when the token came
/// from the subprotocol header.
struct FoundToken {
  std::string token;                         ///< raw token (a JWT), never empty
  TokenSource source;                        ///< where it was found
  std::optional<std::string> echo_protocol;  ///< subprotocol to select in the 101 answer, if any
};
/// Returns the token from the first source that yields one (a present but unusable source,
/// e.g. "Basic ..." or an empty token, falls through to the next); nullopt when none does.
/// Never throws. Does not verify the token (see jwt.hpp). docs/orchestrator-api.md#websocket-proxy.
std::optional<FoundToken> find_token(std::string_view authorization, std::string_view websocket_protocol,
                                     std::string_view raw_query);

}  // namespace orchestrator::auth
