#include "spec_engine/models/model.hpp"

namespace spec_engine::models {

nlohmann::json ToolCall::to_json() const {
  nlohmann::json j = {{"id", id}, {"name", name}, {"arguments", arguments}};
  if (arguments_error) {
    j["arguments_error"] = *arguments_error;
    j["arguments_raw"] = arguments_raw;
  }
  return j;
}

ToolCall ToolCall::from_json(const nlohmann::json& j) {
  ToolCall c;
  c.id = j.value("id", "");
  c.name = j.value("name", "");
  c.arguments = j.contains("arguments") ? j["arguments"] : nlohmann::json::object();
  if (j.contains("arguments_error") && j["arguments_error"].is_string()) {
    c.arguments_error = j["arguments_error"].get<std::string>();
    c.arguments_raw = j.value("arguments_raw", "");
  }
  return c;
}

}  // namespace spec_engine::models
