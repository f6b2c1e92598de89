#pragma once
// Chooses and holds the model of each node of one run (docs/engine-api.md#model-providers).
// Selection, first match wins:
//   1. ModelSettings::provider_override "scripted:/path/script.json" -> one scripted model for
//      every node (one shared cursor; a file of {"scripts": {...}} picks the entry node's script,
//      see scripted.hpp); "openai" / "openai:MODEL" -> openai for every node
//      (MODEL replaces llm_config.model).
//   2. node llm_config.provider == "scripted" with llm_config.script {...} -> an inline script
//      for that node (its own cursor).
//   3. llm_config.provider "openai" (or absent) -> openai with llm_config.model (default
//      "gpt-4.1-mini"), temperature, max_tokens.
// Anything else throws ModelError naming the node and provider.

#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "spec_engine/models/model.hpp"
#include "spec_engine/models/scripted.hpp"
#include "spec_engine/runtime/run.hpp"

namespace spec_engine::models {

/// Per-run model cache. Not thread-safe (used by one run at a time).
class ModelRegistry {
 public:
  /// `http` serves the `openai` provider's calls and must outlive the models; null is allowed
  /// only where no openai model is ever created (e.g. validating a scripted override).
  ModelRegistry(runtime::ModelSettings settings, core::http::AsyncHttpClient* http)
      : settings_(std::move(settings)), http_(http) {}
  /// The model for `node_id` with that node's `llm_config` (may be null). Throws ModelError.
  ChatModel& for_node(const std::string& node_id, const nlohmann::json& llm_config);
  /// Cursors of the scripted models created so far: {"override": n, "node:<id>": n}.
  nlohmann::json scripted_cursors() const;
  /// Cursors to apply when the scripted models are created (from a checkpoint).
  void restore_scripted_cursors(const nlohmann::json& cursors) { pending_cursors_ = cursors; }
  /// True if the override forces the scripted provider.
  bool override_is_scripted() const;

 private:
  runtime::ModelSettings settings_;
  core::http::AsyncHttpClient* http_;
  std::map<std::string, std::unique_ptr<ChatModel>> models_;
  std::map<std::string, ScriptedModel*> scripted_;
  nlohmann::json pending_cursors_ = nlohmann::json::object();
};

}  // namespace spec_engine::models
