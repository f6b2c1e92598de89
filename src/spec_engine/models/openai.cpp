#include "spec_engine/models/openai.hpp"

#include <algorithm>
#include <thread>

#include "core/log.hpp"
#include "core/resilience.hpp"

namespace spec_engine::models {

using nlohmann::json;

void ChatStreamParser::feed(std::string_view bytes) {
  buf_.append(bytes);
  std::size_t start = 0;
  for (;;) {
    auto nl = buf_.find('\n', start);
    if (nl == std::string::npos) break;
    std::string_view l(buf_.data() + start, nl - start);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    line(l);
    start = nl + 1;
  }
  buf_.erase(0, start);
}

void ChatStreamParser::line(std::string_view l) {
  if (l.empty() || l.front() == ':') return;  // event boundary or SSE comment
  if (l.substr(0, 5) != "data:") return;      // event:, id:, retry: fields are not used
  l.remove_prefix(5);
  if (!l.empty() && l.front() == ' ') l.remove_prefix(1);
  if (l == "[DONE]") {
    done_ = true;
    return;
  }
  json chunk = json::parse(l, nullptr, false);
  if (chunk.is_discarded()) throw ModelError("openai: malformed stream chunk: " + std::string(l.substr(0, 200)));
  event(chunk);
}

void ChatStreamParser::event(const json& chunk) {
  if (!chunk.is_object()) return;
  if (chunk.contains("error") && !chunk["error"].is_null()) {
    const auto& e = chunk["error"];
    std::string msg = e.is_object() && e.contains("message") && e["message"].is_string() ? e["message"].get<std::string>()
                                                                                          : e.dump();
    throw ModelError("openai: error in stream: " + msg);
  }
  if (chunk.contains("usage") && chunk["usage"].is_object()) {
    const auto& u = chunk["usage"];
    if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer()) usage_.prompt_tokens = u["prompt_tokens"];
    if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer()) {
      usage_.completion_tokens = u["completion_tokens"];
    }
  }
  if (!chunk.contains("choices") || !chunk["choices"].is_array()) return;
  for (const auto& choice : chunk["choices"]) {
    if (!choice.is_object()) continue;
    if (choice.contains("finish_reason") && choice["finish_reason"].is_string()) {
      finish_reason_ = choice["finish_reason"].get<std::string>();
    }
    if (!choice.contains("delta") || !choice["delta"].is_object()) continue;
    const auto& d = choice["delta"];
    if (d.contains("content") && d["content"].is_string()) {
      const auto& text = d["content"].get_ref<const std::string&>();
      if (!text.empty()) {
        produced_ = true;
        content_ += text;
        if (on_delta_) on_delta_(text);
      }
    }
    if (!d.contains("tool_calls") || !d["tool_calls"].is_array()) continue;
    int pos = 0;
    for (const auto& tc : d["tool_calls"]) {
      if (!tc.is_object()) continue;
      produced_ = true;
      int idx;
      if (tc.contains("index") && tc["index"].is_number_integer()) {
        idx = tc["index"].get<int>();
      } else if (tc.contains("id") && tc["id"].is_string() && !tc["id"].get_ref<const std::string&>().empty() &&
                 (last_index_ < 0 || calls_[last_index_].id != tc["id"].get<std::string>())) {
        idx = last_index_ + 1 + pos;  // servers without `index`: a new id starts a new call
      } else {
        idx = std::max(last_index_, 0);
      }
      ++pos;
      last_index_ = std::max(last_index_, idx);
      auto& call = calls_[idx];
      if (tc.contains("id") && tc["id"].is_string() && !tc["id"].get_ref<const std::string&>().empty()) {
        call.id = tc["id"].get<std::string>();
      }
      if (tc.contains("function") && tc["function"].is_object()) {
        const auto& fn = tc["function"];
        if (fn.contains("name") && fn["name"].is_string()) {
          const auto& n = fn["name"].get_ref<const std::string&>();
          if (call.name.empty()) call.name = n;
          else if (n != call.name) call.name += n;
        }
        if (fn.contains("arguments") && fn["arguments"].is_string()) call.arguments += fn["arguments"].get<std::string>();
      }
    }
  }
}

