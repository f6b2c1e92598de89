// Helpers shared by the deploy/ tests: YAML -> JSON conversion with YAML 1.2
// core-schema typing, schema preparation for valijson, JSON Schema validation,
// and small lookups into Crossplane manifests.
#pragma once

#define VALIJSON_USE_EXCEPTIONS 1

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

namespace deploy_test {

namespace fs = std::filesystem;
using nlohmann::json;

/// Absolute path of a file in the source tree, from the compile definition
/// PROJECT_SOURCE_DIR given to every test binary.
fs::path source_path(const std::string& relative);

/// Converts one YAML node into JSON. Quoted scalars and scalars tagged !!str
/// stay strings; plain scalars are typed by the YAML 1.2 core schema (null,
/// bool, int, float, otherwise string), so `port: 8080` is an integer while
/// `value: "8080"` and `value: 0.0.0.0` are strings.
json yaml_to_json(const YAML::Node& node);

/// Every document of a YAML file as JSON (empty documents are skipped).
/// Throws YAML::Exception when the file does not parse.
std::vector<json> load_yaml_documents(const fs::path& file);

/// The single document of a YAML file as JSON; throws std::runtime_error when
/// the file holds zero or several documents.
json load_yaml(const fs::path& file);

/// A copy of a schema with the keywords a JSON Schema validator must not see
/// removed: Kubernetes structural-schema extensions (x-kubernetes-*), other
/// x-* annotations, and `example`. Property *names* are never touched, only
/// keywords of schema objects. `default` is kept (validators ignore it).
json strip_schema_extensions(const json& schema);

/// The openAPIV3Schema of a claim's `spec` in a CompositeResourceDefinition:
/// spec.versions[0].schema.openAPIV3Schema.properties.spec.
const json& xrd_spec_schema(const json& xrd);

/// The status schema of the first version of a CompositeResourceDefinition.
const json& xrd_status_schema(const json& xrd);

/// One validation failure: where (e.g. "<root> [spec] [port]") and why.
struct ValidationError {
  std::string path;
  std::string message;
};

/// Validates `instance` against JSON Schema `schema` (draft 7, strict types)
/// with valijson after strip_schema_extensions(). Empty result = valid.
std::vector<ValidationError> validate(const json& schema, const json& instance);

/// Human-readable list of validation errors, one per line (for test output).
std::string describe(const std::vector<ValidationError>& errors);

/// Applies `default` values of a structural schema to `instance` the way the
/// Kubernetes API server does before storing a claim (recursively for objects).
json apply_defaults(const json& schema, json instance);

/// Splits a Crossplane field path ("spec.a[0].b", "metadata.labels[x/y]")
/// into segments; array indexes and bracketed keys are separate segments.
std::vector<std::string> split_field_path(const std::string& path);

/// Whether `path` (split by split_field_path) is declared in the given
/// structural schema: object keys must be listed in `properties` (or allowed by
/// `additionalProperties`), numeric segments descend into `items`.
bool schema_has_path(const json& schema, const std::vector<std::string>& segments);

/// Looks a field path up in a JSON object; nullopt when any segment is absent.
std::optional<json> lookup_field_path(const json& object, const std::string& path);

/// The lines of a text file; throws std::runtime_error when unreadable.
std::vector<std::string> read_lines(const fs::path& file);

/// The value of a "# key: value" comment line in a fixture, "" when absent.
std::string comment_value(const fs::path& file, const std::string& key);

}  // namespace deploy_test
