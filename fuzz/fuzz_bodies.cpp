// The orchestrator's request bodies: the parse step of each handler
// (src/orchestrator/api/commands.hpp: login, create workflow, publish version, put draft
// files, start refinement, deploy, start run) and the domain conversion of the files they carry
// (domain::files_from_json, domain::draft_patch_from_json). Properties: only ApiError and
// domain::InvalidError escape; an ApiError is a 400/413/415 problem document naming a
// field; an accepted command holds what its route promises (bounded, NUL-free strings,
// revisions in range, files under the shared rules).
// Input: byte 0 picks the route (and whether a Content-Type is sent), the rest is the body.
#include "core/files.hpp"
#include "core/json_parse.hpp"
#include "fuzz_common.hpp"
#include "orchestrator/api/commands.hpp"
#include "orchestrator/api/problem.hpp"
#include "orchestrator/domain/error.hpp"
#include "orchestrator/domain/files.hpp"

namespace {

namespace api = orchestrator::api;
namespace domain = orchestrator::domain;

const std::string kNow = "2026-01-01T00:00:00.000000Z";

void check_files(const domain::FileMap& files) {
  std::size_t total = 0;
  for (const auto& [path, f] : files) {
    FUZZ_CHECK(core::files::check_path(path).empty(), "accepted path " + path);
    FUZZ_CHECK(core::files::is_canonical(f.content), "accepted lines are not canonical");
    FUZZ_CHECK(core::files::check_content(f.content).empty(), "accepted content breaks the rules");
    FUZZ_CHECK(!f.created_at.empty() && !f.modified_at.empty(), "missing timestamps");
    total += core::files::text_bytes(f.content);
  }
  FUZZ_CHECK(core::files::check_totals(files.size(), total).empty(), "accepted totals over the limit");
  // Drafts are stored as JSON and sent to the engine: the map must serialise.
  (void)domain::files_to_json(files).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool clean(const std::string& s, std::size_t max) { return s.size() <= max && s.find('\0') == std::string::npos; }

void run(int route, const core::http::Request& req) {
  switch (route) {
    case 0: {
      const auto c = api::parse_login(req);
      FUZZ_CHECK(!c.email.empty() && clean(c.email, 320) && !c.password.empty() && clean(c.password, 1024), "login");
      break;
    }
    case 1: {
      const auto c = api::parse_create_workflow(req);
      FUZZ_CHECK(!c.name.empty() && clean(c.name, 200) && clean(c.description, SIZE_MAX), "workflow name");
      FUZZ_CHECK(!(c.template_name && c.files), "template and files together");
      if (c.files) check_files(domain::files_from_json(*c.files, "files", kNow));
      break;
    }
    case 2: {
      const auto c = api::parse_publish_version(req);
      FUZZ_CHECK(!c.base_revision || (*c.base_revision >= 1 && *c.base_revision <= api::kMaxRevision), "revision");
      break;
    }
    case 3: {
      const auto c = api::parse_put_draft_files(req);
      FUZZ_CHECK(c.files.is_object() && c.base_revision >= 1 && c.base_revision <= api::kMaxRevision, "draft edit");
      const auto patch = domain::draft_patch_from_json(c.files, "files", kNow);
      check_files(patch.upserts);
      for (const auto& p : patch.deletes) FUZZ_CHECK(core::files::check_path(p).empty(), "accepted delete " + p);
      break;
    }
    case 4: {
      const auto c = api::parse_deploy(req);
      FUZZ_CHECK(!c.version || (*c.version >= 1 && *c.version <= api::kMaxRevision), "deployed version");
      break;
    }
    case 5: {
      const auto c = api::parse_start_run(req);
      FUZZ_CHECK(!c.input.empty() && clean(c.input, api::kMaxRunInputBytes), "run input");
      FUZZ_CHECK(!(c.draft && c.version), "draft and a version together");
      FUZZ_CHECK(!c.version || (*c.version >= 1 && *c.version <= api::kMaxRevision), "run version");
      break;
    }
    default: {
      const auto c = api::parse_start_refinement(req);
      FUZZ_CHECK(!c.user_prompt.empty() && clean(c.user_prompt, api::kMaxPromptBytes), "prompt");
      FUZZ_CHECK(!c.context_selection || clean(*c.context_selection, api::kMaxPromptBytes), "selection");
      FUZZ_CHECK(!c.context_file_path || core::files::check_path(*c.context_file_path).empty(), "context path");
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  core::http::Request req;
  req.method = "POST";
  const int route = data[0] % 7;
  switch ((data[0] / 7) % 4) {
    case 0: req.headers.set("Content-Type", "application/json"); break;
    case 1: req.headers.set("Content-Type", "application/merge-patch+json; charset=utf-8"); break;
    case 2: req.headers.set("Content-Type", "text/plain"); break;
    default: break;  // none: taken as JSON
  }
  req.body = std::string(fuzz::text(data + 1, size - 1));
  try {
    run(route, req);
  } catch (const api::ApiError& e) {
    const auto& r = e.response();
    FUZZ_CHECK(r.status == 400 || r.status == 413 || r.status == 415, std::to_string(r.status));
    const auto body = core::json::parse_or_null(r.body);
    FUZZ_CHECK(body && body->is_object() && (*body)["status"] == r.status, r.body.substr(0, 200));
    if (r.status == 400) FUZZ_CHECK(body->contains("errors") && !(*body)["errors"].empty(), r.body.substr(0, 200));
  } catch (const domain::InvalidError& e) {
    FUZZ_CHECK(!e.field().empty(), e.what());
  }
  return 0;
}
