#pragma once
// Structured logging: one JSON object per line on stderr via spdlog
// ({"ts","level","service","msg",...fields}). Never log secrets or tokens.

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace core::log {

/// Configures the process logger. `level`: trace|debug|info|warn|error. Call once at start.
void init(const std::string& service, const std::string& level = "info");

void debug(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object());
void info(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object());
void warn(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object());
void error(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object());

}  // namespace core::log
