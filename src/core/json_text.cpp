#include "core/json_text.hpp"

#include <stdexcept>

namespace core::json {

std::string dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

std::string dump_with_member(const nlohmann::json& object, std::string_view key, std::string_view value_text) {
  if (!object.is_object()) throw std::invalid_argument("dump_with_member: not a JSON object");
  const std::string k(key);
  if (object.contains(k)) throw std::invalid_argument("dump_with_member: the object already has member " + k);
  std::string out;
  out.reserve(value_text.size() + k.size() + 64);
  out += '{';
  bool placed = false;
  const auto add = [&out](std::string_view member_key, std::string_view text) {
    if (out.size() > 1) out += ',';
    out += dump(nlohmann::json(member_key));
    out += ':';
    out += text;
  };
  // nlohmann's object is a std::map<std::string, json>: items come in std::string order,
  // which is where the new key goes too.
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (!placed && k < it.key()) {
      add(k, value_text);
      placed = true;
    }
    add(it.key(), dump(it.value()));
  }
  if (!placed) add(k, value_text);
  out += '}';
  return out;
}

}  // namespace core::json
