// Chat Completions stream assembly (chat_stream.hpp).
#include "spec_engine/models/chat_stream.hpp"

#include <algorithm>

#include "core/json_parse.hpp"
#include "core/util.hpp"
#include "spec_engine/models/stream_text.hpp"

namespace spec_engine::models {

using nlohmann::json;

namespace {

/// "openai: the model server sent an error in the stream: <message> (type: T, code: C)"
/// from an OpenAI error object ({"message", "type", "code", ...}) or any other JSON.
std::string stream_error(const json& e) {
  std::string msg;
  if (e.is_object() && e.contains("message") && e["message"].is_string()) {
    msg = e["message"].get<std::string>();
    std::string detail;
    for (const char* key : {"type", "code"}) {
      if (!e.contains(key) || e[key].is_null()) continue;
      detail += (detail.empty() ? "" : ", ") + std::string(key) + ": " +
                (e[key].is_string() ? e[key].get<std::string>() : e[key].dump());
    }
    if (!detail.empty()) msg += " (" + detail + ")";
  } else if (e.is_string()) {
    msg = e.get<std::string>();
  } else {
    msg = e.dump();
  }
  return "openai: the model server sent an error in the stream: " + core::utf8_truncate(msg, 2000);
}

/// The error for a turn with more tool calls than allowed.
ModelError too_many_calls(std::size_t max) {
  return ModelError("openai: the model's turn has more than " + std::to_string(max) +
                    " tool calls; the turn was discarded");
}

}  // namespace

ChatStreamParser::ChatStreamParser(DeltaSink on_delta, std::size_t max_turn_bytes, std::size_t max_tool_calls)
    : on_delta_(std::move(on_delta)),
      max_turn_bytes_(max_turn_bytes),
      max_tool_calls_(max_tool_calls),
      sse_([this](const core::sse::Event& ev) { on_event(ev, false); }) {}

void ChatStreamParser::count_bytes(std::size_t n) {
  turn_bytes_ += n;
  if (turn_bytes_ > max_turn_bytes_) {
    throw ModelError("openai: the model's turn exceeded " + std::to_string(max_turn_bytes_) +
                     " bytes of text and tool-call arguments; the turn was discarded (lower max_tokens or check the "
                     "model server)");
  }
}

void ChatStreamParser::feed(std::string_view bytes) {
  try {
    sse_.feed(bytes);
  } catch (const core::sse::SseError& e) {
    throw ModelError(std::string("openai: ") + e.what());
  }
}

void ChatStreamParser::on_event(const core::sse::Event& ev, bool at_end) {
  if (ev.type == "error") {
    bool ignored = false;
    auto j = parse_stream_chunk(ev.data, ignored);
    if (j && j->is_object() && j->contains("error")) throw ModelError(stream_error((*j)["error"]));
    throw ModelError(stream_error(j ? *j : json(core::utf8_truncate(ev.data, 2000))));
  }
  on_data(ev.data, at_end);
}

void ChatStreamParser::on_data(std::string_view data, bool at_end) {
  if (data == "[DONE]") {
    done_ = true;
    return;
  }
  bool placeholders = false;
  auto chunk = parse_stream_chunk(data, placeholders);
  if (!chunk) {
    // Servers that end events with a single newline put several chunks into one event
    // (the standard joins its data lines with "\n"): take them one line at a time.
    if (data.find('\n') != std::string_view::npos) {
      for (std::size_t i = 0; i <= data.size();) {
        std::size_t nl = std::min(data.find('\n', i), data.size());
        if (nl > i) on_data(data.substr(i, nl - i), at_end);
        i = nl + 1;
      }
      return;
    }
    if (at_end) return;  // cut off by the end of the stream: discarded, see "Completeness"
    throw ModelError("openai: malformed stream chunk: " + core::utf8_truncate(data, 200));
  }
  placeholders_ = placeholders_ || placeholders;
  apply(*chunk);
}

void ChatStreamParser::apply(const json& chunk) {
  if (!chunk.is_object()) return;
  if (chunk.contains("error") && !chunk["error"].is_null()) throw ModelError(stream_error(chunk["error"]));
  if (chunk.value("object", json()) == "error") throw ModelError(stream_error(chunk));  // vLLM's ErrorResponse
  if (chunk.contains("model") && chunk["model"].is_string()) response_model_ = chunk["model"].get<std::string>();
  if (chunk.contains("id") && chunk["id"].is_string()) response_id_ = chunk["id"].get<std::string>();
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
    if (d.contains("content") && d["content"].is_string()) add_content(d["content"].get<std::string>());
    if (!d.contains("tool_calls") || !d["tool_calls"].is_array()) continue;
    for (const auto& fragment : d["tool_calls"]) tool_call_fragment(fragment);
  }
}

