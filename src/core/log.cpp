#include "core/log.hpp"

#include <memory>
#include <mutex>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "core/util.hpp"

namespace core::log {
namespace {
std::shared_ptr<spdlog::logger>& logger() {
  static std::shared_ptr<spdlog::logger> l;
  return l;
}
std::string& service() {
  static std::string s = "app";
  return s;
}
std::once_flag default_once;

spdlog::logger& get() {
  if (!logger()) {
    std::call_once(default_once, [] {
      if (!logger()) {
        auto l = spdlog::stderr_logger_mt("json-default");
        l->set_pattern("%v");
        logger() = l;
      }
    });
  }
  return *logger();
}

void write(spdlog::level::level_enum lvl, const char* name, std::string_view msg, const nlohmann::json& fields) {
  auto& l = get();
  if (!l.should_log(lvl)) return;
  nlohmann::json line = nlohmann::json::object();
  line["ts"] = now_rfc3339();
  line["level"] = name;
  line["service"] = service();
  line["msg"] = std::string(msg);
  if (fields.is_object()) {
    for (auto it = fields.begin(); it != fields.end(); ++it) line[it.key()] = it.value();
  }
  // `replace` keeps invalid UTF-8 in messages from throwing.
  l.log(lvl, "{}", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}
}  // namespace

void init(const std::string& svc, const std::string& level) {
  service() = svc;
  auto l = spdlog::get("json");
  if (!l) l = spdlog::stderr_logger_mt("json");
  l->set_pattern("%v");
  l->set_level(spdlog::level::from_str(level));
  l->flush_on(spdlog::level::trace);
  logger() = l;
}

void debug(std::string_view msg, const nlohmann::json& f) { write(spdlog::level::debug, "debug", msg, f); }
void info(std::string_view msg, const nlohmann::json& f) { write(spdlog::level::info, "info", msg, f); }
void warn(std::string_view msg, const nlohmann::json& f) { write(spdlog::level::warn, "warn", msg, f); }
void error(std::string_view msg, const nlohmann::json& f) { write(spdlog::level::err, "error", msg, f); }

}  // namespace core::log
