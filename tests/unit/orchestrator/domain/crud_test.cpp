// Workflow rename and soft delete, one version, a user's proposals across workflows, retry of a
// refinement and publishing an unchanged draft, on SQLite and, with TEST_PG_URL, PostgreSQL.

#include <set>

#include <gtest/gtest.h>
#include <soci/soci.h>

#include "orchestrator/store/repositories.hpp"
#include "services_fixture.hpp"

template <class Backend>
class Crud : public Services<Backend> {
 protected:
  /// Audit actions recorded for `subject_id` (read directly: a deleted workflow's log is
  /// hidden from AuditService::list like everything else of it).
  std::multiset<std::string> audit_actions(const std::string& subject_id) {
    soci::session sql(this->db().pool());
    std::multiset<std::string> out;
    soci::rowset<std::string> rows =
        (sql.prepare << "SELECT action FROM audit_log WHERE subject_id = :s", soci::use(subject_id));
    for (const auto& a : rows) out.insert(a);
    return out;
  }
  orchestrator::store::ProposalRecord row(const std::string& proposal_id) {
    orchestrator::testing::LeasedUnit unit(this->db());
    auto& uow = unit.uow;
    return *orchestrator::store::proposals::find(uow, proposal_id);
  }
};

TYPED_TEST_SUITE(Crud, orchestrator::testing::Backends, orchestrator::testing::BackendNames);

TYPED_TEST(Crud, RenameUsesTheCreateRulesAndIsAudited) {
  const auto w = this->small_workflow(this->alice).workflow;
  const auto r = this->workflows->update(this->alice, w.id, {std::string("Research crew"), std::nullopt});
  EXPECT_EQ(r.name, "Research crew");
  EXPECT_EQ(r.description, "");
  EXPECT_GT(r.updated_at, w.updated_at);
  EXPECT_EQ(this->workflows->get(this->alice, w.id).name, "Research crew");
  this->workflows->update(this->alice, w.id, {std::nullopt, std::string("Finds sources")});
  EXPECT_EQ(this->workflows->get(this->alice, w.id).description, "Finds sources");
  // The same values again: nothing written, nothing audited.
  this->workflows->update(this->alice, w.id, {std::string("Research crew"), std::string("Finds sources")});
  EXPECT_EQ(this->audit_actions(w.id).count("workflow.update"), 2u);
  for (const auto& bad : {std::string(), std::string(201, 'n')}) {
    try {
      this->workflows->update(this->alice, w.id, {bad, std::nullopt});
      ADD_FAILURE() << "accepted name of " << bad.size() << " bytes";
    } catch (const InvalidError& e) {
      EXPECT_EQ(e.field(), "name");
    }
  }
  EXPECT_THROW(this->workflows->update(this->alice, w.id, {std::nullopt, std::string(2001, 'd')}), InvalidError);
  EXPECT_THROW(this->workflows->update(this->alice, w.id, {}), InvalidError);
  EXPECT_THROW(this->workflows->update(this->bob, w.id, {std::string("mine"), std::nullopt}), NotFoundError);
  EXPECT_EQ(this->workflows->update(this->alice, w.id, {std::string(200, 'n'), std::nullopt}).name.size(), 200u);
}

