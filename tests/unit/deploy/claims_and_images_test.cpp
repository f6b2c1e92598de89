// The product's claims (deploy/claims), every YAML under deploy/, and the
// Dockerfiles' agreement with the commands CI runs (Makefile).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <regex>

#include "deploy_test_support.hpp"

namespace {

using namespace deploy_test;

/// Recipe lines (commands, '@' stripped) of a Makefile target.
std::vector<std::string> make_recipe(const std::vector<std::string>& makefile,
                                     const std::string& target) {
  std::vector<std::string> out;
  bool in = false;
  for (const auto& line : makefile) {
    if (!line.empty() && line[0] == '\t') {
      if (in) {
        std::string cmd = line.substr(1);
        if (!cmd.empty() && cmd[0] == '@') cmd.erase(0, 1);
        out.push_back(cmd);
      }
      continue;
    }
    in = line.rfind(target + ":", 0) == 0;
  }
  return out;
}

/// Value of a `NAME ?= value` / `NAME := value` Makefile variable.
std::string make_variable(const std::vector<std::string>& makefile, const std::string& name) {
  const std::regex re("^" + name + "\\s*[?:]?=\\s*(.*?)\\s*$");
  std::smatch m;
  for (const auto& line : makefile) {
    if (std::regex_match(line, m, re)) return m[1];
  }
  return "";
}

/// A shell command with the flags that legitimately differ between CI and an
/// image build removed (parallelism `-j N`, the single `--target T` an image
/// needs) and surrounding blanks trimmed.
std::string normalise_command(std::string cmd) {
  cmd = std::regex_replace(cmd, std::regex("\\s(-j\\s*\\S+|--target\\s+\\S+)"), "");
  cmd = std::regex_replace(cmd, std::regex("^\\s+|\\s+$"), "");
  return std::regex_replace(cmd, std::regex("\\s+"), " ");
}

/// The build commands (dependency script and cmake invocations) found in
/// shell text, split at `;`, `&&`, `||` and shell keywords, normalised.
std::vector<std::string> build_commands_in(const std::string& shell) {
  std::vector<std::string> out;
  const std::regex sep("\\s*(;|&&|\\|\\||\\bthen\\b|\\bfi\\b)\\s*");
  for (std::sregex_token_iterator it(shell.begin(), shell.end(), sep, -1), end; it != end; ++it) {
    const std::string cmd = normalise_command(*it);
    if (cmd.find("scripts/install-deps.sh") != std::string::npos) {
      out.push_back("scripts/install-deps.sh");
    } else if (cmd.rfind("cmake ", 0) == 0) {
      out.push_back(cmd);
    }
  }
  return out;
}

/// The commands CI runs to build (`make deps configure build`, which `make
/// test` depends on), with Make variables expanded, normalised.
std::vector<std::string> ci_build_commands() {
  const auto mk = read_lines(source_path("Makefile"));
  const std::string preset = make_variable(mk, "PRESET");
  std::vector<std::string> out;
  for (const char* target : {"deps", "configure", "build"}) {
    for (auto cmd : make_recipe(mk, target)) {
      cmd = std::regex_replace(cmd, std::regex("\\$\\(PRESET\\)"), preset);
      for (auto& c : build_commands_in(cmd)) out.push_back(c);
    }
  }
  return out;
}

/// The lines of stage `stage` of a Dockerfile (from its FROM to the next),
/// with backslash continuations joined.
std::vector<std::string> dockerfile_stage(const fs::path& file, int stage) {
  std::vector<std::string> joined;
  std::string cur;
  for (const auto& line : read_lines(file)) {
    if (line.rfind("#", 0) == 0) continue;
    if (!line.empty() && line.back() == '\\') {
      cur += line.substr(0, line.size() - 1) + " ";
      continue;
    }
    joined.push_back(cur + line);
    cur.clear();
  }
  std::vector<std::string> out;
  int seen = -1;
  for (const auto& l : joined) {
    if (l.rfind("FROM ", 0) == 0) ++seen;
    if (seen == stage) out.push_back(l);
  }
  return out;
}

/// Index of a Dockerfile's last stage (the runtime image; build stages come first).
int last_stage(const fs::path& file) {
  int n = 0;
  for (const auto& line : read_lines(file)) n += line.rfind("FROM ", 0) == 0 ? 1 : 0;
  return n - 1;
}

/// The two container images and the binary each builds.
const std::vector<std::pair<std::string, std::string>> kImages = {
    {"deploy/docker/spec-engine.Dockerfile", "spec-engine"},
    {"deploy/docker/ide-orchestrator.Dockerfile", "ide-orchestrator"}};

TEST(deployFiles, EveryYamlUnderDeployParses) {
  int count = 0;
  for (const auto& e : fs::recursive_directory_iterator(source_path("deploy"))) {
    const auto ext = e.path().extension();
    if (ext != ".yaml" && ext != ".yml") continue;
    ++count;
    std::vector<json> docs;
    EXPECT_NO_THROW(docs = load_yaml_documents(e.path())) << e.path();
    EXPECT_FALSE(docs.empty()) << e.path() << " holds no document";
    for (const auto& d : docs) EXPECT_TRUE(d.is_object()) << e.path();
  }
  EXPECT_GE(count, 9);
}

TEST(deployClaims, SpecEngineClaimMatchesEventDrivenServiceSchema) {
  const json schema = load_yaml(source_path("deploy/schemas/eventdrivenservice.schema.yaml"));
  const json claim = load_yaml(source_path("deploy/claims/spec-engine.yaml"));
  EXPECT_EQ(claim.at("apiVersion"), "platform.bizmatters.io/v1alpha1");
  EXPECT_EQ(claim.at("kind"), "EventDrivenService");
  const auto errors = validate(schema, claim.at("spec"));
  EXPECT_TRUE(errors.empty()) << describe(errors);
  EXPECT_EQ(claim.at("spec").at("httpPort"), 8000);
  EXPECT_EQ(claim.at("spec").at("readyPath"), "/ready");

  // The schema itself rejects what it should.
  json bad = claim.at("spec");
  bad["nats"].erase("stream");
  EXPECT_FALSE(validate(schema, bad).empty()) << "nats.stream must be required";
  bad = claim.at("spec");
  bad["size"] = "huge";
  EXPECT_FALSE(validate(schema, bad).empty());
  bad = claim.at("spec");
  bad["hostname"] = "engine.example.com";  // internal only: no such field
  EXPECT_FALSE(validate(schema, bad).empty());
}

TEST(deployClaims, OrchestratorClaimIsWiredToTheEngine) {
  const json ide = load_yaml(source_path("deploy/claims/ide-orchestrator.yaml"));
  const json engine = load_yaml(source_path("deploy/claims/spec-engine.yaml"));
  const json& s = ide.at("spec");
  EXPECT_EQ(s.at("port"), 8080);
  EXPECT_EQ(s.at("databaseName"), "ide_orchestrator");
  EXPECT_EQ(s.at("pathPrefix"), "/api");
  EXPECT_TRUE(s.contains("hostname"));
  EXPECT_EQ(s.at("readyPath"), "/ready");
  EXPECT_EQ(s.at("backendServiceName"), engine.at("metadata").at("name"));
  EXPECT_EQ(s.at("backendServicePort"), engine.at("spec").at("httpPort"));
  EXPECT_EQ(ide.at("metadata").at("namespace"), engine.at("metadata").at("namespace"));
  std::map<std::string, std::string> env;
  for (const auto& e : s.at("env")) env[e.at("name")] = e.value("value", "");
  EXPECT_EQ(env["IDE_ORCHESTRATOR_HOST"], "0.0.0.0");
  EXPECT_EQ(env["IDE_ORCHESTRATOR_PORT"], std::to_string(s.at("port").get<int>()));
  EXPECT_EQ(env["IDE_ORCHESTRATOR_ENGINE_URL"], "$(BACKEND_SERVICE_URL)");
  EXPECT_NE(env["IDE_ORCHESTRATOR_DATABASE_URL"].find("/ide_orchestrator"), std::string::npos);
  EXPECT_EQ(env["IDE_ORCHESTRATOR_CORS_ORIGINS"], "https://" + s.at("hostname").get<std::string>());
}

TEST(deployClaims, EngineDatabaseIsDeepagentsRuntime) {
  const auto docs = load_yaml_documents(source_path("deploy/claims/spec-engine-database.yaml"));
  ASSERT_EQ(docs.size(), 2u);
  for (const auto& d : docs) {
    EXPECT_EQ(d.at("apiVersion"), "postgresql.sql.crossplane.io/v1alpha1");
    EXPECT_EQ(d.at("metadata").at("annotations").at("crossplane.io/external-name"),
              "deepagents_runtime");
  }
}

TEST(deployDockerImages, BuildStageRunsTheCommandsCiRuns) {
  const auto ci = ci_build_commands();
  // Guard against a parser that silently finds nothing in the Makefile.
  ASSERT_EQ(ci.size(), 3u) << "expected deps script, configure and build in the Makefile";
  EXPECT_EQ(ci[0], "scripts/install-deps.sh");
  EXPECT_EQ(ci[1].rfind("cmake --preset ", 0), 0u);
  EXPECT_EQ(ci[2].rfind("cmake --build --preset ", 0), 0u);
  for (const auto& [file, binary] : kImages) {
    const auto build = dockerfile_stage(source_path(file), 0);
    ASSERT_FALSE(build.empty()) << file;
    EXPECT_EQ(build.front().rfind("FROM debian:12 AS build", 0), 0u) << file;
    // The build stage's RUN lines run exactly the CI commands, in order.
    std::vector<std::string> docker;
    for (const auto& l : build) {
      if (l.rfind("RUN ", 0) == 0) {
        for (auto& c : build_commands_in(l.substr(4))) docker.push_back(c);
      }
    }
    EXPECT_EQ(docker, ci) << file << " build stage diverges from the Makefile";
    const bool builds_binary = std::any_of(build.begin(), build.end(), [&](const auto& l) {
      return l.find("--target " + binary) != std::string::npos;
    });
    EXPECT_TRUE(builds_binary) << file;
    const bool build_profile = std::any_of(build.begin(), build.end(), [](const auto& l) {
      return l.find("DEPS_PROFILE=build") != std::string::npos;
    });
    EXPECT_TRUE(build_profile) << file << " should skip test-only packages";
  }
  // CI runs make; the preset builds into build/, where the images copy from.
  EXPECT_NE(read_lines(source_path(".ci/run")).back().find("make test"), std::string::npos);
  const json presets = json::parse(std::ifstream(source_path("CMakePresets.json")));
  EXPECT_EQ(presets.at("configurePresets").at(0).at("binaryDir"), "${sourceDir}/build");
}

TEST(deployDockerImages, RuntimeStageIsMinimalAndNonRoot) {
  for (const auto& [file, binary] : kImages) {
    const auto rt = dockerfile_stage(source_path(file), last_stage(source_path(file)));
    ASSERT_FALSE(rt.empty()) << file;
    std::string all;
    for (const auto& l : rt) all += l + "\n";
    EXPECT_EQ(rt.front().rfind("FROM debian:12", 0), 0u) << file;
    EXPECT_EQ(all.find("-dev"), std::string::npos) << file << " installs -dev packages";
    EXPECT_NE(all.find("COPY --from=build /src/build/bin/" + binary + " "), std::string::npos)
        << file;
    EXPECT_NE(all.find("/usr/share/agentic-ide/migrations"), std::string::npos) << file;
    EXPECT_NE(all.find("/usr/share/agentic-ide/config"), std::string::npos) << file;
    EXPECT_NE(all.find("HEALTHCHECK"), std::string::npos) << file;
    if (binary == "ide-orchestrator") {
      EXPECT_NE(all.find("COPY --from=web /out/web /usr/share/agentic-ide/web"), std::string::npos)
          << file << " must ship the built web console";
    }
    EXPECT_NE(all.find("_HOST=0.0.0.0"), std::string::npos) << file;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(all, m, std::regex("\nUSER (\\S+)"))) << file;
    EXPECT_NE(m[1].str().rfind("root", 0), 0u) << file;
    EXPECT_NE(m[1].str().rfind("0", 0), 0u) << file;
  }
}

}  // namespace
