// Store layer: migrations and transactions on SQLite and PostgreSQL.

#include <filesystem>

#include <gtest/gtest.h>

#include "../domain/db_fixture.hpp"
#include "core/util.hpp"
#include "orchestrator/domain/error.hpp"
#include "orchestrator/store/repositories.hpp"

using namespace orchestrator::store;

template <class Backend>
class StoreLayer : public orchestrator::testing::DbTest<Backend> {};
TYPED_TEST_SUITE(StoreLayer, orchestrator::testing::Backends, orchestrator::testing::BackendNames);

TYPED_TEST(StoreLayer, MigrationsAreIdempotent) {
  EXPECT_EQ(core::db::migrate(this->db(), TypeParam::migrations()), 0);
  soci::session sql(this->db().pool());
  long long n = -1;
  sql << "SELECT COUNT(*) FROM proposals", soci::into(n);
  EXPECT_EQ(n >= 0, true);
}

TYPED_TEST(StoreLayer, TxRollsBackUnlessCommitted) {
  orchestrator::testing::LeasedUnit unit(this->db());
  auto& uow = unit.uow;
  const UserRecord u{core::uuid4(), "tx-" + core::random_hex(4) + "@example.com", "Tx", "hash", core::now_rfc3339()};
  {
    Tx tx(uow);
    ASSERT_TRUE(users::insert(uow, u));
  }
  EXPECT_FALSE(users::find_by_id(uow, u.id));
  {
    Tx tx(uow);
    ASSERT_TRUE(users::insert(uow, u));
    tx.commit();
  }
  EXPECT_TRUE(users::find_by_id(uow, u.id));
  EXPECT_FALSE(users::insert(uow, u));  // e-mail taken
}

TYPED_TEST(StoreLayer, ProposalRowRoundTripsNullsAndJson) {
  orchestrator::testing::LeasedUnit unit(this->db());
  auto& uow = unit.uow;
  const auto now = core::now_rfc3339();
  const UserRecord u{core::uuid4(), "p-" + core::random_hex(4) + "@example.com", "P", "hash", now};
  users::insert(uow, u);
  const WorkflowRecord w{core::uuid4(), "wf", "", u.id, now, now, "owner"};
  workflows::insert(uow, w);
  ProposalRecord p;
  p.id = core::uuid4();
  p.workflow_id = w.id;
  p.thread_id = "thread-" + core::random_hex(4);
  p.user_prompt = "with 'quotes' and \"double\" and ünïcode";
  p.base_files = {{"/a.md", {{"x", "y"}, now, now}}};
  p.created_at = now;
  p.created_by_user_id = u.id;
  p.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  proposals::insert(uow, p);
  auto r = proposals::find(uow, p.id);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->user_prompt, p.user_prompt);
  EXPECT_EQ(r->traceparent, p.traceparent);
  EXPECT_FALSE(r->draft_id);
  EXPECT_FALSE(r->generated_files);
  EXPECT_FALSE(r->context_file_path);
  // The base is read only once there is a result to compare it with.
  EXPECT_TRUE(r->base_files.empty());
  proposals::Transition t;
  t.completed_at = now;
  t.generated_files = orchestrator::domain::FileMap{};
  EXPECT_EQ(proposals::transition(uow, p.id, {ProposalStatus::processing}, ProposalStatus::completed, t), 1);
  EXPECT_EQ(proposals::transition(uow, p.id, {ProposalStatus::processing}, ProposalStatus::completed, t), 0);
  r = proposals::find(uow, p.id);
  ASSERT_TRUE(r->generated_files);
  EXPECT_TRUE(r->generated_files->empty());
  EXPECT_EQ(r->status, ProposalStatus::completed);
  EXPECT_EQ(r->base_files.at("/a.md").content, (std::vector<std::string>{"x", "y"}));
}

