#pragma once
// Fixture of the domain service tests (services_test.cpp, sharing_test.cpp, crud_test.cpp): the
// services on a real database (SQLite always, PostgreSQL when TEST_PG_URL is set), two users.

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "core/util.hpp"
#include "db_fixture.hpp"
#include "orchestrator/domain/audit.hpp"
#include "orchestrator/domain/drafts.hpp"
#include "orchestrator/domain/error.hpp"
#include "orchestrator/domain/proposals.hpp"
#include "orchestrator/domain/users.hpp"
#include "orchestrator/domain/workflows.hpp"

using namespace orchestrator::domain;
using orchestrator::store::PageRequest;
using namespace std::chrono_literals;

inline FileEntry F(std::vector<std::string> lines) { return FileEntry{std::move(lines), "2026-01-01T00:00:00.000000Z", "2026-01-01T00:00:00.000000Z"}; }

inline const TemplateLibrary& templates() {
  static const TemplateLibrary lib(std::filesystem::path(PROJECT_SOURCE_DIR) / "config/templates");
  return lib;
}

template <class Backend>
class Services : public orchestrator::testing::DbTest<Backend> {
 protected:
  void SetUp() override {
    orchestrator::testing::DbTest<Backend>::SetUp();
    if (::testing::Test::IsSkipped() || ::testing::Test::HasFatalFailure()) return;
    auto& db = this->store();
    users = std::make_unique<UserService>(db, orchestrator::auth::PasswordParams::minimal());
    workflows = std::make_unique<WorkflowService>(db, templates());
    drafts = std::make_unique<DraftService>(db);
    proposals = std::make_unique<ProposalService>(db);
    audit = std::make_unique<AuditService>(db);
    alice = new_user("alice");
    bob = new_user("bob");
  }

  std::string new_user(const std::string& name) {
    return users->create(name + "-" + core::random_hex(4) + "@Example.com", name, "password-" + name).id;
  }

  /// A workflow with /a.md (3 lines ending with a newline: a final "" under the line model of
  /// core/files.hpp), /b.md, /c.md (no final newline) owned by `owner`.
  WorkflowWithDraft small_workflow(const std::string& owner) {
    CreateWorkflowInput in;
    in.name = "wf";
    in.files = FileMap{{"/a.md", F({"a1", "a2", "a3", ""})}, {"/b.md", F({"b1", "b2", "b3"})}, {"/c.md", F({"c1"})}};
    return workflows->create(owner, in);
  }

  Proposal start(const std::string& actor, const std::string& wf) {
    CreateProposalInput in;
    in.user_prompt = "add a web-search specialist";
    in.thread_id = core::uuid4();
    return proposals->create(actor, wf, in).proposal;
  }

  std::unique_ptr<UserService> users;
  std::unique_ptr<WorkflowService> workflows;
  std::unique_ptr<DraftService> drafts;
  std::unique_ptr<ProposalService> proposals;
  std::unique_ptr<AuditService> audit;
  std::string alice, bob;
};

