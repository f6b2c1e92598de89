#include "spec_engine/models/factory.hpp"

#include "spec_engine/models/openai.hpp"

namespace spec_engine::models {

using nlohmann::json;

bool ModelRegistry::override_is_scripted() const {
  return settings_.provider_override && settings_.provider_override->rfind("scripted", 0) == 0;
}

json ModelRegistry::scripted_cursors() const {
  json out = json::object();
  for (const auto& [k, m] : scripted_) out[k] = m->cursor();
  return out;
}

ChatModel& ModelRegistry::for_node(const std::string& node_id, const json& llm_config) {
  const json cfg = llm_config.is_object() ? llm_config : json::object();
  std::string key;
  std::string provider = cfg.contains("provider") && cfg["provider"].is_string() ? cfg["provider"].get<std::string>() : "openai";
  std::string model = cfg.contains("model") && cfg["model"].is_string() ? cfg["model"].get<std::string>() : "gpt-4.1-mini";
  std::string script_path;
  if (settings_.provider_override && !settings_.provider_override->empty()) {
    const std::string& o = *settings_.provider_override;
    auto colon = o.find(':');
    provider = o.substr(0, colon);
    std::string arg = colon == std::string::npos ? "" : o.substr(colon + 1);
    if (provider == "scripted") {
      if (arg.empty()) throw ModelError("model override 'scripted' needs a script path: scripted:/path/script.json");
      script_path = arg;
      key = "override";
    } else if (provider == "openai") {
      if (!arg.empty()) model = arg;
      key = "node:" + node_id;
    } else {
      throw ModelError("model override: unknown provider '" + provider + "' (use scripted:PATH or openai[:MODEL])");
    }
  } else {
    key = "node:" + node_id;
  }
  if (auto it = models_.find(key); it != models_.end()) return *it->second;

  std::unique_ptr<ChatModel> made;
  if (provider == "scripted") {
    std::unique_ptr<ScriptedModel> s;
    if (!script_path.empty()) {
      // The override's model is created for the entry node first (Run::go resolves it before any
      // step), which selects the script of a multi-script file.
      s = ScriptedModel::from_file(script_path, node_id);
    } else if (cfg.contains("script")) {
      s = std::make_unique<ScriptedModel>(cfg["script"], "inline script of node " + node_id);
    } else {
      throw ModelError("node '" + node_id + "' uses provider 'scripted' without a script: add llm_config.script "
                       "or run with --model-override scripted:/path/script.json");
    }
    if (pending_cursors_.contains(key) && pending_cursors_[key].is_number_unsigned()) {
      s->set_cursor(pending_cursors_[key].get<std::size_t>());
    }
    scripted_[key] = s.get();
    made = std::move(s);
  } else if (provider == "openai") {
    OpenAiConfig oc;
    oc.base_url = settings_.openai_base_url;
    oc.api_key = settings_.openai_api_key;
    oc.model = model;
    if (cfg.contains("temperature") && cfg["temperature"].is_number()) oc.temperature = cfg["temperature"].get<double>();
    if (cfg.contains("max_tokens") && cfg["max_tokens"].is_number_integer()) oc.max_tokens = cfg["max_tokens"].get<int>();
    oc.tls = settings_.tls;
    oc.request_timeout = settings_.request_timeout;
    oc.idle_timeout = settings_.idle_timeout;
    oc.max_attempts = settings_.max_attempts;
    if (!http_) throw ModelError("node '" + node_id + "': the openai provider needs an HTTP client (internal error)");
    made = std::make_unique<OpenAiModel>(std::move(oc), *http_);
  } else {
    throw ModelError("node '" + node_id + "': unsupported model provider '" + provider +
                     "' (supported: openai, scripted; or run with --model-override)");
  }
  auto& ref = *made;
  models_[key] = std::move(made);
  return ref;
}

}  // namespace spec_engine::models
