#include "core/json_text.hpp"

#include <stdexcept>
#include <utility>
#include <vector>

namespace core::json {

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

std::string dump_with_member(const nlohmann::json& object, std::string_view key, std::string_view value_text) {
  if (!object.is_object()) throw std::invalid_argument("dump_with_member: not a JSON object");
  const std::string k(key);
  if (object.contains(k)) throw std::invalid_argument("dump_with_member: the object already has member " + k);
  // Every member's text first, so the result is allocated once (the spliced value may be large).
  std::vector<std::pair<std::string, std::string>> members;
  members.reserve(object.size() + 1);
  std::size_t size = 2;
  bool placed = false;
  const auto add = [&](std::string_view member_key, std::string text) {
    std::string quoted = dump(nlohmann::json(member_key));
    size += quoted.size() + 2 + (text.empty() ? value_text.size() : text.size());
    members.emplace_back(std::move(quoted), std::move(text));
  };
  // nlohmann's object is a std::map<std::string, json>: items come in std::string order,
  // which is where the new key goes too. An empty text stands for value_text (a member's own
  // text is never empty).
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (!placed && k < it.key()) {
      add(k, std::string());
      placed = true;
    }
    add(it.key(), dump(it.value()));
  }
  if (!placed) add(k, std::string());
  std::string out;
  out.reserve(size);
  out += '{';
  for (const auto& [quoted, text] : members) {
    if (out.size() > 1) out += ',';
    out += quoted;
    out += ':';
    out += text.empty() ? value_text : std::string_view(text);
  }
  out += '}';
  return out;
}

}  // namespace core::json
