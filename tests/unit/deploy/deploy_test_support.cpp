// Implementation of the deploy/ test helpers (see deploy_test_support.hpp).
#include "deploy_test_support.hpp"

#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

namespace deploy_test {

fs::path source_path(const std::string& relative) {
  return fs::path(PROJECT_SOURCE_DIR) / relative;
}

namespace {

/// Types a plain (unquoted, untagged) YAML scalar by the YAML 1.2 core schema.
json plain_scalar(const std::string& s) {
  static const std::regex null_re("^(~|null|Null|NULL|)$");
  static const std::regex true_re("^(true|True|TRUE)$");
  static const std::regex false_re("^(false|False|FALSE)$");
  static const std::regex int_re("^[-+]?[0-9]+$");
  static const std::regex oct_re("^0o[0-7]+$");
  static const std::regex hex_re("^0x[0-9a-fA-F]+$");
  static const std::regex float_re(
      "^[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?$");
  static const std::regex inf_re("^[-+]?\\.(inf|Inf|INF)$");
  static const std::regex nan_re("^\\.(nan|NaN|NAN)$");
  if (std::regex_match(s, null_re)) return nullptr;
  if (std::regex_match(s, true_re)) return true;
  if (std::regex_match(s, false_re)) return false;
  if (std::regex_match(s, int_re)) return std::stoll(s);
  if (std::regex_match(s, oct_re)) return std::stoll(s.substr(2), nullptr, 8);
  if (std::regex_match(s, hex_re)) return std::stoll(s.substr(2), nullptr, 16);
  if (std::regex_match(s, float_re)) return std::stod(s);
  if (std::regex_match(s, inf_re) || std::regex_match(s, nan_re)) {
    throw std::runtime_error("non-finite YAML float not representable in JSON: " + s);
  }
  return s;
}

/// Keywords whose value is a single subschema.
bool is_subschema_keyword(const std::string& k) {
  return k == "items" || k == "not" || k == "additionalProperties" ||
         k == "additionalItems" || k == "propertyNames" || k == "contains" ||
         k == "if" || k == "then" || k == "else";
}

/// Keywords whose value is a list of subschemas.
bool is_subschema_list_keyword(const std::string& k) {
  return k == "allOf" || k == "anyOf" || k == "oneOf";
}

/// Keywords whose value maps names to subschemas.
bool is_subschema_map_keyword(const std::string& k) {
  return k == "properties" || k == "patternProperties" || k == "definitions";
}

}  // namespace

json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      return nullptr;
    case YAML::NodeType::Scalar: {
      const std::string& tag = node.Tag();
      const std::string& text = node.Scalar();
      if (tag == "!" || tag == "tag:yaml.org,2002:str") return text;  // quoted or !!str
      if (tag == "tag:yaml.org,2002:int") return std::stoll(text);
      if (tag == "tag:yaml.org,2002:float") return std::stod(text);
      if (tag == "tag:yaml.org,2002:bool") return plain_scalar(text);
      return plain_scalar(text);
    }
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node) out.push_back(yaml_to_json(item));
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) out[kv.first.as<std::string>()] = yaml_to_json(kv.second);
      return out;
    }
  }
  return nullptr;
}

std::vector<json> load_yaml_documents(const fs::path& file) {
  std::vector<json> docs;
  for (const auto& node : YAML::LoadAllFromFile(file.string())) {
    if (!node.IsDefined() || node.IsNull()) continue;
    docs.push_back(yaml_to_json(node));
  }
  return docs;
}

json load_yaml(const fs::path& file) {
  auto docs = load_yaml_documents(file);
  if (docs.size() != 1) {
    throw std::runtime_error(file.string() + ": expected one YAML document, found " +
                             std::to_string(docs.size()));
  }
  return docs.front();
}

json strip_schema_extensions(const json& schema) {
  if (!schema.is_object()) return schema;
  json out = json::object();
  for (const auto& [key, value] : schema.items()) {
    if (key.rfind("x-", 0) == 0 || key == "example") continue;
    if (is_subschema_keyword(key)) {
      out[key] = strip_schema_extensions(value);
    } else if (is_subschema_list_keyword(key) && value.is_array()) {
      json list = json::array();
      for (const auto& s : value) list.push_back(strip_schema_extensions(s));
      out[key] = list;
    } else if (is_subschema_map_keyword(key) && value.is_object()) {
      json map = json::object();
      for (const auto& [name, s] : value.items()) map[name] = strip_schema_extensions(s);
      out[key] = map;
    } else {
      out[key] = value;
    }
  }
  return out;
}