TYPED_TEST(Crud, DeleteHidesTheWorkflowCancelsRunsAndSchedulesEveryThread) {
  const auto w = this->small_workflow(this->alice);
  const auto id = w.workflow.id;
  this->workflows->set_member(this->alice, id, this->bob, "editor");
  const auto running = this->start(this->bob, id);
  const auto completed = this->start(this->alice, id);
  this->proposals->finalise(completed.thread_id, FileMap{{"/a.md", F({"changed"})}});
  const auto rejected = this->start(this->alice, id);
  this->proposals->finalise_failed(rejected.thread_id, "boom");
  this->proposals->reject(this->alice, rejected.id);
  for (const auto& c : this->proposals->list_pending_cleanup(1000))
    if (c.proposal_id == rejected.id) this->proposals->mark_cleaned(c.proposal_id);  // already deleted on the engine
  this->workflows->publish(this->alice, id);

  EXPECT_THROW(this->workflows->remove(this->bob, id), ForbiddenError);  // editors may not delete
  const auto gone = this->workflows->remove(this->alice, id);
  EXPECT_EQ(gone.cancelled_threads, std::vector<std::string>{running.thread_id});
  EXPECT_EQ(gone.threads_scheduled, 2);  // the running and the completed one; the rejected one is cleaned

  for (const auto& user : {this->alice, this->bob}) {
    EXPECT_THROW(this->workflows->get(user, id), NotFoundError);
    EXPECT_THROW(this->drafts->get(user, id), NotFoundError);
    EXPECT_THROW(this->workflows->get_version(user, id, 1), NotFoundError);
    EXPECT_THROW(this->workflows->list_versions(user, id), NotFoundError);
    EXPECT_THROW(this->workflows->list_members(user, id), NotFoundError);
    EXPECT_THROW(this->proposals->list(user, id), NotFoundError);
    EXPECT_THROW(this->proposals->get_by_thread(user, running.thread_id), NotFoundError);
    EXPECT_FALSE(this->proposals->watch(user, running.thread_id));
    for (const auto& w2 : this->workflows->list(user).items) EXPECT_NE(w2.id, id);
    for (const auto& p : this->proposals->list_visible(user, {}).items) EXPECT_NE(p.workflow_id, id);
  }
  EXPECT_THROW(this->proposals->get(this->alice, completed.id), NotFoundError);
  EXPECT_THROW(this->proposals->approve(this->alice, completed.id), NotFoundError);
  EXPECT_THROW(this->workflows->remove(this->alice, id), NotFoundError);  // once
  EXPECT_THROW(this->workflows->update(this->alice, id, {std::string("x"), std::nullopt}), NotFoundError);

  EXPECT_EQ(this->row(running.id).status, ProposalStatus::cancelled);
  EXPECT_EQ(this->row(completed.id).status, ProposalStatus::completed);
  std::set<std::string> pending;
  for (const auto& c : this->proposals->list_pending_cleanup(1000)) pending.insert(c.thread_id);
  EXPECT_TRUE(pending.count(running.thread_id));
  EXPECT_TRUE(pending.count(completed.thread_id));
  EXPECT_FALSE(pending.count(rejected.thread_id));
  EXPECT_EQ(this->audit_actions(id).count("workflow.delete"), 1u);
  EXPECT_EQ(this->audit_actions(running.id).count("proposal.cancel"), 1u);
  // The cancelled run no longer counts against its starter's refinements in flight.
  for (const auto& p : this->proposals->list_processing()) EXPECT_NE(p.id, running.id);
}

TYPED_TEST(Crud, OneVersionWithItsFiles) {
  const auto w = this->small_workflow(this->alice);
  const auto id = w.workflow.id;
  EXPECT_THROW(this->workflows->get_version(this->alice, id, 1), NotFoundError);
  this->workflows->publish(this->alice, id);
  this->drafts->patch_files(this->alice, id, {{"/d.md", F({"d1"})}}, {}, 1);
  this->workflows->publish(this->alice, id);
  const auto v1 = this->workflows->get_version(this->alice, id, 1);
  const auto v2 = this->workflows->get_version(this->alice, id, 2);
  EXPECT_EQ(v1.info.number, 1);
  EXPECT_EQ(v1.files.size(), 3u);
  EXPECT_EQ(v2.files.size(), 4u);
  EXPECT_EQ(v2.files.at("/d.md").content, std::vector<std::string>{"d1"});
  EXPECT_THROW(this->workflows->get_version(this->alice, id, 3), NotFoundError);
  EXPECT_THROW(this->workflows->get_version(this->bob, id, 1), NotFoundError);
}

TYPED_TEST(Crud, PublishingAnUnchangedDraftReturnsTheLatestVersion) {
  const auto w = this->small_workflow(this->alice);
  const auto id = w.workflow.id;
  const auto v1 = this->workflows->publish(this->alice, id);
  EXPECT_TRUE(v1.created);
  const auto again = this->workflows->publish(this->alice, id);
  EXPECT_FALSE(again.created);
  EXPECT_EQ(again.info.id, v1.info.id);
  EXPECT_EQ(again.files.size(), 3u);
  // A change and its undo: the draft equals version 1 again but not the latest (2), so
  // publishing it is a real new version (a rollback), not a duplicate of the latest.
  this->drafts->patch_files(this->alice, id, {{"/a.md", F({"changed"})}}, {}, 1);
  EXPECT_EQ(this->workflows->publish(this->alice, id).info.number, 2);
  this->drafts->patch_files(this->alice, id, {{"/a.md", w.draft.files.at("/a.md")}}, {}, 2);
  const auto v3 = this->workflows->publish(this->alice, id);
  EXPECT_TRUE(v3.created);
  EXPECT_EQ(v3.info.number, 3);
  // A file deleted from the draft is a change too.
  this->drafts->patch_files(this->alice, id, {}, {"/c.md"}, 3);
  EXPECT_EQ(this->workflows->publish(this->alice, id).info.number, 4);
  EXPECT_EQ(this->workflows->list_versions(this->alice, id).items.size(), 4u);
}

