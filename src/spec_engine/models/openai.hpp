#pragma once
// The `openai` model provider: Chat Completions (POST {base_url}/chat/completions)
// with "stream": true and "stream_options": {"include_usage": true}; any
// compatible server (OpenAI, vLLM, SGLang, Dynamo, Ollama, llama.cpp).
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
//     with "choices": [];
//   - {"error": {...}} (or a top-level {"object": "error", ...}, or an SSE event of
//     type "error") anywhere in the stream throws ModelError with the provider's
//     message.
// Completeness: a turn is whole once "[DONE]" or a finish_reason arrived. If the
// connection closes before either, the turn may be cut anywhere (a truncated tool
// call must never run): OpenAiModel retries the call when nothing was delivered to
// the DeltaSink yet and fails it otherwise. An event left unterminated by the end of
// the stream is discarded (as the standard says) unless its data is complete
// ("[DONE]" or a whole JSON chunk), since some servers omit the final empty line.

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/http_client.hpp"
#include "core/sse.hpp"
#include "spec_engine/models/model.hpp"

namespace spec_engine::models {

/// Incremental parser of a Chat Completions SSE stream (rules above). Pure (no I/O):
/// feed it the body bytes in any split, then call finish(). Not copyable or movable.
class ChatStreamParser {
 public:
  /// `on_delta` receives each non-empty content delta as it is parsed (may be empty: no
  /// callback). Exceptions it throws leave feed()/finish() unchanged.
  explicit ChatStreamParser(DeltaSink on_delta);
  ChatStreamParser(const ChatStreamParser&) = delete;
  ChatStreamParser& operator=(const ChatStreamParser&) = delete;
  /// Consumes body bytes. Throws ModelError if the stream carries an error, a chunk
  /// that is not JSON, or a line or event over 16 MiB.
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
  std::string text_of(const std::string& pieces) const;

  DeltaSink on_delta_;
  core::sse::Decoder sse_;
  std::string content_;          ///< content delivered to on_delta_ so far
  std::string content_pending_;  ///< content held back: it ends inside a character
  std::vector<PendingCall> calls_;          ///< in order of their first fragment
  std::map<long long, std::size_t> open_;   ///< tool-call index -> the call in calls_ open at it
  std::size_t last_call_ = 0;               ///< call that received the latest fragment
  Usage usage_;
  std::string finish_reason_;
  bool done_ = false;
  bool produced_ = false;
  bool streamed_ = false;
  bool placeholders_ = false;  ///< some chunk needed placeholders (stream_text.hpp)
};

/// Settings of one openai model instance.
struct OpenAiConfig {
  std::string base_url = "https://api.openai.com/v1";  ///< "/chat/completions" is appended
  std::string api_key;                                 ///< Bearer token; may be empty for local servers
  /// model id sent as "model" in the request body (provider-specific, e.g. "gpt-4.1-mini")
  std::string model = "gpt-4.1-mini";
  /// sent as "temperature" only when set (else the server's default)
  std::optional<double> temperature;
  /// sent as "max_tokens" (completion tokens) only when set
  std::optional<int> max_tokens;
  /// TLS settings for an https:// base_url
  core::http::TlsOptions tls;
  std::chrono::milliseconds request_timeout{120000};   ///< one attempt, end to end
  std::chrono::milliseconds idle_timeout{60000};       ///< gap between chunks
  int max_attempts = 3;                                ///< total attempts for transient failures
  std::chrono::milliseconds backoff_base{500};         ///< full-jitter exponential backoff base
  /// cap of one backoff wait (core::RetryPolicy::max_delay)
  std::chrono::milliseconds backoff_max{8000};
  std::chrono::seconds max_retry_after{30};            ///< cap on an honoured Retry-After
};

/// Builds the request body for one call (pure; exposed for tests). System prompt
/// first, history converted to the Chat Completions message shape.
nlohmann::json build_chat_body(const OpenAiConfig& cfg, const ModelRequest& request);

/// Chat Completions client over core::http::AsyncHttpClient (keep-alive connection reuse; no
/// OS thread is held while waiting for the model). Retries HTTP 429/5xx, connect/resolve
/// errors, and streams that broke off before the turn was whole while no content delta had
/// been delivered yet, up to max_attempts with backoff (Retry-After seconds honoured, capped),
/// sleeping with core::async::sleep_for. Other statuses (400/401/404...) throw ModelError at
/// once with the provider's error message.
class OpenAiModel : public ChatModel {
 public:
  /// Stores `cfg`; no network access until complete(). `http` must outlive the model. Never throws.
  OpenAiModel(OpenAiConfig cfg, core::http::AsyncHttpClient& http) : cfg_(std::move(cfg)), http_(http) {}
  /// One streaming POST {base_url}/chat/completions (trailing '/' of base_url ignored; Bearer
  /// api_key when non-empty). Deltas go to `on_delta` as they arrive (on an I/O thread). A
  /// Retry-After in seconds replaces the backoff wait, capped at max_retry_after. Once a content
  /// delta was delivered a failure is not retried (no duplicate deltas). `stop` ends the call
  /// promptly at any point (connecting, waiting for the first byte, streaming, backing off) with
  /// ModelCancelled; the connection is dropped. Throws ModelError: at once for non-transient
  /// statuses, TLS/URL errors, an error in the stream, or a stream that ended before the turn was
  /// whole after content was delivered; otherwise after max_attempts ("... (gave up after N
  /// attempts)").
  core::async::Task<ModelTurn> complete(const ModelRequest& request, const DeltaSink& on_delta,
                                        std::stop_token stop) override;
  /// Always "openai" (DESIGN.md §4 "Model providers").
  std::string provider() const override { return "openai"; }
  /// cfg.model, for logs and events.
  std::string model_name() const override { return cfg_.model; }
  /// The configuration as given to the constructor.
  const OpenAiConfig& config() const { return cfg_; }

 private:
  OpenAiConfig cfg_;
  core::http::AsyncHttpClient& http_;
};

}  // namespace spec_engine::models
