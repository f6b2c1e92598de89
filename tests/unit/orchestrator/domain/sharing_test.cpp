// Sharing (workflow members, viewers read-only in every mutating service method) and account
// administration (disable, set-password, profile) on SQLite and, with TEST_PG_URL, PostgreSQL.

#include <algorithm>

#include <gtest/gtest.h>

#include "services_fixture.hpp"

template <class Backend>
class Sharing : public Services<Backend> {
 protected:
  /// Number of audit entries of `action` on the workflow.
  int audited(const std::string& wf, const std::string& action) {
    int n = 0;
    for (const auto& a : this->audit->list(this->alice, wf, PageRequest{200, ""}).items) n += a.action == action;
    return n;
  }
  std::string email_of(const std::string& id) { return this->users->find(id)->email; }
};

TYPED_TEST_SUITE(Sharing, orchestrator::testing::Backends, orchestrator::testing::BackendNames);

TYPED_TEST(Sharing, OwnerAddsChangesAndRemovesMembersByIdOrEmail) {
  const auto w = this->small_workflow(this->alice).workflow;
  const auto carol = this->new_user("carol");
  // By e-mail, in any case and with spaces: a new member.
  auto c = this->workflows->set_member(this->alice, w.id, "  " + this->email_of(this->bob) + " ", "viewer");
  EXPECT_TRUE(c.added);
  EXPECT_TRUE(c.changed);
  EXPECT_EQ(c.member.user_id, this->bob);
  EXPECT_EQ(c.member.role, "viewer");
  EXPECT_EQ(c.member.name, "bob");
  // The same again: idempotent, nothing written or audited.
  c = this->workflows->set_member(this->alice, w.id, this->bob, "viewer");
  EXPECT_FALSE(c.added);
  EXPECT_FALSE(c.changed);
  EXPECT_EQ(this->audited(w.id, "workflow.member"), 1);
  // By id: promoted.
  c = this->workflows->set_member(this->alice, w.id, this->bob, "editor");
  EXPECT_FALSE(c.added);
  EXPECT_TRUE(c.changed);
  EXPECT_EQ(this->workflows->get(this->bob, w.id).role, "editor");
  EXPECT_EQ(this->audited(w.id, "workflow.member"), 2);
  this->workflows->set_member(this->alice, w.id, carol, "viewer");

  // Every member may list; newest first; the owner is a member too.
  const auto page = this->workflows->list_members(carol, w.id);
  ASSERT_EQ(page.items.size(), 3u);
  EXPECT_EQ(page.items[0].user_id, carol);
  EXPECT_EQ(page.items[2].user_id, this->alice);
  EXPECT_EQ(page.items[2].role, "owner");
  const auto first = this->workflows->list_members(this->alice, w.id, PageRequest{2, ""});
  ASSERT_EQ(first.items.size(), 2u);
  ASSERT_TRUE(first.next_cursor);
  const auto rest = this->workflows->list_members(this->alice, w.id, PageRequest{2, *first.next_cursor});
  ASSERT_EQ(rest.items.size(), 1u);
  EXPECT_EQ(rest.items[0].user_id, this->alice);

  this->workflows->remove_member(this->alice, w.id, this->email_of(carol));
  EXPECT_THROW(this->workflows->get(carol, w.id), NotFoundError);
  EXPECT_THROW(this->workflows->list_members(carol, w.id), NotFoundError);
  EXPECT_THROW(this->workflows->remove_member(this->alice, w.id, carol), NotFoundError);  // no longer a member
  EXPECT_EQ(this->audited(w.id, "workflow.member_remove"), 1);
}