TYPED_TEST(Crud, ProposalsAcrossWorkflowsFilteredAndPaginated) {
  const auto carol = this->new_user("carol");
  const auto w1 = this->small_workflow(carol).workflow.id;
  const auto w2 = this->small_workflow(carol).workflow.id;
  const auto p1 = this->start(carol, w1);
  const auto p2 = this->start(carol, w2);
  this->proposals->finalise_failed(p2.thread_id, "boom");
  const auto p3 = this->start(carol, w2);
  this->proposals->finalise(p3.thread_id, FileMap{});
  const auto others = this->small_workflow(this->alice).workflow.id;
  this->start(this->alice, others);

  const auto all = this->proposals->list_visible(carol, {});
  ASSERT_EQ(all.items.size(), 3u);
  EXPECT_EQ(all.items[0].id, p3.id);
  EXPECT_EQ(all.items[2].id, p1.id);
  const auto failed = this->proposals->list_visible(carol, {ProposalStatus::failed});
  ASSERT_EQ(failed.items.size(), 1u);
  EXPECT_EQ(failed.items[0].id, p2.id);
  EXPECT_EQ(this->proposals->list_visible(carol, {ProposalStatus::failed, ProposalStatus::processing}).items.size(), 2u);
  EXPECT_TRUE(this->proposals->list_visible(carol, {ProposalStatus::approved}).items.empty());
  std::set<std::string> seen;
  PageRequest req{1, ""};
  for (int pages = 0;; ++pages) {
    ASSERT_LT(pages, 5);
    const auto page = this->proposals->list_visible(carol, {}, req);
    for (const auto& p : page.items) EXPECT_TRUE(seen.insert(p.id).second);
    if (!page.next_cursor) break;
    req.cursor = *page.next_cursor;
  }
  EXPECT_EQ(seen, (std::set<std::string>{p1.id, p2.id, p3.id}));
  EXPECT_THROW(this->proposals->list_visible(carol, {}, PageRequest{0, ""}), InvalidError);

  // The workflow owner reviews proposals of editors; a removed member sees theirs no more.
  this->workflows->set_member(carol, w1, this->bob, "editor");
  const auto by_bob = this->start(this->bob, w1);
  EXPECT_EQ(this->proposals->list_visible(carol, {}).items.front().id, by_bob.id);
  ASSERT_EQ(this->proposals->list_visible(this->bob, {}).items.size(), 1u);
  this->workflows->remove_member(carol, w1, this->bob);
  EXPECT_TRUE(this->proposals->list_visible(this->bob, {}).items.empty());
}

