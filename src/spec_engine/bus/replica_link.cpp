// Helpers shared by the replica links.
#include "spec_engine/bus/replica_link.hpp"

namespace spec_engine::bus {

std::string control_payload(const std::string& action, const std::string& thread_id, const std::string& origin) {
  return action + ":" + thread_id + ":" + origin;
}

bool split3(const std::string& payload, std::string& a, std::string& b, std::string& rest) {
  const auto p1 = payload.find(':');
  if (p1 == std::string::npos) return false;
  const auto p2 = payload.find(':', p1 + 1);
  if (p2 == std::string::npos) return false;
  a = payload.substr(0, p1);
  b = payload.substr(p1 + 1, p2 - p1 - 1);
  rest = payload.substr(p2 + 1);
  return !a.empty() && !b.empty();
}

}  // namespace spec_engine::bus
