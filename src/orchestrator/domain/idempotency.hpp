#pragma once
// Idempotency-Key of the requests that start a refinement or a run
// (draft-ietf-httpapi-idempotency-key-header-06; docs/orchestrator-api.md "Idempotency-Key"):
// the key a client sends is stored with the proposal or run the request created, unique per
// user, so that sending the same request again with the same key returns the recorded one
// instead of starting a second engine run.

#include <optional>
#include <string>

namespace orchestrator::domain {

/// Longest key accepted, in bytes.
inline constexpr std::size_t kMaxIdempotencyKey = 255;

/// The key as sent in the header: a Structured Field String (RFC 8941 §3.3.3, the draft's
/// form: `"8e03978e-40d5-43e8-bc93-6894a57f9324"`) is unquoted (\" and \\ escapes); any other
/// value is taken as it is (as most clients send a bare token), except that a bare value with a
/// comma is refused (RFC 9110 §5.3: two field lines joined). nullopt for an absent header.
/// Throws InvalidError("Idempotency-Key") when the result is empty, longer than
/// kMaxIdempotencyKey bytes, or has a byte outside visible ASCII (0x21-0x7E; a space is
/// allowed inside), or when a quoted string is not closed.
std::optional<std::string> parse_idempotency_key(const std::optional<std::string>& header);

/// The same rule for a key already parsed (the domain services check what they store).
/// Throws InvalidError("Idempotency-Key").
void check_idempotency_key(const std::string& key);

}  // namespace orchestrator::domain