TYPED_TEST(Crud, RetryRerunsTheSamePromptOnTheCurrentDraftOnce) {
  const auto w = this->small_workflow(this->alice);
  const auto id = w.workflow.id;
  CreateProposalInput in;
  in.user_prompt = "tighten the plan";
  in.context_file_path = "/a.md";
  in.context_selection = "a2";
  in.thread_id = core::uuid4();
  in.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const auto failed = this->proposals->create(this->alice, id, in).proposal;
  EXPECT_EQ(this->proposals->traceparent_of(failed.id), in.traceparent);
  this->proposals->finalise_failed(failed.thread_id, "model unavailable");
  this->drafts->patch_files(this->alice, id, {{"/b.md", F({"edited by hand"})}}, {}, 1);

  const auto thread = core::uuid4();
  const std::string retry_request = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const auto r = this->proposals->retry(this->alice, failed.id, thread, retry_request);
  EXPECT_EQ(r.proposal.traceparent, retry_request);  // a retry is a refinement of its own: its own trace
  EXPECT_EQ(this->proposals->traceparent_of(r.proposal.id), retry_request);
  EXPECT_EQ(this->proposals->traceparent_of(core::uuid4()), "");
  EXPECT_EQ(r.proposal.status, ProposalStatus::processing);
  EXPECT_EQ(r.proposal.thread_id, thread);
  EXPECT_EQ(r.proposal.user_prompt, "tighten the plan");
  EXPECT_EQ(r.proposal.context_file_path, in.context_file_path);
  EXPECT_EQ(r.proposal.context_selection, in.context_selection);
  EXPECT_EQ(r.proposal.base_files.at("/b.md").content, std::vector<std::string>{"edited by hand"});  // current draft
  EXPECT_EQ(r.previous.status, ProposalStatus::failed);
  EXPECT_EQ(this->audit_actions(r.proposal.id).count("proposal.retry"), 1u);
  // Once per proposal: a second retry names the first one.
  try {
    this->proposals->retry(this->alice, failed.id, core::uuid4());
    ADD_FAILURE() << "retried twice";
  } catch (const ConflictError& e) {
    EXPECT_EQ(e.details()["retry_proposal_id"], r.proposal.id);
  }
  // Not while processing, not once approved.
  EXPECT_THROW(this->proposals->retry(this->alice, r.proposal.id, core::uuid4()), PreconditionError);
  this->proposals->finalise(r.proposal.thread_id, FileMap{{"/c.md", F({"c2"})}});
  this->proposals->approve(this->alice, r.proposal.id);
  EXPECT_THROW(this->proposals->retry(this->alice, r.proposal.id, core::uuid4()), PreconditionError);
  EXPECT_THROW(this->proposals->retry(this->bob, failed.id, core::uuid4()), NotFoundError);
  EXPECT_THROW(this->proposals->retry(this->alice, core::uuid4(), core::uuid4()), NotFoundError);
  // The thread id rules of create.
  const auto cancelled = this->start(this->alice, id);
  this->proposals->cancel(this->alice, cancelled.id);
  EXPECT_THROW(this->proposals->retry(this->alice, cancelled.id, "bad id!"), InvalidError);
  EXPECT_THROW(this->proposals->retry(this->alice, cancelled.id, r.proposal.thread_id), ConflictError);
  EXPECT_EQ(this->proposals->retry(this->alice, cancelled.id, core::uuid4()).previous.status, ProposalStatus::cancelled);
}

// A conflicting approve names the paths and offers the retry; the retry supersedes (rejects)
// the conflicting proposal and starts over on the current draft with the same prompt.
TYPED_TEST(Crud, ConflictingApproveOffersTheRetryWhichSupersedesIt) {
  const auto w = this->small_workflow(this->alice);
  const auto id = w.workflow.id;
  const auto p = this->start(this->alice, id);
  this->proposals->finalise(p.thread_id, FileMap{{"/a.md", F({"from the model"})}});
  this->drafts->patch_files(this->alice, id, {{"/a.md", F({"by hand"})}}, {}, 1);
  try {
    this->proposals->approve(this->alice, p.id);
    ADD_FAILURE() << "approve did not conflict";
  } catch (const ConflictError& e) {
    EXPECT_EQ(e.paths(), std::vector<std::string>{"/a.md"});
    EXPECT_EQ(e.details()["retry"]["method"], "POST");
    EXPECT_EQ(e.details()["retry"]["href"], "/api/proposals/" + p.id + "/retry");
    EXPECT_NE(std::string(e.what()).find("/api/proposals/" + p.id + "/retry"), std::string::npos) << e.what();
  }
  const auto r = this->proposals->retry(this->alice, p.id, core::uuid4());
  EXPECT_EQ(r.previous.status, ProposalStatus::rejected);
  EXPECT_TRUE(this->row(p.id).engine_cleanup_pending);
  EXPECT_EQ(r.proposal.base_files.at("/a.md").content, std::vector<std::string>{"by hand"});
  EXPECT_EQ(this->audit_actions(p.id).count("proposal.reject"), 1u);
  this->proposals->finalise(r.proposal.thread_id, FileMap{{"/a.md", F({"from the model, again"})}});
  EXPECT_EQ(this->proposals->approve(this->alice, r.proposal.id).draft.files.at("/a.md").content,
            std::vector<std::string>{"from the model, again"});
}
