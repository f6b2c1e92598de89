// Store layer: migrations, transactions and pagination cursors on SQLite and PostgreSQL.

#include <gtest/gtest.h>

#include "../domain/db_fixture.hpp"
#include "core/util.hpp"
#include "orchestrator/domain/error.hpp"
#include "orchestrator/store/repositories.hpp"

using namespace orchestrator::store;

TEST(Cursor, RoundTripsAndRejectsGarbage) {
  const CursorKey k{"2026-01-01T00:00:00.000001Z", "0b7c0c1e-0000-4000-8000-000000000000"};
  const auto c = encode_cursor(k);
  EXPECT_EQ(c.find_first_of("+/="), std::string::npos);
  const auto d = decode_cursor(c);
  EXPECT_EQ(d.created_at, k.created_at);
  EXPECT_EQ(d.id, k.id);
  for (const std::string& bad : std::vector<std::string>{"", "***", "bm9waXBl", std::string(500, 'A')}) {
    try {
      decode_cursor(bad);
      ADD_FAILURE() << bad;
    } catch (const orchestrator::domain::InvalidError& e) {
      EXPECT_EQ(e.field(), "cursor");
    }
  }
  EXPECT_EQ(checked_limit(PageRequest{}), 50);
  EXPECT_THROW(checked_limit(PageRequest{0, ""}), orchestrator::domain::InvalidError);
  EXPECT_THROW(checked_limit(PageRequest{201, ""}), orchestrator::domain::InvalidError);
}

template <class Backend>
class Store : public orchestrator::testing::DbTest<Backend> {};
TYPED_TEST_SUITE(Store, orchestrator::testing::Backends, orchestrator::testing::BackendNames);

TYPED_TEST(Store, MigrationsAreIdempotent) {
  EXPECT_EQ(core::db::migrate(this->db(), TypeParam::migrations()), 0);
  soci::session sql(this->db().pool());
  long long n = -1;
  sql << "SELECT COUNT(*) FROM proposals", soci::into(n);
  EXPECT_EQ(n >= 0, true);
}

TYPED_TEST(Store, TxRollsBackUnlessCommitted) {
  soci::session sql(this->db().pool());
  const UserRecord u{core::uuid4(), "tx-" + core::random_hex(4) + "@example.com", "Tx", "hash", core::now_rfc3339()};
  {
    Tx tx(sql, this->db().dialect());
    ASSERT_TRUE(users::insert(sql, u));
  }
  EXPECT_FALSE(users::find_by_id(sql, u.id));
  {
    Tx tx(sql, this->db().dialect());
    ASSERT_TRUE(users::insert(sql, u));
    tx.commit();
  }
  EXPECT_TRUE(users::find_by_id(sql, u.id));
  EXPECT_FALSE(users::insert(sql, u));  // e-mail taken
}

TYPED_TEST(Store, ProposalRowRoundTripsNullsAndJson) {
  soci::session sql(this->db().pool());
  const auto now = core::now_rfc3339();
  const UserRecord u{core::uuid4(), "p-" + core::random_hex(4) + "@example.com", "P", "hash", now};
  users::insert(sql, u);
  const WorkflowRecord w{core::uuid4(), "wf", "", u.id, now, now, "owner"};
  workflows::insert(sql, w);
  ProposalRecord p;
  p.id = core::uuid4();
  p.workflow_id = w.id;
  p.thread_id = "thread-" + core::random_hex(4);
  p.user_prompt = "with 'quotes' and \"double\" and ünïcode";
  p.base_files = {{"/a.md", {{"x", "y"}, now, now}}};
  p.created_at = now;
  p.created_by_user_id = u.id;
  proposals::insert(sql, p);
  auto r = proposals::find(sql, p.id);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->user_prompt, p.user_prompt);
  EXPECT_FALSE(r->draft_id);
  EXPECT_FALSE(r->generated_files);
  EXPECT_FALSE(r->context_file_path);
  EXPECT_EQ(r->base_files.at("/a.md").content, (std::vector<std::string>{"x", "y"}));
  proposals::Transition t;
  t.completed_at = now;
  t.generated_files = orchestrator::domain::FileMap{};
  EXPECT_EQ(proposals::transition(sql, p.id, {ProposalStatus::processing}, ProposalStatus::completed, t), 1);
  EXPECT_EQ(proposals::transition(sql, p.id, {ProposalStatus::processing}, ProposalStatus::completed, t), 0);
  r = proposals::find(sql, p.id);
  ASSERT_TRUE(r->generated_files);
  EXPECT_TRUE(r->generated_files->empty());
  EXPECT_EQ(r->status, ProposalStatus::completed);
}