ModelTurn ChatStreamParser::finish() {
  if (!buf_.empty()) {
    std::string rest;
    rest.swap(buf_);
    if (!rest.empty() && rest.back() == '\r') rest.pop_back();
    line(rest);
  }
  ModelTurn turn;
  turn.content = content_;
  turn.usage = usage_;
  turn.finish_reason = finish_reason_;
  int k = 0;
  for (auto& [idx, pc] : calls_) {
    ToolCall c;
    c.id = pc.id.empty() ? "call_" + std::to_string(k) : pc.id;
    c.name = pc.name;
    c.arguments_raw = pc.arguments;
    std::string_view raw = pc.arguments;
    bool blank = std::all_of(raw.begin(), raw.end(), [](char ch) { return ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r'; });
    if (blank) {
      c.arguments = json::object();
    } else {
      try {
        c.arguments = json::parse(pc.arguments);
        if (!c.arguments.is_object()) {
          c.arguments_error = "arguments must be a JSON object";
          c.arguments = json::object();
        }
      } catch (const json::exception& e) {
        c.arguments = json::object();
        c.arguments_error = std::string("arguments are not valid JSON: ") + e.what();
      }
    }
    turn.tool_calls.push_back(std::move(c));
    ++k;
  }
  return turn;
}

json build_chat_body(const OpenAiConfig& cfg, const ModelRequest& request) {
  json msgs = json::array();
  if (!request.system_prompt.empty()) msgs.push_back({{"role", "system"}, {"content", request.system_prompt}});
  for (const auto& m : request.messages) {
    std::string role = m.value("role", "user");
    if (role == "assistant") {
      json out = {{"role", "assistant"}};
      std::string content = m.contains("content") && m["content"].is_string() ? m["content"].get<std::string>() : "";
      out["content"] = content.empty() && m.contains("tool_calls") && !m["tool_calls"].empty() ? json(nullptr) : json(content);
      if (m.contains("tool_calls") && m["tool_calls"].is_array() && !m["tool_calls"].empty()) {
        json calls = json::array();
        for (const auto& c : m["tool_calls"]) {
          // Malformed arguments are sent back as "{}": the tool message explains the error.
          std::string args = c.contains("arguments_error") ? "{}" : c.value("arguments", json::object()).dump();
          calls.push_back({{"id", c.value("id", "")},
                           {"type", "function"},
                           {"function", {{"name", c.value("name", "")}, {"arguments", args}}}});
        }
        out["tool_calls"] = calls;
      }
      msgs.push_back(out);
    } else if (role == "tool") {
      msgs.push_back({{"role", "tool"}, {"tool_call_id", m.value("tool_call_id", "")}, {"content", m.value("content", "")}});
    } else {
      msgs.push_back({{"role", role == "system" ? "system" : "user"}, {"content", m.value("content", "")}});
    }
  }
  json body = {{"model", cfg.model},
               {"messages", msgs},
               {"stream", true},
               {"stream_options", {{"include_usage", true}}}};
  if (request.tools.is_array() && !request.tools.empty()) body["tools"] = request.tools;
  if (cfg.temperature) body["temperature"] = *cfg.temperature;
  if (cfg.max_tokens) body["max_tokens"] = *cfg.max_tokens;
  return body;
}

namespace {

std::string provider_message(int status, const std::string& body) {
  json j = json::parse(body, nullptr, false);
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

}  // namespace

ModelTurn OpenAiModel::complete(const ModelRequest& request, const DeltaSink& on_delta) {
  core::http::ClientRequest req;
  req.method = "POST";
  std::string base = cfg_.base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  req.url = base + "/chat/completions";
  req.headers.set("Content-Type", "application/json");
  req.headers.set("Accept", "text/event-stream");
  if (!cfg_.api_key.empty()) req.headers.set("Authorization", "Bearer " + cfg_.api_key);
  req.body = build_chat_body(cfg_, request).dump();
  req.timeout = cfg_.request_timeout;
  req.tls = cfg_.tls;

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
      std::this_thread::sleep_for(wait);
    }
    ChatStreamParser parser(on_delta);
    int status = 0;
    std::string error_body;
    std::optional<std::chrono::seconds> retry_after;
    bool got_bytes = false;
    try {
      core::http::request_streaming(
          req,
          [&](int s, const core::http::Headers& h) {
            status = s;
            if (auto ra = h.get("Retry-After")) {
              try {
                long secs = std::stol(*ra);
                if (secs >= 0) retry_after = std::chrono::seconds(secs);
              } catch (const std::exception&) {
                // HTTP-date form is not honoured; the backoff applies instead.
              }
            }
          },
          [&](std::string_view chunk) {
            got_bytes = true;
            if (status >= 200 && status < 300) {
              parser.feed(chunk);
            } else if (error_body.size() < 65536) {
              error_body.append(chunk.substr(0, 65536 - error_body.size()));
            }
          },
          cfg_.idle_timeout);
    } catch (const core::http::ClientError& e) {
      using K = core::http::ClientErrorKind;
      bool before_output = !parser.produced_output();
      bool transient = false;
      switch (e.kind()) {
        case K::connect:
        case K::resolve:
        case K::local_resources:
          transient = true;
          break;
        case K::timeout:
        case K::closed:
        case K::protocol:
          transient = !got_bytes || (status >= 500 || status == 429);
          break;
        case K::tls:
        case K::invalid_url:
        case K::cancelled:
          transient = false;
          break;
      }
      if (!before_output) transient = false;  // deltas were already streamed: do not duplicate
      last = Failure{transient, "openai: request to " + req.url + " failed: " + e.what(), std::nullopt};
      if (!transient) throw ModelError(last.message);
      continue;
    }
    if (status == 429 || status >= 500) {
      last = Failure{true, provider_message(status, error_body), retry_after};
      continue;
    }
    if (status < 200 || status >= 300) throw ModelError(provider_message(status, error_body));
    ModelTurn turn = parser.finish();
    if (!parser.done() && turn.tool_calls.empty() && turn.content.empty() && turn.finish_reason.empty()) {
      last = Failure{true, "openai: stream ended without any data", std::nullopt};
      continue;
    }
    return turn;
  }
  throw ModelError(last.message + " (gave up after " + std::to_string(policy.max_attempts) + " attempts)");
}

}  // namespace spec_engine::models