void ChatStreamParser::tool_call_fragment(const json& tc) {
  if (!tc.is_object()) return;
  produced_ = true;
  const std::string id =
      tc.contains("id") && tc["id"].is_string() ? tc["id"].get<std::string>() : std::string();
  // A new id where a call with another id is open starts a new call.
  const auto other_id = [&](std::size_t k) { return !id.empty() && !calls_[k].id.empty() && calls_[k].id != id; };
  std::size_t k;
  if (tc.contains("index") && tc["index"].is_number_integer()) {
    const auto index = tc["index"].get<long long>();
    auto it = open_.find(index);
    if (it == open_.end() || other_id(it->second)) {
      if (calls_.size() >= max_tool_calls_) throw too_many_calls(max_tool_calls_);
      calls_.emplace_back();
      k = open_[index] = calls_.size() - 1;
    } else {
      k = it->second;
    }
  } else if (calls_.empty() || other_id(last_call_)) {
    if (calls_.size() >= max_tool_calls_) throw too_many_calls(max_tool_calls_);
    calls_.emplace_back();
    k = calls_.size() - 1;
  } else {
    k = last_call_;
  }
  last_call_ = k;
  PendingCall& call = calls_[k];
  if (call.id.empty()) call.id = id;
  if (!tc.contains("function") || !tc["function"].is_object()) return;
  const auto& fn = tc["function"];
  if (fn.contains("name") && fn["name"].is_string()) {
    const auto& n = fn["name"].get_ref<const std::string&>();
    if (n != call.name) {  // some servers repeat the whole name in every fragment
      count_bytes(n.size());
      call.name += n;
    }
  }
  if (fn.contains("arguments")) {
    const auto& a = fn["arguments"];
    if (a.is_string()) {
      count_bytes(a.get_ref<const std::string&>().size());
      call.arguments += a.get_ref<const std::string&>();
    } else if (a.is_object() && call.arguments.empty()) {
      call.arguments = a.dump();  // not OpenAI's shape, but unambiguous
      count_bytes(call.arguments.size());
    }
  }
}

void ChatStreamParser::add_content(const std::string& text) {
  if (text.empty()) return;
  count_bytes(text.size());
  produced_ = true;
  if (!placeholders_) {
    deliver(text);
    return;
  }
  content_pending_ += text;
  const std::size_t keep = unfinished_tail(content_pending_);
  const std::string ready = join_split_code_points(std::string_view(content_pending_).substr(0, content_pending_.size() - keep));
  content_pending_.erase(0, content_pending_.size() - keep);
  deliver(ready);
}

void ChatStreamParser::deliver(const std::string& text) {
  if (text.empty()) return;
  content_ += text;
  streamed_ = true;
  if (on_delta_) on_delta_(text);
}

std::string ChatStreamParser::text_of(const std::string& pieces) const {
  return placeholders_ ? join_split_code_points(pieces) : pieces;
}

ModelTurn ChatStreamParser::finish() {
  std::optional<core::sse::Event> last;
  try {
    last = sse_.finish();
  } catch (const core::sse::SseError& e) {
    throw ModelError(std::string("openai: ") + e.what());
  }
  if (last) on_event(*last, true);
  if (!content_pending_.empty()) {
    std::string rest;
    rest.swap(content_pending_);
    deliver(join_split_code_points(rest));
  }
  ModelTurn turn;
  turn.content = content_;
  turn.usage = usage_;
  turn.finish_reason = finish_reason_;
  turn.response_model = response_model_;
  turn.response_id = response_id_;
  for (std::size_t k = 0; k < calls_.size(); ++k) {
    const PendingCall& pc = calls_[k];
    ToolCall c;
    c.id = pc.id.empty() ? "call_" + std::to_string(k) : text_of(pc.id);
    c.name = text_of(pc.name);
    c.arguments_raw = text_of(pc.arguments);
    std::string_view raw = c.arguments_raw;
    bool blank = std::all_of(raw.begin(), raw.end(), [](char ch) { return ch == ' ' || ch == '\n' || ch == '\t' || ch == '\r'; });
    if (blank) {
      c.arguments = json::object();
    } else {
      try {
        c.arguments = core::json::parse(c.arguments_raw);
        if (!c.arguments.is_object()) {
          c.arguments_error = "arguments must be a JSON object";
          c.arguments = json::object();
        }
      } catch (const core::json::ParseException& e) {
        c.arguments = json::object();
        c.arguments_error = std::string("arguments are not valid JSON: ") + e.what();
      }
    }
    turn.tool_calls.push_back(std::move(c));
  }
  return turn;
}

}  // namespace spec_engine::models