// The lists render no files, so they do not read the file trees (a proposal's trees can be
// megabytes; reading them for every row of a page slowed every other request down).
TYPED_TEST(StoreLayer, ProposalListsLeaveTheFileTreesUnread) {
  orchestrator::testing::LeasedUnit unit(this->db());
  auto& uow = unit.uow;
  const auto now = core::now_rfc3339();
  const UserRecord u{core::uuid4(), "l-" + core::random_hex(4) + "@example.com", "L", "hash", now};
  users::insert(uow, u);
  const WorkflowRecord w{core::uuid4(), "wf", "", u.id, now, now, "owner"};
  workflows::insert(uow, w);
  workflows::upsert_member(uow, w.id, u.id, "owner", now);
  ProposalRecord p;
  p.id = core::uuid4();
  p.workflow_id = w.id;
  p.thread_id = "thread-" + core::random_hex(4);
  p.user_prompt = "list me";
  p.base_files = {{"/a.md", {{std::string(100000, 'b')}, now, now}}};
  p.generated_files = orchestrator::domain::FileMap{{"/a.md", {{std::string(100000, 'g')}, now, now}}};
  p.created_at = now;
  p.created_by_user_id = u.id;
  proposals::insert(uow, p);
  proposals::grant_access(uow, p.id, u.id, "owner", now);
  for (const auto& rows : {proposals::list_for_user(uow, w.id, u.id, 10, std::nullopt),
                           proposals::list_visible(uow, u.id, {}, 10, std::nullopt)}) {
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0].id, p.id);
    EXPECT_EQ(rows[0].user_prompt, "list me");
    EXPECT_FALSE(rows[0].generated_files);
    EXPECT_TRUE(rows[0].base_files.empty());
  }
  for (const auto& summary : {proposals::find_summary(uow, p.id), proposals::find_summary_by_thread(uow, p.thread_id)}) {
    ASSERT_TRUE(summary);
    EXPECT_EQ(summary->id, p.id);
    EXPECT_EQ(summary->status, ProposalStatus::processing);
    EXPECT_FALSE(summary->generated_files);
    EXPECT_TRUE(summary->base_files.empty());
  }
  EXPECT_FALSE(proposals::find_summary(uow, core::uuid4()));
  const auto full = proposals::find(uow, p.id);
  ASSERT_TRUE(full && full->generated_files);
  EXPECT_EQ(full->generated_files->at("/a.md").content[0].size(), 100000u);
  EXPECT_EQ(full->base_files.at("/a.md").content[0].size(), 100000u);
}

// Upgrading a database made by 0001 only: external users keep the identity that created them
// (from the audit log) and decided proposals count as cleaned; failed ones do not.
TYPED_TEST(StoreLayer, UpgradeBackfillsIdentitiesAndCleanedThreads) {
  namespace fs = std::filesystem;
  std::string handle;
  auto db = TypeParam::open(handle);
  const fs::path only_first = fs::temp_directory_path() / ("orch-mig-" + core::random_hex(6));
  fs::create_directories(only_first);
  fs::copy_file(TypeParam::migrations() / "0001_init.sql", only_first / "0001_init.sql");
  core::db::migrate(*db, only_first);
  const std::string user = core::uuid4(), wf = core::uuid4(), audit = core::uuid4(), now = core::now_rfc3339();
  {
    soci::session sql(db->pool());
    sql << "INSERT INTO users (id, email, name, password_hash, created_at) VALUES (:i, 'ext@example.com', 'e', "
           "'!external-identity', :c)",
        soci::use(user), soci::use(now);
    sql << "INSERT INTO audit_log (id, at, user_id, action, subject_type, subject_id, details) VALUES "
           "(:i, :a, :u, 'user.create_external', 'user', :s, "
           "'{\"issuer\": \"https://idp.example.com/\", \"subject\": \"idp|42\"}')",
        soci::use(audit), soci::use(now), soci::use(user), soci::use(user);
    sql << "INSERT INTO workflows (id, name, owner_id, created_at, updated_at) VALUES (:i, 'w', :o, :c, :u)",
        soci::use(wf), soci::use(user), soci::use(now), soci::use(now);
    for (const char* status : {"rejected", "failed"}) {
      const std::string id = core::uuid4(), st = status;
      sql << "INSERT INTO proposals (id, workflow_id, thread_id, status, user_prompt, base_files, created_at, "
             "completed_at, created_by_user_id) VALUES (:i, :w, :t, :s, 'p', '{}', :c, :d, :u)",
          soci::use(id), soci::use(wf), soci::use(id), soci::use(st), soci::use(now), soci::use(now), soci::use(user);
    }
  }
  int later = -1;  // every migration after 0001
  for (const auto& e : fs::directory_iterator(TypeParam::migrations())) later += e.path().extension() == ".sql";
  EXPECT_EQ(core::db::migrate(*db, TypeParam::migrations()), later);
  {
    orchestrator::testing::LeasedUnit unit(*db);
    auto& uow = unit.uow;
    soci::session& sql = unit.sql();
    EXPECT_EQ(users::find_identity(uow, "https://idp.example.com/", "idp|42"), user);
    int cleaned_rejected = 0, cleaned_failed = 0;
    sql << "SELECT COUNT(*) FROM proposals WHERE status = 'rejected' AND engine_thread_deleted_at IS NOT NULL",
        soci::into(cleaned_rejected);
    sql << "SELECT COUNT(*) FROM proposals WHERE status = 'failed' AND engine_thread_deleted_at IS NOT NULL",
        soci::into(cleaned_failed);
    EXPECT_EQ(cleaned_rejected, 1);
    EXPECT_EQ(cleaned_failed, 0);
  }
  db.reset();
  TypeParam::drop(handle);
  fs::remove_all(only_first);
}
