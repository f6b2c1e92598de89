#pragma once
// Structured logging: one JSON object per line on stderr via spdlog
// ({"ts","level","service","msg",...fields}). Never log secrets or tokens.

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace core::log {

/// Configures the process logger. `level`: trace|debug|info|warn|error. Call once at start.
void init(const std::string& service, const std::string& level = "info");

/// Write one JSON line at the named level, e.g. {"ts":RFC 3339 UTC,"level":"info","service",
/// "msg":msg, ...fields}. `fields` (if an object) is merged in as top-level keys and may
/// override ts/level/service/msg; a non-object `fields` is ignored. Lines below the level
/// set by init() are dropped; before init() a default stderr logger (spdlog's default level,
/// info) is used with service "app".
/// Invalid UTF-8 is replaced rather than throwing. Thread-safe.
void debug(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object());
void info(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object());
void warn(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object());
void error(std::string_view msg, const nlohmann::json& fields = nlohmann::json::object());

}  // namespace core::log
