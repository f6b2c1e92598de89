// deploy/bootstrap: the secrets every claim mounts are all made in the cluster
// (secrets.yaml), and the first-user Job (bootstrap-admin-job.yaml) runs the
// orchestrator image the claim runs, against the claim's database, with keys
// that the secrets really hold. Drift between these files and the claims fails here.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>

#include "deploy_test_support.hpp"

namespace {

using namespace deploy_test;

std::vector<json> secrets_docs() { return load_yaml_documents(source_path("deploy/bootstrap/secrets.yaml")); }

json bootstrap_job() { return load_yaml(source_path("deploy/bootstrap/bootstrap-admin-job.yaml")); }

/// ExternalSecrets of secrets.yaml by target secret name.
std::map<std::string, json> external_secrets_by_target() {
  std::map<std::string, json> out;
  for (const auto& d : secrets_docs()) {
    if (d.at("kind") == "ExternalSecret") out[d.at("spec").at("target").at("name").get<std::string>()] = d;
  }
  return out;
}

/// Keys a target secret will hold: its template's data keys, else the `data` secretKeys;
/// empty for `dataFrom: extract` (the keys come from the remote store).
std::set<std::string> target_keys(const json& es) {
  std::set<std::string> keys;
  const json& spec = es.at("spec");
  if (spec.at("target").contains("template")) {
    for (const auto& [k, v] : spec.at("target").at("template").at("data").items()) keys.insert(k);
  } else if (spec.contains("data")) {
    for (const auto& d : spec.at("data")) keys.insert(d.at("secretKey").get<std::string>());
  }
  return keys;
}

/// secretNName values of a claim's spec.
std::vector<std::string> claim_secrets(const std::string& file) {
  const json spec = load_yaml(source_path(file)).at("spec");
  std::vector<std::string> out;
  for (int i = 1; i <= 5; ++i) {
    const std::string field = "secret" + std::to_string(i) + "Name";
    if (spec.contains(field)) out.push_back(spec.at(field).get<std::string>());
  }
  return out;
}

std::map<std::string, json> env_by_name(const json& container) {
  std::map<std::string, json> out;
  for (const auto& e : container.at("env")) out[e.at("name").get<std::string>()] = e;
  return out;
}

TEST(deployBootstrap, EverySecretTheClaimsMountIsMadeInTheCluster) {
  const auto made = external_secrets_by_target();
  for (const char* claim : {"deploy/claims/ide-orchestrator.yaml", "deploy/claims/spec-engine.yaml"}) {
    const auto names = claim_secrets(claim);
    EXPECT_FALSE(names.empty()) << claim;
    for (const auto& name : names) EXPECT_TRUE(made.count(name)) << claim << " mounts " << name << ", nothing makes it";
  }
}

TEST(deployBootstrap, GeneratedValuesAreMadeOnceAndRefsResolve) {
  std::set<std::string> generators, stores;
  for (const auto& d : secrets_docs()) {
    EXPECT_EQ(d.at("metadata").value("namespace", ""), "agentic-ide") << d.at("metadata").at("name");
    if (d.at("kind") == "Password") generators.insert(d.at("metadata").at("name").get<std::string>());
    if (d.at("kind") == "SecretStore") stores.insert(d.at("metadata").at("name").get<std::string>());
  }
  for (const auto& [target, es] : external_secrets_by_target()) {
    const json& spec = es.at("spec");
    bool generated = false;
    for (const auto& from : spec.value("dataFrom", json::array())) {
      if (!from.contains("sourceRef")) continue;
      generated = true;
      EXPECT_TRUE(generators.count(from.at("sourceRef").at("generatorRef").at("name").get<std::string>())) << target;
    }
    // A regenerated JWT key signs everybody out; a regenerated admin password no longer
    // matches the account: generated values must never be refreshed.
    if (generated) {
      EXPECT_EQ(spec.at("refreshInterval"), "0") << target;
    }
    if (spec.contains("secretStoreRef") && spec.at("secretStoreRef").at("kind") == "SecretStore") {
      EXPECT_TRUE(stores.count(spec.at("secretStoreRef").at("name").get<std::string>())) << target;
    }
  }
  const auto made = external_secrets_by_target();
  ASSERT_TRUE(made.count("ide-orchestrator-jwt"));
  EXPECT_EQ(target_keys(made.at("ide-orchestrator-jwt")), std::set<std::string>{"JWT_SECRET"});
}

TEST(deployBootstrap, EngineDatabaseUrlIsBuiltFromTheRoleSecret) {
  const auto made = external_secrets_by_target();
  ASSERT_TRUE(made.count("spec-engine-db"));
  const json& spec = made.at("spec-engine-db").at("spec");
  const std::string url = spec.at("target").at("template").at("data").at("SPEC_ENGINE_DATABASE_URL");
  EXPECT_TRUE(std::regex_match(url, std::regex(R"(postgresql://\{\{ \.username \}\}:\{\{ \.password \}\}@\{\{ \.endpoint \}\}:\{\{ \.port \}\}/(\w+))")))
      << url;
  const auto db_docs = load_yaml_documents(source_path("deploy/claims/spec-engine-database.yaml"));
  std::string role_secret;
  for (const auto& d : db_docs) {
    if (d.at("kind") == "Role") role_secret = d.at("spec").at("writeConnectionSecretToRef").at("name");
    if (d.at("kind") == "Database") {
      EXPECT_NE(url.find("/" + d.at("metadata").at("annotations").at("crossplane.io/external-name").get<std::string>()),
                std::string::npos);
    }
  }
  ASSERT_FALSE(role_secret.empty());
  for (const auto& d : spec.at("data")) EXPECT_EQ(d.at("remoteRef").at("key"), role_secret);
  // The store's service account may read exactly that secret.
  for (const auto& d : secrets_docs()) {
    if (d.at("kind") != "Role") continue;
    EXPECT_EQ(d.at("rules").at(0).at("resourceNames"), json::array({role_secret}));
  }
}

TEST(deployBootstrap, FirstUserJobMatchesTheOrchestratorClaim) {
  const json job = bootstrap_job();
  const json claim = load_yaml(source_path("deploy/claims/ide-orchestrator.yaml"));
  EXPECT_EQ(job.at("kind"), "Job");
  EXPECT_EQ(job.at("metadata").at("namespace"), claim.at("metadata").at("namespace"));
  const json& pod = job.at("spec").at("template").at("spec");
  ASSERT_EQ(pod.at("containers").size(), 1u);
  const json& c = pod.at("containers").at(0);
  EXPECT_EQ(c.at("image"), claim.at("spec").at("image"));

  // The subcommand the binary really has (src/apps/ide_orchestrator_main.cpp), password on stdin.
  const std::string script = c.at("args").at(0);
  EXPECT_NE(script.find("ide-orchestrator user add"), std::string::npos) << script;
  EXPECT_NE(script.find("already exists"), std::string::npos) << "the Job must succeed when the user exists";

  // Same database as the orchestrator: the role secret mounted with the same prefix, the same URL.
  std::map<std::string, std::string> claim_env;
  for (const auto& e : claim.at("spec").at("env")) claim_env[e.at("name")] = e.value("value", "");
  const auto env = env_by_name(c);
  ASSERT_TRUE(env.count("IDE_ORCHESTRATOR_DATABASE_URL"));
  EXPECT_EQ(env.at("IDE_ORCHESTRATOR_DATABASE_URL").at("value"), claim_env.at("IDE_ORCHESTRATOR_DATABASE_URL"));
  ASSERT_EQ(c.at("envFrom").size(), 1u);
  EXPECT_EQ(c.at("envFrom").at(0).at("prefix"), "DATABASE_");
  EXPECT_EQ(c.at("envFrom").at(0).at("secretRef").at("name"),
            claim.at("metadata").at("name").get<std::string>() + "-db-conn");

  // The password comes from a secret key that secrets.yaml really makes.
  const json& ref = env.at("BOOTSTRAP_ADMIN_PASSWORD").at("valueFrom").at("secretKeyRef");
  const auto made = external_secrets_by_target();
  ASSERT_TRUE(made.count(ref.at("name"))) << ref;
  EXPECT_TRUE(target_keys(made.at(ref.at("name"))).count(ref.at("key"))) << ref;

  // Hardened like the service's pods.
  EXPECT_EQ(pod.at("securityContext").at("runAsNonRoot"), true);
  EXPECT_EQ(c.at("securityContext").at("readOnlyRootFilesystem"), true);
  EXPECT_EQ(c.at("securityContext").at("allowPrivilegeEscalation"), false);
}

}  // namespace