TYPED_TEST(Sharing, OnlyTheOwnerChangesMembersAndTheOwnerStays) {
  const auto w = this->small_workflow(this->alice).workflow;
  const auto carol = this->new_user("carol");
  const auto stranger = this->new_user("stranger");
  this->workflows->set_member(this->alice, w.id, this->bob, "editor");
  this->workflows->set_member(this->alice, w.id, carol, "viewer");
  // Members who are not the owner: 403; strangers: 404 (they cannot see the workflow).
  EXPECT_THROW(this->workflows->set_member(this->bob, w.id, carol, "editor"), ForbiddenError);
  EXPECT_THROW(this->workflows->set_member(carol, w.id, carol, "editor"), ForbiddenError);
  EXPECT_THROW(this->workflows->remove_member(this->bob, w.id, carol), ForbiddenError);
  EXPECT_THROW(this->workflows->set_member(stranger, w.id, stranger, "editor"), NotFoundError);
  EXPECT_THROW(this->workflows->list_members(stranger, w.id), NotFoundError);
  EXPECT_THROW(this->workflows->remove_member(stranger, w.id, carol), NotFoundError);
  // The owner can be neither demoted nor removed, by anyone (a workflow always keeps its owner).
  EXPECT_THROW(this->workflows->set_member(this->alice, w.id, this->alice, "editor"), PreconditionError);
  EXPECT_THROW(this->workflows->set_member(this->alice, w.id, this->email_of(this->alice), "viewer"),
               PreconditionError);
  EXPECT_THROW(this->workflows->remove_member(this->alice, w.id, this->alice), PreconditionError);
  EXPECT_EQ(this->workflows->get(this->alice, w.id).role, "owner");
  // Bad input.
  EXPECT_THROW(this->workflows->set_member(this->alice, w.id, this->bob, "owner"), InvalidError);
  EXPECT_THROW(this->workflows->set_member(this->alice, w.id, this->bob, ""), InvalidError);
  EXPECT_THROW(this->workflows->set_member(this->alice, w.id, "not-an-id", "viewer"), InvalidError);
  EXPECT_THROW(this->workflows->set_member(this->alice, w.id, "nobody@example.com", "viewer"), NotFoundError);
  EXPECT_THROW(this->workflows->set_member(this->alice, w.id, core::uuid4(), "viewer"), NotFoundError);
  // A member may leave on their own.
  this->workflows->remove_member(carol, w.id, carol);
  EXPECT_THROW(this->workflows->get(carol, w.id), NotFoundError);
}

