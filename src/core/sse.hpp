#pragma once
// Server-Sent Events decoding: the event stream interpretation of the WHATWG HTML
// Living Standard, §9.2 "Server-sent events", sections "Parsing an event stream"
// and "Interpreting an event stream"
// (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation):
//   - lines end with CRLF, LF or CR (a CR at the end of one feed() followed by an LF
//     at the start of the next is one line end);
//   - a single U+FEFF BYTE ORDER MARK at the start of the stream is ignored;
//   - an empty line dispatches the event; a line starting with ':' is a comment;
//   - otherwise the field name is everything before the first ':' (the whole line
//     when there is none) and the value everything after it, minus one leading
//     space if present ("data:x" and "data: x" are the same);
//   - "data" appends the value and a "\n" to the data buffer; at dispatch the last
//     "\n" is removed, so multi-line data is joined with "\n"; an event whose data
//     buffer is empty is not dispatched;
//   - "event" sets the event type (default "message"), "id" the last event id
//     (ignored when it contains NUL), "retry" and unknown fields are ignored.
// At the end of the stream the standard discards an event that was not terminated
// by an empty line; finish() hands it to the caller instead, marked as such, so a
// client can decide (see models/openai.hpp).
//
// Pure: no I/O. Bounded: a line or an event's data longer than `max_event_bytes`
// throws SseError instead of growing without limit.

#include <cstddef>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace core::sse {

/// One dispatched event.
struct Event {
  std::string type = "message";  ///< the "event" field, "message" when absent
  std::string data;              ///< the "data" lines joined with "\n"
  std::string id;                ///< the last event id seen so far ("" when none)
};

/// A stream that breaks the decoder's size bound.
class SseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Incremental event stream decoder. Feed body bytes in any split.
class Decoder {
 public:
  /// Called for every dispatched event, in order. It may throw; the exception leaves
  /// feed() and the decoder must not be used any further.
  using Sink = std::function<void(const Event&)>;

  /// `max_event_bytes` bounds one line and one event's data buffer (default 16 MiB).
  explicit Decoder(Sink on_event, std::size_t max_event_bytes = 16 * 1024 * 1024);
  /// Decodes `bytes`, dispatching each event completed by them. Throws SseError when a
  /// line or an event grows beyond max_event_bytes.
  void feed(std::string_view bytes);
  /// End of the stream: processes an unterminated last line, then returns the event
  /// that was still waiting for its empty line (nullopt when its data buffer is empty).
  /// The standard says to discard it; callers that accept it must check it is whole.
  std::optional<Event> finish();

 private:
  void line(std::string_view l);
  void dispatch();
  std::optional<Event> take();  ///< the pending event (buffers reset), nullopt when its data is empty

  Sink on_event_;
  std::size_t max_bytes_;
  std::string line_;         ///< bytes of the current, not yet terminated line
  std::string data_;         ///< data buffer of the pending event
  std::string type_;         ///< event type buffer of the pending event
  std::string last_id_;      ///< last event id buffer
  bool after_cr_ = false;    ///< the previous byte was a CR: a following LF is part of that line end
  bool start_ = true;        ///< nothing decoded yet (BOM check pending)
};

}  // namespace core::sse
