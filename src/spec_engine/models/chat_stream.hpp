#pragma once
// The Chat Completions stream (OpenAI "stream": true, and every compatible server:
// vLLM, SGLang, Dynamo, Ollama, llama.cpp) assembled into one assistant turn.
// Pure: no I/O, so it is unit-tested and fuzzed (fuzz/) without a network stack.
//
// The response is Server-Sent Events, decoded by core::sse::Decoder per the WHATWG
// HTML standard §9.2 (https://html.spec.whatwg.org/multipage/server-sent-events.html):
// CRLF, LF or CR line ends, ": keep-alive" comments, "data:" with or without the
// space, multi-line data joined with "\n". Each event's data is one JSON chunk, or
// "[DONE]" at the end. How the chunks become one assistant turn:
//   - content deltas are concatenated and passed to the DeltaSink as they arrive;
//   - tool calls arrive as fragments {index?, id?, function: {name?, arguments?}}.
//     A fragment joins the call currently open at its `index`; a fragment whose `id`
//     differs from that call's id starts a new call (vLLM, SGLang and Dynamo send
//     index 0 for every call, with a new id each); the id usually comes only on the
//     first fragment. Without `index`, a new id starts a new call and fragments
//     without id continue the latest one. Name pieces are concatenated (a piece equal
//     to the whole name so far is a repeat and is dropped); argument pieces are
//     concatenated and parsed once the turn is whole, so pieces cut mid-escape are
//     fine, and pieces cut inside a character are reassembled (stream_text.hpp);
//     blank arguments mean {}. Calls count whatever the finish_reason ("stop" too);
//   - `usage` is read from any chunk (the last one wins), also a usage-only chunk
//     with "choices": [] (OpenAI sends it when the request asks for
//     "stream_options": {"include_usage": true}, as OpenAiModel does); `model` and `id`
//     likewise (the answering model and the completion's id);
//   - {"error": {...}} (or a top-level {"object": "error", ...}, or an SSE event of
//     type "error") anywhere in the stream throws ModelError with the provider's
//     message.
// Completeness: a turn is whole once "[DONE]" or a finish_reason arrived. If the
// connection closes before either, the turn may be cut anywhere (a truncated tool
// call must never run): OpenAiModel retries the call when nothing was delivered to
// the DeltaSink yet and fails it otherwise. An event left unterminated by the end of
// the stream is discarded (as the standard says) unless its data is complete
// ("[DONE]" or a whole JSON chunk), since some servers omit the final empty line.

#include <cstddef>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/sse.hpp"
#include "spec_engine/models/model.hpp"

namespace spec_engine::models {

/// Incremental parser of a Chat Completions SSE stream (rules above). Pure (no I/O):
/// feed it the body bytes in any split, then call finish(). Not copyable or movable.
class ChatStreamParser {
 public:
  /// Default bound of one turn: content plus tool-call names and arguments, in bytes (32 MiB,
  /// far above the largest tree of files a turn may write, 8 MiB in core::files).
  static constexpr std::size_t kMaxTurnBytes = std::size_t{32} << 20;
  /// Default bound of the tool calls of one turn.
  static constexpr std::size_t kMaxToolCalls = 1024;
  /// `on_delta` receives each non-empty content delta as it is parsed (may be empty: no
  /// callback). Exceptions it throws leave feed()/finish() unchanged. A turn larger than
  /// `max_turn_bytes` or with more than `max_tool_calls` calls fails with ModelError, so a
  /// runaway or hostile model server cannot grow the engine's memory without bound.
  explicit ChatStreamParser(DeltaSink on_delta, std::size_t max_turn_bytes = kMaxTurnBytes,
                            std::size_t max_tool_calls = kMaxToolCalls);
  ChatStreamParser(const ChatStreamParser&) = delete;
  ChatStreamParser& operator=(const ChatStreamParser&) = delete;
  /// Consumes body bytes. Throws ModelError if the stream carries an error, a chunk
  /// that is not JSON, a line or event over 16 MiB, or the turn exceeds its bounds.
  void feed(std::string_view bytes);
  /// Ends the stream (see "Completeness") and returns the assembled turn. Tool-call
  /// arguments that are not a JSON object yield ToolCall::arguments_error (not a
  /// throw); calls without id get "call_<k>" (k = position in the turn).
  ModelTurn finish();
  /// True once "data: [DONE]" was seen.
  bool done() const { return done_; }
  /// True once "[DONE]" or a finish_reason was seen: the turn is whole.
  bool complete() const { return done_ || !finish_reason_.empty(); }
  /// True once any content delta or tool-call fragment was received.
  bool produced_output() const { return produced_; }
  /// True once a content delta was passed to the DeltaSink (a retry would repeat it).
  bool streamed_content() const { return streamed_; }

 private:
  struct PendingCall {
    std::string id, name, arguments;
  };
  void on_event(const core::sse::Event& ev, bool at_end);
  void on_data(std::string_view data, bool at_end);
  void apply(const nlohmann::json& chunk);
  void tool_call_fragment(const nlohmann::json& fragment);
  void add_content(const std::string& text);
  void deliver(const std::string& text);
  /// Counts `n` more bytes of the turn; throws ModelError past max_turn_bytes_.
  void count_bytes(std::size_t n);
  std::string text_of(const std::string& pieces) const;

  DeltaSink on_delta_;
  std::size_t max_turn_bytes_;
  std::size_t max_tool_calls_;
  std::size_t turn_bytes_ = 0;  ///< content + tool-call names and arguments so far
  core::sse::Decoder sse_;
  std::string content_;          ///< content delivered to on_delta_ so far
  std::string content_pending_;  ///< content held back: it ends inside a character
  std::vector<PendingCall> calls_;          ///< in order of their first fragment
  std::map<long long, std::size_t> open_;   ///< tool-call index -> the call in calls_ open at it
  std::size_t last_call_ = 0;               ///< call that received the latest fragment
  Usage usage_;
  std::string finish_reason_;
  std::string response_model_;
  std::string response_id_;
  bool done_ = false;
  bool produced_ = false;
  bool streamed_ = false;
  bool placeholders_ = false;  ///< some chunk needed placeholders (stream_text.hpp)
};

}  // namespace spec_engine::models
