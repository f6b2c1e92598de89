#include "orchestrator/store/repositories.hpp"

#include "orchestrator/store/sql_helpers.hpp"

#include <stdexcept>

#include <soci/soci.h>

#include "core/db.hpp"

#include "core/json_parse.hpp"

namespace orchestrator::store {

using domain::FileEntry;
using domain::FileMap;

const char* to_string(ProposalStatus s) {
  switch (s) {
    case ProposalStatus::processing: return "processing";
    case ProposalStatus::completed: return "completed";
    case ProposalStatus::failed: return "failed";
    case ProposalStatus::cancelled: return "cancelled";
    case ProposalStatus::approved: return "approved";
    case ProposalStatus::rejected: return "rejected";
  }
  return "processing";
}

ProposalStatus parse_status(const std::string& s) {
  for (auto st : {ProposalStatus::processing, ProposalStatus::completed, ProposalStatus::failed,
                  ProposalStatus::cancelled, ProposalStatus::approved, ProposalStatus::rejected})
    if (s == to_string(st)) return st;
  throw std::runtime_error("unknown proposal status in database: " + s);
}

using sqlh::files_blob;
using sqlh::files_from_blob;
using sqlh::keyset;
using sqlh::NullableParam;
using sqlh::opt;
using sqlh::push_keyset;
using sqlh::run_query;

// ---------------------------------------------------------------- users
namespace users {

bool insert(UnitOfWork& uow, const UserRecord& u) {
  soci::session& sql = uow.sql();
  if (find_by_email(uow, u.email)) return false;
  try {
    core::db::run_reused(
        sql, "INSERT INTO users (id, email, name, password_hash, created_at) VALUES (:id, :e, :n, :h, :c)",
        soci::use(u.id), soci::use(u.email), soci::use(u.name), soci::use(u.password_hash), soci::use(u.created_at));
  } catch (const soci::soci_error&) {
    if (find_by_email(uow, u.email)) return false;  // lost a race on the unique e-mail
    throw;
  }
  return true;
}

namespace {
const char* kUserColumns = "id, email, name, password_hash, created_at, disabled_at, tokens_not_before";

std::vector<UserRecord> query(soci::session& sql, const std::string& q, std::vector<std::string>& params) {
  std::vector<UserRecord> out;
  UserRecord r;
  std::string disabled, not_before;
  soci::indicator i_disabled = soci::i_null, i_not_before = soci::i_null;
  run_query(
      sql, q, params,
      [&](soci::statement& st) {
        st.exchange(soci::into(r.id));
        st.exchange(soci::into(r.email));
        st.exchange(soci::into(r.name));
        st.exchange(soci::into(r.password_hash));
        st.exchange(soci::into(r.created_at));
        st.exchange(soci::into(disabled, i_disabled));
        st.exchange(soci::into(not_before, i_not_before));
      },
      [&] {
        r.disabled_at = opt(disabled, i_disabled);
        r.tokens_not_before = opt(not_before, i_not_before);
        out.push_back(r);
      });
  return out;
}

std::optional<UserRecord> find_by(soci::session& sql, const std::string& col, const std::string& v) {
  std::vector<std::string> params{v};
  auto rows = query(sql, std::string("SELECT ") + kUserColumns + " FROM users WHERE " + col + " = :v", params);
  if (rows.empty()) return std::nullopt;
  return rows.front();
}
}  // namespace

std::optional<UserRecord> find_by_email(UnitOfWork& uow, const std::string& email) {
  soci::session& sql = uow.sql();
  return find_by(sql, "email", email);
}
std::optional<UserRecord> find_by_id(UnitOfWork& uow, const std::string& id) {
  soci::session& sql = uow.sql();
  return find_by(sql, "id", id);
}

void lock(UnitOfWork& uow, core::db::Dialect dialect, const std::string& id) {
  soci::session& sql = uow.sql();
  if (dialect != core::db::Dialect::postgres) return;
  std::string got;
  core::db::run_reused(sql, "SELECT id FROM users WHERE id = :id FOR UPDATE", soci::use(id), soci::into(got));
}

std::optional<std::string> find_identity(UnitOfWork& uow, const std::string& issuer, const std::string& subject) {
  soci::session& sql = uow.sql();
  std::string user;
  const bool got = core::db::run_reused(sql, "SELECT user_id FROM user_identities WHERE issuer = :i AND subject = :s",
                                        soci::use(issuer), soci::use(subject), soci::into(user));
  if (!got) return std::nullopt;
  return user;
}

bool has_identity_from(UnitOfWork& uow, const std::string& user_id, const std::string& issuer) {
  soci::session& sql = uow.sql();
  long long n = 0;
  core::db::run_reused(sql, "SELECT COUNT(*) FROM user_identities WHERE user_id = :u AND issuer = :i",
                       soci::use(user_id), soci::use(issuer), soci::into(n));
  return n > 0;
}

void insert_identity(UnitOfWork& uow, const IdentityRecord& r) {
  soci::session& sql = uow.sql();
  core::db::run_reused(
      sql, "INSERT INTO user_identities (issuer, subject, user_id, email, created_at) VALUES (:i, :s, :u, :e, :c)",
      soci::use(r.issuer), soci::use(r.subject), soci::use(r.user_id), soci::use(r.email), soci::use(r.created_at));
}

std::vector<IdentityRecord> list_identities(UnitOfWork& uow, const std::string& user_id) {
  soci::session& sql = uow.sql();
  std::vector<IdentityRecord> out;
  IdentityRecord r;
  std::vector<std::string> params{user_id};
  run_query(
      sql,
      "SELECT issuer, subject, user_id, email, created_at FROM user_identities WHERE user_id = :u "
      "ORDER BY created_at, issuer, subject",
      params,
      [&](soci::statement& st) {
        st.exchange(soci::into(r.issuer));
        st.exchange(soci::into(r.subject));
        st.exchange(soci::into(r.user_id));
        st.exchange(soci::into(r.email));
        st.exchange(soci::into(r.created_at));
      },
      [&] { out.push_back(r); });
  return out;
}

std::vector<UserRecord> list(UnitOfWork& uow, int limit, const std::optional<CursorKey>& after) {
  soci::session& sql = uow.sql();
  std::vector<std::string> params;
  push_keyset(params, after);
  std::string where;
  if (after) where = " WHERE (created_at > :ka OR (created_at = :kb AND id > :kc))";
  return query(sql,
               std::string("SELECT ") + kUserColumns + " FROM users" + where + " ORDER BY created_at, id LIMIT " +
                   std::to_string(limit),
               params);
}

bool set_disabled(UnitOfWork& uow, const std::string& id, const std::optional<std::string>& at) {
  soci::session& sql = uow.sql();
  NullableParam a(at);
  soci::statement st = (sql.prepare << "UPDATE users SET disabled_at = :a WHERE id = :id",
                        soci::use(a.value, a.ind), soci::use(id));
  st.execute(true);
  return st.get_affected_rows() == 1;
}

bool set_password(UnitOfWork& uow, const std::string& id, const std::string& password_hash,
                  const std::string& not_before) {
  soci::session& sql = uow.sql();
  soci::statement st = (sql.prepare << "UPDATE users SET password_hash = :h, tokens_not_before = :n WHERE id = :id",
                        soci::use(password_hash), soci::use(not_before), soci::use(id));
  st.execute(true);
  return st.get_affected_rows() == 1;
}

}  // namespace users

// ---------------------------------------------------------------- workflows
namespace workflows {

void insert(UnitOfWork& uow, const WorkflowRecord& w) {
  soci::session& sql = uow.sql();
  core::db::run_reused(sql,
                       "INSERT INTO workflows (id, name, description, owner_id, created_at, updated_at) "
                       "VALUES (:id, :n, :d, :o, :c, :u)",
                       soci::use(w.id), soci::use(w.name), soci::use(w.description), soci::use(w.owner_id),
                       soci::use(w.created_at), soci::use(w.updated_at));
}

void upsert_member(UnitOfWork& uow, const std::string& workflow_id, const std::string& user_id,
                   const std::string& role, const std::string& at) {
  soci::session& sql = uow.sql();
  core::db::run_reused(sql,
                       "INSERT INTO workflow_members (workflow_id, user_id, role, added_at) VALUES (:w, :u, :r, :a) "
                       "ON CONFLICT (workflow_id, user_id) DO UPDATE SET role = excluded.role",
                       soci::use(workflow_id), soci::use(user_id), soci::use(role), soci::use(at));
}

namespace {
const char* kSelect =
    "SELECT w.id, w.name, w.description, w.owner_id, w.created_at, w.updated_at, m.role "
    "FROM workflows w JOIN workflow_members m ON m.workflow_id = w.id AND m.user_id = :u ";

std::vector<WorkflowRecord> query(soci::session& sql, const std::string& q, std::vector<std::string>& params) {
  std::vector<WorkflowRecord> out;
  WorkflowRecord r;
  run_query(
      sql, q, params,
      [&](soci::statement& st) {
        st.exchange(soci::into(r.id));
        st.exchange(soci::into(r.name));
        st.exchange(soci::into(r.description));
        st.exchange(soci::into(r.owner_id));
        st.exchange(soci::into(r.created_at));
        st.exchange(soci::into(r.updated_at));
        st.exchange(soci::into(r.role));
      },
      [&] { out.push_back(r); });
  return out;
}
}  // namespace

std::optional<WorkflowRecord> find_for_user(UnitOfWork& uow, const std::string& id, const std::string& user_id) {
  soci::session& sql = uow.sql();
  std::vector<std::string> params{user_id, id};
  auto rows = query(sql, std::string(kSelect) + "WHERE w.id = :id AND w.deleted_at IS NULL", params);
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

std::vector<WorkflowRecord> list_for_user(UnitOfWork& uow, const std::string& user_id, int limit,
                                          const std::optional<CursorKey>& after) {
  soci::session& sql = uow.sql();
  std::vector<std::string> params{user_id};
  push_keyset(params, after);
  return query(sql,
               std::string(kSelect) + "WHERE w.deleted_at IS NULL" + keyset(after, "w.created_at", "w.id") +
                   " ORDER BY w.created_at DESC, w.id DESC LIMIT " + std::to_string(limit),
               params);
}

void touch(UnitOfWork& uow, const std::string& id, const std::string& at) {
  soci::session& sql = uow.sql();
  core::db::run_reused(sql, "UPDATE workflows SET updated_at = :a WHERE id = :id", soci::use(at), soci::use(id));
}

namespace {
std::vector<MemberRecord> members(soci::session& sql, const std::string& q, std::vector<std::string>& params) {
  std::vector<MemberRecord> out;
  MemberRecord r;
  run_query(
      sql, q, params,
      [&](soci::statement& st) {
        st.exchange(soci::into(r.workflow_id));
        st.exchange(soci::into(r.user_id));
        st.exchange(soci::into(r.email));
        st.exchange(soci::into(r.name));
        st.exchange(soci::into(r.role));
        st.exchange(soci::into(r.added_at));
      },
      [&] { out.push_back(r); });
  return out;
}
const char* kMemberSelect =
    "SELECT m.workflow_id, m.user_id, u.email, u.name, m.role, m.added_at "
    "FROM workflow_members m JOIN users u ON u.id = m.user_id WHERE m.workflow_id = :w";
}  // namespace

std::vector<MemberRecord> list_members(UnitOfWork& uow, const std::string& workflow_id, int limit,
                                       const std::optional<CursorKey>& after) {
  soci::session& sql = uow.sql();
  std::vector<std::string> params{workflow_id};
  push_keyset(params, after);
  return members(sql,
                 std::string(kMemberSelect) + keyset(after, "m.added_at", "m.user_id") +
                     " ORDER BY m.added_at DESC, m.user_id DESC LIMIT " + std::to_string(limit),
                 params);
}

std::optional<MemberRecord> find_member(UnitOfWork& uow, const std::string& workflow_id,
                                        const std::string& user_id) {
  soci::session& sql = uow.sql();
  std::vector<std::string> params{workflow_id, user_id};
  auto rows = members(sql, std::string(kMemberSelect) + " AND m.user_id = :u", params);
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

bool remove_member(UnitOfWork& uow, const std::string& workflow_id, const std::string& user_id) {
  soci::session& sql = uow.sql();
  soci::statement st = (sql.prepare << "DELETE FROM workflow_members WHERE workflow_id = :w AND user_id = :u",
                        soci::use(workflow_id), soci::use(user_id));
  st.execute(true);
  return st.get_affected_rows() == 1;
}

bool update(UnitOfWork& uow, const std::string& id, const std::string& name, const std::string& description,
            const std::string& at) {
  soci::session& sql = uow.sql();
  soci::statement st = (sql.prepare << "UPDATE workflows SET name = :n, description = :d, updated_at = :a "
                                       "WHERE id = :id AND deleted_at IS NULL",
                        soci::use(name), soci::use(description), soci::use(at), soci::use(id));
  st.execute(true);
  return st.get_affected_rows() == 1;
}

bool soft_delete(UnitOfWork& uow, const std::string& id, const std::string& by, const std::string& at) {
  soci::session& sql = uow.sql();
  soci::statement st = (sql.prepare << "UPDATE workflows SET deleted_at = :a, deleted_by = :b, updated_at = :a2 "
                                       "WHERE id = :id AND deleted_at IS NULL",
                        soci::use(at), soci::use(by), soci::use(at), soci::use(id));
  st.execute(true);
  return st.get_affected_rows() == 1;
}

}  // namespace workflows

// ---------------------------------------------------------------- drafts
namespace drafts {

namespace {
std::optional<DraftRecord> find_by(soci::session& sql, const std::string& col, const std::string& v) {
  DraftRecord d;
  const bool got = core::db::run_reused(
      sql, "SELECT id, workflow_id, revision, created_at, updated_at FROM drafts WHERE " + col + " = :v", soci::use(v),
      soci::into(d.id), soci::into(d.workflow_id), soci::into(d.revision), soci::into(d.created_at),
      soci::into(d.updated_at));
  if (!got) return std::nullopt;
  return d;
}
FileMap load(soci::session& sql, const std::string& table, const std::string& key_col, const std::string& key) {
  FileMap out;
  std::string path, content, c, m;
  std::vector<std::string> params{key};
  run_query(
      sql, "SELECT path, content, created_at, modified_at FROM " + table + " WHERE " + key_col + " = :k", params,
      [&](soci::statement& st) {
        st.exchange(soci::into(path));
        st.exchange(soci::into(content));
        st.exchange(soci::into(c));
        st.exchange(soci::into(m));
      },
      [&] { out[path] = FileEntry{domain::content_from_text(content), c, m}; });
  return out;
}
}  // namespace

std::optional<DraftRecord> find_by_workflow(UnitOfWork& uow, const std::string& workflow_id) {
  soci::session& sql = uow.sql();
  return find_by(sql, "workflow_id", workflow_id);
}
std::optional<DraftRecord> find(UnitOfWork& uow, const std::string& id) {
  soci::session& sql = uow.sql();
  return find_by(sql, "id", id);
}

void lock(UnitOfWork& uow, const std::string& id) {
  soci::session& sql = uow.sql();
  core::db::run_reused(sql, "UPDATE drafts SET updated_at = updated_at WHERE id = :d", soci::use(id));
}

bool insert_if_missing(UnitOfWork& uow, const DraftRecord& d) {
  soci::session& sql = uow.sql();
  soci::statement st = (sql.prepare << "INSERT INTO drafts (id, workflow_id, revision, created_at, updated_at) "
                                       "VALUES (:id, :w, :r, :c, :u) ON CONFLICT (workflow_id) DO NOTHING",
                        soci::use(d.id), soci::use(d.workflow_id), soci::use(d.revision), soci::use(d.created_at),
                        soci::use(d.updated_at));
  st.execute(true);
  return st.get_affected_rows() == 1;
}

bool bump_revision(UnitOfWork& uow, const std::string& id, std::optional<long long> expected,
                   const std::string& at) {
  soci::session& sql = uow.sql();
  if (expected) {
    const long long e = *expected;
    soci::statement st = (sql.prepare << "UPDATE drafts SET revision = revision + 1, updated_at = :a "
                                         "WHERE id = :id AND revision = :r",
                          soci::use(at), soci::use(id), soci::use(e));
    st.execute(true);
    return st.get_affected_rows() == 1;
  }
  soci::statement st =
      (sql.prepare << "UPDATE drafts SET revision = revision + 1, updated_at = :a WHERE id = :id", soci::use(at),
       soci::use(id));
  st.execute(true);
  return st.get_affected_rows() == 1;
}

FileMap load_files(UnitOfWork& uow, const std::string& draft_id) {
  soci::session& sql = uow.sql();
  return load(sql, "draft_files", "draft_id", draft_id);
}

void upsert_file(UnitOfWork& uow, const std::string& draft_id, const std::string& path, const FileEntry& f) {
  soci::session& sql = uow.sql();
  const std::string content = domain::content_to_text(f.content);
  core::db::run_reused(
      sql,
      "INSERT INTO draft_files (draft_id, path, content, created_at, modified_at) VALUES (:d, :p, :c, :ca, :ma) "
      "ON CONFLICT (draft_id, path) DO UPDATE SET content = excluded.content, modified_at = excluded.modified_at",
      soci::use(draft_id), soci::use(path), soci::use(content), soci::use(f.created_at), soci::use(f.modified_at));
}

void delete_file(UnitOfWork& uow, const std::string& draft_id, const std::string& path) {
  soci::session& sql = uow.sql();
  core::db::run_reused(sql, "DELETE FROM draft_files WHERE draft_id = :d AND path = :p", soci::use(draft_id),
                       soci::use(path));
}

void delete_all_files(UnitOfWork& uow, const std::string& draft_id) {
  soci::session& sql = uow.sql();
  core::db::run_reused(sql, "DELETE FROM draft_files WHERE draft_id = :d", soci::use(draft_id));
}

void remove(UnitOfWork& uow, const std::string& id) {
  soci::session& sql = uow.sql();
  core::db::run_reused(sql, "UPDATE proposals SET draft_id = NULL WHERE draft_id = :d", soci::use(id));
  delete_all_files(uow, id);
  core::db::run_reused(sql, "DELETE FROM drafts WHERE id = :d", soci::use(id));
}

}  // namespace drafts

// ---------------------------------------------------------------- versions
namespace versions {

long long next_number(UnitOfWork& uow, const std::string& workflow_id) {
  soci::session& sql = uow.sql();
  long long n = 0;
  soci::indicator ind = soci::i_ok;
  core::db::run_reused(sql, "SELECT MAX(number) FROM versions WHERE workflow_id = :w", soci::use(workflow_id),
                       soci::into(n, ind));
  return ind == soci::i_null ? 1 : n + 1;
}

void insert(UnitOfWork& uow, const VersionRecord& v) {
  soci::session& sql = uow.sql();
  core::db::run_reused(
      sql, "INSERT INTO versions (id, workflow_id, number, created_by, created_at) VALUES (:id, :w, :n, :b, :c)",
      soci::use(v.id), soci::use(v.workflow_id), soci::use(v.number), soci::use(v.created_by), soci::use(v.created_at));
}

void insert_file(UnitOfWork& uow, const std::string& version_id, const std::string& path, const FileEntry& f) {
  soci::session& sql = uow.sql();
  const std::string content = domain::content_to_text(f.content);
  core::db::run_reused(sql,
                       "INSERT INTO version_files (version_id, path, content, created_at, modified_at) "
                       "VALUES (:v, :p, :c, :ca, :ma)",
                       soci::use(version_id), soci::use(path), soci::use(content), soci::use(f.created_at),
                       soci::use(f.modified_at));
}

namespace {
std::vector<VersionRecord> query(soci::session& sql, const std::string& q, std::vector<std::string>& params) {
  std::vector<VersionRecord> out;
  VersionRecord r;
  run_query(
      sql, q, params,
      [&](soci::statement& st) {
        st.exchange(soci::into(r.id));
        st.exchange(soci::into(r.workflow_id));
        st.exchange(soci::into(r.number));
        st.exchange(soci::into(r.created_by));
        st.exchange(soci::into(r.created_at));
      },
      [&] { out.push_back(r); });
  return out;
}
const char* kSelect = "SELECT id, workflow_id, number, created_by, created_at FROM versions WHERE workflow_id = :w";
}  // namespace

std::vector<VersionRecord> list(UnitOfWork& uow, const std::string& workflow_id, int limit,
                                const std::optional<CursorKey>& after) {
  soci::session& sql = uow.sql();
  std::vector<std::string> params{workflow_id};
  push_keyset(params, after);
  return query(sql,
               std::string(kSelect) + keyset(after, "created_at", "id") +
                   " ORDER BY created_at DESC, id DESC LIMIT " + std::to_string(limit),
               params);
}

std::optional<VersionRecord> find_by_number(UnitOfWork& uow, const std::string& workflow_id, long long number) {
  soci::session& sql = uow.sql();
  std::vector<std::string> params{workflow_id, std::to_string(number)};
  // The number is bound as text and compared as an integer on both dialects.
  auto rows = query(sql, std::string(kSelect) + " AND number = CAST(:n AS BIGINT)", params);
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

std::optional<VersionRecord> latest(UnitOfWork& uow, const std::string& workflow_id) {
  soci::session& sql = uow.sql();
  std::vector<std::string> params{workflow_id};
  auto rows = query(sql, std::string(kSelect) + " ORDER BY number DESC LIMIT 1", params);
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

FileMap load_files(UnitOfWork& uow, const std::string& version_id) {
  soci::session& sql = uow.sql();
  return drafts::load(sql, "version_files", "version_id", version_id);
}

}  // namespace versions

// ---------------------------------------------------------------- proposals
namespace proposals {

namespace {

/// Every column; base_files only once there are generated files, the only time anything reads
/// them (the change summary, the diff and the merge compare the two trees): a processing or
/// failed proposal's base is a whole copy of its draft, and a client polling one for its result
/// read and parsed that copy on every poll.
const char* kColumns =
    "p.id, p.workflow_id, p.draft_id, p.thread_id, p.status, p.user_prompt, p.context_file_path, "
    "p.context_selection, p.generated_files, CASE WHEN p.generated_files IS NULL THEN NULL ELSE p.base_files END, "
    "p.error, p.created_at, p.completed_at, p.resolved_at, "
    "p.created_by_user_id, p.resolved_by_user_id, p.lease_owner, p.lease_expires_at, p.engine_cleanup_pending, "
    "p.failure_kind, p.traceparent, p.idempotency_key";

/// kColumns without the file trees (NULL for generated_files and base_files): the lists, which
/// render no files, read kilobytes per row instead of a whole tree (up to the draft's limits,
/// megabytes) each.
const char* kSummaryColumns =
    "p.id, p.workflow_id, p.draft_id, p.thread_id, p.status, p.user_prompt, p.context_file_path, "
    "p.context_selection, NULL, NULL, p.error, p.created_at, p.completed_at, p.resolved_at, "
    "p.created_by_user_id, p.resolved_by_user_id, p.lease_owner, p.lease_expires_at, p.engine_cleanup_pending, "
    "p.failure_kind, p.traceparent, p.idempotency_key";

std::vector<ProposalRecord> query(soci::session& sql, const std::string& q, std::vector<std::string>& params) {
  std::vector<ProposalRecord> out;
  std::string id, wf, draft, thread, status, prompt, cfp, csel, gen, base, err, created, completed, resolved, by, rby,
      lease, lease_exp, fkind, traceparent, ikey;
  soci::indicator i_draft, i_cfp, i_csel, i_gen, i_base, i_err, i_completed, i_resolved, i_rby, i_lease, i_lease_exp,
      i_fkind, i_ikey;
  int cleanup = 0;
  run_query(
      sql, q, params,
      [&](soci::statement& st) {
        st.exchange(soci::into(id));
        st.exchange(soci::into(wf));
        st.exchange(soci::into(draft, i_draft));
        st.exchange(soci::into(thread));
        st.exchange(soci::into(status));
        st.exchange(soci::into(prompt));
        st.exchange(soci::into(cfp, i_cfp));
        st.exchange(soci::into(csel, i_csel));
        st.exchange(soci::into(gen, i_gen));
        st.exchange(soci::into(base, i_base));
        st.exchange(soci::into(err, i_err));
        st.exchange(soci::into(created));
        st.exchange(soci::into(completed, i_completed));
        st.exchange(soci::into(resolved, i_resolved));
        st.exchange(soci::into(by));
        st.exchange(soci::into(rby, i_rby));
        st.exchange(soci::into(lease, i_lease));
        st.exchange(soci::into(lease_exp, i_lease_exp));
        st.exchange(soci::into(cleanup));
        st.exchange(soci::into(fkind, i_fkind));
        st.exchange(soci::into(traceparent));
        st.exchange(soci::into(ikey, i_ikey));
      },
      [&] {
        ProposalRecord p;
        p.id = id;
        p.workflow_id = wf;
        p.draft_id = opt(draft, i_draft);
        p.thread_id = thread;
        p.status = parse_status(status);
        p.user_prompt = prompt;
        p.context_file_path = opt(cfp, i_cfp);
        p.context_selection = opt(csel, i_csel);
        if (i_gen != soci::i_null) p.generated_files = files_from_blob(gen);
        if (i_base != soci::i_null) p.base_files = files_from_blob(base);  // NULL: kSummaryColumns
        p.error = opt(err, i_err);
        p.created_at = created;
        p.completed_at = opt(completed, i_completed);
        p.resolved_at = opt(resolved, i_resolved);
        p.created_by_user_id = by;
        p.resolved_by_user_id = opt(rby, i_rby);
        p.lease_owner = opt(lease, i_lease);
        p.lease_expires_at = opt(lease_exp, i_lease_exp);
        p.engine_cleanup_pending = cleanup != 0;
        p.failure_kind = opt(fkind, i_fkind);
        p.traceparent = traceparent;
        p.idempotency_key = opt(ikey, i_ikey);
        out.push_back(std::move(p));
      });
  return out;
}

std::optional<ProposalRecord> one(soci::session& sql, const std::string& where, const std::string& v,
                                  const char* columns = kColumns) {
  std::vector<std::string> params{v};
  auto rows = query(sql, std::string("SELECT ") + columns + " FROM proposals p WHERE " + where, params);
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

using sqlh::affected;
using sqlh::id_thread_pairs;

}  // namespace

bool insert(UnitOfWork& uow, const ProposalRecord& p) {
  soci::session& sql = uow.sql();
  NullableParam draft(p.draft_id), cfp(p.context_file_path), csel(p.context_selection), err(p.error);
  NullableParam gen(p.generated_files ? std::optional<std::string>(files_blob(*p.generated_files)) : std::nullopt);
  NullableParam lease_owner(p.lease_owner), lease_expires(p.lease_expires_at), ikey(p.idempotency_key);
  const std::string base = files_blob(p.base_files);
  const std::string status = to_string(p.status);
  // A key the same user already used: nothing is inserted (the partial unique index of
  // migration 0009; on PostgreSQL this waits for a concurrent insert of the key to end).
  const long long inserted = core::db::execute_reused(
      sql,
      "INSERT INTO proposals (id, workflow_id, draft_id, thread_id, status, user_prompt, context_file_path, "
      "context_selection, generated_files, base_files, error, created_at, created_by_user_id, "
      "engine_cleanup_pending, lease_owner, lease_expires_at, traceparent, idempotency_key) "
      "VALUES (:id, :wf, :d, :t, :s, :up, :cfp, :cs, :g, :b, :e, :c, :by, 0, :lo, :le, :tp, :ik) "
      "ON CONFLICT (created_by_user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
      [&](soci::statement& st) {
        st.exchange(soci::use(p.id));
        st.exchange(soci::use(p.workflow_id));
        st.exchange(soci::use(draft.value, draft.ind));
        st.exchange(soci::use(p.thread_id));
        st.exchange(soci::use(status));
        st.exchange(soci::use(p.user_prompt));
        st.exchange(soci::use(cfp.value, cfp.ind));
        st.exchange(soci::use(csel.value, csel.ind));
        st.exchange(soci::use(gen.value, gen.ind));
        st.exchange(soci::use(base));
        st.exchange(soci::use(err.value, err.ind));
        st.exchange(soci::use(p.created_at));
        st.exchange(soci::use(p.created_by_user_id));
        st.exchange(soci::use(lease_owner.value, lease_owner.ind));
        st.exchange(soci::use(lease_expires.value, lease_expires.ind));
        st.exchange(soci::use(p.traceparent));
        st.exchange(soci::use(ikey.value, ikey.ind));
      });
  return inserted > 0;
}

std::optional<ProposalRecord> find_by_idempotency_key(UnitOfWork& uow, const std::string& user_id,
                                                      const std::string& key) {
  std::vector<std::string> params{user_id, key};
  auto rows = query(uow.sql(),
                    std::string("SELECT ") + kSummaryColumns +
                        " FROM proposals p WHERE p.created_by_user_id = :u AND p.idempotency_key = :k",
                    params);
  if (rows.empty()) return std::nullopt;
  return rows.front();
}

void grant_access(UnitOfWork& uow, const std::string& proposal_id, const std::string& user_id,
                  const std::string& access_type, const std::string& at) {
  soci::session& sql = uow.sql();
  core::db::run_reused(
      sql,
      "INSERT INTO proposal_access (proposal_id, user_id, access_type, granted_at) VALUES (:p, :u, :t, :a) "
      "ON CONFLICT (proposal_id, user_id) DO UPDATE SET access_type = excluded.access_type",
      soci::use(proposal_id), soci::use(user_id), soci::use(access_type), soci::use(at));
}

bool has_access(UnitOfWork& uow, const std::string& proposal_id, const std::string& user_id) {
  soci::session& sql = uow.sql();
  long long n = 0;
  core::db::run_reused(sql, "SELECT COUNT(*) FROM proposal_access WHERE proposal_id = :p AND user_id = :u",
                       soci::use(proposal_id), soci::use(user_id), soci::into(n));
  return n > 0;
}

std::optional<ProposalRecord> find(UnitOfWork& uow, const std::string& id) {
  soci::session& sql = uow.sql();
  return one(sql, "p.id = :v", id);
}

std::optional<ProposalRecord> find_by_thread(UnitOfWork& uow, const std::string& thread_id) {
  soci::session& sql = uow.sql();
  return one(sql, "p.thread_id = :v", thread_id);
}


std::optional<ProposalRecord> find_summary(UnitOfWork& uow, const std::string& id) {
  soci::session& sql = uow.sql();
  return one(sql, "p.id = :v", id, kSummaryColumns);
}

std::optional<ProposalRecord> find_summary_by_thread(UnitOfWork& uow, const std::string& thread_id) {
  soci::session& sql = uow.sql();
  return one(sql, "p.thread_id = :v", thread_id, kSummaryColumns);
}

std::vector<ProposalRecord> list_for_user(UnitOfWork& uow, const std::string& workflow_id,
                                          const std::string& user_id, int limit,
                                          const std::optional<CursorKey>& after) {
  soci::session& sql = uow.sql();
  std::vector<std::string> params{user_id, workflow_id};
  push_keyset(params, after);
  return query(sql,
               std::string("SELECT ") + kSummaryColumns +
                   " FROM proposals p JOIN proposal_access a ON a.proposal_id = p.id AND a.user_id = :u "
                   "WHERE p.workflow_id = :w" +
                   keyset(after, "p.created_at", "p.id") + " ORDER BY p.created_at DESC, p.id DESC LIMIT " +
                   std::to_string(limit),
               params);
}

std::vector<ProposalRecord> list_visible(UnitOfWork& uow, const std::string& user_id,
                                         const std::vector<ProposalStatus>& statuses, int limit,
                                         const std::optional<CursorKey>& after) {
  soci::session& sql = uow.sql();
  std::vector<std::string> params{user_id, user_id};
  push_keyset(params, after);
  // Status names come from the enum (never from input), so they are inlined safely.
  std::string in;
  for (std::size_t i = 0; i < statuses.size(); ++i) in += std::string(i ? ", '" : "'") + to_string(statuses[i]) + "'";
  return query(sql,
               std::string("SELECT ") + kSummaryColumns +
                   " FROM proposals p JOIN proposal_access a ON a.proposal_id = p.id AND a.user_id = :u "
                   "JOIN workflow_members m ON m.workflow_id = p.workflow_id AND m.user_id = :u2 "
                   "JOIN workflows w ON w.id = p.workflow_id AND w.deleted_at IS NULL WHERE 1 = 1" +
                   (in.empty() ? std::string() : " AND p.status IN (" + in + ")") +
                   keyset(after, "p.created_at", "p.id") + " ORDER BY p.created_at DESC, p.id DESC LIMIT " +
                   std::to_string(limit),
               params);
}

std::vector<std::pair<std::string, std::string>> list_for_workflow_in(UnitOfWork& uow,
                                                                      const std::string& workflow_id,
                                                                      ProposalStatus status) {
  soci::session& sql = uow.sql();
  return id_thread_pairs(sql,
                         "SELECT id, thread_id FROM proposals WHERE workflow_id = :w AND status = :s "
                         "ORDER BY created_at, id",
                         {workflow_id, to_string(status)});
}

long long schedule_workflow_cleanup(UnitOfWork& uow, const std::string& workflow_id) {
  soci::session& sql = uow.sql();
  soci::statement st = (sql.prepare << "UPDATE proposals SET engine_cleanup_pending = 1 WHERE workflow_id = :w AND "
                                       "status <> 'processing' AND engine_cleanup_pending = 0 AND "
                                       "engine_thread_deleted_at IS NULL",
                        soci::use(workflow_id));
  return affected(st);
}

bool insert_retry(UnitOfWork& uow, const std::string& proposal_id, const std::string& retry_id,
                  const std::string& at) {
  soci::session& sql = uow.sql();
  soci::statement st = (sql.prepare << "INSERT INTO proposal_retries (proposal_id, retry_id, created_at) "
                                       "VALUES (:p, :r, :a) ON CONFLICT (proposal_id) DO NOTHING",
                        soci::use(proposal_id), soci::use(retry_id), soci::use(at));
  return affected(st) == 1;
}

std::optional<std::string> find_retry(UnitOfWork& uow, const std::string& proposal_id) {
  soci::session& sql = uow.sql();
  std::string id;
  const bool got = core::db::run_reused(sql, "SELECT retry_id FROM proposal_retries WHERE proposal_id = :p",
                                        soci::use(proposal_id), soci::into(id));
  if (!got) return std::nullopt;
  return id;
}

long long count_open_for_draft(UnitOfWork& uow, const std::string& draft_id) {
  soci::session& sql = uow.sql();
  long long n = 0;
  core::db::run_reused(sql,
                       "SELECT COUNT(*) FROM proposals WHERE draft_id = :d AND status IN ('processing', 'completed')",
                       soci::use(draft_id), soci::into(n));
  return n;
}

long long count_processing_by_user(UnitOfWork& uow, const std::string& user_id) {
  soci::session& sql = uow.sql();
  long long n = 0;
  core::db::run_reused(sql, "SELECT COUNT(*) FROM proposals WHERE created_by_user_id = :u AND status = 'processing'",
                       soci::use(user_id), soci::into(n));
  return n;
}

long long transition(UnitOfWork& uow, const std::string& id, const std::vector<ProposalStatus>& from,
                     ProposalStatus to, const Transition& t) {
  soci::session& sql = uow.sql();
  // Status names come from the enum (never from input), so they are inlined safely.
  std::string q = std::string("UPDATE proposals SET status = '") + to_string(to) + "'";
  std::vector<std::string> params;
  auto set = [&](const char* col, const std::optional<std::string>& v) {
    if (!v) return;
    q += std::string(", ") + col + " = :" + col;
    params.push_back(*v);
  };
  set("completed_at", t.completed_at);
  set("resolved_at", t.resolved_at);
  set("resolved_by_user_id", t.resolved_by_user_id);
  set("error", t.error);
  set("failure_kind", t.failure_kind);
  if (t.clear_error) q += ", error = NULL, failure_kind = NULL";
  if (t.generated_files) set("generated_files", files_blob(*t.generated_files));
  if (t.mark_cleanup) q += ", engine_cleanup_pending = 1";
  if (t.mark_cleanup || t.clear_lease) q += ", lease_owner = NULL, lease_expires_at = NULL";
  q += " WHERE id = :id AND status IN (";
  params.push_back(id);
  for (std::size_t i = 0; i < from.size(); ++i) q += std::string(i ? ", '" : "'") + to_string(from[i]) + "'";
  q += ")";
  return sqlh::execute(sql, q, params);
}

std::vector<std::pair<std::string, std::string>> list_pending_cleanup(UnitOfWork& uow, int limit) {
  soci::session& sql = uow.sql();
  return id_thread_pairs(
      sql,
      "SELECT id, thread_id FROM proposals WHERE engine_cleanup_pending = 1 ORDER BY created_at, id LIMIT " +
          std::to_string(limit),
      {});
}

void clear_cleanup(UnitOfWork& uow, const std::string& id, const std::string& at) {
  soci::session& sql = uow.sql();
  core::db::run_reused(sql,
                       "UPDATE proposals SET engine_cleanup_pending = 0, engine_thread_deleted_at = :a WHERE id = :id",
                       soci::use(at), soci::use(id));
}

std::vector<std::pair<std::string, std::string>> list_failed_not_cleaned_before(UnitOfWork& uow,
                                                                                const std::string& before, int limit) {
  soci::session& sql = uow.sql();
  return id_thread_pairs(sql,
                         "SELECT id, thread_id FROM proposals WHERE status = 'failed' AND engine_cleanup_pending = 0 AND "
                         "engine_thread_deleted_at IS NULL AND completed_at < :b ORDER BY completed_at, id LIMIT " +
                             std::to_string(limit),
                         {before});
}

bool schedule_failed_cleanup(UnitOfWork& uow, const std::string& id) {
  std::vector<std::string> params{id};
  return sqlh::execute(uow.sql(),
                       "UPDATE proposals SET engine_cleanup_pending = 1 WHERE id = :id AND status = 'failed' AND "
                       "engine_cleanup_pending = 0 AND engine_thread_deleted_at IS NULL",
                       params) == 1;
}

std::vector<std::pair<std::string, std::string>> list_processing_before(UnitOfWork& uow,
                                                                        const std::string& before) {
  soci::session& sql = uow.sql();
  return id_thread_pairs(
      sql, "SELECT id, thread_id FROM proposals WHERE status = 'processing' AND created_at < :b ORDER BY created_at",
      {before});
}

std::vector<ProposalRecord> list_processing(UnitOfWork& uow) {
  soci::session& sql = uow.sql();
  std::vector<std::string> params;
  return query(sql,
               std::string("SELECT ") + kColumns +
                   " FROM proposals p WHERE p.status = 'processing' ORDER BY p.created_at, p.id",
               params);
}

bool acquire_lease(UnitOfWork& uow, const std::string& id, const std::string& owner, const std::string& now,
                   const std::string& expires) {
  soci::session& sql = uow.sql();
  return sqlh::acquire_lease(sql, "proposals", id, owner, now, expires);
}

bool renew_lease(UnitOfWork& uow, const std::string& id, const std::string& owner, const std::string& expires) {
  return sqlh::renew_lease(uow.sql(), "proposals", id, owner, expires);
}

void release_lease(UnitOfWork& uow, const std::string& id, const std::string& owner) {
  sqlh::release_lease(uow.sql(), "proposals", id, owner);
}

std::vector<std::string> renew_leases(UnitOfWork& uow, const std::string& owner, const std::string& expires) {
  return sqlh::renew_leases(uow.sql(), "proposals", owner, expires);
}

std::vector<std::pair<std::string, std::string>> list_claimable(UnitOfWork& uow, const std::string& owner,
                                                                const std::string& now, int limit) {
  return sqlh::list_claimable(uow.sql(), "proposals", owner, now, limit);
}

std::vector<std::pair<std::string, std::string>> list_failed_of_kind(UnitOfWork& uow, const std::string& kind,
                                                                     int limit) {
  soci::session& sql = uow.sql();
  return id_thread_pairs(sql,
                         "SELECT id, thread_id FROM proposals WHERE status = 'failed' AND failure_kind = :k AND "
                         "engine_cleanup_pending = 0 AND engine_thread_deleted_at IS NULL ORDER BY created_at, id LIMIT " +
                             std::to_string(limit),
                         {kind});
}

bool change_failure_kind(UnitOfWork& uow, const std::string& id, const std::string& from, const std::string& to,
                         const std::optional<std::string>& failed_before) {
  std::vector<std::string> params{to, id, from};
  std::string q = "UPDATE proposals SET failure_kind = :t WHERE id = :id AND status = 'failed' AND failure_kind = :f";
  if (failed_before) {
    q += " AND completed_at <= :b";
    params.push_back(*failed_before);
  }
  return sqlh::execute(uow.sql(), q, params) == 1;
}

}  // namespace proposals

namespace streams {

std::optional<std::string> watch_access(UnitOfWork& uow, const std::string& thread_id, const std::string& user_id) {
  soci::session& sql = uow.sql();
  std::string traceparent;
  int kind = 0;
  soci::indicator ind = soci::i_null;
  // A thread is either a proposal's or a run's (both thread_id columns are unique): the union
  // has at most one row per proposal_access row, and the proposal's comes first.
  const bool got = core::db::run_reused(
      sql,
      "SELECT x.tp, x.k FROM users u JOIN ("
      "SELECT p.traceparent AS tp, 1 AS k FROM proposals p "
      "JOIN proposal_access a ON a.proposal_id = p.id AND a.user_id = :u1 "
      "JOIN workflow_members m ON m.workflow_id = p.workflow_id AND m.user_id = :u2 "
      "JOIN workflows w ON w.id = p.workflow_id AND w.deleted_at IS NULL WHERE p.thread_id = :t1 "
      "UNION ALL "
      "SELECT NULL, 2 FROM runs r "
      "JOIN workflow_members m2 ON m2.workflow_id = r.workflow_id AND m2.user_id = :u3 "
      "JOIN workflows w2 ON w2.id = r.workflow_id AND w2.deleted_at IS NULL WHERE r.thread_id = :t2"
      ") x ON 1 = 1 WHERE u.id = :u4 AND u.disabled_at IS NULL ORDER BY x.k LIMIT 1",
      soci::use(user_id), soci::use(user_id), soci::use(thread_id), soci::use(user_id), soci::use(thread_id),
      soci::use(user_id), soci::into(traceparent, ind), soci::into(kind));
  if (!got) return std::nullopt;
  return ind == soci::i_ok ? traceparent : std::string();
}

}  // namespace streams

// ---------------------------------------------------------------- audit
namespace audit {

void insert(UnitOfWork& uow, const AuditRecord& a) {
  soci::session& sql = uow.sql();
  NullableParam user(a.user_id), wf(a.workflow_id);
  // Details can carry engine text: never throw on invalid UTF-8 (it becomes U+FFFD).
  const std::string details = a.details.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  core::db::run_reused(
      sql,
      "INSERT INTO audit_log (id, at, user_id, workflow_id, action, subject_type, subject_id, details) "
      "VALUES (:id, :at, :u, :w, :a, :st, :si, :d)",
      soci::use(a.id), soci::use(a.at), soci::use(user.value, user.ind), soci::use(wf.value, wf.ind),
      soci::use(a.action), soci::use(a.subject_type), soci::use(a.subject_id), soci::use(details));
}

std::vector<AuditRecord> list(UnitOfWork& uow, const std::string& workflow_id, int limit,
                              const std::optional<CursorKey>& after) {
  soci::session& sql = uow.sql();
  std::vector<AuditRecord> out;
  std::string id, at, user, wf, action, st_, si, details;
  soci::indicator i_user, i_wf;
  std::vector<std::string> params{workflow_id};
  push_keyset(params, after);
  run_query(
      sql,
      "SELECT id, at, user_id, workflow_id, action, subject_type, subject_id, details FROM audit_log "
      "WHERE workflow_id = :w" +
          keyset(after, "at", "id") + " ORDER BY at DESC, id DESC LIMIT " + std::to_string(limit),
      params,
      [&](soci::statement& st) {
        st.exchange(soci::into(id));
        st.exchange(soci::into(at));
        st.exchange(soci::into(user, i_user));
        st.exchange(soci::into(wf, i_wf));
        st.exchange(soci::into(action));
        st.exchange(soci::into(st_));
        st.exchange(soci::into(si));
        st.exchange(soci::into(details));
      },
      [&] {
        AuditRecord a;
        a.id = id, a.at = at, a.user_id = opt(user, i_user), a.workflow_id = opt(wf, i_wf);
        a.action = action, a.subject_type = st_, a.subject_id = si;
        a.details = core::json::parse_or_null(details, core::json::kInternalLimits).value_or(nullptr);
        out.push_back(std::move(a));
      });
  return out;
}

}  // namespace audit

}  // namespace orchestrator::store
