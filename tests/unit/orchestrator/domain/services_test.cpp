// Domain services on a real database: SQLite always, PostgreSQL when TEST_PG_URL is set.

#include <atomic>
#include <fstream>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "core/files.hpp"
#include "services_fixture.hpp"

TYPED_TEST_SUITE(Services, orchestrator::testing::Backends, orchestrator::testing::BackendNames);

// ------------------------------------------------------------------ users

// External RS256 identities: (issuer, subject) is linked to one local user; the e-mail claim
// only matters the first time, and links to an existing account only when verified.
TYPED_TEST(Services, ExternalIdentityCreatesOnFirstSightAndStaysLinked) {
  const std::string iss = "https://idp.example.com/";
  const std::string sub = "idp|" + core::random_hex(6);
  const std::string email = "ext-" + core::random_hex(4) + "@Example.com";
  const auto u = this->users->sign_in_external({iss, sub, email, false});  // unverified: still its own new account
  EXPECT_EQ(u.email, UserService::normalize_email(email));
  EXPECT_EQ(this->users->sign_in_external({iss, sub, " " + u.email + " ", false}).id, u.id);
  // The e-mail changes at the provider: the identity stays with its account.
  EXPECT_EQ(this->users->sign_in_external({iss, sub, "renamed-" + core::random_hex(4) + "@example.com", true}).id, u.id);
  EXPECT_EQ(this->users->sign_in_external({iss, sub, "", false}).id, u.id);  // no e-mail needed once linked
  for (const char* pw : {"", "!external-identity", "password-x"})
    EXPECT_THROW(this->users->authenticate(email, pw), UnauthenticatedError) << pw;
  {
    soci::session sql(this->db().pool());
    int n = 0;
    sql << "SELECT COUNT(*) FROM audit_log WHERE action = 'user.create_external' AND subject_id = :s",
        soci::use(u.id), soci::into(n);
    EXPECT_EQ(n, 1);  // recorded once, not on every request
  }
  EXPECT_THROW(this->users->sign_in_external({iss, "idp|new-1", "", true}), UnauthenticatedError);
  EXPECT_THROW(this->users->sign_in_external({iss, "idp|new-2", "not-an-email", true}), UnauthenticatedError);
}

TYPED_TEST(Services, ExternalIdentityLinksToAnExistingAccountOnlyWithAVerifiedEmail) {
  const std::string iss = "https://idp.example.com/";
  const auto carol = this->users->create("carol-" + core::random_hex(4) + "@example.com", "Carol", "s3cret-pass");
  const std::string sub = "idp|" + core::random_hex(6);
  try {
    this->users->sign_in_external({iss, sub, carol.email, false});
    FAIL() << "an unverified e-mail signed in as an existing account";
  } catch (const IdentityLinkError& e) {
    EXPECT_EQ(e.reason(), "email-not-verified");
    EXPECT_EQ(e.http_status(), 403);
    EXPECT_NE(std::string(e.what()).find(carol.email), std::string::npos) << e.what();
  }
  {
    soci::session sql(this->db().pool());
    int n = -1;
    sql << "SELECT COUNT(*) FROM user_identities WHERE user_id = :u", soci::use(carol.id), soci::into(n);
    EXPECT_EQ(n, 0) << "a refused sign-in must not link";
  }
  EXPECT_EQ(this->users->sign_in_external({iss, sub, carol.email, true}).id, carol.id);
  EXPECT_EQ(this->users->sign_in_external({iss, sub, carol.email, false}).id, carol.id);  // linked now
  EXPECT_EQ(this->users->authenticate(carol.email, "s3cret-pass").id, carol.id);     // password still works
  // Another subject of the same provider claiming the address (e.g. reassigned at the provider).
  try {
    this->users->sign_in_external({iss, "idp|other-" + core::random_hex(4), carol.email, true});
    FAIL() << "a second subject of one provider took over a linked account";
  } catch (const IdentityLinkError& e) {
    EXPECT_EQ(e.reason(), "identity-conflict");
  }
  // A second provider may link its verified identity too.
  EXPECT_EQ(this->users->sign_in_external({"https://other-idp.example.org", "x1", carol.email, true}).id, carol.id);
  {
    soci::session sql(this->db().pool());
    int n = 0;
    sql << "SELECT COUNT(*) FROM audit_log WHERE action = 'user.link_external' AND subject_id = :s",
        soci::use(carol.id), soci::into(n);
    EXPECT_EQ(n, 2);
  }
}