// Viewers see everything a member sees and change nothing: every mutating method of every
// service answers ForbiddenError, and nothing is written.
TYPED_TEST(Sharing, ViewersAreReadOnlyInEveryService) {
  const auto w = this->small_workflow(this->alice);
  const auto id = w.workflow.id;
  this->workflows->set_member(this->alice, id, this->bob, "editor");
  // Proposals bob started as an editor, in each state a decision applies to.
  const auto to_approve = this->start(this->bob, id);
  this->proposals->finalise(to_approve.thread_id, FileMap{{"/a.md", F({"new"})}});
  const auto failed = this->start(this->bob, id);
  this->proposals->finalise_failed(failed.thread_id, "boom");
  const auto running = this->start(this->bob, id);
  this->workflows->publish(this->alice, id);
  this->workflows->set_member(this->alice, id, this->bob, "viewer");

  // Reads work.
  EXPECT_EQ(this->workflows->get(this->bob, id).role, "viewer");
  EXPECT_EQ(this->drafts->get(this->bob, id).revision, 1);
  EXPECT_EQ(this->workflows->get_version(this->bob, id, 1).info.number, 1);
  EXPECT_EQ(this->workflows->list_members(this->bob, id).items.size(), 2u);
  EXPECT_EQ(this->proposals->get(this->bob, to_approve.id).proposal.status, ProposalStatus::completed);
  EXPECT_FALSE(this->proposals->diff(this->bob, to_approve.id).empty());

  // Writes do not.
  EXPECT_THROW(this->drafts->put_files(this->bob, id, w.draft.files, 1), ForbiddenError);
  EXPECT_THROW(this->drafts->patch_files(this->bob, id, {{"/x.md", F({"x"})}}, {}, 1), ForbiddenError);
  EXPECT_THROW(this->drafts->remove(this->bob, w.draft.id), ForbiddenError);
  EXPECT_THROW(this->start(this->bob, id), ForbiddenError);
  EXPECT_THROW(this->proposals->approve(this->bob, to_approve.id), ForbiddenError);
  EXPECT_THROW(this->proposals->reject(this->bob, to_approve.id), ForbiddenError);
  EXPECT_THROW(this->proposals->reject(this->bob, failed.id), ForbiddenError);
  EXPECT_THROW(this->proposals->cancel(this->bob, running.id), ForbiddenError);
  EXPECT_THROW(this->proposals->retry(this->bob, failed.id, core::uuid4()), ForbiddenError);
  EXPECT_THROW(this->workflows->publish(this->bob, id), ForbiddenError);
  EXPECT_THROW(this->workflows->deploy(this->bob, id), ForbiddenError);
  EXPECT_THROW(this->workflows->update(this->bob, id, {std::string("renamed"), std::nullopt}), ForbiddenError);
  EXPECT_THROW(this->workflows->remove(this->bob, id), ForbiddenError);
  EXPECT_THROW(this->workflows->set_member(this->bob, id, this->bob, "editor"), ForbiddenError);

  // Nothing changed.
  EXPECT_EQ(this->drafts->get(this->alice, id).revision, 1);
  EXPECT_EQ(this->workflows->get(this->alice, id).name, "wf");
  EXPECT_EQ(this->workflows->list_versions(this->alice, id).items.size(), 1u);
  EXPECT_EQ(this->proposals->get(this->alice, to_approve.id).proposal.status, ProposalStatus::completed);
  EXPECT_EQ(this->proposals->get(this->alice, failed.id).proposal.status, ProposalStatus::failed);
  EXPECT_EQ(this->proposals->get(this->alice, running.id).proposal.status, ProposalStatus::processing);
  EXPECT_EQ(this->proposals->list(this->alice, id).items.size(), 3u);
  // Editors, by contrast, may (but only the owner deletes or shares).
  this->workflows->set_member(this->alice, id, this->bob, "editor");
  EXPECT_EQ(this->workflows->update(this->bob, id, {std::string("renamed"), std::nullopt}).name, "renamed");
  EXPECT_THROW(this->workflows->remove(this->bob, id), ForbiddenError);
  EXPECT_THROW(this->workflows->set_member(this->bob, id, this->bob, "viewer"), ForbiddenError);
}

TYPED_TEST(Sharing, DisabledUsersCannotSignInAndTheirTokensAreRefused) {
  const auto carol = this->users->create("carol-" + core::random_hex(4) + "@example.com", "Carol", "carol-password");
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
  EXPECT_EQ(this->users->require_token_user(carol.id, now.count()).id, carol.id);
  EXPECT_FALSE(this->users->set_disabled(carol.email, true).disabled_at == std::nullopt);
  EXPECT_TRUE(this->users->set_disabled(carol.id, true).disabled_at);  // idempotent
  try {
    this->users->authenticate(carol.email, "carol-password");
    ADD_FAILURE() << "a disabled user signed in";
  } catch (const UnauthenticatedError& e) {
    EXPECT_NE(std::string(e.what()).find("disabled"), std::string::npos) << e.what();
  }
  // A wrong password is not told that the account is disabled.
  try {
    this->users->authenticate(carol.email, "wrong-password");
    ADD_FAILURE() << "a wrong password signed in";
  } catch (const UnauthenticatedError& e) {
    EXPECT_EQ(std::string(e.what()), "invalid e-mail or password");
  }
  EXPECT_THROW(this->users->require_token_user(carol.id, now.count()), UnauthenticatedError);
  EXPECT_THROW(this->users->sign_in_external({"https://idp.example.com/", "s-" + core::random_hex(4), carol.email, true}),
               UnauthenticatedError);
  const auto listed = this->users->list(PageRequest{200, ""}).items;
  const auto it = std::find_if(listed.begin(), listed.end(), [&](const User& u) { return u.id == carol.id; });
  ASSERT_NE(it, listed.end());
  EXPECT_TRUE(it->disabled_at);
  EXPECT_FALSE(this->users->set_disabled(carol.id, false).disabled_at);
  EXPECT_EQ(this->users->authenticate(carol.email, "carol-password").id, carol.id);
  EXPECT_EQ(this->users->require_token_user(carol.id, now.count()).id, carol.id);
  EXPECT_THROW(this->users->set_disabled("nobody@example.com", true), NotFoundError);
}

