// The WebService XRD (deploy/crossplane/webservice/xrd.yaml): its schema is
// well-formed and documented, every example claim passes it and every invalid
// fixture under tests/fixtures/deploy/invalid fails it for the stated field.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "deploy_test_support.hpp"

namespace {

using namespace deploy_test;

/// The parsed XRD (loaded once per process).
const json& xrd() {
  static const json doc = load_yaml(source_path("deploy/crossplane/webservice/xrd.yaml"));
  return doc;
}

/// Paths of the WebService example claims shipped with the XRD.
std::vector<fs::path> example_claims() {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(source_path("deploy/crossplane/webservice/examples"))) {
    if (e.path().extension() == ".yaml") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// Paths of the invalid WebService fixtures.
std::vector<fs::path> invalid_fixtures() {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(source_path("tests/fixtures/deploy/invalid"))) {
    if (e.path().extension() == ".yaml") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// Walks every property schema below `schema`, calling `fn(path, node)`.
template <typename Fn>
void for_each_property(const json& schema, const std::string& path, Fn&& fn) {
  if (schema.contains("properties")) {
    for (const auto& [name, prop] : schema.at("properties").items()) {
      const std::string p = path + "." + name;
      fn(p, prop);
      for_each_property(prop, p, fn);
    }
  }
  if (schema.contains("items")) for_each_property(schema.at("items"), path + "[]", fn);
}

TEST(deployWebServiceXrd, IdentityMatchesThePlatformApi) {
  const json& x = xrd();
  EXPECT_EQ(x.at("apiVersion"), "apiextensions.crossplane.io/v1");
  EXPECT_EQ(x.at("kind"), "CompositeResourceDefinition");
  EXPECT_EQ(x.at("metadata").at("name"), "xwebservices.platform.bizmatters.io");
  EXPECT_EQ(x.at("spec").at("group"), "platform.bizmatters.io");
  EXPECT_EQ(x.at("spec").at("names").at("kind"), "XWebService");
  EXPECT_EQ(x.at("spec").at("claimNames").at("kind"), "WebService");
  EXPECT_EQ(x.at("spec").at("versions").at(0).at("name"), "v1alpha1");
  const auto& req = xrd_spec_schema(x).at("required");
  EXPECT_EQ(std::set<std::string>(req.begin(), req.end()),
            (std::set<std::string>{"image", "port"}));
}

TEST(deployWebServiceXrd, DeclaresEveryFieldOfTheIssue) {
  const json& props = xrd_spec_schema(xrd()).at("properties");
  for (const char* f : {"image", "port", "size", "replicas", "databaseName", "secret1Name",
                        "secret2Name", "secret3Name", "secret4Name", "secret5Name", "env",
                        "hostname", "pathPrefix", "healthPath", "readyPath",
                        "backendServiceName", "backendServicePort"}) {
    EXPECT_TRUE(props.contains(f)) << "spec." << f << " missing from the XRD";
  }
  EXPECT_EQ(props.at("size").at("default"), "medium");
  EXPECT_EQ(props.at("healthPath").at("default"), "/health");
  EXPECT_EQ(props.at("readyPath").at("default"), "/ready");
  const json& status = xrd_status_schema(xrd()).at("properties");
  EXPECT_TRUE(status.contains("url"));
  EXPECT_TRUE(status.contains("availableReplicas"));
}

TEST(deployWebServiceXrd, EveryFieldHasDescriptionExampleAndValidation) {
  const json& root = xrd().at("spec").at("versions").at(0).at("schema").at("openAPIV3Schema");
  for_each_property(root, "", [](const std::string& path, const json& node) {
    EXPECT_FALSE(node.value("description", "").empty()) << path << " has no description";
    EXPECT_TRUE(node.contains("type")) << path << " has no type";
    const std::string type = node.value("type", "");
    const bool in_status = path.rfind(".status", 0) == 0;
    const bool top_level_object = path == ".spec" || path == ".status";
    if (!top_level_object && !(path.find("[]") != std::string::npos && type == "object")) {
      EXPECT_TRUE(node.contains("example")) << path << " has no example";
    }
    if (in_status || top_level_object) return;
    if (type == "string") {
      // Identifiers, names and paths carry a pattern; free text at least a length bound.
      EXPECT_TRUE(node.contains("enum") || node.contains("maxLength"))
          << path << ": a string field needs an enum or maxLength";
      if (path != ".spec.env[].value") {
        EXPECT_TRUE(node.contains("enum") || node.contains("pattern"))
            << path << ": a string field needs a pattern or an enum";
      }
    } else if (type == "integer") {
      EXPECT_TRUE(node.contains("minimum") && node.contains("maximum"))
          << path << ": integers need a range";
    } else if (type == "array") {
      EXPECT_TRUE(node.contains("maxItems")) << path << ": arrays need maxItems";
    }
  });
}

TEST(deployWebServiceXrd, DefaultsAndExamplesSatisfyTheirOwnSchema) {
  const json& root = xrd().at("spec").at("versions").at(0).at("schema").at("openAPIV3Schema");
  for_each_property(root, "", [](const std::string& path, const json& node) {
    for (const char* k : {"default", "example"}) {
      if (!node.contains(k)) continue;
      const auto errors = validate(node, node.at(k));
      EXPECT_TRUE(errors.empty()) << path << " " << k << " is invalid:\n" << describe(errors);
    }
  });
}

TEST(deployWebServiceXrd, ExampleClaimsAreValid) {
  const auto files = example_claims();
  ASSERT_GE(files.size(), 3u);
  for (const auto& f : files) {
    const json claim = load_yaml(f);
    EXPECT_EQ(claim.at("apiVersion"), "platform.bizmatters.io/v1alpha1") << f;
    EXPECT_EQ(claim.at("kind"), "WebService") << f;
    const auto errors = validate(xrd_spec_schema(xrd()), claim.at("spec"));
    EXPECT_TRUE(errors.empty()) << f << " is rejected:\n" << describe(errors);
  }
}

TEST(deployWebServiceXrd, ProductClaimIsValidAndMatchesItsExample) {
  const json claim = load_yaml(source_path("deploy/claims/ide-orchestrator.yaml"));
  const json example =
      load_yaml(source_path("deploy/crossplane/webservice/examples/ide-orchestrator.yaml"));
  EXPECT_EQ(claim.at("kind"), "WebService");
  const auto errors = validate(xrd_spec_schema(xrd()), claim.at("spec"));
  EXPECT_TRUE(errors.empty()) << describe(errors);
  EXPECT_EQ(claim, example) << "examples/ide-orchestrator.yaml drifted from deploy/claims";
}

TEST(deployWebServiceXrd, ValidatorSeesTypedScalars) {
  // A quoted port is a string and must be refused; an unquoted one is an int.
  const json& spec = xrd_spec_schema(xrd());
  EXPECT_TRUE(validate(spec, yaml_to_json(YAML::Load(
      "image: r.example.com/a:1\nport: 8080\n"))).empty());
  EXPECT_FALSE(validate(spec, yaml_to_json(YAML::Load(
      "image: r.example.com/a:1\nport: \"8080\"\n"))).empty());
  EXPECT_TRUE(yaml_to_json(YAML::Load("v: 0.0.0.0")).at("v").is_string());
  EXPECT_TRUE(yaml_to_json(YAML::Load("v: true")).at("v").is_boolean());
  EXPECT_TRUE(yaml_to_json(YAML::Load("v: 'true'")).at("v").is_string());
}

TEST(deployWebServiceXrd, KubernetesExtensionsAreIgnoredNotEnforced) {
  const json& spec = xrd_spec_schema(xrd());
  ASSERT_TRUE(spec.contains("x-kubernetes-validations"));
  const json stripped = strip_schema_extensions(spec);
  EXPECT_FALSE(stripped.contains("x-kubernetes-validations"));
  EXPECT_FALSE(stripped.at("properties").at("env").contains("x-kubernetes-list-type"));
  EXPECT_FALSE(stripped.at("properties").at("image").contains("example"));
  EXPECT_TRUE(stripped.at("properties").at("size").contains("default"));
}

TEST(deployWebServiceXrd, InvalidFixturesFailForTheStatedField) {
  const auto files = invalid_fixtures();
  // missing image, port 0, unknown size, bad secret name, bad hostname,
  // pathPrefix without slash, replicas out of range (plus a few more).
  ASSERT_GE(files.size(), 7u);
  std::set<std::string> fields;
  for (const auto& f : files) {
    const std::string field = comment_value(f, "expect-field");
    const std::string reason = comment_value(f, "reason");
    ASSERT_FALSE(field.empty()) << f << " lacks '# expect-field:'";
    ASSERT_FALSE(reason.empty()) << f << " lacks '# reason:'";
    fields.insert(field);
    const json claim = load_yaml(f);
    const auto errors = validate(xrd_spec_schema(xrd()), claim.at("spec"));
    ASSERT_FALSE(errors.empty()) << f << " was accepted but must fail: " << reason;
    const bool names_field = std::any_of(errors.begin(), errors.end(), [&](const auto& e) {
      return e.path.find("[" + field + "]") != std::string::npos ||
             e.message.find("'" + field + "'") != std::string::npos;
    });
    EXPECT_TRUE(names_field) << f << " failed, but not on " << field << ":\n" << describe(errors);
  }
  for (const char* f : {"image", "port", "size", "secret3Name", "hostname", "pathPrefix",
                        "replicas"}) {
    EXPECT_TRUE(fields.count(f)) << "no invalid fixture for " << f;
  }
}

}  // namespace
