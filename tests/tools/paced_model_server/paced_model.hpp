#pragma once
// A paced OpenAI-compatible Chat Completions server for load tests and benchmarks: it answers
// like a real model streaming at a fixed rate, with a fixed script per conversation, so the time
// a run takes is known in advance and everything beyond it is the system under test.
//
// Script of one conversation (`turns` T, `chunks` C, `rate` R chunks/s per stream):
//   requests 1..T  -> C text chunks, the k-th sent k/R seconds after the request arrived, then
//                     one `write_file` tool call (/THE_SPEC/paced-<n>.md) and finish_reason
//                     "tool_calls"; a turn takes C/R seconds
//   request  T+1.. -> one text chunk at once ("Done ...") and finish_reason "stop"
// The turn of a request is the number of assistant messages in its history, so any number of
// conversations may run at once and an engine that restarts and resends a turn gets the same
// answer again. A conversation is identified by its first user message (FNV-1a 64 of its text).
// The model's own pacing of a whole conversation is T*C/R seconds.
//
// Routes (OpenAI API reference, "Chat Completions" and "Streaming"):
//   POST /v1/chat/completions  stream: true  -> text/event-stream of chat.completion.chunk
//                                               objects, `data: {...}\n\n`, then `data: [DONE]`
//                              stream: false -> one chat.completion object after the same pacing
//   GET  /v1/models            the one model
//   GET  /stats                request counts, total and per conversation (JSON)
//   GET  /health               "ok"
// Bad requests get RFC 9457 problem details naming the field.

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/router.hpp"

namespace paced_model {

/// The script every conversation follows (see the file comment).
struct Script {
  int turns = 4;            ///< tool-call turns before the final answer (>= 0)
  int chunks = 4;           ///< text chunks per tool-call turn (>= 1)
  double rate = 2.0;        ///< text chunks per second per stream (> 0)
  std::string model = "paced";  ///< the `model` reported in responses and /v1/models

  /// Seconds the model itself spends on one conversation: turns * chunks / rate.
  double pacing_seconds() const { return turns * chunks / rate; }
};

/// Where a request stands in its conversation.
struct Position {
  std::string conversation;  ///< 16 hex digits: FNV-1a 64 of the first user message's text
  int turn = 0;              ///< assistant messages in the history (0 = first request)
};

/// What the server needs from a Chat Completions request.
struct ChatRequest {
  Position position;
  bool stream = false;  ///< `stream`; absent or null = false
};

/// A request the server cannot answer; `field` names the offending member ("body", "messages",
/// "stream").
class InvalidRequest : public std::invalid_argument {
 public:
  InvalidRequest(std::string field, const std::string& message)
      : std::invalid_argument(message), field_(std::move(field)) {}
  const std::string& field() const { return field_; }

 private:
  std::string field_;
};

/// Reads a Chat Completions request body with a SAX pass (no document is built: the server reads
/// tens of thousands of long histories). Throws InvalidRequest when the body is not a JSON
/// object, `messages` is missing or not an array or holds no user message, or `stream` is not a
/// boolean.
ChatRequest read_request(std::string_view body);

/// FNV-1a 64-bit hash of `text` as 16 lower-case hex digits.
std::string fnv1a_hex(std::string_view text);

/// Request counts (thread-safe).
class Stats {
 public:
  /// Counts one request of `p`.
  void record(const Position& p);
  /// A stream ended before its last chunk because the client went away.
  void aborted() { ++aborted_; }
  /// Streams in progress.
  void stream_opened() { ++open_; }
  void stream_closed() { --open_; }
  /// {"requests", "streams_open", "streams_aborted", "conversations",
  ///  "requests_per_conversation": {"<count>": conversations with that many requests},
  ///  "by_conversation": {"<id>": {"requests", "max_turn"}}} (by_conversation only when `detail`).
  nlohmann::json to_json(bool detail) const;

 private:
  struct Entry {
    long requests = 0;
    int max_turn = 0;
  };
  mutable std::mutex mu_;
  std::map<std::string, Entry> by_conversation_;
  long requests_ = 0;
  std::atomic<long> aborted_{0};
  std::atomic<long> open_{0};
};

/// The routes above for `script`, counting into `stats` (both must outlive the router).
core::http::Router make_router(const Script& script, Stats& stats);

}  // namespace paced_model