// The WebSocket proxy's one query (access::watch_thread): a proposal's stream is watched by an
// enabled account with access that is a member; removal and disabling end it, re-enabling
// brings it back, and a deleted account or an unknown thread never watches.
TYPED_TEST(Sharing, AStreamIsWatchedOnlyByEnabledMembersWithAccess) {
  const auto carol = this->users->create("carol-" + core::random_hex(4) + "@example.com", "Carol", "carol-password");
  const auto w = this->small_workflow(this->alice);
  const auto id = w.workflow.id;
  this->workflows->set_member(this->alice, id, carol.id, "editor");
  const auto p = this->start(carol.id, id);
  EXPECT_EQ(this->proposals->watch(carol.id, p.thread_id), std::optional<std::string>(p.traceparent));
  EXPECT_FALSE(this->proposals->watch(this->bob, p.thread_id)) << "no access, no membership";
  this->users->set_disabled(carol.id, true);
  EXPECT_FALSE(this->proposals->watch(carol.id, p.thread_id)) << "a disabled account";
  this->users->set_disabled(carol.id, false);
  EXPECT_TRUE(this->proposals->watch(carol.id, p.thread_id));
  this->workflows->remove_member(this->alice, id, carol.id);
  EXPECT_FALSE(this->proposals->watch(carol.id, p.thread_id)) << "no longer a member";
  EXPECT_FALSE(this->proposals->watch("no-such-user", p.thread_id));
  EXPECT_FALSE(this->proposals->watch(this->alice, "no-such-thread"));
}

TYPED_TEST(Sharing, SetPasswordEndsOlderSessions) {
  const auto dave = this->users->create("dave-" + core::random_hex(4) + "@example.com", "Dave", "first-password");
  const auto before = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count() -
                      5;
  EXPECT_EQ(this->users->require_token_user(dave.id, before).id, dave.id);
  EXPECT_THROW(this->users->set_password(dave.id, "short"), InvalidError);
  const auto seconds_now = [] {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  const auto changed = seconds_now();  // at most the second the change records
  this->users->set_password(dave.email, "second-password");
  EXPECT_THROW(this->users->authenticate(dave.email, "first-password"), UnauthenticatedError);
  // Signing in waits out the second of the change, so its token is never mistaken for an old one.
  EXPECT_EQ(this->users->authenticate(dave.email, "second-password").id, dave.id);
  const auto issued = seconds_now();
  EXPECT_GT(issued, changed);
  EXPECT_THROW(this->users->require_token_user(dave.id, before), UnauthenticatedError);
  EXPECT_THROW(this->users->require_token_user(dave.id, changed), UnauthenticatedError);  // same second as the change
  EXPECT_EQ(this->users->require_token_user(dave.id, issued).id, dave.id);
  EXPECT_THROW(this->users->require_token_user(core::uuid4(), issued), UnauthenticatedError);
}

TYPED_TEST(Sharing, ProfileListsLinkedIdentities) {
  const auto p = this->users->profile(this->alice);
  EXPECT_EQ(p.user.id, this->alice);
  EXPECT_TRUE(p.identities.empty());
  const std::string iss = "https://idp.example.com/";
  const auto ext = this->users->sign_in_external(
      {iss, "sub-" + core::random_hex(4), "ext-" + core::random_hex(4) + "@example.com", true});
  const auto q = this->users->profile(ext.id);
  ASSERT_EQ(q.identities.size(), 1u);
  EXPECT_EQ(q.identities[0].issuer, iss);
  EXPECT_THROW(this->users->profile(core::uuid4()), NotFoundError);
}
