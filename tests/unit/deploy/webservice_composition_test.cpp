// Static checks on the WebService Composition: patch paths exist in the XRD,
// size presets equal EventDrivenService's, composed resources are uniquely
// named with readiness checks, and conditional resources really are
// conditional under function-patch-and-transform's semantics.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "deploy_test_support.hpp"

namespace {

using namespace deploy_test;

/// The parsed XRD.
const json& xrd() {
  static const json doc = load_yaml(source_path("deploy/crossplane/webservice/xrd.yaml"));
  return doc;
}

/// The parsed Composition.
const json& composition() {
  static const json doc =
      load_yaml(source_path("deploy/crossplane/webservice/composition.yaml"));
  return doc;
}

/// The patch-and-transform step's resource templates.
const json& pt_resources() {
  for (const auto& step : composition().at("spec").at("pipeline")) {
    if (step.at("functionRef").at("name") == "function-patch-and-transform") {
      return step.at("input").at("resources");
    }
  }
  throw std::runtime_error("no function-patch-and-transform step");
}

/// The template whose base has the given kind (exactly one must exist).
const json& template_of_kind(const std::string& kind) {
  const json* found = nullptr;
  for (const auto& r : pt_resources()) {
    if (r.at("base").at("kind") == kind) {
      if (found) throw std::runtime_error("two templates of kind " + kind);
      found = &r;
    }
  }
  if (!found) throw std::runtime_error("no template of kind " + kind);
  return *found;
}

/// Every field path a template reads from the composite resource:
/// fromFieldPath of FromCompositeFieldPath and the variables of
/// CombineFromComposite patches.
std::vector<std::string> composite_reads(const json& tmpl) {
  std::vector<std::string> out;
  for (const auto& p : tmpl.value("patches", json::array())) {
    const std::string type = p.value("type", "FromCompositeFieldPath");
    if (type == "FromCompositeFieldPath") out.push_back(p.at("fromFieldPath"));
    if (type == "CombineFromComposite") {
      for (const auto& v : p.at("combine").at("variables")) out.push_back(v.at("fromFieldPath"));
    }
  }
  return out;
}

/// Composite field paths set by Crossplane itself rather than by the XRD
/// author (claim reference, standard object metadata).
bool is_crossplane_managed_path(const std::vector<std::string>& seg) {
  if (seg.size() >= 2 && seg[0] == "spec" && seg[1] == "claimRef") {
    return seg.size() == 3 && (seg[2] == "name" || seg[2] == "namespace");
  }
  if (seg.empty() || seg[0] != "metadata") return false;
  if (seg.size() == 2) return seg[1] == "name" || seg[1] == "namespace" || seg[1] == "uid";
  return seg.size() == 3 && (seg[1] == "labels" || seg[1] == "annotations");
}

/// Simulates which templates function-patch-and-transform renders for a claim:
/// a template is dropped when a FromCompositeFieldPath patch with
/// policy.fromFieldPath Required finds no value at its source path. The XR is
/// the claim's spec after API-server defaulting, plus what Crossplane adds.
std::set<std::string> rendered_templates(const json& claim) {
  json xr;
  xr["spec"] = apply_defaults(xrd_spec_schema(xrd()), claim.at("spec"));
  xr["spec"]["claimRef"] = {{"name", claim.at("metadata").at("name")},
                            {"namespace", claim.at("metadata").at("namespace")}};
  xr["metadata"]["labels"]["crossplane.io/claim-name"] = claim.at("metadata").at("name");
  std::set<std::string> out;
  for (const auto& r : pt_resources()) {
    bool render = true;
    for (const auto& p : r.value("patches", json::array())) {
      const bool required = p.value("policy", json::object()).value("fromFieldPath", "") == "Required";
      if (p.value("type", "FromCompositeFieldPath") == "FromCompositeFieldPath" && required &&
          !lookup_field_path(xr, p.at("fromFieldPath")).has_value()) {
        render = false;
      }
    }
    if (render) out.insert(r.at("name"));
  }
  return out;
}

/// Size presets read from the Composition: size -> {cpuRequest, cpuLimit,
/// memoryRequest, memoryLimit}, taken from the map transforms of the
/// Deployment's patches on spec.size.
std::map<std::string, std::map<std::string, std::string>> composition_presets() {
  const std::map<std::string, std::string> target_to_key = {
      {"spec.template.spec.containers[0].resources.requests.cpu", "cpuRequest"},
      {"spec.template.spec.containers[0].resources.limits.cpu", "cpuLimit"},
      {"spec.template.spec.containers[0].resources.requests.memory", "memoryRequest"},
      {"spec.template.spec.containers[0].resources.limits.memory", "memoryLimit"}};
  std::map<std::string, std::map<std::string, std::string>> out;
  for (const auto& p : template_of_kind("Deployment").at("patches")) {
    if (p.value("fromFieldPath", "") != "spec.size") continue;
    const std::string key = target_to_key.at(p.at("toFieldPath"));
    const auto& transforms = p.at("transforms");
    if (transforms.size() != 1 || transforms.at(0).at("type") != "map") {
      throw std::runtime_error("size patch must be a single map transform");
    }
    for (const auto& [size, value] : transforms.at(0).at("map").items()) {
      out[size][key] = value.get<std::string>();
    }
  }
  return out;
}

TEST(deployWebServiceComposition, IsAPipelineWithPatchAndTransform) {
  const json& c = composition();
  EXPECT_EQ(c.at("apiVersion"), "apiextensions.crossplane.io/v1");
  EXPECT_EQ(c.at("kind"), "Composition");
  EXPECT_EQ(c.at("spec").at("mode"), "Pipeline");
  EXPECT_EQ(c.at("spec").at("compositeTypeRef").at("apiVersion"), "platform.bizmatters.io/v1alpha1");
  EXPECT_EQ(c.at("spec").at("compositeTypeRef").at("kind"), "XWebService");
  EXPECT_EQ(c.at("metadata").at("name"),
            xrd().at("spec").at("defaultCompositionRef").at("name"));
  const auto& step = c.at("spec").at("pipeline").at(0);
  EXPECT_EQ(step.at("input").at("apiVersion"), "pt.fn.crossplane.io/v1beta1");
  EXPECT_EQ(step.at("input").at("kind"), "Resources");
}

TEST(deployWebServiceComposition, ComposesTheRequiredKinds) {
  std::multiset<std::string> kinds;
  for (const auto& r : pt_resources()) kinds.insert(r.at("base").at("kind"));
  for (const char* k : {"Deployment", "Service", "HTTPRoute", "Database", "Role"}) {
    EXPECT_EQ(kinds.count(k), 1u) << k;
  }
  EXPECT_EQ(template_of_kind("HTTPRoute").at("base").at("apiVersion"),
            "gateway.networking.k8s.io/v1");
  EXPECT_EQ(template_of_kind("Database").at("base").at("apiVersion"),
            "postgresql.sql.crossplane.io/v1alpha1");
  EXPECT_EQ(template_of_kind("Service").at("base").at("spec").at("type"), "ClusterIP");
}

TEST(deployWebServiceComposition, ResourcesHaveUniqueNamesAndReadinessChecks) {
  static const std::set<std::string> check_types = {"MatchCondition", "NonEmpty", "MatchString",
                                                    "MatchInteger", "MatchTrue", "MatchFalse"};
  std::set<std::string> names;
  for (const auto& r : pt_resources()) {
    const std::string name = r.at("name");
    EXPECT_TRUE(names.insert(name).second) << "duplicate resource name " << name;
    ASSERT_TRUE(r.contains("readinessChecks") && !r.at("readinessChecks").empty())
        << name << " has no readiness check";
    for (const auto& c : r.at("readinessChecks")) {
      EXPECT_TRUE(check_types.count(c.at("type"))) << name << ": check type " << c.at("type");
      if (c.at("type") == "MatchCondition") {
        EXPECT_TRUE(c.contains("matchCondition")) << name;
      }
      if (c.at("type") == "NonEmpty") {
        EXPECT_TRUE(c.contains("fieldPath")) << name;
      }
    }
  }
}

TEST(deployWebServiceComposition, EveryCompositeFieldPathExistsInTheXrd) {
  const json& root = xrd().at("spec").at("versions").at(0).at("schema").at("openAPIV3Schema");
  for (const auto& r : pt_resources()) {
    for (const auto& path : composite_reads(r)) {
      const auto seg = split_field_path(path);
      ASSERT_FALSE(seg.empty());
      if (seg[0] != "spec" && seg[0] != "metadata") continue;
      EXPECT_TRUE(is_crossplane_managed_path(seg) || schema_has_path(root, seg))
          << r.at("name") << " reads " << path << ", which the XRD does not declare";
    }
    for (const auto& p : r.value("patches", json::array())) {
      const std::string type = p.value("type", "FromCompositeFieldPath");
      if (type == "ToCompositeFieldPath" || type == "CombineToComposite") {
        const std::string to = p.at("toFieldPath");
        EXPECT_TRUE(schema_has_path(root, split_field_path(to)))
            << r.at("name") << " writes " << to << ", which the XRD status does not declare";
      }
    }
  }
}

TEST(deployWebServiceComposition, SizePresetsEqualEventDrivenService) {
  const std::map<std::string, std::map<std::string, std::string>> expected = {
      {"micro", {{"cpuRequest", "100m"}, {"cpuLimit", "500m"},
                 {"memoryRequest", "256Mi"}, {"memoryLimit", "1Gi"}}},
      {"small", {{"cpuRequest", "250m"}, {"cpuLimit", "1000m"},
                 {"memoryRequest", "512Mi"}, {"memoryLimit", "2Gi"}}},
      {"medium", {{"cpuRequest", "500m"}, {"cpuLimit", "2000m"},
                  {"memoryRequest", "1Gi"}, {"memoryLimit", "4Gi"}}},
      {"large", {{"cpuRequest", "1000m"}, {"cpuLimit", "4000m"},
                 {"memoryRequest", "2Gi"}, {"memoryLimit", "8Gi"}}}};
  const auto presets = composition_presets();
  EXPECT_EQ(presets, expected);

  const json eds = load_yaml(source_path("deploy/schemas/eventdrivenservice.schema.yaml"));
  std::map<std::string, std::map<std::string, std::string>> documented;
  for (const auto& [size, values] : eds.at("x-size-presets").items()) {
    for (const auto& [k, v] : values.items()) documented[size][k] = v.get<std::string>();
  }
  EXPECT_EQ(presets, documented) << "WebService and EventDrivenService presets differ";

  // The enums of both APIs list exactly the preset names, with the same default.
  std::set<std::string> names;
  for (const auto& [size, _] : presets) names.insert(size);
  const auto& ws_size = xrd_spec_schema(xrd()).at("properties").at("size");
  const auto& eds_size = eds.at("properties").at("size");
  EXPECT_EQ(std::set<std::string>(ws_size.at("enum").begin(), ws_size.at("enum").end()), names);
  EXPECT_EQ(std::set<std::string>(eds_size.at("enum").begin(), eds_size.at("enum").end()), names);
  EXPECT_EQ(ws_size.at("default"), eds_size.at("default"));

  // The base template (used before the first patch) is the default preset.
  const auto& res = template_of_kind("Deployment").at("base").at("spec").at("template")
                        .at("spec").at("containers").at(0).at("resources");
  const auto& def = expected.at(ws_size.at("default").get<std::string>());
  EXPECT_EQ(res.at("requests").at("cpu"), def.at("cpuRequest"));
  EXPECT_EQ(res.at("limits").at("memory"), def.at("memoryLimit"));
}

TEST(deployWebServiceComposition, ConditionalResourcesAreGatedByRequiredPatches) {
  const json& spec = xrd_spec_schema(xrd());
  const std::map<std::string, std::string> gates = {
      {"HTTPRoute", "spec.hostname"}, {"Database", "spec.databaseName"},
      {"Role", "spec.databaseName"}};
  const auto& required = spec.at("required");
  for (const auto& [kind, field] : gates) {
    const json& t = template_of_kind(kind);
    bool gated = false;
    for (const auto& p : t.at("patches")) {
      gated = gated || (p.value("type", "FromCompositeFieldPath") == "FromCompositeFieldPath" &&
                        p.value("fromFieldPath", "") == field &&
                        p.value("policy", json::object()).value("fromFieldPath", "") == "Required");
    }
    EXPECT_TRUE(gated) << kind << " lacks a Required patch from " << field;
    // A default or a `required` entry would make the gate always open.
    const std::string name = field.substr(5);
    EXPECT_FALSE(spec.at("properties").at(name).contains("default")) << field << " has a default";
    EXPECT_EQ(std::count(required.begin(), required.end(), name), 0) << field << " is required";
  }
  for (const auto& r : pt_resources()) {
    if (gates.count(r.at("base").at("kind"))) continue;
    for (const auto& p : r.value("patches", json::array())) {
      EXPECT_NE(p.value("policy", json::object()).value("fromFieldPath", ""), "Required")
          << r.at("name") << " is unconditional but has a Required patch";
    }
  }
}

TEST(deployWebServiceComposition, ExamplesRenderTheExpectedResources) {
  const auto dir = source_path("deploy/crossplane/webservice/examples");
  const auto minimal = rendered_templates(load_yaml(dir / "minimal.yaml"));
  EXPECT_EQ(minimal, (std::set<std::string>{"deployment", "service", "platform-env"}));
  const auto full = rendered_templates(load_yaml(dir / "full.yaml"));
  EXPECT_EQ(full.size(), pt_resources().size()) << "full example must compose everything";
  const auto ide = rendered_templates(load_yaml(dir / "ide-orchestrator.yaml"));
  EXPECT_TRUE(ide.count("httproute") && ide.count("database") && ide.count("database-role"));

  // Hostname without database and database without hostname.
  json claim = load_yaml(dir / "minimal.yaml");
  claim["spec"]["hostname"] = "a.example.com";
  auto only_route = rendered_templates(claim);
  EXPECT_TRUE(only_route.count("httproute"));
  EXPECT_FALSE(only_route.count("database") || only_route.count("database-role"));
  claim["spec"].erase("hostname");
  claim["spec"]["databaseName"] = "a";
  auto only_db = rendered_templates(claim);
  EXPECT_FALSE(only_db.count("httproute"));
  EXPECT_TRUE(only_db.count("database") && only_db.count("database-role"));
}

TEST(deployWebServiceComposition, DeploymentIsHardenedAndWired) {
  const json& d = template_of_kind("Deployment").at("base");
  const json& pod = d.at("spec").at("template").at("spec");
  const json& c = pod.at("containers").at(0);
  EXPECT_EQ(pod.at("securityContext").at("runAsNonRoot"), true);
  EXPECT_EQ(c.at("securityContext").at("allowPrivilegeEscalation"), false);
  EXPECT_EQ(c.at("securityContext").at("readOnlyRootFilesystem"), true);
  EXPECT_EQ(c.at("securityContext").at("capabilities").at("drop"), json::array({"ALL"}));
  // One envFrom slot per secretNName (after the ConfigMap and database slots),
  // each patched by name from the matching field.
  ASSERT_EQ(c.at("envFrom").size(), 7u);
  std::map<std::string, std::string> slot_of;
  for (const auto& p : template_of_kind("Deployment").at("patches")) {
    const std::string to = p.value("toFieldPath", "");
    if (to.find("envFrom[") != std::string::npos && to.find(".secretRef.name") != std::string::npos)
      slot_of[p.value("fromFieldPath", "")] = to;
  }
  for (int i = 1; i <= 5; ++i) {
    const std::string field = "spec.secret" + std::to_string(i) + "Name";
    EXPECT_EQ(slot_of[field], "spec.template.spec.containers[0].envFrom[" + std::to_string(i + 1) +
                                  "].secretRef.name");
  }
  // The database slot reads the Role's connection secret name.
  const std::string role_secret = template_of_kind("Role").at("base").at("spec")
                                      .at("writeConnectionSecretToRef").at("name");
  EXPECT_EQ(c.at("envFrom").at(1).at("secretRef").at("name"), role_secret);
  // The HTTPRoute attaches to the Gateway's TLS listener.
  const json& parent = template_of_kind("HTTPRoute").at("base").at("spec").at("parentRefs").at(0);
  EXPECT_EQ(parent.at("sectionName"), "https");
}

}  // namespace
