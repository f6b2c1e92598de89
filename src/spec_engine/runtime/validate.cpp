// validate_definition / validate_input_payload (run.hpp; docs/engine-api.md#agent-definition).
#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "spec_engine/runtime/run.hpp"
#include "spec_engine/tools/builtin.hpp"
#include "spec_engine/tools/vfs.hpp"

namespace spec_engine::runtime {

using nlohmann::json;

namespace {

using Targets = std::map<std::string, std::set<std::string>>;

/// A delegation cycle as "A -> B -> A" (the first found, in id order), or "" when there is none.
std::string delegation_cycle(const Targets& targets) {
  enum class Mark { none, open, done };
  std::map<std::string, Mark> mark;
  std::vector<std::string> stack;
  std::string found;
  std::function<bool(const std::string&)> visit = [&](const std::string& id) {
    mark[id] = Mark::open;
    stack.push_back(id);
    if (const auto it = targets.find(id); it != targets.end()) {
      for (const auto& next : it->second) {
        if (mark[next] == Mark::open) {
          for (auto k = std::find(stack.begin(), stack.end(), next); k != stack.end(); ++k) found += *k + " -> ";
          found += next;
          return true;
        }
        if (mark[next] == Mark::none && visit(next)) return true;
      }
    }
    stack.pop_back();
    mark[id] = Mark::done;
    return false;
  };
  for (const auto& [id, unused] : targets) {
    if (mark[id] == Mark::none && visit(id)) return found;
  }
  return {};
}

/// The longest delegation chain from `id` (ids, `id` first) in a graph without cycles.
const std::vector<std::string>& longest_chain(const std::string& id, const Targets& targets,
                                              std::map<std::string, std::vector<std::string>>& memo) {
  if (const auto it = memo.find(id); it != memo.end()) return it->second;
  std::vector<std::string> best;
  if (const auto it = targets.find(id); it != targets.end()) {
    for (const auto& next : it->second) {
      const auto& chain = longest_chain(next, targets, memo);
      if (chain.size() > best.size()) best = chain;
    }
  }
  best.insert(best.begin(), id);
  return memo[id] = std::move(best);
}

}  // namespace

std::vector<FieldError> validate_definition(const json& definition, const std::string& prefix) {
  std::vector<FieldError> errs;
  auto add = [&](std::string field, std::string msg) { errs.push_back({std::move(field), std::move(msg)}); };
  if (!definition.is_object()) {
    add(prefix, "must be an object with a graph");
    return errs;
  }
  if (!definition.contains("graph") || !definition["graph"].is_object()) {
    add(prefix + ".graph", "is required and must be an object {nodes, edges, entryPoint}");
    return errs;
  }
  const json& g = definition["graph"];
  const std::string gp = prefix + ".graph";

  // Nodes: ids first, so edges and tools can refer to them.
  std::map<std::string, std::size_t> ids;
  const json* nodes = g.contains("nodes") ? &g["nodes"] : nullptr;
  if (!nodes || !nodes->is_array() || nodes->empty()) {
    add(gp + ".nodes", "must be a non-empty list of agent nodes");
  } else {
    for (std::size_t i = 0; i < nodes->size(); ++i) {
      const json& n = (*nodes)[i];
      std::string np = gp + ".nodes[" + std::to_string(i) + "]";
      if (!n.is_object()) {
        add(np, "must be an object");
        continue;
      }
      if (!n.contains("id") || !n["id"].is_string() || n["id"].get_ref<const std::string&>().empty()) {
        add(np + ".id", "is required and must be a non-empty string");
      } else if (!ids.emplace(n["id"].get<std::string>(), i).second) {
        add(np + ".id", "duplicate node id '" + n["id"].get<std::string>() + "'");
      }
      if (!n.contains("type") || n["type"] != "AgentNode") add(np + ".type", "must be \"AgentNode\"");
      if (!n.contains("data") || !n["data"].is_object()) {
        add(np + ".data", "is required and must be an object {name, system_prompt, tools, llm_config}");
        continue;
      }
      const json& d = n["data"];
      if (!d.contains("name") || !d["name"].is_string() || d["name"].get_ref<const std::string&>().empty()) {
        add(np + ".data.name", "is required and must be a non-empty string");
      }
      if (!d.contains("system_prompt") || !d["system_prompt"].is_string()) {
        add(np + ".data.system_prompt", "is required and must be a string");
      }
      if (d.contains("tools") && !d["tools"].is_null() && !d["tools"].is_array()) {
        add(np + ".data.tools", "must be a list of tool names");
      }
      if (d.contains("llm_config") && !d["llm_config"].is_null() && !d["llm_config"].is_object()) {
        add(np + ".data.llm_config", "must be an object {provider, model, temperature, max_tokens}");
      }
    }
  }

  // Edges: delegation source -> target.
  std::map<std::string, std::set<std::string>> targets;
  if (g.contains("edges") && !g["edges"].is_null()) {
    const json& edges = g["edges"];
    if (!edges.is_array()) {
      add(gp + ".edges", "must be a list");
    } else {
      for (std::size_t i = 0; i < edges.size(); ++i) {
        const json& e = edges[i];
        std::string ep = gp + ".edges[" + std::to_string(i) + "]";
        if (!e.is_object()) {
          add(ep, "must be an object {source, target, type}");
          continue;
        }
        bool ok = true;
        for (const char* k : {"source", "target"}) {
          if (!e.contains(k) || !e[k].is_string()) {
            add(ep + "." + k, "is required and must be a node id");
            ok = false;
          } else if (!ids.count(e[k].get<std::string>())) {
            add(ep + "." + k, "unknown node '" + e[k].get<std::string>() + "'");
            ok = false;
          }
        }
        if (e.contains("type") && e["type"] != "delegation") {
          add(ep + ".type", "must be \"delegation\"");
          ok = false;
        }
        if (ok && e["source"] == e["target"]) {
          add(ep, "a node cannot delegate to itself");
          ok = false;
        }
        if (ok) targets[e["source"].get<std::string>()].insert(e["target"].get<std::string>());
      }
    }
  }

  // Tools, now that delegation targets are known.
  if (nodes && nodes->is_array()) {
    for (std::size_t i = 0; i < nodes->size(); ++i) {
      const json& n = (*nodes)[i];
      if (!n.is_object() || !n.contains("data") || !n["data"].is_object()) continue;
      const json& d = n["data"];
      if (!d.contains("tools") || !d["tools"].is_array()) continue;
      std::string id = n.contains("id") && n["id"].is_string() ? n["id"].get<std::string>() : "";
      const auto& mine = targets[id];
      for (std::size_t k = 0; k < d["tools"].size(); ++k) {
        const json& t = d["tools"][k];
        std::string tp = gp + ".nodes[" + std::to_string(i) + "].data.tools[" + std::to_string(k) + "]";
        if (!t.is_string()) {
          add(tp, "must be a string");
          continue;
        }
        std::string name = t.get<std::string>();
        if (name == "task") {
          if (mine.empty()) add(tp, "tool 'task' requires an outgoing delegation edge from node '" + id + "'");
        } else if (tools::is_builtin_tool(name) || mine.count(name)) {
          // built-in, or a delegation target reachable through task
        } else if (ids.count(name)) {
          add(tp, "unknown tool '" + name + "': node '" + name + "' is not a delegation target of '" + id + "'");
        } else {
          add(tp, "unknown tool '" + name + "'");
        }
      }
    }
  }

  if (!g.contains("entryPoint") || !g["entryPoint"].is_string()) {
    add(gp + ".entryPoint", "is required and must be a node id");
  } else if (!ids.count(g["entryPoint"].get<std::string>())) {
    add(gp + ".entryPoint", "entry point '" + g["entryPoint"].get<std::string>() + "' is not a node");
  } else if (const auto cycle = delegation_cycle(targets); !cycle.empty()) {
    add(gp + ".edges", "delegations form a cycle (" + cycle +
                           "): an agent would hand work back to one that is waiting for it; remove one of these edges");
  } else {
    const std::string entry = g["entryPoint"].get<std::string>();
    std::map<std::string, std::vector<std::string>> memo;
    const auto chain = longest_chain(entry, targets, memo);
    if (static_cast<int>(chain.size()) - 1 > kMaxDelegationDepth) {
      std::string path;
      for (const auto& id : chain) path += (path.empty() ? "" : " -> ") + id;
      add(gp + ".edges", "the delegation chain " + path + " is " + std::to_string(chain.size() - 1) +
                             " levels deep; a run allows at most " + std::to_string(kMaxDelegationDepth) +
                             " nested task calls, so the last agents could never run");
    }
  }
  return errs;
}

std::vector<FieldError> validate_input_payload(const json& payload, const std::string& prefix) {
  std::vector<FieldError> errs;
  if (payload.is_null()) return errs;
  if (!payload.is_object()) {
    errs.push_back({prefix, "must be an object {messages, files}"});
    return errs;
  }
  if (payload.contains("messages") && !payload["messages"].is_null()) {
    const json& m = payload["messages"];
    if (m.is_array()) {
      for (std::size_t i = 0; i < m.size(); ++i) {
        std::string mp = prefix + ".messages[" + std::to_string(i) + "]";
        if (m[i].is_string()) continue;
        if (!m[i].is_object()) {
          errs.push_back({mp, "must be {role, content} or a string"});
          continue;
        }
        if (m[i].contains("role") && !(m[i]["role"] == "user" || m[i]["role"] == "assistant" ||
                                       m[i]["role"] == "system" || m[i]["role"] == "human" || m[i]["role"] == "ai")) {
          errs.push_back({mp + ".role", "must be user, assistant or system"});
        }
        if (!m[i].contains("content") || !m[i]["content"].is_string()) {
          errs.push_back({mp + ".content", "is required and must be a string"});
        }
      }
    } else if (!m.is_string()) {
      errs.push_back({prefix + ".messages", "must be a string or a list of {role, content}"});
    }
  }
  if (payload.contains("files") && !payload["files"].is_null()) {
    tools::FileSystem fs;
    for (auto& [f, msg] : fs.load(payload["files"], prefix + ".files")) errs.push_back({f, msg});
  }
  return errs;
}

}  // namespace spec_engine::runtime
