// Engine event parsing (follow/event.hpp).
#include "orchestrator/follow/event.hpp"
#include <charconv>
#include <string_view>

#include "core/json_parse.hpp"
#include "core/json_scan.hpp"

namespace orchestrator::follow {

bool is_terminal_status(const std::string& status) {
  return status == "completed" || status == "failed" || status == "cancelled";
}

std::optional<std::string> error_text(const nlohmann::json& v) {
  if (v.is_string() && !v.get_ref<const std::string&>().empty()) return v.get<std::string>();
  if (v.is_object()) {
    for (const char* k : {"error", "message", "detail"}) {
      auto it = v.find(k);
      if (it != v.end() && it->is_string() && !it->get_ref<const std::string&>().empty()) return it->get<std::string>();
    }
    if (!v.empty()) return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return std::nullopt;
}

namespace {

/// The types whose `data` the tracker reads as soon as they arrive (outcome, error): parsed in full.
bool needs_data(std::string_view type) { return type == "end" || type == "error"; }

/// True when the raw `data` value is an object with a `files` member that is an object.
bool scan_has_files(std::string_view data) {
  const auto members = core::json::scan_object(data);
  if (!members) return false;
  for (const auto& m : *members)
    if (m.key == "files") return !m.value.empty() && m.value.front() == '{';
  return false;
}

/// Reads seq and event_type from the top level without a document (core/json_scan.hpp) when the
/// type's data is not needed: most events are text deltas and tool calls. False when the full
/// parse must decide.
bool parse_light(const std::string& text, Event& ev) {
  const auto members = core::json::scan_object(text);
  if (!members) return false;
  std::optional<std::string_view> type;
  std::string_view seq, data;
  for (const auto& m : *members) {
    if (m.key == "event_type") {
      type = core::json::plain_string(m.value);
      if (!type) return false;  // not a plain string: let the parser decide
    } else if (m.key == "seq") {
      seq = m.value;
    } else if (m.key == "data") {
      data = m.value;
    }
  }
  if (!type || needs_data(*type)) return false;
  if (!seq.empty()) {
    long long n = 0;
    const auto [end, ec] = std::from_chars(seq.data(), seq.data() + seq.size(), n);
    if (ec != std::errc() || end != seq.data() + seq.size()) return false;  // not an integer: as the parser
    ev.seq = n;
  }
  ev.type = std::string(*type);
  ev.has_files = ev.type == "on_state_update" && scan_has_files(data);
  return true;
}

}  // namespace

EventPtr parse_event(std::string text, long long position) {
  auto ev = std::make_shared<Event>();
  ev->seq = position;
  if (parse_light(text, *ev)) {
    ev->text = std::move(text);
    return ev;
  }
  nlohmann::json doc = core::json::parse_or_null(text, core::json::kInternalLimits).value_or(nullptr);
  ev->text = std::move(text);
  if (!doc.is_object()) return ev;
  if (auto s = doc.find("seq"); s != doc.end() && s->is_number_integer()) ev->seq = s->get<long long>();
  if (auto t = doc.find("event_type"); t != doc.end() && t->is_string()) ev->type = t->get<std::string>();
  auto d = doc.find("data");
  if (d == doc.end() || !d->is_object()) {
    if (ev->type == "error" && d != doc.end()) ev->error = error_text(*d);
    return ev;
  }
  nlohmann::json& data = *d;
  if (ev->type == "on_state_update") {
    auto f = data.find("files");
    ev->has_files = f != data.end() && f->is_object();
  } else if (ev->type == "end") {
    if (auto s = data.find("status"); s != data.end() && s->is_string()) ev->end_status = s->get<std::string>();
    if (auto e = data.find("error"); e != data.end()) ev->error = error_text(*e);
  } else if (ev->type == "error") {
    auto e = data.find("error");
    ev->error = e != data.end() ? error_text(*e) : error_text(data);
  }
  return ev;
}

std::optional<nlohmann::json> files_of(const Event& ev) {
  if (!ev.has_files) return std::nullopt;
  nlohmann::json doc = core::json::parse_or_null(ev.text, core::json::kInternalLimits).value_or(nullptr);
  if (!doc.is_object()) return std::nullopt;
  auto d = doc.find("data");
  if (d == doc.end() || !d->is_object()) return std::nullopt;
  auto f = d->find("files");
  if (f == d->end() || !f->is_object()) return std::nullopt;
  return std::move(*f);
}

}  // namespace orchestrator::follow
