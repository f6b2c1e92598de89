// SQL of deployments and workflow runs (see runs.hpp).
#include "orchestrator/store/runs.hpp"

#include <stdexcept>

#include "orchestrator/store/sql_helpers.hpp"

namespace orchestrator::store {

const char* to_string(RunStatus s) {
  switch (s) {
    case RunStatus::processing: return "processing";
    case RunStatus::completed: return "completed";
    case RunStatus::failed: return "failed";
    case RunStatus::cancelled: return "cancelled";
  }
  return "processing";
}

namespace {
RunStatus parse_run_status(const std::string& s) {
  for (auto st : {RunStatus::processing, RunStatus::completed, RunStatus::failed, RunStatus::cancelled})
    if (s == to_string(st)) return st;
  throw std::runtime_error("unknown run status in database: " + s);
}
}  // namespace

// ---------------------------------------------------------------- deployments
namespace deployments {

void upsert(UnitOfWork& uow, const std::string& workflow_id, const std::string& version_id, const std::string& by,
            const std::string& at) {
  soci::session& sql = uow.sql();
  core::db::run_reused(
      sql,
      "INSERT INTO deployments (workflow_id, version_id, deployed_by, deployed_at) VALUES (:w, :v, :b, :a) "
      "ON CONFLICT (workflow_id) DO UPDATE SET version_id = excluded.version_id, "
      "deployed_by = excluded.deployed_by, deployed_at = excluded.deployed_at",
      soci::use(workflow_id), soci::use(version_id), soci::use(by), soci::use(at));
}

std::optional<DeploymentRecord> find(UnitOfWork& uow, const std::string& workflow_id) {
  soci::session& sql = uow.sql();
  DeploymentRecord d;
  const bool got = core::db::run_reused(
      sql,
      "SELECT d.workflow_id, d.version_id, d.deployed_by, d.deployed_at, v.number FROM deployments d "
      "JOIN versions v ON v.id = d.version_id WHERE d.workflow_id = :w",
      soci::use(workflow_id), soci::into(d.workflow_id), soci::into(d.version_id), soci::into(d.deployed_by),
      soci::into(d.deployed_at), soci::into(d.version_number));
  if (!got) return std::nullopt;
  return d;
}

}  // namespace deployments

// ---------------------------------------------------------------- runs
namespace runs {

namespace {

using sqlh::opt;

const char* kColumns =
    "r.id, r.workflow_id, r.version_id, r.version_number, r.draft_revision, r.thread_id, r.status, r.input, "
    "r.output, r.base_files, r.files, r.error, r.failure_kind, r.created_by_user_id, r.created_at, r.completed_at, "
    "r.lease_owner, r.lease_expires_at, r.engine_cleanup_pending, r.engine_thread_deleted_at, r.idempotency_key, "
    "r.idempotency_target";

/// kColumns without the file trees (NULL for base_files and files): for the list, which renders
/// no files (a run's trees can be megabytes).
const char* kSummaryColumns =
    "r.id, r.workflow_id, r.version_id, r.version_number, r.draft_revision, r.thread_id, r.status, r.input, "
    "r.output, NULL, NULL, r.error, r.failure_kind, r.created_by_user_id, r.created_at, r.completed_at, "
    "r.lease_owner, r.lease_expires_at, r.engine_cleanup_pending, r.engine_thread_deleted_at, r.idempotency_key, "
    "r.idempotency_target";

std::vector<RunRecord> query(soci::session& sql, const std::string& where_order, std::vector<std::string>& params,
                             const char* columns = kColumns) {
  std::vector<RunRecord> out;
  std::string id, wf, vid, thread, status, input, output, base, files, err, kind, by, created, completed, lease,
      lease_exp, deleted, ikey, itarget;
  long long vnum = 0, drev = 0;
  int cleanup = 0;
  soci::indicator i_vid, i_vnum, i_drev, i_out, i_base, i_files, i_err, i_kind, i_completed, i_lease, i_lease_exp,
      i_deleted, i_ikey, i_itarget;
  sqlh::run_query(
      sql, std::string("SELECT ") + columns + " FROM runs r " + where_order, params,
      [&](soci::statement& st) {
        st.exchange(soci::into(id));
        st.exchange(soci::into(wf));
        st.exchange(soci::into(vid, i_vid));
        st.exchange(soci::into(vnum, i_vnum));
        st.exchange(soci::into(drev, i_drev));
        st.exchange(soci::into(thread));
        st.exchange(soci::into(status));
        st.exchange(soci::into(input));
        st.exchange(soci::into(output, i_out));
        st.exchange(soci::into(base, i_base));
        st.exchange(soci::into(files, i_files));
        st.exchange(soci::into(err, i_err));
        st.exchange(soci::into(kind, i_kind));
        st.exchange(soci::into(by));
        st.exchange(soci::into(created));
        st.exchange(soci::into(completed, i_completed));
        st.exchange(soci::into(lease, i_lease));
        st.exchange(soci::into(lease_exp, i_lease_exp));
        st.exchange(soci::into(cleanup));
        st.exchange(soci::into(deleted, i_deleted));
        st.exchange(soci::into(ikey, i_ikey));
        st.exchange(soci::into(itarget, i_itarget));
      },
      [&] {
        RunRecord r;
        r.id = id;
        r.workflow_id = wf;
        r.version_id = opt(vid, i_vid);
        if (i_vnum != soci::i_null) r.version_number = vnum;
        if (i_drev != soci::i_null) r.draft_revision = drev;
        r.thread_id = thread;
        r.status = parse_run_status(status);
        r.input = input;
        r.output = opt(output, i_out);
        if (i_base != soci::i_null) r.base_files = sqlh::files_from_blob(base);  // NULL: kSummaryColumns
        if (i_files != soci::i_null) r.files = sqlh::files_from_blob(files);
        r.error = opt(err, i_err);
        r.failure_kind = opt(kind, i_kind);
        r.created_by_user_id = by;
        r.created_at = created;
        r.completed_at = opt(completed, i_completed);
        r.lease_owner = opt(lease, i_lease);
        r.lease_expires_at = opt(lease_exp, i_lease_exp);
        r.engine_cleanup_pending = cleanup != 0;
        r.engine_thread_deleted_at = opt(deleted, i_deleted);
        r.idempotency_key = opt(ikey, i_ikey);
        r.idempotency_target = opt(itarget, i_itarget);
        out.push_back(std::move(r));
      });
  return out;
}

std::optional<RunRecord> one(soci::session& sql, const std::string& where, const std::string& v) {
  std::vector<std::string> params{v};
  auto rows = query(sql, "WHERE " + where, params);
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

/// Binds an optional integer as a nullable parameter.
struct NullableInt {
  long long value = 0;
  soci::indicator ind = soci::i_null;
  explicit NullableInt(const std::optional<long long>& v) {
    if (v) value = *v, ind = soci::i_ok;
  }
};

}  // namespace

bool insert(UnitOfWork& uow, const RunRecord& r) {
  soci::session& sql = uow.sql();
  sqlh::NullableParam vid(r.version_id), out(r.output), err(r.error), kind(r.failure_kind), completed(r.completed_at);
  sqlh::NullableParam lease_owner(r.lease_owner), lease_expires(r.lease_expires_at), ikey(r.idempotency_key),
      itarget(r.idempotency_target);
  sqlh::NullableParam files(r.files ? std::optional<std::string>(sqlh::files_blob(*r.files)) : std::nullopt);
  NullableInt vnum(r.version_number), drev(r.draft_revision);
  const std::string status = to_string(r.status);
  const std::string base = sqlh::files_blob(r.base_files);
  // As proposals::insert: a key its creator already used inserts nothing (migration 0009).
  const long long inserted = core::db::execute_reused(
      sql,
      "INSERT INTO runs (id, workflow_id, version_id, version_number, draft_revision, thread_id, status, input, "
      "output, base_files, files, error, failure_kind, created_by_user_id, created_at, completed_at, lease_owner, "
      "lease_expires_at, engine_cleanup_pending, idempotency_key, idempotency_target) "
      "VALUES (:id, :wf, :vid, :vn, :dr, :t, :s, :in, :out, :b, :f, :e, :k, :by, :c, :done, :lo, :le, 0, :ik, :it) "
      "ON CONFLICT (created_by_user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
      [&](soci::statement& st) {
        st.exchange(soci::use(r.id));
        st.exchange(soci::use(r.workflow_id));
        st.exchange(soci::use(vid.value, vid.ind));
        st.exchange(soci::use(vnum.value, vnum.ind));
        st.exchange(soci::use(drev.value, drev.ind));
        st.exchange(soci::use(r.thread_id));
        st.exchange(soci::use(status));
        st.exchange(soci::use(r.input));
        st.exchange(soci::use(out.value, out.ind));
        st.exchange(soci::use(base));
        st.exchange(soci::use(files.value, files.ind));
        st.exchange(soci::use(err.value, err.ind));
        st.exchange(soci::use(kind.value, kind.ind));
        st.exchange(soci::use(r.created_by_user_id));
        st.exchange(soci::use(r.created_at));
        st.exchange(soci::use(completed.value, completed.ind));
        st.exchange(soci::use(lease_owner.value, lease_owner.ind));
        st.exchange(soci::use(lease_expires.value, lease_expires.ind));
        st.exchange(soci::use(ikey.value, ikey.ind));
        st.exchange(soci::use(itarget.value, itarget.ind));
      });
  return inserted > 0;
}

std::optional<RunRecord> find_by_idempotency_key(UnitOfWork& uow, const std::string& user_id, const std::string& key) {
  std::vector<std::string> params{user_id, key};
  auto rows = query(uow.sql(), "WHERE r.created_by_user_id = :u AND r.idempotency_key = :k", params, kSummaryColumns);
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

std::optional<RunRecord> find(UnitOfWork& uow, const std::string& id) {
  soci::session& sql = uow.sql();
  return one(sql, "r.id = :v", id);
}

std::optional<RunRecord> find_by_thread(UnitOfWork& uow, const std::string& thread_id) {
  soci::session& sql = uow.sql();
  return one(sql, "r.thread_id = :v", thread_id);
}

std::vector<RunRecord> list(UnitOfWork& uow, const std::string& workflow_id, int limit,
                            const std::optional<CursorKey>& after) {
  soci::session& sql = uow.sql();
  std::vector<std::string> params{workflow_id};
  sqlh::push_keyset(params, after);
  return query(sql,
               "WHERE r.workflow_id = :w" + sqlh::keyset(after, "r.created_at", "r.id") +
                   " ORDER BY r.created_at DESC, r.id DESC LIMIT " + std::to_string(limit),
               params, kSummaryColumns);
}

long long count_processing_by_user(UnitOfWork& uow, const std::string& user_id) {
  soci::session& sql = uow.sql();
  long long n = 0;
  core::db::run_reused(sql, "SELECT COUNT(*) FROM runs WHERE created_by_user_id = :u AND status = 'processing'",
                       soci::use(user_id), soci::into(n));
  return n;
}

long long finish(UnitOfWork& uow, const std::string& id, RunStatus to, const Finish& f) {
  soci::session& sql = uow.sql();
  // The status name comes from the enum (never from input), so it is inlined safely.
  std::string q = std::string("UPDATE runs SET status = '") + to_string(to) +
                  "', completed_at = :c, lease_owner = NULL, lease_expires_at = NULL";
  std::vector<std::string> params{f.completed_at};
  auto set = [&](const char* col, const std::optional<std::string>& v) {
    if (!v) return;
    q += std::string(", ") + col + " = :" + col;
    params.push_back(*v);
  };
  set("output", f.output);
  set("error", f.error);
  set("failure_kind", f.failure_kind);
  if (f.files) set("files", sqlh::files_blob(*f.files));
  if (f.mark_cleanup) q += ", engine_cleanup_pending = 1";
  q += " WHERE id = :id AND status = 'processing'";
  params.push_back(id);
  return sqlh::execute(sql, q, params);
}

std::vector<RunRecord> list_processing(UnitOfWork& uow) {
  soci::session& sql = uow.sql();
  std::vector<std::string> params;
  return query(sql, "WHERE r.status = 'processing' ORDER BY r.created_at, r.id", params);
}

std::vector<std::pair<std::string, std::string>> list_processing_before(UnitOfWork& uow,
                                                                        const std::string& before) {
  soci::session& sql = uow.sql();
  return sqlh::id_thread_pairs(
      sql, "SELECT id, thread_id FROM runs WHERE status = 'processing' AND created_at < :b ORDER BY created_at",
      {before});
}

std::vector<std::pair<std::string, std::string>> list_pending_cleanup(UnitOfWork& uow, int limit) {
  soci::session& sql = uow.sql();
  return sqlh::id_thread_pairs(
      sql,
      "SELECT id, thread_id FROM runs WHERE engine_cleanup_pending = 1 ORDER BY created_at, id LIMIT " +
          std::to_string(limit),
      {});
}

bool clear_cleanup(UnitOfWork& uow, const std::string& id, const std::string& at, const std::string& unsure_after) {
  soci::session& sql = uow.sql();
  const long long changed = core::db::execute_reused(
      sql,
      "UPDATE runs SET engine_cleanup_pending = 0, engine_thread_deleted_at = :a WHERE id = :id AND "
      "(COALESCE(failure_kind, '') <> 'engine_unreachable' OR completed_at IS NULL OR completed_at <= :u)",
      [&](soci::statement& st) {
        st.exchange(soci::use(at));
        st.exchange(soci::use(id));
        st.exchange(soci::use(unsure_after));
      });
  return changed > 0;
}

std::vector<std::string> schedule_finished_cleanup(UnitOfWork& uow, const std::string& before, int limit) {
  soci::session& sql = uow.sql();
  // One statement (SQLite >= 3.35 and PostgreSQL both have UPDATE ... RETURNING): racing
  // sweepers of two replicas schedule each thread once.
  constexpr const char* kKept =
      "status <> 'processing' AND engine_cleanup_pending = 0 AND engine_thread_deleted_at IS NULL";
  std::vector<std::string> out, params{before};
  std::string thread;
  sqlh::run_query(
      sql,
      std::string("UPDATE runs SET engine_cleanup_pending = 1 WHERE ") + kKept +
          " AND id IN (SELECT id FROM runs WHERE " + kKept + " AND completed_at < :b ORDER BY completed_at, id LIMIT " +
          std::to_string(limit) + ") RETURNING thread_id",
      params, [&](soci::statement& st) { st.exchange(soci::into(thread)); }, [&] { out.push_back(thread); });
  return out;
}

std::vector<std::pair<std::string, std::string>> list_processing_for_workflow(UnitOfWork& uow,
                                                                              const std::string& workflow_id) {
  soci::session& sql = uow.sql();
  return sqlh::id_thread_pairs(
      sql, "SELECT id, thread_id FROM runs WHERE workflow_id = :w AND status = 'processing' ORDER BY created_at, id",
      {workflow_id});
}

long long schedule_workflow_cleanup(UnitOfWork& uow, const std::string& workflow_id) {
  soci::session& sql = uow.sql();
  std::vector<std::string> params{workflow_id};
  return sqlh::execute(sql,
                       "UPDATE runs SET engine_cleanup_pending = 1 WHERE workflow_id = :w AND status <> 'processing' "
                       "AND engine_cleanup_pending = 0 AND engine_thread_deleted_at IS NULL",
                       params);
}

bool acquire_lease(UnitOfWork& uow, const std::string& id, const std::string& owner, const std::string& now,
                   const std::string& expires) {
  soci::session& sql = uow.sql();
  return sqlh::acquire_lease(sql, "runs", id, owner, now, expires);
}

bool renew_lease(UnitOfWork& uow, const std::string& id, const std::string& owner, const std::string& expires) {
  soci::session& sql = uow.sql();
  return sqlh::renew_lease(sql, "runs", id, owner, expires);
}

void release_lease(UnitOfWork& uow, const std::string& id, const std::string& owner) {
  soci::session& sql = uow.sql();
  sqlh::release_lease(sql, "runs", id, owner);
}

std::vector<std::string> renew_leases(UnitOfWork& uow, const std::string& owner, const std::string& expires) {
  soci::session& sql = uow.sql();
  return sqlh::renew_leases(sql, "runs", owner, expires);
}

std::vector<std::pair<std::string, std::string>> list_claimable(UnitOfWork& uow, const std::string& owner,
                                                                const std::string& now, int limit) {
  soci::session& sql = uow.sql();
  return sqlh::list_claimable(sql, "runs", owner, now, limit);
}

}  // namespace runs

}  // namespace orchestrator::store
