#pragma once
// One engine event as the orchestrator needs it, parsed once when it arrives
// (docs/event-path-and-replicas.md "Following a thread"): the original text for browsers, plus
// the few fields the proposal tracker reads. Engine events are JSON objects
// {event_type, data, seq?, ts?} (docs/openapi.json of the engine: stream).

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace orchestrator::follow {

/// An engine event. Immutable once parsed; shared by every subscriber of a thread.
struct Event {
  long long seq = 0;     ///< the event's `seq`, or its 1-based position in the stream when it has none
  std::string type;      ///< `event_type` ("" when missing or the text is not a JSON object)
  std::string text;      ///< the event exactly as the engine sent it (forwarded to browsers unchanged)
  /// An `on_state_update` whose `data.files` is an object (engine file shape: path -> {content,
  /// created_at, modified_at}). The files stay in `text` until files_of() parses them: only the
  /// last update of a run is ever read (by the tracker, once), so a followed thread keeps no
  /// parsed copy of every earlier tree (they were most of a follower's memory).
  bool has_files = false;
  /// `end`: `data.status` ("" when absent, as the Python engine sends `{}`).
  std::string end_status;
  /// `end`: text of `data.error`; `error`: text of `data.error` (or of `data`). nullopt otherwise.
  std::optional<std::string> error;
  bool is_end() const { return type == "end"; }
};

using EventPtr = std::shared_ptr<const Event>;

/// Parses `text` (one WebSocket message of the engine's stream) with at most one JSON parse:
/// events whose data the tracker does not read at once (all but end and error) only have their
/// top-level seq and event_type scanned (core/json_scan.hpp), and an on_state_update whether
/// its data has a `files` object, with the same result for any well-formed event (a malformed
/// scalar inside `data` is not noticed there). `position` is the seq used when the event
/// carries none (the Python engine's recordings). Never throws: an unreadable message becomes
/// an event of type "" at `position`.
EventPtr parse_event(std::string text, long long position);

/// `data.files` of an event with has_files, parsed from its text (one full parse, bounded by
/// core::json::kInternalLimits); nullopt for other events and for text that does not parse.
std::optional<nlohmann::json> files_of(const Event& ev);

/// True for the engine's final run statuses: "completed", "failed", "cancelled" (GET state's
/// `status`, an `end` event's `data.status`); false for "running", "" and anything else.
bool is_terminal_status(const std::string& status);

/// A sentence from an engine error value: a non-empty string as is; an object's "error",
/// "message" or "detail" string; otherwise the compact JSON. nullopt for null/empty values.
std::optional<std::string> error_text(const nlohmann::json& v);

}  // namespace orchestrator::follow
