#include "spec_engine/models/scripted.hpp"

#include <cctype>
#include <chrono>
#include <fstream>
#include <sstream>

#include "core/async.hpp"
#include "core/json_parse.hpp"

namespace spec_engine::models {

using nlohmann::json;

namespace {
[[noreturn]] void bad(const std::string& label, const std::string& field, const std::string& msg) {
  throw ModelError("scripted model: invalid script " + label + ": " + field + " " + msg);
}
}  // namespace

ScriptedModel::ScriptedModel(const json& script, std::string label) : label_(std::move(label)) {
  if (!script.is_object() || !script.contains("turns")) bad(label_, "(root)", "must be {\"turns\": [...]}");
  const auto& turns = script["turns"];
  if (!turns.is_array()) bad(label_, "turns", "must be a list");
  for (std::size_t i = 0; i < turns.size(); ++i) {
    const auto& t = turns[i];
    std::string f = "turns[" + std::to_string(i) + "]";
    if (!t.is_object()) bad(label_, f, "must be an object");
    if (t.contains("node") && !t["node"].is_string() && !t["node"].is_null()) bad(label_, f + ".node", "must be a string");
    if (t.contains("content") && !t["content"].is_string() && !t["content"].is_null()) {
      bad(label_, f + ".content", "must be a string");
    }
    if (t.contains("delay_ms") && !(t["delay_ms"].is_number_integer() && t["delay_ms"].get<long long>() >= 0 &&
                                     t["delay_ms"].get<long long>() <= 60000)) {
      bad(label_, f + ".delay_ms", "must be an integer from 0 to 60000 (milliseconds)");
    }
    if (t.contains("tool_calls") && !t["tool_calls"].is_null()) {
      const auto& calls = t["tool_calls"];
      if (!calls.is_array()) bad(label_, f + ".tool_calls", "must be a list");
      for (std::size_t k = 0; k < calls.size(); ++k) {
        std::string cf = f + ".tool_calls[" + std::to_string(k) + "]";
        if (!calls[k].is_object()) bad(label_, cf, "must be an object");
        if (!calls[k].contains("name") || !calls[k]["name"].is_string()) bad(label_, cf + ".name", "must be a string");
        if (calls[k].contains("id") && !calls[k]["id"].is_string()) bad(label_, cf + ".id", "must be a string");
      }
    }
    turns_.push_back(t);
  }
}

namespace {
json read_script_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ModelError("scripted model: cannot read script file " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  auto parsed = core::json::try_parse(ss.str());
  if (auto* e = std::get_if<core::json::ParseError>(&parsed))
    throw ModelError("scripted model: script file " + path + " is not valid JSON: " + e->message);
  return std::move(std::get<json>(parsed));
}
}  // namespace

std::unique_ptr<ScriptedModel> ScriptedModel::from_file(const std::string& path, const std::string& entry_node) {
  const json j = read_script_file(path);
  if (!j.is_object() || !j.contains("scripts")) return std::make_unique<ScriptedModel>(j, path);
  // A set of scripts, one per entry agent: {"scripts": {"<entry node id>": {"turns": [...]} | "file.json"}}.
  const json& scripts = j["scripts"];
  if (!scripts.is_object()) throw ModelError("scripted model: invalid script " + path + ": scripts must be an object");
  if (entry_node.empty()) {  // start-up check: every script of the set must load
    if (scripts.empty()) throw ModelError("scripted model: invalid script " + path + ": scripts is empty");
    std::unique_ptr<ScriptedModel> first;
    for (const auto& [k, v] : scripts.items()) {
      auto m = from_file(path, k);
      if (!first) first = std::move(m);
    }
    return first;
  }
  if (!scripts.contains(entry_node)) {
    std::string known;
    for (const auto& [k, v] : scripts.items()) known += (known.empty() ? "" : ", ") + k;
    throw ModelError("scripted model: " + path + " has no script for entry agent '" + entry_node +
                     "' (it has scripts for: " + known + ")");
  }
  const json& chosen = scripts[entry_node];
  if (chosen.is_string()) {
    const std::string rel = chosen.get<std::string>();
    const auto slash = path.find_last_of('/');
    const std::string file = !rel.empty() && rel[0] == '/' ? rel
                             : slash == std::string::npos ? rel
                                                          : path.substr(0, slash + 1) + rel;
    return std::make_unique<ScriptedModel>(read_script_file(file), file);  // one level: no nested sets
  }
  return std::make_unique<ScriptedModel>(chosen, path + " (scripts." + entry_node + ")");
}

std::int64_t estimate_prompt_tokens(const ModelRequest& request) {
  std::size_t bytes = request.system_prompt.size();
  if (request.messages.is_array()) {
    for (const auto& m : request.messages) {
      if (!m.is_object()) continue;
      if (m.contains("content") && m["content"].is_string()) bytes += m["content"].get_ref<const std::string&>().size();
      if (m.contains("tool_calls")) bytes += m["tool_calls"].dump().size();
    }
  }
  if (request.tools.is_array() && !request.tools.empty()) bytes += request.tools.dump().size();
  return static_cast<std::int64_t>((bytes + 3) / 4);
}

std::vector<std::string> split_stream_pieces(const std::string& text) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    while (j < text.size() && std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    out.push_back(text.substr(i, j - i));
    i = j;
  }
  return out;
}