const json& xrd_spec_schema(const json& xrd) {
  return xrd.at("spec").at("versions").at(0).at("schema").at("openAPIV3Schema")
      .at("properties").at("spec");
}

const json& xrd_status_schema(const json& xrd) {
  return xrd.at("spec").at("versions").at(0).at("schema").at("openAPIV3Schema")
      .at("properties").at("status");
}

std::vector<ValidationError> validate(const json& schema, const json& instance) {
  const json prepared = strip_schema_extensions(schema);
  valijson::Schema parsed;
  valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
  valijson::adapters::NlohmannJsonAdapter schema_adapter(prepared);
  parser.populateSchema(schema_adapter, parsed);

  valijson::Validator validator(valijson::Validator::kStrongTypes);
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter target(instance);
  std::vector<ValidationError> errors;
  if (validator.validate(parsed, target, &results)) return errors;
  valijson::ValidationResults::Error e;
  while (results.popError(e)) {
    std::string path;
    for (const auto& c : e.context) path += (path.empty() ? "" : " ") + c;
    errors.push_back({path, e.description});
  }
  return errors;
}

std::string describe(const std::vector<ValidationError>& errors) {
  std::ostringstream out;
  for (const auto& e : errors) out << "  " << e.path << ": " << e.message << "\n";
  return out.str();
}

json apply_defaults(const json& schema, json instance) {
  if (!instance.is_object() || !schema.contains("properties")) return instance;
  for (const auto& [name, prop] : schema.at("properties").items()) {
    if (!instance.contains(name) && prop.contains("default")) instance[name] = prop.at("default");
    if (instance.contains(name)) instance[name] = apply_defaults(prop, instance[name]);
  }
  return instance;
}

std::vector<std::string> split_field_path(const std::string& path) {
  std::vector<std::string> out;
  std::string cur;
  for (std::size_t i = 0; i < path.size(); ++i) {
    const char c = path[i];
    if (c == '.') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else if (c == '[') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
      const auto end = path.find(']', i);
      if (end == std::string::npos) throw std::invalid_argument("unbalanced [ in " + path);
      out.push_back(path.substr(i + 1, end - i - 1));
      i = end;
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

bool schema_has_path(const json& schema, const std::vector<std::string>& segments) {
  const json* node = &schema;
  for (const auto& seg : segments) {
    const bool numeric = !seg.empty() && seg.find_first_not_of("0123456789") == std::string::npos;
    if (numeric && node->value("type", "") == "array" && node->contains("items")) {
      node = &node->at("items");
    } else if (node->contains("properties") && node->at("properties").contains(seg)) {
      node = &node->at("properties").at(seg);
    } else if (node->contains("additionalProperties") &&
               node->at("additionalProperties").is_object()) {
      node = &node->at("additionalProperties");
    } else {
      return false;
    }
  }
  return true;
}

std::optional<json> lookup_field_path(const json& object, const std::string& path) {
  const json* node = &object;
  for (const auto& seg : split_field_path(path)) {
    const bool numeric = !seg.empty() && seg.find_first_not_of("0123456789") == std::string::npos;
    if (numeric && node->is_array()) {
      const auto idx = std::stoul(seg);
      if (idx >= node->size()) return std::nullopt;
      node = &node->at(idx);
    } else if (node->is_object() && node->contains(seg)) {
      node = &node->at(seg);
    } else {
      return std::nullopt;
    }
  }
  return *node;
}

std::vector<std::string> read_lines(const fs::path& file) {
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string comment_value(const fs::path& file, const std::string& key) {
  const std::string prefix = "# " + key + ":";
  for (const auto& line : read_lines(file)) {
    if (line.rfind(prefix, 0) == 0) {
      auto v = line.substr(prefix.size());
      const auto b = v.find_first_not_of(' ');
      return b == std::string::npos ? "" : v.substr(b);
    }
  }
  return "";
}

}  // namespace deploy_test