TYPED_TEST(Services, ConcurrentFirstSignInsOfOneIdentityLinkOnce) {
  const std::string iss = "https://idp.example.com/";
  const std::string sub = "idp|race-" + core::random_hex(6);
  const std::string email = "race-" + core::random_hex(4) + "@example.com";
  std::vector<std::thread> threads;
  std::vector<std::string> ids(6);
  std::atomic<int> failures{0};
  for (std::size_t i = 0; i < ids.size(); ++i)
    threads.emplace_back([&, i] {
      try {
        ids[i] = this->users->sign_in_external({iss, sub, email, true}).id;
      } catch (const std::exception&) {
        ++failures;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  for (const auto& id : ids) EXPECT_EQ(id, ids[0]);
  soci::session sql(this->db().pool());
  int n = 0;
  sql << "SELECT COUNT(*) FROM users WHERE email = :e", soci::use(email), soci::into(n);
  EXPECT_EQ(n, 1);
}

TYPED_TEST(Services, UsersCreateAndAuthenticate) {
  const std::string email = "Carol-" + core::random_hex(4) + "@Example.COM ";
  const auto u = this->users->create(email, "Carol", "s3cret-pass");
  EXPECT_EQ(u.email, UserService::normalize_email(email));
  EXPECT_TRUE(core::is_uuid(u.id));
  EXPECT_EQ(this->users->authenticate(email, "s3cret-pass").id, u.id);
  EXPECT_THROW(this->users->authenticate(email, "wrong-pass"), UnauthenticatedError);
  EXPECT_THROW(this->users->authenticate("nobody@example.com", "s3cret-pass"), UnauthenticatedError);
  EXPECT_THROW(this->users->create(email, "Carol again", "another-pass"), ConflictError);
  try {
    this->users->create("not-an-email", "x", "long-enough");
    FAIL();
  } catch (const InvalidError& e) {
    EXPECT_EQ(e.field(), "email");
  }
  try {
    this->users->create("x-" + core::random_hex(3) + "@example.com", "x", "short");
    FAIL();
  } catch (const InvalidError& e) {
    EXPECT_EQ(e.field(), "password");
  }
}

// ------------------------------------------------------------------ workflows

TYPED_TEST(Services, WorkflowFromTemplateSeedsDraft) {
  CreateWorkflowInput in;
  in.name = "Briefings";
  in.template_name = "multi-agent";
  const auto w = this->workflows->create(this->alice, in);
  EXPECT_EQ(w.workflow.role, "owner");
  EXPECT_EQ(w.draft.revision, 1);
  EXPECT_TRUE(w.draft.files.count("/definition.json"));
  EXPECT_TRUE(w.draft.files.count("/THE_CAST/Coordinator.md"));
  const auto d = this->drafts->get(this->alice, w.workflow.id);
  EXPECT_EQ(d.id, w.draft.id);
  EXPECT_EQ(d.files.size(), w.draft.files.size());
  EXPECT_EQ(d.files.at("/THE_SPEC/plan.md").content, w.draft.files.at("/THE_SPEC/plan.md").content);
  in.template_name = "no-such-template";
  try {
    this->workflows->create(this->alice, in);
    FAIL();
  } catch (const InvalidError& e) {
    EXPECT_EQ(e.field(), "template");
  }
}

TYPED_TEST(Services, OtherUsersWorkflowIsNotFound) {
  const auto w = this->small_workflow(this->alice);
  EXPECT_THROW(this->workflows->get(this->bob, w.workflow.id), NotFoundError);
  EXPECT_THROW(this->drafts->get(this->bob, w.workflow.id), NotFoundError);
  EXPECT_THROW(this->drafts->put_files(this->bob, w.workflow.id, {}, 1), NotFoundError);
  EXPECT_THROW(this->drafts->remove(this->bob, w.draft.id), NotFoundError);
  EXPECT_THROW(this->workflows->list_versions(this->bob, w.workflow.id), NotFoundError);
  EXPECT_THROW(this->workflows->publish(this->bob, w.workflow.id), NotFoundError);
  EXPECT_THROW(this->start(this->bob, w.workflow.id), NotFoundError);
  EXPECT_THROW(this->audit->list(this->bob, w.workflow.id), NotFoundError);
  EXPECT_TRUE(this->workflows->list(this->bob).items.empty());
  try {
    this->workflows->get(this->bob, w.workflow.id);
  } catch (const Error& e) {
    EXPECT_EQ(e.http_status(), 404);
  }
}

TYPED_TEST(Services, ViewerSeesButCannotEdit) {
  const auto w = this->small_workflow(this->alice);
  EXPECT_THROW(this->workflows->set_member(this->bob, w.workflow.id, this->bob, "editor"), NotFoundError);
  this->workflows->set_member(this->alice, w.workflow.id, this->bob, "viewer");
  EXPECT_EQ(this->workflows->get(this->bob, w.workflow.id).role, "viewer");
  EXPECT_THROW(this->drafts->put_files(this->bob, w.workflow.id, {}, 1), ForbiddenError);
  EXPECT_THROW(this->start(this->bob, w.workflow.id), ForbiddenError);
  this->workflows->set_member(this->alice, w.workflow.id, this->bob, "editor");
  EXPECT_NO_THROW(this->drafts->put_files(this->bob, w.workflow.id, w.draft.files, 1));
}

TYPED_TEST(Services, WorkflowListPaginates) {
  const auto carol = this->new_user("carol");
  std::set<std::string> created;
  for (int i = 0; i < 5; ++i) created.insert(this->small_workflow(carol).workflow.id);
  std::set<std::string> seen;
  PageRequest req{2, ""};
  int pages = 0;
  while (true) {
    const auto page = this->workflows->list(carol, req);
    ++pages;
    EXPECT_LE(page.items.size(), 2u);
    for (const auto& w : page.items) EXPECT_TRUE(seen.insert(w.id).second) << "duplicate " << w.id;
    if (!page.next_cursor) break;
    req.cursor = *page.next_cursor;
  }
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen, created);
  EXPECT_EQ(this->workflows->list(carol).items.size(), 5u);
  EXPECT_THROW(this->workflows->list(carol, PageRequest{0, ""}), InvalidError);
  EXPECT_THROW(this->workflows->list(carol, PageRequest{201, ""}), InvalidError);
  EXPECT_THROW(this->workflows->list(carol, PageRequest{10, "%%%"}), InvalidError);
}

TYPED_TEST(Services, PublishVersionsAndDeploy) {
  CreateWorkflowInput in;
  in.name = "Research";
  in.template_name = "single-agent";
  const auto w = this->workflows->create(this->alice, in);
  EXPECT_THROW(this->workflows->deploy(this->alice, w.workflow.id), PreconditionError);
  const auto v1 = this->workflows->publish(this->alice, w.workflow.id);
  EXPECT_EQ(v1.info.number, 1);
  auto files = w.draft.files;
  files["/notes.md"] = F({"note"});
  this->drafts->put_files(this->alice, w.workflow.id, files, 1);
  const auto v2 = this->workflows->publish(this->alice, w.workflow.id);
  EXPECT_EQ(v2.info.number, 2);
  EXPECT_TRUE(v2.files.count("/notes.md"));
  EXPECT_FALSE(this->workflows->get_version(this->alice, w.workflow.id, 1).files.count("/notes.md"));
  // base_revision is compared inside publish's transaction: a stale one publishes nothing.
  try {
    this->workflows->publish(this->alice, w.workflow.id, 1);
    ADD_FAILURE() << "publish with a stale expected revision must throw ConflictError";
  } catch (const ConflictError& e) {
    EXPECT_EQ(e.details()["current_revision"], 2);
  }
  EXPECT_EQ(this->workflows->list_versions(this->alice, w.workflow.id).items.size(), 2u);
  // Publishing the unchanged draft again creates nothing: the latest version comes back.
  const auto same = this->workflows->publish(this->alice, w.workflow.id, 2);
  EXPECT_EQ(same.info.number, 2);
  EXPECT_FALSE(same.created);
  this->drafts->patch_files(this->alice, w.workflow.id, {{"/notes.md", F({"note", "more"})}}, {}, 2);
  EXPECT_EQ(this->workflows->publish(this->alice, w.workflow.id, 3).info.number, 3);
  EXPECT_THROW(this->workflows->publish(this->bob, w.workflow.id, 2), NotFoundError);
  const auto list = this->workflows->list_versions(this->alice, w.workflow.id);
  ASSERT_EQ(list.items.size(), 3u);
  EXPECT_EQ(list.items[0].number, 3);
  const auto dep = this->workflows->deploy(this->alice, w.workflow.id);
  EXPECT_EQ(dep.version.number, 3);
  EXPECT_EQ(dep.definition["graph"]["entryPoint"], "ResearchAssistant");
  // Deleting the draft then reading it again recreates it from the latest version.
  this->drafts->remove(this->alice, w.draft.id);
  const auto fresh = this->drafts->get(this->alice, w.workflow.id);
  EXPECT_NE(fresh.id, w.draft.id);
  EXPECT_EQ(fresh.revision, 1);
  EXPECT_TRUE(fresh.files.count("/notes.md"));
}

// ------------------------------------------------------------------ drafts

TYPED_TEST(Services, DraftRevisionConflict) {
  const auto w = this->small_workflow(this->alice);
  auto files = w.draft.files;
  files["/a.md"] = F({"a1", "changed", "a3"});
  files.erase("/c.md");
  const auto d2 = this->drafts->put_files(this->alice, w.workflow.id, files, 1);
  EXPECT_EQ(d2.revision, 2);
  EXPECT_FALSE(d2.files.count("/c.md"));
  EXPECT_EQ(d2.files.at("/a.md").content[1], "changed");
  EXPECT_EQ(d2.files.at("/b.md").modified_at, w.draft.files.at("/b.md").modified_at);  // untouched
  try {
    this->drafts->put_files(this->alice, w.workflow.id, w.draft.files, 1);  // stale
    FAIL();
  } catch (const ConflictError& e) {
    EXPECT_EQ(e.details()["current_revision"], 2);
    EXPECT_EQ(e.http_status(), 409);
  }
  EXPECT_EQ(this->drafts->get(this->alice, w.workflow.id).files.at("/a.md").content[1], "changed");
  const auto d3 = this->drafts->patch_files(this->alice, w.workflow.id, {{"/new.md", F({"n"})}}, {"/b.md"}, 2);
  EXPECT_EQ(d3.revision, 3);
  EXPECT_TRUE(d3.files.count("/new.md"));
  EXPECT_FALSE(d3.files.count("/b.md"));
  EXPECT_TRUE(d3.files.count("/a.md"));
}

TYPED_TEST(Services, DraftEditsAndApprovalsKeepTheSharedTotals) {
  // core/files.hpp totals hold for the draft as it will be, checked before anything is written.
  const auto w = this->small_workflow(this->alice);  // 3 files
  const auto p = this->start(this->alice, w.workflow.id);
  const core::files::Limits limits;
  FileMap many;
  for (std::size_t i = 0; i + 3 < limits.max_files; ++i) many["/f" + std::to_string(i)] = F({"x"});
  const auto full = this->drafts->patch_files(this->alice, w.workflow.id, many, {}, 1);
  EXPECT_EQ(full.files.size(), limits.max_files);
  try {
    this->drafts->patch_files(this->alice, w.workflow.id, {{"/one-more.md", F({"x"})}}, {}, 2);
    FAIL() << "one file over the limit was accepted";
  } catch (const InvalidError& e) {
    EXPECT_EQ(e.field(), "files");
    EXPECT_NE(std::string(e.what()).find("limit is 500 files"), std::string::npos) << e.what();
  }
  // Replacing a file or deleting one to make room is fine.
  EXPECT_NO_THROW(this->drafts->patch_files(this->alice, w.workflow.id, {{"/one-more.md", F({"x"})}}, {"/f0"}, 2));
  // A proposal adding a file would take the draft over the limit: refused, nothing applied.
  FileMap gen = p.base_files;
  gen["/added.md"] = F({"new"});
  this->proposals->finalise(p.thread_id, gen);
  EXPECT_THROW(this->proposals->approve(this->alice, p.id), PreconditionError);
  const auto d = this->drafts->get(this->alice, w.workflow.id);
  EXPECT_EQ(d.revision, 3);
  EXPECT_FALSE(d.files.count("/added.md"));
  EXPECT_EQ(this->proposals->get(this->alice, p.id).proposal.status, ProposalStatus::completed);
}

TYPED_TEST(Services, WorkflowNamesRefuseControlCharacters) {
  CreateWorkflowInput in;
  in.name = std::string("evil\0name", 9);
  try {
    this->workflows->create(this->alice, in);
    FAIL();
  } catch (const InvalidError& e) {
    EXPECT_EQ(e.field(), "name");
  }
  in.name = "fine";
  in.description = std::string("a\0b", 3);
  try {
    this->workflows->create(this->alice, in);
    FAIL();
  } catch (const InvalidError& e) {
    EXPECT_EQ(e.field(), "description");
  }
}

// ------------------------------------------------------------------ proposals

TYPED_TEST(Services, ProposalLifecycleApprove) {
  const auto w = this->small_workflow(this->alice);
  const auto p = this->start(this->alice, w.workflow.id);
  EXPECT_EQ(p.status, ProposalStatus::processing);
  EXPECT_EQ(p.base_files.size(), 3u);
  EXPECT_THROW(this->proposals->get(this->bob, p.id), NotFoundError);
  EXPECT_THROW(this->proposals->get_by_thread(this->bob, p.thread_id), NotFoundError);
  EXPECT_THROW(this->proposals->approve(this->bob, p.id), NotFoundError);
  EXPECT_THROW(this->proposals->reject(this->bob, p.id), NotFoundError);
  EXPECT_EQ(this->proposals->get_by_thread(this->alice, p.thread_id).id, p.id);
  EXPECT_EQ(this->proposals->watch(this->alice, p.thread_id), std::optional<std::string>(p.traceparent));
  EXPECT_FALSE(this->proposals->watch(this->bob, p.thread_id));
  EXPECT_FALSE(this->proposals->watch(this->alice, "no-such-thread"));
  EXPECT_THROW(this->proposals->approve(this->alice, p.id), PreconditionError);  // still processing
  EXPECT_THROW(this->proposals->reject(this->alice, p.id), PreconditionError);
  EXPECT_THROW(this->proposals->diff(this->alice, p.id), PreconditionError);

  FileMap gen = p.base_files;
  gen["/a.md"] = F({"a1", "A2", "a3", "a4", ""});
  gen["/d.md"] = F({"new", ""});
  gen.erase("/c.md");
  const auto r1 = this->proposals->finalise(p.thread_id, gen);
  EXPECT_TRUE(r1.changed);
  EXPECT_EQ(r1.proposal.status, ProposalStatus::completed);
  // Idempotent: a second finalise (and a late failure) change nothing.
  FileMap other{{"/zzz.md", F({"late"})}};
  const auto r2 = this->proposals->finalise(p.thread_id, other);
  EXPECT_FALSE(r2.changed);
  EXPECT_FALSE(r2.proposal.generated_files) << "finalise returns the proposal without its file trees";
  const auto kept = this->proposals->get(this->alice, p.id).proposal;
  ASSERT_TRUE(kept.generated_files);
  EXPECT_TRUE(kept.generated_files->count("/d.md"));
  EXPECT_FALSE(kept.generated_files->count("/zzz.md"));
  EXPECT_FALSE(this->proposals->finalise_failed(p.thread_id, "boom").changed);
  EXPECT_THROW(this->proposals->finalise("no-such-thread", gen), NotFoundError);
  EXPECT_THROW(this->proposals->cancel(this->alice, p.id), PreconditionError);

  const auto detail = this->proposals->get(this->alice, p.id);
  ASSERT_EQ(detail.changes.size(), 4u);
  EXPECT_EQ(detail.changes[0].path, "/a.md");
  EXPECT_EQ(detail.changes[0].kind, FileChange::modified);
  EXPECT_EQ(detail.changes[0].lines_added, 2);
  EXPECT_EQ(detail.changes[0].lines_removed, 1);
  EXPECT_EQ(detail.changes[1].kind, FileChange::unchanged);
  EXPECT_EQ(detail.changes[2].kind, FileChange::unchanged);  // absent from generated: not a deletion
  EXPECT_EQ(detail.changes[3].kind, FileChange::added);

  EXPECT_EQ(this->proposals->diff(this->alice, p.id),
            "--- a/a.md\n+++ b/a.md\n@@ -1,3 +1,4 @@\n a1\n-a2\n+A2\n a3\n+a4\n"
            "--- /dev/null\n+++ b/d.md\n@@ -0,0 +1 @@\n+new\n");

  const auto ar = this->proposals->approve(this->alice, p.id);
  EXPECT_EQ(ar.proposal.status, ProposalStatus::approved);
  EXPECT_EQ(ar.proposal.resolved_by_user_id, this->alice);
  EXPECT_TRUE(ar.proposal.engine_cleanup_pending);
  EXPECT_EQ(ar.draft.revision, 2);
  EXPECT_EQ(ar.draft.files.at("/a.md").content.size(), 5u);
  EXPECT_TRUE(ar.draft.files.count("/d.md"));
  EXPECT_TRUE(ar.draft.files.count("/c.md"));
  EXPECT_EQ(ar.applied_paths, (std::vector<std::string>{"/a.md", "/d.md"}));
  // Double approve / reject after approve.
  EXPECT_THROW(this->proposals->approve(this->alice, p.id), PreconditionError);
  try {
    this->proposals->reject(this->alice, p.id);
    FAIL();
  } catch (const PreconditionError& e) {
    EXPECT_EQ(e.details()["current_status"], "approved");
  }
  // Cleanup bookkeeping.
  bool listed = false;
  for (const auto& c : this->proposals->list_pending_cleanup(1000)) listed = listed || c.thread_id == p.thread_id;
  EXPECT_TRUE(listed);
  this->proposals->mark_cleaned(p.id);
  for (const auto& c : this->proposals->list_pending_cleanup(1000)) EXPECT_NE(c.thread_id, p.thread_id);
  // Audit trail.
  std::set<std::string> actions;
  for (const auto& a : this->audit->list(this->alice, w.workflow.id, PageRequest{200, ""}).items) actions.insert(a.action);
  for (const char* a : {"workflow.create", "proposal.create", "proposal.completed", "proposal.approve"})
    EXPECT_TRUE(actions.count(a)) << a;
}

// A long engine error cut at 4000 bytes must not split a multi-byte character, and
// invalid UTF-8 from the engine must not make the store (or the audit JSON) refuse it:
// otherwise finalise_failed rolls back on every attempt and the proposal stays processing.
TYPED_TEST(Services, FinaliseFailedStoresLongAndInvalidUtf8Errors) {
  const auto w = this->small_workflow(this->alice);
  const std::string euro = "\xE2\x82\xAC";  // 3 bytes
  std::string error(3999, 'x');                 // byte 4000 falls inside the first euro sign
  for (int i = 0; i < 10; ++i) error += euro;
  const auto p = this->start(this->alice, w.workflow.id);
  const auto f = this->proposals->finalise_failed(p.thread_id, error);
  EXPECT_TRUE(f.changed);
  EXPECT_EQ(f.proposal.status, ProposalStatus::failed);
  ASSERT_TRUE(f.proposal.error.has_value());
  EXPECT_EQ(*f.proposal.error, std::string(3999, 'x'));

  const auto q = this->start(this->alice, w.workflow.id);
  const auto g = this->proposals->finalise_failed(q.thread_id, "bad \xFF\xFE bytes \xC3");
  EXPECT_TRUE(g.changed);
  EXPECT_EQ(g.proposal.status, ProposalStatus::failed);
  EXPECT_EQ(g.proposal.error, "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes \xEF\xBF\xBD");
  bool audited = false;
  for (const auto& a : this->audit->list(this->alice, w.workflow.id, PageRequest{200, ""}).items)
    audited = audited || (a.action == "proposal.failed" && a.subject_id == q.id);
  EXPECT_TRUE(audited);
}

TYPED_TEST(Services, ProposalFailedThenRejectedAndCancel) {
  const auto w = this->small_workflow(this->alice);
  const auto p = this->start(this->alice, w.workflow.id);
  const auto f = this->proposals->finalise_failed(p.thread_id, "model unreachable");
  EXPECT_TRUE(f.changed);
  EXPECT_EQ(f.proposal.status, ProposalStatus::failed);
  EXPECT_EQ(f.proposal.error, "model unreachable");
  EXPECT_FALSE(this->proposals->finalise(p.thread_id, {}).changed);
  EXPECT_THROW(this->proposals->approve(this->alice, p.id), PreconditionError);
  EXPECT_EQ(this->proposals->reject(this->alice, p.id, "engine error").status, ProposalStatus::rejected);
  EXPECT_THROW(this->proposals->reject(this->alice, p.id), PreconditionError);

  const auto q = this->start(this->alice, w.workflow.id);
  EXPECT_EQ(this->proposals->cancel(this->alice, q.id).status, ProposalStatus::cancelled);
  EXPECT_FALSE(this->proposals->finalise(q.thread_id, {}).changed);
  EXPECT_THROW(this->proposals->cancel(this->alice, q.id), PreconditionError);
  // Duplicate thread ids are refused.
  CreateProposalInput in;
  in.user_prompt = "again";
  in.thread_id = q.thread_id;
  EXPECT_THROW(this->proposals->create(this->alice, w.workflow.id, in), ConflictError);
  in.thread_id = "bad thread id!";
  EXPECT_THROW(this->proposals->create(this->alice, w.workflow.id, in), InvalidError);
  in.thread_id = core::uuid4();
  in.user_prompt = "   ";
  EXPECT_THROW(this->proposals->create(this->alice, w.workflow.id, in), InvalidError);
}

TYPED_TEST(Services, ThreeWayConflictNamesPathsAndAppliesNothing) {
  const auto w = this->small_workflow(this->alice);
  const auto p = this->start(this->alice, w.workflow.id);
  // Meanwhile the user edits /a.md and /b.md by hand.
  auto files = w.draft.files;
  files["/a.md"] = F({"a1", "manual", "a3"});
  files["/b.md"] = F({"b1", "b2", "b3", "b4"});
  this->drafts->put_files(this->alice, w.workflow.id, files, 1);
  // The proposal changes /a.md (conflict), /b.md identically (no conflict) and /c.md (clean).
  FileMap gen = p.base_files;
  gen["/a.md"] = F({"a1", "ai", "a3"});
  gen["/b.md"] = F({"b1", "b2", "b3", "b4"});
  gen["/c.md"] = F({"c1", "c2"});
  this->proposals->finalise(p.thread_id, gen);
  try {
    this->proposals->approve(this->alice, p.id);
    FAIL() << "expected a conflict";
  } catch (const ConflictError& e) {
    EXPECT_EQ(e.paths(), std::vector<std::string>{"/a.md"});
    EXPECT_EQ(e.http_status(), 409);
    EXPECT_NE(std::string(e.what()).find("/a.md"), std::string::npos);
  }
  const auto d = this->drafts->get(this->alice, w.workflow.id);
  EXPECT_EQ(d.revision, 2);  // nothing applied, no revision bump
  EXPECT_EQ(d.files.at("/a.md").content[1], "manual");
  EXPECT_EQ(d.files.at("/c.md").content.size(), 1u);
  EXPECT_EQ(this->proposals->get(this->alice, p.id).proposal.status, ProposalStatus::completed);

  // A proposal touching only files the user did not change merges cleanly.
  const auto q = this->start(this->alice, w.workflow.id);
  FileMap gen2 = q.base_files;
  gen2["/c.md"] = F({"c1", "from q"});
  this->proposals->finalise(q.thread_id, gen2);
  // User edits /a.md again after q started: no overlap with q.
  auto cur = this->drafts->get(this->alice, w.workflow.id);
  cur.files["/a.md"] = F({"a1", "manual 2", "a3"});
  this->drafts->put_files(this->alice, w.workflow.id, cur.files, cur.revision);
  const auto r = this->proposals->approve(this->alice, q.id);
  EXPECT_EQ(r.draft.files.at("/c.md").content[1], "from q");
  EXPECT_EQ(r.draft.files.at("/a.md").content[1], "manual 2");
  // The draft cannot be deleted while a proposal on it awaits review.
  const auto open = this->start(this->alice, w.workflow.id);
  EXPECT_THROW(this->drafts->remove(this->alice, w.draft.id), PreconditionError);
  this->proposals->cancel(this->alice, open.id);
  EXPECT_THROW(this->drafts->remove(this->alice, w.draft.id), PreconditionError);  // p is still completed
  this->proposals->reject(this->alice, p.id, "conflicts with manual edits");
  EXPECT_NO_THROW(this->drafts->remove(this->alice, w.draft.id));
}

TYPED_TEST(Services, EmptyGeneratedFilesChangeNothing) {
  const auto w = this->small_workflow(this->alice);
  const auto p = this->start(this->alice, w.workflow.id);
  this->proposals->finalise(p.thread_id, {});
  EXPECT_TRUE(this->proposals->get(this->alice, p.id).changes.empty());
  EXPECT_EQ(this->proposals->diff(this->alice, p.id), "");
  const auto r = this->proposals->approve(this->alice, p.id);
  EXPECT_EQ(r.draft.files.size(), 3u);
  EXPECT_TRUE(r.applied_paths.empty());
}

TYPED_TEST(Services, RacingApproveRejectExactlyOneWins) {
  for (int round = 0; round < 3; ++round) {
    const auto w = this->small_workflow(this->alice);
    const auto p = this->start(this->alice, w.workflow.id);
    FileMap gen = p.base_files;
    gen["/race.md"] = F({"r"});
    this->proposals->finalise(p.thread_id, gen);
    std::atomic<int> wins{0}, approve_wins{0}, lost{0}, other{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i) {
      threads.emplace_back([&, i] {
        while (!go.load()) std::this_thread::yield();
        try {
          if (i % 2 == 0) {
            this->proposals->approve(this->alice, p.id);
            ++approve_wins;
          } else {
            this->proposals->reject(this->alice, p.id);
          }
          ++wins;
        } catch (const PreconditionError&) {
          ++lost;
        } catch (const std::exception& e) {
          ++other;
          ADD_FAILURE() << e.what();
        }
      });
    }
    go = true;
    for (auto& t : threads) t.join();
    EXPECT_EQ(wins.load(), 1);
    EXPECT_EQ(lost.load(), 7);
    EXPECT_EQ(other.load(), 0);
    const auto final = this->proposals->get(this->alice, p.id).proposal;
    const auto d = this->drafts->get(this->alice, w.workflow.id);
    if (approve_wins == 1) {
      EXPECT_EQ(final.status, ProposalStatus::approved);
      EXPECT_TRUE(d.files.count("/race.md"));
      EXPECT_EQ(d.revision, 2);
    } else {
      EXPECT_EQ(final.status, ProposalStatus::rejected);
      EXPECT_FALSE(d.files.count("/race.md"));
      EXPECT_EQ(d.revision, 1);
    }
    int decisions = 0;
    for (const auto& a : this->audit->list(this->alice, w.workflow.id, PageRequest{200, ""}).items)
      decisions += a.action == "proposal.approve" || a.action == "proposal.reject";
    EXPECT_EQ(decisions, 1);
  }
}

TYPED_TEST(Services, ProposalListPaginatesAndHidesOthers) {
  const auto w = this->small_workflow(this->alice);
  this->workflows->set_member(this->alice, w.workflow.id, this->bob, "editor");
  std::set<std::string> mine;
  for (int i = 0; i < 3; ++i) mine.insert(this->start(this->alice, w.workflow.id).id);
  const auto bobs = this->start(this->bob, w.workflow.id);  // alice is owner: she gets reviewer access
  mine.insert(bobs.id);
  const auto p1 = this->proposals->list(this->alice, w.workflow.id, PageRequest{3, ""});
  ASSERT_EQ(p1.items.size(), 3u);
  ASSERT_TRUE(p1.next_cursor);
  const auto p2 = this->proposals->list(this->alice, w.workflow.id, PageRequest{3, *p1.next_cursor});
  ASSERT_EQ(p2.items.size(), 1u);
  EXPECT_FALSE(p2.next_cursor);
  std::set<std::string> seen;
  for (const auto& p : p1.items) seen.insert(p.id);
  for (const auto& p : p2.items) seen.insert(p.id);
  EXPECT_EQ(seen, mine);
  // Bob only sees his own proposal.
  const auto b = this->proposals->list(this->bob, w.workflow.id);
  ASSERT_EQ(b.items.size(), 1u);
  EXPECT_EQ(b.items[0].id, bobs.id);
  EXPECT_THROW(this->proposals->get(this->bob, *seen.begin() == bobs.id ? *seen.rbegin() : *seen.begin()), NotFoundError);
  for (const auto& id : mine) {
    try {
      this->proposals->cancel(this->alice, id);
    } catch (const PreconditionError&) {
    }
  }
}

// Finishing a proposal clears its tracker lease in the same update (the tracker does not
// release it with a write of its own afterwards).
TYPED_TEST(Services, FinishingAProposalClearsItsLease) {
  const auto w = this->small_workflow(this->alice);
  const auto done = this->start(this->alice, w.workflow.id);
  const auto failed = this->start(this->alice, w.workflow.id);
  for (const auto* p : {&done, &failed}) {
    ASSERT_TRUE(this->proposals->try_acquire_lease(p->id, "replica-a", 30s));
    EXPECT_EQ(this->proposals->get(this->alice, p->id).proposal.lease_owner.value_or(""), "replica-a");
  }
  ASSERT_TRUE(this->proposals->finalise(done.thread_id, done.base_files).changed);
  ASSERT_TRUE(this->proposals->finalise_failed(failed.thread_id, "boom").changed);
  for (const auto* p : {&done, &failed}) {
    const auto after = this->proposals->get(this->alice, p->id).proposal;
    EXPECT_FALSE(after.lease_owner) << p->id;
    EXPECT_FALSE(after.lease_expires_at) << p->id;
  }
}

TYPED_TEST(Services, FailStaleAndLeases) {
  const auto w = this->small_workflow(this->alice);
  const auto p = this->start(this->alice, w.workflow.id);
  // Leases: one owner at a time.
  EXPECT_TRUE(this->proposals->try_acquire_lease(p.id, "replica-a", 30s));
  EXPECT_TRUE(this->proposals->try_acquire_lease(p.id, "replica-a", 30s));  // re-entrant
  EXPECT_FALSE(this->proposals->try_acquire_lease(p.id, "replica-b", 30s));
  EXPECT_TRUE(this->proposals->renew_lease(p.id, "replica-a", 30s));
  EXPECT_FALSE(this->proposals->renew_lease(p.id, "replica-b", 30s));
  this->proposals->release_lease(p.id, "replica-a");
  EXPECT_TRUE(this->proposals->try_acquire_lease(p.id, "replica-b", -1s));  // already expired
  EXPECT_TRUE(this->proposals->try_acquire_lease(p.id, "replica-a", 30s));  // takes over an expired lease
  bool listed = false;
  for (const auto& q : this->proposals->list_processing()) listed = listed || q.id == p.id;
  EXPECT_TRUE(listed);
  // TTL not reached: untouched.
  for (const auto& t : this->proposals->fail_stale(24h)) EXPECT_NE(t, p.thread_id);
  EXPECT_EQ(this->proposals->get(this->alice, p.id).proposal.status, ProposalStatus::processing);
  std::this_thread::sleep_for(5ms);
  const auto threads = this->proposals->fail_stale(0s);
  EXPECT_NE(std::find(threads.begin(), threads.end(), p.thread_id), threads.end());
  const auto after = this->proposals->get(this->alice, p.id).proposal;
  EXPECT_EQ(after.status, ProposalStatus::failed);
  EXPECT_TRUE(after.engine_cleanup_pending);
  EXPECT_FALSE(after.lease_owner);
  EXPECT_TRUE(after.error && !after.error->empty());
  EXPECT_FALSE(this->proposals->renew_lease(p.id, "replica-a", 30s));
  for (const auto& t : this->proposals->fail_stale(0s)) EXPECT_NE(t, p.thread_id);  // only once
  for (const auto& q : this->proposals->list_processing()) EXPECT_NE(q.id, p.id);
}

// Proposals left failed (never rejected) get their engine thread deleted after the orphan TTL,
// once; decided proposals are not touched (their deletion was scheduled when decided).
TYPED_TEST(Services, FailedProposalsThreadsAreCleanedAfterTheTtlOnce) {
  const auto w = this->small_workflow(this->alice);
  const auto failed = this->start(this->alice, w.workflow.id);
  ASSERT_TRUE(this->proposals->finalise_failed(failed.thread_id, "model unreachable").changed);
  EXPECT_FALSE(this->proposals->get(this->alice, failed.id).proposal.engine_cleanup_pending);
  const auto rejected = this->start(this->alice, w.workflow.id);
  ASSERT_TRUE(this->proposals->finalise_failed(rejected.thread_id, "x").changed);
  this->proposals->reject(this->alice, rejected.id);
  const auto contains = [](const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end();
  };
  EXPECT_FALSE(contains(this->proposals->schedule_failed_cleanup(24h, 1000), failed.thread_id));  // TTL not reached
  std::this_thread::sleep_for(5ms);
  const auto scheduled = this->proposals->schedule_failed_cleanup(0s, 1000);
  EXPECT_TRUE(contains(scheduled, failed.thread_id));
  EXPECT_FALSE(contains(scheduled, rejected.thread_id));
  const auto after = this->proposals->get(this->alice, failed.id).proposal;
  EXPECT_EQ(after.status, ProposalStatus::failed);  // still failed: a person may still reject it
  EXPECT_TRUE(after.engine_cleanup_pending);
  bool listed = false;
  for (const auto& c : this->proposals->list_pending_cleanup(1000)) listed = listed || c.thread_id == failed.thread_id;
  EXPECT_TRUE(listed);
  EXPECT_FALSE(contains(this->proposals->schedule_failed_cleanup(0s, 1000), failed.thread_id));  // pending already
  this->proposals->mark_cleaned(failed.id);
  EXPECT_FALSE(contains(this->proposals->schedule_failed_cleanup(0s, 1000), failed.thread_id));  // deleted: never again
  // Rejecting it later schedules the deletion again, which the engine answers with 404 (done).
  EXPECT_EQ(this->proposals->reject(this->alice, failed.id).status, ProposalStatus::rejected);
}

// At most N refinements per user in `processing`, counted in the database.
TYPED_TEST(Services, ConcurrentRunCapCountsProcessingProposalsPerUser) {
  ProposalService capped(this->store(), ProposalLimits{2});
  const auto w = this->small_workflow(this->alice);
  const auto start = [&](const std::string& actor, const std::string& wf) {
    CreateProposalInput in;
    in.user_prompt = "refine";
    in.thread_id = core::uuid4();
    return capped.create(actor, wf, in).proposal;
  };
  const auto a = start(this->alice, w.workflow.id);
  start(this->alice, w.workflow.id);
  try {
    start(this->alice, w.workflow.id);
    FAIL() << "a third refinement started";
  } catch (const LimitExceededError& e) {
    EXPECT_EQ(e.http_status(), 429);
    EXPECT_EQ(e.limit(), 2);
    EXPECT_EQ(e.policy(), "concurrent-runs");
    EXPECT_GE(e.retry_after(), 1);
    EXPECT_EQ(e.details()["in_progress"], 2);
    EXPECT_EQ(e.details()["kind"], "refinement");
  }
  const auto bw = this->small_workflow(this->bob);
  start(this->bob, bw.workflow.id);  // per user
  ASSERT_TRUE(capped.finalise(a.thread_id, {}).changed);
  start(this->alice, w.workflow.id);  // a slot came free
  EXPECT_THROW(start(this->alice, w.workflow.id), LimitExceededError);
  // The refused attempts recorded nothing.
  long long processing = 0;
  for (const auto& p : capped.list(this->alice, w.workflow.id, PageRequest{200, ""}).items)
    processing += p.status == ProposalStatus::processing ? 1 : 0;
  EXPECT_EQ(processing, 2);
  ProposalService uncapped(this->store());
  CreateProposalInput in;
  in.user_prompt = "refine";
  in.thread_id = core::uuid4();
  EXPECT_NO_THROW(uncapped.create(this->alice, w.workflow.id, in));  // no cap configured
}

TYPED_TEST(Services, ConcurrentRunCapHoldsUnderRacingStarts) {
  ProposalService capped(this->store(), ProposalLimits{3});
  const std::string carol = this->new_user("carol");
  const auto w = this->small_workflow(carol);
  std::atomic<int> started{0}, refused{0}, other{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&] {
      CreateProposalInput in;
      in.user_prompt = "refine";
      in.thread_id = core::uuid4();
      try {
        capped.create(carol, w.workflow.id, in);
        ++started;
      } catch (const LimitExceededError&) {
        ++refused;
      } catch (const std::exception&) {
        ++other;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(started.load(), 3);
  EXPECT_EQ(refused.load(), 5);
  EXPECT_EQ(other.load(), 0);
}

TYPED_TEST(Services, LeasesRenewInOneStatementAndClaimableListsFreeAndExpired) {
  const auto w = this->small_workflow(this->alice);
  const auto mine = this->start(this->alice, w.workflow.id);
  const auto theirs = this->start(this->alice, w.workflow.id);
  const auto dead = this->start(this->alice, w.workflow.id);
  const auto free = this->start(this->alice, w.workflow.id);
  ASSERT_TRUE(this->proposals->try_acquire_lease(mine.id, "replica-a", 30s));
  ASSERT_TRUE(this->proposals->try_acquire_lease(theirs.id, "replica-b", 30s));
  ASSERT_TRUE(this->proposals->try_acquire_lease(dead.id, "replica-c", -1s));  // expired: a dead replica
  const auto held = this->proposals->renew_leases("replica-a", 60s);
  EXPECT_EQ(held, std::vector<std::string>{mine.id});
  EXPECT_TRUE(this->proposals->renew_leases("nobody", 60s).empty());
  // Earlier tests of the suite share the database and leave processing proposals of their own:
  // only this test's four are compared.
  const std::set<std::string> ours{mine.id, theirs.id, dead.id, free.id};
  std::set<std::string> claimable;
  for (const auto& c : this->proposals->list_claimable("replica-a"))
    if (ours.count(c.proposal_id)) claimable.insert(c.proposal_id);
  EXPECT_EQ(claimable, (std::set<std::string>{mine.id, dead.id, free.id}));
  // A resolved proposal is no longer renewed: its tracker learns it from the renewal's answer.
  this->proposals->cancel(this->alice, mine.id);
  EXPECT_TRUE(this->proposals->renew_leases("replica-a", 60s).empty());
}

// The replica that records a proposal holds its tracker lease from the start: while it invokes
// the engine, another replica's sweeper must not take the proposal over (the engine does not
// know the thread yet, and the proposal would be failed as gone).
TYPED_TEST(Services, AProposalRecordedWithALeaseIsLeftToItsReplica) {
  const auto w = this->small_workflow(this->alice);
  CreateProposalInput in;
  in.user_prompt = "add a web-search specialist";
  in.thread_id = core::uuid4();
  in.lease_owner = "replica-a";
  in.lease_ttl = 30s;
  const auto p = this->proposals->create(this->alice, w.workflow.id, in).proposal;
  const auto unleased = this->start(this->alice, w.workflow.id);
  EXPECT_EQ(this->proposals->get(this->alice, p.id).proposal.lease_owner, std::optional<std::string>("replica-a"));
  std::set<std::string> for_b, for_a;
  for (const auto& c : this->proposals->list_claimable("replica-b")) for_b.insert(c.proposal_id);
  for (const auto& c : this->proposals->list_claimable("replica-a")) for_a.insert(c.proposal_id);
  EXPECT_FALSE(for_b.count(p.id));
  EXPECT_TRUE(for_b.count(unleased.id));
  EXPECT_TRUE(for_a.count(p.id));
  EXPECT_TRUE(for_a.count(unleased.id));
  EXPECT_FALSE(this->proposals->try_acquire_lease(p.id, "replica-b", 30s));
  EXPECT_TRUE(this->proposals->try_acquire_lease(p.id, "replica-a", 30s));  // its own tracker takes it
  EXPECT_EQ(this->proposals->renew_leases("replica-a", 60s), std::vector<std::string>{p.id});
  // Once the recording replica is gone its lease expires, and another takes over.
  in.thread_id = core::uuid4();
  in.lease_ttl = 0s;  // rounded up to 1 s
  const auto short_lived = this->proposals->create(this->alice, w.workflow.id, in).proposal;
  EXPECT_FALSE(this->proposals->try_acquire_lease(short_lived.id, "replica-b", 30s));
  std::this_thread::sleep_for(2100ms);
  EXPECT_TRUE(this->proposals->try_acquire_lease(short_lived.id, "replica-b", 30s));
}

TYPED_TEST(Services, UnreachableFailureCanBeRestoredOnceOthersCannot) {
  const auto w = this->small_workflow(this->alice);
  const auto unsure = this->start(this->alice, w.workflow.id);
  const auto final_fail = this->start(this->alice, w.workflow.id);
  ASSERT_TRUE(this->proposals->finalise_failed(unsure.thread_id, "engine unreachable", FailureKind::engine_unreachable)
                  .changed);
  ASSERT_TRUE(this->proposals->finalise_failed(final_fail.thread_id, "model error").changed);
  EXPECT_EQ(this->proposals->get(this->alice, final_fail.id).proposal.failure_kind.value_or(""), "engine_failed");
  const auto listed = this->proposals->list_unreachable_failures();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].proposal_id, unsure.id);

  const FileMap files{{"/THE_CAST/Searcher.md", FileEntry{{"# Searcher"}, "", ""}}};
  EXPECT_FALSE(this->proposals->restore_completed(final_fail.thread_id, files).changed);
  const auto r = this->proposals->restore_completed(unsure.thread_id, files);
  ASSERT_TRUE(r.changed);
  EXPECT_EQ(r.proposal.status, ProposalStatus::completed);
  EXPECT_FALSE(r.proposal.error);
  EXPECT_FALSE(r.proposal.failure_kind);
  ASSERT_TRUE(r.proposal.generated_files);
  EXPECT_EQ(r.proposal.generated_files->count("/THE_CAST/Searcher.md"), 1u);
  EXPECT_FALSE(this->proposals->restore_completed(unsure.thread_id, files).changed) << "once";
  EXPECT_TRUE(this->proposals->list_unreachable_failures().empty());
  // The restored proposal is an ordinary completed one: it can be approved.
  EXPECT_EQ(this->proposals->approve(this->alice, unsure.id).proposal.status, ProposalStatus::approved);
  // Settling an unreachable failure stops the re-checks without changing its status.
  const auto other = this->start(this->alice, w.workflow.id);
  ASSERT_TRUE(this->proposals->finalise_failed(other.thread_id, "unreachable", FailureKind::engine_unreachable).changed);
  // Not before it failed at least this long ago: it stays unreachable (asked again).
  this->proposals->settle_unreachable_failure(other.id, FailureKind::engine_gone, std::chrono::hours(1));
  EXPECT_EQ(this->proposals->get(this->alice, other.id).proposal.failure_kind.value_or(""), "engine_unreachable");
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  this->proposals->settle_unreachable_failure(other.id, FailureKind::engine_gone, std::chrono::milliseconds(10));
  const auto settled = this->proposals->get(this->alice, other.id).proposal;
  EXPECT_EQ(settled.status, ProposalStatus::failed);
  EXPECT_EQ(settled.failure_kind.value_or(""), "engine_gone");
  EXPECT_TRUE(this->proposals->list_unreachable_failures().empty());
}

TYPED_TEST(Services, RecordedEngineFilesRoundTripUnchanged) {
  // tests/fixtures/interop/thread_state.json: the original Python engine's final state.
  const auto path = std::filesystem::path(PROJECT_SOURCE_DIR) / "tests/fixtures/interop/thread_state.json";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing " << path;
  const auto state = nlohmann::json::parse(in);
  const auto gen = files_from_json(state["generated_files"], "generated_files");
  const auto w = this->small_workflow(this->alice);
  const auto p = this->start(this->alice, w.workflow.id);
  ASSERT_TRUE(this->proposals->finalise(p.thread_id, gen).changed);
  const auto back = this->proposals->get(this->alice, p.id).proposal;
  ASSERT_TRUE(back.generated_files);
  EXPECT_EQ(files_to_json(*back.generated_files), state["generated_files"]);
  const auto r = this->proposals->approve(this->alice, p.id);
  EXPECT_EQ(r.draft.files.at("/definition.json").content, gen.at("/definition.json").content);
  EXPECT_EQ(r.draft.files.size(), 3u + gen.size());  // base files kept, recorded files added
}
