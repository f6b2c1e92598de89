#pragma once
// The `scripted` model provider (docs/engine-api.md#model-providers): replays a JSON
// script of assistant turns. THE FORMAT IS A CONTRACT (tests, demo, outside checks):
//   {"turns": [{"node": "orchestrator",            // optional; must match the calling agent
//               "content": "text",                 // optional; streamed as word-ish deltas
//               "tool_calls": [{"id": "c1",        // optional id (default "call_<turn>_<k>")
//                               "name": "write_file",
//                               "arguments": {...}}],  // object, or a JSON text string
//               "usage": {"prompt_tokens": 0, "completion_tokens": 0},  // optional
//               "delay_ms": 150}                   // optional, 0..60000: wait before the turn
//             , ...]}
// Turns are consumed in the order the run calls the model, sub-agents included. A
// turn without tool_calls ends that agent's loop. Running out of turns, or a `node`
// mismatch, throws ModelError. Usage defaults to an estimate of 4 bytes per token:
// completion_tokens = ceil(bytes/4) of content + tool names + arguments, prompt_tokens =
// ceil(bytes/4) of the system prompt, the history's contents and tool calls, and the tool
// schemas; a turn's "usage" overrides either.
// A script FILE may instead hold one script per entry agent, so one engine can replay
// different agent definitions (a refinement, then a run of the refined workflow):
//   {"scripts": {"orchestrator": {"turns": [...]}, "Coordinator": "briefing-run.json"}}
// The run uses the script keyed by its definition's entryPoint; a string value is a script
// file, relative to this one. No key for the entry point throws ModelError listing the keys.

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "spec_engine/models/model.hpp"

namespace spec_engine::models {

/// A loaded script and its cursor (index of the next turn).
class ScriptedModel : public ChatModel {
 public:
  /// Validates and takes a script object. Throws ModelError naming the bad field.
  ScriptedModel(const nlohmann::json& script, std::string label);
  /// Reads and validates a script file; for a file of {"scripts": {...}} the one of `entry_node`
  /// (the run's entry point; empty = check that every script of the set loads and return the
  /// first, for start-up checks). Throws ModelError (unreadable / invalid / no script for the entry).
  static std::unique_ptr<ScriptedModel> from_file(const std::string& path, const std::string& entry_node = "");

  /// Replays the next turn (no I/O): after the turn's `delay_ms` (a timer that `stop` ends at
  /// once; none without it) its content goes to `on_delta` in word-ish pieces. A stop request
  /// otherwise reaches the run through `on_delta`, which may throw. Throws ModelError when the
  /// script is exhausted or the turn is scripted for another node.
  core::async::Task<ModelTurn> complete(const ModelRequest& request, const DeltaSink& on_delta,
                                        std::stop_token stop) override;
  std::string provider() const override { return "scripted"; }
  std::string model_name() const override { return label_; }
  /// Always "scripted": a script has no model (the label is its file).
  std::string request_model() const override { return "scripted"; }

  /// Turns consumed so far (checkpointed so a resumed run skips them).
  std::size_t cursor() const { return cursor_; }
  void set_cursor(std::size_t c) { cursor_ = c; }
  std::size_t size() const { return turns_.size(); }

 private:
  std::vector<nlohmann::json> turns_;
  std::string label_;
  std::size_t cursor_ = 0;
};

/// Estimated prompt tokens of `request` (ceil(bytes/4) of the system prompt, every message's
/// content and tool calls, and the tool schemas), as the scripted model reports them. Pure.
std::int64_t estimate_prompt_tokens(const ModelRequest& request);

/// Splits text into word-ish stream pieces: each piece is a word plus the
/// whitespace that follows it; concatenating the pieces gives back `text`.
std::vector<std::string> split_stream_pieces(const std::string& text);

}  // namespace spec_engine::models
