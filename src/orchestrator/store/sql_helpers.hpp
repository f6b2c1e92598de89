#pragma once
// Helpers shared by the orchestrator's SQL repositories (repositories.cpp, runs.cpp): nullable
// parameters, file-map blobs, keyset pagination clauses, statements with a dynamic parameter
// list, and the engine-thread lease columns (lease_owner, lease_expires_at) that the proposal
// and run tables share. Internal to src/orchestrator/store.

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <soci/soci.h>

#include "core/db_statements.hpp"
#include "core/files.hpp"
#include "core/json_parse.hpp"
#include "orchestrator/domain/files.hpp"
#include "orchestrator/store/tx.hpp"

namespace orchestrator::store::sqlh {

/// The value of a nullable column read with indicator `ind`.
inline std::optional<std::string> opt(const std::string& v, soci::indicator ind) {
  if (ind == soci::i_null) return std::nullopt;
  return v;
}

/// Binds an optional string as a nullable parameter; keeps value + indicator alive.
struct NullableParam {
  std::string value;
  soci::indicator ind = soci::i_null;
  explicit NullableParam(const std::optional<std::string>& v) {
    if (v) value = *v, ind = soci::i_ok;
  }
};

/// A file map as stored: JSON text in the engine file shape.
inline std::string files_blob(const domain::FileMap& f) {
  return domain::files_to_json(f).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}
/// The file map of a stored blob; throws on corrupt content. A blob in the shape files_blob()
/// writes (content as an array of lines, both timestamps) is read as it is: it was validated
/// when it was written, and GET proposal reads two of them per request. Any other shape (a row
/// of an older version) goes through the full validation of domain::files_from_json.
inline domain::FileMap files_from_blob(const std::string& s) {
  const nlohmann::json j = core::json::parse(s, core::json::kInternalLimits);
  const auto validated = [&j] { return domain::files_from_json(j, "stored_files", "1970-01-01T00:00:00Z"); };
  if (!j.is_object()) return validated();
  domain::FileMap out;
  for (const auto& [path, f] : j.items()) {
    if (!f.is_object()) return validated();
    const auto c = f.find("content"), ca = f.find("created_at"), ma = f.find("modified_at");
    if (c == f.end() || !c->is_array() || c->empty() || ca == f.end() || !ca->is_string() || ma == f.end() ||
        !ma->is_string())
      return validated();
    domain::FileEntry e;
    e.content.reserve(c->size());
    for (const auto& line : *c) {
      if (!line.is_string()) return validated();
      e.content.push_back(line.get_ref<const std::string&>());
    }
    if (!core::files::is_canonical(e.content)) return validated();
    e.created_at = ca->get_ref<const std::string&>();
    e.modified_at = ma->get_ref<const std::string&>();
    out.emplace(path, std::move(e));
  }
  return out;
}

/// " AND (<col_at> < :ka OR (<col_at> = :kb AND <col_id> < :kc))" when a cursor is given.
inline std::string keyset(const std::optional<CursorKey>& after, const std::string& col_at, const std::string& col_id) {
  if (!after) return "";
  return " AND (" + col_at + " < :ka OR (" + col_at + " = :kb AND " + col_id + " < :kc))";
}

/// The three parameters of keyset(): created_at twice, then id.
inline void push_keyset(std::vector<std::string>& params, const std::optional<CursorKey>& after) {
  if (!after) return;
  params.push_back(after->created_at);
  params.push_back(after->created_at);
  params.push_back(after->id);
}

/// Runs a query whose into-columns are bound by `bind_into(statement&)`, with positional
/// string parameters; calls `on_row()` after each fetch. The session's prepared statement for
/// `q` is reused (core::db::ReusedStatement).
template <class BindInto, class OnRow>
void run_query(soci::session& sql, const std::string& q, std::vector<std::string>& params, BindInto bind_into,
               OnRow on_row) {
  core::db::ReusedStatement rs(sql, q);
  soci::statement& st = rs.get();
  bind_into(st);
  for (auto& p : params) st.exchange(soci::use(p));
  st.define_and_bind();
  st.execute(false);
  while (st.fetch()) on_row();
  rs.done();
}

/// Executes a prepared statement and returns the number of rows it changed.
inline long long affected(soci::statement& st) {
  st.execute(true);
  return st.get_affected_rows();
}

/// Executes a statement with positional string parameters; returns rows changed. The session's
/// prepared statement for `q` is reused (core::db::ReusedStatement).
inline long long execute(soci::session& sql, const std::string& q, std::vector<std::string>& params) {
  return core::db::execute_reused(sql, q, [&](soci::statement& st) {
    for (auto& p : params) st.exchange(soci::use(p));
  });
}

/// Rows of a query selecting (id, thread_id).
inline std::vector<std::pair<std::string, std::string>> id_thread_pairs(soci::session& sql, const std::string& q,
                                                                        std::vector<std::string> params) {
  std::vector<std::pair<std::string, std::string>> out;
  std::string id, thread;
  run_query(
      sql, q, params,
      [&](soci::statement& st) {
        st.exchange(soci::into(id));
        st.exchange(soci::into(thread));
      },
      [&] { out.emplace_back(id, thread); });
  return out;
}

// ---- leases on `table` (a trusted constant: "proposals" | "runs"), rows in status 'processing'

/// Takes the lease if it is free, expired before `now`, or already `owner`'s; true if taken.
inline bool acquire_lease(soci::session& sql, const char* table, const std::string& id, const std::string& owner,
                          const std::string& now, const std::string& expires) {
  std::vector<std::string> params{owner, expires, id, owner, now};
  return execute(sql,
                 std::string("UPDATE ") + table +
                     " SET lease_owner = :o, lease_expires_at = :e WHERE id = :id AND status = 'processing' AND "
                     "(lease_owner IS NULL OR lease_owner = :o2 OR lease_expires_at < :n)",
                 params) == 1;
}

/// Extends `owner`'s lease to `expires`; false if it is no longer held (or the row left processing).
inline bool renew_lease(soci::session& sql, const char* table, const std::string& id, const std::string& owner,
                        const std::string& expires) {
  std::vector<std::string> params{expires, id, owner};
  return execute(sql,
                 std::string("UPDATE ") + table +
                     " SET lease_expires_at = :e WHERE id = :id AND status = 'processing' AND lease_owner = :o",
                 params) == 1;
}

/// Clears the lease if `owner` holds it; no-op otherwise.
inline void release_lease(soci::session& sql, const char* table, const std::string& id, const std::string& owner) {
  std::vector<std::string> params{id, owner};
  execute(sql,
          std::string("UPDATE ") + table +
              " SET lease_owner = NULL, lease_expires_at = NULL WHERE id = :id AND lease_owner = :o",
          params);
}

/// Extends every lease `owner` holds on a processing row of `table` to `expires`, in ONE
/// statement; returns the ids it still holds.
inline std::vector<std::string> renew_leases(soci::session& sql, const char* table, const std::string& owner,
                                             const std::string& expires) {
  std::vector<std::string> out;
  std::string id;
  std::vector<std::string> params{expires, owner};
  run_query(
      sql,
      std::string("UPDATE ") + table +
          " SET lease_expires_at = :e WHERE lease_owner = :o AND status = 'processing' RETURNING id",
      params, [&](soci::statement& st) { st.exchange(soci::into(id)); }, [&] { out.push_back(id); });
  return out;
}

/// (id, thread_id) of processing rows of `table` that `owner` may track: lease free, expired
/// before `now`, or its own; oldest first, at most `limit`.
inline std::vector<std::pair<std::string, std::string>> list_claimable(soci::session& sql, const char* table,
                                                                       const std::string& owner,
                                                                       const std::string& now, int limit) {
  return id_thread_pairs(sql,
                         std::string("SELECT id, thread_id FROM ") + table +
                             " WHERE status = 'processing' AND (lease_owner IS NULL OR lease_owner = :o OR "
                             "lease_expires_at IS NULL OR lease_expires_at < :n) ORDER BY created_at, id LIMIT " +
                             std::to_string(limit),
                         {owner, now});
}

}  // namespace orchestrator::store::sqlh