core::async::Task<ModelTurn> ScriptedModel::complete(const ModelRequest& request, const DeltaSink& on_delta,
                                                     std::stop_token stop) {
  if (cursor_ >= turns_.size()) {
    throw ModelError("scripted model: script exhausted after " + std::to_string(turns_.size()) +
                     " turns; agent " + request.node + " asked for turn " + std::to_string(cursor_ + 1));
  }
  const json& t = turns_[cursor_];
  std::size_t index = cursor_;
  if (t.contains("node") && t["node"].is_string() && t["node"].get<std::string>() != request.node) {
    throw ModelError("scripted model: turn " + std::to_string(index + 1) + " is scripted for node '" +
                     t["node"].get<std::string>() + "' but agent '" + request.node + "' called the model");
  }
  ++cursor_;
  // `delay_ms`: the turn takes this long before it streams, like a model thinking (on a timer:
  // no thread waits); a stop ends the wait at once and the run stops at its next check.
  if (t.contains("delay_ms")) {
    const auto wait = std::chrono::milliseconds(t["delay_ms"].get<long long>());
    co_await core::async::sleep_for(wait, stop);
  }
  ModelTurn turn;
  if (t.contains("content") && t["content"].is_string()) turn.content = t["content"].get<std::string>();
  std::size_t bytes = turn.content.size();
  if (t.contains("tool_calls") && t["tool_calls"].is_array()) {
    std::size_t k = 0;
    for (const auto& c : t["tool_calls"]) {
      ToolCall call;
      call.id = c.contains("id") ? c["id"].get<std::string>()
                                 : "call_" + std::to_string(index + 1) + "_" + std::to_string(k);
      call.name = c["name"].get<std::string>();
      json args = c.contains("arguments") ? c["arguments"] : json::object();
      if (args.is_string()) {  // arguments given as JSON text, as the wire carries them
        call.arguments_raw = args.get<std::string>();
        json parsed = core::json::parse_or_null(call.arguments_raw).value_or(json::value_t::discarded);
        if (parsed.is_discarded()) {
          call.arguments = json::object();
          call.arguments_error = "arguments are not valid JSON";
        } else {
          call.arguments = parsed;
        }
      } else {
        call.arguments = args;
        call.arguments_raw = args.dump();
      }
      bytes += call.arguments_raw.size() + call.name.size();
      turn.tool_calls.push_back(std::move(call));
      ++k;
    }
  }
  for (const auto& piece : split_stream_pieces(turn.content)) {
    if (on_delta) on_delta(piece);
  }
  turn.usage.completion_tokens = static_cast<std::int64_t>((bytes + 3) / 4);
  turn.usage.prompt_tokens = estimate_prompt_tokens(request);
  if (t.contains("usage") && t["usage"].is_object()) {
    const auto& u = t["usage"];
    if (u.contains("prompt_tokens") && u["prompt_tokens"].is_number_integer()) turn.usage.prompt_tokens = u["prompt_tokens"];
    if (u.contains("completion_tokens") && u["completion_tokens"].is_number_integer()) {
      turn.usage.completion_tokens = u["completion_tokens"];
    }
  }
  turn.finish_reason = turn.tool_calls.empty() ? "stop" : "tool_calls";
  turn.response_model = request_model();
  co_return turn;
}

}  // namespace spec_engine::models
