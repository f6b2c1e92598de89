#pragma once
// The `openai` model provider: Chat Completions (POST {base_url}/chat/completions)
// with "stream": true and "stream_options": {"include_usage": true}; any
// compatible server (OpenAI, vLLM, Ollama, llama.cpp). The response is Server-Sent
// Events (https://html.spec.whatwg.org/multipage/server-sent-events.html):
// "data: {chunk}" lines, terminated by "data: [DONE]". Tool calls arrive as deltas
// keyed by `index` whose id/name/arguments pieces must be concatenated; the
// arguments text is only parsed once the stream is complete, so chunks cut
// mid-JSON or mid-UTF-8 are fine.

#include <chrono>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "core/http_client.hpp"
#include "spec_engine/models/model.hpp"

namespace spec_engine::models {

/// Incremental parser of a Chat Completions SSE stream. Pure (no I/O): feed it the
/// body bytes in any split, then call finish().
class ChatStreamParser {
 public:
  /// `on_delta` receives each non-empty content delta as it is parsed (may be empty: no callback).
  explicit ChatStreamParser(DeltaSink on_delta) : on_delta_(std::move(on_delta)) {}
  /// Consumes body bytes. Throws ModelError if the stream carries {"error": ...}.
  void feed(std::string_view bytes);
  /// Flushes a trailing unterminated line and returns the assembled turn. Tool-call
  /// arguments that are not valid JSON yield ToolCall::arguments_error (not a throw).
  ModelTurn finish();
  /// True once "data: [DONE]" was seen.
  bool done() const { return done_; }
  /// True once any content delta or tool-call delta was received.
  bool produced_output() const { return produced_; }

 private:
  struct PendingCall {
    std::string id, name, arguments;
  };
  void line(std::string_view l);
  void event(const nlohmann::json& chunk);

  DeltaSink on_delta_;
  std::string buf_;
  std::string content_;
  std::map<int, PendingCall> calls_;
  int last_index_ = -1;
  Usage usage_;
  std::string finish_reason_;
  bool done_ = false;
  bool produced_ = false;
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

/// Chat Completions client. Retries HTTP 429/5xx, connect/resolve errors and failures
/// before any response byte arrived, up to max_attempts with backoff (Retry-After
/// seconds honoured, capped). Other statuses (400/401/404...) throw ModelError at once
/// with the provider's error message.
class OpenAiModel : public ChatModel {
 public:
  /// Stores `cfg`; no network access until complete(). Never throws.
  explicit OpenAiModel(OpenAiConfig cfg) : cfg_(std::move(cfg)) {}
  /// One streaming POST {base_url}/chat/completions (trailing '/' of base_url ignored; Bearer
  /// api_key when non-empty). Deltas go to `on_delta` as they arrive. A Retry-After in seconds
  /// replaces the backoff wait, capped at max_retry_after. Once any output was streamed a
  /// failure is not retried (no duplicate deltas). Throws ModelError: at once for non-transient
  /// statuses, TLS/URL errors or an {"error"} in the stream; otherwise after max_attempts
  /// ("... (gave up after N attempts)").
  ModelTurn complete(const ModelRequest& request, const DeltaSink& on_delta) override;
  /// Always "openai" (DESIGN.md §4 "Model providers").
  std::string provider() const override { return "openai"; }
  /// cfg.model, for logs and events.
  std::string model_name() const override { return cfg_.model; }
  /// The configuration as given to the constructor.
  const OpenAiConfig& config() const { return cfg_; }

 private:
  OpenAiConfig cfg_;
};

}  // namespace spec_engine::models
