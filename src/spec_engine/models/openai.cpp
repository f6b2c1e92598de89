#include "spec_engine/models/openai.hpp"

#include <algorithm>

#include "core/json_parse.hpp"
#include "core/json_text.hpp"
#include "core/log.hpp"
#include "core/resilience.hpp"
#include "core/util.hpp"

namespace spec_engine::models {

using nlohmann::json;

namespace {

/// The text of m[key] when it is a string, else of "" (the history's optional fields).
std::string string_member(const json& m, const char* key) {
  const auto it = m.find(key);
  return it != m.end() && it->is_string() ? core::json::dump(*it) : std::string("\"\"");
}

/// Appends one history message in the Chat Completions shape.
void append_message(std::string& out, const json& m) {
  const auto role_it = m.find("role");
  const std::string role = role_it != m.end() && role_it->is_string() ? role_it->get<std::string>() : "user";
  if (role == "assistant") {
    const auto calls_it = m.find("tool_calls");
    const bool has_calls = calls_it != m.end() && calls_it->is_array() && !calls_it->empty();
    const auto content_it = m.find("content");
    const bool empty =
        content_it == m.end() || !content_it->is_string() || content_it->get_ref<const std::string&>().empty();
    out += R"({"role":"assistant","content":)";
    out += empty && has_calls ? std::string("null") : string_member(m, "content");
    if (has_calls) {
      out += R"(,"tool_calls":[)";
      bool first = true;
      for (const auto& c : *calls_it) {
        if (!first) out += ',';
        first = false;
        // Malformed arguments are sent back as "{}": the tool message explains the error.
        const auto args_it = c.find("arguments");
        const std::string args = c.contains("arguments_error") ? "{}"
                                 : args_it != c.end()          ? core::json::dump(*args_it)
                                                               : "{}";
        out += R"({"id":)" + string_member(c, "id") + R"(,"type":"function","function":{"name":)" +
               string_member(c, "name") + R"(,"arguments":)" + core::json::dump(json(args)) + "}}";
      }
      out += ']';
    }
    out += '}';
  } else if (role == "tool") {
    out += R"({"role":"tool","tool_call_id":)" + string_member(m, "tool_call_id") + R"(,"content":)" +
           string_member(m, "content") + "}";
  } else {
    out += role == "system" ? R"({"role":"system","content":)" : R"({"role":"user","content":)";
    out += string_member(m, "content");
    out += '}';
  }
}

}  // namespace

std::string build_chat_body(const OpenAiConfig& cfg, const ModelRequest& request) {
  // Written as text from the history in place: the history (which grows with every turn of a
  // run) is neither copied into a second document nor serialized twice.
  std::string out = R"({"model":)" + core::json::dump(json(cfg.model)) + R"(,"messages":[)";
  bool first = true;
  if (!request.system_prompt.empty()) {
    out += R"({"role":"system","content":)" + core::json::dump(json(request.system_prompt)) + "}";
    first = false;
  }
  for (const auto& m : request.messages) {
    if (!first) out += ',';
    first = false;
    append_message(out, m);
  }
  out += R"(],"stream":true,"stream_options":{"include_usage":true})";
  if (request.tools.is_array() && !request.tools.empty()) out += R"(,"tools":)" + core::json::dump(request.tools);
  if (cfg.temperature) out += R"(,"temperature":)" + core::json::dump(json(*cfg.temperature));
  if (cfg.max_tokens) out += R"(,"max_tokens":)" + std::to_string(*cfg.max_tokens);
  out += '}';
  return out;
}

namespace {

std::string provider_message(int status, const std::string& body) {
  json j = core::json::parse_or_null(body).value_or(json::value_t::discarded);
  std::string msg;
  if (!j.is_discarded() && j.is_object() && j.contains("error")) {
    const auto& e = j["error"];
    if (e.is_object() && e.contains("message") && e["message"].is_string()) msg = e["message"];
    else if (e.is_string()) msg = e;
  }
  if (msg.empty()) msg = body.substr(0, 500);
  return "openai: HTTP " + std::to_string(status) + (msg.empty() ? "" : ": " + msg);
}

// One attempt's outcome when it did not produce a turn.
struct Failure {
  bool transient = false;
  std::string message;
  std::optional<std::chrono::seconds> retry_after;
};

/// Whether a transport failure of one attempt may be retried (before any content delta).
bool transient_failure(const core::http::ClientError& e, bool got_bytes, int status) {
  using K = core::http::ClientErrorKind;
  switch (e.kind()) {
    case K::connect:
    case K::resolve:
    case K::local_resources:
      return true;
    case K::timeout:
    case K::closed:
    case K::protocol:
      return !got_bytes || (status >= 500 || status == 429);
    case K::tls:
    case K::invalid_url:
    case K::cancelled:
    case K::too_large:
      return false;
  }
  return false;
}

/// The Retry-After delay in seconds (RFC 9110 §10.2.3), if the header holds one.
std::optional<std::chrono::seconds> retry_after_of(const core::http::Headers& h) {
  auto ra = h.get("Retry-After");
  if (!ra) return std::nullopt;
  try {
    long secs = std::stol(*ra);
    if (secs >= 0) return std::chrono::seconds(secs);
  } catch (const std::exception&) {
    // HTTP-date form is not honoured; the backoff applies instead.
  }
  return std::nullopt;
}

}  // namespace

core::async::Task<ModelTurn> OpenAiModel::complete(const ModelRequest& request, const DeltaSink& on_delta,
                                                   std::stop_token stop) {
  core::http::ClientRequest req;
  req.method = "POST";
  std::string base = cfg_.base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  req.url = base + "/chat/completions";
  req.headers.set("Content-Type", "application/json");
  req.headers.set("Accept", "text/event-stream");
  if (!cfg_.api_key.empty()) req.headers.set("Authorization", "Bearer " + cfg_.api_key);
  req.body = build_chat_body(cfg_, request);
  req.timeout = cfg_.request_timeout;
  req.tls = cfg_.tls;
  // A chat completion changes nothing on the server, so sending it again when a reused
  // keep-alive connection turns out closed before any response byte is safe (RFC 9112 §9.3.1).
  req.idempotent = true;
  const std::string stopped = "openai: the call to " + req.url + " was stopped";

  core::RetryPolicy policy{std::max(1, cfg_.max_attempts), cfg_.backoff_base, cfg_.backoff_max};
  Failure last;
  for (int attempt = 0; attempt < policy.max_attempts; ++attempt) {
    if (attempt > 0) {
      auto wait = policy.delay_for(attempt - 1);
      if (last.retry_after) {
        wait = std::chrono::duration_cast<std::chrono::milliseconds>(std::min(*last.retry_after, cfg_.max_retry_after));
      }
      core::log::warn("model call retry", {{"provider", "openai"}, {"model", cfg_.model}, {"attempt", attempt + 1},
                                           {"reason", last.message}, {"wait_ms", wait.count()}});
      // Named, not written inside the co_await: GCC 12 miscompiles a by-value argument of
      // non-trivial type (the stop_token) there.
      auto backoff = core::async::sleep_for(wait, stop);
      if (!co_await std::move(backoff)) throw ModelCancelled(stopped);
    }
    if (stop.stop_requested()) throw ModelCancelled(stopped);
    ChatStreamParser parser(on_delta);
    int status = 0;
    std::string error_body;
    std::optional<std::chrono::seconds> retry_after;
    bool got_bytes = false;
    std::function<void(int, const core::http::Headers&)> on_status = [&](int s, const core::http::Headers& h) {
      status = s;
      retry_after = retry_after_of(h);
    };
    std::function<void(std::string_view)> on_chunk = [&](std::string_view chunk) {
      got_bytes = true;
      if (status >= 200 && status < 300) {
        parser.feed(chunk);
      } else if (error_body.size() < 65536) {
        error_body.append(chunk.substr(0, 65536 - error_body.size()));
      }
    };
    std::optional<core::http::ClientError> transport;
    try {
      auto call = http_.request_streaming(req, std::move(on_status), std::move(on_chunk), cfg_.idle_timeout, stop);
      co_await std::move(call);
    } catch (const core::http::ClientError& e) {
      transport = e;
    }
    if (transport) {
      if (transport->kind() == core::http::ClientErrorKind::cancelled || stop.stop_requested()) {
        throw ModelCancelled(stopped);
      }
      // Deltas were already streamed: a retry would repeat them.
      const bool transient = !parser.streamed_content() && transient_failure(*transport, got_bytes, status);
      last = Failure{transient, "openai: request to " + req.url + " failed: " + transport->what(), std::nullopt};
      if (!transient) throw ModelError(last.message);
      continue;
    }
    if (status == 429 || status >= 500) {
      last = Failure{true, provider_message(status, error_body), retry_after};
      continue;
    }
    if (status < 200 || status >= 300) throw ModelError(provider_message(status, error_body));
    ModelTurn turn = parser.finish();
    if (!parser.complete()) {
      // Neither [DONE] nor a finish_reason: the turn may be cut anywhere, and a truncated
      // tool call must never run. Retry unless content already reached the sink.
      last = Failure{!parser.streamed_content(),
                     parser.produced_output()
                         ? "openai: the stream ended before the turn was complete (no finish_reason, no [DONE]); "
                           "the partial answer was discarded"
                         : "openai: stream ended without any data",
                     std::nullopt};
      if (!last.transient) throw ModelError(last.message);
      continue;
    }
    co_return turn;
  }
  throw ModelError(last.message + " (gave up after " + std::to_string(policy.max_attempts) + " attempts)");
}

}  // namespace spec_engine::models
