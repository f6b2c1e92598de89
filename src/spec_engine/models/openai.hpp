#pragma once
// The `openai` model provider: Chat Completions (POST {base_url}/chat/completions)
// with "stream": true and "stream_options": {"include_usage": true}; any
// compatible server (OpenAI, vLLM, SGLang, Dynamo, Ollama, llama.cpp).
// The response stream and how it becomes one turn: chat_stream.hpp (ChatStreamParser).

#include <chrono>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/http_client.hpp"
#include "spec_engine/models/chat_stream.hpp"
#include "spec_engine/models/model.hpp"

namespace spec_engine::models {

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

/// The JSON text of the request body for one call (pure; exposed for tests): model, messages
/// (system prompt first, history converted to the Chat Completions message shape), stream with
/// usage, tools, temperature, max_tokens. A history field of the wrong type is sent as "".
std::string build_chat_body(const OpenAiConfig& cfg, const ModelRequest& request);

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
  /// Always "openai" (docs/engine-api.md#model-providers).
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
